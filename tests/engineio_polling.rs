//! Engine.IO v4 over HTTP long-polling, against the echo server on `/engine.io/`, over real
//! sockets (docs/PROTOCOL.md "Engine.IO v4": Requests, Errors, Handshake, Polling, Heartbeat,
//! CORS).

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

#[test]
fn handshake_sids_are_unique_and_url_safe() {
    let server = engineio_quiet();
    let mut sids = HashSet::new();
    for _ in 0..20 {
        let (sid, open) = server.handshake();
        assert_open_packet(&open, &["websocket"], &server.config);
        assert!(sids.insert(sid.clone()), "sid {sid} issued twice");
    }
}

#[test]
fn handshake_ignores_cache_buster_query_parameters() {
    let server = engineio_quiet();
    let response = server
        .http()
        .get("/engine.io/?EIO=4&transport=polling&t=PzX1abc&foo=bar");
    assert_eq!(response.status, 200, "{response:?}");
    parse_open(&response.text());
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_or_unknown_transport_is_400_code_0() {
    let server = engineio_quiet();
    for target in [
        "/engine.io/?EIO=4",
        "/engine.io/?EIO=4&transport=flash",
        "/engine.io/?EIO=4&transport=",
        "/engine.io/",
    ] {
        let response = server.http().get(target);
        assert_eio_error(&response, 0);
    }
}

#[test]
fn missing_or_unknown_eio_is_400_code_5() {
    let server = engineio_quiet();
    for target in [
        "/engine.io/?transport=polling",
        "/engine.io/?EIO=3&transport=polling",
        "/engine.io/?EIO=5&transport=polling",
        "/engine.io/?EIO=abc&transport=polling",
    ] {
        let response = server.http().get(target);
        assert_eio_error(&response, 5);
    }
}

#[test]
fn post_or_put_without_sid_is_400_code_2() {
    let server = engineio_quiet();
    let target = server.polling_target(None);
    let response = server.http().post(&target, b"4hello");
    assert_eio_error(&response, 2);
    let response = server.http().request("PUT", &target, &[], b"4hello");
    assert_eio_error(&response, 2);
}

#[test]
fn unknown_sid_is_400_code_1() {
    let server = engineio_quiet();
    let response = server.get("nonexistent");
    assert_eio_error(&response, 1);
    let response = server.post("nonexistent", b"4hello");
    assert_eio_error(&response, 1);
}

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

#[test]
fn websocket_transport_without_upgrade_headers_is_400_code_3() {
    let server = engineio_quiet();
    let response = server.http().get(&server.websocket_target(None));
    assert_eio_error(&response, 3);
    // A known polling sid asked for on the websocket transport, without an upgrade.
    let (sid, _) = server.handshake();
    let response = server.http().get(&server.websocket_target(Some(&sid)));
    assert_eio_error(&response, 3);
    // The session itself is untouched.
    server.post_ok(&sid, "4still");
    assert_eq!(server.get_packets(&sid), ["4still"]);
}

#[test]
fn unknown_path_is_404() {
    let server = engineio_quiet();
    for target in [
        "/foo/?EIO=4&transport=polling",
        "/socket.io/?EIO=4&transport=polling",
        "/",
        "/engine.io.bak/?EIO=4&transport=polling",
    ] {
        let response = server.http().get(target);
        assert_eq!(response.status, 404, "{target}: {response:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------------

#[test]
fn cors_preflight_echoes_origin_with_credentials() {
    let server = engineio_quiet();
    let response = server.http().request(
        "OPTIONS",
        &server.polling_target(None),
        &[
            ("Origin", "http://example.com:8080"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("http://example.com:8080"),
        "{response:?}"
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true"),
        "{response:?}"
    );
    let methods = response
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{response:?}"
    );
    assert!(response.body.is_empty(), "{response:?}");
}

#[test]
fn cors_preflight_without_origin_allows_any() {
    let server = engineio_quiet();
    let response = server
        .http()
        .request("OPTIONS", &server.polling_target(None), &[], b"");
    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("*"),
        "{response:?}"
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        None,
        "no credentials next to a wildcard: {response:?}"
    );
}

#[test]
fn cors_headers_on_polling_responses_echo_origin() {
    let server = engineio_quiet();
    let origin = ("Origin", "https://app.example");
    let mut conn = server.http();
    let response = conn.request("GET", &server.polling_target(None), &[origin], b"");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
    let sid = parse_open(&response.text())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = server.polling_target(Some(&sid));
    let response = conn.request(
        "POST",
        &target,
        &[origin, ("Content-Type", "text/plain;charset=UTF-8")],
        b"4cors",
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
    let response = conn.request("GET", &target, &[origin], b"");
    assert_eq!(response.text(), "4cors");
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
    // Errors carry the CORS headers too, so a browser page can read them.
    let response = conn.request("GET", "/engine.io/?EIO=4&transport=x", &[origin], b"");
    assert_eio_error(&response, 0);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
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

#[test]
fn utf8_message_roundtrips() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "4héllo €𝄞");
    assert_eq!(server.get_packets(&sid), ["4héllo €𝄞"]);
}

#[test]
fn post_with_several_packets_echoes_them_in_one_get_in_order() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "4a\x1ebAQIDBA==\x1e4b");
    let response = server.get(&sid);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "4a\x1ebAQIDBA==\x1e4b");
}

#[test]
fn binary_message_roundtrips_as_b_plus_base64() {
    use base64::Engine as _;
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "bAQIDBA==");
    assert_eq!(server.get_packets(&sid), ["bAQIDBA=="]);
    // Every byte value.
    let all: Vec<u8> = (0..=255u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&all);
    server.post_ok(&sid, &format!("b{encoded}"));
    let packets = server.get_packets(&sid);
    assert_eq!(packets.len(), 1);
    let back = packets[0].strip_prefix('b').expect("binary packet");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(back)
            .unwrap(),
        all
    );
}

