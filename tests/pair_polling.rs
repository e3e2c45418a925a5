//! Engine.IO v4 over HTTP long-polling, on the deterministic endpoint pair (no sockets, a
//! virtual clock): handshake, errors, CORS, messages, one GET at a time, client close, bad
//! bodies, heartbeat, shutdown. Moved from `tests/engineio_polling.rs`, asserting the same
//! codes, packets and order; what needs a real socket (keep-alive, pipelining, split reads,
//! several shards) stays there.

mod pair_support;

use std::collections::HashSet;
use std::time::Duration;

use pair_support::*;
use readrealm_chat::endpoint::pair::ConnState;

// Handshake

#[test]
fn handshake_sends_open_packet_with_exactly_five_keys() {
    let mut pair = engineio(|_| {});
    let target = polling_target(&pair, None);
    let response = get_target(&mut pair, &target);
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
    assert_open_packet(&open, &["websocket"], pair.config());
    assert_eq!(open["pingInterval"], 300);
    assert_eq!(open["pingTimeout"], 200);
    assert_eq!(open["maxPayload"], 1_000_000);
}

#[test]
fn handshake_sids_are_unique_and_url_safe() {
    let mut pair = engineio_quiet();
    let mut sids = HashSet::new();
    for _ in 0..20 {
        let (sid, open) = handshake(&mut pair);
        assert_open_packet(&open, &["websocket"], pair.config());
        assert!(sids.insert(sid.clone()), "sid {sid} issued twice");
    }
}

#[test]
fn handshake_ignores_cache_buster_query_parameters() {
    let mut pair = engineio_quiet();
    let response = get_target(
        &mut pair,
        "/engine.io/?EIO=4&transport=polling&t=PzX1abc&foo=bar",
    );
    assert_eq!(response.status, 200, "{response:?}");
    parse_open(&response.text());
}

// Errors

#[test]
fn missing_or_unknown_transport_is_400_code_0() {
    let mut pair = engineio_quiet();
    for target in [
        "/engine.io/?EIO=4",
        "/engine.io/?EIO=4&transport=flash",
        "/engine.io/?EIO=4&transport=",
        "/engine.io/",
    ] {
        assert_eio_error(&get_target(&mut pair, target), 0);
    }
}

#[test]
fn missing_or_unknown_eio_is_400_code_5() {
    let mut pair = engineio_quiet();
    for target in [
        "/engine.io/?transport=polling",
        "/engine.io/?EIO=3&transport=polling",
        "/engine.io/?EIO=5&transport=polling",
        "/engine.io/?EIO=abc&transport=polling",
    ] {
        assert_eio_error(&get_target(&mut pair, target), 5);
    }
}

#[test]
fn post_or_put_without_sid_is_400_code_2() {
    let mut pair = engineio_quiet();
    let target = polling_target(&pair, None);
    assert_eio_error(&call(&mut pair, "POST", &target, &[], b"4hello"), 2);
    assert_eio_error(&call(&mut pair, "PUT", &target, &[], b"4hello"), 2);
}

#[test]
fn unknown_sid_is_400_code_1() {
    let mut pair = engineio_quiet();
    assert_eio_error(&get(&mut pair, "nonexistent"), 1);
    assert_eio_error(&post(&mut pair, "nonexistent", b"4hello"), 1);
}

#[test]
fn websocket_transport_without_upgrade_headers_is_400_code_3() {
    let mut pair = engineio_quiet();
    let target = websocket_target(&pair, None);
    assert_eio_error(&get_target(&mut pair, &target), 3);
    // A known polling sid asked for on the websocket transport, without an upgrade.
    let (sid, _) = handshake(&mut pair);
    let target = websocket_target(&pair, Some(&sid));
    assert_eio_error(&get_target(&mut pair, &target), 3);
    // The session itself is untouched.
    post_ok(&mut pair, &sid, "4still");
    assert_eq!(get_packets(&mut pair, &sid), ["4still"]);
}

