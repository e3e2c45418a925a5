//! Join history over real sockets, as served from the rooms' history cache (src/chat/history.rs):
//! it equals the store's newest 50 (order and content), a cold start loads it from the store,
//! and a join racing a stream of messages sees each one exactly once, as history or as
//! `newMessage`. The expected values come from what the poster was acknowledged and from the
//! store itself, never from what the joiner under test received.
//!
//! (A message the store failed to write staying out of history is checked against a real
//! failing store in tests/js/chat.test.mjs, "unavailable: ... nor kept in history".)

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use readrealm_chat::chat::limits::ChatLimits;
use readrealm_chat::chat::ChatApp;
use readrealm_chat::store::Store;
use serde_json::{json, Value};
use support::{
    quiet, start_server, ws_connect, ws_recv_skipping_pings, ws_send_text, TestServer, Ws, WsEvent,
};

const WAIT: Duration = Duration::from_secs(5);

/// One Socket.IO connection on `/` over WebSocket, keeping the events that arrive.
struct Sio {
    ws: Ws,
    next_ack: u64,
    /// Events in arrival order: (name, first argument).
    events: Vec<(String, Value)>,
}

impl Sio {
    fn connect(server: &TestServer) -> Sio {
        let mut ws = ws_connect(server.addr, "/socket.io/?EIO=4&transport=websocket")
            .expect("websocket opens");
        let open = text(&mut ws, WAIT).expect("open packet");
        assert!(open.starts_with('0'), "open packet, got {open}");
        ws_send_text(&mut ws, "40");
        let connected = text(&mut ws, WAIT).expect("CONNECT answer");
        assert!(
            connected.starts_with("40"),
            "CONNECT answer, got {connected}"
        );
        Sio {
            ws,
            next_ack: 0,
            events: Vec::new(),
        }
    }

    /// Emit with an ack and wait for its answer (events arriving meanwhile are kept).
    fn call(&mut self, event: &str, payload: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        ws_send_text(&mut self.ws, &format!("42{id}{}", json!([event, payload])));
        let deadline = Instant::now() + WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let packet =
                text(&mut self.ws, remaining).unwrap_or_else(|| panic!("no ack {id} for {event}"));
            if let Some(rest) = packet.strip_prefix("43") {
                let digits = rest.chars().take_while(char::is_ascii_digit).count();
                if rest[..digits].parse::<u64>().ok() == Some(id) {
                    let args: Value = serde_json::from_str(&rest[digits..]).expect("ack JSON");
                    return args[0].clone();
                }
            } else {
                self.keep(&packet);
            }
        }
    }

    fn keep(&mut self, packet: &str) {
        if let Some(json) = packet.strip_prefix("42") {
            let data: Value = serde_json::from_str(json).expect("event JSON");
            let name = data[0].as_str().unwrap_or_default().to_owned();
            self.events.push((name, data[1].clone()));
        }
    }

    /// Read whatever arrives within `quiet` of the last packet (or until `done` holds).
    fn read_until(&mut self, quiet: Duration, done: impl Fn(&Sio) -> bool) {
        while !done(self) {
            match text(&mut self.ws, quiet) {
                Some(packet) => self.keep(&packet),
                None => return,
            }
        }
    }

    /// Join `book`; the history it was sent.
    fn join(&mut self, book: u64, user: &str) -> Vec<Value> {
        let ack = self.call(
            "joinRoom",
            json!({ "bookId": book, "userId": user, "username": user }),
        );
        assert_eq!(ack["ok"], true);
        assert_eq!(ack["room"], format!("book_{book}"));
        // The joiner is listed first among the room's readers (docs/API.md, "Who is here").
        assert_eq!(
            ack["members"][0],
            json!({ "userId": user, "username": user })
        );
        assert!(ack["memberCount"].as_u64() >= Some(1), "{ack}");
        let at = self
            .events
            .iter()
            .position(|(name, _)| name == "previousMessages")
            .expect("previousMessages arrives before the join's ack");
        let (_, history) = self.events.remove(at);
        history
            .as_array()
            .cloned()
            .expect("previousMessages is an array")
    }

    /// Post and return the acknowledged message.
    fn post(&mut self, book: u64, user: &str, content: &str) -> Value {
        let ack = self.call(
            "chatMessage",
            json!({ "bookId": book, "userId": user, "username": user, "content": content }),
        );
        assert_eq!(ack["ok"], true, "chatMessage: {ack}");
        ack["message"].clone()
    }

    fn new_messages(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|(name, _)| name == "newMessage")
            .map(|(_, message)| message.clone())
            .collect()
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
        "readrealm-history-{tag}-{:016x}",
        u64::from_le_bytes(bytes)
    ))
}

/// Limits that let one connection post as fast as it is acknowledged.
fn fast_limits() -> ChatLimits {
    ChatLimits {
        message_rate: 100_000.0,
        message_burst: 100_000.0,
        ..ChatLimits::default()
    }
}

