//! Shared helpers for the socket-level integration tests: an in-process server on
//! 127.0.0.1:0, a tiny raw HTTP/1.1 client, Engine.IO payload helpers and a blocking
//! WebSocket client (tungstenite over `std::net::TcpStream`).
//!
//! Every socket gets read and write timeouts, so no test can hang on a silent server.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use readrealm_chat::config::{Layer, ServerConfig};
use readrealm_chat::server::ServerHandle;
pub use readrealm_chat::socketio::conformance::{ConformanceSocketIo, EchoEngine};
use readrealm_chat::socketio::Handler;
use serde_json::Value;
use tungstenite::{Message, WebSocket};

/// Default timeout for one expected answer (a response, a frame).
pub const IO_TIMEOUT: Duration = Duration::from_millis(2000);

/// The record separator between packets of a polling payload.
pub const SEP: char = '\x1e';

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// How long a GET must stay unanswered to count as parked.
pub const PARK_CHECK: Duration = Duration::from_millis(150);

/// An Engine.IO echo server whose heartbeat stays out of the way.
pub fn engineio_quiet() -> TestServer {
    start_engineio(quiet)
}

/// Send a GET for `sid` on a new connection and check it is parked (no answer yet).
pub fn park_get(server: &TestServer, sid: &str) -> Http {
    let mut conn = server.http();
    conn.send("GET", &server.polling_target(Some(sid)), &[], b"");
    let early = conn
        .try_read_response(PARK_CHECK)
        .expect("connection stays up");
    assert!(early.is_none(), "GET should be parked, got {early:?}");
    conn
}

// ---------------------------------------------------------------------------------------------

/// The conformance settings (pingInterval 300 ms, pingTimeout 200 ms, connectTimeout
/// 1000 ms, maxPayload 1,000,000) on 127.0.0.1:0 with one shard.
pub fn base_config() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        shards: 1,
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(1000),
        max_payload: 1_000_000,
        ..ServerConfig::default()
    }
}

/// A config tweak for tests that must not see heartbeats interleave with what they check.
pub fn quiet(config: &mut ServerConfig) {
    config.ping_interval = Duration::from_millis(10_000);
    config.ping_timeout = Duration::from_millis(5_000);
}

/// A server running in this process; shut down (and joined, bounded) on drop.
pub struct TestServer {
    handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    /// The Engine.IO path (`/engine.io/` or `/socket.io/`).
    pub path: String,
    pub config: ServerConfig,
}

/// Start `handler` with [`base_config`] changed by `tweak`.
pub fn start_server<H: Handler>(handler: H, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut config = base_config();
    tweak(&mut config);
    let handle = readrealm_chat::server::start(config.clone(), handler).expect("server starts");
    let addr = handle.local_addr();
    TestServer {
        handle: Some(handle),
        addr,
        path: config.path.clone(),
        config,
    }
}

/// A plain Engine.IO echo server on `/engine.io/`.
pub fn start_engineio(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    start_server(EchoEngine, |c| {
        c.path = "/engine.io/".into();
        c.layer = Layer::EngineIo;
        tweak(c);
    })
}

/// The conformance Socket.IO server on `/socket.io/`.
pub fn start_socketio(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    start_server(ConformanceSocketIo, |c| {
        c.path = "/socket.io/".into();
        c.layer = Layer::SocketIo;
        tweak(c);
    })
}

/// How long a shut-down server may take to end its shard threads before the test fails.
const JOIN_TIMEOUT: Duration = Duration::from_secs(3);

impl Drop for TestServer {
    /// Shut the server down and join it: a shard thread that panicked, returned an error or
    /// did not end within [`JOIN_TIMEOUT`] fails the test (unless it is failing already, when a
    /// second panic would abort the process and hide the first message).
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
            // Join on another thread, so a stuck shard fails the test instead of hanging it.
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(handle.join());
            });
            let problem = match rx.recv_timeout(JOIN_TIMEOUT) {
                Ok(Ok(())) => return,
                Ok(Err(e)) => format!("the server ended with an error: {e}"),
                Err(_) => format!("the server's shard threads did not end within {JOIN_TIMEOUT:?}"),
            };
            if std::thread::panicking() {
                eprintln!("TestServer: {problem}");
            } else {
                panic!("TestServer: {problem}");
            }
        }
    }
}

