//! Engine.IO v4 over HTTP long-polling, against the echo server on `/engine.io/`, over real
//! sockets (docs/PROTOCOL.md "Engine.IO v4"): the transport end to end (handshake, a message
//! both ways, a client close, one heartbeat in real time) and what needs real connections —
//! keep-alive, pipelining, requests split across writes, sessions on several shards. The
//! protocol logic (errors, CORS, one GET at a time, bad bodies, heartbeat timing, shutdown) is
//! proven on the deterministic pair in `tests/pair_polling.rs`.

mod support;

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

#[test]
fn handshake_sends_open_packet_with_exactly_five_keys() {
    let server = start_engineio(|_| {});
    let response = server.http().get(&server.polling_target(None));
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=UTF-8"),
        "{response:?}"
    );
    let body = response.text();
    assert!(body.starts_with("0{"), "open packet: {body:?}");
    assert!(!body.contains(SEP), "one packet only: {body:?}");
    let open = parse_open(&body);
    assert_open_packet(&open, &["websocket"], &server.config);
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["pingTimeout"], 200);
    assert_eq!(open["maxPayload"], 1_000_000);
}

// ---------------------------------------------------------------------------------------------
// Errors across shards
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_sid_is_400_code_1_on_every_shard() {
    // Well-formed sids naming each shard (and one beyond) but unknown there.
    let server = start_engineio(|c| {
        quiet(c);
        c.shards = 4;
    });
    for first in ["A", "B", "C", "D", "Z", "_"] {
        let sid = format!("{first}{}", "A".repeat(22));
        for _ in 0..3 {
            assert_eio_error(&server.get(&sid), 1);
            assert_eio_error(&server.post(&sid, b"4x"), 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

#[test]
fn post_message_then_get_returns_it() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let response = server.post(&sid, b"4hello");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body, b"ok");
    let response = server.get(&sid);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    assert_eq!(response.text(), "4hello");
}

// ---------------------------------------------------------------------------------------------
// Client close
// ---------------------------------------------------------------------------------------------

#[test]
fn client_close_answers_parked_get_with_noop_and_ends_session() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut get = park_get(&server, &sid);
    let response = server.post(&sid, b"1");
    assert_eq!(response.status, 200, "{response:?}");
    let parked = get.read_response();
    assert_eq!(parked.status, 200, "{parked:?}");
    assert_eq!(parked.text(), "6");
    let later = server.get(&sid);
    assert_eq!(later.status, 400, "{later:?}");
    assert_eio_error(&later, 1);
}

// ---------------------------------------------------------------------------------------------
// Heartbeat
// ---------------------------------------------------------------------------------------------

#[test]
fn first_ping_arrives_a_full_ping_interval_after_handshake() {
    let server = start_engineio(|_| {});
    let started = Instant::now();
    let (sid, _) = server.handshake();
    let response = server.get(&sid);
    let elapsed = started.elapsed();
    assert_eq!(response.text(), "2", "{response:?}");
    assert!(
        elapsed >= Duration::from_millis(295),
        "first ping after {elapsed:?}, before pingInterval 300 ms"
    );
    assert!(
        elapsed < Duration::from_millis(700),
        "first ping only after {elapsed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

#[test]
fn keep_alive_connection_carries_many_requests() {
    let server = engineio_quiet();
    let mut conn = server.http();
    let response = conn.get(&server.polling_target(None));
    assert_eq!(response.status, 200);
    assert_ne!(response.header("connection"), Some("close"), "{response:?}");
    let sid = parse_open(&response.text())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = server.polling_target(Some(&sid));
    for i in 0..5 {
        let message = format!("4msg{i}");
        let response = conn.post(&target, message.as_bytes());
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.body, b"ok");
        let response = conn.get(&target);
        assert_eq!(response.text(), message);
    }
    // Errors across shards without a body keep the connection too.
    assert_eio_error(&conn.get("/engine.io/?EIO=4&transport=nope"), 0);
    conn.post(&target, b"4after-error");
    assert_eq!(conn.get(&target).text(), "4after-error");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let target = server.polling_target(Some(&sid));
    let mut conn = server.http();
    let mut bytes = Http::request_bytes("POST", &target, &[], b"4piped");
    bytes.extend(Http::request_bytes("GET", &target, &[], b""));
    conn.send_raw(&bytes);
    let first = conn.read_response();
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, &b"ok"[..]),
        "{first:?}"
    );
    let second = conn.read_response();
    assert_eq!(second.text(), "4piped", "{second:?}");
}