fn chat_server(store: &Arc<Store>) -> TestServer {
    start_server(ChatApp::new(Arc::clone(store), fast_limits()), |c| {
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

/// The store's newest 50 of `book`, newest first, as (`_id`, content) read from RocksDB.
fn stored_newest(store: &Store, book: u64) -> Vec<(String, String)> {
    store
        .newest(readrealm_chat::book::BookId(book), 50)
        .unwrap()
        .into_iter()
        .map(|m| (m.value.id.to_hex(), m.value.content))
        .collect()
}

fn id_and_content(messages: &[Value]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| {
            (
                m["_id"].as_str().unwrap_or_default().to_owned(),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// After 65 messages, joiners on both shards get exactly the 50 newest, newest first, equal
/// to what the poster was acknowledged and to what the store holds; a server started afresh
/// on the same store (an empty cache: a cold start) serves the same, read from the store, and
/// then keeps serving it as new messages arrive.
#[test]
fn history_is_the_stores_newest_fifty_warm_and_after_a_cold_start() {
    const BOOK: u64 = 4101;
    let dir = temp_dir("newest");
    let store = Arc::new(Store::open(&dir, false).unwrap());
    let server = chat_server(&store);
    let mut poster = Sio::connect(&server);
    poster.join(BOOK, "poster");
    let mut acked: Vec<Value> = (0..65)
        .map(|i| {
            poster.post(
                BOOK,
                "poster",
                &format!("line {i} — «ünïcode» \"quoted\"\n"),
            )
        })
        .collect();
    let expected =
        |acked: &[Value]| -> Vec<Value> { acked.iter().rev().take(50).cloned().collect() };

    // Several joiners: connections are spread over both shards.
    for i in 0..4 {
        let mut joiner = Sio::connect(&server);
        let history = joiner.join(BOOK, &format!("warm-{i}"));
        assert_eq!(
            history,
            expected(&acked),
            "joiner {i}: the acked messages, newest first"
        );
        assert_eq!(id_and_content(&history), stored_newest(&store, BOOK));
    }
    drop(poster);
    server.shutdown();
    drop(server);

    // A cold start on the same store.
    let server = chat_server(&store);
    for i in 0..4 {
        let mut joiner = Sio::connect(&server);
        let history = joiner.join(BOOK, &format!("cold-{i}"));
        assert_eq!(history, expected(&acked), "cold joiner {i}");
    }
    // New messages extend the history read at the cold start.
    let mut poster = Sio::connect(&server);
    poster.join(BOOK, "poster");
    for i in 0..3 {
        acked.push(poster.post(BOOK, "poster", &format!("after restart {i}")));
    }
    let mut joiner = Sio::connect(&server);
    let history = joiner.join(BOOK, "late");
    assert_eq!(history, expected(&acked));
    assert_eq!(id_and_content(&history), stored_newest(&store, BOOK));
    server.shutdown();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Joiners arriving on both shards while a poster streams messages into the room: each one
/// gets every message exactly once, as history or as `newMessage` — the history is a run of
/// the acknowledged messages ending somewhere, and the `newMessage`s are exactly the ones
/// after it, in order.
#[test]
fn a_join_racing_messages_sees_each_one_exactly_once() {
    const BOOK: u64 = 4202;
    const MESSAGES: usize = 400;
    let dir = temp_dir("race");
    let store = Arc::new(Store::open(&dir, false).unwrap());
    let server = chat_server(&store);
    let posted = Arc::new(AtomicUsize::new(0));
    let mut poster = Sio::connect(&server);
    poster.join(BOOK, "poster");
    let poster = {
        let posted = Arc::clone(&posted);
        std::thread::spawn(move || {
            let mut acked = Vec::with_capacity(MESSAGES);
            for i in 0..MESSAGES {
                acked.push(poster.post(BOOK, "poster", &format!("m{i}")));
                posted.store(i + 1, Ordering::SeqCst);
            }
            (poster, acked)
        })
    };
    // One joiner every 10 messages (as many as the room can tell `userJoined` to without
    // anyone reading until the end).
    let mut joiners = Vec::new();
    for k in 1..MESSAGES / 10 - 1 {
        while posted.load(Ordering::SeqCst) < k * 10 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut joiner = Sio::connect(&server);
        let history = joiner.join(BOOK, &format!("j{k}"));
        joiners.push((joiner, history));
    }
    let (_poster, acked) = poster.join().expect("the poster finishes");
    let acked_ids = ids(&acked);
    let mut mid_stream = 0;
    for (i, (joiner, history)) in joiners.iter_mut().enumerate() {
        let history_ids: Vec<String> = ids(history).into_iter().rev().collect();
        // The history is the acked run ending at its newest message.
        let end = match history_ids.last() {
            Some(newest) => {
                1 + acked_ids
                    .iter()
                    .position(|id| id == newest)
                    .unwrap_or_else(|| panic!("joiner {i}: history holds an unacked {newest}"))
            }
            None => 0,
        };
        assert_eq!(
            history_ids,
            acked_ids[end.saturating_sub(50)..end],
            "joiner {i}: history is the 50 acked before its newest"
        );
        if end > 0 && end < MESSAGES {
            mid_stream += 1;
        }
        let missing = MESSAGES - end;
        joiner.read_until(WAIT, |j| j.new_messages().len() >= missing);
        // Anything more (a duplicate) would arrive right behind.
        joiner.read_until(Duration::from_millis(50), |_| false);
        assert_eq!(
            ids(&joiner.new_messages()),
            acked_ids[end..],
            "joiner {i} (history up to {end}): every later message once, nothing earlier"
        );
    }
    assert!(
        mid_stream >= 10,
        "only {mid_stream} of {} joins landed mid-stream",
        joiners.len()
    );
    server.shutdown();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
