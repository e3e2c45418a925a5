//! Socket.IO clients for the hostile suite, written against the wire format: a well-behaved
//! chat client over WebSocket (answers pings, matches acks, keeps the events it saw), the
//! Socket.IO packet parser the assertions use, and raw WebSocket frames for what tungstenite
//! refuses to send (invalid UTF-8 in a text frame).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{ws_connect, ws_recv, ws_send_text, ws_watch, Ws, WsEvent, IO_TIMEOUT};

/// The Engine.IO WebSocket target of the chat server.
pub const WS_TARGET: &str = "/socket.io/?EIO=4&transport=websocket";
/// The polling target of the chat server.
pub const POLLING_TARGET: &str = "/socket.io/?EIO=4&transport=polling";

/// One Socket.IO packet on the main namespace, as the server sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct SioPacket {
    /// The type digit: 0 CONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR...
    pub kind: u8,
    /// The namespace (`/` when left out).
    pub nsp: String,
    pub id: Option<u64>,
    pub data: Value,
}

/// Parse an Engine.IO message packet `4<socket.io packet>`; `None` for anything else.
pub fn parse_sio(text: &str) -> Option<SioPacket> {
    let rest = text.strip_prefix('4')?;
    let mut chars = rest.char_indices();
    let (_, kind) = chars.next()?;
    let kind = kind.to_digit(10)? as u8;
    let mut body = &rest[1..];
    let mut nsp = "/".to_owned();
    if body.starts_with('/') {
        let end = body.find(',').unwrap_or(body.len());
        nsp = body[..end].to_owned();
        body = body.get(end + 1..).unwrap_or("");
    }
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        Some(body[..digits].parse().ok()?)
    } else {
        None
    };
    let json = &body[digits..];
    let data = if json.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(json).ok()?
    };
    Some(SioPacket {
        kind,
        nsp,
        id,
        data,
    })
}

/// A chat client over a WebSocket-only session, connected to `/`.
pub struct ChatClient {
    pub ws: Ws,
    next_ack: u64,
    /// EVENT packets seen while waiting for something else: (name, first argument).
    pub events: Vec<(String, Value)>,
    /// Acks that arrived while another was awaited (a chat message is acked by its room's
    /// home shard once stored, so acks need not come back in request order).
    acks: HashMap<u64, Value>,
}

impl ChatClient {
    /// Open a WebSocket session and connect to `/`.
    pub fn connect(addr: SocketAddr) -> ChatClient {
        let mut ws = ws_connect(addr, WS_TARGET).expect("websocket handshake");
        let open = expect_text(&mut ws, IO_TIMEOUT);
        assert!(open.starts_with("0{"), "open packet: {open:?}");
        ws_send_text(&mut ws, "40");
        let answer = expect_text(&mut ws, IO_TIMEOUT);
        let packet = parse_sio(&answer).unwrap_or_else(|| panic!("CONNECT answer {answer:?}"));
        assert_eq!(packet.kind, 0, "CONNECT answer {answer:?}");
        assert!(packet.data["sid"].is_string(), "CONNECT answer {answer:?}");
        ChatClient {
            ws,
            next_ack: 1,
            events: Vec::new(),
            acks: HashMap::new(),
        }
    }

    pub fn send(&mut self, text: &str) {
        ws_send_text(&mut self.ws, text);
    }

