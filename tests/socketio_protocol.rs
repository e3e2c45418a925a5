//! Socket.IO v5 against the conformance handler on `/socket.io/`, over real sockets
//! (docs/PROTOCOL.md "Socket.IO v5" and "The conformance test server"): each transport end to
//! end (connect, an event both ways, a binary event, an upgrade keeping its namespace, the
//! connect timeout in real time) and what needs several shards (many clients, a room
//! broadcast on every shard). The protocol logic (namespaces, acks, binary packets, invalid
//! packets, refusals, server-side disconnects) is proven on the deterministic pair in
//! `tests/pair_socketio.rs`.

#[path = "pair_support/rooms.rs"]
mod rooms;
mod support;

use std::thread;
use std::time::{Duration, Instant};

use rooms::RoomsHandler;
use serde_json::{json, Value};
use support::*;

/// Split `<prefix><json>` and parse the JSON.
fn json_after(packet: &str, prefix: &str) -> Value {
    let rest = packet
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{packet:?} does not start with {prefix:?}"));
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("{packet:?}: bad JSON after prefix ({e})"))
}

/// A WebSocket Engine.IO session on the Socket.IO server; its Engine.IO sid.
fn sio_ws(server: &TestServer) -> (Ws, String) {
    let (ws, open) = server.ws_session();
    let sid = open["sid"].as_str().unwrap().to_owned();
    (ws, sid)
}

