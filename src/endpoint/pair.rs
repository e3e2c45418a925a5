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
//! It checks protocol logic only: what the bytes on a real socket look like (framing,
//! partial writes, lingering closes) is proven by the over-the-wire tests. Must never sleep
//! or read the clock after it was made.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::io::{ConnId, Event, PeerMessage, RequestOutcome, Transmit, WsClose, WsMessage};
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
        // Each round runs at least one deadline; the bound only stops an application whose
        // wake-up never passes.
        for _ in 0..1_000_000 {
            let Some(at) = self.endpoint.poll_timeout() else {
                break;
            };
            if at > until {
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
            match self
                .endpoint
                .handle_request(self.now, conn, opened_at, &head, &after)
            {
                RequestOutcome::Done { consumed } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.input.drain(..consumed.min(c.input.len()));
                    }
                    self.drain();
                }
                RequestOutcome::NeedMore => return,
                RequestOutcome::HandOff { shard } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.handed_to = Some(shard);
                        c.state = ConnState::Closed;
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
            match transmit {
                Transmit::Http {
                    conn,
                    bytes,
                    keep_alive,
                } => {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    if let Some(answer) = parse_answer(&bytes) {
                        c.answers.push_back(answer);
                    }
                    let was_parked = c.state == ConnState::Parked;
                    if !keep_alive {
                        c.state = ConnState::Closed;
                    } else if was_parked {
                        c.state = ConnState::Http;
                        read_on.push(conn);
                    }
                }
                Transmit::Park { conn } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.state = ConnState::Parked;
                    }
                }
                Transmit::AcceptWebSocket { conn, accept } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        if let Some(answer) = parse_answer(&accept) {
                            c.answers.push_back(answer);
                        }
                        c.state = ConnState::WebSocket;
                    }
                }
                Transmit::Frames { conn, frames, .. } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        if c.state == ConnState::WebSocket {
                            c.frames.extend(frames.as_slice().iter().cloned());
                        }
                    }
                }
                Transmit::CloseWebSocket { conn, close } => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        if c.state == ConnState::WebSocket {
                            c.close = Some(close);
                        }
                        c.state = ConnState::Closed;
                    }
                }
            }
        }
        while let Some(Event::ToPeer { shard, message }) = self.endpoint.poll_event() {
            self.peer_messages.push((shard, message));
        }
        for conn in read_on {
            self.read_requests(conn);
        }
    }
}

/// Parse one HTTP answer (head and `Content-Length` body).
fn parse_answer(bytes: &[u8]) -> Option<HttpAnswer> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(bytes).ok()? else {
        return None;
    };
    let status = response.code?;
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
    Some(HttpAnswer {
        status,
        headers,
        body,
    })
}