    /// Emit `event` with `payload` and an ack id; the id.
    pub fn emit_with_ack(&mut self, event: &str, payload: &Value) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        let text = format!("42{id}{}", json!([event, payload]));
        self.send(&text);
        id
    }

    /// Emit `event` with the raw JSON `args` text (everything after the name), with an ack.
    pub fn emit_raw_with_ack(&mut self, event: &str, args: &str) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        let name = Value::from(event);
        let text = if args.is_empty() {
            format!("42{id}[{name}]")
        } else {
            format!("42{id}[{name},{args}]")
        };
        self.send(&text);
        id
    }

    /// The next Socket.IO packet within `timeout` (pings answered); `None` on timeout.
    /// Panics if the connection closes.
    pub fn next_packet(&mut self, timeout: Duration) -> Option<SioPacket> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match ws_recv(&mut self.ws, remaining) {
                WsEvent::Text(text) if text == "2" => ws_send_text(&mut self.ws, "3"),
                WsEvent::Text(text) => {
                    return Some(
                        parse_sio(&text)
                            .unwrap_or_else(|| panic!("not a Socket.IO packet: {text:?}")),
                    )
                }
                WsEvent::Timeout => return None,
                other => panic!("chat client: unexpected {other:?}"),
            }
        }
    }

    /// Wait for the ack `id`; its first value. Events seen meanwhile go to `events`.
    pub fn expect_ack(&mut self, id: u64) -> Value {
        if let Some(value) = self.acks.remove(&id) {
            return value;
        }
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let packet = self
                .next_packet(remaining)
                .unwrap_or_else(|| panic!("no ack {id} within {IO_TIMEOUT:?}"));
            match (packet.kind, packet.id) {
                (3, Some(got)) if got < self.next_ack => {
                    let values = packet.data.as_array().expect("ACK data is an array");
                    assert_eq!(values.len(), 1, "one ack value: {packet:?}");
                    if got == id {
                        return values[0].clone();
                    }
                    let earlier = self.acks.insert(got, values[0].clone());
                    assert!(earlier.is_none(), "ack {got} answered twice: {packet:?}");
                }
                (2, _) => self.keep_event(packet),
                _ => panic!("waiting for ack {id}, got {packet:?}"),
            }
        }
    }

    /// Wait for an event named `name`; its first argument. Other events go to `events`.
    pub fn expect_event(&mut self, name: &str) -> Value {
        if let Some(i) = self.events.iter().position(|(n, _)| n == name) {
            return self.events.remove(i).1;
        }
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let packet = self
                .next_packet(remaining)
                .unwrap_or_else(|| panic!("no {name:?} event within {IO_TIMEOUT:?}"));
            assert_eq!(packet.kind, 2, "waiting for {name:?}, got {packet:?}");
            let (event, arg) = event_parts(&packet);
            if event == name {
                return arg;
            }
            self.events.push((event, arg));
        }
    }

    fn keep_event(&mut self, packet: SioPacket) {
        let (name, arg) = event_parts(&packet);
        self.events.push((name, arg));
    }

    /// Join `book` as `user`; asserts success and returns the history it was sent.
    pub fn join(&mut self, book: u64, user: &str) -> Value {
        let id = self.emit_with_ack(
            "joinRoom",
            &json!({ "bookId": book, "userId": user, "username": user }),
        );
        let ack = self.expect_ack(id);
        assert_eq!(ack["ok"], true, "{ack}");
        assert_eq!(ack["room"], format!("book_{book}"));
        // The joiner is listed first among the room's readers (docs/API.md, "Who is here").
        assert_eq!(
            ack["members"][0],
            json!({ "userId": user, "username": user })
        );
        assert!(ack["memberCount"].as_u64() >= Some(1), "{ack}");
        self.expect_event("previousMessages")
    }

    /// Assert nothing but `newMessage` events (kept in `events`) arrives for `duration`.
    pub fn expect_silence_except_messages(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while let Some(packet) =
            self.next_packet(deadline.saturating_duration_since(Instant::now()))
        {
            let (name, _) = if packet.kind == 2 {
                event_parts(&packet)
            } else {
                panic!("expected silence, got {packet:?}")
            };
            assert_eq!(name, "newMessage", "expected silence, got {packet:?}");
            self.keep_event(packet);
        }
    }

    /// Write several Socket.IO packets in one go (one TCP write, so the server reads them
    /// together).
    pub fn send_batch(&mut self, texts: &[String]) {
        let mut bytes = Vec::new();
        for text in texts {
            bytes.extend(raw_frame(1, text.as_bytes(), true));
        }
        ws_write_raw(&mut self.ws, &bytes);
    }

    /// Emit `event` with `payload` and a fresh ack id, as text (for [`Self::send_batch`]).
    pub fn ack_packet(&mut self, event: &str, payload: &Value) -> (u64, String) {
        let id = self.next_ack;
        self.next_ack += 1;
        (id, format!("42{id}{}", json!([event, payload])))
    }

    /// Assert nothing but pings arrives for `duration` (the connection stays open).
    pub fn expect_silence(&mut self, duration: Duration) {
        if let Some(packet) = self.next_packet(duration) {
            panic!("expected silence, got {packet:?}");
        }
    }
}

