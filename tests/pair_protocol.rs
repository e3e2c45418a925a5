//! Protocol behaviour proven on the deterministic endpoint pair (`endpoint::pair::Pair`): no
//! sockets, no sleeps, a virtual clock. Each scenario runs in microseconds and the same way
//! every run; what the bytes look like on a real socket is the over-the-wire tests' part.

use std::time::Duration;

use readrealm_chat::config::{Layer, ServerConfig};
use readrealm_chat::endpoint::pair::{ConnState, Pair};
use readrealm_chat::endpoint::{status, ConnId};
use readrealm_chat::socketio::conformance::{ConformanceSocketIo, EchoEngine, AUTH_DELAY};

const PING_INTERVAL: Duration = Duration::from_millis(300);
const PING_TIMEOUT: Duration = Duration::from_millis(200);

fn config(path: &str, layer: Layer) -> ServerConfig {
    ServerConfig {
        path: path.into(),
        layer,
        ping_interval: PING_INTERVAL,
        ping_timeout: PING_TIMEOUT,
        // Both shorter than a missed ping's pingInterval + pingTimeout, so each is what ends
        // the session (or the upgrade) in its test.
        upgrade_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_millis(450),
        ..ServerConfig::default()
    }
}

fn engine() -> Pair<EchoEngine> {
    Pair::new(config("/engine.io/", Layer::EngineIo), EchoEngine)
}

fn socketio() -> Pair<ConformanceSocketIo> {
    Pair::new(config("/socket.io/", Layer::SocketIo), ConformanceSocketIo)
}

fn get(path: &str, query: &str) -> Vec<u8> {
    format!("GET {path}?EIO=4&transport=polling{query} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

fn post(path: &str, sid: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path}?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn ws_upgrade(path: &str, sid: Option<&str>) -> Vec<u8> {
    let sid = sid.map(|s| format!("&sid={s}")).unwrap_or_default();
    format!(
        "GET {path}?EIO=4&transport=websocket{sid} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A polling handshake: the sid.
fn handshake<H: readrealm_chat::socketio::Handler>(pair: &mut Pair<H>, path: &str) -> String {
    let conn = pair.request(&get(path, ""));
    let answer = pair.take_answer(conn).expect("the open packet");
    assert_eq!(answer.status, 200);
    let text = answer.text();
    let open: serde_json::Value =
        serde_json::from_str(text.strip_prefix('0').expect("an open packet")).expect("JSON");
    open["sid"].as_str().expect("a sid").to_owned()
}

fn poll<H: readrealm_chat::socketio::Handler>(pair: &mut Pair<H>, path: &str, sid: &str) -> ConnId {
    pair.request(&get(path, &format!("&sid={sid}")))
}

#[test]
fn no_pong_closes_a_polling_session_after_ping_interval_plus_timeout() {
    let mut pair = engine();
    let sid = handshake(&mut pair, "/engine.io/");
    let get = poll(&mut pair, "/engine.io/", &sid);
    assert_eq!(
        pair.state(get),
        Some(ConnState::Parked),
        "nothing to send yet"
    );
    pair.advance(PING_INTERVAL - Duration::from_millis(2));
    assert_eq!(
        pair.state(get),
        Some(ConnState::Parked),
        "no ping before pingInterval"
    );
    pair.advance(Duration::from_millis(2));
    assert_eq!(pair.take_answer(get).expect("the ping").text(), "2");
    let get = poll(&mut pair, "/engine.io/", &sid);
    pair.advance(PING_TIMEOUT - Duration::from_millis(2));
    assert_eq!(
        pair.state(get),
        Some(ConnState::Parked),
        "still open within pingTimeout"
    );
    pair.advance(Duration::from_millis(2));
    assert_eq!(pair.take_answer(get).expect("the close").text(), "1");
    let again = poll(&mut pair, "/engine.io/", &sid);
    let answer = pair.take_answer(again).expect("an error");
    assert_eq!(answer.status, 400);
    assert!(answer.text().contains("\"code\":1"), "{}", answer.text());
}

#[test]
fn upgrade_answers_the_parked_get_with_noop_then_moves_queued_messages_to_the_websocket() {
    let mut pair = engine();
    let sid = handshake(&mut pair, "/engine.io/");
    let get = poll(&mut pair, "/engine.io/", &sid);
    let ws = pair.request(&ws_upgrade("/engine.io/", Some(&sid)));
    assert_eq!(pair.take_answer(ws).expect("101").status, 101);
    pair.ws_text(ws, "2probe");
    assert_eq!(pair.take_texts(ws), ["3probe"]);
    assert_eq!(pair.take_answer(get).expect("the noop").text(), "6");
    // A message posted during the upgrade waits for the WebSocket.
    let posted = pair.request(&post("/engine.io/", &sid, "4queued"));
    assert_eq!(pair.take_answer(posted).expect("ok").text(), "ok");
    pair.ws_text(ws, "5");
    assert_eq!(pair.take_texts(ws), ["4queued"]);
    pair.ws_text(ws, "4hello");
    assert_eq!(pair.take_texts(ws), ["4hello"]);
    let late = poll(&mut pair, "/engine.io/", &sid);
    assert_eq!(
        pair.take_answer(late).expect("400").status,
        400,
        "polling is over"
    );
}

#[test]
fn upgrade_times_out_and_the_session_stays_on_polling() {
    let mut pair = engine();
    let sid = handshake(&mut pair, "/engine.io/");
    let ws = pair.request(&ws_upgrade("/engine.io/", Some(&sid)));
    pair.advance(Duration::from_millis(398));
    assert_eq!(pair.state(ws), Some(ConnState::WebSocket));
    pair.advance(Duration::from_millis(2));
    assert_eq!(pair.state(ws), Some(ConnState::Closed));
    let close = pair.ws_close(ws).expect("a close frame");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (status::NORMAL, "upgrade timeout")
    );
    let posted = pair.request(&post("/engine.io/", &sid, "3"));
    assert_eq!(
        pair.take_answer(posted).expect("ok").status,
        200,
        "session alive"
    );
}

#[test]
fn socketio_connect_then_auth_after_its_delay() {
    let mut pair = socketio();
    let ws = pair.request(&ws_upgrade("/socket.io/", None));
    assert_eq!(pair.take_answer(ws).expect("101").status, 101);
    let open = pair.take_texts(ws);
    assert!(open[0].starts_with("0{"), "{open:?}");
    pair.ws_text(ws, "40{\"token\":\"abc\"}");
    let answer = pair.take_texts(ws);
    assert!(answer[0].starts_with("40{\"sid\":"), "{answer:?}");
    pair.advance(AUTH_DELAY - Duration::from_millis(2));
    assert!(pair.take_texts(ws).is_empty(), "auth waits for its delay");
    pair.advance(Duration::from_millis(2));
    assert_eq!(pair.take_texts(ws), ["42[\"auth\",{\"token\":\"abc\"}]"]);
}

#[test]
fn no_connect_within_the_connect_timeout_closes_with_its_reason() {
    let mut pair = socketio();
    let ws = pair.request(&ws_upgrade("/socket.io/", None));
    pair.take_texts(ws);
    pair.advance(Duration::from_millis(448));
    assert_eq!(pair.state(ws), Some(ConnState::WebSocket));
    pair.advance(Duration::from_millis(2));
    let close = pair.ws_close(ws).expect("a close frame");
    assert_eq!(
        (close.code, close.reason.as_str()),
        (status::NORMAL, "connect timeout")
    );
}
