//! Socket.IO v5 against the conformance handler on `/socket.io/`, over real sockets
//! (docs/PROTOCOL.md "Socket.IO v5" and "The conformance test server"), mostly over WebSocket and a
//! few cases over polling.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use readrealm_chat::socketio::{Event, Handler, Refusal, Socket};
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

/// Assert the connection is closed (within the connect-timeout-independent IO_TIMEOUT) and
/// that nothing but an Engine.IO close packet preceded the close.
fn assert_ws_closed(ws: &mut Ws, what: &str) {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match ws_recv(ws, remaining) {
            WsEvent::Closed => return,
            WsEvent::Timeout => panic!("{what}: connection still open"),
            WsEvent::Text(t) if t == "2" => ws_send_text(ws, "3"),
            WsEvent::Text(t) if t == "1" => {}
            other => panic!("{what}: got {other:?} instead of a close"),
        }
    }
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

#[test]
fn connect_with_auth_echoes_auth() {
    let server = start_socketio(|_| {});
    let (mut ws, _) = sio_ws(&server);
    ws_send_text(&mut ws, r#"40{"token":"123"}"#);
    let answer = ws_expect_text(&mut ws);
    assert!(json_after(&answer, "40")["sid"].is_string(), "{answer:?}");
    let auth = ws_expect_text(&mut ws);
    assert_eq!(json_after(&auth, "42"), json!(["auth", {"token": "123"}]));
}

#[test]
fn connect_to_custom_namespace() {
    let server = start_socketio(|_| {});
    let (mut ws, _) = sio_ws(&server);
    ws_send_text(&mut ws, "40/custom,");
    let answer = ws_expect_text(&mut ws);
    assert!(
        json_after(&answer, "40/custom,")["sid"].is_string(),
        "{answer:?}"
    );
    assert_eq!(ws_expect_text(&mut ws), r#"42/custom,["auth",{}]"#);
    // With auth, too, on another connection.
    let (mut ws, _) = sio_ws(&server);
    ws_send_text(&mut ws, r#"40/custom,{"a":[1]}"#);
    let answer = ws_expect_text(&mut ws);
    assert!(
        json_after(&answer, "40/custom,")["sid"].is_string(),
        "{answer:?}"
    );
    let auth = ws_expect_text(&mut ws);
    assert_eq!(json_after(&auth, "42/custom,"), json!(["auth", {"a": [1]}]));
}

#[test]
fn connect_to_two_namespaces_gives_two_ids() {
    let server = start_socketio(|_| {});
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, "40/custom,");
    let answer = ws_expect_text(&mut ws);
    assert!(json_after(&answer, "40/custom,")["sid"].is_string());
    assert_eq!(ws_expect_text(&mut ws), r#"42/custom,["auth",{}]"#);
    ws_send_text(&mut ws, r#"42/custom,["message","c"]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"42/custom,["message-back","c"]"#);
    ws_send_text(&mut ws, r#"42["message","m"]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"42["message-back","m"]"#);
}

#[test]
fn connect_to_unknown_namespace_is_refused() {
    let server = start_socketio(|_| {});
    let (mut ws, _) = sio_ws(&server);
    ws_send_text(&mut ws, "40/random,");
    let answer = ws_expect_text(&mut ws);
    assert_eq!(
        json_after(&answer, "44/random,"),
        json!({"message": "Invalid namespace"})
    );
    // The connection stays usable for a valid namespace.
    ws_send_text(&mut ws, "40");
    let answer = ws_expect_text(&mut ws);
    assert!(json_after(&answer, "40")["sid"].is_string(), "{answer:?}");
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
fn event_with_unicode_and_nested_data_roundtrips() {
    let server = start_socketio(|_| {});
    let mut ws = connected_ws(&server);
    let args = json!(["message", "héllo €𝄞", null, [1.5, -2, {"a": {"b": [false]}}], "\u{1e}"]);
    ws_send_text(&mut ws, &format!("42{args}"));
    let back = ws_expect_text(&mut ws);
    let mut expected = args.clone();
    expected[0] = json!("message-back");
    assert_eq!(json_after(&back, "42"), expected);
}

#[test]
fn event_with_ack_is_acknowledged() {
    let server = start_socketio(|_| {});
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, r#"42456["message-with-ack",1]"#);
    assert_eq!(ws_expect_text(&mut ws), "43456[1]");
    ws_send_text(&mut ws, r#"421["message-with-ack",1,"2",{"3":[false]}]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"431[1,"2",{"3":[false]}]"#);
    ws_send_text(&mut ws, r#"420["message-with-ack"]"#);
    assert_eq!(ws_expect_text(&mut ws), "430[]");
}

#[test]
fn ack_in_custom_namespace_keeps_namespace() {
    let server = start_socketio(|_| {});
    let (mut ws, _) = sio_ws(&server);
    ws_send_text(&mut ws, "40/custom,");
    ws_expect_text(&mut ws);
    ws_expect_text(&mut ws);
    ws_send_text(&mut ws, r#"42/custom,7["message-with-ack","x"]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"43/custom,7["x"]"#);
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

#[test]
fn binary_event_with_two_attachments_keeps_their_order() {
    let server = start_socketio(|_| {});
    let mut ws = connected_ws(&server);
    ws_send_text(
        &mut ws,
        r#"452-["message",{"_placeholder":true,"num":0},{"x":[{"_placeholder":true,"num":1}]}]"#,
    );
    ws_send_binary(&mut ws, &[0xaa]);
    ws_send_binary(&mut ws, &[0xbb, 0xcc]);
    let header = ws_expect_text(&mut ws);
    assert_eq!(
        json_after(&header, "452-"),
        json!([
            "message-back",
            {"_placeholder": true, "num": 0},
            {"x": [{"_placeholder": true, "num": 1}]}
        ]),
        "{header:?}"
    );
    assert_eq!(ws_expect_binary(&mut ws), [0xaa]);
    assert_eq!(ws_expect_binary(&mut ws), [0xbb, 0xcc]);
}

#[test]
fn binary_ack_carries_its_attachment() {
    let server = start_socketio(|_| {});
    let mut ws = connected_ws(&server);
    ws_send_text(
        &mut ws,
        r#"451-789["message-with-ack",{"_placeholder":true,"num":0}]"#,
    );
    ws_send_binary(&mut ws, &[4, 5, 6]);
    let header = ws_expect_text(&mut ws);
    assert_eq!(
        json_after(&header, "461-789"),
        json!([{"_placeholder": true, "num": 0}]),
        "{header:?}"
    );
    assert_eq!(ws_expect_binary(&mut ws), [4, 5, 6]);
}

#[test]
fn binary_packets_are_not_interleaved_with_other_packets() {
    let server = start_socketio(|_| {});
    let mut ws = connected_ws(&server);
    for i in 0..10u8 {
        ws_send_text(&mut ws, r#"451-["message",{"_placeholder":true,"num":0}]"#);
        ws_send_binary(&mut ws, &[i]);
        ws_send_text(&mut ws, &format!(r#"42["message",{i}]"#));
    }
    for i in 0..10u8 {
        let header = ws_expect_text(&mut ws);
        assert!(header.starts_with("451-"), "{header:?}");
        assert_eq!(ws_expect_binary(&mut ws), [i]);
        assert_eq!(
            ws_expect_text(&mut ws),
            format!(r#"42["message-back",{i}]"#)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Invalid packets and connection rules
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_packets_close_the_connection() {
    let server = start_socketio(quiet);
    let cases = [
        "4abc",                // unknown packet type
        "4",                   // empty Socket.IO packet
        "42{}",                // EVENT data not an array
        "42abc[\"x\"]",        // garbage before the JSON
        "42",                  // EVENT without data
        "42[]",                // EVENT with an empty array
        "42[{}]",              // EVENT name not a string
        "42[null]",            // EVENT name not a string
        r#"42["disconnect"]"#, // reserved event names
        r#"42["connect"]"#,
        r#"42["connect_error"]"#,
        r#"42["disconnecting"]"#,
        r#"42["newListener"]"#,
        r#"42["removeListener"]"#,
        r#"40"str""#, // CONNECT data not an object
        "40[1]",
        "41{}",     // DISCONNECT carries no data
        r#"43"x""#, // ACK data not an array
        "431{}",
        r#"44{"message":"x"}"#, // CONNECT_ERROR is server-to-client
        "42[\"message\"",       // truncated JSON
        "451-[\"message\"]x",
        "2", // an Engine.IO ping from the client (v4: server pings)
    ];
    for bad in cases {
        let mut ws = connected_ws(&server);
        ws_send_text(&mut ws, bad);
        assert_ws_closed(&mut ws, bad);
    }
}

#[test]
fn numeric_event_name_is_accepted() {
    // "the first element is a string ... or a number"
    let server = start_socketio(quiet);
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, "42[1,2]");
    ws_send_text(&mut ws, r#"42["message","still-open"]"#);
    assert_eq!(
        ws_expect_text(&mut ws),
        r#"42["message-back","still-open"]"#
    );
}

#[test]
fn text_packet_while_attachments_awaited_closes() {
    let server = start_socketio(quiet);
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, r#"451-["message",{"_placeholder":true,"num":0}]"#);
    ws_send_text(&mut ws, r#"42["message",1]"#);
    assert_ws_closed(&mut ws, "text while awaiting an attachment");
}

#[test]
fn unexpected_binary_frame_closes() {
    let server = start_socketio(quiet);
    let mut ws = connected_ws(&server);
    ws_send_binary(&mut ws, &[1, 2, 3]);
    assert_ws_closed(&mut ws, "binary frame with no binary packet pending");
}

#[test]
fn event_before_connect_closes() {
    let server = start_socketio(quiet);
    let (mut ws, _) = sio_ws(&server);
    ws_send_text(&mut ws, r#"42["message",1]"#);
    assert_ws_closed(&mut ws, "event before CONNECT");
}

#[test]
fn disconnect_before_connect_closes() {
    let server = start_socketio(quiet);
    let (mut ws, _) = sio_ws(&server);
    ws_send_text(&mut ws, "41");
    assert_ws_closed(&mut ws, "DISCONNECT before CONNECT");
}

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

#[test]
fn connect_in_time_cancels_connect_timeout() {
    let server = start_socketio(|_| {});
    let (mut ws, _) = sio_ws(&server);
    // Wait half the connect timeout, answering pings.
    assert_eq!(
        ws_recv_skipping_pings(&mut ws, Duration::from_millis(500)),
        WsEvent::Timeout
    );
    ws_send_text(&mut ws, "40");
    ws_expect_text(&mut ws);
    ws_expect_text(&mut ws);
    // Past the connect timeout, answering pings: still open.
    let deadline = Instant::now() + Duration::from_millis(900);
    while Instant::now() < deadline {
        match ws_recv(&mut ws, deadline.saturating_duration_since(Instant::now())) {
            WsEvent::Text(t) if t == "2" => ws_send_text(&mut ws, "3"),
            WsEvent::Timeout => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    ws_send_text(&mut ws, r#"42["message","late"]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"42["message-back","late"]"#);
}

#[test]
fn disconnect_leaves_namespace_but_engineio_session_stays() {
    let server = start_socketio(|_| {});
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, "41");
    // The Engine.IO session outlives the namespace: pings keep coming and can be answered,
    // and nothing closes it when the connect timeout passes.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_millis(1200) {
        match ws_recv(
            &mut ws,
            Duration::from_millis(1300).saturating_sub(started.elapsed()),
        ) {
            WsEvent::Text(t) if t == "2" => {
                pings += 1;
                ws_send_text(&mut ws, "3");
            }
            WsEvent::Timeout => break,
            other => panic!("after 41: unexpected {other:?}"),
        }
    }
    assert!(pings >= 2, "only {pings} pings after leaving the namespace");
    // It can connect again, with a new id.
    ws_send_text(&mut ws, "40");
    let answer = ws_expect_text(&mut ws);
    assert!(json_after(&answer, "40")["sid"].is_string(), "{answer:?}");
    assert_eq!(ws_expect_text(&mut ws), r#"42["auth",{}]"#);
}

#[test]
fn disconnect_from_one_namespace_keeps_the_others() {
    let server = start_socketio(quiet);
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, "40/custom,");
    ws_expect_text(&mut ws);
    ws_expect_text(&mut ws);
    ws_send_text(&mut ws, "41/custom,");
    ws_send_text(&mut ws, r#"42["message","main"]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"42["message-back","main"]"#);
    // `41/custom` without the trailing comma is valid too.
    ws_send_text(&mut ws, "40/custom,");
    ws_expect_text(&mut ws);
    ws_expect_text(&mut ws);
    ws_send_text(&mut ws, "41/custom");
    ws_send_text(&mut ws, r#"42["message","main2"]"#);
    assert_eq!(ws_expect_text(&mut ws), r#"42["message-back","main2"]"#);
    // /custom really was left: connecting again gives a fresh CONNECT answer and auth.
    ws_send_text(&mut ws, "40/custom,");
    assert!(ws_expect_text(&mut ws).starts_with("40/custom,{"));
    assert_eq!(ws_expect_text(&mut ws), r#"42/custom,["auth",{}]"#);
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
fn polling_connect_with_auth_and_unknown_namespace() {
    let server = start_socketio(quiet);
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40/random,\x1e40/custom,{\"k\":\"v\"}");
    let packets = server.get_n_skipping_pings(&sid, 3);
    assert_eq!(
        json_after(&packets[0], "44/random,"),
        json!({"message": "Invalid namespace"})
    );
    assert!(
        json_after(&packets[1], "40/custom,")["sid"].is_string(),
        "{packets:?}"
    );
    assert_eq!(
        json_after(&packets[2], "42/custom,"),
        json!(["auth", {"k": "v"}])
    );
}

#[test]
fn polling_binary_event_roundtrips() {
    let server = start_socketio(quiet);
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    server.get_n_skipping_pings(&sid, 2);
    server.post_ok(
        &sid,
        "451-[\"message\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID",
    );
    let packets = server.get_n_skipping_pings(&sid, 2);
    assert_eq!(
        json_after(&packets[0], "451-"),
        json!(["message-back", {"_placeholder": true, "num": 0}])
    );
    assert_eq!(packets[1], "bAQID");
}

#[test]
fn polling_attachment_may_arrive_in_a_later_post() {
    let server = start_socketio(quiet);
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    server.get_n_skipping_pings(&sid, 2);
    server.post_ok(
        &sid,
        r#"452-7["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    );
    server.post_ok(&sid, "bAQID");
    server.post_ok(&sid, "bBAU=");
    let packets = server.get_n_skipping_pings(&sid, 3);
    assert_eq!(
        json_after(&packets[0], "462-7"),
        json!([{"_placeholder": true, "num": 0}, {"_placeholder": true, "num": 1}])
    );
    assert_eq!(&packets[1..], ["bAQID", "bBAU="]);
}

#[test]
fn polling_invalid_packet_closes_the_session() {
    let server = start_socketio(quiet);
    for bad in ["42{}", "4abc", r#"42["disconnect"]"#] {
        let (sid, _) = server.handshake();
        server.post_ok(&sid, "40");
        server.get_n_skipping_pings(&sid, 2);
        let _ = server.post(&sid, bad.as_bytes());
        assert_eio_error(&server.get(&sid), 1);
    }
}

#[test]
fn polling_invalid_packet_answers_parked_get_with_close() {
    let server = start_socketio(quiet);
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    server.get_n_skipping_pings(&sid, 2);
    let mut get = server.http();
    get.send("GET", &server.polling_target(Some(&sid)), &[], b"");
    assert!(get
        .try_read_response(Duration::from_millis(150))
        .unwrap()
        .is_none());
    let _ = server.post(&sid, b"42{}");
    assert_eq!(get.read_response().text(), "1");
}

#[test]
fn polling_event_before_connect_closes() {
    let server = start_socketio(quiet);
    let (sid, _) = server.handshake();
    let _ = server.post(&sid, br#"42["message",1]"#);
    assert_eio_error(&server.get(&sid), 1);
}

#[test]
fn polling_no_connect_within_connect_timeout_closes() {
    let server = start_socketio(|_| {});
    let started = Instant::now();
    let (sid, _) = server.handshake();
    loop {
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "never closed"
        );
        let response = server.get(&sid);
        if response.status == 400 {
            assert_eio_error(&response, 1);
            break;
        }
        let packets = decode_payload(&response.text());
        if packets.iter().any(|p| p == "1") {
            break;
        }
        for packet in packets {
            assert_eq!(packet, "2", "only pings before the connect timeout");
            server.post_ok(&sid, "3");
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "closed after {elapsed:?}, before connectTimeout 1000 ms"
    );
    assert_eio_error(&server.get(&sid), 1);
}

#[test]
fn polling_disconnect_keeps_engineio_session() {
    let server = start_socketio(|_| {});
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "40");
    server.get_n_skipping_pings(&sid, 2);
    server.post_ok(&sid, "41");
    // Several heartbeats later the session is still there.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_millis(1100) {
        for packet in server.get_packets(&sid) {
            assert_eq!(packet, "2");
            pings += 1;
            server.post_ok(&sid, "3");
        }
    }
    assert!(pings >= 2, "{pings} pings");
    server.post_ok(&sid, "40");
    let packets = server.get_n_skipping_pings(&sid, 2);
    assert!(packets[0].starts_with("40{"), "{packets:?}");
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
// Refusals, server-side disconnect and acks, rooms and broadcasts (a richer handler)
// ---------------------------------------------------------------------------------------------

/// `/` only. CONNECT with `{"refuse":true}` is refused with data. Events: `join` (room, acked
/// once joined), `shout` (room, text: broadcast to the room except the sender), `kick`
/// (server-side disconnect), `ask` (emit `question` with an ack; the client's answer comes
/// back as `answer`).
struct RoomsHandler;

impl Handler for RoomsHandler {
    type State = ();
    type Shard = ();
    type Forward = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn on_connect(&self, _socket: &mut Socket<'_, ()>, auth: &Value) -> Result<(), Refusal> {
        if auth["refuse"] == json!(true) {
            return Err(Refusal {
                message: "refused".into(),
                data: Some(json!({"why": "test"})),
            });
        }
        Ok(())
    }

    fn on_event(&self, socket: &mut Socket<'_, ()>, event: Event) {
        let Ok(args) = event.args() else { return };
        match event.name() {
            Some("join") => {
                let room = args[0].as_str().unwrap_or_default().to_owned();
                socket.join(&room);
                if let Some(id) = event.ack_id {
                    socket.ack(id, vec![json!(room)], Vec::new());
                }
            }
            Some("shout") => {
                let room = args[0].as_str().unwrap_or_default().to_owned();
                socket.broadcast(&room, "shout", vec![args[1].clone()], true);
            }
            Some("kick") => socket.disconnect(),
            Some("ask") => {
                socket.emit_with_ack("question", vec![json!("?")]);
            }
            _ => {}
        }
    }

    fn on_ack(&self, socket: &mut Socket<'_, ()>, ack_id: u64, data: Value) {
        socket.emit("answer", vec![json!(ack_id), data]);
    }
}

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

#[test]
fn middleware_refusal_sends_connect_error_with_data() {
    let server = start_rooms(1);
    let (mut ws, _) = sio_ws(&server);
    ws_send_text(&mut ws, r#"40{"refuse":true}"#);
    let answer = ws_expect_text(&mut ws);
    assert_eq!(
        json_after(&answer, "44"),
        json!({"message": "refused", "data": {"why": "test"}})
    );
    // Not connected: an event now is an error.
    ws_send_text(&mut ws, r#"42["shout","r","x"]"#);
    assert_ws_closed(&mut ws, "event after a refused CONNECT");
}

#[test]
fn refused_connection_is_still_closed_at_connect_timeout() {
    let server = start_rooms(1);
    let started = Instant::now();
    let (mut ws, _) = sio_ws(&server);
    ws_send_text(&mut ws, r#"40{"refuse":true}"#);
    assert!(ws_expect_text(&mut ws).starts_with("44{"));
    // No namespace is connected, so connectTimeout (1000 ms) still applies.
    let deadline = started + Duration::from_millis(2000);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match ws_recv(&mut ws, remaining) {
            WsEvent::Text(t) if t == "2" => ws_send_text(&mut ws, "3"),
            WsEvent::Text(t) if t == "1" => {}
            WsEvent::Closed => break,
            WsEvent::Timeout => panic!(
                "a connection whose only CONNECT was refused is still open {:?} after the handshake",
                started.elapsed()
            ),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn server_side_disconnect_sends_41() {
    let server = start_rooms(1);
    let mut ws = rooms_client(&server);
    ws_send_text(&mut ws, r#"42["kick"]"#);
    assert_eq!(ws_expect_text(&mut ws), "41");
    // The Engine.IO session stays: connecting again works.
    ws_send_text(&mut ws, "40");
    let answer = ws_expect_text(&mut ws);
    assert!(answer.starts_with("40{"), "{answer:?}");
}

#[test]
fn server_emit_with_ack_receives_client_ack() {
    let server = start_rooms(1);
    let mut ws = rooms_client(&server);
    ws_send_text(&mut ws, r#"42["ask"]"#);
    let question = ws_expect_text(&mut ws);
    let rest = question.strip_prefix("42").expect("event");
    let bracket = rest.find('[').expect("JSON array");
    let id: u64 = rest[..bracket].parse().expect("an ack id before the JSON");
    assert_eq!(
        serde_json::from_str::<Value>(&rest[bracket..]).unwrap(),
        json!(["question", "?"])
    );
    ws_send_text(&mut ws, &format!(r#"43{id}["yes",2]"#));
    let answer = ws_expect_text(&mut ws);
    assert_eq!(json_after(&answer, "42"), json!(["answer", id, ["yes", 2]]));
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
fn broadcast_reaches_room_members_on_one_shard() {
    broadcast_across_shards(1);
}

#[test]
fn broadcast_reaches_room_members_on_every_shard() {
    broadcast_across_shards(4);
}

#[test]
fn event_for_a_namespace_left_closes_the_connection() {
    let server = start_socketio(quiet);
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, "41");
    // socket.io's client.ts treats a packet for a namespace it has no socket for as an
    // invalid state and closes the connection.
    ws_send_text(&mut ws, r#"42["message","after leaving"]"#);
    assert_ws_closed(&mut ws, "event after 41");
}

#[test]
fn second_connect_to_a_joined_namespace_closes_the_connection() {
    let server = start_socketio(quiet);
    let mut ws = connected_ws(&server);
    ws_send_text(&mut ws, "40");
    assert_ws_closed(&mut ws, "second 40");
}
