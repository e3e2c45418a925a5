//! A deterministic test pair: one [`Endpoint`] and in-memory client connections on a virtual
//! clock, after quinn-proto's test `Pair`.
//!
//! The pair plays the shard's part without sockets: it frames the bytes a client "sends"
//! into request heads (the same `http::parse_head` the shard uses), hands whole WebSocket
//! messages to the endpoint, and records every transmit per connection for the test to read
//! (HTTP answers parsed, WebSocket frames as they were sent, closes with their codes). Time
//! moves only when the test says ([`Pair::advance`]), and ids come from a fixed seed, so a
//! scenario of minutes of protocol time runs in microseconds and the same way every run.
//!
//! It also checks what the I/O layer relies on and records every breach in
//! [`Pair::violations`] (dropping a pair that has one panics, so every test and the fuzz
//! target `endpoint` check them): every HTTP answer parses and its `Content-Length` is its
//! body; a request is answered, parked, handed off or waiting for its body once
//! `handle_request` returns, and answered at most once; nothing is sent to a connection that
//! is closed or on the wrong protocol; close codes are ones the server sends; no hand-off or
//! peer message to its own shard; a deadline, once run, passes; and, after every call, the
//! endpoint's links are exactly the connections its sessions hold
//! ([`Endpoint::check_links`]).
//!
//! It checks protocol logic only: what the bytes on a real socket look like (framing,
//! partial writes, lingering closes) is proven by the over-the-wire tests. Must never sleep
//! or read the clock after it was made.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::io::{status, ConnId, Event, PeerMessage, RequestOutcome, Transmit, WsClose, WsMessage};
use super::Endpoint;
use crate::config::ServerConfig;
use crate::engineio::packet::Frame;
use crate::engineio::session::CloseReason;
use crate::engineio::sid::IdSource;
use crate::http::{parse_head, HeadLimits};
use crate::metrics::Metrics;
use crate::socketio::Handler;

/// An HTTP answer as the client read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the pair reads a client connection now (what the shard's `Mode` is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Http,
    /// A GET held by the endpoint.
    Parked,
    WebSocket,
    /// The endpoint asked for the close (after an answer without keep-alive, or a close
    /// frame), or the client closed it.
    Closed,
}

/// One client connection as the pair keeps it.
#[derive(Debug)]
struct Conn {
    state: ConnState,
    opened_at: Instant,
    /// Bytes the client sent that no request has taken yet.
    input: Vec<u8>,
    answers: VecDeque<HttpAnswer>,
    frames: VecDeque<Frame>,
    close: Option<WsClose>,
    handed_to: Option<usize>,
    /// A request was given to the endpoint and not answered yet.
    awaiting: bool,
}

/// The endpoint of shard 0 of `shards`, its clients and its clock.
pub struct Pair<H: Handler> {
    pub endpoint: Endpoint<H>,
    config: Arc<ServerConfig>,
    now: Instant,
    limits: HeadLimits,
    conns: HashMap<ConnId, Conn>,
    next_conn: usize,
    /// Messages the endpoint sent other shards, oldest first.
    pub peer_messages: Vec<(usize, PeerMessage<H::Forward>)>,
    /// Breaches of what the I/O layer relies on, in the order seen (see the module doc).
    violations: Vec<String>,
}

impl<H: Handler> Pair<H> {
    /// A pair for `handler` with `config` (one shard).
    pub fn new(config: ServerConfig, handler: H) -> Self {
        Self::with_shards(config, handler, 1)
    }

    /// A pair whose endpoint is shard 0 of `shards` (requests for sids of other shards are
    /// handed off; broadcasts are sent to peers as well).
    pub fn with_shards(config: ServerConfig, handler: H, shards: usize) -> Self {
        let now = Instant::now();
        let limits = HeadLimits {
            max_head_bytes: config.max_head_bytes,
            max_headers: config.max_headers,
        };
        let config = Arc::new(config);
        let endpoint = Endpoint::new(
            0,
            shards.max(1),
            Arc::clone(&config),
            Arc::new(handler),
            Metrics::new(shards.max(1)),
            IdSource::seeded(0x5eed),
            now,
        );
        Pair {
            endpoint,
            config,
            now,
            limits,
            conns: HashMap::new(),
            next_conn: 0,
            peer_messages: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Open a client connection.
    pub fn connect(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                state: ConnState::Http,
                opened_at: self.now,
                input: Vec::new(),
                answers: VecDeque::new(),
                frames: VecDeque::new(),
                close: None,
                handed_to: None,
                awaiting: false,
            },
        );
        id
    }