#[test]
fn unknown_path_is_404() {
    let mut pair = engineio_quiet();
    for target in [
        "/foo/?EIO=4&transport=polling",
        "/socket.io/?EIO=4&transport=polling",
        "/",
        "/engine.io.bak/?EIO=4&transport=polling",
    ] {
        let response = get_target(&mut pair, target);
        assert_eq!(response.status, 404, "{target}: {response:?}");
    }
}

// CORS

#[test]
fn cors_preflight_echoes_origin_with_credentials() {
    let mut pair = engineio_quiet();
    let target = polling_target(&pair, None);
    let response = call(
        &mut pair,
        "OPTIONS",
        &target,
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
    let mut pair = engineio_quiet();
    let target = polling_target(&pair, None);
    let response = call(&mut pair, "OPTIONS", &target, &[], b"");
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
    let mut pair = engineio_quiet();
    let origin = ("Origin", "https://app.example");
    let target = polling_target(&pair, None);
    let response = call(&mut pair, "GET", &target, &[origin], b"");
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
    let target = polling_target(&pair, Some(&sid));
    let response = call(
        &mut pair,
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
    let response = call(&mut pair, "GET", &target, &[origin], b"");
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
    let response = call(
        &mut pair,
        "GET",
        "/engine.io/?EIO=4&transport=x",
        &[origin],
        b"",
    );
    assert_eio_error(&response, 0);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
}

#[test]
fn cors_origin_list_echoes_only_listed_origins() {
    use readrealm_chat::http::cors::CorsPolicy;
    let mut pair = engineio(|c| {
        quiet(c);
        c.cors = CorsPolicy::Origins(vec!["https://ok.example".into()]);
    });
    let target = polling_target(&pair, None);
    let listed = call(
        &mut pair,
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
    let other = call(
        &mut pair,
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
    let response = call(
        &mut pair,
        "GET",
        &target,
        &[("Origin", "https://evil.example")],
        b"",
    );
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("access-control-allow-origin"),
        None,
        "{response:?}"
    );
}

#[test]
fn cors_without_credentials_echoes_origin_only() {
    let mut pair = engineio(|c| {
        quiet(c);
        c.cors_credentials = false;
    });
    let target = polling_target(&pair, None);
    let response = call(
        &mut pair,
        "OPTIONS",
        &target,
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

// Messages

#[test]
fn utf8_message_roundtrips() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "4héllo €𝄞");
    assert_eq!(get_packets(&mut pair, &sid), ["4héllo €𝄞"]);
}

#[test]
fn post_with_several_packets_echoes_them_in_one_get_in_order() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "4a\x1ebAQIDBA==\x1e4b");
    let response = get(&mut pair, &sid);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "4a\x1ebAQIDBA==\x1e4b");
}

#[test]
fn binary_message_roundtrips_as_b_plus_base64() {
    use base64::Engine as _;
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "bAQIDBA==");
    assert_eq!(get_packets(&mut pair, &sid), ["bAQIDBA=="]);
    // Every byte value.
    let all: Vec<u8> = (0..=255u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&all);
    post_ok(&mut pair, &sid, &format!("b{encoded}"));
    let packets = get_packets(&mut pair, &sid);
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
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let get = park_get(&mut pair, &sid);
    post_ok(&mut pair, &sid, "4wake");
    let response = parked_answer(&mut pair, get);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "4wake");
}

// One GET at a time, client close, bad bodies

#[test]
fn second_concurrent_get_is_400_and_parked_get_answers_close() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let first = park_get(&mut pair, &sid);
    let second = get(&mut pair, &sid);
    assert_eq!(second.status, 400, "second concurrent GET: {second:?}");
    let first = parked_answer(&mut pair, first);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.text(), "1", "the parked GET gets a close packet");
    assert_eio_error(&get(&mut pair, &sid), 1);
    assert_eio_error(&post(&mut pair, &sid, b"4x"), 1);
}

