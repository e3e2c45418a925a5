//! The `endpoint` target: the real sans-IO endpoint (`crate::endpoint::Endpoint`) driven
//! through the deterministic test pair (`crate::endpoint::pair::Pair`) by fuzzer-chosen
//! client actions.
//!
//! The input (read with [`Input`]) picks the layer (the Engine.IO echo handler or the
//! Socket.IO conformance handler), one or two shards (the pair is shard 0; requests for shard
//! 1's sids are handed off), and the settings (pingInterval, pingTimeout, upgrade and connect
//! timeouts of 1..=1024 ms, maxPayload of 1..=512 bytes), then up to [`MAX_OPS`] operations on
//! up to [`MAX_CONNS`] client connections:
//!
//! - a request from a small grammar — GET, POST, PUT or OPTIONS; transport polling, websocket
//!   or junk; a sid already issued, a well-formed unknown one, junk or none; WebSocket upgrade
//!   headers or not; `Connection: close` or not; a body of Engine.IO / Socket.IO packets or
//!   raw bytes — sent whole or cut in two sends;
//! - raw bytes on a connection;
//! - a WebSocket text message (from the same packet grammar, or arbitrary text) or binary
//!   message;
//! - the client closing a connection;
//! - time passing (0..=2047 ms, every deadline on the way run at its time), a bare loop turn;
//! - shutdown (the last operation).
//!
//! Beyond "never panics", the pair checks the I/O contract on every transmit (see its module
//! doc: answers are well-formed HTTP with an exact `Content-Length`; a request is answered or
//! parked, once; nothing goes to a closed connection or one on the other protocol; known
//! close codes; deadlines pass) and fails when dropped with a violation. This check adds:
//!
//! - every sid the endpoint hands out (in an open packet, over polling or WebSocket) is new;
//! - every answer status is one the server sends, and an Engine.IO error is JSON with a
//!   `code` in 0..=5;
//! - every WebSocket text frame is an Engine.IO packet (type digit 0..=6);
//! - the endpoint's poll_timeout is never earlier than the last time it was handled at, less
//!   the timer slack, after a pass of time (time never goes back for a deadline).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::input::Input;
use crate::config::{Layer, ServerConfig};
use crate::endpoint::pair::{HttpAnswer, Pair};
use crate::endpoint::{ConnId, WsMessage};
use crate::engineio::packet::Frame;
use crate::engineio::session::TIMER_SLACK;
use crate::socketio::conformance::{ConformanceSocketIo, EchoEngine};
use crate::socketio::Handler;

/// Most operations read from one input.
pub const MAX_OPS: usize = 256;

/// Most client connections open at once.
pub const MAX_CONNS: usize = 8;

/// Statuses the endpoint answers with.
const STATUSES: [u16; 8] = [101, 200, 204, 400, 403, 404, 405, 413];

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let socketio = input.bool();
    let shards = input.usize_in(1, 2);
    let mut config = ServerConfig {
        shards,
        ping_interval: ms(&mut input),
        ping_timeout: ms(&mut input),
        upgrade_timeout: ms(&mut input),
        connect_timeout: ms(&mut input),
        max_payload: input.usize_in(1, 512),
        ..ServerConfig::default()
    };
    if socketio {
        config.path = "/socket.io/".into();
        config.layer = Layer::SocketIo;
        run(
            Pair::with_shards(config, ConformanceSocketIo, shards),
            input,
        );
    } else {
        config.path = "/engine.io/".into();
        config.layer = Layer::EngineIo;
        run(Pair::with_shards(config, EchoEngine, shards), input);
    }
}

fn ms(input: &mut Input<'_>) -> Duration {
    Duration::from_millis(input.u64_in(1, 1024))
}

/// The client side: connections and the sids it has seen.
struct Client {
    conns: Vec<ConnId>,
    sids: Vec<String>,
    issued: HashSet<String>,
}

fn run<H: Handler>(mut pair: Pair<H>, mut input: Input<'_>) {
    let mut client = Client {
        conns: Vec::new(),
        sids: Vec::new(),
        issued: HashSet::new(),
    };
    let path = pair.config().path.clone();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        match input.u8_in(0, 9) {
            0..=2 => {
                let conn = pick_conn(&mut pair, &mut client, &mut input);
                let bytes = request(&path, &client, &mut input);
                if input.ratio(1, 4) {
                    let cut = input.usize_in(0, bytes.len());
                    let (a, b) = bytes.split_at(cut);
                    pair.send(conn, a);
                    pair.send(conn, b);
                } else {
                    pair.send(conn, &bytes);
                }
            }
            3 => {
                let conn = pick_conn(&mut pair, &mut client, &mut input);
                let bytes = input.bytes_up_to(64);
                pair.send(conn, bytes);
            }
            4 | 5 => {
                let conn = pick_conn(&mut pair, &mut client, &mut input);
                let text = if input.ratio(1, 8) {
                    input.text_up_to(32)
                } else {
                    packet(&mut input)
                };
                pair.ws_send(conn, WsMessage::Text(&text));
            }
            6 => {
                let conn = pick_conn(&mut pair, &mut client, &mut input);
                let data = input.bytes_up_to(16).to_vec();
                pair.ws_send(conn, WsMessage::Binary(data.into()));
            }
            7 => {
                let conn = pick_conn(&mut pair, &mut client, &mut input);
                pair.close(conn);
            }
            8 => {
                let by = Duration::from_millis(input.u64_in(0, 2047));
                pair.advance(by);
                if let Some(next) = pair.endpoint.poll_timeout() {
                    assert!(
                        next + TIMER_SLACK > pair.now(),
                        "a deadline at {next:?} left behind at {:?}",
                        pair.now()
                    );
                }
            }
            _ => {
                if input.ratio(1, 16) {
                    pair.shutdown();
                    observe(&mut pair, &mut client);
                    break;
                }
                pair.turn_end();
            }
        }
        observe(&mut pair, &mut client);
    }
    assert!(pair.violations().is_empty(), "{:?}", pair.violations());
}

