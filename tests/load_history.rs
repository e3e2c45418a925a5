//! `loadHistory` over real sockets (docs/API.md, "Older history"): paging a room of 3,000
//! messages down to the first, each once; the request's checks and their error answers; a
//! cursor that is not one of the room's `_id`s; and a data directory of the older layout
//! (messages only, no `_id` index; written here with the rocksdb crate directly) that reads
//! the same after the server migrated it at open.
//!
//! Expected values come from what the poster was acknowledged, or from the messages this
//! test wrote itself, never from the pages under test.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use readrealm_chat::chat::limits::ChatLimits;
use readrealm_chat::chat::ChatApp;
use readrealm_chat::store::Store;
use serde_json::{json, Value};
use support::{
    quiet, start_server, ws_connect, ws_recv_skipping_pings, ws_send_text, TestServer, Ws, WsEvent,
};

const WAIT: Duration = Duration::from_secs(10);

/// One Socket.IO connection on `/` over WebSocket, keeping the packets that arrive.
struct Sio {
    ws: Ws,
    next_ack: u64,
    /// Event packets (`42...`) in arrival order, as text.
    events: Vec<String>,
}

impl Sio {
    fn connect(server: &TestServer) -> Sio {
        let mut ws = ws_connect(server.addr, "/socket.io/?EIO=4&transport=websocket")
            .expect("websocket opens");
        let open = text(&mut ws, WAIT).expect("open packet");
        assert!(open.starts_with('0'), "open packet, got {open}");
        ws_send_text(&mut ws, "40");
        let connected = text(&mut ws, WAIT).expect("CONNECT answer");
        assert!(connected.starts_with("40"), "CONNECT, got {connected}");
        Sio {
            ws,
            next_ack: 0,
            events: Vec::new(),
        }
    }

    /// Send `event` with an ack id; the id.
    fn send(&mut self, event: &str, payload: &Value) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        ws_send_text(&mut self.ws, &format!("42{id}{}", json!([event, payload])));
        id
    }

    /// Wait for ack `id` (events arriving meanwhile are kept); its first value.
    fn ack(&mut self, id: u64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let packet = text(&mut self.ws, remaining).unwrap_or_else(|| panic!("no ack {id}"));
            if let Some(rest) = packet.strip_prefix("43") {
                let digits = rest.chars().take_while(char::is_ascii_digit).count();
                if rest[..digits].parse::<u64>().ok() == Some(id) {
                    let args: Value = serde_json::from_str(&rest[digits..]).expect("ack JSON");
                    return args[0].clone();
                }
            } else if packet.starts_with("42") {
                self.events.push(packet);
            }
        }
    }

    fn call(&mut self, event: &str, payload: Value) -> Value {
        let id = self.send(event, &payload);
        self.ack(id)
    }

    fn join(&mut self, book: u64, user: &str) {
        let ack = self.call(
            "joinRoom",
            json!({ "bookId": book, "userId": user, "username": user }),
        );
        assert_eq!(ack["ok"], true, "joinRoom: {ack}");
    }

    /// Post `contents` without waiting between them; the acknowledged messages, in order.
    fn post_all(&mut self, book: u64, user: &str, contents: &[String]) -> Vec<Value> {
        let ids: Vec<u64> = contents
            .iter()
            .map(|content| {
                self.send(
                    "chatMessage",
                    &json!({ "bookId": book, "userId": user, "username": user, "content": content }),
                )
            })
            .collect();
        ids.into_iter()
            .map(|id| {
                let ack = self.ack(id);
                assert_eq!(ack["ok"], true, "chatMessage: {ack}");
                ack["message"].clone()
            })
            .collect()
    }

    /// The next event packet's text within `timeout`.
    fn next_event(&mut self, timeout: Duration) -> Option<String> {
        if !self.events.is_empty() {
            return Some(self.events.remove(0));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let packet = text(&mut self.ws, remaining)?;
            if packet.starts_with("42") {
                return Some(packet);
            }
        }
    }
}

/// The next text packet within `timeout` (pings answered), or None.
fn text(ws: &mut Ws, timeout: Duration) -> Option<String> {
    match ws_recv_skipping_pings(ws, timeout) {
        WsEvent::Text(text) => Some(text),
        WsEvent::Timeout => None,
        other => panic!("expected a text frame, got {other:?}"),
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    std::env::temp_dir().join(format!(
        "readrealm-load-history-{tag}-{:016x}",
        u64::from_le_bytes(bytes)
    ))
}

/// A chat server on two shards whose connections may post as fast as they like.
fn chat_server(store: &Arc<Store>) -> TestServer {
    let limits = ChatLimits {
        message_rate: 1_000_000.0,
        message_burst: 1_000_000.0,
        ..ChatLimits::default()
    };
    start_server(ChatApp::new(Arc::clone(store), limits), |c| {
        quiet(c);
        c.shards = 2;
    })
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["_id"].as_str().expect("_id").to_owned())
        .collect()
}