#[test]
fn client_close_without_parked_get_ends_session() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, "1");
    // The GET's connection opens after the close (a connection open at the close may carry
    // the pending GET, answered `6` once).
    pair.advance(Duration::from_millis(1));
    assert_eio_error(&get(&mut pair, &sid), 1);
}

#[test]
fn post_body_over_max_payload_is_413() {
    let mut pair = engineio(|c| {
        quiet(c);
        c.max_payload = 1000;
    });
    let (sid, open) = handshake(&mut pair);
    assert_eq!(open["maxPayload"], 1000);
    let body = format!("4{}", "a".repeat(1000)); // 1001 bytes
    let response = post(&mut pair, &sid, body.as_bytes());
    assert_eq!(response.status, 413, "{response:?}");
}

#[test]
fn post_body_at_max_payload_is_accepted() {
    let mut pair = engineio(|c| {
        quiet(c);
        c.max_payload = 1000;
    });
    let (sid, _) = handshake(&mut pair);
    let body = format!("4{}", "a".repeat(999)); // exactly 1000 bytes
    post_ok(&mut pair, &sid, &body);
    assert_eq!(get_packets(&mut pair, &sid), [body]);
}

#[test]
fn undecodable_post_is_400_and_ends_session() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let get_conn = park_get(&mut pair, &sid);
    let response = post(&mut pair, &sid, b"x");
    assert_eq!(response.status, 400, "{response:?}");
    let parked = parked_answer(&mut pair, get_conn);
    assert_eq!(parked.text(), "1", "parked GET learns the session closed");
    assert_eio_error(&get(&mut pair, &sid), 1);

    for bad in [&b"x"[..], b"9", b"7", b"4a\x1ex"] {
        let (sid, _) = handshake(&mut pair);
        let response = post(&mut pair, &sid, bad);
        assert_eq!(
            response.status,
            400,
            "POST {:?}: {response:?}",
            String::from_utf8_lossy(bad)
        );
        assert_eio_error(&get(&mut pair, &sid), 1);
    }
}

#[test]
fn client_ping_over_polling_ends_session() {
    // v4: the server pings; a client ping is a protocol error.
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let get_conn = park_get(&mut pair, &sid);
    let _ = post(&mut pair, &sid, b"2");
    let parked = parked_answer(&mut pair, get_conn);
    assert_eq!(parked.text(), "1", "{parked:?}");
    assert_eio_error(&get(&mut pair, &sid), 1);
}

#[test]
fn second_concurrent_post_is_400_and_closes_session() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let target = polling_target(&pair, Some(&sid));
    // A POST whose body is still arriving...
    let bytes = request_bytes("POST", &target, &[], b"4first-post");
    let first = pair.connect();
    pair.send(first, &bytes[..bytes.len() - 4]);
    assert!(pair.take_answer(first).is_none(), "body incomplete");
    // ...and a second one for the same session.
    let second = post(&mut pair, &sid, b"4second-post");
    assert_eq!(second.status, 400, "{second:?}");
    assert_eio_error(&get(&mut pair, &sid), 1);
}

#[test]
fn dropped_parked_get_ends_the_session() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let get_conn = park_get(&mut pair, &sid);
    pair.close(get_conn);
    // engine.io: "poll connection closed prematurely" ends the session.
    assert_eio_error(&get(&mut pair, &sid), 1);
}

// Heartbeat

#[test]
fn first_ping_arrives_a_full_ping_interval_after_handshake() {
    let mut pair = engineio(|_| {});
    let (sid, _) = handshake(&mut pair);
    let get_conn = park_get(&mut pair, &sid);
    // Deadlines run within the endpoint's 1 ms timer slack.
    pair.advance(Duration::from_millis(298));
    assert_eq!(
        pair.state(get_conn),
        Some(ConnState::Parked),
        "no ping before 300 ms"
    );
    pair.advance(Duration::from_millis(2));
    assert_eq!(parked_answer(&mut pair, get_conn).text(), "2");
}

