//! Criterion benches of the chat's per-message CPU work outside the store:
//!
//! - `chatMessage` payload parsing and validation: serde_json (what the server does today: the
//!   Socket.IO decoder parses the event array into a `serde_json::Value`, then
//!   `chat::validate::message` checks it) against simd-json, both as a drop-in parser for the
//!   same `Value` and parsing into simd-json's borrowed value with the same rules checked on it
//!   (`simd` below, written here to measure whether a switch would pay);
//! - encoding one broadcast: the work done once per stored message in the chat's turn end
//!   (`src/chat/mod.rs`): the Message JSON, the `newMessage` packet's frames (shared by every
//!   recipient, `src/server/sessions.rs` `broadcast_from`), and the sender's ack.
//!
//! `cargo bench --bench chat`; results and the machine in benches/RESULTS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};

use readrealm_chat::chat::message::message_value;
use readrealm_chat::chat::validate::{self, MessageRequest};
use readrealm_chat::socketio::handler::event_array;
use readrealm_chat::socketio::{packet_frames, Packet};
use readrealm_chat::store::{MessageId, StoredMessage, StoredValue};

const MAX_CONTENT: usize = 4000;

/// The event array of typical `chatMessage`s: a short line, a paragraph with non-ASCII text,
/// and the longest content allowed.
fn payloads() -> Vec<(&'static str, String)> {
    let short = json!(["chatMessage", {
        "bookId": 2701, "userId": "u-17", "username": "Ishmael", "content": "Call me Ishmael."
    }]);
    let paragraph = json!(["chatMessage", {
        "bookId": "2701", "userId": "u-1742", "username": "Père Mapple",
        "content": "Whenever I find myself growing grim about the mouth; whenever it is a damp, drizzly November in my soul — \
                    then, I account it high time to get to sea as soon as I can. «Ça alors», dit-il. 📚"
    }]);
    let longest = json!(["chatMessage", {
        "bookId": 2701, "userId": "u-17", "username": "Ishmael", "content": "x".repeat(MAX_CONTENT)
    }]);
    vec![
        ("short", short.to_string()),
        ("paragraph", paragraph.to_string()),
        ("4000 chars", longest.to_string()),
    ]
}

/// Today's path: serde_json into a `Value`, then the chat's validation.
fn serde_path(text: &str) -> Option<MessageRequest> {
    let value: Value = serde_json::from_str(text).ok()?;
    validate::message(value.as_array()?.get(1), MAX_CONTENT).ok()
}

/// simd-json as a drop-in parser for the same `serde_json::Value` (it needs a mutable copy).
fn simd_serde_path(text: &str, buf: &mut Vec<u8>) -> Option<MessageRequest> {
    buf.clear();
    buf.extend_from_slice(text.as_bytes());
    let value: Value = simd_json::serde::from_slice(buf).ok()?;
    validate::message(value.as_array()?.get(1), MAX_CONTENT).ok()
}

/// simd-json's borrowed value, with `chat::validate`'s rules checked on it directly.
mod simd {
    use simd_json::borrowed::Value;
    use simd_json::StaticNode;

    use readrealm_chat::chat::validate::{
        MessageRequest, MAX_BOOK_ID, MAX_USERNAME_CHARS, MAX_USER_ID_CHARS,
    };

    pub fn parse(
        text: &str,
        buf: &mut Vec<u8>,
        buffers: &mut simd_json::Buffers,
    ) -> Option<MessageRequest> {
        buf.clear();
        buf.extend_from_slice(text.as_bytes());
        let value = simd_json::borrowed::to_value_with_buffers(buf, buffers).ok()?;
        let Value::Array(items) = value else {
            return None;
        };
        let Some(Value::Object(fields)) = items.get(1) else {
            return None;
        };
        Some(MessageRequest {
            book_id: book_id(fields.get("bookId"))?,
            user_id: user_id(fields.get("userId"))?,
            username: username(fields.get("username"))?,
            content: content(fields.get("content"), super::MAX_CONTENT)?,
        })
    }