/// Page `book` from the newest to the first with `limit`; every page's messages, in order,
/// and how many pages it took. Each page's `hasMore` must be true but for the last.
fn walk(reader: &mut Sio, book: u64, limit: u64) -> (Vec<Value>, usize) {
    let mut all = Vec::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = json!({ "bookId": book, "limit": limit });
        if let Some(before) = &before {
            request["before"] = json!(before);
        }
        let answer = reader.call("loadHistory", request);
        assert_eq!(answer["ok"], true, "{answer}");
        pages += 1;
        let messages = answer["messages"].as_array().expect("messages").clone();
        let has_more = answer["hasMore"].as_bool().expect("hasMore is a bool");
        assert!(messages.len() as u64 <= limit);
        before = messages
            .last()
            .map(|m| m["_id"].as_str().expect("_id").to_owned());
        all.extend(messages);
        if !has_more {
            return (all, pages);
        }
        assert!(pages < 10_000, "paging never ends");
    }
}

/// 3,000 messages posted through the server; readers on both shards page the room from the
/// newest to the first, with limits 100 and 50 (the default), and get each message once, in
/// the order acknowledged (reversed), `hasMore` false only at the end.
#[test]
fn paging_a_room_of_three_thousand_walks_to_the_first_message_each_once() {
    const BOOK: u64 = 7001;
    let dir = temp_dir("walk");
    let store = Arc::new(Store::open(&dir, false).unwrap());
    let server = chat_server(&store);
    let mut poster = Sio::connect(&server);
    poster.join(BOOK, "poster");
    // Another room's messages interleave in the store and must not show up.
    let mut other = Sio::connect(&server);
    other.join(BOOK + 1, "other");
    let mut acked = Vec::new();
    for chunk in 0..30 {
        let contents: Vec<String> = (0..100)
            .map(|i| format!("line {} «ünïcode» \"q\"", chunk * 100 + i))
            .collect();
        acked.extend(poster.post_all(BOOK, "poster", &contents));
        other.post_all(BOOK + 1, "other", &contents[..5]);
    }
    assert_eq!(acked.len(), 3000);
    let expected: Vec<Value> = acked.iter().rev().cloned().collect();

    for (i, limit) in [(0, 100u64), (1, 50), (2, 7)] {
        let mut reader = Sio::connect(&server);
        reader.join(BOOK, &format!("reader-{i}"));
        let (all, pages) = walk(&mut reader, BOOK, limit);
        assert_eq!(pages as u64, 3000_u64.div_ceil(limit), "limit {limit}");
        assert_eq!(all.len(), 3000, "limit {limit}: each message once");
        assert_eq!(
            all, expected,
            "limit {limit}: the acked messages, newest first"
        );
    }
    // Without `limit`, 50.
    let mut reader = Sio::connect(&server);
    reader.join(BOOK, "default");
    let answer = reader.call("loadHistory", json!({ "bookId": BOOK }));
    assert_eq!(answer["messages"].as_array().map(Vec::len), Some(50));
    assert_eq!(answer["messages"], json!(expected[..50]));
    assert_eq!(answer["hasMore"], true);
    // Below the first message: an empty page, nothing more.
    let first = expected.last().unwrap()["_id"].clone();
    let answer = reader.call("loadHistory", json!({ "bookId": BOOK, "before": first }));
    assert_eq!(
        answer,
        json!({ "ok": true, "messages": [], "hasMore": false })
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A cursor that is not one of the room's `_id`s pages from the room's newest message
/// sorting before it: another room's `_id`, the lowest and the highest possible `_id`.
#[test]
fn a_cursor_from_another_room_or_unknown_pages_below_it() {
    const BOOK: u64 = 7101;
    let dir = temp_dir("cursor");
    let store = Arc::new(Store::open(&dir, false).unwrap());
    let server = chat_server(&store);
    let mut a = Sio::connect(&server);
    a.join(BOOK, "a");
    let mut b = Sio::connect(&server);
    b.join(BOOK + 1, "b");
    // The two rooms' messages alternate, so each one's `_id`s fall between the other's.
    let mut in_a = Vec::new();
    let mut in_b = Vec::new();
    for i in 0..40 {
        in_a.extend(a.post_all(BOOK, "a", &[format!("a{i}")]));
        in_b.extend(b.post_all(BOOK + 1, "b", &[format!("b{i}")]));
    }
    for cursor in ids(&in_b).iter().step_by(7) {
        let below: Vec<Value> = in_a
            .iter()
            .rev()
            .filter(|m| m["_id"].as_str().unwrap() < cursor.as_str())
            .take(10)
            .cloned()
            .collect();
        let answer = a.call(
            "loadHistory",
            json!({ "bookId": BOOK, "before": cursor, "limit": 10 }),
        );
        assert_eq!(answer["messages"], json!(below), "below {cursor}");
        let oldest_a = in_a[0]["_id"].as_str().unwrap();
        let more = below
            .last()
            .is_some_and(|m| m["_id"].as_str() != Some(oldest_a));
        assert_eq!(answer["hasMore"], more, "below {cursor}");
    }
    let answer = a.call(
        "loadHistory",
        json!({ "bookId": BOOK, "before": "000000000000000000000000" }),
    );
    assert_eq!(
        answer,
        json!({ "ok": true, "messages": [], "hasMore": false })
    );
    let answer = a.call(
        "loadHistory",
        json!({ "bookId": BOOK, "before": "ffffffffffffffffffffffff", "limit": 3 }),
    );
    let newest: Vec<Value> = in_a.iter().rev().take(3).cloned().collect();
    assert_eq!(
        answer,
        json!({ "ok": true, "messages": newest, "hasMore": true })
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn assert_invalid(answer: &Value, field: &str) {
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_payload", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with(field), "names {field}: {answer}");
}

/// `limit` and `before` out of their rules, a bad `bookId`, a room not joined, and a
/// request without an ack callback; the connection keeps working after each.
#[test]
fn bad_requests_are_answered_with_their_error_and_harm_nothing() {
    const BOOK: u64 = 7201;
    let dir = temp_dir("errors");
    let store = Arc::new(Store::open(&dir, false).unwrap());
    let server = chat_server(&store);
    let mut reader = Sio::connect(&server);
    reader.join(BOOK, "reader");
    let posted = reader.post_all(BOOK, "reader", &["one".into(), "two".into()]);
    for limit in [
        json!(0),
        json!(101),
        json!(2.5),
        json!(-1),
        json!("5"),
        json!(null),
        json!([5]),
        json!(1e300),
    ] {
        let answer = reader.call("loadHistory", json!({ "bookId": BOOK, "limit": limit }));
        assert_invalid(&answer, "limit");
    }
    for before in [
        json!("5f0c"),
        json!("000102030405060708090A0B"),
        json!("000102030405060708090a0g"),
        json!(" 000102030405060708090a0b"),
        json!(12),
        json!(null),
        json!({}),
    ] {
        let answer = reader.call("loadHistory", json!({ "bookId": BOOK, "before": before }));
        assert_invalid(&answer, "before");
    }
    for payload in [
        json!({ "bookId": 0 }),
        json!({ "limit": 5 }),
        json!({ "bookId": "x" }),
    ] {
        assert_invalid(&reader.call("loadHistory", payload), "bookId");
    }
    let answer = reader.call("loadHistory", json!("7201"));
    assert_invalid(&answer, "payload");
    // Limits at their bounds are fine.
    for limit in [1, 100] {
        let answer = reader.call("loadHistory", json!({ "bookId": BOOK, "limit": limit }));
        assert_eq!(answer["ok"], true, "{answer}");
    }
    // A room this connection has not joined (it exists and holds messages).
    let mut stranger = Sio::connect(&server);
    stranger.join(BOOK + 1, "stranger");
    let answer = stranger.call("loadHistory", json!({ "bookId": BOOK }));
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error"]["code"], "not_in_room");
    // After leaving, not either.
    reader.call("leaveRoom", json!({ "bookId": BOOK, "username": "reader" }));
    let answer = reader.call("loadHistory", json!({ "bookId": BOOK }));
    assert_eq!(answer["error"]["code"], "not_in_room", "{answer}");
    reader.join(BOOK, "reader");
    while reader.next_event(Duration::from_millis(100)).is_some() {}
    // Without an ack: `exception`, invalid_payload, even for a fine request.
    ws_send_text(
        &mut reader.ws,
        &format!("42{}", json!(["loadHistory", { "bookId": BOOK }])),
    );
    let exception = reader.next_event(WAIT).expect("an exception event");
    let data: Value = serde_json::from_str(&exception[2..]).unwrap();
    assert_eq!(data[0], "exception");
    assert_eq!(data[1]["status"], "error");
    assert_eq!(data[1]["event"], "loadHistory");
    assert_eq!(data[1]["code"], "invalid_payload");
    assert!(data[1]["message"]
        .as_str()
        .unwrap()
        .contains("acknowledgement"));
    // Still served.
    let answer = reader.call("loadHistory", json!({ "bookId": BOOK }));
    let newest_first: Vec<Value> = posted.iter().rev().cloned().collect();
    assert_eq!(
        answer,
        json!({ "ok": true, "messages": newest_first, "hasMore": false })
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A value of the older layout, written here byte by byte (version 1: createdAt ms, `_id`,
/// then userId, username, content each as a u32 BE length and UTF-8).
fn old_value(created_ms: u64, id: &[u8; 12], user: &str, name: &str, content: &str) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&created_ms.to_be_bytes());
    out.extend_from_slice(id);
    for text in [user, name, content] {
        out.extend_from_slice(&(text.len() as u32).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out
}

fn iso(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A data directory of the older layout: 260 messages of book 7301 and 10 of book 7302 under
/// bookId ‖ !seq, no `_id` index, no layout marker, written with the rocksdb crate. One `_id`
/// in book 7301 goes down (as an older server could write after a restart within one
/// millisecond): history order is the sequence's. Opened by the server, it migrates; then
/// `previousMessages` is byte for byte the JSON of what was written (same `_id`s, same
/// order), and paging walks the book to its first message, each once.
#[test]
fn an_older_data_directory_reads_the_same_after_migration() {
    const BOOK: u64 = 7301;
    let dir = temp_dir("old-layout");
    let mut written: Vec<Value> = Vec::new();
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = rocksdb::DB::open(&options, &dir).unwrap();
        for (book, count) in [(BOOK, 260u64), (BOOK + 1, 10)] {
            for seq in 1..=count {
                let ms = 1_795_521_600_000 + seq * 1_000;
                let mut id = [0u8; 12];
                id[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
                id[6] = (book % 7) as u8;
                id[7..].copy_from_slice(&(seq * 3).to_be_bytes()[3..]);
                if book == BOOK && seq == 200 {
                    id = [0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 9];
                }
                let (user, name) = (format!("u-{}", seq % 5), format!("Reader «{}»", seq % 5));
                let content = format!("old line {seq}\n\t\"quoted\" ünïcode");
                let mut key = book.to_be_bytes().to_vec();
                key.extend_from_slice(&(!seq).to_be_bytes());
                db.put(key, old_value(ms, &id, &user, &name, &content))
                    .unwrap();
                if book == BOOK {
                    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                    written.push(json!({
                        "_id": hex,
                        "bookId": book,
                        "userId": user,
                        "username": name,
                        "content": content,
                        "createdAt": iso(ms),
                        "updatedAt": iso(ms),
                    }));
                }
            }
        }
    }
    let newest_first: Vec<Value> = written.iter().rev().cloned().collect();

    let store = Arc::new(Store::open(&dir, false).unwrap());
    let server = chat_server(&store);
    let mut reader = Sio::connect(&server);
    reader.join(BOOK, "reader");
    let history = reader
        .events
        .iter()
        .find(|p| p.starts_with("42[\"previousMessages\""))
        .expect("previousMessages")
        .clone();
    assert_eq!(
        history,
        format!("42{}", json!(["previousMessages", newest_first[..50]])),
        "previousMessages byte for byte"
    );
    let (all, pages) = walk(&mut reader, BOOK, 100);
    assert_eq!(pages, 3);
    assert_eq!(all, newest_first);
    // The down-going `_id` is a cursor like any: the page below it is the messages before it.
    let answer = reader.call(
        "loadHistory",
        json!({ "bookId": BOOK, "before": "000000000001000000000009", "limit": 2 }),
    );
    assert_eq!(
        answer["messages"],
        json!(written[197..199].iter().rev().collect::<Vec<_>>())
    );
    // New messages continue the migrated room, after its newest.
    let posted = reader.post_all(BOOK, "reader", &["new".into()]);
    let answer = reader.call("loadHistory", json!({ "bookId": BOOK, "limit": 2 }));
    assert_eq!(answer["messages"], json!([posted[0], newest_first[0]]));
    let _ = std::fs::remove_dir_all(&dir);
}
