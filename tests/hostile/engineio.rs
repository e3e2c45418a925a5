//! Hostile Engine.IO and WebSocket: invalid packets, invalid UTF-8 and broken frames, pongs
//! never sent, ping floods (Engine.IO pings, WebSocket ping frames, unsolicited pongs),
//! sessions that never connect, and polling sessions abandoned mid-way.

use std::time::{Duration, Instant};

use crate::client::{
    assert_closed, connected_ws, expect_text, raw_frame, ws_outcome, ws_write_raw, ChatClient,
    WsEnd, POLLING_TARGET, WS_TARGET,
};
use crate::scene::Scene;
use crate::server::{CONNECT_TIMEOUT_MS, PING_INTERVAL_MS, PING_TIMEOUT_MS};
use crate::support::{
    assert_eio_error, close_code, parse_open, ws_connect, ws_send_binary, ws_send_text, Http, Ws,
    IO_TIMEOUT,
};

/// A WebSocket-only Engine.IO session (open packet read), not yet connected to `/`.
fn eio_ws(scene: &Scene) -> Ws {
    let mut ws = ws_connect(scene.addr(), WS_TARGET).expect("websocket handshake");
    let open = expect_text(&mut ws, IO_TIMEOUT);
    assert!(open.starts_with("0{"), "{open:?}");
    ws
}

#[test]
fn invalid_engineio_packets_over_websocket_close_the_connection() {
    let scene = Scene::start(&[]);
    let packets = [
        ("empty text frame", ""),
        ("unknown type 9", "9"),
        ("letter type", "x42[\"a\"]"),
        ("open from a client", "0{\"sid\":\"x\"}"),
        ("upgrade outside an upgrade", "5"),
        ("probe ping on an established session", "2probe"),
        ("client ping (v4 clients never ping)", "2"),
    ];
    for (what, text) in packets {
        // Before and after connecting to `/`.
        let mut ws = eio_ws(&scene);
        ws_send_text(&mut ws, text);
        assert_closed(&mut ws, IO_TIMEOUT, close_code::NORMAL, "parse error", what);
        let mut ws = connected_ws(scene.addr());
        ws_send_text(&mut ws, text);
        assert_closed(&mut ws, IO_TIMEOUT, close_code::NORMAL, "parse error", what);
    }
    scene.finish("invalid Engine.IO packets");
}

#[test]
fn invalid_websocket_frames_close_the_connection() {
    let scene = Scene::start(&[]);
    let frames: Vec<(&str, u16, Vec<u8>)> = vec![
        (
            "invalid UTF-8 in a text frame",
            close_code::INVALID_DATA,
            raw_frame(1, b"42[\"a\",\"\xff\xfe\"]", true),
        ),
        (
            "overlong UTF-8 encoding",
            close_code::INVALID_DATA,
            raw_frame(1, b"4\xc0\xaf", true),
        ),
        (
            "UTF-16 surrogate in UTF-8",
            close_code::INVALID_DATA,
            raw_frame(1, b"4\xed\xa0\x80", true),
        ),
        (
            "truncated UTF-8 at the end",
            close_code::INVALID_DATA,
            raw_frame(1, b"42[\"\xe2\x82", true),
        ),
        (
            "invalid UTF-8 across fragments",
            close_code::INVALID_DATA,
            {
                let mut f = raw_frame(1, b"4\xe2", false);
                f.extend(raw_frame(0, b"\x28\xa1", true));
                f
            },
        ),
        (
            "reserved opcode 3",
            close_code::PROTOCOL_ERROR,
            raw_frame(3, b"x", true),
        ),
        (
            "continuation without a start",
            close_code::PROTOCOL_ERROR,
            raw_frame(0, b"4x", true),
        ),
        (
            "fragmented ping",
            close_code::PROTOCOL_ERROR,
            raw_frame(9, b"p", false),
        ),
        (
            "ping payload over 125 bytes",
            close_code::PROTOCOL_ERROR,
            raw_frame(9, &[b'p'; 200], true),
        ),
        (
            "RSV1 set without an extension",
            close_code::PROTOCOL_ERROR,
            {
                let mut f = raw_frame(1, b"40", true);
                f[0] |= 0x40;
                f
            },
        ),
        (
            "unmasked client frame",
            close_code::PROTOCOL_ERROR,
            vec![0x81, 0x02, b'4', b'0'],
        ),
        ("length over maxPayload", close_code::TOO_BIG, {
            let mut f = vec![0x82, 0x80 | 127];
            f.extend_from_slice(&(1u64 << 40).to_be_bytes());
            f.extend_from_slice(&[1, 2, 3, 4]);
            f
        }),
        ("64-bit length with the top bit set", close_code::TOO_BIG, {
            let mut f = vec![0x82, 0x80 | 127];
            f.extend_from_slice(&u64::MAX.to_be_bytes());
            f.extend_from_slice(&[1, 2, 3, 4]);
            f
        }),
    ];
    for (what, code, frame) in &frames {
        let mut ws = connected_ws(scene.addr());
        ws_write_raw(&mut ws, frame);
        assert_closed(&mut ws, IO_TIMEOUT, *code, "", what);
    }
    // Valid UTF-8 split across fragments is fine: the event reaches the chat (an unknown
    // event, ignored) and the connection stays open.
    let mut client = ChatClient::connect(scene.addr());
    let text = "42[\"ignored\",\"caf\u{e9} \u{1f4da}\"]".as_bytes();
    let split = text.len() - 3; // inside the four-byte emoji
    let mut frames = raw_frame(1, &text[..split], false);
    frames.extend(raw_frame(0, &text[split..], true));
    ws_write_raw(&mut client.ws, &frames);
    client.expect_silence(Duration::from_millis(300));
    client.join(11, "after-fragments");
    drop(client);
    scene.finish("invalid WebSocket frames");
}

