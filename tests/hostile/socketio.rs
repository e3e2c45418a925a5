//! Hostile Socket.IO: invalid packets of every kind, deeply nested and huge JSON, wrong
//! attachment counts, and thousands of namespace connects.

use std::time::Duration;

use serde_json::json;

use crate::client::{assert_closed, connected_ws, expect_text, parse_sio, ChatClient, WS_TARGET};
use crate::scene::Scene;
use crate::server::MAX_PAYLOAD;
use crate::support::{close_code, ws_connect, ws_send_binary, ws_send_text, Ws, IO_TIMEOUT};

fn eio_ws(scene: &Scene) -> Ws {
    let mut ws = ws_connect(scene.addr(), WS_TARGET).expect("websocket handshake");
    let open = expect_text(&mut ws, IO_TIMEOUT);
    assert!(open.starts_with("0{"), "{open:?}");
    ws
}

/// `[[[...]]]` nested `depth` deep.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `{"a":{"a":...1}}` nested `depth` deep.
fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

#[test]
fn invalid_socketio_packets_close_the_connection() {
    let scene = Scene::start(&[]);
    // Sent on a connection already connected to `/`.
    let after_connect = [
        ("message with no Socket.IO packet", "4".to_owned()),
        ("unknown packet type", "47[\"a\"]".to_owned()),
        ("letter as packet type", "4z".to_owned()),
        ("EVENT without data", "42".to_owned()),
        ("EVENT with an object", "42{\"a\":1}".to_owned()),
        ("EVENT with an empty array", "42[]".to_owned()),
        ("EVENT named by an object", "42[{},1]".to_owned()),
        ("EVENT named null", "42[null]".to_owned()),
        ("reserved event name connect", "42[\"connect\"]".to_owned()),
        (
            "reserved event name disconnecting",
            "42[\"disconnecting\"]".to_owned(),
        ),
        (
            "reserved event name newListener",
            "42[\"newListener\"]".to_owned(),
        ),
        (
            "truncated JSON",
            "42[\"chatMessage\",{\"bookId\":".to_owned(),
        ),
        ("trailing garbage after JSON", "42[\"a\"]xyz".to_owned()),
        ("two JSON values", "42[\"a\"][\"b\"]".to_owned()),
        (
            "ack id over u64",
            "4299999999999999999999999[\"a\"]".to_owned(),
        ),
        ("ACK without data", "431".to_owned()),
        ("ACK with an object", "431{}".to_owned()),
        (
            "CONNECT_ERROR from a client",
            "44{\"message\":\"x\"}".to_owned(),
        ),
        ("DISCONNECT with data", "41{\"a\":1}".to_owned()),
        ("second CONNECT to /", "40".to_owned()),
        (
            "EVENT for a namespace not joined",
            "42/elsewhere,[\"a\"]".to_owned(),
        ),
        (
            "namespace without the comma, then JSON",
            "42/x[\"a\"]".to_owned(),
        ),
        ("NaN in JSON", "42[\"a\",NaN]".to_owned()),
    ];
    for (what, text) in &after_connect {
        let mut ws = connected_ws(scene.addr());
        ws_send_text(&mut ws, text);
        assert_closed(&mut ws, IO_TIMEOUT, close_code::NORMAL, "parse error", what);
    }
    // Sent before any CONNECT.
    let before_connect = [
        ("EVENT before CONNECT", "42[\"chatMessage\",{}]"),
        ("ACK before CONNECT", "430[]"),
        ("DISCONNECT before CONNECT", "41"),
        ("CONNECT with an array", "40[1,2]"),
        ("CONNECT with a string", "40\"token\""),
        ("CONNECT with a boolean", "40true"),
    ];
    for (what, text) in before_connect {
        let mut ws = eio_ws(&scene);
        ws_send_text(&mut ws, text);
        assert_closed(&mut ws, IO_TIMEOUT, close_code::NORMAL, "parse error", what);
    }
    scene.finish("invalid Socket.IO packets");
}