impl TestServer {
    /// A server running elsewhere (another process) at `addr`.
    pub fn external(addr: SocketAddr, path: &str) -> TestServer {
        TestServer {
            handle: None,
            addr,
            path: path.to_owned(),
            config: ServerConfig {
                path: path.to_owned(),
                ..base_config()
            },
        }
    }

    /// Ask the server to shut down now (it is joined on drop).
    pub fn shutdown(&self) {
        if let Some(handle) = &self.handle {
            handle.shutdown();
        }
    }

    /// `<path>?EIO=4&transport=polling[&sid=..]`
    pub fn polling_target(&self, sid: Option<&str>) -> String {
        match sid {
            Some(sid) => format!("{}?EIO=4&transport=polling&sid={sid}", self.path),
            None => format!("{}?EIO=4&transport=polling", self.path),
        }
    }

    /// `<path>?EIO=4&transport=websocket[&sid=..]`
    pub fn websocket_target(&self, sid: Option<&str>) -> String {
        match sid {
            Some(sid) => format!("{}?EIO=4&transport=websocket&sid={sid}", self.path),
            None => format!("{}?EIO=4&transport=websocket", self.path),
        }
    }

    /// A new raw HTTP connection to the server.
    pub fn http(&self) -> Http {
        Http::connect(self.addr)
    }

    /// A polling handshake on a fresh connection: the sid and the open packet's JSON.
    pub fn handshake(&self) -> (String, Value) {
        let response = self.http().get(&self.polling_target(None));
        assert_eq!(response.status, 200, "handshake: {response:?}");
        let open = parse_open(&response.text());
        let sid = open["sid"].as_str().expect("sid is a string").to_owned();
        (sid, open)
    }

    /// A polling GET on a fresh connection.
    pub fn get(&self, sid: &str) -> Response {
        self.http().get(&self.polling_target(Some(sid)))
    }

    /// A polling POST on a fresh connection.
    pub fn post(&self, sid: &str, body: &[u8]) -> Response {
        self.http().post(&self.polling_target(Some(sid)), body)
    }

    /// A POST that must be accepted (200 `ok`).
    pub fn post_ok(&self, sid: &str, body: &str) {
        let response = self.post(sid, body.as_bytes());
        assert_eq!(response.status, 200, "POST {body:?}: {response:?}");
        assert_eq!(response.body, b"ok", "POST {body:?}: {response:?}");
    }

    /// A GET that must succeed; its payload's packets.
    pub fn get_packets(&self, sid: &str) -> Vec<String> {
        let response = self.get(sid);
        assert_eq!(response.status, 200, "GET: {response:?}");
        decode_payload(&response.text())
    }

    /// GET until at least `n` non-ping packets arrived (pings are answered with a POST `3`).
    pub fn get_n_skipping_pings(&self, sid: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut packets = Vec::new();
        while packets.len() < n {
            assert!(Instant::now() < deadline, "timed out; got {packets:?}");
            for packet in self.get_packets(sid) {
                if packet == "2" {
                    self.post_ok(sid, "3");
                } else {
                    packets.push(packet);
                }
            }
        }
        packets
    }

    /// A WebSocket to `<path>?EIO=4&transport=websocket[&sid=..]`.
    pub fn ws(&self, sid: Option<&str>) -> Ws {
        ws_connect(self.addr, &self.websocket_target(sid)).expect("websocket handshake")
    }

    /// A WebSocket-only session: the socket and the open packet's JSON.
    pub fn ws_session(&self) -> (Ws, Value) {
        let mut ws = self.ws(None);
        let first = ws_expect_text(&mut ws);
        (ws, parse_open(&first))
    }
}

// ---------------------------------------------------------------------------------------------
// Engine.IO payloads
// ---------------------------------------------------------------------------------------------

