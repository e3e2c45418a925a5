//! Graceful shutdown of the `readrealm-chat` binary: on SIGTERM or SIGINT it stops
//! accepting, answers what is in flight, sends every client an Engine.IO close, flushes the
//! store and exits 0 within 5 seconds; the history is all there on the next start.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use readrealm_chat::config::Layer;
use readrealm_chat::socketio::handler::{ShardOf, SocketOf, SocketRef};
use readrealm_chat::socketio::{Event, Handler, Refusal};
use serde_json::Value;
use support::*;
use tungstenite::Message;

struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_data_dir(name: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    std::env::temp_dir().join(format!("readrealm-{name}-{}", u64::from_le_bytes(bytes)))
}

fn start(data_dir: &PathBuf, shards: usize) -> Binary {
    let mut child = Command::new(env!("CARGO_BIN_EXE_readrealm-chat"))
        .args(["--listen", "127.0.0.1:0", "--shards", &shards.to_string()])
        // The writer below posts as fast as it can; no post may be refused for its rate.
        .args(["--message-rate", "1000000", "--message-burst", "1000000"])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start readrealm-chat");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    Binary { child, addr }
}

fn server_at(addr: SocketAddr) -> TestServer {
    TestServer::external(addr, "/socket.io/")
}

fn signal(binary: &Binary, signal: libc::c_int) {
    // SAFETY: kill(2) on a child process we own.
    unsafe {
        libc::kill(binary.child.id() as libc::pid_t, signal);
    }
}

/// Wait for the process to exit within `limit`; its exit code.
fn exit_within(binary: &mut Binary, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = binary.child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("still running {limit:?} after the signal");
}

