//! What the `tests/pair_*.rs` files share: the conformance settings for a [`Pair`], request
//! bytes a client would send, and the checks of Engine.IO answers (the same as the
//! over-the-wire tests' `tests/support`, read from a [`HttpAnswer`] instead of a socket).
#![allow(dead_code)]

// The open packet's checks are the wire tests' own: one statement of them.
#[path = "../support/mod.rs"]
mod wire;
#[allow(unused_imports)] // not every Pair test file checks an open packet
pub use wire::assert_open_packet;

use std::time::Duration;

use bytes::Bytes;

use readrealm_chat::config::{Layer, ServerConfig};
use readrealm_chat::endpoint::pair::{ConnState, HttpAnswer, Pair};
use readrealm_chat::endpoint::ConnId;
use readrealm_chat::engineio::packet::Frame;
use readrealm_chat::socketio::conformance::{ConformanceSocketIo, EchoEngine};
use readrealm_chat::socketio::Handler;
use serde_json::Value;

/// The Engine.IO payload separator.
pub const SEP: char = '\x1e';

/// The conformance settings of `tests/support::base_config` (pingInterval 300 ms,
/// pingTimeout 200 ms, connectTimeout 1000 ms, maxPayload 1,000,000).
pub fn base_config() -> ServerConfig {
    ServerConfig {
        shards: 1,
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(1000),
        max_payload: 1_000_000,
        ..ServerConfig::default()
    }
}

/// Heartbeats out of the way (`tests/support::quiet`).
pub fn quiet(config: &mut ServerConfig) {
    config.ping_interval = Duration::from_millis(10_000);
    config.ping_timeout = Duration::from_millis(5_000);
}

/// The Engine.IO echo endpoint on `/engine.io/`.
pub fn engineio(tweak: impl FnOnce(&mut ServerConfig)) -> Pair<EchoEngine> {
    let mut config = base_config();
    config.path = "/engine.io/".into();
    config.layer = Layer::EngineIo;
    tweak(&mut config);
    Pair::new(config, EchoEngine)
}

/// The Engine.IO echo endpoint with heartbeats out of the way.
pub fn engineio_quiet() -> Pair<EchoEngine> {
    engineio(quiet)
}

/// The conformance Socket.IO endpoint on `/socket.io/`.
pub fn socketio(tweak: impl FnOnce(&mut ServerConfig)) -> Pair<ConformanceSocketIo> {
    let mut config = base_config();
    config.path = "/socket.io/".into();
    config.layer = Layer::SocketIo;
    tweak(&mut config);
    Pair::new(config, ConformanceSocketIo)
}