#[test]
fn connection_close_request_is_honoured() {
    let server = engineio_quiet();
    let mut conn = server.http();
    let response = conn.request(
        "GET",
        &server.polling_target(None),
        &[("Connection", "close")],
        b"",
    );
    assert_eq!(response.status, 200);
    parse_open(&response.text());
    assert!(
        conn.closed_within(Duration::from_secs(1)),
        "server closes after the response"
    );
}

#[test]
fn one_session_across_different_tcp_connections() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake(); // connection 1
    let mut get = park_get(&server, &sid); // connection 2
    server.post_ok(&sid, "4cross"); // connection 3
    assert_eq!(get.read_response().text(), "4cross");
    server.post_ok(&sid, "4again"); // connection 4
    assert_eq!(server.get_packets(&sid), ["4again"]); // connection 5
}

fn many_sessions_on_fresh_connections(shards: usize, sessions: usize) {
    let server = start_engineio(|c| {
        quiet(c);
        c.shards = shards;
    });
    let server = &server;
    thread::scope(|scope| {
        let workers: Vec<_> = (0..sessions)
            .map(|i| {
                scope.spawn(move || {
                    let (sid, _) = server.handshake();
                    // Plain POST then GET, each on its own connection.
                    let message = format!("4session-{i}");
                    server.post_ok(&sid, &message);
                    assert_eq!(
                        server.get_packets(&sid),
                        std::slice::from_ref(&message),
                        "session {i}"
                    );
                    // A GET parked on one connection, answered through a POST on another.
                    let mut get = park_get(server, &sid);
                    let message = format!("4parked-{i}");
                    server.post_ok(&sid, &message);
                    let response = get.read_response();
                    assert_eq!(response.text(), message, "session {i}");
                    // And a keep-alive connection for several requests.
                    let mut conn = server.http();
                    let target = server.polling_target(Some(&sid));
                    for j in 0..3 {
                        let message = format!("4keep-{i}-{j}");
                        assert_eq!(conn.post(&target, message.as_bytes()).body, b"ok");
                        assert_eq!(conn.get(&target).text(), message);
                    }
                    sid
                })
            })
            .collect();
        let sids: HashSet<String> = workers
            .into_iter()
            .map(|w| w.join().expect("session worker"))
            .collect();
        assert_eq!(sids.len(), sessions);
    });
}

#[test]
fn many_sessions_across_two_shards_all_work() {
    many_sessions_on_fresh_connections(2, 30);
}

#[test]
fn many_sessions_across_four_shards_all_work() {
    many_sessions_on_fresh_connections(4, 30);
}

#[test]
fn session_lifecycle_across_shards_client_close_and_conflict() {
    let server = start_engineio(|c| {
        quiet(c);
        c.shards = 4;
    });
    for _ in 0..4 {
        let (sid, _) = server.handshake();
        let mut get = park_get(&server, &sid);
        server.post_ok(&sid, "1");
        assert_eq!(get.read_response().text(), "6");
        assert_eio_error(&server.get(&sid), 1);

        let (sid, _) = server.handshake();
        let mut get = park_get(&server, &sid);
        assert_eq!(server.get(&sid).status, 400);
        assert_eq!(get.read_response().text(), "1");
        assert_eio_error(&server.get(&sid), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Request framing
// ---------------------------------------------------------------------------------------------

#[test]
fn request_head_split_across_many_writes() {
    let server = engineio_quiet();
    let mut conn = server.http();
    let bytes = Http::request_bytes("GET", &server.polling_target(None), &[], b"");
    for chunk in bytes.chunks(7) {
        conn.send_raw(chunk);
        thread::sleep(Duration::from_millis(2));
    }
    let response = conn.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    parse_open(&response.text());
}

#[test]
fn post_body_arriving_in_pieces_is_assembled() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut conn = server.http();
    let bytes = Http::request_bytes(
        "POST",
        &server.polling_target(Some(&sid)),
        &[],
        b"4split-body",
    );
    let head_len = bytes.len() - b"4split-body".len();
    conn.send_raw(&bytes[..head_len + 3]);
    thread::sleep(Duration::from_millis(50));
    conn.send_raw(&bytes[head_len + 3..]);
    let response = conn.read_response();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"ok"[..]),
        "{response:?}"
    );
    assert_eq!(server.get_packets(&sid), ["4split-body"]);
}
