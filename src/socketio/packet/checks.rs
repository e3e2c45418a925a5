//! The round-trip check of the Socket.IO packet codec (its parent's `decode` and
//! `encode_into`) and attachment reassembly (`socketio::binary::Reassembler`): the
//! `sio_packet` fuzz target, its regression replay (`tests/fuzz_regressions.rs`) and the
//! codec's unit tests all call [`check`]. Built only for tests and with the `checks` feature
//! (the fuzz build and `tests/` turn it on). Also owns [`same_value`], the JSON comparison
//! every round trip through this codec uses (the chat payload and `sio_connection` checks
//! too).
//!
//! The input is a sequence of records, each one Engine.IO message:
//!
//! ```text
//! tag: u8            bit 0: 0 = text message, 1 = binary message
//!                    bit 1: 0 = one length byte follows, 1 = two (little-endian)
//! len: u8 | u16le
//! body: len bytes    (fewer if the input ends; text is taken as lossy UTF-8)
//! ```
//!
//! Every record goes to one [`Reassembler`], and every text record also goes straight to
//! [`decode`]. A model of the reassembler (waiting or not, attachments still due) rides
//! along. Beyond "never panics", it asserts:
//!
//! - `decode` announces at most `max_attachments`, and a count only on binary kinds; a count
//!   over the limit is `TooManyAttachments`;
//! - the reassembler refuses text exactly when it is waiting (`UnexpectedText`), binary
//!   exactly when not (`UnexpectedAttachment`); otherwise it accepts a text exactly when
//!   `decode` does and every placeholder (`{"_placeholder":true,"num":n}`) has an integer
//!   `n` below the announced count (else `BadPlaceholder`), and a packet announcing `N`
//!   attachments completes on exactly the `N`th binary message, carrying those messages in
//!   order; a refused message leaves the reassembler's state as it was;
//! - every packet that comes out, re-encoded with [`encode_into`] and fed to a fresh
//!   reassembler (text, then its attachments), comes back equal; straight from `decode`
//!   (with stand-in attachments) it re-decodes equal. Numbers compare with
//!   [`same_value`].

// A check reports a broken invariant by panicking (libFuzzer and the regression test catch the
// panic and keep the input): the crate's no-panic lints do not apply here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::Bytes;
use serde_json::Value;

use crate::socketio::binary::Reassembler;
use crate::socketio::packet::{decode, encode_into, Limits, Packet, PacketError};

/// Check the codec on `input` (the module doc says how); panics when an invariant fails.
pub fn check(input: &[u8]) {
    let limits = Limits::default();
    let mut reassembler = Reassembler::new(limits);
    // The model: attachments still due, and those received, for the packet being completed.
    let mut due: Option<(usize, Vec<Bytes>)> = None;
    let mut rest = input;
    while let Some((&tag, after)) = rest.split_first() {
        let (len, after) = if tag & 2 == 0 {
            match after.split_first() {
                Some((&n, after)) => (usize::from(n), after),
                None => (0, after),
            }
        } else {
            match after {
                [lo, hi, after @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), after),
                _ => (0, &[][..]),
            }
        };
        let (body, after) = after.split_at(len.min(after.len()));
        rest = after;

        let was_waiting = reassembler.is_waiting();
        assert_eq!(was_waiting, due.is_some());
        if tag & 1 == 0 {
            let text = String::from_utf8_lossy(body);
            let decoded = decode(&text, &limits);
            let expected = match &decoded {
                Ok((packet, count)) => {
                    assert!(*count <= limits.max_attachments);
                    assert!(*count == 0 || packet.kind.is_binary());
                    let mut packet = packet.clone();
                    packet.attachments = (0..*count).map(|i| vec![i as u8].into()).collect();
                    assert_round_trips(&packet, &limits, false);
                    if packet.kind.is_binary() && !placeholders_below(packet.data.as_ref(), *count)
                    {
                        Err(PacketError::BadPlaceholder)
                    } else {
                        Ok(*count)
                    }
                }
                Err(e) => {
                    if *e == PacketError::TooManyAttachments {
                        assert!(announced(&text).is_none_or(|n| n > limits.max_attachments as u64));
                    }
                    Err(e.clone())
                }
            };
            let got = reassembler.push_text(&text);
            if was_waiting {
                assert_eq!(got, Err(PacketError::UnexpectedText), "{text:?}");
                assert!(reassembler.is_waiting());
                continue;
            }
            match (got, expected) {
                (Ok(Some(packet)), Ok(count)) => {
                    assert_eq!(count, 0, "{text:?} completed before its attachments");
                    assert!(packet.attachments.is_empty());
                    assert_round_trips(&packet, &limits, true);
                }
                (Ok(None), Ok(count)) => {
                    assert!(count > 0, "{text:?} waits for no attachment");
                    assert!(reassembler.is_waiting());
                    due = Some((count, Vec::new()));
                }
                (Err(got), Err(expected)) => {
                    assert_eq!(got, expected, "{text:?}");
                    assert!(!reassembler.is_waiting());
                }
                (got, expected) => panic!("{text:?}: reassembler {got:?}, expected {expected:?}"),
            }
        } else {
            let bytes = Bytes::copy_from_slice(body);
            let got = reassembler.push_binary(bytes.clone());
            match due.take() {
                None => {
                    assert_eq!(got, Err(PacketError::UnexpectedAttachment));
                    assert!(!reassembler.is_waiting());
                }
                Some((count, mut received)) => {
                    received.push(bytes);
                    if received.len() == count {
                        let packet = match got {
                            Ok(Some(packet)) => packet,
                            other => panic!("attachment {count} of {count} gave {other:?}"),
                        };
                        assert!(!reassembler.is_waiting());
                        assert_eq!(packet.attachments, received);
                        assert_round_trips(&packet, &limits, true);
                    } else {
                        assert_eq!(got, Ok(None));
                        assert!(reassembler.is_waiting());
                        due = Some((count, received));
                    }
                }
            }
        }
    }
}