    /// The client sends `bytes` (one or more requests, or part of one) on an HTTP
    /// connection; every complete request is handled.
    pub fn send(&mut self, conn: ConnId, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.input.extend_from_slice(bytes);
        }
        self.read_requests(conn);
    }

    /// Open a connection and send one request on it.
    pub fn request(&mut self, bytes: &[u8]) -> ConnId {
        let conn = self.connect();
        self.send(conn, bytes);
        conn
    }

    /// The client sends one WebSocket message.
    pub fn ws_send(&mut self, conn: ConnId, message: WsMessage<'_>) {
        if self.state(conn) == Some(ConnState::WebSocket) {
            self.endpoint.handle_ws_message(self.now, conn, message);
            self.drain();
        }
    }

    /// The client sends a WebSocket text message.
    pub fn ws_text(&mut self, conn: ConnId, text: &str) {
        self.ws_send(conn, WsMessage::Text(text));
    }

    /// The client (or the network) closes a connection.
    pub fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.state = ConnState::Closed;
        }
        self.endpoint
            .handle_conn_closed(self.now, conn, CloseReason::TransportClose);
        self.drain();
    }

    /// Let `by` pass: every deadline on the way runs at its time, then a loop turn ends.
    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        // Each round runs at least one deadline; the bound only stops a deadline that never
        // passes (a violation).
        let mut rounds = 0;
        while let Some(at) = self.endpoint.poll_timeout() {
            if at > until {
                break;
            }
            rounds += 1;
            if rounds > MAX_ROUNDS {
                self.violations
                    .push(format!("a deadline never passes: {at:?} at {:?}", self.now));
                break;
            }
            self.now = self.now.max(at);
            self.endpoint.handle_timeout(self.now);
            self.endpoint.handle_turn_end(self.now);
            self.drain();
        }
        self.now = until;
        self.endpoint.handle_timeout(self.now);
        self.turn_end();
    }

    /// The server shuts down ([`Endpoint::close_all`]).
    pub fn shutdown(&mut self) {
        self.endpoint.close_all(self.now);
        self.drain();
    }

    /// End a loop turn (the application commits what it gathered).
    pub fn turn_end(&mut self) {
        self.endpoint.handle_turn_end(self.now);
        self.drain();
    }

    /// How a connection is read now.
    pub fn state(&self, conn: ConnId) -> Option<ConnState> {
        self.conns.get(&conn).map(|c| c.state)
    }

    /// The oldest HTTP answer not taken yet.
    pub fn take_answer(&mut self, conn: ConnId) -> Option<HttpAnswer> {
        self.conns.get_mut(&conn)?.answers.pop_front()
    }

    /// Every WebSocket frame sent and not taken yet, oldest first.
    pub fn take_frames(&mut self, conn: ConnId) -> Vec<Frame> {
        self.conns
            .get_mut(&conn)
            .map(|c| c.frames.drain(..).collect())
            .unwrap_or_default()
    }

    /// The text frames sent and not taken yet, as text (binary frames are dropped).
    pub fn take_texts(&mut self, conn: ConnId) -> Vec<String> {
        self.take_frames(conn)
            .into_iter()
            .filter_map(|frame| match frame {
                Frame::Text(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                Frame::Binary(_) => None,
            })
            .collect()
    }

    /// The close frame the endpoint asked for, if any.
    pub fn ws_close(&self, conn: ConnId) -> Option<&WsClose> {
        self.conns.get(&conn)?.close.as_ref()
    }

    /// Every breach of what the I/O layer relies on seen so far (see the module doc).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// The shard a connection was handed to, if it was.
    pub fn handed_to(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(&conn)?.handed_to
    }

    fn read_requests(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get(&conn) else {
                return;
            };
            if c.state != ConnState::Http {
                return;
            }
            let head = match parse_head(&c.input, &self.limits) {
                Ok(Some(head)) => head,
                Ok(None) | Err(_) => return,
            };
            let after = c.input.get(head.head_len..).unwrap_or_default().to_vec();
            let opened_at = c.opened_at;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.awaiting = true;
            }
            match self
                .endpoint
                .handle_request(self.now, conn, opened_at, &head, &after)
            {
                RequestOutcome::Done { consumed } => {
                    if consumed < head.head_len || consumed > head.head_len + after.len() {
                        self.violations.push(format!(
                            "{conn:?}: consumed {consumed} of a {}-byte head and {} more",
                            head.head_len,
                            after.len()
                        ));
                    }
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.input.drain(..consumed.min(c.input.len()));
                    }
                    self.drain();
                    if let Some(c) = self.conns.get(&conn) {
                        if c.awaiting && c.state == ConnState::Http {
                            self.violations
                                .push(format!("{conn:?}: a request neither answered nor parked"));
                        }
                    }
                }
                RequestOutcome::NeedMore => return,
                RequestOutcome::HandOff { shard } => {
                    if shard == self.endpoint.index() {
                        self.violations
                            .push(format!("{conn:?}: handed off to its own shard"));
                    }
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.handed_to = Some(shard);
                        c.state = ConnState::Closed;
                        c.awaiting = false;
                    }
                    return;
                }
            }
        }
    }

    /// Carry out every transmit and record every peer message, like the shard does.
    fn drain(&mut self) {
        let mut read_on = Vec::new();
        while let Some(transmit) = self.endpoint.poll_transmit() {
            let conn = transmit_conn(&transmit);
            let Some(c) = self.conns.get_mut(&conn) else {
                self.violations
                    .push(format!("{conn:?}: a transmit for an unknown connection"));
                continue;
            };
            let wrong = |what: &str, c: &Conn| format!("{conn:?}: {what} while {:?}", c.state);
            match transmit {
                Transmit::Http {
                    bytes, keep_alive, ..
                } => {
                    if !c.awaiting || matches!(c.state, ConnState::WebSocket | ConnState::Closed) {
                        self.violations
                            .push(wrong("an HTTP answer nobody asked for", c));
                        continue;
                    }
                    match parse_answer(&bytes) {
                        Ok(answer) => c.answers.push_back(answer),
                        Err(e) => self.violations.push(format!("{conn:?}: {e}")),
                    }
                    c.awaiting = false;
                    let was_parked = c.state == ConnState::Parked;
                    if !keep_alive {
                        c.state = ConnState::Closed;
                    } else if was_parked {
                        c.state = ConnState::Http;
                        read_on.push(conn);
                    }
                }
                Transmit::Park { .. } => {
                    if !c.awaiting || c.state != ConnState::Http {
                        self.violations.push(wrong("a park", c));
                    }
                    c.state = ConnState::Parked;
                }
                Transmit::AcceptWebSocket { accept, .. } => {
                    if !c.awaiting || c.state != ConnState::Http {
                        self.violations.push(wrong("a WebSocket accept", c));
                        continue;
                    }
                    match parse_answer(&accept) {
                        Ok(answer) if answer.status == 101 => c.answers.push_back(answer),
                        Ok(answer) => self
                            .violations
                            .push(format!("{conn:?}: accepted with {}", answer.status)),
                        Err(e) => self.violations.push(format!("{conn:?}: {e}")),
                    }
                    c.awaiting = false;
                    c.state = ConnState::WebSocket;
                }
                Transmit::Frames { frames, .. } => {
                    if c.state != ConnState::WebSocket {
                        self.violations.push(wrong("frames", c));
                        continue;
                    }
                    c.frames.extend(frames.as_slice().iter().cloned());
                }
                Transmit::CloseWebSocket { close, .. } => {
                    if c.state == ConnState::Closed {
                        self.violations.push(wrong("a close", c));
                    }
                    if !SENT_CLOSE_CODES.contains(&close.code) {
                        self.violations
                            .push(format!("{conn:?}: close code {}", close.code));
                    }
                    if c.state == ConnState::WebSocket {
                        c.close = Some(close);
                    }
                    c.state = ConnState::Closed;
                }
            }
        }
        while let Some(Event::ToPeer { shard, message }) = self.endpoint.poll_event() {
            if shard == self.endpoint.index() {
                self.violations.push("a message to its own shard".into());
            }
            self.peer_messages.push((shard, message));
        }
        for conn in read_on {
            self.read_requests(conn);
        }
        let breaches = self.endpoint.check_links();
        self.violations.extend(breaches);
    }
}

