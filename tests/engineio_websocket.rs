//! Engine.IO v4 over WebSocket and the polling → WebSocket upgrade, against the echo server
//! on `/engine.io/`, over real sockets (docs/PROTOCOL.md "WebSocket", "Heartbeat", "Upgrade").

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// How fast "at once" must be.
const PROMPT: Duration = Duration::from_millis(500);

/// Polling handshake, WebSocket with the sid, `2probe` → `3probe`.
fn probed(server: &TestServer) -> (String, Ws) {
    let (sid, _) = server.handshake();
    let mut ws = server.ws(Some(&sid));
    ws_send_text(&mut ws, "2probe");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("3probe".into()));
    (sid, ws)
}

/// A polling session fully upgraded to WebSocket.
fn upgraded(server: &TestServer) -> (String, Ws) {
    let (sid, mut ws) = probed(server);
    ws_send_text(&mut ws, "5");
    (sid, ws)
}

/// Read frames for `duration` (pings answered); fail on a close.
fn collect_for(ws: &mut Ws, duration: Duration) -> Vec<WsEvent> {
    let deadline = Instant::now() + duration;
    let mut seen = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match ws_recv(ws, remaining) {
            WsEvent::Timeout => return seen,
            WsEvent::Closed => panic!("websocket closed; saw {seen:?}"),
            WsEvent::Text(t) if t == "2" => {
                ws_send_text(ws, "3");
                seen.push(WsEvent::Text(t));
            }
            other => seen.push(other),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket-only sessions
// ---------------------------------------------------------------------------------------------

#[test]
fn websocket_handshake_sends_open_packet_with_no_upgrades() {
    let server = start_engineio(|_| {});
    let mut ws = server.ws(None);
    let first = ws_recv(&mut ws, IO_TIMEOUT);
    let WsEvent::Text(text) = first else {
        panic!("expected the open packet, got {first:?}");
    };
    let open = parse_open(&text);
    assert_open_packet(&open, &[], &server.config);
}

#[test]
fn websocket_text_message_echoes_as_text() {
    let server = engineio_quiet();
    let (mut ws, _) = server.ws_session();
    ws_send_text(&mut ws, "4hello");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("4hello".into()));
    ws_send_text(&mut ws, "4héllo €𝄞");
    assert_eq!(
        ws_recv(&mut ws, IO_TIMEOUT),
        WsEvent::Text("4héllo €𝄞".into())
    );
    ws_send_text(&mut ws, "4");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("4".into()));
}

#[test]
fn websocket_binary_frame_echoes_as_binary_frame() {
    let server = engineio_quiet();
    let (mut ws, _) = server.ws_session();
    ws_send_binary(&mut ws, &[1, 2, 3, 4]);
    assert_eq!(
        ws_recv(&mut ws, IO_TIMEOUT),
        WsEvent::Binary(vec![1, 2, 3, 4])
    );
    // Larger than the 2-byte length form, and every byte value.
    let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
    ws_send_binary(&mut ws, &big);
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Binary(big));
}

#[test]
fn websocket_messages_keep_their_order() {
    let server = engineio_quiet();
    let (mut ws, _) = server.ws_session();
    for i in 0..50 {
        if i % 3 == 0 {
            ws_send_binary(&mut ws, &[i as u8]);
        } else {
            ws_send_text(&mut ws, &format!("4m{i}"));
        }
    }
    for i in 0..50 {
        let expected = if i % 3 == 0 {
            WsEvent::Binary(vec![i as u8])
        } else {
            WsEvent::Text(format!("4m{i}"))
        };
        assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), expected, "message {i}");
    }
}

#[test]
fn server_pings_over_websocket_after_ping_interval() {
    let server = start_engineio(|_| {});
    let started = Instant::now();
    let (mut ws, _) = server.ws_session();
    for i in 0..3 {
        let before = Instant::now();
        assert_eq!(
            ws_recv(&mut ws, IO_TIMEOUT),
            WsEvent::Text("2".into()),
            "ping {i}"
        );
        let waited = if i == 0 {
            started.elapsed()
        } else {
            before.elapsed()
        };
        assert!(
            waited >= Duration::from_millis(250),
            "ping {i} after only {waited:?} (pingInterval 300 ms)"
        );
        assert!(
            waited < Duration::from_millis(800),
            "ping {i} after {waited:?}"
        );
        ws_send_text(&mut ws, "3");
    }
    // Answered pings keep it up: it still echoes.
    ws_send_text(&mut ws, "4alive");
    assert_eq!(ws_expect_text(&mut ws), "4alive");
}

