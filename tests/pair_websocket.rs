//! Engine.IO v4 over WebSocket and the polling → WebSocket upgrade, on the deterministic
//! endpoint pair (no sockets, a virtual clock). Moved from `tests/engineio_websocket.rs`,
//! asserting the same frames, codes and order; the WebSocket framing itself (large frames,
//! maxPayload at the frame reader, close frames on the wire, several shards) stays there.

mod pair_support;

use std::time::Duration;

use pair_support::*;
use readrealm_chat::endpoint::pair::{ConnState, Pair};
use readrealm_chat::endpoint::{status, ConnId, WsMessage};
use readrealm_chat::socketio::conformance::EchoEngine;

/// Polling handshake, WebSocket with the sid, `2probe` → `3probe`.
fn probed(pair: &mut Pair<EchoEngine>) -> (String, ConnId) {
    let (sid, _) = handshake(pair);
    let ws = ws(pair, Some(&sid));
    pair.ws_text(ws, "2probe");
    assert_eq!(pair.take_frames(ws), [text("3probe")]);
    (sid, ws)
}

/// A polling session fully upgraded to WebSocket.
fn upgraded(pair: &mut Pair<EchoEngine>) -> (String, ConnId) {
    let (sid, ws) = probed(pair);
    pair.ws_text(ws, "5");
    (sid, ws)
}

/// A second WebSocket for `sid` is refused: a 400, or accepted and closed with 1008 before
/// any frame.
fn assert_second_websocket_refused(pair: &mut Pair<EchoEngine>, sid: &str) {
    let target = websocket_target(pair, Some(sid));
    let second = pair.request(&ws_upgrade_bytes(&target));
    let answer = pair.take_answer(second).expect("an answer");
    if answer.status == 101 {
        assert!(
            pair.take_frames(second).is_empty(),
            "the second WebSocket got frames"
        );
        assert_ws_closed(pair, second, status::POLICY, "the session has a WebSocket");
    } else {
        assert_eq!(answer.status, 400, "{answer:?}");
    }
}

// WebSocket-only sessions

#[test]
fn websocket_handshake_sends_open_packet_with_no_upgrades() {
    let mut pair = engineio(|_| {});
    let (_, open) = ws_session(&mut pair);
    assert_open_packet(&open, &[], pair.config());
}

#[test]
fn websocket_messages_keep_their_order() {
    let mut pair = engineio_quiet();
    let (ws, _) = ws_session(&mut pair);
    for i in 0..50u8 {
        if i % 3 == 0 {
            pair.ws_send(ws, WsMessage::Binary(vec![i].into()));
        } else {
            pair.ws_text(ws, &format!("4m{i}"));
        }
    }
    let expected: Vec<_> = (0..50u8)
        .map(|i| {
            if i % 3 == 0 {
                binary(&[i])
            } else {
                text(&format!("4m{i}"))
            }
        })
        .collect();
    assert_eq!(pair.take_frames(ws), expected);
}

#[test]
fn first_websocket_ping_is_not_sent_at_once() {
    let mut pair = engineio(|_| {});
    let (ws, _) = ws_session(&mut pair);
    pair.advance(Duration::from_millis(250));
    assert!(pair.take_frames(ws).is_empty(), "no ping within 250 ms");
    pair.advance(Duration::from_millis(50));
    assert_eq!(pair.take_frames(ws), [text("2")]);
}

#[test]
fn server_pings_over_websocket_after_ping_interval() {
    let mut pair = engineio(|_| {});
    let (ws, _) = ws_session(&mut pair);
    for i in 0..3 {
        // Deadlines run within the endpoint's 1 ms timer slack.
        pair.advance(Duration::from_millis(298));
        assert!(
            pair.take_frames(ws).is_empty(),
            "ping {i} before pingInterval"
        );
        pair.advance(Duration::from_millis(2));
        assert_eq!(pair.take_frames(ws), [text("2")], "ping {i}");
        pair.ws_text(ws, "3");
    }
    pair.ws_text(ws, "4alive");
    assert_eq!(pair.take_frames(ws), [text("4alive")]);
}

