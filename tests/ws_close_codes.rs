//! Every close the server starts on a WebSocket says why (issue 10, item 3): a close frame
//! with RFC 6455's status code and a reason naming the cause, then the TCP connection closed
//! once the frame is out, within a short bound for a peer that never reads. Each code is
//! provoked over a real socket by a raw client (frames written byte by byte where tungstenite
//! refuses to send them), and a bystander in the same room keeps getting its messages.
//!
//! The mapping (docs/LIMITS.md): 1009 over maxPayload, 1007 invalid UTF-8 in a text frame,
//! 1002 WebSocket protocol errors, 1000 Engine.IO/Socket.IO level closes (reason: socket.io's
//! disconnect reason, e.g. `ping timeout`, `parse error: …`), 1008 a policy refusal (a second
//! WebSocket for a session), 1001 server shutdown.

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use readrealm_chat::config::ServerConfig;
use readrealm_chat::metrics::Metrics;
use readrealm_chat::server::Ops;
use readrealm_chat::socketio::{Event, Handler, Refusal, Socket};
use serde_json::Value;
use support::close_code::*;
use support::*;

/// Everyone joins room `r`; `say` broadcasts its argument to the room and acks.
struct Room;

impl Handler for Room {
    type State = ();
    type Shard = ();
    type Forward = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn on_connect(&self, socket: &mut Socket<'_, ()>, _auth: &Value) -> Result<(), Refusal> {
        socket.join("r");
        Ok(())
    }

    fn on_event(&self, socket: &mut Socket<'_, ()>, event: Event) {
        if let (Some("say"), Some(id), Ok(args)) = (event.name(), event.ack_id, event.args()) {
            socket.broadcast("r", "said", args, true);
            socket.ack(id, vec![], vec![]);
        }
    }
}

/// maxPayload of these servers: small, so "too big" is cheap to send.
const MAX_PAYLOAD: usize = 1000;

fn room_server(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    start_server(Room, |c| {
        c.max_payload = MAX_PAYLOAD;
        quiet(c);
        tweak(c);
    })
}

/// A WebSocket session connected to `/` (and so in room `r`).
fn member(server: &TestServer) -> Ws {
    let (mut ws, _) = server.ws_session();
    ws_send_text(&mut ws, "40");
    assert!(ws_expect_text(&mut ws).starts_with("40{"));
    ws
}