/// Split a polling payload into its packets.
pub fn decode_payload(body: &str) -> Vec<String> {
    if body.is_empty() {
        return Vec::new();
    }
    body.split(SEP).map(str::to_owned).collect()
}

/// Parse an open packet `0{...}` into its JSON object.
pub fn parse_open(packet: &str) -> Value {
    let json = packet
        .strip_prefix("0{")
        .map(|rest| format!("{{{rest}"))
        .unwrap_or_else(|| panic!("not an open packet: {packet:?}"));
    let value: Value = serde_json::from_str(&json).expect("open packet JSON");
    assert!(value.is_object(), "open packet is an object: {packet:?}");
    value
}

/// Assert an open packet has exactly the five keys, with these upgrades.
pub fn assert_open_packet(open: &Value, upgrades: &[&str], config: &ServerConfig) {
    let object = open.as_object().expect("object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ],
        "open packet keys: {open}"
    );
    let sid = open["sid"].as_str().expect("sid is a string");
    assert!(sid.len() >= 20, "sid carries at least 120 bits: {sid:?}");
    assert!(
        sid.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "sid is URL-safe: {sid:?}"
    );
    let expected: Vec<Value> = upgrades.iter().map(|u| Value::from(*u)).collect();
    assert_eq!(open["upgrades"], Value::Array(expected), "upgrades: {open}");
    assert_eq!(
        open["pingInterval"].as_u64(),
        Some(config.ping_interval.as_millis() as u64),
        "{open}"
    );
    assert_eq!(
        open["pingTimeout"].as_u64(),
        Some(config.ping_timeout.as_millis() as u64),
        "{open}"
    );
    assert_eq!(
        open["maxPayload"].as_u64(),
        Some(config.max_payload as u64),
        "{open}"
    );
}

/// Assert an Engine.IO error response: 400 (403 for code 4), JSON `{"code":N,"message":...}`.
pub fn assert_eio_error(response: &Response, code: u64) {
    let status = if code == 4 { 403 } else { 400 };
    assert_eq!(
        response.status, status,
        "expected code {code}: {response:?}"
    );
    assert_eq!(
        response.header("content-type"),
        Some("application/json"),
        "error content type: {response:?}"
    );
    let body: Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("error body is JSON ({e}): {response:?}"));
    assert_eq!(
        body["code"].as_u64(),
        Some(code),
        "error code: {response:?}"
    );
    let message = match code {
        0 => "Transport unknown",
        1 => "Session ID unknown",
        2 => "Bad handshake method",
        3 => "Bad request",
        4 => "Forbidden",
        5 => "Unsupported protocol version",
        _ => unreachable!(),
    };
    assert_eq!(
        body["message"].as_str(),
        Some(message),
        "error message: {response:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} {:?} body {:?}",
            self.status,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

/// One TCP connection speaking HTTP/1.1 (keep-alive by default).
pub struct Http {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    pub fn connect(addr: SocketAddr) -> Http {
        let stream =
            TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to the test server");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Http {
            stream,
            buf: Vec::new(),
        }
    }

    /// The bytes of a request (Content-Length added for a body or a POST/PUT).
    pub fn request_bytes(
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    pub fn send(&mut self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) {
        let bytes = Self::request_bytes(method, target, headers, body);
        self.send_raw(&bytes);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write the request");
    }

    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.send(method, target, headers, body);
        self.read_response()
    }

    pub fn get(&mut self, target: &str) -> Response {
        self.request("GET", target, &[], b"")
    }

    pub fn post(&mut self, target: &str, body: &[u8]) -> Response {
        self.request(
            "POST",
            target,
            &[("Content-Type", "text/plain;charset=UTF-8")],
            body,
        )
    }

    /// Read one response, failing the test after [`IO_TIMEOUT`].
    pub fn read_response(&mut self) -> Response {
        match self.try_read_response(IO_TIMEOUT) {
            Ok(Some(response)) => response,
            Ok(None) => panic!(
                "no response within {IO_TIMEOUT:?}; got so far {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(e) => panic!(
                "connection failed before a response ({e}); got so far {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// One response if it arrives within `timeout` (`Ok(None)` if not; partial bytes are kept
    /// for the next call). The connection closing before a full response is an error.
    pub fn try_read_response(&mut self, timeout: Duration) -> io::Result<Option<Response>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(response) = self.parse_buffered()? {
                return Ok(Some(response));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let remaining = (deadline - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(remaining))?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed by the server",
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the server closes the connection (EOF or reset) within `timeout`, with no
    /// further response bytes. Panics if bytes arrive.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => panic!(
                    "unexpected bytes: {:?}",
                    String::from_utf8_lossy(&chunk[..n])
                ),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    continue
                }
                Err(_) => return true,
            }
        }
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn parse_buffered(&mut self) -> io::Result<Option<Response>> {
        let Some(head_end) = find(&self.buf, b"\r\n\r\n") else {
            return Ok(None);
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "non-UTF-8 head"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            ));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status code"))?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad header line"))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let content_length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>())
            .transpose()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length"))?
            .unwrap_or(0);
        let body_start = head_end + 4;
        if self.buf.len() < body_start + content_length {
            return Ok(None);
        }
        let body = self.buf[body_start..body_start + content_length].to_vec();
        self.buf.drain(..body_start + content_length);
        Ok(Some(Response {
            status,
            headers,
            body,
        }))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