/// The bytes of one HTTP/1.1 request (`Content-Length` when there is a body).
pub fn request_bytes(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The polling target for `sid` (a handshake without).
pub fn polling_target<H: Handler>(pair: &Pair<H>, sid: Option<&str>) -> String {
    target(pair, "polling", sid)
}

/// The WebSocket target for `sid`.
pub fn websocket_target<H: Handler>(pair: &Pair<H>, sid: Option<&str>) -> String {
    target(pair, "websocket", sid)
}

fn target<H: Handler>(pair: &Pair<H>, transport: &str, sid: Option<&str>) -> String {
    let path = &pair.config().path;
    match sid {
        Some(sid) => format!("{path}?EIO=4&transport={transport}&sid={sid}"),
        None => format!("{path}?EIO=4&transport={transport}"),
    }
}

/// A WebSocket handshake request for `target`.
pub fn ws_upgrade_bytes(target: &str) -> Vec<u8> {
    request_bytes(
        "GET",
        target,
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
        b"",
    )
}

/// Send one request on a new connection and take its answer, which must come at once.
pub fn call<H: Handler>(
    pair: &mut Pair<H>,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpAnswer {
    let conn = pair.request(&request_bytes(method, target, headers, body));
    pair.take_answer(conn)
        .unwrap_or_else(|| panic!("{method} {target}: no answer at once"))
}

/// `GET target` answered at once.
pub fn get_target<H: Handler>(pair: &mut Pair<H>, target: &str) -> HttpAnswer {
    call(pair, "GET", target, &[], b"")
}

/// A polling GET for `sid`, answered at once.
pub fn get<H: Handler>(pair: &mut Pair<H>, sid: &str) -> HttpAnswer {
    let target = polling_target(pair, Some(sid));
    get_target(pair, &target)
}

/// A polling POST for `sid`.
pub fn post<H: Handler>(pair: &mut Pair<H>, sid: &str, body: &[u8]) -> HttpAnswer {
    let target = polling_target(pair, Some(sid));
    call(pair, "POST", &target, &[], body)
}

/// A polling POST for `sid` answered `200 ok`.
pub fn post_ok<H: Handler>(pair: &mut Pair<H>, sid: &str, body: &str) {
    let answer = post(pair, sid, body.as_bytes());
    assert_eq!(answer.status, 200, "POST {body:?}: {answer:?}");
    assert_eq!(answer.body, b"ok", "POST {body:?}: {answer:?}");
}

/// The packets of a GET for `sid` answered at once.
pub fn get_packets<H: Handler>(pair: &mut Pair<H>, sid: &str) -> Vec<String> {
    let answer = get(pair, sid);
    assert_eq!(answer.status, 200, "{answer:?}");
    decode_payload(&answer.text())
}

/// A polling handshake: the sid and the open packet.
pub fn handshake<H: Handler>(pair: &mut Pair<H>) -> (String, Value) {
    let target = polling_target(pair, None);
    let answer = get_target(pair, &target);
    assert_eq!(answer.status, 200, "{answer:?}");
    let open = parse_open(&answer.text());
    let sid = open["sid"].as_str().expect("sid").to_owned();
    (sid, open)
}

/// Send a GET for `sid` and check it is parked (no answer yet).
pub fn park_get<H: Handler>(pair: &mut Pair<H>, sid: &str) -> ConnId {
    let target = polling_target(pair, Some(sid));
    let conn = pair.request(&request_bytes("GET", &target, &[], b""));
    assert_eq!(
        pair.state(conn),
        Some(ConnState::Parked),
        "GET should be parked"
    );
    assert!(pair.take_answer(conn).is_none());
    conn
}

/// The answer of a parked GET, which must have come.
pub fn parked_answer<H: Handler>(pair: &mut Pair<H>, conn: ConnId) -> HttpAnswer {
    pair.take_answer(conn).expect("the parked GET is answered")
}

/// The packets of a polling payload.
pub fn decode_payload(body: &str) -> Vec<String> {
    if body.is_empty() {
        return Vec::new();
    }
    body.split(SEP).map(str::to_owned).collect()
}

/// The JSON of an open packet `0{...}`.
pub fn parse_open(packet: &str) -> Value {
    let json = packet
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("open packet: {packet:?}"));
    serde_json::from_str(json).expect("open packet JSON")
}

/// An Engine.IO error answer with `code` (400, or 403 for code 4) and its message.
pub fn assert_eio_error(answer: &HttpAnswer, code: u64) {
    let status = if code == 4 { 403 } else { 400 };
    assert_eq!(answer.status, status, "expected code {code}: {answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "error content type: {answer:?}"
    );
    let body: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("error body is JSON ({e}): {answer:?}"));
    assert_eq!(body["code"].as_u64(), Some(code), "error code: {answer:?}");
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
        "error message: {answer:?}"
    );
}

/// A WebSocket text frame.
pub fn text(text: &str) -> Frame {
    Frame::Text(Bytes::copy_from_slice(text.as_bytes()))
}

/// A WebSocket binary frame.
pub fn binary(data: &[u8]) -> Frame {
    Frame::Binary(Bytes::copy_from_slice(data))
}

/// Open a WebSocket for `sid` (a WebSocket-only session without); the 101 must come.
pub fn ws<H: Handler>(pair: &mut Pair<H>, sid: Option<&str>) -> ConnId {
    let target = websocket_target(pair, sid);
    let conn = pair.request(&ws_upgrade_bytes(&target));
    let answer = pair.take_answer(conn).expect("the handshake answer");
    assert_eq!(answer.status, 101, "{answer:?}");
    assert_eq!(pair.state(conn), Some(ConnState::WebSocket));
    conn
}

/// A WebSocket-only session: the connection and its open packet.
pub fn ws_session<H: Handler>(pair: &mut Pair<H>) -> (ConnId, Value) {
    let conn = ws(pair, None);
    let frames = pair.take_texts(conn);
    let first = frames.first().expect("the open packet");
    (conn, parse_open(first))
}

/// The WebSocket's close frame, which must have been sent, as (code, reason).
pub fn ws_closed<H: Handler>(pair: &Pair<H>, conn: ConnId) -> (u16, String) {
    assert_eq!(pair.state(conn), Some(ConnState::Closed), "closed");
    let close = pair.ws_close(conn).expect("a close frame");
    (close.code, close.reason.clone())
}

/// The WebSocket was closed with a close frame of status `code` and a reason starting with
/// `reason` (what `tests/support::assert_close_frame` checks on the wire).
pub fn assert_ws_closed<H: Handler>(pair: &Pair<H>, conn: ConnId, code: u16, reason: &str) {
    let (got, text) = ws_closed(pair, conn);
    assert!(
        got == code && text.starts_with(reason),
        "expected a close frame {code} {reason:?}..., got {got} {text:?}"
    );
}
pub mod rooms;