/// The attachment count a binary packet's text announces, if it has digits there.
fn announced(text: &str) -> Option<u64> {
    let digits: String = text
        .get(1..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if digits.is_empty() {
        return None;
    }
    // Too large for a u64 is over any limit.
    Some(digits.parse().unwrap_or(u64::MAX))
}

/// Whether every placeholder object in `data` has an integer `num` below `count`; written
/// apart from the reassembler's own walk (recursive, not with a stack).
fn placeholders_below(data: Option<&Value>, count: usize) -> bool {
    fn walk(value: &Value, count: usize) -> bool {
        match value {
            Value::Array(items) => items.iter().all(|v| walk(v, count)),
            Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => map
                .get("num")
                .and_then(Value::as_u64)
                .is_some_and(|n| n < count as u64),
            Value::Object(map) => map.values().all(|v| walk(v, count)),
            _ => true,
        }
    }
    data.is_none_or(|d| walk(d, count))
}

/// Encode `packet`, decode it again (through a fresh reassembler when `reassemble`, which
/// also checks placeholders; with plain [`decode`] otherwise) and assert the result equals it.
fn assert_round_trips(packet: &Packet, limits: &Limits, reassemble: bool) {
    let mut out = Vec::new();
    encode_into(packet, &mut out);
    let text = std::str::from_utf8(&out).expect("the encoder writes UTF-8");
    let back = if reassemble {
        let mut r = Reassembler::new(*limits);
        let mut back = r
            .push_text(text)
            .unwrap_or_else(|e| panic!("re-encoded {text:?} refused: {e}"));
        for attachment in &packet.attachments {
            assert!(back.is_none(), "{text:?} completed before its attachments");
            back = r
                .push_binary(attachment.clone())
                .unwrap_or_else(|e| panic!("attachment of {text:?} refused: {e}"));
        }
        back.unwrap_or_else(|| panic!("{text:?} never completed"))
    } else {
        let (mut back, count) =
            decode(text, limits).unwrap_or_else(|e| panic!("re-encoded {text:?} refused: {e}"));
        assert_eq!(count, packet.attachments.len(), "{text:?}");
        back.attachments = packet.attachments.clone();
        back
    };
    assert_eq!(back.kind, packet.kind, "{text:?}");
    assert_eq!(back.nsp, packet.nsp, "{text:?}");
    assert_eq!(back.id, packet.id, "{text:?}");
    assert_eq!(back.attachments, packet.attachments, "{text:?}");
    let same = match (&back.data, &packet.data) {
        (Some(a), Some(b)) => same_value(a, b),
        (None, None) => true,
        _ => false,
    };
    assert!(same, "{text:?}: {:?} != {:?}", back.data, packet.data);
}

/// JSON equality in which numbers compare by value when either side is a float (within a few
/// ulps: a float printed and parsed again may come back as a neighbour when the parser's
/// rounding differs from the printer's) and object keys compare in order.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => close(x, y),
                _ => false,
            }
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, vy))
        }
        _ => a == b,
    }
}

fn close(x: f64, y: f64) -> bool {
    // Subnormals lose relative precision, so anything that tiny counts as equal.
    let diff = (x - y).abs();
    x == y || diff <= 1e-13 * x.abs().max(y.abs()) || diff <= f64::MIN_POSITIVE
}
