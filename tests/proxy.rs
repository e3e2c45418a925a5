//! Behind a proxy (ISSUE 10, item 10): the per-IP limit counts the real client, named by a
//! PROXY protocol header (v1 text, v2 binary) or by `X-Forwarded-For`, and believes either
//! only from a peer in `--trusted-proxies`. Over real sockets: the "proxy" is a client bound
//! to 127.0.0.2 (trusted), an untrusted peer is bound to 127.0.0.1; the per-IP cap is 1, so
//! a second connection counted under the same address gets 429, and one counted under
//! another address is served.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::*;

const PROXY: [u8; 4] = [127, 0, 0, 2];
const UNTRUSTED: [u8; 4] = [127, 0, 0, 1];

/// A server with a per-IP cap of 1, two shards, trusting 127.0.0.2 only.
fn server() -> TestServer {
    start_socketio(|c| {
        quiet(c);
        c.shards = 2;
        c.max_connections_per_ip = 1;
        c.trusted_proxies = vec!["127.0.0.2/32".parse().unwrap()];
    })
}

/// A TCP connection from `source` (a loopback address) to the server.
fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("bind a loopback source address");
    socket.connect(&server.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Read until the server closes the connection or `IO_TIMEOUT`: what it sent, and whether
/// it closed.
fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
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

/// A polling handshake request, with extra header lines.
fn handshake_request(server: &TestServer, headers: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: x\r\n{headers}\r\n",
        server.polling_target(None)
    )
    .into_bytes()
}

/// Open a connection from `source`, send `prefix` then a handshake with `headers`; the first
/// bytes of the answer (the status line is enough) and the stream, kept open.
fn try_handshake(
    server: &TestServer,
    source: [u8; 4],
    prefix: &[u8],
    headers: &str,
) -> (String, TcpStream) {
    let mut stream = connect_from(source, server.addr);
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(&handshake_request(server, headers));
    stream.write_all(&bytes).unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    (String::from_utf8_lossy(&buf[..n]).into_owned(), stream)
}

fn served(answer: &str) -> bool {
    answer.starts_with("HTTP/1.1 200 ") && answer.contains("\r\n\r\n0{")
}

fn refused_429(answer: &str) -> bool {
    answer.starts_with("HTTP/1.1 429 ")
}

fn proxy_v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 3000\r\n").into_bytes()
}

/// A PROXY v2 header for an IPv6 TCP client, written byte by byte from HAProxy's
/// specification (section 2.2): signature, version 2 + PROXY, TCP over IPv6, length 36,
/// source and destination addresses, source and destination ports.
fn proxy_v2_tcp6(client: std::net::Ipv6Addr) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(0x21);
    out.push(0x21);
    out.extend_from_slice(&36u16.to_be_bytes());
    out.extend_from_slice(&client.octets());
    out.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    out.extend_from_slice(&40000u16.to_be_bytes());
    out.extend_from_slice(&3000u16.to_be_bytes());
    out
}

#[test]
fn proxy_v1_from_a_trusted_peer_counts_the_client_it_names() {
    let server = server();
    let (a, _held_a) = try_handshake(&server, PROXY, &proxy_v1("203.0.113.7"), "");
    assert!(served(&a), "{a:?}");
    // Another client through the same proxy: another address, served.
    let (b, _held_b) = try_handshake(&server, PROXY, &proxy_v1("203.0.113.8"), "");
    assert!(served(&b), "{b:?}");
    // The first client again: over its cap of 1.
    let (c, mut stream_c) = try_handshake(&server, PROXY, &proxy_v1("203.0.113.7"), "");
    assert!(refused_429(&c), "{c:?}");
    assert!(read_until_closed(&mut stream_c).1, "closed after the 429");
}