/// The room still works: `speaker` says `n`, `bystander` hears it.
fn room_works(speaker: &mut Ws, bystander: &mut Ws, n: usize) {
    ws_send_text(speaker, &format!(r#"421["say",{n}]"#));
    assert_eq!(ws_expect_text(speaker), "431[]");
    assert_eq!(ws_expect_text(bystander), format!(r#"42["said",{n}]"#));
}

/// Send each case on its own connected session and expect its close frame; the room's
/// bystander hears the speaker after every one.
fn expect_each(server: &TestServer, cases: &[(&str, Vec<u8>)], code: u16, reason: &str) {
    let mut bystander = member(server);
    let mut speaker = member(server);
    for (n, (what, bytes)) in cases.iter().enumerate() {
        let mut ws = member(server);
        ws_write_raw(&mut ws, bytes);
        let closed = ws_await_close(&mut ws, IO_TIMEOUT, true)
            .unwrap_or_else(|| panic!("{what}: still open"));
        match &closed.frame {
            Some((got, text)) if *got == code && text.starts_with(reason) => {}
            other => panic!("{what}: expected {code} {reason:?}..., got {other:?}"),
        }
        room_works(&mut speaker, &mut bystander, n);
    }
}

#[test]
fn a_message_over_max_payload_is_closed_with_1009() {
    let server = room_server(|_| {});
    let over = format!(r#"42["say","{}"]"#, "x".repeat(MAX_PAYLOAD));
    let mut fragments = ws_raw_frame(1, &over.as_bytes()[..600], false);
    fragments.extend(ws_raw_frame(0, &over.as_bytes()[600..], true));
    let announced = {
        // A header announcing 2^40 bytes: refused before any of it arrives.
        let mut f = vec![0x82, 0x80 | 127];
        f.extend_from_slice(&(1u64 << 40).to_be_bytes());
        f.extend_from_slice(&[1, 2, 3, 4]);
        f
    };
    let cases = [
        (
            "one frame over maxPayload",
            ws_raw_frame(1, over.as_bytes(), true),
        ),
        ("fragments adding up to over maxPayload", fragments),
        ("a frame header announcing 2^40 bytes", announced),
    ];
    expect_each(&server, &cases, TOO_BIG, "over maxPayload");
}

#[test]
fn invalid_utf8_in_a_text_frame_is_closed_with_1007() {
    let server = room_server(|_| {});
    let mut split = ws_raw_frame(1, b"42[\"say\",\"\xe2", false);
    split.extend(ws_raw_frame(0, b"\x28\xa1\"]", true));
    let cases = [
        (
            "invalid bytes",
            ws_raw_frame(1, b"42[\"say\",\"\xff\xfe\"]", true),
        ),
        ("overlong encoding", ws_raw_frame(1, b"4\xc0\xaf", true)),
        ("invalid sequence across fragments", split),
    ];
    expect_each(&server, &cases, INVALID_DATA, "invalid UTF-8");
}

#[test]
fn websocket_protocol_errors_are_closed_with_1002() {
    let server = room_server(|_| {});
    let mut rsv1 = ws_raw_frame(1, b"40", true);
    rsv1[0] |= 0x40;
    let cases = [
        ("unmasked client frame", vec![0x81, 0x02, b'4', b'0']),
        ("reserved opcode 3", ws_raw_frame(3, b"x", true)),
        ("continuation without a start", ws_raw_frame(0, b"4x", true)),
        ("fragmented ping", ws_raw_frame(9, b"p", false)),
        (
            "ping payload over 125 bytes",
            ws_raw_frame(9, &[b'p'; 126], true),
        ),
        ("RSV1 without an extension", rsv1),
    ];
    expect_each(&server, &cases, PROTOCOL_ERROR, "");
}

#[test]
fn engineio_and_socketio_level_closes_are_1000_with_the_reason() {
    let server = room_server(|_| {});
    let cases = [
        ("not an Engine.IO packet", ws_raw_frame(1, b"x", true)),
        (
            "a client ping (a v4 protocol error)",
            ws_raw_frame(1, b"2", true),
        ),
    ];
    expect_each(&server, &cases, NORMAL, "parse error");
    let cases = [(
        "unknown Socket.IO packet type",
        ws_raw_frame(1, b"47[\"a\"]", true),
    )];
    expect_each(
        &server,
        &cases,
        NORMAL,
        "parse error: unknown Socket.IO packet type",
    );
}

#[test]
fn a_missed_pong_is_closed_with_1000_ping_timeout() {
    let server = start_server(Room, |c| {
        c.ping_interval = Duration::from_millis(200);
        c.ping_timeout = Duration::from_millis(200);
    });
    let mut mute = member(&server);
    let closed = ws_await_close(&mut mute, IO_TIMEOUT, false).expect("closed");
    assert_close_frame(&closed, NORMAL, "ping timeout");
    // Answering pings keeps a session open over the same time.
    let mut live = member(&server);
    assert_eq!(
        ws_await_close(&mut live, Duration::from_millis(800), true),
        None
    );
}

#[test]
fn a_session_that_never_connects_is_closed_with_1000_connect_timeout() {
    let server = room_server(|c| c.connect_timeout = Duration::from_millis(300));
    let mut bystander = member(&server);
    let mut speaker = member(&server);
    let (mut idle, _) = server.ws_session();
    let started = Instant::now();
    ws_expect_close(&mut idle, IO_TIMEOUT, NORMAL, "connect timeout");
    assert!(started.elapsed() >= Duration::from_millis(250));
    room_works(&mut speaker, &mut bystander, 1);
}

#[test]
fn a_second_websocket_for_a_session_is_refused_with_1008() {
    let server = room_server(|_| {});
    let mut bystander = member(&server);
    let mut speaker = member(&server);
    let (sid, _) = server.handshake();
    let mut first = server.ws(Some(&sid));
    ws_send_text(&mut first, "2probe");
    assert_eq!(ws_expect_text(&mut first), "3probe");
    let mut second = server.ws(Some(&sid));
    ws_expect_close(
        &mut second,
        IO_TIMEOUT,
        POLICY,
        "the session has a WebSocket",
    );
    room_works(&mut speaker, &mut bystander, 1);
    // The first finishes its upgrade and joins the room.
    ws_send_text(&mut first, "5");
    ws_send_text(&mut first, "40");
    assert!(ws_expect_text(&mut first).starts_with("40{"));
    room_works(&mut speaker, &mut first, 2);
}

#[test]
fn shutdown_closes_websockets_with_1001() {
    let server = room_server(|_| {});
    let mut a = member(&server);
    let mut b = member(&server);
    server.shutdown();
    for ws in [&mut a, &mut b] {
        let seen = ws_expect_close(ws, IO_TIMEOUT, GOING_AWAY, "server shutting down");
        // The Engine.IO close packet goes first, as before.
        assert_eq!(seen, vec![WsEvent::Text("1".into())]);
    }
}

/// A room server (maxPayload 100,000, the given outbound limit) whose metrics the test reads.
fn metered_room_server(
    max_outbound_bytes: usize,
) -> (
    readrealm_chat::server::ServerHandle,
    TestServer,
    std::sync::Arc<Metrics>,
) {
    let mut config = base_config();
    config.max_payload = 100_000;
    config.max_outbound_bytes = max_outbound_bytes;
    quiet(&mut config);
    let metrics = Metrics::new(1);
    let handle = readrealm_chat::server::start_with(
        config.clone(),
        Room,
        Ops::serving(std::sync::Arc::clone(&metrics), None),
    )
    .expect("server starts");
    let server = TestServer::external(handle.local_addr(), &config.path);
    (handle, server, metrics)
}

/// A member over WebSocket whose socket has a 4 KiB receive buffer, so what it does not
/// read soon waits in the server.
fn tiny_buffer_member(server: &TestServer) -> Ws {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let url = format!("ws://{}{}", server.addr, server.websocket_target(None));
    let (mut ws, _) = tungstenite::client::client(url.as_str(), stream).unwrap();
    assert!(ws_expect_text(&mut ws).starts_with("0{"));
    ws_send_text(&mut ws, "40");
    assert!(ws_expect_text(&mut ws).starts_with("40{"));
    ws
}

/// Open TCP connections the server counts (the shard's last loop turn).
fn tcp_connections(metrics: &Metrics) -> u64 {
    let text = metrics.render(&[]);
    text.lines()
        .find_map(|l| l.strip_prefix("readrealm_tcp_connections "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .map(|n| n as u64)
        .expect("readrealm_tcp_connections in the metrics")
}

#[test]
fn a_peer_that_never_reads_its_close_frame_is_disconnected_within_the_linger_bound() {
    let (handle, server, metrics) = metered_room_server(64 * 1024 * 1024);
    // The non-reader: a tiny receive buffer, in the room, never reads again.
    let mut deaf = tiny_buffer_member(&server);
    // Fill its path: the room hears 10 MB the deaf one never takes, more than the kernel
    // buffers hold (tcp_wmem's maximum is 4 MiB here), so the rest waits in the server.
    let mut speaker = member(&server);
    let padding = "y".repeat(50_000);
    for n in 0..200 {
        ws_send_text(&mut speaker, &format!(r#"421["say","{n}{padding}"]"#));
        assert_eq!(ws_expect_text(&mut speaker), "431[]");
    }
    // Now a protocol error: its close frame waits behind what it never read.
    ws_write_raw(&mut deaf, &[0x81, 0x02, b'4', b'0']);
    std::thread::sleep(Duration::from_millis(100));
    ws_send_text(&mut speaker, r#"421["say","tick"]"#);
    assert_eq!(ws_expect_text(&mut speaker), "431[]");
    let before = tcp_connections(&metrics);
    assert_eq!(before, 2, "the speaker and the closing deaf reader");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        // Each say makes a loop turn, which samples the count.
        ws_send_text(&mut speaker, r#"421["say","tick"]"#);
        assert_eq!(ws_expect_text(&mut speaker), "431[]");
        if tcp_connections(&metrics) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deaf reader's connection is still open 3 s after its close began"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(deaf);
    handle.shutdown();
    let _ = handle.join();
}

/// How many sessions the server closed for `reason` (`/metrics`' disconnect counter).
fn disconnects(metrics: &Metrics, reason: &str) -> u64 {
    let prefix = format!("readrealm_disconnects_total{{reason=\"{reason}\"}} ");
    metrics
        .render(&[])
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_owned))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .map(|n| n as u64)
        .unwrap_or(0)
}

#[test]
fn a_reader_over_max_outbound_bytes_gets_1008_right_after_the_frame_it_was_reading() {
    let (handle, server, metrics) = metered_room_server(256 * 1024);
    // The slow reader: a tiny receive buffer, in the room, not reading for now.
    let mut slow = tiny_buffer_member(&server);
    let mut bystander = member(&server);
    let mut speaker = member(&server);
    // The room hears 50 kB messages until the server gives up on the slow reader (more than
    // the kernel buffers hold, then more than --max-outbound-bytes queued for it).
    let padding = "y".repeat(50_000);
    let mut said = 0;
    while disconnects(&metrics, "transport_close") == 0 {
        assert!(said < 1000, "the slow reader was never cut off");
        ws_send_text(&mut speaker, &format!(r#"421["say","{said}{padding}"]"#));
        assert_eq!(ws_expect_text(&mut speaker), "431[]");
        assert!(ws_expect_text(&mut bystander).starts_with(&format!(r#"42["said","{said}y"#)));
        said += 1;
    }
    // Now it reads: whole messages in order, then the close frame saying why, within the
    // close linger.
    let closed = ws_await_close(&mut slow, Duration::from_secs(5), true).expect("closed");
    match &closed.frame {
        Some((POLICY, reason)) if reason == "reader too slow: over --max-outbound-bytes" => {}
        other => panic!("expected 1008 reader too slow, got {other:?}"),
    }
    assert!(
        !closed.seen.is_empty(),
        "it got what was in the kernel buffers"
    );
    for (n, event) in closed.seen.iter().enumerate() {
        let whole = format!(r#"42["said","{n}{padding}"]"#);
        assert!(
            matches!(event, WsEvent::Text(text) if *text == whole),
            "message {n} whole and in order"
        );
    }
    assert!(
        closed.seen.len() < said,
        "what was queued behind the cut was dropped"
    );
    room_works(&mut speaker, &mut bystander, said);
    handle.shutdown();
    let _ = handle.join();
}
