//! Engine.IO v4 over WebSocket and the polling → WebSocket upgrade, against the echo server
//! on `/engine.io/`, over real sockets (docs/PROTOCOL.md "WebSocket", "Heartbeat", "Upgrade"):
//! the transport end to end (open packet, text and large binary frames, heartbeat and its
//! close code in real time, one full upgrade on one shard and on every shard, maxPayload at
//! the frame reader, shutdown's 1001). The protocol logic (invalid packets, the probe
//! sequence, queued messages, second WebSockets, upgrade failures and timeouts) is proven on
//! the deterministic pair in `tests/pair_websocket.rs`.

mod support;

use std::time::{Duration, Instant};

use support::*;

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

/// Between messages an idle WebSocket holds no reading state (tungstenite's context is
/// dropped and made anew when input arrives, `server/ws.rs`), so it must be kept whenever
/// it holds something: a frame arriving a byte per read, a fragmented message whose
/// fragments arrive in separate reads with a ping between them (answered at once), then a
/// plain message, all read as sent.
#[test]
fn websocket_frames_and_fragments_arriving_in_pieces_are_read_whole() {
    let server = engineio_quiet();
    let (mut ws, _) = server.ws_session();
    ws.get_mut().set_nodelay(true).unwrap();
    let pause = Duration::from_millis(15);
    let frame = ws_raw_frame(1, "4piece by piece".as_bytes(), true);
    for byte in &frame {
        ws_write_raw(&mut ws, &[*byte]);
        std::thread::sleep(pause);
    }
    assert_eq!(
        ws_recv(&mut ws, IO_TIMEOUT),
        WsEvent::Text("4piece by piece".into())
    );
    ws_write_raw(&mut ws, &ws_raw_frame(1, b"4frag", false));
    std::thread::sleep(pause);
    ws_write_raw(&mut ws, &ws_raw_frame(9, b"mid", true));
    let deadline = Instant::now() + IO_TIMEOUT;
    let pong = loop {
        assert!(
            Instant::now() < deadline,
            "no pong to a ping between fragments"
        );
        ws.get_mut()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match ws.read() {
            Ok(tungstenite::Message::Pong(data)) => break data,
            Ok(other) => panic!("expected a pong, got {other:?}"),
            Err(tungstenite::Error::Io(_)) => continue,
            Err(e) => panic!("expected a pong, got {e}"),
        }
    };
    assert_eq!(&pong[..], b"mid");
    let rest = ws_raw_frame(0, b"mented", true);
    let (first, second) = rest.split_at(3);
    ws_write_raw(&mut ws, first);
    std::thread::sleep(pause);
    ws_write_raw(&mut ws, second);
    assert_eq!(
        ws_recv(&mut ws, IO_TIMEOUT),
        WsEvent::Text("4fragmented".into())
    );
    std::thread::sleep(pause);
    ws_send_text(&mut ws, "4after");
    assert_eq!(ws_recv(&mut ws, IO_TIMEOUT), WsEvent::Text("4after".into()));
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

// ---------------------------------------------------------------------------------------------
// Upgrade
// ---------------------------------------------------------------------------------------------

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
