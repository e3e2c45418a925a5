//! Socket.IO v5 on the deterministic endpoint pair (no sockets, a virtual clock), against the
//! conformance handler on `/socket.io/` and the rooms handler of `pair_support::rooms`:
//! connecting, namespaces, events and acks, binary packets, invalid packets, the connect
//! timeout, polling, refusals, server-side disconnects and acks, a room broadcast. Moved from
//! `tests/socketio_protocol.rs`, asserting the same packets in the same order; what needs real
//! sockets or several shards stays there.

mod pair_support;

use std::time::Duration;

use pair_support::rooms::RoomsHandler;
use pair_support::*;
use readrealm_chat::config::Layer;
use readrealm_chat::endpoint::pair::{ConnState, Pair};
use readrealm_chat::endpoint::{ConnId, WsMessage};
use readrealm_chat::engineio::packet::Frame;
use readrealm_chat::socketio::conformance::{ConformanceSocketIo, AUTH_DELAY};
use readrealm_chat::socketio::Handler;
use serde_json::{json, Value};

/// Split `<prefix><json>` and parse the JSON.
fn json_after(packet: &str, prefix: &str) -> Value {
    let rest = packet
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{packet:?} does not start with {prefix:?}"));
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("{packet:?}: bad JSON after prefix ({e})"))
}

/// The frames sent to `ws` once the conformance handler's `auth` delay has passed.
fn recv<H: Handler>(pair: &mut Pair<H>, ws: ConnId) -> Vec<Frame> {
    pair.advance(AUTH_DELAY);
    pair.take_frames(ws)
}

/// Like [`recv`], the text frames as text (there must be no binary frame).
fn recv_texts<H: Handler>(pair: &mut Pair<H>, ws: ConnId) -> Vec<String> {
    recv(pair, ws)
        .into_iter()
        .map(|frame| match frame {
            Frame::Text(bytes) => String::from_utf8(bytes.to_vec()).expect("UTF-8"),
            Frame::Binary(bytes) => panic!("a binary frame {bytes:?}"),
        })
        .collect()
}

/// A WebSocket Engine.IO session on the Socket.IO endpoint; its Engine.IO sid.
fn sio_ws<H: Handler>(pair: &mut Pair<H>) -> (ConnId, String) {
    let (ws, open) = ws_session(pair);
    (ws, open["sid"].as_str().unwrap().to_owned())
}