#[test]
fn proxy_v1_place_is_given_back_under_the_client_on_close() {
    let server = server();
    let (a, held) = try_handshake(&server, PROXY, &proxy_v1("203.0.113.7"), "");
    assert!(served(&a), "{a:?}");
    drop(held);
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let (again, _s) = try_handshake(&server, PROXY, &proxy_v1("203.0.113.7"), "");
        if served(&again) {
            break;
        }
        assert!(refused_429(&again), "{again:?}");
        assert!(Instant::now() < deadline, "the place never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn proxy_v2_from_a_trusted_peer_counts_the_client_it_names() {
    let server = server();
    let first: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
    let second: std::net::Ipv6Addr = "2001:db8::8".parse().unwrap();
    let (a, _held_a) = try_handshake(&server, PROXY, &proxy_v2_tcp6(first), "");
    assert!(served(&a), "{a:?}");
    let (b, _held_b) = try_handshake(&server, PROXY, &proxy_v2_tcp6(second), "");
    assert!(served(&b), "{b:?}");
    let (c, _) = try_handshake(&server, PROXY, &proxy_v2_tcp6(first), "");
    assert!(refused_429(&c), "{c:?}");
}

#[test]
fn a_bad_proxy_header_from_a_trusted_peer_gets_400() {
    let server = server();
    let (answer, mut stream) = try_handshake(
        &server,
        PROXY,
        b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n",
        "",
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    // Refused as a PROXY header, not merely as an HTTP request that does not parse.
    assert!(
        answer.ends_with("invalid PROXY protocol v1 header"),
        "{answer:?}"
    );
    assert!(read_until_closed(&mut stream).1);
}

#[test]
fn a_proxy_header_from_an_untrusted_peer_is_refused() {
    let server = server();
    let (answer, mut stream) = try_handshake(&server, UNTRUSTED, &proxy_v1("203.0.113.7"), "");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    assert!(read_until_closed(&mut stream).1);
}

#[test]
fn forwarded_for_from_a_trusted_peer_counts_the_client_it_names() {
    let server = server();
    // The client's own claim (1.1.1.1) before the proxy's entry is not believed.
    let (a, _held_a) = try_handshake(
        &server,
        PROXY,
        b"",
        "X-Forwarded-For: 1.1.1.1, 198.51.100.4\r\n",
    );
    assert!(served(&a), "{a:?}");
    let (b, _held_b) = try_handshake(&server, PROXY, b"", "X-Forwarded-For: 198.51.100.5\r\n");
    assert!(served(&b), "{b:?}");
    let (c, mut stream_c) = try_handshake(
        &server,
        PROXY,
        b"",
        "X-Forwarded-For: 9.9.9.9, 198.51.100.4\r\n",
    );
    assert!(refused_429(&c), "{c:?}");
    assert!(read_until_closed(&mut stream_c).1);
}

#[test]
fn a_websocket_handshake_over_the_cap_is_refused_with_429_before_the_upgrade() {
    let server = server();
    let (a, _held) = try_handshake(&server, PROXY, b"", "X-Forwarded-For: 198.51.100.4\r\n");
    assert!(served(&a), "{a:?}");
    let mut ws = connect_from(PROXY, server.addr);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         X-Forwarded-For: 198.51.100.4\r\n\r\n",
        server.websocket_target(None)
    );
    ws.write_all(request.as_bytes()).unwrap();
    let (answer, closed) = read_until_closed(&mut ws);
    assert!(refused_429(&answer), "{answer:?}");
    assert!(closed);
    // Another client through the proxy upgrades.
    let mut other = connect_from(PROXY, server.addr);
    other
        .write_all(request.replace("198.51.100.4", "198.51.100.9").as_bytes())
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = other.read(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer:?}");
}

#[test]
fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = server();
    let (a, _held) = try_handshake(&server, UNTRUSTED, b"", "X-Forwarded-For: 198.51.100.4\r\n");
    assert!(served(&a), "{a:?}");
    // Counted under the peer's own address, whatever the header says.
    let (b, _) = try_handshake(&server, UNTRUSTED, b"", "X-Forwarded-For: 198.51.100.5\r\n");
    assert!(refused_429(&b), "{b:?}");
}

#[test]
fn a_trusted_peer_naming_no_client_is_counted_as_itself() {
    let server = server();
    let (a, _held) = try_handshake(&server, PROXY, b"", "");
    assert!(served(&a), "{a:?}");
    let (b, _) = try_handshake(&server, PROXY, b"", "");
    assert!(refused_429(&b), "{b:?}");
}