#[test]
fn first_websocket_ping_is_not_sent_at_once() {
    let server = start_engineio(|_| {});
    let (mut ws, _) = server.ws_session();
    assert_eq!(
        ws_recv(&mut ws, Duration::from_millis(250)),
        WsEvent::Timeout
    );
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("2".into()));
}

#[test]
fn websocket_closed_when_no_pong() {
    let server = start_engineio(|_| {});
    let (mut ws, _) = server.ws_session();
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("2".into()));
    let pinged = Instant::now();
    let closed = ws_await_close(&mut ws, Duration::from_millis(1500), false).expect("closed");
    assert_close_frame(&closed, close_code::NORMAL, "ping timeout");
    let seen = closed.seen;
    let elapsed = pinged.elapsed();
    assert!(
        elapsed >= Duration::from_millis(150),
        "closed {elapsed:?} after the ping, before pingTimeout 200 ms"
    );
    assert!(
        seen.iter()
            .all(|e| matches!(e, WsEvent::Text(t) if t == "1")),
        "only a close packet may precede the close: {seen:?}"
    );
}

#[test]
fn client_close_packet_closes_websocket() {
    let server = engineio_quiet();
    let (mut ws, _) = server.ws_session();
    ws_send_text(&mut ws, "1");
    let seen = ws_expect_close(
        &mut ws,
        IO_TIMEOUT,
        close_code::NORMAL,
        "client namespace disconnect",
    );
    assert!(
        seen.iter()
            .all(|e| matches!(e, WsEvent::Text(t) if t == "1")),
        "{seen:?}"
    );
}

#[test]
fn invalid_packet_over_websocket_closes_it() {
    let server = engineio_quiet();
    for bad in ["x", "", "9", "0{}", "5"] {
        let (mut ws, _) = server.ws_session();
        ws_send_text(&mut ws, bad);
        ws_expect_close(&mut ws, IO_TIMEOUT, close_code::NORMAL, "parse error");
    }
}

#[test]
fn client_ping_over_websocket_closes_it() {
    // v4: the server pings; a client ping is a protocol error.
    let server = engineio_quiet();
    let (mut ws, _) = server.ws_session();
    ws_send_text(&mut ws, "2");
    let seen = ws_expect_close(&mut ws, IO_TIMEOUT, close_code::NORMAL, "parse error");
    assert!(
        !seen.contains(&WsEvent::Text("3".into())),
        "a client ping is not answered: {seen:?}"
    );
}

#[test]
fn websocket_with_unknown_sid_is_refused_with_code_1() {
    let server = engineio_quiet();
    match ws_connect(server.addr, &server.websocket_target(Some("nonexistent"))) {
        Ok(mut ws) => panic!(
            "handshake accepted for an unknown sid; then {:?}",
            ws_recv(&mut ws, PROMPT)
        ),
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("JSON error body");
            assert_eq!(body["code"], 1, "{body}");
        }
        Err(e) => panic!("unexpected handshake error {e}"),
    }
}

#[test]
fn websocket_session_cannot_be_polled() {
    let server = engineio_quiet();
    let (mut ws, open) = server.ws_session();
    let sid = open["sid"].as_str().unwrap();
    assert_eio_error(&server.get(sid), 3);
    assert_eio_error(&server.post(sid, b"4x"), 3);
    ws_send_text(&mut ws, "4still");
    assert_eq!(ws_expect_text(&mut ws), "4still");
}

// ---------------------------------------------------------------------------------------------
// Upgrade
// ---------------------------------------------------------------------------------------------

#[test]
fn upgrade_probe_is_answered_with_3probe() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut ws = server.ws(Some(&sid));
    // No open packet on an upgrade WebSocket: the first frame is the probe answer.
    ws_send_text(&mut ws, "2probe");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("3probe".into()));
}

