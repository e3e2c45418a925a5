//! Hostile HTTP: garbage bytes, invalid request heads, oversized and never-finished heads,
//! huge and lying Content-Lengths, invalid Engine.IO requests (pipelined on one connection),
//! and POST bodies that do not decode.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::client::POLLING_TARGET;
use crate::scene::Scene;
use crate::server::REQUEST_TIMEOUT_MS;
use crate::support::{assert_eio_error, parse_open, Http, Response, IO_TIMEOUT};

/// Read one response (panics naming `what` if none comes).
fn response(conn: &mut Http, what: &str) -> Response {
    match conn.try_read_response(IO_TIMEOUT) {
        Ok(Some(response)) => response,
        Ok(None) => panic!("{what}: no response within {IO_TIMEOUT:?}"),
        Err(e) => panic!("{what}: connection failed before a response: {e}"),
    }
}

/// How soon after its answer a connection the answer closes must be closed: well under the
/// request timeout (REQUEST_TIMEOUT_MS), so the idle keep-alive timeout that follows a
/// kept-alive answer cannot be what closed it.
const CLOSE_AFTER_ANSWER: Duration = Duration::from_millis(REQUEST_TIMEOUT_MS / 2);

/// Assert `answer` says the connection closes (`Connection: close`) and that it is closed
/// within [`CLOSE_AFTER_ANSWER`], before the request timeout could close it.
fn closed_by_answer(conn: &mut Http, answer: &Response, what: &str) {
    assert_eq!(
        answer.header("connection").map(str::to_ascii_lowercase),
        Some("close".to_owned()),
        "{what}: the answer does not say the connection closes: {answer:?}"
    );
    assert!(
        conn.closed_within(CLOSE_AFTER_ANSWER),
        "{what}: connection left open {CLOSE_AFTER_ANSWER:?} after {answer:?}"
    );
}

/// Send `bytes` on a new connection; expect `status` and then the connection closed by it.
fn status_then_close(scene: &Scene, bytes: &[u8], status: u16, what: &str) -> Response {
    let mut conn = Http::connect(scene.addr());
    conn.send_raw(bytes);
    let answer = response(&mut conn, what);
    assert_eq!(answer.status, status, "{what}: {answer:?}");
    closed_by_answer(&mut conn, &answer, what);
    answer
}

/// A polling handshake; the sid.
fn handshake(scene: &Scene) -> String {
    let answer = Http::connect(scene.addr()).get(POLLING_TARGET);
    assert_eq!(answer.status, 200, "handshake: {answer:?}");
    let open = parse_open(&answer.text());
    open["sid"].as_str().expect("sid").to_owned()
}

fn with_sid(sid: &str) -> String {
    format!("{POLLING_TARGET}&sid={sid}")
}

/// Deterministic pseudo-random bytes (xorshift), so a failure replays.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_bytes_get_400_and_are_closed() {
    let scene = Scene::start(&[]);
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for seed in 1..=20u64 {
        let mut bytes = vec![0x00, 0xff];
        bytes.extend(noise(4096, seed));
        inputs.push((format!("4 KiB of noise, seed {seed}"), bytes));
    }
    // A TLS ClientHello's first bytes (a client speaking https to the plain port).
    inputs.push((
        "TLS ClientHello".into(),
        vec![
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ],
    ));
    inputs.push(("NUL bytes".into(), vec![0u8; 1024]));
    inputs.push((
        "a Socket.IO packet without HTTP".into(),
        b"42[\"chatMessage\",{}]\r\n\r\n".to_vec(),
    ));
    for (what, bytes) in &inputs {
        let answer = status_then_close(&scene, bytes, 400, what);
        assert_eq!(
            answer.header("connection"),
            Some("close"),
            "{what}: {answer:?}"
        );
    }
    scene.finish("garbage bytes");
}

