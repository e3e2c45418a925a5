//! Socket.IO binary attachments: putting a packet back together from several Engine.IO
//! messages.
//!
//! Owns the one piece of per-connection decoding state Socket.IO has: a `BinaryEvent` or
//! `BinaryAck` announced by a text message and still waiting for its `N` attachments, which
//! arrive as the next `N` binary Engine.IO messages, in order, with nothing in between. It
//! never touches a socket or a clock, and never replaces placeholders with bytes: the
//! placeholders stay in the JSON (`{"_placeholder":true,"num":i}`) and the bytes sit in
//! [`Packet::attachments`] at index `i`, so a handler that echoes a packet re-encodes it
//! without rebuilding either.
//!
//! Memory is bounded by [`Limits::max_attachments`] times the Engine.IO message limit. Every
//! error is fatal to the connection; after one, the reassembler keeps the state it had, so
//! further calls stay well defined but the caller should close the session.

use bytes::Bytes;
use serde_json::Value;

use super::packet::{decode_deferred, Limits, Packet, PacketError};

/// Reassembles packets from Engine.IO messages: text messages start packets, binary messages
/// complete them.
///
/// Call [`push_text`](Self::push_text) for every Engine.IO text message and
/// [`push_binary`](Self::push_binary) for every binary one, in arrival order. Each returns
/// `Ok(Some(packet))` when a packet is complete, `Ok(None)` while attachments are awaited.
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    /// The binary packet being completed and how many attachments it announced; boxed, so
    /// the many connections with none pay one pointer.
    pending: Option<Box<(Packet, usize)>>,
}

impl Reassembler {
    pub fn new(limits: Limits) -> Self {
        Reassembler {
            limits,
            pending: None,
        }
    }

    /// A text Engine.IO message (without the Engine.IO `4`).
    ///
    /// Fails with [`PacketError::UnexpectedText`] while a binary packet still awaits
    /// attachments, and with the decoder's error for a malformed packet. A binary packet
    /// announcing 0 attachments is complete at once.
    pub fn push_text(&mut self, text: &str) -> Result<Option<Packet>, PacketError> {
        if self.pending.is_some() {
            return Err(PacketError::UnexpectedText);
        }
        let (mut packet, count) = decode_deferred(text, &self.limits)?;
        if !packet.kind.is_binary() {
            return Ok(Some(packet));
        }
        if let Some(data) = &packet.data {
            check_placeholders(data, count)?;
        }
        if count == 0 {
            return Ok(Some(packet));
        }
        // `count` is at most `limits.max_attachments`, checked by `decode`.
        packet.attachments = Vec::with_capacity(count);
        self.pending = Some(Box::new((packet, count)));
        Ok(None)
    }

    /// A binary Engine.IO message: the next attachment of the awaiting packet.
    ///
    /// Fails with [`PacketError::UnexpectedAttachment`] when no packet awaits one.
    pub fn push_binary(&mut self, data: Bytes) -> Result<Option<Packet>, PacketError> {
        let Some(mut pending) = self.pending.take() else {
            return Err(PacketError::UnexpectedAttachment);
        };
        let (packet, count) = &mut *pending;
        packet.attachments.push(data);
        if packet.attachments.len() >= *count {
            return Ok(Some(pending.0));
        }
        self.pending = Some(pending);
        Ok(None)
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_waiting(&self) -> bool {
        self.pending.is_some()
    }
}

/// Check that every placeholder in `data` names an attachment that will arrive: an object
/// whose `_placeholder` is `true` must have an integer `num` below `count` (socket.io-parser
/// rejects the same packets in `reconstructPacket`). Objects whose `_placeholder` is anything
/// else are ordinary data.
///
/// The walk uses its own stack rather than recursion; its depth is bounded anyway by
/// serde_json's nesting limit on the decoded value.
fn check_placeholders(data: &Value, count: usize) -> Result<(), PacketError> {
    let mut stack = vec![data];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                if map.get("_placeholder") == Some(&Value::Bool(true)) {
                    let num = map.get("num").and_then(Value::as_u64);
                    match num {
                        Some(n) if n < count as u64 => {}
                        _ => return Err(PacketError::BadPlaceholder),
                    }
                } else {
                    stack.extend(map.values());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socketio::packet::{encode_into, PacketKind};
    use serde_json::json;

    fn reassembler() -> Reassembler {
        Reassembler::new(Limits::default())
    }

    #[test]
    fn binary_event_with_one_attachment_completes_on_first_binary() {
        let mut r = reassembler();
        let got = r
            .push_text("51-[\"hello\",{\"_placeholder\":true,\"num\":0}]")
            .expect("valid");
        assert_eq!(got, None);
        assert!(r.is_waiting());
        let packet = r
            .push_binary(Bytes::from_static(&[1, 2, 3]))
            .expect("awaited")
            .expect("complete");
        assert!(!r.is_waiting());
        assert_eq!(packet.kind, PacketKind::BinaryEvent);
        assert_eq!(packet.event_name().as_deref(), Some("hello"));
        assert_eq!(
            packet.data,
            Some(json!(["hello", {"_placeholder": true, "num": 0}]))
        );
        assert_eq!(packet.attachments, vec![Bytes::from_static(&[1, 2, 3])]);
    }

    #[test]
    fn binary_event_with_two_attachments_keeps_them_in_order() {
        let mut r = reassembler();
        let text = "52-/admin,9[\"file\",{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":0}]";
        assert_eq!(r.push_text(text), Ok(None));
        assert_eq!(r.push_binary(Bytes::from_static(b"first")), Ok(None));
        assert!(r.is_waiting());
        let packet = r
            .push_binary(Bytes::from_static(b"second"))
            .expect("awaited")
            .expect("complete");
        assert_eq!(packet.nsp, "/admin");
        assert_eq!(packet.id, Some(9));
        assert_eq!(
            packet.attachments,
            vec![Bytes::from_static(b"first"), Bytes::from_static(b"second")]
        );
        assert!(!r.is_waiting());
    }