#[test]
fn upgrade_answers_pending_get_with_noop() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut get = park_get(&server, &sid);
    let mut ws = server.ws(Some(&sid));
    ws_send_text(&mut ws, "2probe");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("3probe".into()));
    let answered = get
        .try_read_response(PROMPT)
        .expect("parked GET connection")
        .expect("parked GET answered at once after the probe");
    assert_eq!(answered.status, 200, "{answered:?}");
    assert_eq!(answered.text(), "6");
}

#[test]
fn upgrade_answers_new_get_with_noop_at_once() {
    let server = engineio_quiet();
    let (sid, _ws) = probed(&server);
    for _ in 0..3 {
        let started = Instant::now();
        let response = server.get(&sid);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.text(), "6");
        assert!(
            started.elapsed() < PROMPT,
            "noop took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn upgrade_completes_and_polling_requests_then_get_400() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut get = park_get(&server, &sid);
    let mut ws = server.ws(Some(&sid));
    ws_send_text(&mut ws, "2probe");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("3probe".into()));
    assert_eq!(get.read_response().text(), "6");
    assert_eq!(server.get(&sid).text(), "6");
    ws_send_text(&mut ws, "5");
    // Messages now flow over the WebSocket.
    ws_send_text(&mut ws, "4over-ws");
    assert_eq!(
        ws_recv(&mut ws, IO_TIMEOUT),
        WsEvent::Text("4over-ws".into())
    );
    ws_send_binary(&mut ws, &[9, 8, 7]);
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Binary(vec![9, 8, 7]));
    // Polling is over for this sid.
    let response = server.get(&sid);
    assert_eq!(response.status, 400, "{response:?}");
    assert_eio_error(&response, 3);
    let response = server.post(&sid, b"4late");
    assert_eq!(response.status, 400, "{response:?}");
    assert_eio_error(&response, 3);
    // The 400s did not end the session.
    ws_send_text(&mut ws, "4after");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("4after".into()));
}

#[test]
fn messages_queued_before_upgrade_arrive_on_websocket_after_5() {
    let server = engineio_quiet();
    let (sid, mut ws) = probed(&server);
    // Echoes of these are queued: polling GETs only get noops now.
    server.post_ok(&sid, "4queued-1\x1ebAQID\x1e4queued-2");
    assert_eq!(server.get(&sid).text(), "6");
    assert_eq!(
        ws_recv(&mut ws, Duration::from_millis(200)),
        WsEvent::Timeout,
        "nothing goes to the WebSocket before 5"
    );
    ws_send_text(&mut ws, "5");
    assert_eq!(
        ws_recv(&mut ws, IO_TIMEOUT),
        WsEvent::Text("4queued-1".into())
    );
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Binary(vec![1, 2, 3]));
    assert_eq!(
        ws_recv(&mut ws, IO_TIMEOUT),
        WsEvent::Text("4queued-2".into())
    );
    ws_send_text(&mut ws, "4next");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("4next".into()));
}

#[test]
fn messages_queued_before_the_probe_arrive_on_websocket_after_5() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "4early");
    let mut ws = server.ws(Some(&sid));
    ws_send_text(&mut ws, "2probe");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("3probe".into()));
    ws_send_text(&mut ws, "5");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("4early".into()));
}

#[test]
fn no_noop_is_ever_written_to_the_websocket() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut get = park_get(&server, &sid);
    let mut ws = server.ws(Some(&sid));
    ws_send_text(&mut ws, "2probe");
    let mut seen = vec![ws_recv(&mut ws, IO_TIMEOUT)];
    assert_eq!(get.read_response().text(), "6");
    for _ in 0..3 {
        assert_eq!(server.get(&sid).text(), "6");
    }
    server.post_ok(&sid, "4x");
    ws_send_text(&mut ws, "6"); // a client noop during the upgrade is allowed
    ws_send_text(&mut ws, "5");
    ws_send_text(&mut ws, "4y");
    seen.extend(collect_for(&mut ws, Duration::from_millis(300)));
    assert_eq!(
        seen,
        [
            WsEvent::Text("3probe".into()),
            WsEvent::Text("4x".into()),
            WsEvent::Text("4y".into())
        ]
    );
}