#[test]
fn invalid_http_heads_get_400_and_are_closed() {
    let scene = Scene::start(&[]);
    let cases: &[(&str, &[u8])] = &[
        ("no target or version", b"GET\r\n\r\n"),
        ("HTTP/2.0 version", b"GET /socket.io/?EIO=4&transport=polling HTTP/2.0\r\n\r\n"),
        ("HTTP/1.2 version", b"GET /socket.io/?EIO=4&transport=polling HTTP/1.2\r\n\r\n"),
        ("control byte in the method", b"G\x01T / HTTP/1.1\r\n\r\n"),
        ("header line without a colon", b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n"),
        ("space before the colon", b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost : x\r\n\r\n"),
        ("NUL in a header value", b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nX-A: a\x00b\r\n\r\n"),
        ("Content-Length not a number", b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
        ("negative Content-Length", b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
        ("two different Content-Lengths", b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ("Content-Length over u64", b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
        ("response line sent as a request", b"HTTP/1.1 200 OK\r\n\r\n"),
    ];
    for (what, bytes) in cases {
        status_then_close(&scene, bytes, 400, what);
    }
    scene.finish("invalid HTTP heads");
}

#[test]
fn oversized_heads_get_431_and_are_closed() {
    let scene = Scene::start(&[]);
    // One header larger than the 8 KiB head limit, never finished.
    let mut huge = format!("GET {POLLING_TARGET} HTTP/1.1\r\nX-Big: ").into_bytes();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    status_then_close(&scene, &huge, 431, "64 KiB header value");
    // More headers than allowed (64), each small.
    let mut many = format!("GET {POLLING_TARGET} HTTP/1.1\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    status_then_close(&scene, many.as_bytes(), 431, "100 headers");
    // A megabyte of head in one go, on twenty connections at once.
    let head = {
        let mut h = format!("GET {POLLING_TARGET} HTTP/1.1\r\n").into_bytes();
        for i in 0..20_000 {
            h.extend_from_slice(format!("X-{i}: {}\r\n", "b".repeat(40)).as_bytes());
        }
        h
    };
    let mut conns: Vec<Http> = (0..20).map(|_| Http::connect(scene.addr())).collect();
    for conn in &mut conns {
        // The server may close before taking it all; a failed write is fine.
        let _ = conn.stream.write_all(&head);
    }
    for conn in &mut conns {
        let answer = response(conn, "1 MB head");
        assert_eq!(answer.status, 431, "1 MB head: {answer:?}");
        closed_by_answer(conn, &answer, "1 MB head");
    }
    drop(conns);
    scene.finish("oversized heads");
}

#[test]
fn never_finished_heads_get_408_and_are_closed_after_the_request_timeout() {
    let scene = Scene::start(&[]);
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    let started = Instant::now();
    // 200 connections each stop half-way through a head; 20 more send nothing at all;
    // 10 drip one byte every 100 ms (slowloris), never ending the head.
    let partial = format!("GET {POLLING_TARGET} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    let mut halves: Vec<Http> = (0..200).map(|_| Http::connect(scene.addr())).collect();
    for conn in &mut halves {
        conn.send_raw(partial.as_bytes());
    }
    let mut silent: Vec<Http> = (0..20).map(|_| Http::connect(scene.addr())).collect();
    let mut drips: Vec<Http> = (0..10).map(|_| Http::connect(scene.addr())).collect();
    let drip_end = Instant::now() + timeout * 3;
    let mut dripped_until_closed = vec![false; drips.len()];
    while Instant::now() < drip_end && dripped_until_closed.iter().any(|d| !d) {
        for (i, drip) in drips.iter_mut().enumerate() {
            if !dripped_until_closed[i] && drip.stream.write_all(b"x").is_err() {
                dripped_until_closed[i] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for conn in &mut halves {
        let answer = response(conn, "half a head");
        assert_eq!(answer.status, 408, "half a head: {answer:?}");
        closed_by_answer(conn, &answer, "half a head");
    }
    for conn in &mut silent {
        assert!(
            conn.closed_within(IO_TIMEOUT),
            "a connection that never sent a byte stays open past the request timeout"
        );
    }
    // Every one answered about when the timeout fell due, not much later.
    let elapsed = started.elapsed();
    assert!(elapsed < timeout * 4, "took {elapsed:?}");
    for (i, drip) in drips.iter_mut().enumerate() {
        // The dripping connection got a 408 (it had sent part of a head) and was closed.
        let answer = response(drip, "slowloris");
        assert_eq!(answer.status, 408, "slowloris {i}: {answer:?}");
        closed_by_answer(drip, &answer, &format!("slowloris {i}"));
    }
    drop((halves, silent, drips));
    scene.finish("never-finished heads");
}

#[test]
fn huge_and_lying_content_lengths() {
    let scene = Scene::start(&[]);
    // Over maxPayload: 413, the connection closes and the session ends.
    for length in ["1000001", "1000000000000", "18446744073709551615"] {
        let sid = handshake(&scene);
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {length}\r\n\r\n",
            with_sid(&sid)
        );
        status_then_close(
            &scene,
            head.as_bytes(),
            413,
            &format!("Content-Length {length}"),
        );
        let after = Http::connect(scene.addr()).get(&with_sid(&sid));
        assert_eio_error(&after, 1);
    }
    // A chunked body has no Content-Length; engine.io's clients never send one: 411.
    let sid = handshake(&scene);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n40abc\r\n0\r\n\r\n",
        with_sid(&sid)
    );
    status_then_close(&scene, head.as_bytes(), 411, "chunked POST");
    // A body that never arrives: the request timeout answers 408 and closes.
    let sid = handshake(&scene);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n40",
        with_sid(&sid)
    );
    let mut conn = Http::connect(scene.addr());
    conn.send_raw(head.as_bytes());
    let answer = match conn.try_read_response(Duration::from_millis(REQUEST_TIMEOUT_MS * 3)) {
        Ok(Some(answer)) => answer,
        other => panic!("body that never arrives: {other:?}"),
    };
    assert_eq!(answer.status, 408, "body that never arrives: {answer:?}");
    closed_by_answer(&mut conn, &answer, "body that never arrives");
    // A GET that carries a body (here: bytes that look like a second request). The body is
    // the GET's, never a request of its own: the server answers the GET and then either
    // skips the body or closes; it must not answer the smuggled request.
    let smuggled = "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n";
    let head = format!(
        "GET {POLLING_TARGET} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let chunked = format!(
        "GET {POLLING_TARGET} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
        smuggled.len()
    );
    for (what, bytes) in [
        ("GET with a Content-Length body", head),
        ("GET with a chunked body", chunked),
    ] {
        let mut conn = Http::connect(scene.addr());
        conn.send_raw(bytes.as_bytes());
        let answer = response(&mut conn, what);
        assert_eq!(answer.status, 200, "{what}: {answer:?}");
        match conn.try_read_response(Duration::from_millis(300)) {
            Ok(None) | Err(_) => {}
            Ok(Some(second)) => panic!("{what}: its body was answered as a request: {second:?}"),
        }
    }
    scene.finish("huge Content-Length");
}

#[test]
fn invalid_engineio_requests_pipelined_get_their_error_codes() {
    let scene = Scene::start(&[]);
    let sid = handshake(&scene);
    // Every request without a body on one keep-alive connection, written at once.
    let requests: &[(&str, String, Option<u64>)] = &[
        (
            "GET",
            "/socket.io/?EIO=4&transport=carrier-pigeon".into(),
            Some(0),
        ),
        ("GET", "/socket.io/?EIO=4".into(), Some(0)),
        ("GET", "/socket.io/?transport=polling".into(), Some(5)),
        ("GET", "/socket.io/?EIO=3&transport=polling".into(), Some(5)),
        (
            "GET",
            "/socket.io/?EIO=99999999999999999999&transport=polling".into(),
            Some(5),
        ),
        (
            "GET",
            format!("{POLLING_TARGET}&sid=not-a-session"),
            Some(1),
        ),
        (
            "GET",
            format!("{POLLING_TARGET}&sid={}", "A".repeat(2000)),
            Some(1),
        ),
        (
            "GET",
            format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
            Some(3),
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=websocket".into(),
            Some(3),
        ),
        ("DELETE", format!("{POLLING_TARGET}&sid={sid}"), Some(3)),
        ("PUT", POLLING_TARGET.into(), Some(2)),
        ("GET", "/nowhere".into(), None),
        (
            "GET",
            "/socket.io/../../etc/passwd?EIO=4&transport=polling".into(),
            None,
        ),
    ];
    let mut conn = Http::connect(scene.addr());
    let mut bytes = Vec::new();
    for (method, target, _) in requests {
        bytes.extend(format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n").bytes());
    }
    conn.send_raw(&bytes);
    for (method, target, code) in requests {
        let answer = response(&mut conn, &format!("{method} {target}"));
        match code {
            Some(code) => assert_eio_error(&answer, *code),
            None => assert_eq!(answer.status, 404, "{method} {target}: {answer:?}"),
        }
    }
    // The session survived requests that named it wrongly, and the connection is still usable.
    let poll = conn.get(&with_sid(&sid));
    assert_eq!(poll.status, 200, "{poll:?}");
    drop(conn);
    scene.finish("invalid Engine.IO requests");
}

#[test]
fn undecodable_post_bodies_get_400_and_end_the_session() {
    let scene = Scene::start(&[]);
    // Bodies that do not decode as a polling payload: 400 code 3, and the session is gone.
    let undecodable: &[(&str, &[u8])] = &[
        ("unknown packet type", b"9hello"),
        ("empty packet between separators", b"40\x1e\x1e40"),
        ("invalid base64 binary", b"b!!!not base64!!!"),
        ("invalid UTF-8", b"4\xff\xfe\xfd"),
    ];
    for (what, body) in undecodable {
        let sid = handshake(&scene);
        let answer = Http::connect(scene.addr()).post(&with_sid(&sid), body);
        assert_eio_error(&answer, 3);
        let after = Http::connect(scene.addr()).get(&with_sid(&sid));
        assert_eio_error(&after, 1);
        eprintln!("{what}: 400 code 3, session closed");
    }
    // Bodies that decode but break the protocol: the POST is accepted (`ok`, as engine.io
    // answers before it looks at the packets) and the session is closed.
    let breaking: &[(&str, &[u8])] = &[
        ("open packet from a client", b"0{}"),
        ("client ping (v4 clients never ping)", b"2"),
        ("upgrade packet over polling", b"5"),
        ("invalid Socket.IO packet", b"4garbage"),
        ("Socket.IO EVENT before CONNECT", b"42[\"chatMessage\",{}]"),
    ];
    for (what, body) in breaking {
        let sid = handshake(&scene);
        let answer = Http::connect(scene.addr()).post(&with_sid(&sid), body);
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (200, &b"ok"[..]),
            "{what}: {answer:?}"
        );
        let after = Http::connect(scene.addr()).get(&with_sid(&sid));
        assert_eio_error(&after, 1);
    }
    scene.finish("undecodable POST bodies");
}

#[test]
fn a_firehose_after_a_refused_head_is_cut_off() {
    let scene = Scene::start(&[]);
    // Four clients send a bad head and then keep writing as fast as loopback allows. The
    // server must answer and close, not buffer the flood (or loop on it) until the client
    // stops: each client's writes must start failing within a few seconds, having pushed far
    // less than the flood it had ready.
    let addr = scene.addr();
    let starts: [&[u8]; 4] = [
        b"\x00\xffgarbage",
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nX-Big: ",
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /nowhere HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ];
    let workers: Vec<_> = starts
        .iter()
        .map(|start| {
            let start = start.to_vec();
            std::thread::spawn(move || {
                let mut conn = Http::connect(addr);
                let chunk = vec![b'a'; 256 * 1024];
                let began = Instant::now();
                let mut sent = 0usize;
                let _ = conn.stream.write_all(&start);
                // At most 2 GB or 10 s.
                while sent < 2_000_000_000 && began.elapsed() < Duration::from_secs(10) {
                    match conn.stream.write(&chunk) {
                        Ok(n) => sent += n,
                        Err(_) => break,
                    }
                }
                (sent, began.elapsed())
            })
        })
        .collect();
    for (i, worker) in workers.into_iter().enumerate() {
        let (sent, took) = worker.join().expect("firehose");
        eprintln!("firehose {i}: {} MB in {took:?}", sent / 1_000_000);
        assert!(
            took < Duration::from_secs(5),
            "firehose {i}: still accepted after {took:?} ({} MB)",
            sent / 1_000_000
        );
    }
    scene.finish("firehose after a refused head");
}
