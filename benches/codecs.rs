//! Criterion benches of the wire codecs on typical chat traffic: Engine.IO (`src/engineio/packet.rs`)
//! and Socket.IO (`src/socketio/packet.rs`, `src/socketio/mod.rs`) decode and encode of the
//! packets a chat connection sends and receives most — a `chatMessage` with an ack id, a
//! `newMessage` broadcast, an ack, a polling body.
//!
//! `cargo bench --bench codecs`; results and the machine in benches/RESULTS.md.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

use readrealm_chat::engineio::packet::{decode_payload, decode_text, encode_payload, Frame};
use readrealm_chat::socketio::packet::{decode, encode_into, Limits, Packet};
use readrealm_chat::socketio::packet_frames;

/// What a client sends for `socket.emitWithAck("chatMessage", …)`: Engine.IO `4`, Socket.IO
/// event `2` with ack id 12.
const CHAT_MESSAGE_WS: &str = r#"4212["chatMessage",{"bookId":2701,"userId":"u-17","username":"Ishmael","content":"Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse."}]"#;

fn message_json() -> serde_json::Value {
    json!({
        "_id": "0193f0c2a1b2000000000001",
        "bookId": 2701,
        "userId": "u-17",
        "username": "Ishmael",
        "content": "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse.",
        "createdAt": "2026-11-24T12:00:00.000Z",
        "updatedAt": "2026-11-24T12:00:00.000Z"
    })
}

fn engineio(c: &mut Criterion) {
    let mut g = c.benchmark_group("engineio");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_text chatMessage", |b| {
        b.iter(|| decode_text(black_box(CHAT_MESSAGE_WS)))
    });
    // A polling POST: a pong and two messages.
    let body = format!("3\x1e{CHAT_MESSAGE_WS}\x1e{CHAT_MESSAGE_WS}");
    g.bench_function("decode_payload pong+2 messages", |b| {
        b.iter(|| decode_payload(black_box(body.as_bytes())))
    });
    // A polling GET answer: ten queued newMessage frames.
    let mut text = Vec::new();
    text.push(b'4');
    encode_into(
        &Packet::event("/", json!(["newMessage", message_json()]), None, Vec::new()),
        &mut text,
    );
    let frame = Frame::Text(Bytes::from(text));
    let frames: Vec<Frame> = std::iter::repeat_n(frame, 10).collect();
    let mut out = Vec::with_capacity(4096);
    g.bench_function("encode_payload 10 newMessage frames", |b| {
        b.iter(|| {
            out.clear();
            encode_payload(black_box(&frames), &mut out);
            out.len()
        })
    });
    g.finish();
}

fn socketio(c: &mut Criterion) {
    let mut g = c.benchmark_group("socketio");
    g.throughput(Throughput::Elements(1));
    let limits = Limits::default();
    // The Socket.IO text inside the Engine.IO message (after the `4`).
    let text = CHAT_MESSAGE_WS.get(1..).unwrap_or_default();
    g.bench_function("decode chatMessage with ack", |b| {
        b.iter(|| decode(black_box(text), &limits))
    });
    let new_message = Packet::event("/", json!(["newMessage", message_json()]), None, Vec::new());
    let mut out = Vec::with_capacity(512);
    g.bench_function("encode_into newMessage", |b| {
        b.iter(|| {
            out.clear();
            encode_into(black_box(&new_message), &mut out);
            out.len()
        })
    });
    g.bench_function("packet_frames newMessage", |b| {
        b.iter(|| packet_frames(black_box(&new_message)))
    });
    let ack = Packet::ack(
        "/",
        12,
        json!([{ "ok": true, "message": message_json() }]),
        Vec::new(),
    );
    g.bench_function("packet_frames chatMessage ack", |b| {
        b.iter(|| packet_frames(black_box(&ack)))
    });
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
    targets = engineio, socketio
}
criterion_main!(benches);