#[test]
fn no_ping_over_polling_while_upgrading() {
    let server = start_engineio(|c| c.ping_timeout = Duration::from_millis(1500));
    let started = Instant::now();
    let (sid, mut ws) = probed(&server);
    // Past the first ping time, polling GETs still only get noops.
    thread::sleep(Duration::from_millis(400).saturating_sub(started.elapsed()));
    for _ in 0..2 {
        let response = server.get(&sid);
        assert_eq!(response.text(), "6", "{response:?}");
    }
    ws_send_text(&mut ws, "5");
    // The ping goes over the WebSocket instead; answering it keeps the session.
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("2".into()));
    ws_send_text(&mut ws, "3");
    ws_send_text(&mut ws, "4ok");
    assert_eq!(ws_expect_text(&mut ws), "4ok");
}

#[test]
fn upgraded_session_pings_over_websocket_and_closes_without_pong() {
    let server = start_engineio(|_| {});
    let (_sid, mut ws) = upgraded(&server);
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("2".into()));
    ws_send_text(&mut ws, "3");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("2".into()));
    let closed = ws_await_close(&mut ws, Duration::from_millis(1500), false).expect("closed");
    assert_close_frame(&closed, close_code::NORMAL, "ping timeout");
}

#[test]
fn second_websocket_for_upgraded_session_is_closed() {
    let server = engineio_quiet();
    let (sid, mut ws) = upgraded(&server);
    ws_send_text(&mut ws, "4first");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("4first".into()));
    match ws_connect(server.addr, &server.websocket_target(Some(&sid))) {
        Ok(mut second) => {
            let seen = ws_expect_close(
                &mut second,
                IO_TIMEOUT,
                close_code::POLICY,
                "the session has a WebSocket",
            );
            assert!(seen.is_empty(), "the second WebSocket got {seen:?}");
        }
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400, "{response:?}")
        }
        Err(e) => panic!("unexpected handshake error {e}"),
    }
    // The first one is unaffected.
    ws_send_text(&mut ws, "4still-first");
    assert_eq!(
        ws_recv(&mut ws, IO_TIMEOUT),
        WsEvent::Text("4still-first".into())
    );
}

#[test]
fn second_websocket_during_upgrade_is_closed() {
    let server = engineio_quiet();
    let (sid, mut ws) = probed(&server);
    match ws_connect(server.addr, &server.websocket_target(Some(&sid))) {
        Ok(mut second) => {
            let seen = ws_expect_close(
                &mut second,
                IO_TIMEOUT,
                close_code::POLICY,
                "the session has a WebSocket",
            );
            assert!(seen.is_empty(), "the second WebSocket got {seen:?}");
        }
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400, "{response:?}")
        }
        Err(e) => panic!("unexpected handshake error {e}"),
    }
    // The first one still completes the upgrade.
    ws_send_text(&mut ws, "5");
    ws_send_text(&mut ws, "4done");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("4done".into()));
}

#[test]
fn websocket_closing_before_5_leaves_session_on_polling() {
    let server = engineio_quiet();
    let (sid, mut ws) = probed(&server);
    ws_close(&mut ws);
    // Wait for the server's close answer so it has seen the close.
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Closed);
    drop(ws);
    server.post_ok(&sid, "4polling-again");
    let response = server.get(&sid);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "4polling-again");
    // And GETs park again rather than getting noops.
    let mut get = park_get(&server, &sid);
    server.post_ok(&sid, "4parked");
    assert_eq!(get.read_response().text(), "4parked");
}

#[test]
fn websocket_dropped_before_probe_leaves_session_on_polling() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let ws = server.ws(Some(&sid));
    drop(ws); // TCP close without a close frame
    thread::sleep(Duration::from_millis(100));
    server.post_ok(&sid, "4still-polling");
    assert_eq!(server.get_packets(&sid), ["4still-polling"]);
}

#[test]
fn upgrade_can_be_retried_after_a_failed_attempt() {
    let server = engineio_quiet();
    let (sid, mut ws) = probed(&server);
    ws_close(&mut ws);
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Closed);
    let mut ws = server.ws(Some(&sid));
    ws_send_text(&mut ws, "2probe");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("3probe".into()));
    ws_send_text(&mut ws, "5");
    ws_send_text(&mut ws, "4retried");
    assert_eq!(
        ws_recv(&mut ws, IO_TIMEOUT),
        WsEvent::Text("4retried".into())
    );
}