/// An open connection chosen by the input, or a new one.
fn pick_conn<H: Handler>(pair: &mut Pair<H>, client: &mut Client, input: &mut Input<'_>) -> ConnId {
    let open: Vec<ConnId> = client
        .conns
        .iter()
        .copied()
        .filter(|&c| pair.state(c) != Some(crate::endpoint::pair::ConnState::Closed))
        .collect();
    client.conns = open;
    if client.conns.is_empty() || (client.conns.len() < MAX_CONNS && input.ratio(1, 3)) {
        let conn = pair.connect();
        client.conns.push(conn);
        return conn;
    }
    let i = input.usize_in(0, client.conns.len() - 1);
    client
        .conns
        .get(i)
        .copied()
        .unwrap_or_else(|| pair.connect())
}

/// One request's bytes from the grammar.
fn request(path: &str, client: &Client, input: &mut Input<'_>) -> Vec<u8> {
    let method = ["GET", "POST", "PUT", "OPTIONS"][input.usize_in(0, 3)];
    let target_path = if input.ratio(1, 16) { "/other/" } else { path };
    let transport = ["polling", "websocket", "flash"][input.usize_in(0, 2)];
    let eio = if input.ratio(1, 16) { "3" } else { "4" };
    let sid = match input.u8_in(0, 3) {
        0 => None,
        1 if !client.sids.is_empty() => {
            let i = input.usize_in(0, client.sids.len() - 1);
            client.sids.get(i).cloned()
        }
        2 => {
            let first = ["A", "B", "C"][input.usize_in(0, 2)];
            Some(format!("{first}{}", "A".repeat(22)))
        }
        _ => Some(
            input
                .text_up_to(4)
                .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
        ),
    };
    let mut target = format!("{target_path}?EIO={eio}&transport={transport}");
    if let Some(sid) = sid {
        target.push_str("&sid=");
        target.push_str(&sid);
    }
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n");
    if input.ratio(1, 2) && method == "GET" {
        head.push_str(
            "Connection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        );
    } else if input.ratio(1, 8) {
        head.push_str("Connection: close\r\n");
    }
    if input.ratio(1, 8) {
        head.push_str("Origin: https://a.example\r\n");
    }
    let body: Vec<u8> = if method == "GET" || method == "OPTIONS" {
        Vec::new()
    } else if input.ratio(1, 8) {
        input.bytes_up_to(64).to_vec()
    } else {
        let n = input.usize_in(1, 3);
        (0..n)
            .map(|_| packet(input))
            .collect::<Vec<_>>()
            .join("\u{1e}")
            .into_bytes()
    };
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// An Engine.IO packet (carrying a Socket.IO one for type 4) from a small grammar.
fn packet(input: &mut Input<'_>) -> String {
    const SIO: [&str; 16] = [
        "0",
        "0/custom,",
        r#"0{"token":"x"}"#,
        "0/nope,",
        "1",
        "1/custom,",
        r#"2["message",1]"#,
        r#"27["message-with-ack","a"]"#,
        r#"2/custom,["message","c"]"#,
        r#"51-["message",{"_placeholder":true,"num":0}]"#,
        r#"52-3["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        r#"3"x""#,
        r#"4{"message":"x"}"#,
        "2{}",
        r#"2["disconnect"]"#,
        "abc",
    ];
    match input.u8_in(0, 9) {
        0 => "2probe".into(),
        1 => "5".into(),
        2 => "6".into(),
        3 => "3".into(),
        4 => "1".into(),
        5 => "bAQID".into(),
        6 => format!("4{}", input.text_up_to(8)),
        7 => "2".into(),
        _ => format!("4{}", SIO[input.usize_in(0, SIO.len() - 1)]),
    }
}

/// Take what every connection received and check it.
fn observe<H: Handler>(pair: &mut Pair<H>, client: &mut Client) {
    let conns = client.conns.clone();
    for conn in conns {
        while let Some(answer) = pair.take_answer(conn) {
            check_answer(&answer, client);
        }
        for frame in pair.take_frames(conn) {
            if let Frame::Text(bytes) = frame {
                let text = std::str::from_utf8(&bytes).expect("a text frame is UTF-8");
                assert!(
                    matches!(text.as_bytes().first(), Some(b'0'..=b'6')),
                    "not an Engine.IO packet: {text:?}"
                );
                if let Some(open) = text.strip_prefix('0') {
                    new_sid(open, client);
                }
            }
        }
    }
}

fn check_answer(answer: &HttpAnswer, client: &mut Client) {
    assert!(
        STATUSES.contains(&answer.status),
        "status {}",
        answer.status
    );
    if (answer.status == 400 || answer.status == 403)
        && answer.header("content-type") == Some("application/json")
    {
        let body: Value = serde_json::from_slice(&answer.body).expect("a JSON error");
        let code = body["code"].as_u64().expect("an error code");
        assert!(code <= 5, "error code {code}");
    }
    if answer.status == 200 {
        let text = answer.text();
        if let Some(open) = text.strip_prefix("0{") {
            new_sid(&format!("{{{open}"), client);
        }
    }
}

fn new_sid(open: &str, client: &mut Client) {
    let Ok(open) = serde_json::from_str::<Value>(open) else {
        return;
    };
    if let Some(sid) = open["sid"].as_str() {
        assert!(
            client.issued.insert(sid.to_owned()),
            "sid {sid} issued twice"
        );
        client.sids.push(sid.to_owned());
    }
}