/// A WebSocket session connected to `/` (the CONNECT answer and the `auth` event consumed).
fn connected_ws(server: &TestServer) -> Ws {
    let (mut ws, _) = sio_ws(server);
    ws_send_text(&mut ws, "40");
    let answer = ws_expect_text(&mut ws);
    assert!(json_after(&answer, "40")["sid"].is_string(), "{answer:?}");
    assert_eq!(ws_expect_text(&mut ws), r#"42["auth",{}]"#);
    ws
}

// ---------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------

#[test]
fn connect_to_main_namespace_answers_sid_then_auth_event() {
    let server = start_socketio(|_| {});
    let (mut ws, eio_sid) = sio_ws(&server);
    ws_send_text(&mut ws, "40");
    let answer = ws_expect_text(&mut ws);
    let data = json_after(&answer, "40");
    let object = data.as_object().expect("CONNECT data is an object");
    assert_eq!(object.len(), 1, "only sid: {answer:?}");
    let sio_sid = data["sid"].as_str().expect("sid string");
    assert!(!sio_sid.is_empty());
    assert_ne!(
        sio_sid, eio_sid,
        "Socket.IO id distinct from the Engine.IO sid"
    );
    assert_eq!(ws_expect_text(&mut ws), r#"42["auth",{}]"#);
}

// ---------------------------------------------------------------------------------------------
// Events and acks
// ---------------------------------------------------------------------------------------------

#[test]
fn event_is_echoed_as_message_back() {
    let server = start_socketio(|_| {});
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, r#"42["message",1,"2",{"3":[true]}]"#);
    let back = ws_expect_text(&mut ws);
    assert_eq!(back, r#"42["message-back",1,"2",{"3":[true]}]"#);
}

#[test]
fn binary_event_is_echoed_with_its_attachment() {
    let server = start_socketio(|_| {});
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, r#"451-["message",{"_placeholder":true,"num":0}]"#);
    ws_send_binary(&mut ws, &[1, 2, 3]);
    let header = ws_expect_text(&mut ws);
    assert_eq!(
        json_after(&header, "451-"),
        json!(["message-back", {"_placeholder": true, "num": 0}]),
        "{header:?}"
    );
    assert_eq!(ws_expect_binary(&mut ws), [1, 2, 3]);
}

// ---------------------------------------------------------------------------------------------
// The connect timeout
// ---------------------------------------------------------------------------------------------

#[test]
fn no_connect_within_connect_timeout_closes() {
    let server = start_socketio(|_| {});
    let started = Instant::now();
    let (mut ws, _) = sio_ws(&server);
    // Pings are answered meanwhile, so only the connect timeout can close it.
    let deadline = Instant::now() + Duration::from_millis(2500);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match ws_recv(&mut ws, remaining) {
            WsEvent::Text(t) if t == "2" => ws_send_text(&mut ws, "3"),
            WsEvent::Text(t) if t == "1" => {}
            WsEvent::Closed => break,
            other => panic!("unexpected {other:?} before the connect timeout"),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "closed after {elapsed:?}, before connectTimeout 1000 ms"
    );
    assert!(
        elapsed < Duration::from_millis(1800),
        "closed only after {elapsed:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Over polling
// ---------------------------------------------------------------------------------------------

#[test]
fn polling_connect_event_and_ack() {
    let server = start_socketio(|_| {});
    let (sid, open) = server.handshake();
    assert_open_packet(&open, &["websocket"], &server.config);
    server.post_ok(&sid, "40");
    let packets = server.get_n_skipping_pings(&sid, 2);
    assert!(
        json_after(&packets[0], "40")["sid"].is_string(),
        "{packets:?}"
    );
    assert_ne!(json_after(&packets[0], "40")["sid"], json!(sid));
    assert_eq!(packets[1], r#"42["auth",{}]"#);
    server.post_ok(&sid, r#"42["message",1,"2",{"3":[true]}]"#);
    assert_eq!(
        server.get_n_skipping_pings(&sid, 1),
        [r#"42["message-back",1,"2",{"3":[true]}]"#]
    );
    server.post_ok(&sid, r#"4212["message-with-ack","a"]"#);
    assert_eq!(server.get_n_skipping_pings(&sid, 1), [r#"4312["a"]"#]);
}

#[test]
fn upgraded_socketio_session_keeps_its_namespace() {
    let server = start_socketio(quiet);
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    server.get_n_skipping_pings(&sid, 2);
    let mut ws = server.ws(Some(&sid));
    ws_send_text(&mut ws, "2probe");
    assert_eq!(ws_expect_text(&mut ws), "3probe");
    server.post_ok(&sid, r#"42["message","queued"]"#);
    ws_send_text(&mut ws, "5");
    assert_eq!(ws_expect_text(&mut ws), r#"42["message-back","queued"]"#);
    ws_send_text(&mut ws, r#"42["message","over-ws"]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"42["message-back","over-ws"]"#);
}

#[test]
fn many_socketio_clients_across_shards() {
    let server = start_socketio(|c| {
        quiet(c);
        c.shards = 4;
    });
    let server = &server;
    thread::scope(|scope| {
        let workers: Vec<_> = (0..20)
            .map(|i| {
                scope.spawn(move || {
                    if i % 2 == 0 {
                        let mut ws = connected_ws(server);
                        ws_send_text(&mut ws, &format!(r#"42["message",{i}]"#));
                        assert_eq!(
                            ws_expect_text(&mut ws),
                            format!(r#"42["message-back",{i}]"#)
                        );
                    } else {
                        let (sid, _) = server.handshake();
                        server.post_ok(&sid, "40");
                        server.get_n_skipping_pings(&sid, 2);
                        server.post_ok(&sid, &format!(r#"42["message",{i}]"#));
                        assert_eq!(
                            server.get_n_skipping_pings(&sid, 1),
                            [format!(r#"42["message-back",{i}]"#)]
                        );
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("client");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// A room broadcast on every shard (the rooms handler)
// ---------------------------------------------------------------------------------------------

fn start_rooms(shards: usize) -> TestServer {
    start_server(RoomsHandler, |c| {
        quiet(c);
        c.path = "/socket.io/".into();
        c.shards = shards;
    })
}

fn rooms_client(server: &TestServer) -> Ws {
    let (mut ws, _) = sio_ws(server);
    ws_send_text(&mut ws, "40");
    let answer = ws_expect_text(&mut ws);
    assert!(json_after(&answer, "40")["sid"].is_string(), "{answer:?}");
    ws
}

fn broadcast_across_shards(shards: usize) {
    let server = start_rooms(shards);
    let mut members: Vec<Ws> = (0..8).map(|_| rooms_client(&server)).collect();
    for (i, ws) in members.iter_mut().enumerate() {
        ws_send_text(ws, &format!(r#"42{i}["join","room"]"#));
        assert_eq!(ws_expect_text(ws), format!(r#"43{i}["room"]"#));
    }
    let mut outsider = rooms_client(&server);
    // A polling member too.
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    server.get_n_skipping_pings(&sid, 1);
    server.post_ok(&sid, r#"429["join","room"]"#);
    assert_eq!(server.get_n_skipping_pings(&sid, 1), [r#"439["room"]"#]);

    ws_send_text(&mut members[0], r#"42["shout","room","hi"]"#);
    for (i, ws) in members.iter_mut().enumerate().skip(1) {
        assert_eq!(ws_expect_text(ws), r#"42["shout","hi"]"#, "member {i}");
    }
    assert_eq!(
        server.get_n_skipping_pings(&sid, 1),
        [r#"42["shout","hi"]"#]
    );
    assert_eq!(
        ws_recv_skipping_pings(&mut members[0], Duration::from_millis(150)),
        WsEvent::Timeout,
        "the sender is excluded"
    );
    assert_eq!(
        ws_recv_skipping_pings(&mut outsider, Duration::from_millis(50)),
        WsEvent::Timeout,
        "non-members get nothing"
    );
}

#[test]
fn broadcast_reaches_room_members_on_every_shard() {
    broadcast_across_shards(4);
}