#[test]
fn deeply_nested_json_is_refused_without_harm() {
    let scene = Scene::start(&[]);
    // Far past the depth limit (and past any recursive parser's stack): closed.
    let cases = [
        (
            "arrays 100,000 deep",
            format!("42[\"chatMessage\",{}]", nested_arrays(100_000)),
        ),
        (
            "objects 50,000 deep",
            format!("42[\"chatMessage\",{}]", nested_objects(50_000)),
        ),
        (
            "arrays 100,000 deep, unclosed",
            format!("42[\"chatMessage\",{}", "[".repeat(100_000)),
        ),
        (
            "CONNECT auth 10,000 deep",
            format!("40{}", nested_objects(10_000)),
        ),
        (
            "arrays 128 deep (past serde_json's limit of 127)",
            format!("42[\"chatMessage\",{}]", nested_arrays(127)),
        ),
    ];
    for (what, text) in &cases {
        let mut ws = if text.starts_with("40") {
            eio_ws(&scene)
        } else {
            connected_ws(scene.addr())
        };
        ws_send_text(&mut ws, text);
        assert_closed(
            &mut ws,
            IO_TIMEOUT,
            close_code::NORMAL,
            "parse error: packet data nests too deep",
            what,
        );
    }
    // Nesting within serde_json's limit inside a chat payload is a chat error, not a closed
    // connection (socket.io parses it too): the field has the wrong type.
    let mut client = ChatClient::connect(scene.addr());
    let id = client.emit_raw_with_ack(
        "joinRoom",
        &format!(
            "{{\"bookId\":{},\"userId\":\"u\",\"username\":\"n\"}}",
            nested_arrays(120)
        ),
    );
    let ack = client.expect_ack(id);
    assert_eq!(ack["ok"], json!(false), "{ack}");
    assert_eq!(ack["error"]["code"], json!("invalid_payload"), "{ack}");
    assert!(
        ack["error"]["message"].as_str().unwrap().contains("bookId"),
        "{ack}"
    );
    drop(client);
    scene.finish("deeply nested JSON");
}