// ---------------------------------------------------------------------------------------------
// A WebSocket client
// ---------------------------------------------------------------------------------------------

pub type Ws = WebSocket<TcpStream>;

/// What one WebSocket read produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame, EOF or reset.
    Closed,
    /// Nothing within the time given.
    Timeout,
}

/// Open a WebSocket to `target` (path and query). A refused handshake comes back as the
/// tungstenite error (its `Error::Http` carries the HTTP response).
pub fn ws_connect(addr: SocketAddr, target: &str) -> Result<Ws, tungstenite::Error> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let url = format!("ws://{addr}{target}");
    match tungstenite::client::client(url.as_str(), stream) {
        Ok((ws, _response)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            panic!("websocket handshake timed out")
        }
    }
}

/// Read one data frame (control frames are skipped), within `timeout`.
pub fn ws_recv(ws: &mut Ws, timeout: Duration) -> WsEvent {
    let deadline = Instant::now() + timeout;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return WsEvent::Timeout;
        }
        let _ = ws
            .get_mut()
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
        match ws.read() {
            Ok(Message::Text(text)) => return WsEvent::Text(text.as_str().to_owned()),
            Ok(Message::Binary(data)) => return WsEvent::Binary(data.to_vec()),
            Ok(Message::Close(_)) => return WsEvent::Closed,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::TimedOut
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                continue
            }
            Err(_) => return WsEvent::Closed,
        }
    }
}

/// Like [`ws_recv`], but an Engine.IO ping `2` is answered with `3` and skipped.
pub fn ws_recv_skipping_pings(ws: &mut Ws, timeout: Duration) -> WsEvent {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match ws_recv(ws, remaining) {
            WsEvent::Text(text) if text == "2" => ws_send_text(ws, "3"),
            other => return other,
        }
    }
}