/// A WebSocket session connected to `/` (the CONNECT answer and the `auth` event taken).
fn connected_ws(pair: &mut Pair<ConformanceSocketIo>) -> ConnId {
    let (ws, _) = sio_ws(pair);
    pair.ws_text(ws, "40");
    let got = recv_texts(pair, ws);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(json_after(&got[0], "40")["sid"].is_string(), "{got:?}");
    assert_eq!(got[1], r#"42["auth",{}]"#);
    ws
}

/// The connection is closed and nothing but an Engine.IO close packet preceded the close.
fn assert_sio_closed<H: Handler>(pair: &mut Pair<H>, ws: ConnId, what: &str) {
    let seen = pair.take_frames(ws);
    assert!(
        seen.iter().all(|f| *f == text("1")),
        "{what}: got {seen:?} instead of a close"
    );
    assert_eq!(
        pair.state(ws),
        Some(ConnState::Closed),
        "{what}: still open"
    );
}

/// The packets of polling GETs for `sid` once the `auth` delay has passed, skipping pings
/// (answered), until `n` arrived.
fn get_n<H: Handler>(pair: &mut Pair<H>, sid: &str, n: usize) -> Vec<String> {
    pair.advance(AUTH_DELAY);
    let mut packets = Vec::new();
    while packets.len() < n {
        for packet in get_packets(pair, sid) {
            if packet == "2" {
                post_ok(pair, sid, "3");
            } else {
                packets.push(packet);
            }
        }
    }
    packets
}

fn quiet_socketio() -> Pair<ConformanceSocketIo> {
    socketio(quiet)
}

// Connecting

#[test]
fn connect_with_auth_echoes_auth() {
    let mut pair = socketio(|_| {});
    let (ws, _) = sio_ws(&mut pair);
    pair.ws_text(ws, r#"40{"token":"123"}"#);
    let got = recv_texts(&mut pair, ws);
    assert!(json_after(&got[0], "40")["sid"].is_string(), "{got:?}");
    assert_eq!(json_after(&got[1], "42"), json!(["auth", {"token": "123"}]));
}

#[test]
fn connect_to_custom_namespace() {
    let mut pair = socketio(|_| {});
    let (ws, _) = sio_ws(&mut pair);
    pair.ws_text(ws, "40/custom,");
    let got = recv_texts(&mut pair, ws);
    assert!(
        json_after(&got[0], "40/custom,")["sid"].is_string(),
        "{got:?}"
    );
    assert_eq!(got[1], r#"42/custom,["auth",{}]"#);
    // With auth, too, on another connection.
    let (ws, _) = sio_ws(&mut pair);
    pair.ws_text(ws, r#"40/custom,{"a":[1]}"#);
    let got = recv_texts(&mut pair, ws);
    assert!(
        json_after(&got[0], "40/custom,")["sid"].is_string(),
        "{got:?}"
    );
    assert_eq!(
        json_after(&got[1], "42/custom,"),
        json!(["auth", {"a": [1]}])
    );
}

#[test]
fn connect_to_two_namespaces_gives_two_ids() {
    let mut pair = socketio(|_| {});
    let ws = connected_ws(&mut pair);
    pair.ws_text(ws, "40/custom,");
    let got = recv_texts(&mut pair, ws);
    assert!(json_after(&got[0], "40/custom,")["sid"].is_string());
    assert_eq!(got[1], r#"42/custom,["auth",{}]"#);
    pair.ws_text(ws, r#"42/custom,["message","c"]"#);
    assert_eq!(pair.take_texts(ws), [r#"42/custom,["message-back","c"]"#]);
    pair.ws_text(ws, r#"42["message","m"]"#);
    assert_eq!(pair.take_texts(ws), [r#"42["message-back","m"]"#]);
}

#[test]
fn connect_to_unknown_namespace_is_refused() {
    let mut pair = socketio(|_| {});
    let (ws, _) = sio_ws(&mut pair);
    pair.ws_text(ws, "40/random,");
    let got = pair.take_texts(ws);
    assert_eq!(
        json_after(&got[0], "44/random,"),
        json!({"message": "Invalid namespace"})
    );
    // The connection stays usable for a valid namespace.
    pair.ws_text(ws, "40");
    let got = pair.take_texts(ws);
    assert!(json_after(&got[0], "40")["sid"].is_string(), "{got:?}");
}

// Events and acks

#[test]
fn event_with_unicode_and_nested_data_roundtrips() {
    let mut pair = socketio(|_| {});
    let ws = connected_ws(&mut pair);
    let args = json!(["message", "héllo €𝄞", null, [1.5, -2, {"a": {"b": [false]}}], "\u{1e}"]);
    pair.ws_text(ws, &format!("42{args}"));
    let back = pair.take_texts(ws);
    let mut expected = args.clone();
    expected[0] = json!("message-back");
    assert_eq!(json_after(&back[0], "42"), expected);
}

#[test]
fn event_with_ack_is_acknowledged() {
    let mut pair = socketio(|_| {});
    let ws = connected_ws(&mut pair);
    pair.ws_text(ws, r#"42456["message-with-ack",1]"#);
    assert_eq!(pair.take_texts(ws), ["43456[1]"]);
    pair.ws_text(ws, r#"421["message-with-ack",1,"2",{"3":[false]}]"#);
    assert_eq!(pair.take_texts(ws), [r#"431[1,"2",{"3":[false]}]"#]);
    pair.ws_text(ws, r#"420["message-with-ack"]"#);
    assert_eq!(pair.take_texts(ws), ["430[]"]);
}

#[test]
fn ack_in_custom_namespace_keeps_namespace() {
    let mut pair = socketio(|_| {});
    let (ws, _) = sio_ws(&mut pair);
    pair.ws_text(ws, "40/custom,");
    assert_eq!(recv(&mut pair, ws).len(), 2);
    pair.ws_text(ws, r#"42/custom,7["message-with-ack","x"]"#);
    assert_eq!(pair.take_texts(ws), [r#"43/custom,7["x"]"#]);
}

#[test]
fn binary_event_with_two_attachments_keeps_their_order() {
    let mut pair = socketio(|_| {});
    let ws = connected_ws(&mut pair);
    pair.ws_text(
        ws,
        r#"452-["message",{"_placeholder":true,"num":0},{"x":[{"_placeholder":true,"num":1}]}]"#,
    );
    pair.ws_send(ws, WsMessage::Binary(vec![0xaa].into()));
    pair.ws_send(ws, WsMessage::Binary(vec![0xbb, 0xcc].into()));
    let got = pair.take_frames(ws);
    assert_eq!(got.len(), 3, "{got:?}");
    let Frame::Text(header) = &got[0] else {
        panic!("{got:?}")
    };
    let header = String::from_utf8_lossy(header);
    assert_eq!(
        json_after(&header, "452-"),
        json!([
            "message-back",
            {"_placeholder": true, "num": 0},
            {"x": [{"_placeholder": true, "num": 1}]}
        ]),
        "{header:?}"
    );
    assert_eq!(got[1..], [binary(&[0xaa]), binary(&[0xbb, 0xcc])]);
}

#[test]
fn binary_ack_carries_its_attachment() {
    let mut pair = socketio(|_| {});
    let ws = connected_ws(&mut pair);
    pair.ws_text(
        ws,
        r#"451-789["message-with-ack",{"_placeholder":true,"num":0}]"#,
    );
    pair.ws_send(ws, WsMessage::Binary(vec![4, 5, 6].into()));
    let got = pair.take_frames(ws);
    assert_eq!(got.len(), 2, "{got:?}");
    let Frame::Text(header) = &got[0] else {
        panic!("{got:?}")
    };
    let header = String::from_utf8_lossy(header);
    assert_eq!(
        json_after(&header, "461-789"),
        json!([{"_placeholder": true, "num": 0}]),
        "{header:?}"
    );
    assert_eq!(got[1], binary(&[4, 5, 6]));
}

#[test]
fn binary_packets_are_not_interleaved_with_other_packets() {
    let mut pair = socketio(|_| {});
    let ws = connected_ws(&mut pair);
    for i in 0..10u8 {
        pair.ws_text(ws, r#"451-["message",{"_placeholder":true,"num":0}]"#);
        pair.ws_send(ws, WsMessage::Binary(vec![i].into()));
        pair.ws_text(ws, &format!(r#"42["message",{i}]"#));
    }
    let got = pair.take_frames(ws);
    assert_eq!(got.len(), 30, "{got:?}");
    for (i, three) in got.chunks(3).enumerate() {
        let Frame::Text(header) = &three[0] else {
            panic!("{three:?}")
        };
        assert!(header.starts_with(b"451-"), "{header:?}");
        assert_eq!(three[1], binary(&[i as u8]));
        assert_eq!(three[2], text(&format!(r#"42["message-back",{i}]"#)));
    }
}

// Invalid packets and connection rules

#[test]
fn invalid_packets_close_the_connection() {
    let mut pair = quiet_socketio();
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
        let ws = connected_ws(&mut pair);
        pair.ws_text(ws, bad);
        assert_sio_closed(&mut pair, ws, bad);
    }
}

#[test]
fn numeric_event_name_is_accepted() {
    // "the first element is a string ... or a number"
    let mut pair = quiet_socketio();
    let ws = connected_ws(&mut pair);
    pair.ws_text(ws, "42[1,2]");
    pair.ws_text(ws, r#"42["message","still-open"]"#);
    assert_eq!(pair.take_texts(ws), [r#"42["message-back","still-open"]"#]);
}

#[test]
fn text_packet_while_attachments_awaited_closes() {
    let mut pair = quiet_socketio();
    let ws = connected_ws(&mut pair);
    pair.ws_text(ws, r#"451-["message",{"_placeholder":true,"num":0}]"#);
    pair.ws_text(ws, r#"42["message",1]"#);
    assert_sio_closed(&mut pair, ws, "text while awaiting an attachment");
}

#[test]
fn unexpected_binary_frame_closes() {
    let mut pair = quiet_socketio();
    let ws = connected_ws(&mut pair);
    pair.ws_send(ws, WsMessage::Binary(vec![1, 2, 3].into()));
    assert_sio_closed(&mut pair, ws, "binary frame with no binary packet pending");
}

#[test]
fn event_before_connect_closes() {
    let mut pair = quiet_socketio();
    let (ws, _) = sio_ws(&mut pair);
    pair.ws_text(ws, r#"42["message",1]"#);
    assert_sio_closed(&mut pair, ws, "event before CONNECT");
}

#[test]
fn disconnect_before_connect_closes() {
    let mut pair = quiet_socketio();
    let (ws, _) = sio_ws(&mut pair);
    pair.ws_text(ws, "41");
    assert_sio_closed(&mut pair, ws, "DISCONNECT before CONNECT");
}

#[test]
fn event_for_a_namespace_left_closes_the_connection() {
    let mut pair = quiet_socketio();
    let ws = connected_ws(&mut pair);
    pair.ws_text(ws, "41");
    // socket.io's client.ts treats a packet for a namespace it has no socket for as an
    // invalid state and closes the connection.
    pair.ws_text(ws, r#"42["message","after leaving"]"#);
    assert_sio_closed(&mut pair, ws, "event after 41");
}

#[test]
fn second_connect_to_a_joined_namespace_closes_the_connection() {
    let mut pair = quiet_socketio();
    let ws = connected_ws(&mut pair);
    pair.ws_text(ws, "40");
    assert_sio_closed(&mut pair, ws, "second 40");
}

/// Answer every ping on `ws` for `duration`, in steps of 10 ms; the packets other than pings.
fn run_answering_pings<H: Handler>(
    pair: &mut Pair<H>,
    ws: ConnId,
    duration: Duration,
) -> Vec<Frame> {
    let mut other = Vec::new();
    let step = Duration::from_millis(10);
    let mut passed = Duration::ZERO;
    while passed < duration && pair.state(ws) == Some(ConnState::WebSocket) {
        pair.advance(step);
        passed += step;
        for frame in pair.take_frames(ws) {
            if frame == text("2") {
                pair.ws_text(ws, "3");
            } else {
                other.push(frame);
            }
        }
    }
    other
}

#[test]
fn no_connect_within_connect_timeout_closes() {
    let mut pair = socketio(|_| {});
    let (ws, _) = sio_ws(&mut pair);
    // Pings are answered meanwhile, so only the connect timeout can close it.
    let seen = run_answering_pings(&mut pair, ws, Duration::from_millis(950));
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(
        pair.state(ws),
        Some(ConnState::WebSocket),
        "open before connectTimeout"
    );
    let seen = run_answering_pings(&mut pair, ws, Duration::from_millis(60));
    assert!(seen.iter().all(|f| *f == text("1")), "{seen:?}");
    assert_eq!(
        pair.state(ws),
        Some(ConnState::Closed),
        "closed at connectTimeout"
    );
}

#[test]
fn connect_in_time_cancels_connect_timeout() {
    let mut pair = socketio(|_| {});
    let (ws, _) = sio_ws(&mut pair);
    // Wait half the connect timeout, answering pings.
    assert!(run_answering_pings(&mut pair, ws, Duration::from_millis(500)).is_empty());
    pair.ws_text(ws, "40");
    assert_eq!(recv(&mut pair, ws).len(), 2);
    // Past the connect timeout, answering pings: still open.
    assert!(run_answering_pings(&mut pair, ws, Duration::from_millis(900)).is_empty());
    pair.ws_text(ws, r#"42["message","late"]"#);
    assert_eq!(pair.take_texts(ws), [r#"42["message-back","late"]"#]);
}

#[test]
fn disconnect_leaves_namespace_but_engineio_session_stays() {
    let mut pair = socketio(|_| {});
    let ws = connected_ws(&mut pair);
    pair.ws_text(ws, "41");
    // The Engine.IO session outlives the namespace: pings keep coming and can be answered,
    // and nothing closes it when the connect timeout passes.
    let mut pings = 0;
    for _ in 0..120 {
        pair.advance(Duration::from_millis(10));
        for frame in pair.take_frames(ws) {
            assert_eq!(frame, text("2"), "after 41");
            pings += 1;
            pair.ws_text(ws, "3");
        }
    }
    assert!(pings >= 2, "only {pings} pings after leaving the namespace");
    // It can connect again, with a new id.
    pair.ws_text(ws, "40");
    let got = recv_texts(&mut pair, ws);
    assert!(json_after(&got[0], "40")["sid"].is_string(), "{got:?}");
    assert_eq!(got[1], r#"42["auth",{}]"#);
}

#[test]
fn disconnect_from_one_namespace_keeps_the_others() {
    let mut pair = quiet_socketio();
    let ws = connected_ws(&mut pair);
    pair.ws_text(ws, "40/custom,");
    assert_eq!(recv(&mut pair, ws).len(), 2);
    pair.ws_text(ws, "41/custom,");
    pair.ws_text(ws, r#"42["message","main"]"#);
    assert_eq!(pair.take_texts(ws), [r#"42["message-back","main"]"#]);
    // `41/custom` without the trailing comma is valid too.
    pair.ws_text(ws, "40/custom,");
    assert_eq!(recv(&mut pair, ws).len(), 2);
    pair.ws_text(ws, "41/custom");
    pair.ws_text(ws, r#"42["message","main2"]"#);
    assert_eq!(pair.take_texts(ws), [r#"42["message-back","main2"]"#]);
    // /custom really was left: connecting again gives a fresh CONNECT answer and auth.
    pair.ws_text(ws, "40/custom,");
    let got = recv_texts(&mut pair, ws);
    assert!(got[0].starts_with("40/custom,{"));
    assert_eq!(got[1], r#"42/custom,["auth",{}]"#);
}

// Over polling

#[test]
fn polling_connect_with_auth_and_unknown_namespace() {
    let mut pair = quiet_socketio();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "40/random,\x1e40/custom,{\"k\":\"v\"}");
    let packets = get_n(&mut pair, &sid, 3);
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
    let mut pair = quiet_socketio();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "40");
    get_n(&mut pair, &sid, 2);
    post_ok(
        &mut pair,
        &sid,
        "451-[\"message\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID",
    );
    let packets = get_n(&mut pair, &sid, 2);
    assert_eq!(
        json_after(&packets[0], "451-"),
        json!(["message-back", {"_placeholder": true, "num": 0}])
    );
    assert_eq!(packets[1], "bAQID");
}

#[test]
fn polling_attachment_may_arrive_in_a_later_post() {
    let mut pair = quiet_socketio();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "40");
    get_n(&mut pair, &sid, 2);
    post_ok(
        &mut pair,
        &sid,
        r#"452-7["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    );
    post_ok(&mut pair, &sid, "bAQID");
    post_ok(&mut pair, &sid, "bBAU=");
    let packets = get_n(&mut pair, &sid, 3);
    assert_eq!(
        json_after(&packets[0], "462-7"),
        json!([{"_placeholder": true, "num": 0}, {"_placeholder": true, "num": 1}])
    );
    assert_eq!(&packets[1..], ["bAQID", "bBAU="]);
}

#[test]
fn polling_invalid_packet_closes_the_session() {
    let mut pair = quiet_socketio();
    for bad in ["42{}", "4abc", r#"42["disconnect"]"#] {
        let (sid, _) = handshake(&mut pair);
        post_ok(&mut pair, &sid, "40");
        get_n(&mut pair, &sid, 2);
        let _ = post(&mut pair, &sid, bad.as_bytes());
        assert_eio_error(&get(&mut pair, &sid), 1);
    }
}

#[test]
fn polling_invalid_packet_answers_parked_get_with_close() {
    let mut pair = quiet_socketio();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "40");
    get_n(&mut pair, &sid, 2);
    let get_conn = park_get(&mut pair, &sid);
    let _ = post(&mut pair, &sid, b"42{}");
    assert_eq!(parked_answer(&mut pair, get_conn).text(), "1");
}

#[test]
fn polling_event_before_connect_closes() {
    let mut pair = quiet_socketio();
    let (sid, _) = handshake(&mut pair);
    let _ = post(&mut pair, &sid, br#"42["message",1]"#);
    assert_eio_error(&get(&mut pair, &sid), 1);
}

#[test]
fn polling_no_connect_within_connect_timeout_closes() {
    let mut pair = socketio(|_| {});
    let (sid, _) = handshake(&mut pair);
    let started = pair.now();
    loop {
        assert!(
            pair.now() - started < Duration::from_millis(2500),
            "never closed"
        );
        let get_conn = park_get(&mut pair, &sid);
        let response = loop {
            pair.advance(Duration::from_millis(10));
            if let Some(answer) = pair.take_answer(get_conn) {
                break answer;
            }
        };
        let packets = decode_payload(&response.text());
        if packets.iter().any(|p| p == "1") {
            break;
        }
        for packet in packets {
            assert_eq!(packet, "2", "only pings before the connect timeout");
            post_ok(&mut pair, &sid, "3");
        }
    }
    let elapsed = pair.now() - started;
    assert!(
        elapsed >= Duration::from_millis(950),
        "closed after {elapsed:?}, before connectTimeout 1000 ms"
    );
    assert_eio_error(&get(&mut pair, &sid), 1);
}

#[test]
fn polling_disconnect_keeps_engineio_session() {
    let mut pair = socketio(|_| {});
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "40");
    get_n(&mut pair, &sid, 2);
    post_ok(&mut pair, &sid, "41");
    // Several heartbeats later the session is still there.
    let mut pings = 0;
    for _ in 0..4 {
        let get_conn = park_get(&mut pair, &sid);
        pair.advance(Duration::from_millis(300));
        let packets = decode_payload(&parked_answer(&mut pair, get_conn).text());
        for packet in packets {
            assert_eq!(packet, "2");
            pings += 1;
            post_ok(&mut pair, &sid, "3");
        }
    }
    assert!(pings >= 2, "{pings} pings");
    post_ok(&mut pair, &sid, "40");
    let packets = get_n(&mut pair, &sid, 2);
    assert!(packets[0].starts_with("40{"), "{packets:?}");
}

// Refusals, server-side disconnect and acks, a room broadcast (a richer handler)

fn rooms() -> Pair<RoomsHandler> {
    let mut config = base_config();
    quiet(&mut config);
    config.path = "/socket.io/".into();
    config.layer = Layer::SocketIo;
    Pair::new(config, RoomsHandler)
}

fn rooms_client(pair: &mut Pair<RoomsHandler>) -> ConnId {
    let (ws, _) = sio_ws(pair);
    pair.ws_text(ws, "40");
    let got = pair.take_texts(ws);
    assert!(json_after(&got[0], "40")["sid"].is_string(), "{got:?}");
    ws
}

#[test]
fn middleware_refusal_sends_connect_error_with_data() {
    let mut pair = rooms();
    let (ws, _) = sio_ws(&mut pair);
    pair.ws_text(ws, r#"40{"refuse":true}"#);
    let got = pair.take_texts(ws);
    assert_eq!(
        json_after(&got[0], "44"),
        json!({"message": "refused", "data": {"why": "test"}})
    );
    // Not connected: an event now is an error.
    pair.ws_text(ws, r#"42["shout","r","x"]"#);
    assert_sio_closed(&mut pair, ws, "event after a refused CONNECT");
}

#[test]
fn refused_connection_is_still_closed_at_connect_timeout() {
    let mut pair = rooms();
    let (ws, _) = sio_ws(&mut pair);
    pair.ws_text(ws, r#"40{"refuse":true}"#);
    assert!(pair.take_texts(ws)[0].starts_with("44{"));
    // No namespace is connected, so connectTimeout (1000 ms) still applies.
    assert!(run_answering_pings(&mut pair, ws, Duration::from_millis(950)).is_empty());
    assert_eq!(
        pair.state(ws),
        Some(ConnState::WebSocket),
        "open before connectTimeout"
    );
    let seen = run_answering_pings(&mut pair, ws, Duration::from_millis(1050));
    assert!(seen.iter().all(|f| *f == text("1")), "{seen:?}");
    assert_eq!(
        pair.state(ws),
        Some(ConnState::Closed),
        "a connection whose only CONNECT was refused is still open"
    );
}

#[test]
fn server_side_disconnect_sends_41() {
    let mut pair = rooms();
    let ws = rooms_client(&mut pair);
    pair.ws_text(ws, r#"42["kick"]"#);
    assert_eq!(pair.take_texts(ws), ["41"]);
    // The Engine.IO session stays: connecting again works.
    pair.ws_text(ws, "40");
    let got = pair.take_texts(ws);
    assert!(got[0].starts_with("40{"), "{got:?}");
}

#[test]
fn server_emit_with_ack_receives_client_ack() {
    let mut pair = rooms();
    let ws = rooms_client(&mut pair);
    pair.ws_text(ws, r#"42["ask"]"#);
    let question = pair.take_texts(ws).remove(0);
    let rest = question.strip_prefix("42").expect("event");
    let bracket = rest.find('[').expect("JSON array");
    let id: u64 = rest[..bracket].parse().expect("an ack id before the JSON");
    assert_eq!(
        serde_json::from_str::<Value>(&rest[bracket..]).unwrap(),
        json!(["question", "?"])
    );
    pair.ws_text(ws, &format!(r#"43{id}["yes",2]"#));
    let answer = pair.take_texts(ws).remove(0);
    assert_eq!(json_after(&answer, "42"), json!(["answer", id, ["yes", 2]]));
}

#[test]
fn broadcast_reaches_room_members_on_one_shard() {
    let mut pair = rooms();
    let members: Vec<ConnId> = (0..8).map(|_| rooms_client(&mut pair)).collect();
    for (i, &ws) in members.iter().enumerate() {
        pair.ws_text(ws, &format!(r#"42{i}["join","room"]"#));
        assert_eq!(pair.take_texts(ws), [format!(r#"43{i}["room"]"#)]);
    }
    let outsider = rooms_client(&mut pair);
    // A polling member too.
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "40");
    get_n(&mut pair, &sid, 1);
    post_ok(&mut pair, &sid, r#"429["join","room"]"#);
    assert_eq!(get_n(&mut pair, &sid, 1), [r#"439["room"]"#]);

    pair.ws_text(members[0], r#"42["shout","room","hi"]"#);
    pair.turn_end();
    for (i, &ws) in members.iter().enumerate().skip(1) {
        assert_eq!(pair.take_texts(ws), [r#"42["shout","hi"]"#], "member {i}");
    }
    assert_eq!(get_n(&mut pair, &sid, 1), [r#"42["shout","hi"]"#]);
    assert!(
        pair.take_frames(members[0]).is_empty(),
        "the sender is excluded"
    );
    assert!(
        pair.take_frames(outsider).is_empty(),
        "non-members get nothing"
    );
}