/// Most deadline rounds one [`Pair::advance`] runs before it calls the deadline stuck.
const MAX_ROUNDS: usize = 10_000;

/// The close codes the server sends (`super::io::status`).
const SENT_CLOSE_CODES: [u16; 6] = [
    status::NORMAL,
    status::GOING_AWAY,
    status::PROTOCOL_ERROR,
    status::INVALID_DATA,
    status::POLICY,
    status::TOO_BIG,
];

fn transmit_conn(transmit: &Transmit) -> ConnId {
    match transmit {
        Transmit::Http { conn, .. }
        | Transmit::Park { conn }
        | Transmit::AcceptWebSocket { conn, .. }
        | Transmit::Frames { conn, .. }
        | Transmit::CloseWebSocket { conn, .. } => *conn,
    }
}

/// Parse one HTTP answer: a complete head, then exactly `Content-Length` bytes of body (none
/// without the header, as for a 101 or a 204).
fn parse_answer(bytes: &[u8]) -> Result<HttpAnswer, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err("an incomplete HTTP answer".into()),
        Err(e) => return Err(format!("a malformed HTTP answer: {e}")),
    };
    let status = response.code.ok_or("an answer without a status")?;
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let body = bytes.get(head_len..).unwrap_or_default().to_vec();
    let answer = HttpAnswer {
        status,
        headers,
        body,
    };
    let length = match answer.header("content-length") {
        Some(value) => value
            .parse::<usize>()
            .map_err(|_| format!("Content-Length {value:?}"))?,
        None => 0,
    };
    if length != answer.body.len() {
        return Err(format!(
            "Content-Length {length} for a {}-byte body",
            answer.body.len()
        ));
    }
    Ok(answer)
}

/// A pair that saw a violation fails the test (or fuzz run) that drops it, so every scenario
/// checks the module doc's rules without asking.
impl<H: Handler> Drop for Pair<H> {
    // The Pair is a test instrument, never part of a server: a breach fails the test or fuzz
    // run by panicking, the way assertions do.
    #[allow(clippy::panic)]
    fn drop(&mut self) {
        if !std::thread::panicking() && !self.violations.is_empty() {
            panic!("the endpoint broke the I/O contract: {:?}", self.violations);
        }
    }
}
