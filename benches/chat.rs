//! Criterion benches of the chat's per-message CPU work outside the store:
//!
//! - `chatMessage` payload parsing and validation, from the event array's text to a checked
//!   `MessageRequest`: serde_json into the typed, borrowed `validate::Payload` (the server's
//!   path: `Event::first_arg`), the same typed structs through simd-json's serde deserializer
//!   (which needs a mutable copy of the text), and, for reference, the path before typed
//!   decoding (serde_json into a `serde_json::Value` tree, then the same rules);
//! - a `chatMessage` whose content is 200,000 numbers (about 400 kB), refused for its type:
//!   what it costs to answer it on the typed paths;
//! - encoding one broadcast: the work done once per stored message in the chat's turn end
//!   (`src/chat/mod.rs`): the Message JSON, the `newMessage` packet's frames (shared by every
//!   recipient, `src/server/sessions.rs` `broadcast_from`), and the sender's ack; before (a
//!   `Value` tree per message) and since the message's text is encoded once and shared.
//!
//! `cargo bench --bench chat`; results and the machine in benches/RESULTS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::Deserialize;
use serde_json::{json, Value};

use readrealm_chat::chat::errors::ChatError;
use readrealm_chat::chat::message::{encode_message, message_ack_json, message_value};
use readrealm_chat::chat::validate::{self, MessageRequest, Payload};
use readrealm_chat::socketio::event_json::{first_arg, FirstArg};
use readrealm_chat::socketio::handler::{event_array, event_array_json};
use readrealm_chat::socketio::packet::{decode_deferred, Limits};
use readrealm_chat::socketio::Event;
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

/// The server's path: serde_json straight into the typed payload, then the chat's rules.
fn serde_typed(text: &str) -> Result<MessageRequest, ChatError> {
    let payload = first_arg::<Payload<'_>>(text).ok().flatten();
    validate::message(payload.as_ref(), MAX_CONTENT)
}

/// simd-json's serde deserializer into the same typed payload (it needs a mutable copy).
fn simd_typed(text: &str, buf: &mut Vec<u8>) -> Result<MessageRequest, ChatError> {
    buf.clear();
    buf.extend_from_slice(text.as_bytes());
    let payload = simd_json::serde::from_slice::<FirstArg<Payload<'_>>>(buf)
        .ok()
        .and_then(|FirstArg(arg)| arg);
    validate::message(payload.as_ref(), MAX_CONTENT)
}

/// The whole server path from the Socket.IO text: `decode_deferred` (normalise, depth check,
/// one pass for shape and name), the `Event` (its name read), then `serde_typed`'s work.
fn server_path(packet: &str) -> Result<MessageRequest, ChatError> {
    let limits = Limits::default();
    let json = decode_deferred(packet, &limits)
        .ok()
        .and_then(|(p, _)| p.json)
        .unwrap_or_default();
    let event = Event::from_json(json, Vec::new(), Some(1));
    let payload = event.first_arg::<Payload<'_>>().ok().flatten();
    validate::message(payload.as_ref(), MAX_CONTENT)
}

/// The path before typed decoding: a `serde_json::Value` tree of the whole array first.
fn serde_tree(text: &str) -> Result<MessageRequest, ChatError> {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let payload = value
        .as_array()
        .and_then(|items| items.get(1))
        .and_then(|arg| Payload::deserialize(arg).ok());
    validate::message(payload.as_ref(), MAX_CONTENT)
}

fn parse_and_validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("chatMessage parse+validate");
    let mut buf = Vec::with_capacity(512 * 1024);
    let numbers = vec!["0"; 200_000].join(",");
    let refused = format!(
        r#"["chatMessage",{{"bookId":2701,"userId":"u1","username":"Ann","content":[{numbers}]}}]"#
    );
    let mut cases = payloads();
    cases.push(("200k numbers (refused)", refused));
    for (name, text) in cases {
        // The paths must agree before they are timed.
        let expected = serde_typed(&text);
        assert_eq!(expected.is_ok(), !name.contains("refused"), "{name}");
        assert_eq!(simd_typed(&text, &mut buf), expected);
        assert_eq!(serde_tree(&text), expected);
        let packet = format!("21{text}");
        assert_eq!(server_path(&packet), expected);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::new("serde_json typed", name), &text, |b, t| {
            b.iter(|| serde_typed(black_box(t)))
        });
        g.bench_with_input(BenchmarkId::new("simd-json typed", name), &text, |b, t| {
            b.iter(|| simd_typed(black_box(t), &mut buf))
        });
        g.bench_with_input(
            BenchmarkId::new("server path from packet text", name),
            &packet,
            |b, t| b.iter(|| server_path(black_box(t))),
        );
        g.bench_with_input(
            BenchmarkId::new("serde_json Value tree (before)", name),
            &text,
            |b, t| b.iter(|| serde_tree(black_box(t))),
        );
    }
    g.finish();
}

fn stored(content: &str) -> StoredMessage {
    StoredMessage {
        book_id: readrealm_chat::book::BookId(2701),
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
        // The same since the message is encoded once (`encode_message`): its text is copied
        // into the newMessage frame and the ack, never re-encoded.
        g.bench_with_input(
            BenchmarkId::new("encoded once: newMessage frames + ack frames", name),
            &message,
            |b, m| {
                b.iter(|| {
                    let text = encode_message(black_box(m));
                    let packet =
                        Packet::event_json("/", event_array_json("newMessage", &[&text]), None);
                    let frames = packet_frames(&packet);
                    let ack = Packet::ack_json("/", 12, message_ack_json(&text));
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