/// Connect and join `book`; the `previousMessages` it gets (newest first).
fn join_book(ws: &mut Ws, book: u64, user: &str) -> Vec<Value> {
    ws_send_text(ws, "40");
    assert!(ws_expect_text(ws).starts_with("40{"));
    ws_send_text(
        ws,
        &format!(r#"421["joinRoom",{{"bookId":{book},"userId":"{user}","username":"{user}"}}]"#),
    );
    let (mut acked, mut previous) = (false, None);
    while !acked || previous.is_none() {
        let text = ws_expect_text(ws);
        if let Some(rest) = text.strip_prefix("431") {
            assert!(rest.contains(r#""ok":true"#), "{text}");
            acked = true;
        } else if text.starts_with(r#"42["previousMessages","#) {
            let event: Value = serde_json::from_str(&text[2..]).unwrap();
            previous = event[1].as_array().cloned();
        }
    }
    previous.unwrap_or_default()
}

fn post(ws: &mut Ws, id: u64, book: u64, user: &str, content: &str) {
    ws_send_text(
        ws,
        &format!(
            r#"42{id}["chatMessage",{{"bookId":{book},"userId":"{user}","username":"{user}","content":"{content}"}}]"#
        ),
    );
}

/// Most posts the writer sends after the first in-flight one, and how many of them may be
/// unanswered at a time (enough to keep the shards busy, few enough that no reader falls
/// `--max-outbound-bytes` behind).
const MAX_IN_FLIGHT_POSTS: u64 = 20_000;
const POST_WINDOW: u64 = 256;

fn post_text(id: u64) -> String {
    format!(
        r#"42{id}["chatMessage",{{"bookId":7,"userId":"writer","username":"writer","content":"in flight {id}"}}]"#
    )
}

/// A WebSocket session on a shard other than `book`'s home shard when there are several, so
/// its posts are stored on one shard and acked over the bus through another. The kernel
/// spreads connections over the shards' listeners; the sid names the shard that took it.
fn writer_away_from_home(server: &TestServer, book: u64, shards: usize) -> Ws {
    let home = readrealm_chat::chat::home::home_shard(readrealm_chat::book::BookId(book), shards);
    for _ in 0..64 {
        let (ws, open) = server.ws_session();
        let sid = open["sid"].as_str().expect("a sid");
        let shard = readrealm_chat::engineio::sid::owner_shard(sid).expect("a sid naming a shard");
        if shards == 1 || shard != home {
            return ws;
        }
    }
    panic!("64 connections in a row landed on book {book}'s home shard {home}");
}

fn graceful(signal_number: libc::c_int, shards: usize) {
    let data_dir = temp_data_dir("shutdown");
    let mut binary = start(&data_dir, shards);
    let server = server_at(binary.addr);

    // A WebSocket reader in a book, a polling session with a GET parked, and a writer whose
    // last messages are in flight when the signal comes.
    let (mut reader, _) = server.ws_session();
    join_book(&mut reader, 7, "reader");
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    assert!(server.get_packets(&sid)[0].starts_with("40{"));
    let mut parked = park_get(&server, &sid);
    let mut writer = writer_away_from_home(&server, 7, shards);
    join_book(&mut writer, 7, "writer");
    for id in 2..12 {
        post(&mut writer, id, 7, "writer", &format!("before {id}"));
    }
    let mut acked = Vec::new();
    while acked.len() < 10 {
        let text = ws_expect_text(&mut writer);
        if text.starts_with("43") {
            acked.push(text);
        }
    }
    // From here the writer posts without pause while the signal comes, so the shards are
    // reading and storing posts when they see it: what a shard read by then must be stored
    // and acked, or neither.
    let mut next_id = 12;
    let mut posting = true;
    let mut last_acked = 11;
    let mut saw_close_packet = false;
    let mut signalled = None;
    loop {
        while posting && next_id - last_acked <= POST_WINDOW && next_id < 12 + MAX_IN_FLIGHT_POSTS {
            // A send fails once the server has closed: the rest was never sent.
            posting = writer.send(Message::text(post_text(next_id))).is_ok();
            next_id += u64::from(posting);
        }
        match ws_recv(&mut writer, Duration::from_secs(5)) {
            WsEvent::Text(text) if text == "1" => saw_close_packet = true,
            WsEvent::Text(text) if text.starts_with("43") => {
                assert!(!saw_close_packet, "an ack after the close packet");
                assert!(text.contains(r#""ok":true"#), "{text}");
                let digits: String = text[2..].chars().take_while(char::is_ascii_digit).collect();
                let id: u64 = digits.parse().expect("an ack id");
                assert_eq!(id, last_acked + 1, "acks in order, none missing");
                last_acked = id;
                // Signal once posts are flowing: acked ones and many more behind them.
                if signalled.is_none() && id >= 12 + 50 {
                    signal(&binary, signal_number);
                    signalled = Some(Instant::now());
                }
            }
            WsEvent::Text(_) => {}
            WsEvent::Closed => break,
            other => panic!("writer: {other:?}"),
        }
    }
    let signalled = signalled.expect("the writer's posts were acked and the signal sent");
    assert!(
        last_acked + 1 < next_id,
        "posts were still in flight when the server shut down (last sent {}, last ack {last_acked})",
        next_id - 1
    );
    assert!(saw_close_packet, "the writer got no Engine.IO close");
    let events = ws_expect_close(
        &mut reader,
        Duration::from_secs(5),
        close_code::GOING_AWAY,
        "server shutting down",
    );
    assert!(
        events.contains(&WsEvent::Text("1".into())),
        "the reader got no Engine.IO close: {events:?}"
    );
    let answer = parked.read_response();
    assert_eq!(answer.status, 200);
    assert!(
        decode_payload(&answer.text()).contains(&"1".to_owned()),
        "the parked GET was not answered with a close: {answer:?}"
    );
    assert_eq!(exit_within(&mut binary, Duration::from_secs(5)), Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    // No longer accepting.
    assert!(TcpStream::connect(binary.addr).is_err());

    // Every acked message is in the history, in order.
    drop(binary);
    let binary = start(&data_dir, shards);
    let server = server_at(binary.addr);
    let (mut ws, _) = server.ws_session();
    let history = join_book(&mut ws, 7, "again");
    let contents: Vec<&str> = history
        .iter()
        .rev()
        .filter_map(|m| m["content"].as_str())
        .collect();
    // previousMessages holds the 50 newest: the last acked post is the newest stored one
    // (none stored without its ack, none acked and lost), the 49 acked before it precede it.
    assert_eq!(contents.len(), 50, "{contents:?}");
    let expected: Vec<String> = (last_acked - 49..=last_acked)
        .map(|id| format!("in flight {id}"))
        .collect();
    assert_eq!(contents, expected, "the history ends with the acked posts");
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn sigterm_closes_every_client_answers_in_flight_flushes_and_exits_0_within_5_s() {
    graceful(libc::SIGTERM, 1);
}

#[test]
fn sigint_does_the_same() {
    graceful(libc::SIGINT, 1);
}

/// With two shards a post is stored on its room's home shard and acked through the shard its
/// client is on: no shard may close its sessions while an ack of a stored post is still on its
/// way to it from the other shard (the shutdown rounds of `src/server/shutdown.rs`).
#[test]
fn with_two_shards_every_stored_post_is_acked_before_the_close() {
    graceful(libc::SIGTERM, 2);
}

/// A post on shard 1 is forwarded to shard 0, which answers it. Both steps are slow, so the
/// forward reaches shard 0 after that shard was told to shut down, and its ack reaches shard 1
/// well after shard 0 said it forwards nothing more: only a second round ("every forward
/// answered") tells shard 1 that no ack is still on its way.
struct SlowHome {
    /// How long shard 1 takes over a post before forwarding it.
    forward_after: Duration,
    /// How long shard 0 takes over a forwarded post before answering it.
    answer_after: Duration,
}

const SLOW_FORWARD: Duration = Duration::from_millis(150);
const SLOW_ANSWER: Duration = Duration::from_millis(300);

impl Handler for SlowHome {
    type State = ();
    type Shard = ();
    type Forward = (SocketRef, u64);

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn on_connect(&self, _socket: &mut SocketOf<'_, Self>, _auth: &Value) -> Result<(), Refusal> {
        Ok(())
    }

    fn on_event(&self, socket: &mut SocketOf<'_, Self>, event: Event) {
        if let (Some("post"), Some(ack)) = (event.name(), event.ack_id) {
            std::thread::sleep(self.forward_after);
            let me = socket.me();
            socket.forward(0, (me, ack));
        }
    }

    fn on_forward(&self, shard: &mut ShardOf<'_, Self>, (to, ack): (SocketRef, u64)) {
        std::thread::sleep(self.answer_after);
        shard.ack_to(to, ack, vec![Value::from("stored")]);
    }
}

/// Two shards running `handler`, and a Socket.IO client connected on shard 1.
fn two_shards_client_on_1(handler: SlowHome) -> (readrealm_chat::server::ServerHandle, Ws) {
    let mut config = base_config();
    config.path = "/socket.io/".into();
    config.layer = Layer::SocketIo;
    config.shards = 2;
    quiet(&mut config);
    let handle = readrealm_chat::server::start(config, handler).expect("server starts");
    let server = TestServer::external(handle.local_addr(), "/socket.io/");
    // The kernel spreads connections over the shards; the sid names the shard.
    for _ in 0..64 {
        let (mut ws, open) = server.ws_session();
        let sid = open["sid"].as_str().expect("a sid");
        if readrealm_chat::engineio::sid::owner_shard(sid) == Some(1) {
            ws_send_text(&mut ws, "40");
            assert!(ws_expect_text(&mut ws).starts_with("40{"));
            return (handle, ws);
        }
    }
    panic!("no connection on shard 1 within 64");
}

/// Everything `client` gets until the server closes it.
fn until_closed(client: &mut Ws) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match ws_recv(client, Duration::from_secs(5)) {
            WsEvent::Text(text) => seen.push(text),
            WsEvent::Closed => return seen,
            other => panic!("{other:?} after {seen:?}"),
        }
    }
}

/// Join the shard threads, failing the test if that takes 5 s.
fn join_within_5_s(handle: readrealm_chat::server::ServerHandle) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(handle.join());
    });
    let joined = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the shards end within 5 s");
    joined.expect("the shards end without an error");
}

#[test]
fn an_ack_sent_after_its_home_shard_began_shutting_down_still_reaches_the_client() {
    let (handle, mut client) = two_shards_client_on_1(SlowHome {
        forward_after: SLOW_FORWARD,
        answer_after: SLOW_ANSWER,
    });
    ws_send_text(&mut client, r#"427["post"]"#);
    // Shard 1 is inside its slow event when both shards are told to stop: shard 0 starts its
    // rounds at once, shard 1 forwards the post first.
    std::thread::sleep(SLOW_FORWARD / 3);
    handle.shutdown();
    let seen = until_closed(&mut client);
    assert_eq!(
        seen,
        [r#"437["stored"]"#, "1"],
        "the ack, then the Engine.IO close"
    );
    join_within_5_s(handle);
}

/// A peer shard that does not finish its rounds (here: busy for 2.5 s) is waited for 1.5 s,
/// no longer: the other shard's clients get their close; the busy shard, once free, does not
/// wait for the shard that has ended, so every shard ends soon after it.
#[test]
fn a_shard_that_does_not_answer_delays_the_close_by_the_limit_only() {
    let (handle, mut client) = two_shards_client_on_1(SlowHome {
        forward_after: Duration::ZERO,
        answer_after: Duration::from_millis(2500),
    });
    ws_send_text(&mut client, r#"427["post"]"#);
    // Shard 0 is inside its slow answer when both shards are told to stop.
    std::thread::sleep(Duration::from_millis(100));
    let stopped = Instant::now();
    handle.shutdown();
    let seen = until_closed(&mut client);
    let closed_after = stopped.elapsed();
    assert_eq!(seen, ["1"], "the close, the ack lost with the silent shard");
    assert!(
        closed_after >= Duration::from_millis(1400) && closed_after < Duration::from_millis(2300),
        "closed {closed_after:?} after the stop: the 1.5 s limit, not the busy shard"
    );
    join_within_5_s(handle);
    // The busy shard, once free, finds the other one ended and waits for it no longer.
    let joined_after = stopped.elapsed();
    assert!(
        joined_after < Duration::from_millis(3300),
        "joined {joined_after:?} after the stop"
    );
}