    #[test]
    fn binary_ack_completes_with_its_attachment() {
        let mut r = reassembler();
        assert_eq!(
            r.push_text("61-789[{\"_placeholder\":true,\"num\":0}]"),
            Ok(None)
        );
        let packet = r
            .push_binary(Bytes::from_static(b"x"))
            .expect("awaited")
            .expect("complete");
        assert_eq!(packet.kind, PacketKind::BinaryAck);
        assert_eq!(packet.id, Some(789));
    }

    #[test]
    fn binary_event_with_zero_attachments_completes_at_once() {
        let mut r = reassembler();
        let packet = r
            .push_text("50-[\"nothing\"]")
            .expect("valid")
            .expect("complete");
        assert_eq!(packet.kind, PacketKind::BinaryEvent);
        assert!(packet.attachments.is_empty());
        assert!(!r.is_waiting());
    }

    #[test]
    fn plain_packets_pass_straight_through() {
        let mut r = reassembler();
        let packet = r.push_text("2[\"hi\"]").expect("valid").expect("complete");
        assert_eq!(packet.kind, PacketKind::Event);
        assert!(!r.is_waiting());
    }

    #[test]
    fn text_while_awaiting_attachments_is_an_error() {
        let mut r = reassembler();
        assert_eq!(
            r.push_text("51-[\"a\",{\"_placeholder\":true,\"num\":0}]"),
            Ok(None)
        );
        assert_eq!(r.push_text("2[\"b\"]"), Err(PacketError::UnexpectedText));
        assert!(r.is_waiting());
    }

    #[test]
    fn binary_while_not_awaiting_is_an_error() {
        let mut r = reassembler();
        assert_eq!(
            r.push_binary(Bytes::from_static(b"stray")),
            Err(PacketError::UnexpectedAttachment)
        );
        // Also after a binary packet has completed.
        assert_eq!(
            r.push_text("51-[\"a\",{\"_placeholder\":true,\"num\":0}]"),
            Ok(None)
        );
        assert!(r.push_binary(Bytes::new()).expect("awaited").is_some());
        assert_eq!(
            r.push_binary(Bytes::new()),
            Err(PacketError::UnexpectedAttachment)
        );
    }

    #[test]
    fn reassembler_accepts_packets_after_completing_one() {
        let mut r = reassembler();
        assert_eq!(
            r.push_text("51-[\"a\",{\"_placeholder\":true,\"num\":0}]"),
            Ok(None)
        );
        assert!(r.push_binary(Bytes::new()).expect("awaited").is_some());
        assert!(r.push_text("2[\"b\"]").expect("valid").is_some());
    }

    #[test]
    fn decode_errors_are_passed_through() {
        let mut r = reassembler();
        assert_eq!(r.push_text("2{}"), Err(PacketError::EventDataNotArray));
        assert_eq!(
            r.push_text("511-[\"x\"]"),
            Err(PacketError::TooManyAttachments)
        );
        assert!(!r.is_waiting());
    }

    #[test]
    fn placeholder_beyond_attachment_count_is_rejected() {
        let mut r = reassembler();
        for text in [
            "51-[\"a\",{\"_placeholder\":true,\"num\":1}]",
            "50-[\"a\",{\"_placeholder\":true,\"num\":0}]",
            "51-[\"a\",{\"deep\":[[{\"_placeholder\":true,\"num\":5}]]}]",
            "61-1[{\"_placeholder\":true,\"num\":-1}]",
            "61-1[{\"_placeholder\":true,\"num\":0.5}]",
            "61-1[{\"_placeholder\":true,\"num\":\"0\"}]",
            "61-1[{\"_placeholder\":true}]",
        ] {
            assert_eq!(
                r.push_text(text),
                Err(PacketError::BadPlaceholder),
                "{text}"
            );
            assert!(!r.is_waiting());
        }
    }

    #[test]
    fn placeholder_deep_inside_data_is_accepted_when_in_range() {
        let mut r = reassembler();
        let text = "52-[\"a\",{\"x\":[1,{\"y\":{\"_placeholder\":true,\"num\":1}}]},{\"_placeholder\":true,\"num\":0}]";
        assert_eq!(r.push_text(text), Ok(None));
    }

    #[test]
    fn objects_whose_placeholder_flag_is_not_true_are_plain_data() {
        let mut r = reassembler();
        let text = "50-[\"a\",{\"_placeholder\":false,\"num\":9},{\"_placeholder\":1}]";
        assert!(r.push_text(text).expect("valid").is_some());
    }

    #[test]
    fn completed_packet_reencodes_to_the_text_that_started_it() {
        let text = "52-/admin,3[\"file\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]";
        let mut r = reassembler();
        assert_eq!(r.push_text(text), Ok(None));
        assert_eq!(r.push_binary(Bytes::from_static(b"a")), Ok(None));
        let packet = r
            .push_binary(Bytes::from_static(b"b"))
            .expect("awaited")
            .expect("complete");
        let mut out = Vec::new();
        encode_into(&packet, &mut out);
        assert_eq!(out, text.as_bytes());
    }
}