#[test]
fn parked_get_is_answered_by_a_later_post() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut get = park_get(&server, &sid);
    server.post_ok(&sid, "4wake");
    let response = get.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "4wake");
}

// ---------------------------------------------------------------------------------------------
// One GET at a time, client close, bad bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn second_concurrent_get_is_400_and_parked_get_answers_close() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut first = park_get(&server, &sid);
    let second = server.get(&sid);
    assert_eq!(second.status, 400, "second concurrent GET: {second:?}");
    let first = first.read_response();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.text(), "1", "the parked GET gets a close packet");
    assert_eio_error(&server.get(&sid), 1);
    assert_eio_error(&server.post(&sid, b"4x"), 1);
}

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

#[test]
fn client_close_without_parked_get_ends_session() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    server.post_ok(&sid, "1");
    assert_eio_error(&server.get(&sid), 1);
}

#[test]
fn post_body_over_max_payload_is_413() {
    let server = start_engineio(|c| {
        quiet(c);
        c.max_payload = 1000;
    });
    let (sid, open) = server.handshake();
    assert_eq!(open["maxPayload"], 1000);
    let body = format!("4{}", "a".repeat(1000)); // 1001 bytes
    let response = server.post(&sid, body.as_bytes());
    assert_eq!(response.status, 413, "{response:?}");
}

#[test]
fn post_body_at_max_payload_is_accepted() {
    let server = start_engineio(|c| {
        quiet(c);
        c.max_payload = 1000;
    });
    let (sid, _) = server.handshake();
    let body = format!("4{}", "a".repeat(999)); // exactly 1000 bytes
    server.post_ok(&sid, &body);
    assert_eq!(server.get_packets(&sid), [body]);
}

#[test]
fn undecodable_post_is_400_and_ends_session() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut get = park_get(&server, &sid);
    let response = server.post(&sid, b"x");
    assert_eq!(response.status, 400, "{response:?}");
    let parked = get.read_response();
    assert_eq!(parked.text(), "1", "parked GET learns the session closed");
    assert_eio_error(&server.get(&sid), 1);

    for bad in [&b"x"[..], b"9", b"7", b"4a\x1ex"] {
        let (sid, _) = server.handshake();
        let response = server.post(&sid, bad);
        assert_eq!(
            response.status,
            400,
            "POST {:?}: {response:?}",
            String::from_utf8_lossy(bad)
        );
        assert_eio_error(&server.get(&sid), 1);
    }
}