#[test]
fn huge_json_is_refused_without_harm() {
    let scene = Scene::start(&[]);
    let elements = |n: usize| vec!["0"; n].join(",");
    // Within maxPayload, socket.io parses these and the chat answers them; so does this
    // server, without building a tree of them.
    let answered = [
        (
            "200,000 array elements",
            format!("[{}]", elements(200_000)),
            "payload must be an object",
        ),
        (
            "60,000 object members (640 kB)",
            format!(
                "{{{}}}",
                (0..60_000)
                    .map(|i| format!("\"k{i}\":0"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "bookId is required",
        ),
        (
            "content of 200,000 numbers",
            format!(
                "{{\"bookId\":3,\"userId\":\"u\",\"username\":\"n\",\"content\":[{}]}}",
                elements(200_000)
            ),
            "content must be a string",
        ),
    ];
    for (what, payload, message) in &answered {
        let mut client = ChatClient::connect(scene.addr());
        let id = client.emit_raw_with_ack("chatMessage", payload);
        let ack = client.expect_ack(id);
        assert_eq!(
            ack["error"]["code"],
            json!("invalid_payload"),
            "{what}: {ack}"
        );
        assert_eq!(ack["error"]["message"], json!(message), "{what}: {ack}");
    }
    let cases = [
        (
            "a message over maxPayload",
            format!("42[\"chatMessage\",\"{}\"]", "x".repeat(MAX_PAYLOAD + 1)),
        ),
        (
            "CONNECT auth with 200,000 elements",
            format!("40{{\"a\":[{}]}}", elements(200_000)),
        ),
    ];
    for (what, text) in &cases {
        let mut ws = if text.starts_with("40") {
            eio_ws(&scene)
        } else {
            connected_ws(scene.addr())
        };
        // The server may close before the whole message is read.
        let _ = ws.send(tungstenite::Message::text(text.clone()));
        // Over maxPayload, the frame is refused before any JSON is read.
        let (code, reason) = if text.len() > MAX_PAYLOAD {
            (close_code::TOO_BIG, "over maxPayload")
        } else {
            (
                close_code::NORMAL,
                "parse error: packet data holds too many values",
            )
        };
        assert_closed(&mut ws, IO_TIMEOUT, code, reason, what);
    }
    // Twenty-five connections each send a 900 KB message (under maxPayload, so it is parsed)
    // at once: a chat content far over 4,000 characters, answered with invalid_payload.
    let content = "y".repeat(900_000);
    let mut clients: Vec<ChatClient> = (0..25).map(|_| ChatClient::connect(scene.addr())).collect();
    let ids: Vec<u64> = clients
        .iter_mut()
        .map(|c| {
            c.emit_with_ack(
                "chatMessage",
                &json!({ "bookId": 3, "userId": "u", "username": "n", "content": content }),
            )
        })
        .collect();
    for (client, id) in clients.iter_mut().zip(ids) {
        let ack = client.expect_ack(id);
        assert_eq!(ack["error"]["code"], json!("invalid_payload"), "{ack}");
        assert!(
            ack["error"]["message"]
                .as_str()
                .unwrap()
                .contains("content"),
            "{ack}"
        );
    }
    drop(clients);
    scene.finish("huge JSON");
}

#[test]
fn wrong_attachment_counts_close_the_connection() {
    let scene = Scene::start(&[]);
    let placeholder = |n: u32| format!("{{\"_placeholder\":true,\"num\":{n}}}");
    // (what, text packet, binary frames after it, then optionally a text frame)
    let cases: Vec<(&str, String, usize, Option<&str>)> = vec![
        (
            "text while an attachment is awaited",
            format!("451-[\"a\",{}]", placeholder(0)),
            0,
            Some("42[\"a\"]"),
        ),
        (
            "placeholder num past the count",
            format!("451-[\"a\",{}]", placeholder(3)),
            1,
            None,
        ),
        (
            "placeholder num negative",
            "451-[\"a\",{\"_placeholder\":true,\"num\":-1}]".into(),
            1,
            None,
        ),
        (
            "placeholder num not a number",
            "451-[\"a\",{\"_placeholder\":true,\"num\":\"0\"}]".into(),
            1,
            None,
        ),
        (
            "missing count",
            format!("45-[\"a\",{}]", placeholder(0)),
            0,
            None,
        ),
        (
            "count without the dash",
            format!("451[\"a\",{}]", placeholder(0)),
            0,
            None,
        ),
        (
            "count over the limit of 10",
            format!("4511-[\"a\",{}]", placeholder(0)),
            0,
            None,
        ),
        (
            "count over u64",
            format!("4599999999999999999999-[\"a\",{}]", placeholder(0)),
            0,
            None,
        ),
        ("binary frame with nothing awaited", String::new(), 1, None),
        (
            "two attachments sent for one",
            format!("451-[\"a\",{}]", placeholder(0)),
            2,
            None,
        ),
        (
            "BINARY_ACK with a wrong count",
            format!("461-1[{}]", placeholder(5)),
            1,
            None,
        ),
    ];
    for (what, text, binaries, then) in &cases {
        let mut ws = connected_ws(scene.addr());
        if !text.is_empty() {
            ws_send_text(&mut ws, text);
        }
        for i in 0..*binaries {
            // The server may have closed already.
            let _ = ws.send(tungstenite::Message::binary(vec![i as u8; 8]));
        }
        if let Some(then) = then {
            let _ = ws.send(tungstenite::Message::text(*then));
        }
        assert_closed(&mut ws, IO_TIMEOUT, close_code::NORMAL, "parse error", what);
    }
    // A correct binary event (one placeholder, one attachment) is fine: the chat ignores the
    // unknown event and the connection stays open.
    let mut client = ChatClient::connect(scene.addr());
    client.send(&format!("451-[\"upload\",{}]", placeholder(0)));
    ws_send_binary(&mut client.ws, &[1, 2, 3]);
    client.expect_silence(Duration::from_millis(300));
    client.join(13, "binary-ok");
    drop(client);
    scene.finish("wrong attachment counts");
}

#[test]
fn thousands_of_namespace_connects() {
    let scene = Scene::start(&[]);
    // 5,000 CONNECTs to namespaces that do not exist, written without waiting: each gets its
    // CONNECT_ERROR, in order, and the connection stays usable.
    let mut client = ChatClient::connect(scene.addr());
    let mut burst = Vec::new();
    for i in 0..5000 {
        burst.push(format!("40/ns{i},"));
    }
    for text in &burst {
        client.send(text);
    }
    for i in 0..5000 {
        let text = expect_text(&mut client.ws, IO_TIMEOUT);
        let packet = parse_sio(&text).unwrap_or_else(|| panic!("{text:?}"));
        assert_eq!(packet.kind, 4, "{text:?}");
        assert_eq!(packet.nsp, format!("/ns{i}"), "{text:?}");
        assert_eq!(
            packet.data,
            json!({ "message": "Invalid namespace" }),
            "{text:?}"
        );
    }
    client.join(14, "namespace-scanner");
    drop(client);
    // 2,000 connect/disconnect cycles of `/` on one connection: each CONNECT answered with a
    // new Socket.IO sid, the connection still usable after.
    let mut client = ChatClient::connect(scene.addr());
    client.send("41");
    let mut sids = std::collections::HashSet::new();
    for _ in 0..2000 {
        client.send("40");
        let text = expect_text(&mut client.ws, IO_TIMEOUT);
        let packet = parse_sio(&text).unwrap_or_else(|| panic!("{text:?}"));
        assert_eq!(packet.kind, 0, "{text:?}");
        assert!(
            sids.insert(packet.data["sid"].as_str().unwrap().to_owned()),
            "sid reused"
        );
        client.send("41");
    }
    client.send("40");
    let text = expect_text(&mut client.ws, IO_TIMEOUT);
    assert!(text.starts_with("40{"), "{text:?}");
    client.join(15, "reconnector");
    drop(client);
    // 1,000 connections each connect `/` and vanish without a word.
    for _ in 0..1000 {
        let mut ws = connected_ws(scene.addr());
        let _ = ws.get_mut().shutdown(std::net::Shutdown::Both);
    }
    scene.finish("thousands of namespace connects");
}

/// Write `frame` over and over on `ws` for at most `limit`; bytes written and whether a write
/// failed (the server closed the connection).
fn firehose(ws: &mut Ws, frame: &[u8], limit: Duration) -> (usize, bool) {
    use std::io::Write;
    let mut batch = Vec::with_capacity(64 * 1024);
    while batch.len() < 64 * 1024 {
        batch.extend_from_slice(frame);
    }
    let began = std::time::Instant::now();
    let mut sent = 0;
    while began.elapsed() < limit {
        match ws.get_mut().write(&batch) {
            Ok(n) => sent += n,
            Err(_) => return (sent, true),
        }
    }
    (sent, false)
}

#[test]
fn ignored_event_floods_do_not_starve_the_room() {
    let scene = Scene::start(&[]);
    // Two connections write ignored events as fast as loopback allows for two seconds:
    // the bystanders (checked at the end) keep their pace meanwhile.
    let addr = scene.addr();
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let mut ws = connected_ws(addr);
                let frame = crate::client::raw_frame(1, b"42[\"whatever\",{\"x\":1}]", true);
                firehose(&mut ws, &frame, Duration::from_secs(2))
            })
        })
        .collect();
    scene.wait_more_traffic(100);
    for flooder in flooders {
        let (sent, cut) = flooder.join().expect("flooder");
        eprintln!(
            "ignored-event flood: {} MB, cut off: {cut}",
            sent / 1_000_000
        );
    }
    scene.finish("ignored-event floods");
}

