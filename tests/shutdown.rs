//! Graceful shutdown of the `readrealm-chat` binary: on SIGTERM or SIGINT it stops
//! accepting, answers what is in flight, sends every client an Engine.IO close, flushes the
//! store and exits 0 within 5 seconds; the history is all there on the next start.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

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

fn start(data_dir: &PathBuf) -> Binary {
    let mut child = Command::new(env!("CARGO_BIN_EXE_readrealm-chat"))
        .args(["--listen", "127.0.0.1:0", "--shards", "2", "--data-dir"])
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

fn graceful(signal_number: libc::c_int) {
    let data_dir = temp_data_dir("shutdown");
    let mut binary = start(&data_dir);
    let server = server_at(binary.addr);

    // A WebSocket reader in a book, a polling session with a GET parked, and a writer whose
    // last messages are in flight when the signal comes.
    let (mut reader, _) = server.ws_session();
    join_book(&mut reader, 7, "reader");
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    assert!(server.get_packets(&sid)[0].starts_with("40{"));
    let mut parked = park_get(&server, &sid);
    let (mut writer, _) = server.ws_session();
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
    for id in 12..20 {
        post(&mut writer, id, 7, "writer", &format!("in flight {id}"));
    }
    let signalled = Instant::now();
    signal(&binary, signal_number);

    // The writer: every in-flight message is answered (stored and acked) or was never read;
    // then the Engine.IO close `1`, then the end of the stream.
    let mut in_flight_acked = 0;
    let mut saw_close_packet = false;
    loop {
        match ws_recv(&mut writer, Duration::from_secs(5)) {
            WsEvent::Text(text) if text == "1" => saw_close_packet = true,
            WsEvent::Text(text) if text.starts_with("43") => {
                assert!(!saw_close_packet, "an ack after the close packet");
                assert!(text.contains(r#""ok":true"#), "{text}");
                in_flight_acked += 1;
            }
            WsEvent::Text(_) => {}
            WsEvent::Closed => break,
            other => panic!("writer: {other:?}"),
        }
    }
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
    let binary = start(&data_dir);
    let server = server_at(binary.addr);
    let (mut ws, _) = server.ws_session();
    let history = join_book(&mut ws, 7, "again");
    let contents: Vec<&str> = history
        .iter()
        .rev()
        .filter_map(|m| m["content"].as_str())
        .collect();
    let expected_before: Vec<String> = (2..12).map(|id| format!("before {id}")).collect();
    assert_eq!(contents.len(), 10 + in_flight_acked, "{contents:?}");
    assert_eq!(&contents[..10], expected_before.as_slice());
    for (i, content) in contents[10..].iter().enumerate() {
        assert_eq!(*content, format!("in flight {}", 12 + i));
    }
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn sigterm_closes_every_client_answers_in_flight_flushes_and_exits_0_within_5_s() {
    graceful(libc::SIGTERM);
}

#[test]
fn sigint_does_the_same() {
    graceful(libc::SIGINT);
}