#[test]
fn pongs_keep_polling_session_alive_across_pings() {
    let mut pair = engineio(|_| {});
    let (sid, _) = handshake(&mut pair);
    let started = pair.now();
    for i in 0..4 {
        let get_conn = park_get(&mut pair, &sid);
        // The next ping comes pingInterval after the open or the last pong, not earlier.
        pair.advance(Duration::from_millis(298));
        assert_eq!(
            pair.state(get_conn),
            Some(ConnState::Parked),
            "ping {i} early"
        );
        pair.advance(Duration::from_millis(2));
        let packets = decode_payload(&parked_answer(&mut pair, get_conn).text());
        assert_eq!(packets, ["2"], "ping {i}");
        // Answer late but within pingTimeout.
        pair.advance(Duration::from_millis(150));
        post_ok(&mut pair, &sid, "3");
    }
    // Well past pingInterval + pingTimeout from the start: still alive.
    assert!(pair.now() - started > Duration::from_millis(1000));
    post_ok(&mut pair, &sid, "4alive");
    assert_eq!(get_packets(&mut pair, &sid), ["4alive"]);
}

#[test]
fn no_pong_closes_session_after_ping_interval_plus_timeout() {
    let mut pair = engineio(|_| {});
    let (sid, _) = handshake(&mut pair);
    let get_conn = park_get(&mut pair, &sid);
    pair.advance(Duration::from_millis(300));
    assert_eq!(
        decode_payload(&parked_answer(&mut pair, get_conn).text()),
        ["2"]
    );
    // Do not answer: the next parked GET learns of the close.
    let get_conn = park_get(&mut pair, &sid);
    pair.advance(Duration::from_millis(198));
    assert_eq!(
        pair.state(get_conn),
        Some(ConnState::Parked),
        "open within pingTimeout"
    );
    pair.advance(Duration::from_millis(2));
    let response = parked_answer(&mut pair, get_conn);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "1", "{response:?}");
    assert_eio_error(&get(&mut pair, &sid), 1);
}

#[test]
fn no_pong_without_any_get_ends_session() {
    let mut pair = engineio(|_| {});
    let (sid, _) = handshake(&mut pair);
    pair.advance(Duration::from_millis(300 + 200));
    assert_eio_error(&get(&mut pair, &sid), 1);
}

// Shutdown

#[test]
fn server_shutdown_answers_parked_get_with_close() {
    let mut pair = engineio_quiet();
    let (sid, _) = handshake(&mut pair);
    let get_conn = park_get(&mut pair, &sid);
    pair.shutdown();
    let response = parked_answer(&mut pair, get_conn);
    assert_eq!(response.text(), "1", "{response:?}");
}

// Hand-off

#[test]
fn requests_for_another_shards_sid_are_handed_to_that_shard() {
    // Shard 0 of 4: well-formed sids naming each shard (and ones beyond), unknown everywhere.
    let mut pair = readrealm_chat::endpoint::pair::Pair::with_shards(
        {
            let mut config = base_config();
            quiet(&mut config);
            config.path = "/engine.io/".into();
            config.layer = readrealm_chat::config::Layer::EngineIo;
            config.shards = 4;
            config
        },
        readrealm_chat::socketio::conformance::EchoEngine,
        4,
    );
    for (first, owner) in [("B", 1), ("C", 2), ("D", 3)] {
        let sid = format!("{first}{}", "A".repeat(22));
        for method in ["GET", "POST"] {
            let target = polling_target(&pair, Some(&sid));
            let conn = pair.request(&request_bytes(method, &target, &[], b"4x"));
            assert_eq!(pair.handed_to(conn), Some(owner), "{method} {sid}");
            assert!(
                pair.take_answer(conn).is_none(),
                "a handed-off request is not answered"
            );
        }
    }
    // Its own shard, and shards that do not exist, answer unknown sid here.
    for first in ["A", "Z", "_"] {
        let sid = format!("{first}{}", "A".repeat(22));
        assert_eio_error(&get(&mut pair, &sid), 1);
        assert_eio_error(&post(&mut pair, &sid, b"4x"), 1);
    }
}
