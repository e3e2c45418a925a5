//! The client side of Engine.IO v4 / Socket.IO v5 text packets, as far as this tool needs:
//! building `42[...]` events with ack ids, recognising acks and events by name, and the
//! `t=<nanos> q=<seq> s=<sender> r=<run>` content that carries a send timestamp through a
//! server. Everything here works on borrowed strings and never panics on server input.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME): the clock shared by every loadgen process.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `42<id>["joinRoom",{...}]` with an ack id.
pub fn join_room(ack: u64, book: u64, user: &str, name: &str) -> String {
    format!(r#"42{ack}["joinRoom",{{"bookId":{book},"userId":"{user}","username":"{name}"}}]"#)
}

/// `42<id>["chatMessage",{...}]` with an ack id.
pub fn chat_message(ack: u64, book: u64, user: &str, name: &str, content: &str) -> String {
    format!(
        r#"42{ack}["chatMessage",{{"bookId":{book},"userId":"{user}","username":"{name}","content":"{content}"}}]"#
    )
}

/// The timestamped content of one fan-out message.
pub fn stamp(t_ns: u64, seq: u32, sender: u32, run: u32) -> String {
    format!("t={t_ns} q={seq} s={sender} r={run}")
}

/// The fields of a [`stamp`] read back out of a delivered packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub t_ns: u64,
    pub seq: u32,
    pub sender: u32,
    pub run: u32,
}

/// Reads the stamp out of a `2["newMessage",{..."content":"t=.. q=.. s=.. r=.."...}]` packet
/// (the Engine.IO `4` already stripped). `None` for any other packet or a foreign content.
pub fn parse_new_message(packet: &str) -> Option<Stamp> {
    let head = packet.get(..24)?;
    if !head.starts_with("2[") || !head.contains("\"newMessage\"") {
        return None;
    }
    let at = packet.find("\"content\":")?;
    let rest = packet[at + 10..].trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    parse_stamp(&rest[..end])
}

/// Parses `t=<u64> q=<u32> s=<u32> r=<u32>`.
pub fn parse_stamp(content: &str) -> Option<Stamp> {
    let mut parts = content.split(' ');
    let t_ns = parts.next()?.strip_prefix("t=")?.parse().ok()?;
    let seq = parts.next()?.strip_prefix("q=")?.parse().ok()?;
    let sender = parts.next()?.strip_prefix("s=")?.parse().ok()?;
    let run = parts.next()?.strip_prefix("r=")?.parse().ok()?;
    Some(Stamp {
        t_ns,
        seq,
        sender,
        run,
    })
}

/// An ack packet `3<id>[...]`: its id and whether it reports `"ok":true`.
pub fn parse_ack(packet: &str) -> Option<(u64, bool)> {
    let rest = packet.strip_prefix('3')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = rest.get(..digits)?.parse().ok()?;
    let body = &rest[digits..];
    Some((
        id,
        body.contains("\"ok\":true") || body.contains("\"ok\": true"),
    ))
}

/// The error code of a failed ack, e.g. `rate_limited`, or `"unknown"`.
pub fn ack_error_code(packet: &str) -> &str {
    packet
        .find("\"code\":")
        .and_then(|at| {
            let rest = packet[at + 7..].trim_start().strip_prefix('"')?;
            rest.find('"').map(|end| &rest[..end])
        })
        .unwrap_or("unknown")
}

/// True for a `2["<name>",...]` event packet.
pub fn is_event(packet: &str, name: &str) -> bool {
    packet
        .strip_prefix("2[\"")
        .and_then(|r| r.strip_prefix(name))
        .is_some_and(|r| r.starts_with('"'))
}

/// The number of messages in a `previousMessages` packet (counted by their `_id` keys).
pub fn count_messages(packet: &str) -> usize {
    packet.matches("\"_id\"").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_through_a_delivered_packet() {
        let content = stamp(1_732_449_600_123_456_789, 42, 7, 99);
        let packet = format!(
            r#"2["newMessage",{{"_id":"6743f0c2a1b2c3d4e5f60718","bookId":1,"userId":"u","username":"n","content":"{content}","createdAt":"x"}}]"#
        );
        assert_eq!(
            parse_new_message(&packet),
            Some(Stamp {
                t_ns: 1_732_449_600_123_456_789,
                seq: 42,
                sender: 7,
                run: 99
            })
        );
        assert_eq!(
            parse_new_message(r#"2["userJoined",{"username":"a"}]"#),
            None
        );
        assert_eq!(parse_new_message("2["), None);
    }

    #[test]
    fn acks_are_read_with_their_outcome() {
        assert_eq!(
            parse_ack(r#"312[{"ok":true,"message":{}}]"#),
            Some((12, true))
        );
        let failed = r#"30[{"ok":false,"error":{"code":"rate_limited","message":"slow"}}]"#;
        assert_eq!(parse_ack(failed), Some((0, false)));
        assert_eq!(ack_error_code(failed), "rate_limited");
        assert_eq!(parse_ack("2[\"x\"]"), None);
    }

    #[test]
    fn events_are_recognised_by_exact_name() {
        assert!(is_event(r#"2["previousMessages",[]]"#, "previousMessages"));
        assert!(!is_event(
            r#"2["previousMessagesX",[]]"#,
            "previousMessages"
        ));
        assert_eq!(
            count_messages(r#"2["previousMessages",[{"_id":"a"},{"_id":"b"}]]"#),
            2
        );
    }
}