#[test]
fn invalid_packet_on_probe_websocket_closes_it_and_session_stays_on_polling() {
    let server = engineio_quiet();
    let (sid, mut ws) = probed(&server);
    ws_send_text(&mut ws, "x");
    ws_expect_close(&mut ws, IO_TIMEOUT, close_code::NORMAL, "parse error");
    server.post_ok(&sid, "4survivor");
    assert_eq!(server.get_packets(&sid), ["4survivor"]);
}

#[test]
fn upgrade_times_out_and_session_stays_on_polling() {
    let server = start_engineio(|c| {
        quiet(c);
        c.upgrade_timeout = Duration::from_millis(300);
    });
    let (sid, mut ws) = probed(&server);
    let started = Instant::now();
    ws_expect_close(&mut ws, IO_TIMEOUT, close_code::NORMAL, "upgrade timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    server.post_ok(&sid, "4timed-out");
    assert_eq!(server.get_packets(&sid), ["4timed-out"]);
}

#[test]
fn upgrade_works_on_every_shard() {
    let server = start_engineio(|c| {
        quiet(c);
        c.shards = 4;
    });
    for i in 0..6 {
        let (sid, _) = server.handshake();
        let mut get = park_get(&server, &sid);
        let mut ws = server.ws(Some(&sid));
        ws_send_text(&mut ws, "2probe");
        assert_eq!(
            ws_recv(&mut ws, IO_TIMEOUT),
            WsEvent::Text("3probe".into()),
            "{i}"
        );
        assert_eq!(get.read_response().text(), "6", "{i}");
        ws_send_text(&mut ws, "5");
        let message = format!("4shard-{i}");
        ws_send_text(&mut ws, &message);
        assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text(message), "{i}");
        assert_eio_error(&server.get(&sid), 3);
    }
}

#[test]
fn upgrade_packet_before_probe_closes_probe_websocket() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut ws = server.ws(Some(&sid));
    ws_send_text(&mut ws, "5");
    ws_expect_close(&mut ws, IO_TIMEOUT, close_code::NORMAL, "parse error");
    server.post_ok(&sid, "4polling");
    assert_eq!(server.get_packets(&sid), ["4polling"]);
}

#[test]
fn client_close_during_upgrade_closes_probe_websocket() {
    let server = engineio_quiet();
    let (sid, mut ws) = probed(&server);
    server.post_ok(&sid, "1");
    ws_expect_close(
        &mut ws,
        IO_TIMEOUT,
        close_code::NORMAL,
        "client namespace disconnect",
    );
    // (GET-after-close is covered in engineio_polling.rs.)
    assert_eio_error(&server.post(&sid, b"4late"), 1);
}

#[test]
fn second_websocket_for_websocket_session_is_closed() {
    let server = engineio_quiet();
    let (mut ws, open) = server.ws_session();
    let sid = open["sid"].as_str().unwrap().to_owned();
    match ws_connect(server.addr, &server.websocket_target(Some(&sid))) {
        Ok(mut second) => {
            let seen = ws_expect_close(
                &mut second,
                IO_TIMEOUT,
                close_code::POLICY,
                "the session has a WebSocket",
            );
            assert!(seen.is_empty(), "the second WebSocket got {seen:?}");
        }
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400, "{response:?}")
        }
        Err(e) => panic!("unexpected handshake error {e}"),
    }
    ws_send_text(&mut ws, "4first");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("4first".into()));
}

#[test]
fn websocket_message_over_max_payload_closes() {
    let server = start_engineio(|c| {
        quiet(c);
        c.max_payload = 1000;
    });
    let (mut ws, _) = server.ws_session();
    let fits = format!("4{}", "a".repeat(999));
    ws_send_text(&mut ws, &fits);
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text(fits));
    ws_send_text(&mut ws, &format!("4{}", "a".repeat(2000)));
    ws_expect_close(&mut ws, IO_TIMEOUT, close_code::TOO_BIG, "over maxPayload");
}

#[test]
fn server_shutdown_sends_close_packet_and_closes_websocket() {
    let server = engineio_quiet();
    let (mut ws, _) = server.ws_session();
    server.shutdown();
    let seen = ws_expect_close(
        &mut ws,
        IO_TIMEOUT,
        close_code::GOING_AWAY,
        "server shutting down",
    );
    assert_eq!(seen, [WsEvent::Text("1".into())]);
}