#[test]
fn client_ping_over_polling_ends_session() {
    // v4: the server pings; a client ping is a protocol error.
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut get = park_get(&server, &sid);
    let _ = server.post(&sid, b"2");
    let parked = get.read_response();
    assert_eq!(parked.text(), "1", "{parked:?}");
    assert_eio_error(&server.get(&sid), 1);
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

#[test]
fn pongs_keep_polling_session_alive_across_pings() {
    let server = start_engineio(|_| {});
    let (sid, _) = server.handshake();
    let started = Instant::now();
    let mut last = started;
    for i in 0..4 {
        let packets = server.get_packets(&sid);
        assert_eq!(packets, ["2"], "ping {i}");
        let gap = last.elapsed();
        if i > 0 {
            assert!(
                gap >= Duration::from_millis(250),
                "ping {i} came {gap:?} after the previous pong"
            );
        }
        server.post_ok(&sid, "3");
        last = Instant::now();
    }
    // Well past pingInterval + pingTimeout from the start: still alive.
    assert!(started.elapsed() > Duration::from_millis(1000));
    server.post_ok(&sid, "4alive");
    assert_eq!(server.get_n_skipping_pings(&sid, 1), ["4alive"]);
}

#[test]
fn no_pong_closes_session_after_ping_interval_plus_timeout() {
    let server = start_engineio(|_| {});
    let started = Instant::now();
    let (sid, _) = server.handshake();
    assert_eq!(server.get_packets(&sid), ["2"]);
    // Do not answer: the next parked GET learns of the close.
    let response = server.get(&sid);
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "1", "{response:?}");
    assert!(
        elapsed >= Duration::from_millis(490),
        "closed after {elapsed:?}, before pingInterval + pingTimeout"
    );
    assert!(
        elapsed < Duration::from_millis(1200),
        "closed only after {elapsed:?}"
    );
    assert_eio_error(&server.get(&sid), 1);
}

#[test]
fn no_pong_without_any_get_ends_session() {
    let server = start_engineio(|_| {});
    let (sid, _) = server.handshake();
    thread::sleep(Duration::from_millis(300 + 200 + 200));
    assert_eio_error(&server.get(&sid), 1);
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
    // Errors without a body keep the connection too.
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

#[test]
fn second_concurrent_post_is_400_and_closes_session() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let target = server.polling_target(Some(&sid));
    // A POST whose body is still arriving...
    let mut first = server.http();
    let bytes = Http::request_bytes("POST", &target, &[], b"4first-post");
    first.send_raw(&bytes[..bytes.len() - 4]);
    thread::sleep(Duration::from_millis(50));
    // ...and a second one for the same session.
    let second = server.post(&sid, b"4second-post");
    assert_eq!(second.status, 400, "{second:?}");
    assert_eio_error(&server.get(&sid), 1);
}

// ---------------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------------

#[test]
fn server_shutdown_answers_parked_get_with_close() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let mut get = park_get(&server, &sid);
    server.shutdown();
    let response = get.read_response();
    assert_eq!(response.text(), "1", "{response:?}");
}

// ---------------------------------------------------------------------------------------------
// CORS configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn cors_origin_list_echoes_only_listed_origins() {
    use readrealm_chat::http::cors::CorsPolicy;
    let server = start_engineio(|c| {
        quiet(c);
        c.cors = CorsPolicy::Origins(vec!["https://ok.example".into()]);
    });
    let target = server.polling_target(None);
    let listed = server.http().request(
        "OPTIONS",
        &target,
        &[
            ("Origin", "https://ok.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(listed.status, 204, "{listed:?}");
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("https://ok.example")
    );
    assert_eq!(
        listed.header("access-control-allow-credentials"),
        Some("true")
    );
    let other = server.http().request(
        "OPTIONS",
        &target,
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(other.status, 204, "{other:?}");
    assert_eq!(
        other.header("access-control-allow-origin"),
        None,
        "{other:?}"
    );
    // The request itself is still served (browsers enforce CORS, not servers).
    let response =
        server
            .http()
            .request("GET", &target, &[("Origin", "https://evil.example")], b"");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("access-control-allow-origin"),
        None,
        "{response:?}"
    );
}

#[test]
fn cors_without_credentials_echoes_origin_only() {
    let server = start_engineio(|c| {
        quiet(c);
        c.cors_credentials = false;
    });
    let response = server.http().request(
        "OPTIONS",
        &server.polling_target(None),
        &[
            ("Origin", "https://a.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        b"",
    );
    assert_eq!(response.status, 204, "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://a.example")
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        None,
        "{response:?}"
    );
}

#[test]
fn dropped_parked_get_ends_the_session() {
    let server = engineio_quiet();
    let (sid, _) = server.handshake();
    let get = park_get(&server, &sid);
    drop(get);
    // engine.io: "poll connection closed prematurely" ends the session. Give the server a
    // moment to see the close (a GET to a live session would park instead of answering).
    thread::sleep(Duration::from_millis(200));
    assert_eio_error(&server.get(&sid), 1);
}
