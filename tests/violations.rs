//! Protocol errors stay named to the edge: a session closed for breaking a rule is counted in
//! `/metrics` under the rule it broke (`readrealm_protocol_violations_total{violation}`), over
//! real sockets, one violation per layer: Engine.IO, HTTP framing of a POST, RFC 6455 frames,
//! Socket.IO packets.

mod support;

use std::time::{Duration, Instant};

use readrealm_chat::config::Layer;
use readrealm_chat::metrics::Metrics;
use readrealm_chat::server::{start_with, Ops};
use readrealm_chat::socketio::conformance::ConformanceSocketIo;
use support::*;

fn metric(server_addr: std::net::SocketAddr, line_start: &str) -> Option<u64> {
    let mut http = Http::connect(server_addr);
    let body = http.get("/metrics").text();
    body.lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
}

fn violations(addr: std::net::SocketAddr, label: &str) -> u64 {
    let start = format!("readrealm_protocol_violations_total{{violation=\"{label}\"}}");
    metric(addr, &start).unwrap_or_else(|| panic!("no {start} in /metrics"))
}

/// Wait until the counter reads `want` (the close is counted when the shard handles it).
fn await_count(addr: std::net::SocketAddr, label: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = violations(addr, label);
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "{label}: {n}, want {want}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn each_protocol_violation_is_counted_under_its_rule() {
    let mut config = base_config();
    config.path = "/socket.io/".into();
    config.layer = Layer::SocketIo;
    config.shards = 1;
    let ops = Ops::serving(Metrics::new(1), None);
    let handle = start_with(config.clone(), ConformanceSocketIo, ops).expect("server starts");
    let addr = handle.local_addr();
    let server = TestServer::external(addr, "/socket.io/");

    for label in [
        "eio_client_ping",
        "ws_invalid_utf8",
        "sio_unknown_type",
        "eio_bad_payload",
    ] {
        assert_eq!(violations(addr, label), 0, "{label} before any client");
    }

    // Engine.IO: clients never ping in v4.
    let (mut ws, _) = server.ws_session();
    ws_send_text(&mut ws, "2");
    ws_expect_close(&mut ws, Duration::from_secs(5), 1000, "parse error");
    await_count(addr, "eio_client_ping", 1);

    // RFC 6455: a text frame that is not UTF-8.
    let (mut ws, _) = server.ws_session();
    ws_write_raw(&mut ws, &ws_raw_frame(1, b"4\xff\xfe", true));
    ws_expect_close(
        &mut ws,
        Duration::from_secs(5),
        1007,
        "invalid UTF-8 in a text frame",
    );
    await_count(addr, "ws_invalid_utf8", 1);

    // Socket.IO: `9` is no packet type.
    let (mut ws, _) = server.ws_session();
    ws_send_text(&mut ws, "49");
    ws_await_close(&mut ws, Duration::from_secs(5), true).expect("closed");
    await_count(addr, "sio_unknown_type", 1);

    // Engine.IO over polling: a POST body that is no payload.
    let (sid, _) = server.handshake();
    let response = server.post(&sid, b"\x1e\x1e");
    assert_eq!(response.status, 400, "{response:?}");
    await_count(addr, "eio_bad_payload", 1);

    // Nothing else was counted, and the disconnect reasons agree.
    assert_eq!(violations(addr, "eio_client_open"), 0);
    let parse_errors = metric(
        addr,
        "readrealm_disconnects_total{reason=\"protocol_error\"}",
    );
    assert_eq!(parse_errors, Some(4));
    handle.shutdown();
    handle.join().expect("clean exit");
}