#[test]
fn websocket_closed_when_no_pong() {
    let mut pair = engineio(|_| {});
    let (ws, _) = ws_session(&mut pair);
    pair.advance(Duration::from_millis(300));
    assert_eq!(pair.take_frames(ws), [text("2")]);
    pair.advance(Duration::from_millis(198));
    assert_eq!(
        pair.state(ws),
        Some(ConnState::WebSocket),
        "open within pingTimeout"
    );
    pair.advance(Duration::from_millis(2));
    let seen = pair.take_frames(ws);
    assert!(
        seen.iter().all(|f| *f == text("1")),
        "only a close packet may precede the close: {seen:?}"
    );
    assert_ws_closed(&pair, ws, status::NORMAL, "ping timeout");
}

#[test]
fn client_close_packet_closes_websocket() {
    let mut pair = engineio_quiet();
    let (ws, _) = ws_session(&mut pair);
    pair.ws_text(ws, "1");
    let seen = pair.take_frames(ws);
    assert!(seen.iter().all(|f| *f == text("1")), "{seen:?}");
    assert_ws_closed(&pair, ws, status::NORMAL, "client namespace disconnect");
}

#[test]
fn invalid_packet_over_websocket_closes_it() {
    let mut pair = engineio_quiet();
    for bad in ["x", "", "9", "0{}", "5"] {
        let (ws, _) = ws_session(&mut pair);
        pair.ws_text(ws, bad);
        assert_ws_closed(&pair, ws, status::NORMAL, "parse error");
    }
}

#[test]
fn client_ping_over_websocket_closes_it() {
    // v4: the server pings; a client ping is a protocol error.
    let mut pair = engineio_quiet();
    let (ws, _) = ws_session(&mut pair);
    pair.ws_text(ws, "2");
    let seen = pair.take_frames(ws);
    assert!(
        !seen.contains(&text("3")),
        "a client ping is not answered: {seen:?}"
    );
    assert_ws_closed(&pair, ws, status::NORMAL, "parse error");
}

#[test]
fn websocket_with_unknown_sid_is_refused_with_code_1() {
    let mut pair = engineio_quiet();
    let target = websocket_target(&pair, Some("nonexistent"));
    let conn = pair.request(&ws_upgrade_bytes(&target));
    let answer = pair.take_answer(conn).expect("an answer");
    assert_eq!(answer.status, 400, "handshake accepted for an unknown sid");
    let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON error body");
    assert_eq!(body["code"], 1, "{body}");
}

#[test]
fn websocket_session_cannot_be_polled() {
    let mut pair = engineio_quiet();
    let (ws, open) = ws_session(&mut pair);
    let sid = open["sid"].as_str().unwrap().to_owned();
    assert_eio_error(&get(&mut pair, &sid), 3);
    assert_eio_error(&post(&mut pair, &sid, b"4x"), 3);
    pair.ws_text(ws, "4still");
    assert_eq!(pair.take_frames(ws), [text("4still")]);
}

#[test]
fn second_websocket_for_websocket_session_is_closed() {
    let mut pair = engineio_quiet();
    let (ws, open) = ws_session(&mut pair);
    let sid = open["sid"].as_str().unwrap().to_owned();
    assert_second_websocket_refused(&mut pair, &sid);
    pair.ws_text(ws, "4first");
    assert_eq!(pair.take_frames(ws), [text("4first")]);
}

// Upgrade

#[test]
fn upgrade_probe_is_answered_with_3probe() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let ws = ws(&mut pair, Some(&sid));
    // No open packet on an upgrade WebSocket: the first frame is the probe answer.
    assert!(pair.take_frames(ws).is_empty());
    pair.ws_text(ws, "2probe");
    assert_eq!(pair.take_frames(ws), [text("3probe")]);
}

#[test]
fn upgrade_answers_pending_get_with_noop() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let get_conn = park_get(&mut pair, &sid);
    let ws = ws(&mut pair, Some(&sid));
    pair.ws_text(ws, "2probe");
    assert_eq!(pair.take_frames(ws), [text("3probe")]);
    let answered = parked_answer(&mut pair, get_conn);
    assert_eq!(answered.status, 200, "{answered:?}");
    assert_eq!(answered.text(), "6");
}