/// An EVENT packet's name and first argument.
pub fn event_parts(packet: &SioPacket) -> (String, Value) {
    let args = packet.data.as_array().expect("EVENT data is an array");
    let name = args
        .first()
        .and_then(Value::as_str)
        .expect("event name")
        .to_owned();
    (name, args.get(1).cloned().unwrap_or(Value::Null))
}

/// The next text frame, pings answered; panics on anything else.
pub fn expect_text(ws: &mut Ws, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match ws_recv(ws, remaining) {
            WsEvent::Text(text) if text == "2" => ws_send_text(ws, "3"),
            WsEvent::Text(text) => return text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// A WebSocket session connected to `/` (its CONNECT answered); a raw socket for hostile use.
pub fn connected_ws(addr: SocketAddr) -> Ws {
    ChatClient::connect(addr).ws
}

/// How a hostile WebSocket ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WsEnd {
    /// The server closed it: its close frame (status code, reason; `None` for a TCP close
    /// without one) and the text frames it sent first (pings left out).
    Closed {
        frame: Option<(u16, String)>,
        seen: Vec<String>,
    },
    /// Still open after the wait; the text frames seen.
    Open(Vec<String>),
}

/// Read until the server closes the socket or `timeout` passes; pings are answered only when
/// `answer_pings` (leave them unanswered only where the heartbeat is what the case tests).
pub fn ws_outcome(ws: &mut Ws, timeout: Duration, answer_pings: bool) -> WsEnd {
    let texts = |events: Vec<WsEvent>| -> Vec<String> {
        events
            .into_iter()
            .map(|e| match e {
                WsEvent::Text(text) => text,
                WsEvent::Binary(data) => format!("<binary {} bytes>", data.len()),
                other => format!("{other:?}"),
            })
            .collect()
    };
    match ws_watch(ws, timeout, answer_pings) {
        Ok(closed) => WsEnd::Closed {
            frame: closed.frame,
            seen: texts(closed.seen),
        },
        Err(seen) => WsEnd::Open(texts(seen)),
    }
}

/// Assert the server closes `ws` within `timeout` with a close frame of status `code` whose
/// reason starts with `reason`, sending nothing but an Engine.IO close `1` before; pings are
/// answered meanwhile, so the heartbeat cannot be what closed it. `what` names the case.
pub fn assert_closed(ws: &mut Ws, timeout: Duration, code: u16, reason: &str, what: &str) {
    match ws_outcome(ws, timeout, true) {
        WsEnd::Closed {
            frame: Some((got, text)),
            seen,
        } if got == code && text.starts_with(reason) && seen.iter().all(|t| t == "1") => {}
        other => panic!("{what}: expected a close {code} {reason:?}..., got {other:?}"),
    }
}

/// A masked client WebSocket frame (`opcode` 1 text, 2 binary, 9 ping...), FIN set unless
/// `more` follows.
pub fn raw_frame(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | (opcode & 0x0f)];
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Write raw bytes under the WebSocket (bypassing tungstenite's checks).
pub fn ws_write_raw(ws: &mut Ws, bytes: &[u8]) {
    ws.get_mut()
        .write_all(bytes)
        .expect("write raw frame bytes");
}