#[test]
fn a_poster_that_never_reads_its_acks_is_disconnected() {
    // A heartbeat far longer than the firehose's ten seconds: the poster never reads, so it
    // never answers a ping, and with the suite's 1.5 s heartbeat that alone would close it.
    // Here only the outbound limit can.
    let scene = Scene::start(&[
        "--max-outbound-bytes",
        "262144",
        "--ping-interval",
        "60000",
        "--ping-timeout",
        "60000",
    ]);
    // A connection posts as fast as it can without ever reading its acks (rate_limited
    // once past the burst): its answers pile up, and once more than max-outbound-bytes wait
    // it is disconnected. The server must get to notice that while the posts keep coming.
    let mut client = ChatClient::connect(scene.addr());
    client.join(16, "u-flood");
    let text = format!(
        "421{}",
        json!(["chatMessage", { "bookId": 16, "userId": "u-flood", "username": "n", "content": "x" }])
    );
    let frame = crate::client::raw_frame(1, text.as_bytes(), true);
    let (sent, cut) = firehose(&mut client.ws, &frame, Duration::from_secs(10));
    assert!(
        cut,
        "a client that never reads its acks is still connected after {} MB of posts",
        sent / 1_000_000
    );
    drop(client);
    scene.finish("a poster that never reads");
}
