//! Operations over real sockets: `/metrics` counters move by exactly what clients did,
//! `/health` answers, and a backup taken while clients post restores to a server that serves
//! every message acknowledged before the backup started.
//!
//! The metrics test runs the chat in this process (its own registry, so no other test's
//! traffic is counted); the backup test runs the real `readrealm-chat` binary twice and its
//! `backup` command in between, as an operator would.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use readrealm_chat::chat::limits::ChatLimits;
use readrealm_chat::chat::ChatApp;
use readrealm_chat::metrics::Metrics;
use readrealm_chat::server::{start_with, Ops};
use readrealm_chat::site::Site;
use readrealm_chat::store::Store;
use serde_json::{json, Value};
use support::{
    base_config, quiet, ws_connect, ws_recv_skipping_pings, ws_send_text, Http, Ws, WsEvent,
};

/// How long any expected frame or counter may take.
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// A tiny Socket.IO client over one WebSocket
// ---------------------------------------------------------------------------------------------

/// One Socket.IO connection on the `/` namespace, WebSocket only.
struct Sio {
    ws: Ws,
    next_ack: u64,
    /// Events received while waiting for something else: (name, first argument).
    events: Vec<(String, Value)>,
}

impl Sio {
    fn connect(addr: SocketAddr) -> Sio {
        let mut ws =
            ws_connect(addr, "/socket.io/?EIO=4&transport=websocket").expect("websocket opens");
        let open = Self::text(&mut ws);
        assert!(open.starts_with('0'), "open packet, got {open}");
        ws_send_text(&mut ws, "40");
        let connected = Self::text(&mut ws);
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

    fn text(ws: &mut Ws) -> String {
        match ws_recv_skipping_pings(ws, WAIT) {
            WsEvent::Text(text) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Emit with an ack and wait for the answer (events arriving meanwhile are kept).
    fn call(&mut self, event: &str, payload: Value) -> Value {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send_raw(&format!("42{id}{}", json!([event, payload])));
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no ack {id} for {event}");
            let text = Self::text(&mut self.ws);
            if let Some(rest) = text.strip_prefix("43") {
                let digits = rest.chars().take_while(char::is_ascii_digit).count();
                if rest[..digits].parse::<u64>().ok() == Some(id) {
                    let args: Value = serde_json::from_str(&rest[digits..]).expect("ack JSON");
                    return args[0].clone();
                }
            } else {
                self.keep(&text);
            }
        }
    }

    fn send_raw(&mut self, packet: &str) {
        ws_send_text(&mut self.ws, packet);
    }

    fn keep(&mut self, text: &str) {
        if let Some(json) = text.strip_prefix("42") {
            let data: Value = serde_json::from_str(json).expect("event JSON");
            let name = data[0].as_str().unwrap_or_default().to_owned();
            self.events.push((name, data[1].clone()));
        }
    }

    /// Wait for an event `name` whose argument satisfies `matches`; it is removed.
    fn expect_event(&mut self, name: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self
                .events
                .iter()
                .position(|(n, arg)| n == name && matches(arg))
            {
                return self.events.remove(i).1;
            }
            assert!(
                Instant::now() < deadline,
                "no {name} event; have {:?}",
                self.events
            );
            let text = Self::text(&mut self.ws);
            self.keep(&text);
        }
    }

    fn join(&mut self, book: u64, user: &str) -> Vec<Value> {
        let ack = self.call(
            "joinRoom",
            json!({ "bookId": book, "userId": user, "username": user }),
        );
        assert_eq!(ack["ok"], true, "join: {ack}");
        let history = self.expect_event("previousMessages", |_| true);
        history.as_array().cloned().unwrap_or_default()
    }

    /// Leave a room (a connection may be in at most 100).
    fn leave(&mut self, book: u64, user: &str) {
        let ack = self.call("leaveRoom", json!({ "bookId": book, "username": user }));
        assert_eq!(ack["ok"], true, "leave: {ack}");
    }

    fn post(&mut self, book: u64, user: &str, content: &str) -> Value {
        self.call(
            "chatMessage",
            json!({ "bookId": book, "userId": user, "username": user, "content": content }),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Scraping
// ---------------------------------------------------------------------------------------------

/// `/metrics` as a map from series (name and labels) to value.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let response = Http::connect(addr).get("/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let text = response.text();
    let mut samples = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

/// Re-scrape until every `(series, delta)` moved by exactly `delta` from `before` (the
/// shards count asynchronously), then return the last scrape; fail with the differences.
fn expect_deltas(
    addr: SocketAddr,
    before: &HashMap<String, f64>,
    deltas: &[(&str, f64)],
) -> HashMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = scrape(addr);
        let wrong: Vec<String> = deltas
            .iter()
            .filter_map(|(series, delta)| {
                let was = before.get(*series).copied().unwrap_or(0.0);
                let is = now.get(*series).copied().unwrap_or(f64::NAN);
                ((is - was - delta).abs() > 1e-9)
                    .then(|| format!("{series}: {was} -> {is}, expected +{delta}"))
            })
            .collect();
        if wrong.is_empty() {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "counters did not move as expected:\n{}",
            wrong.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    std::env::temp_dir().join(format!(
        "readrealm-ops-{tag}-{:016x}",
        u64::from_le_bytes(bytes)
    ))
}

// ---------------------------------------------------------------------------------------------
// /metrics and /health
// ---------------------------------------------------------------------------------------------

#[test]
fn metrics_count_what_clients_do() {
    let dir = temp_dir("metrics");
    let store = Arc::new(Store::open(&dir, false).unwrap());
    let mut config = base_config();
    quiet(&mut config);
    config.shards = 2;
    // The polling client below never sends CONNECT; keep its session for the whole test.
    config.connect_timeout = Duration::from_secs(60);
    let metrics = Metrics::new(config.shards);
    let app =
        ChatApp::new(Arc::clone(&store), ChatLimits::default()).with_metrics(Arc::clone(&metrics));
    let server = start_with(config, app, Ops::serving(metrics, Some(Site::load(None))))
        .expect("server starts");
    let addr = server.local_addr();

    let health = Http::connect(addr).get("/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-type"), Some("application/json"));
    let health: Value = serde_json::from_slice(&health.body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["shards"], 2);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["connections"], 0);
    assert_eq!(Http::connect(addr).get("/nothing-here").status, 404);

    let before = scrape(addr);
    for series in [
        "readrealm_connections{transport=\"websocket\"}",
        "readrealm_rooms",
        "readrealm_store_write_seconds_bucket{le=\"+Inf\"}",
        "readrealm_shard_busy_seconds_total{shard=\"1\"}",
        "readrealm_shard_queue_depth{shard=\"0\"}",
        "readrealm_disconnects_total{reason=\"ping_timeout\"}",
        "readrealm_errors_total{code=\"rate_limited\"}",
    ] {
        assert!(before.contains_key(series), "{series} is exported");
    }

    // Two readers in one book; one posts three messages, both get each one.
    let mut ishmael = Sio::connect(addr);
    let mut queequeg = Sio::connect(addr);
    // Ishmael joins book 7 first. His userJoined for it goes to queequeg's shard over the bus
    // (when that is the other one); queequeg must join only after it was handled there, or he
    // would be in the room in time to get it. So ishmael then joins book 9, where queequeg
    // already is: the shard-to-shard bus is in order, so once queequeg has that userJoined the
    // one for book 7 has passed his shard too.
    assert!(queequeg.join(9, "queequeg").is_empty());
    assert!(ishmael.join(7, "ishmael").is_empty());
    assert!(ishmael.join(9, "ishmael").is_empty());
    queequeg.expect_event("userJoined", |p| p["username"] == "ishmael");
    queequeg.join(7, "queequeg");
    ishmael.expect_event("userJoined", |p| p["username"] == "queequeg");
    for i in 0..3 {
        let ack = ishmael.post(7, "ishmael", &format!("message {i}"));
        assert_eq!(ack["ok"], true, "{ack}");
        queequeg.expect_event("newMessage", |m| m["content"] == format!("message {i}"));
    }
    // No userJoined for a reader who was in the room before queequeg joined it.
    assert!(
        !queequeg
            .events
            .iter()
            .any(|(name, p)| name == "userJoined" && p["username"] == "ishmael"),
        "queequeg got ishmael's userJoined for a room ishmael was already in: {:?}",
        queequeg.events
    );
    // Two errors: a book not joined, a payload that is not an object.
    let ack = ishmael.post(8, "ishmael", "wrong room");
    assert_eq!(ack["error"]["code"], "not_in_room");
    let ack = ishmael.call("chatMessage", json!("not an object"));
    assert_eq!(ack["error"]["code"], "invalid_payload");
    // A polling client that only handshakes.
    let polling = Http::connect(addr).get("/socket.io/?EIO=4&transport=polling");
    assert_eq!(polling.status, 200);

    let during = expect_deltas(
        addr,
        &before,
        &[
            ("readrealm_connections{transport=\"websocket\"}", 2.0),
            ("readrealm_connections{transport=\"polling\"}", 1.0),
            (
                "readrealm_connections_opened_total{transport=\"websocket\"}",
                2.0,
            ),
            (
                "readrealm_connections_opened_total{transport=\"polling\"}",
                1.0,
            ),
            ("readrealm_joins_total", 4.0),
            ("readrealm_messages_stored_total", 3.0),
            // userJoined to queequeg (book 9) and to ishmael (book 7), then each message to
            // both readers.
            ("readrealm_deliveries_total", 8.0),
            ("readrealm_errors_total{code=\"not_in_room\"}", 1.0),
            ("readrealm_errors_total{code=\"invalid_payload\"}", 1.0),
            ("readrealm_errors_total{code=\"rate_limited\"}", 0.0),
        ],
    );
    let writes = during["readrealm_store_write_seconds_count"]
        - before["readrealm_store_write_seconds_count"];
    assert!(
        (1.0..=3.0).contains(&writes),
        "one write batch per turn: {writes}"
    );
    assert_eq!(
        during["readrealm_store_write_seconds_bucket{le=\"+Inf\"}"],
        during["readrealm_store_write_seconds_count"]
    );
    assert!(
        during["readrealm_store_write_seconds_sum"] > before["readrealm_store_write_seconds_sum"]
    );
    let rooms = during["readrealm_rooms"];
    assert!(
        (2.0..=4.0).contains(&rooms),
        "books 7 and 9 on one or both shards: {rooms}"
    );
    let busy = |m: &HashMap<String, f64>| {
        m["readrealm_shard_busy_seconds_total{shard=\"0\"}"]
            + m["readrealm_shard_busy_seconds_total{shard=\"1\"}"]
    };
    assert!(busy(&during) > busy(&before), "the loops did work");
    let health: Value = serde_json::from_slice(&Http::connect(addr).get("/health").body).unwrap();
    assert_eq!(health["connections"], 3);

    // Queequeg closes its Engine.IO session; ishmael sees it leave both books.
    queequeg.send_raw("1");
    ishmael.expect_event("userLeft", |p| p["username"] == "queequeg");
    ishmael.expect_event("userLeft", |p| p["username"] == "queequeg");
    expect_deltas(
        addr,
        &during,
        &[
            ("readrealm_connections{transport=\"websocket\"}", -1.0),
            ("readrealm_disconnects_total{reason=\"client_close\"}", 1.0),
            ("readrealm_deliveries_total", 2.0),
            ("readrealm_messages_stored_total", 0.0),
        ],
    );

    server.shutdown();
    server.join().unwrap();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Backups
// ---------------------------------------------------------------------------------------------

/// The `readrealm-chat` binary as a child process; killed on drop.
struct ChatProcess {
    child: Child,
    addr: SocketAddr,
}

impl ChatProcess {
    fn start(data_dir: &Path) -> ChatProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_readrealm-chat"))
            .args(["--listen", "127.0.0.1:0", "--shards", "2"])
            .args(["--message-rate", "10000", "--message-burst", "10000"])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("readrealm-chat starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a line on stdout");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        ChatProcess { child, addr }
    }
}

impl Drop for ChatProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Messages per book: each poster moves to a new book after this many, so a book's whole
/// history fits in the 50 newest that `previousMessages` returns.
const PER_BOOK: usize = 40;

#[test]
fn backup_under_load_restores_every_acknowledged_message() {
    let data = temp_dir("data");
    let backup = temp_dir("backup");
    let server = ChatProcess::start(&data);
    let addr = server.addr;

    // Posters: each posts to its own books, PER_BOOK messages each, recording every ack.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let posters: Vec<_> = (0..3u64)
        .map(|poster| {
            let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
            std::thread::spawn(move || {
                let user = format!("poster-{poster}");
                let mut sio = Sio::connect(addr);
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let book = 1000 + poster * 1000 + (n / PER_BOOK) as u64;
                    if n.is_multiple_of(PER_BOOK) {
                        if n > 0 {
                            sio.leave(book - 1, &user);
                        }
                        sio.join(book, &user);
                    }
                    let content = format!("{user} #{n}");
                    let ack = sio.post(book, &user, &content);
                    assert_eq!(ack["ok"], true, "{ack}");
                    sio.events.clear();
                    acked.lock().unwrap().push((book, content));
                    n += 1;
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(700));
    let acked_before: Vec<(u64, String)> = acked.lock().unwrap().clone();
    let output = Command::new(env!("CARGO_BIN_EXE_readrealm-chat"))
        .arg("backup")
        .arg("--data-dir")
        .arg(&data)
        .arg("--to")
        .arg(&backup)
        .output()
        .expect("backup runs");
    assert!(
        output.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("secondary instance"), "a live copy: {said}");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for poster in posters {
        poster.join().expect("poster thread");
    }
    let acked_all = acked.lock().unwrap().clone();
    assert!(
        acked_before.len() >= 30 && acked_all.len() > acked_before.len(),
        "posting went on during the backup: {} before, {} in all",
        acked_before.len(),
        acked_all.len()
    );
    drop(server);

    // Restore: a server started on the backup serves, per book, the messages in the order
    // they were posted — a prefix of what was acknowledged, never with holes — and at least
    // every one acknowledged before the backup started.
    let restored = ChatProcess::start(&backup);
    let mut reader = Sio::connect(restored.addr);
    let mut posted: HashMap<u64, Vec<String>> = HashMap::new();
    for (book, content) in &acked_all {
        posted.entry(*book).or_default().push(content.clone());
    }
    let mut before_count: HashMap<u64, usize> = HashMap::new();
    for (book, _) in &acked_before {
        *before_count.entry(*book).or_default() += 1;
    }
    let mut restored_total = 0;
    for (book, contents) in &posted {
        let history = reader.join(*book, "reader");
        reader.leave(*book, "reader");
        let mut got: Vec<String> = history
            .iter()
            .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
            .collect();
        got.reverse();
        let need = before_count.get(book).copied().unwrap_or(0);
        assert!(
            got.len() >= need,
            "book {book}: {} restored, {need} acknowledged before",
            got.len()
        );
        assert_eq!(
            Some(&got[..]),
            contents.get(..got.len()),
            "book {book}: a prefix, in order"
        );
        restored_total += got.len();
    }
    assert!(restored_total >= acked_before.len());
    drop(restored);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&backup);
}