/// The next text frame (pings answered and skipped); anything else fails the test.
pub fn ws_expect_text(ws: &mut Ws) -> String {
    match ws_recv_skipping_pings(ws, IO_TIMEOUT) {
        WsEvent::Text(text) => text,
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next binary frame (pings answered and skipped); anything else fails the test.
pub fn ws_expect_binary(ws: &mut Ws) -> Vec<u8> {
    match ws_recv_skipping_pings(ws, IO_TIMEOUT) {
        WsEvent::Binary(data) => data,
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

/// RFC 6455 status codes the server's close frames carry (the mapping is in docs/LIMITS.md).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// How the server ended a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsClosed {
    /// The server's close frame: status code and reason text; `None` when the TCP connection
    /// ended without one (a browser reports 1006).
    pub frame: Option<(u16, String)>,
    /// The data frames that came before (Engine.IO pings left out).
    pub seen: Vec<WsEvent>,
}

/// Read until the server closes `ws`; `None` if it is still open after `timeout`. Engine.IO
/// pings (`2`) are answered when `answer_pings`, so that a test waiting for another cause
/// cannot be closed by the heartbeat instead.
pub fn ws_await_close(ws: &mut Ws, timeout: Duration, answer_pings: bool) -> Option<WsClosed> {
    ws_watch(ws, timeout, answer_pings).ok()
}

/// Read until the server closes `ws` (`Ok`, how it closed) or `timeout` passes (`Err`, the
/// data frames seen); Engine.IO pings are left out, and answered when `answer_pings`.
pub fn ws_watch(
    ws: &mut Ws,
    timeout: Duration,
    answer_pings: bool,
) -> Result<WsClosed, Vec<WsEvent>> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(seen);
        }
        let _ = ws
            .get_mut()
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
        let frame = match ws.read() {
            Ok(Message::Text(text)) if text.as_str() == "2" => {
                if answer_pings {
                    let _ = ws.send(Message::text("3"));
                }
                continue;
            }
            Ok(Message::Text(text)) => {
                seen.push(WsEvent::Text(text.as_str().to_owned()));
                continue;
            }
            Ok(Message::Binary(data)) => {
                seen.push(WsEvent::Binary(data.to_vec()));
                continue;
            }
            Ok(Message::Close(frame)) => {
                frame.map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::TimedOut
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                continue
            }
            Err(_) => None,
        };
        return Ok(WsClosed { frame, seen });
    }
}

/// Expect the server to close `ws` within `timeout` with a close frame of status `code`
/// whose reason text starts with `reason`, Engine.IO pings answered meanwhile; the data
/// frames seen before. Fails the test otherwise.
pub fn ws_expect_close(ws: &mut Ws, timeout: Duration, code: u16, reason: &str) -> Vec<WsEvent> {
    let closed = ws_await_close(ws, timeout, true)
        .unwrap_or_else(|| panic!("websocket still open after {timeout:?} (pings answered)"));
    assert_close_frame(&closed, code, reason);
    closed.seen
}

/// Assert `closed` ended with a close frame of status `code` and a reason starting with
/// `reason`.
pub fn assert_close_frame(closed: &WsClosed, code: u16, reason: &str) {
    match &closed.frame {
        Some((got, text)) if *got == code && text.starts_with(reason) => {}
        other => panic!(
            "expected a close frame {code} {reason:?}..., got {other:?} after {:?}",
            closed.seen
        ),
    }
}

/// Assert nothing (but pings, answered) arrives for `duration` and the socket stays open.
pub fn ws_expect_silence(ws: &mut Ws, duration: Duration) {
    match ws_recv_skipping_pings(ws, duration) {
        WsEvent::Timeout => {}
        other => panic!("expected silence, got {other:?}"),
    }
}

pub fn ws_send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_owned()))
        .expect("send a text frame");
}

/// One client frame built by hand (masked, as RFC 6455 requires of clients): `opcode` 1 text,
/// 2 binary, 0 continuation; `fin` ends the message. Payloads under 64 KiB.
pub fn ws_raw_frame(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | (opcode & 0x0f)];
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    }
    let mask = [0x5a, 0x11, 0xc3, 0x07];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Write bytes to a WebSocket's TCP stream as they are (frames built by [`ws_raw_frame`]).
pub fn ws_write_raw(ws: &mut Ws, bytes: &[u8]) {
    use std::io::Write as _;
    ws.get_mut().write_all(bytes).expect("write raw bytes");
}

pub fn ws_send_binary(ws: &mut Ws, data: &[u8]) {
    ws.send(Message::binary(data.to_vec()))
        .expect("send a binary frame");
}

/// Send a close frame (ignoring errors: the peer may be gone already).
pub fn ws_close(ws: &mut Ws) {
    let _ = ws.close(None);
    let _ = ws.flush();
}