    fn book_id(v: Option<&Value>) -> Option<u64> {
        let id = match v? {
            Value::Static(StaticNode::U64(n)) => *n,
            Value::Static(StaticNode::I64(n)) => u64::try_from(*n).ok()?,
            Value::Static(StaticNode::F64(f))
                if f.fract() == 0.0 && *f >= 1.0 && *f <= MAX_BOOK_ID as f64 =>
            {
                *f as u64
            }
            Value::String(s)
                if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                s.parse().ok()?
            }
            _ => return None,
        };
        (1..=MAX_BOOK_ID).contains(&id).then_some(id)
    }

    fn user_id(v: Option<&Value>) -> Option<String> {
        let id = match v? {
            Value::String(s) => s.to_string(),
            Value::Static(StaticNode::U64(n)) => n.to_string(),
            Value::Static(StaticNode::I64(n)) => n.to_string(),
            _ => return None,
        };
        let n = id.chars().count();
        (n > 0 && n <= MAX_USER_ID_CHARS).then_some(id)
    }

    fn username(v: Option<&Value>) -> Option<String> {
        let Value::String(s) = v? else { return None };
        let name = s.trim();
        let n = name.chars().count();
        (n > 0 && n <= MAX_USERNAME_CHARS && !name.chars().any(char::is_control))
            .then(|| name.to_owned())
    }

    fn content(v: Option<&Value>, max: usize) -> Option<String> {
        let Value::String(s) = v? else { return None };
        let text = s.trim();
        let n = text.chars().count();
        let ok = n > 0
            && n <= max
            && !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t');
        ok.then(|| text.to_owned())
    }
}

fn parse_and_validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("chatMessage parse+validate");
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut buffers = simd_json::Buffers::default();
    for (name, text) in payloads() {
        // The three paths must agree before they are timed.
        let expected = serde_path(&text).expect("a valid chatMessage");
        assert_eq!(simd_serde_path(&text, &mut buf).as_ref(), Some(&expected));
        assert_eq!(
            simd::parse(&text, &mut buf, &mut buffers).as_ref(),
            Some(&expected)
        );
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::new("serde_json", name), &text, |b, t| {
            b.iter(|| serde_path(black_box(t)))
        });
        g.bench_with_input(
            BenchmarkId::new("simd-json serde Value", name),
            &text,
            |b, t| b.iter(|| simd_serde_path(black_box(t), &mut buf)),
        );
        g.bench_with_input(
            BenchmarkId::new("simd-json borrowed", name),
            &text,
            |b, t| b.iter(|| simd::parse(black_box(t), &mut buf, &mut buffers)),
        );
    }
    g.finish();
}

fn stored(content: &str) -> StoredMessage {
    StoredMessage {
        book_id: 2701,
        seq: 123_456,
        value: StoredValue {
            created_ms: 1_795_521_600_000,
            id: MessageId([0x01, 0x93, 0xf0, 0xc2, 0xa1, 0xb2, 0, 0, 0, 0, 0, 1]),
            user_id: "u-17".into(),
            username: "Ishmael".into(),
            content: content.into(),
        },
    }
}

fn broadcast(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast encode");
    g.throughput(Throughput::Elements(1));
    for (name, content) in [
        ("short", "Call me Ishmael.".to_owned()),
        ("4000 chars", "x".repeat(MAX_CONTENT)),
    ] {
        let message = stored(&content);
        // The newMessage frames, once per broadcast whatever the room's size.
        g.bench_with_input(
            BenchmarkId::new("newMessage frames", name),
            &message,
            |b, m| {
                b.iter(|| {
                    let body = message_value(black_box(m));
                    let packet =
                        Packet::event("/", event_array("newMessage", vec![body]), None, Vec::new());
                    packet_frames(&packet)
                })
            },
        );
        // Everything the turn end does per stored message: the broadcast and the sender's ack.
        g.bench_with_input(
            BenchmarkId::new("newMessage frames + ack frames", name),
            &message,
            |b, m| {
                b.iter(|| {
                    let body = message_value(black_box(m));
                    let packet = Packet::event(
                        "/",
                        event_array("newMessage", vec![body.clone()]),
                        None,
                        Vec::new(),
                    );
                    let frames = packet_frames(&packet);
                    let ack = Packet::ack(
                        "/",
                        12,
                        Value::Array(vec![json!({ "ok": true, "message": body })]),
                        Vec::new(),
                    );
                    (frames, packet_frames(&ack))
                })
            },
        );
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = parse_and_validate, broadcast
}
criterion_main!(benches);