#[test]
fn pongs_never_sent_end_the_session_after_the_ping_timeout() {
    let scene = Scene::start(&[]);
    let deadline = Duration::from_millis(PING_INTERVAL_MS + PING_TIMEOUT_MS);
    let started = Instant::now();
    // WebSocket sessions, connected to `/` and in a room, that never answer a ping.
    let mut sockets: Vec<ChatClient> = (0..20)
        .map(|i| {
            let mut client = ChatClient::connect(scene.addr());
            client.join(50 + i, &format!("mute-{i}"));
            client
        })
        .collect();
    // Polling sessions that never poll again after the handshake.
    let mut sids = Vec::new();
    for _ in 0..20 {
        let answer = Http::connect(scene.addr()).get(POLLING_TARGET);
        assert_eq!(answer.status, 200, "{answer:?}");
        sids.push(
            parse_open(&answer.text())["sid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for (i, client) in sockets.iter_mut().enumerate() {
        // Pings deliberately unanswered: the heartbeat is what this case tests, and the
        // close frame must say so.
        match ws_outcome(&mut client.ws, deadline * 3, false) {
            WsEnd::Closed { frame, seen } => {
                assert_eq!(
                    frame,
                    Some((close_code::NORMAL, "ping timeout".to_owned())),
                    "mute socket {i}"
                );
                assert!(
                    seen.iter().all(|t| t == "1"),
                    "mute socket {i}: got {seen:?} before the close"
                );
            }
            WsEnd::Open(seen) => panic!("mute socket {i} still open; saw {seen:?}"),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(PING_INTERVAL_MS),
        "closed before the first ping was due ({elapsed:?})"
    );
    std::thread::sleep(deadline.saturating_sub(started.elapsed()) + Duration::from_millis(200));
    for sid in &sids {
        let answer = Http::connect(scene.addr()).get(&format!("{POLLING_TARGET}&sid={sid}"));
        assert_eio_error(&answer, 1);
    }
    drop(sockets);
    scene.finish("pongs never sent");
}

#[test]
fn sessions_that_never_connect_are_closed_after_the_connect_timeout() {
    let scene = Scene::start(&[]);
    let started = Instant::now();
    // Engine.IO sessions that answer pings but never send a Socket.IO CONNECT.
    let mut sockets: Vec<Ws> = (0..50).map(|_| eio_ws(&scene)).collect();
    for (i, ws) in sockets.iter_mut().enumerate() {
        match ws_outcome(ws, Duration::from_millis(CONNECT_TIMEOUT_MS * 3), true) {
            WsEnd::Closed { frame, seen } => {
                assert_eq!(
                    frame,
                    Some((close_code::NORMAL, "connect timeout".to_owned())),
                    "socket {i}"
                );
                assert!(seen.iter().all(|t| t == "1"), "socket {i}: {seen:?}")
            }
            WsEnd::Open(seen) => panic!("socket {i} never connected but is still open: {seen:?}"),
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(CONNECT_TIMEOUT_MS) - Duration::from_millis(50),
        "closed before the connect timeout ({elapsed:?})"
    );
    drop(sockets);
    scene.finish("never connecting");
}

#[test]
fn ping_floods_are_survived() {
    let scene = Scene::start(&[]);
    // WebSocket ping frames, 20,000 of them written without reading a byte: the server
    // answers every one with a pong (2.5 MB, under the outbound limit), stays up, and the
    // connection still works after.
    let mut client = ChatClient::connect(scene.addr());
    let ping = raw_frame(9, &[b'p'; 125], true);
    let mut flood = Vec::with_capacity(ping.len() * 1000);
    for _ in 0..1000 {
        flood.extend_from_slice(&ping);
    }
    for _ in 0..20 {
        ws_write_raw(&mut client.ws, &flood);
    }
    match ws_outcome(&mut client.ws, Duration::from_millis(1500), true) {
        WsEnd::Open(seen) if seen.is_empty() => {}
        other => panic!("after the WebSocket ping flood: {other:?}"),
    }
    client.join(17, "ping-flooder");
    drop(client);
    // Unsolicited Engine.IO pongs are ignored (socket.io only resets its timer): 5,000 of
    // them, then the connection still works.
    let mut client = ChatClient::connect(scene.addr());
    for _ in 0..5000 {
        client.send("3");
    }
    client.join(12, "pong-flood");
    drop(client);
    // Engine.IO pings from a client are a protocol error in v4: the first one closes.
    let mut ws = connected_ws(scene.addr());
    for _ in 0..1000 {
        if ws.send(tungstenite::Message::text("2")).is_err() {
            break;
        }
    }
    assert_closed(
        &mut ws,
        IO_TIMEOUT,
        close_code::NORMAL,
        "parse error",
        "Engine.IO ping flood",
    );
    drop(ws);
    // Binary frames before a Socket.IO CONNECT: a protocol error, closed.
    let mut ws = eio_ws(&scene);
    ws_send_binary(&mut ws, &[1, 2, 3]);
    assert_closed(
        &mut ws,
        IO_TIMEOUT,
        close_code::NORMAL,
        "parse error",
        "binary frame before CONNECT",
    );
    drop(ws);
    scene.finish("ping floods");
}
