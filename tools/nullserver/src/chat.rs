//! The Engine.IO / Socket.IO text packets tools/loadgen's fan-out sends, and the answers it
//! waits for, as plain strings: the open packet, the CONNECT answer, the `joinRoom` ack, and
//! for a `chatMessage` its ack and the `newMessage` every member of the room gets (the sender
//! included, as docs/API.md says).
//!
//! Deliberately not done (see the crate doc): JSON is not parsed. A field is the text between
//! `"name":"` (or `"name":` for the number `bookId`) and the next `"` (or non-digit), so an
//! escaped quote inside a value would cut it short; loadgen's values hold none. Nothing is
//! checked (lengths, rate, membership of the room written to).

use std::time::{SystemTime, UNIX_EPOCH};

/// What one Engine.IO text packet from the client asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `40` or `40{…}`: the Socket.IO CONNECT to the main namespace.
    Connect,
    /// `42<ack>["joinRoom",{"bookId":N,…}]`.
    Join { ack: &'a str, book: u64 },
    /// `42<ack>["chatMessage",{"bookId":N,"userId":…,"username":…,"content":…}]`.
    Chat {
        ack: &'a str,
        book: u64,
        user: &'a str,
        name: &'a str,
        content: &'a str,
    },
    /// Anything else (a pong `3`, other events): ignored.
    Other,
}

/// Reads what a packet asks for; never panics on any input.
pub fn parse(packet: &str) -> Packet<'_> {
    if packet == "40" || packet.starts_with("40{") {
        return Packet::Connect;
    }
    let Some(rest) = packet.strip_prefix("42") else {
        return Packet::Other;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (ack, body) = rest.split_at(digits);
    let Some(book) = number(body, "\"bookId\":") else {
        return Packet::Other;
    };
    if body.starts_with("[\"joinRoom\"") {
        Packet::Join { ack, book }
    } else if body.starts_with("[\"chatMessage\"") {
        match (
            string(body, "\"userId\":\""),
            string(body, "\"username\":\""),
            string(body, "\"content\":\""),
        ) {
            (Some(user), Some(name), Some(content)) => Packet::Chat {
                ack,
                book,
                user,
                name,
                content,
            },
            _ => Packet::Other,
        }
    } else {
        Packet::Other
    }
}

/// The digits after `key`.
fn number(body: &str, key: &str) -> Option<u64> {
    let at = body.find(key)? + key.len();
    let rest = body.get(at..)?;
    let end = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest.get(..end)?.parse().ok()
}

/// The text after `key` up to the next `"`.
fn string<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let at = body.find(key)? + key.len();
    let rest = body.get(at..)?;
    rest.get(..rest.find('"')?)
}

/// The Engine.IO open packet of a WebSocket-only session.
pub fn open(sid: &str) -> String {
    format!(
        r#"0{{"sid":"{sid}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
    )
}

/// The answer to a CONNECT to the main namespace.
pub fn connected(sid: &str) -> String {
    format!(r#"40{{"sid":"{sid}"}}"#)
}

/// The `joinRoom` ack.
pub fn join_ack(ack: &str) -> String {
    format!(r#"43{ack}[{{"ok":true}}]"#)
}

/// A stored-message object as docs/API.md's `Message`, with `id` as its `_id` and the time now.
pub fn message(id: u64, book: u64, user: &str, name: &str, content: &str) -> String {
    let now = iso_now();
    format!(
        r#"{{"_id":"{id:024x}","bookId":{book},"userId":"{user}","username":"{name}","content":"{content}","createdAt":"{now}","updatedAt":"{now}"}}"#
    )
}

/// The `newMessage` event packet carrying `message`.
pub fn new_message(message: &str) -> String {
    format!(r#"42["newMessage",{message}]"#)
}

/// The `chatMessage` ack carrying `message`.
pub fn chat_ack(ack: &str, message: &str) -> String {
    format!(r#"43{ack}[{{"ok":true,"message":{message}}}]"#)
}

/// The time now as ISO-8601 UTC with milliseconds, `2026-11-30T20:00:00.000Z`.
fn iso_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadgen_packets_are_read() {
        assert_eq!(parse("40"), Packet::Connect);
        assert_eq!(
            parse(r#"420["joinRoom",{"bookId":1000007,"userId":"u1","username":"u1"}]"#),
            Packet::Join {
                ack: "0",
                book: 1_000_007
            }
        );
        assert_eq!(
            parse(
                r#"4212["chatMessage",{"bookId":5,"userId":"u2","username":"n2","content":"t=1 q=2 s=3 r=4"}]"#
            ),
            Packet::Chat {
                ack: "12",
                book: 5,
                user: "u2",
                name: "n2",
                content: "t=1 q=2 s=3 r=4"
            }
        );
        assert_eq!(parse("3"), Packet::Other);
        assert_eq!(parse(r#"42["chatMessage",{"bookId":5}]"#), Packet::Other);
        assert_eq!(parse("42"), Packet::Other);
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_422), (2025, 11, 30));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