#[test]
fn upgrade_answers_new_get_with_noop_at_once() {
    let mut pair = engineio_quiet();
    let (sid, _ws) = probed(&mut pair);
    for _ in 0..3 {
        let response = get(&mut pair, &sid);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.text(), "6");
    }
}

#[test]
fn messages_queued_before_upgrade_arrive_on_websocket_after_5() {
    let mut pair = engineio_quiet();
    let (sid, ws) = probed(&mut pair);
    // Echoes of these are queued: polling GETs only get noops now.
    post_ok(&mut pair, &sid, "4queued-1\x1ebAQID\x1e4queued-2");
    assert_eq!(get(&mut pair, &sid).text(), "6");
    assert!(
        pair.take_frames(ws).is_empty(),
        "nothing goes to the WebSocket before 5"
    );
    pair.ws_text(ws, "5");
    assert_eq!(
        pair.take_frames(ws),
        [text("4queued-1"), binary(&[1, 2, 3]), text("4queued-2")]
    );
    pair.ws_text(ws, "4next");
    assert_eq!(pair.take_frames(ws), [text("4next")]);
}

#[test]
fn messages_queued_before_the_probe_arrive_on_websocket_after_5() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "4early");
    let ws = ws(&mut pair, Some(&sid));
    pair.ws_text(ws, "2probe");
    assert_eq!(pair.take_frames(ws), [text("3probe")]);
    pair.ws_text(ws, "5");
    assert_eq!(pair.take_frames(ws), [text("4early")]);
}

#[test]
fn no_noop_is_ever_written_to_the_websocket() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let get_conn = park_get(&mut pair, &sid);
    let ws = ws(&mut pair, Some(&sid));
    pair.ws_text(ws, "2probe");
    let mut seen = pair.take_frames(ws);
    assert_eq!(parked_answer(&mut pair, get_conn).text(), "6");
    for _ in 0..3 {
        assert_eq!(get(&mut pair, &sid).text(), "6");
    }
    post_ok(&mut pair, &sid, "4x");
    pair.ws_text(ws, "6"); // a client noop during the upgrade is allowed
    pair.ws_text(ws, "5");
    pair.ws_text(ws, "4y");
    pair.advance(Duration::from_millis(300));
    seen.extend(pair.take_frames(ws));
    assert_eq!(seen, [text("3probe"), text("4x"), text("4y")]);
}

#[test]
fn no_ping_over_polling_while_upgrading() {
    let mut pair = engineio(|c| c.ping_timeout = Duration::from_millis(1500));
    let (sid, ws) = probed(&mut pair);
    // Past the first ping time, polling GETs still only get noops.
    pair.advance(Duration::from_millis(400));
    for _ in 0..2 {
        let response = get(&mut pair, &sid);
        assert_eq!(response.text(), "6", "{response:?}");
    }
    pair.ws_text(ws, "5");
    // The ping goes over the WebSocket instead; answering it keeps the session.
    assert_eq!(pair.take_frames(ws), [text("2")]);
    pair.ws_text(ws, "3");
    pair.ws_text(ws, "4ok");
    assert_eq!(pair.take_frames(ws), [text("4ok")]);
}

#[test]
fn upgraded_session_pings_over_websocket_and_closes_without_pong() {
    let mut pair = engineio(|_| {});
    let (_sid, ws) = upgraded(&mut pair);
    pair.advance(Duration::from_millis(300));
    assert_eq!(pair.take_frames(ws), [text("2")]);
    pair.ws_text(ws, "3");
    pair.advance(Duration::from_millis(300));
    assert_eq!(pair.take_frames(ws), [text("2")]);
    pair.advance(Duration::from_millis(200));
    assert_ws_closed(&pair, ws, status::NORMAL, "ping timeout");
}

#[test]
fn second_websocket_for_upgraded_session_is_closed() {
    let mut pair = engineio_quiet();
    let (sid, ws) = upgraded(&mut pair);
    pair.ws_text(ws, "4first");
    assert_eq!(pair.take_frames(ws), [text("4first")]);
    assert_second_websocket_refused(&mut pair, &sid);
    // The first one is unaffected.
    pair.ws_text(ws, "4still-first");
    assert_eq!(pair.take_frames(ws), [text("4still-first")]);
}

