//! One test per server limit (config.rs; the table in README.md): each is exceeded over a
//! real socket, the offender gets its documented answer (an HTTP status, or a WebSocket close
//! frame naming the limit, pings answered while waiting so the heartbeat cannot close it),
//! and a connection within the limit, or a bystander, keeps working.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use readrealm_chat::socketio::{Event, Handler, Refusal, Socket};
use serde_json::Value;
use support::*;

/// Read whatever the server sends until it closes the connection (or `timeout`).
fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> (String, bool) {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

/// A TCP connection from `source` (a loopback address) to the server.
fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("bind a loopback source address");
    socket.connect(&server.into()).expect("connect");
    socket.into()
}

/// Whether a handshake on `stream` succeeds (an Engine.IO open packet comes back).
fn handshake_on(stream: &mut TcpStream, server: &TestServer) -> bool {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
        server.polling_target(None)
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 4096];
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    matches!(stream.read(&mut buf), Ok(n) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 200"))
}

#[test]
fn max_connections_refuses_with_503_beyond_the_cap_and_frees_places_on_close() {
    let server = start_socketio(|c| {
        c.shards = 2;
        c.max_connections = 3;
        c.max_connections_per_ip = 0;
    });
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            assert!(handshake_on(&mut s, &server));
            s
        })
        .collect();
    let mut extra = TcpStream::connect(server.addr).unwrap();
    let (answer, closed) = read_until_closed(&mut extra, IO_TIMEOUT);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
    assert!(closed);
    // Held connections are unharmed; a closed one gives its place back.
    assert!(handshake_on(&mut held[0], &server));
    held.pop();
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let mut again = TcpStream::connect(server.addr).unwrap();
        if handshake_on(&mut again, &server) {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place never came back");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn max_connections_per_ip_refuses_with_429_and_other_addresses_still_connect() {
    let server = start_socketio(|c| {
        c.shards = 2;
        c.max_connections_per_ip = 2;
    });
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect_from([127, 0, 0, 1], server.addr);
            assert!(handshake_on(&mut s, &server));
            s
        })
        .collect();
    let mut third = connect_from([127, 0, 0, 1], server.addr);
    let (answer, closed) = read_until_closed(&mut third, IO_TIMEOUT);
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer:?}");
    assert!(closed);
    let mut other = connect_from([127, 0, 0, 2], server.addr);
    assert!(handshake_on(&mut other, &server));
    assert!(handshake_on(&mut held[1], &server));
}

#[test]
fn request_head_larger_than_max_head_bytes_or_with_too_many_headers_gets_431() {
    let server = start_socketio(|c| {
        c.max_head_bytes = 2048;
        c.max_headers = 16;
    });
    let mut big = TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        server.polling_target(None),
        "a".repeat(4096)
    );
    let _ = big.write_all(head.as_bytes());
    let (answer, closed) = read_until_closed(&mut big, IO_TIMEOUT);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    assert!(closed);

    let mut many = TcpStream::connect(server.addr).unwrap();
    let headers: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n{headers}\r\n",
        server.polling_target(None)
    );
    many.write_all(head.as_bytes()).unwrap();
    let (answer, closed) = read_until_closed(&mut many, IO_TIMEOUT);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    assert!(closed);

    let mut fine = TcpStream::connect(server.addr).unwrap();
    assert!(handshake_on(&mut fine, &server));
}

/// A browser on a domain with many cookies: a 12 KiB `Cookie` header is a normal head with the
/// default settings (Node's http server takes 16 KiB, ISSUE 10 item 4); a head over 16384
/// bytes gets 431.
#[test]
fn default_head_limit_takes_a_12_kib_cookie_head_and_answers_431_above_16_kib() {
    let server = start_socketio(quiet);
    let cookie = |bytes: usize| -> String {
        // `name=value; ` pairs like a browser's, `bytes` long in all.
        let mut out = String::new();
        let mut i = 0;
        while out.len() < bytes {
            out.push_str(&format!("c{i}={}; ", "v".repeat(90)));
            i += 1;
        }
        out.truncate(bytes);
        out
    };
    let mut http = server.http();
    let twelve = cookie(12 * 1024);
    let response = http.request(
        "GET",
        &server.polling_target(None),
        &[("Cookie", &twelve)],
        b"",
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.text().starts_with("0{"), "{response:?}");

    let mut big = TcpStream::connect(server.addr).unwrap();
    let head = Http::request_bytes(
        "GET",
        &server.polling_target(None),
        &[("Cookie", &cookie(16 * 1024))],
        b"",
    );
    assert!(head.len() > 16384);
    big.write_all(&head).unwrap();
    let (answer, closed) = read_until_closed(&mut big, IO_TIMEOUT);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    assert!(closed);
}