#[test]
fn second_websocket_during_upgrade_is_closed() {
    let mut pair = engineio_quiet();
    let (sid, ws) = probed(&mut pair);
    assert_second_websocket_refused(&mut pair, &sid);
    // The first one still completes the upgrade.
    pair.ws_text(ws, "5");
    pair.ws_text(ws, "4done");
    assert_eq!(pair.take_frames(ws), [text("4done")]);
}

#[test]
fn websocket_closing_before_5_leaves_session_on_polling() {
    let mut pair = engineio_quiet();
    let (sid, ws) = probed(&mut pair);
    pair.close(ws);
    post_ok(&mut pair, &sid, "4polling-again");
    let response = get(&mut pair, &sid);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "4polling-again");
    // And GETs park again rather than getting noops.
    let get_conn = park_get(&mut pair, &sid);
    post_ok(&mut pair, &sid, "4parked");
    assert_eq!(parked_answer(&mut pair, get_conn).text(), "4parked");
}

#[test]
fn websocket_dropped_before_probe_leaves_session_on_polling() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let ws = ws(&mut pair, Some(&sid));
    pair.close(ws); // TCP close without a close frame
    post_ok(&mut pair, &sid, "4still-polling");
    assert_eq!(get_packets(&mut pair, &sid), ["4still-polling"]);
}

#[test]
fn upgrade_can_be_retried_after_a_failed_attempt() {
    let mut pair = engineio_quiet();
    let (sid, ws) = probed(&mut pair);
    pair.close(ws);
    let ws = self::ws(&mut pair, Some(&sid));
    pair.ws_text(ws, "2probe");
    assert_eq!(pair.take_frames(ws), [text("3probe")]);
    pair.ws_text(ws, "5");
    pair.ws_text(ws, "4retried");
    assert_eq!(pair.take_frames(ws), [text("4retried")]);
}

#[test]
fn invalid_packet_on_probe_websocket_closes_it_and_session_stays_on_polling() {
    let mut pair = engineio_quiet();
    let (sid, ws) = probed(&mut pair);
    pair.ws_text(ws, "x");
    assert_ws_closed(&pair, ws, status::NORMAL, "parse error");
    post_ok(&mut pair, &sid, "4survivor");
    assert_eq!(get_packets(&mut pair, &sid), ["4survivor"]);
}

#[test]
fn upgrade_times_out_and_session_stays_on_polling() {
    let mut pair = engineio(|c| {
        quiet(c);
        c.upgrade_timeout = Duration::from_millis(300);
    });
    let (sid, ws) = probed(&mut pair);
    pair.advance(Duration::from_millis(200));
    assert_eq!(
        pair.state(ws),
        Some(ConnState::WebSocket),
        "not before 200 ms"
    );
    pair.advance(Duration::from_millis(100));
    assert_ws_closed(&pair, ws, status::NORMAL, "upgrade timeout");
    post_ok(&mut pair, &sid, "4timed-out");
    assert_eq!(get_packets(&mut pair, &sid), ["4timed-out"]);
}

#[test]
fn upgrade_packet_before_probe_closes_probe_websocket() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let ws = ws(&mut pair, Some(&sid));
    pair.ws_text(ws, "5");
    assert_ws_closed(&pair, ws, status::NORMAL, "parse error");
    post_ok(&mut pair, &sid, "4polling");
    assert_eq!(get_packets(&mut pair, &sid), ["4polling"]);
}

#[test]
fn client_close_during_upgrade_closes_probe_websocket() {
    let mut pair = engineio_quiet();
    let (sid, ws) = probed(&mut pair);
    post_ok(&mut pair, &sid, "1");
    assert_ws_closed(&pair, ws, status::NORMAL, "client namespace disconnect");
    // (GET-after-close is covered in pair_polling.rs.)
    assert_eio_error(&post(&mut pair, &sid, b"4late"), 1);
}

#[test]
fn server_shutdown_sends_close_packet_and_closes_websocket() {
    let mut pair = engineio_quiet();
    let (ws, _) = ws_session(&mut pair);
    pair.shutdown();
    assert_eq!(pair.take_frames(ws), [text("1")]);
    assert_ws_closed(&pair, ws, status::GOING_AWAY, "server shutting down");
}