#[test]
fn post_body_over_max_payload_gets_413() {
    let server = start_socketio(|c| {
        c.max_payload = 4096;
        quiet(c);
    });
    let (sid, _) = server.handshake();
    let mut http = server.http();
    let response = http.post(&server.polling_target(Some(&sid)), &vec![b'4'; 5000]);
    assert_eq!(response.status, 413, "{response:?}");
    // As engine.io does, the offending session ends; others are untouched.
    let (other, _) = server.handshake();
    server.post_ok(&other, "40");
    assert!(server.get_packets(&other)[0].starts_with("40{"));
}

#[test]
fn request_timeout_answers_408_to_a_stalled_head_and_closes_idle_connections() {
    let server = start_socketio(|c| {
        c.request_timeout = Duration::from_millis(300);
        quiet(c);
    });
    let started = Instant::now();
    // A slow-header attack: part of a head, then nothing.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Slow:")
        .unwrap();
    // An idle keep-alive connection that never sends a byte.
    let mut idle = TcpStream::connect(server.addr).unwrap();
    // A bystander on WebSocket, connected for longer than the timeout.
    let (mut ws, _) = server.ws_session();
    ws_send_text(&mut ws, "40");
    assert!(ws_expect_text(&mut ws).starts_with("40{"));
    assert_eq!(ws_expect_text(&mut ws), r#"42["auth",{}]"#);

    let (answer, closed) = read_until_closed(&mut slow, Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    assert!(closed);
    assert!(started.elapsed() >= Duration::from_millis(290));
    let (answer, closed) = read_until_closed(&mut idle, Duration::from_secs(3));
    assert_eq!(answer, "");
    assert!(closed);

    thread::sleep(Duration::from_millis(400));
    ws_send_text(&mut ws, r#"42["message","still here"]"#);
    assert_eq!(
        ws_expect_text(&mut ws),
        r#"42["message-back","still here"]"#
    );
    // A keep-alive connection that sends each request in time is served for longer than
    // the timeout.
    let mut http = server.http();
    for _ in 0..4 {
        let response = http.get(&server.polling_target(None));
        assert_eq!(response.status, 200);
        thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn connect_timeout_closes_a_session_that_never_sends_connect() {
    let server = start_socketio(|c| c.connect_timeout = Duration::from_millis(300));
    let (mut ws, _) = server.ws_session();
    let started = Instant::now();
    // Pings are answered meanwhile: only the connect timeout can close it, and its close
    // frame says so.
    ws_expect_close(
        &mut ws,
        Duration::from_secs(3),
        close_code::NORMAL,
        "connect timeout",
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
}

/// A connected WebSocket on the conformance server (the `auth` event consumed).
fn connected(server: &TestServer) -> Ws {
    let (mut ws, _) = server.ws_session();
    ws_send_text(&mut ws, "40");
    assert!(ws_expect_text(&mut ws).starts_with("40{"));
    assert_eq!(ws_expect_text(&mut ws), r#"42["auth",{}]"#);
    ws
}

#[test]
fn json_nested_deeper_than_max_json_depth_closes_only_that_connection() {
    let server = start_socketio(|c| c.max_json_depth = 8);
    let mut bystander = connected(&server);
    // `["message", x]` is one level; x may be 7 more.
    let ok = format!(r#"42["message",{}1{}]"#, "[".repeat(7), "]".repeat(7));
    let mut within = connected(&server);
    ws_send_text(&mut within, &ok);
    assert!(ws_expect_text(&mut within).starts_with(r#"42["message-back",[[[[[[["#));
    let deep = format!(r#"42["message",{}1{}]"#, "[".repeat(8), "]".repeat(8));
    let mut hostile = connected(&server);
    ws_send_text(&mut hostile, &deep);
    ws_expect_close(
        &mut hostile,
        IO_TIMEOUT,
        close_code::NORMAL,
        "parse error: packet data nests too deep",
    );
    ws_send_text(&mut bystander, r#"42["message",1]"#);
    assert_eq!(ws_expect_text(&mut bystander), r#"42["message-back",1]"#);
}

#[test]
fn json_with_more_values_than_max_json_elements_closes_only_that_connection() {
    let server = start_socketio(|c| c.max_json_elements = 1000);
    let array = |n: usize| format!("[{}]", vec!["0"; n].join(","));
    let mut within = connected(&server);
    // An EVENT without attachments is never decoded into a tree by the server, so its values
    // are not counted: it reaches the application, which answers it (socket.io would too).
    ws_send_text(&mut within, &format!(r#"42["message",{}]"#, array(5000)));
    assert!(ws_expect_text(&mut within).starts_with(r#"42["message-back",[0,0"#));
    // A CONNECT's auth object is decoded into a tree, and counted.
    ws_send_text(&mut within, &format!(r#"40/custom,{{"a":{}}}"#, array(900)));
    assert!(ws_expect_text(&mut within).starts_with("40/custom,{"));
    assert!(ws_expect_text(&mut within).starts_with(r#"42/custom,["auth",{"a":[0,0"#));
    let mut hostile = connected(&server);
    ws_send_text(
        &mut hostile,
        &format!(r#"40/custom,{{"a":{}}}"#, array(5000)),
    );
    ws_expect_close(
        &mut hostile,
        IO_TIMEOUT,
        close_code::NORMAL,
        "parse error: packet data holds too many values",
    );
    ws_send_text(&mut within, r#"42["message",2]"#);
    assert_eq!(ws_expect_text(&mut within), r#"42["message-back",2]"#);
}

#[test]
fn more_attachments_than_max_attachments_closes_the_connection() {
    let server = start_socketio(|c| c.max_attachments = 2);
    let mut within = connected(&server);
    ws_send_text(
        &mut within,
        r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    );
    ws_send_binary(&mut within, &[1]);
    ws_send_binary(&mut within, &[2]);
    assert!(ws_expect_text(&mut within).starts_with("452-[\"message-back\""));
    assert_eq!(ws_expect_binary(&mut within), vec![1]);
    assert_eq!(ws_expect_binary(&mut within), vec![2]);
    let mut hostile = connected(&server);
    ws_send_text(&mut hostile, r#"453-["message",1]"#);
    ws_expect_close(
        &mut hostile,
        IO_TIMEOUT,
        close_code::NORMAL,
        "parse error: too many attachments",
    );
}

#[test]
fn more_namespaces_than_max_namespaces_closes_the_connection() {
    let server = start_socketio(|c| c.max_namespaces_per_connection = 1);
    let mut ws = connected(&server);
    ws_send_text(&mut ws, "40/custom,");
    ws_expect_close(
        &mut ws,
        IO_TIMEOUT,
        close_code::NORMAL,
        "parse error: more namespaces than allowed",
    );

    let server = start_socketio(|c| c.max_namespaces_per_connection = 2);
    let mut ws = connected(&server);
    ws_send_text(&mut ws, "40/custom,");
    assert!(ws_expect_text(&mut ws).starts_with("40/custom,{"));
}

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
        if let (Some("say"), Some(id)) = (event.name(), event.ack_id) {
            socket.broadcast("r", "said", event.args().unwrap_or_default(), true);
            socket.ack(id, vec![], vec![]);
        }
    }
}

#[test]
fn a_reader_further_behind_than_max_outbound_bytes_is_disconnected_and_its_room_unaffected() {
    const MESSAGES: usize = 1200;
    let server = start_server(Room, |c| {
        c.shards = 2;
        c.max_outbound_bytes = 256 * 1024;
        quiet(c);
    });
    let join = |ws: &mut Ws| {
        ws_send_text(ws, "40");
        assert!(ws_expect_text(ws).starts_with("40{"));
    };
    // The slow reader: a tiny receive buffer, and it never reads after joining.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let url = format!("ws://{}{}", server.addr, server.websocket_target(None));
    let (mut slow, _) = tungstenite::client::client(url.as_str(), stream).unwrap();
    assert!(ws_expect_text(&mut slow).starts_with("0{"));
    join(&mut slow);

    // The bystander reads everything on its own thread.
    let (mut reader, _) = server.ws_session();
    join(&mut reader);
    let (done_tx, done_rx) = mpsc::channel();
    let reading = thread::spawn(move || {
        let mut seen = Vec::new();
        loop {
            match ws_recv_skipping_pings(&mut reader, Duration::from_secs(10)) {
                WsEvent::Text(text) => {
                    let Some(rest) = text.strip_prefix(r#"42["said",""#) else {
                        continue;
                    };
                    let seq: usize = rest.split(':').next().unwrap().parse().unwrap();
                    seen.push(seq);
                    if seq + 1 == MESSAGES {
                        break;
                    }
                }
                other => panic!("bystander got {other:?} after {} messages", seen.len()),
            }
        }
        done_tx.send(()).unwrap();
        seen
    });

    let (mut sender, _) = server.ws_session();
    join(&mut sender);
    let padding = "x".repeat(16 * 1024);
    for seq in 0..MESSAGES {
        ws_send_text(&mut sender, &format!(r#"421["say","{seq}:{padding}"]"#));
        assert_eq!(ws_expect_text(&mut sender), "431[]");
    }
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the bystander received every message");
    let seen = reading.join().unwrap();
    assert_eq!(
        seen,
        (0..MESSAGES).collect::<Vec<_>>(),
        "none lost or duplicated"
    );

    // The slow reader was cut off: it finds the end of its stream well before the last message.
    let mut last_seq = None;
    loop {
        match ws_recv(&mut slow, IO_TIMEOUT) {
            WsEvent::Text(text) => {
                if let Some(rest) = text.strip_prefix(r#"42["said",""#) {
                    last_seq = rest.split(':').next().and_then(|s| s.parse::<usize>().ok());
                }
            }
            WsEvent::Closed => break,
            other => panic!("the slow reader was not disconnected: {other:?}"),
        }
    }
    assert!(
        last_seq.is_none_or(|s| s + 1 < MESSAGES),
        "slow reader got everything ({last_seq:?})"
    );
}
