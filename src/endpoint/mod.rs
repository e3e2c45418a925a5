//! The sans-IO protocol endpoint of one shard: every Engine.IO and Socket.IO decision.
//!
//! Modelled on quinn-proto's `Endpoint`: the endpoint owns the session table (Engine.IO
//! sessions, their Socket.IO state, which connection carries what, rooms, session timers and
//! the application's shard state) and decides everything the protocols decide — the
//! handshake checks, both transports and the upgrade, heartbeats, the connect timeout,
//! namespaces, acks, the HTTP answers, and which shard a request belongs to. It reads no clock
//! (every call is given `now`), opens no socket, spawns nothing and knows no mio; session and
//! socket ids come from the [`IdSource`] it is given. The I/O around it — the shard in
//! `crate::server`, or [`pair::Pair`] in tests — feeds it events and carries out what it
//! returns.
//!
//! # Call order
//!
//! 1. Feed one event: [`Endpoint::handle_request`] (a parsed request head and the bytes
//!    after it), [`Endpoint::handle_ws_message`] (one WebSocket message),
//!    [`Endpoint::handle_conn_closed`] (the I/O closed a connection on its own),
//!    [`Endpoint::handle_peer`] (a message from another shard), [`Endpoint::handle_timeout`]
//!    (once `now` reaches [`Endpoint::poll_timeout`]), [`Endpoint::handle_turn_end`] (once per
//!    loop turn, before writing), [`Endpoint::close_all`] (shutdown).
//! 2. After each call, drain [`Endpoint::poll_transmit`] to `None`, carrying each out in
//!    order, and drain [`Endpoint::poll_event`] (messages for other shards).
//! 3. Sleep no later than [`Endpoint::poll_timeout`].
//!
//! Must never read the clock, touch a socket, block, or panic on anything a client sent.

mod app;
pub mod io;
mod links;
pub mod pair;
mod request;
pub mod rooms;
mod sessions;
pub mod timers;
mod websocket;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use slab::Slab;

use crate::config::ServerConfig;
use crate::engineio::session::{CloseReason, SessionConfig, TIMER_SLACK};
use crate::engineio::sid::{IdSource, Sid};
use crate::http::Cors;
use crate::metrics::Metrics;
use crate::socketio::Handler;
pub use io::{
    status, Broadcast, ConnId, Event, Frames, PeerMessage, RequestOutcome, Transmit, WsClose,
    WsMessage,
};
use links::Link;
use rooms::Rooms;
use sessions::SessionEntry;
use timers::{SessionRef, Timers, TransportDeadlines};

/// Most remembered client closes per shard; beyond it, the oldest are not remembered.
const CLIENT_CLOSED_CAPACITY: usize = 4096;

/// How long after a client's close a GET that was on its way may still arrive.
const CLIENT_CLOSED_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// A broadcast to more of this shard's members than this is a large fan-out: its frames are
/// marked [`Transmit::Frames::fan_out`], which the shard writes after the turn's answers.
pub const SMALL_FANOUT: usize = 16;

/// The endpoint of shard `index` of `shards`.
pub struct Endpoint<H: Handler> {
    index: usize,
    shards: usize,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    cors: Cors,
    metrics: Arc<Metrics>,
    /// The Engine.IO settings every session shares.
    session_config: Arc<SessionConfig>,
    ids: IdSource,
    sessions: Slab<SessionEntry<H::State>>,
    /// Session slab keys by sid.
    by_sid: HashMap<Sid, usize>,
    /// What each connection the endpoint knows carries, for which session.
    links: HashMap<ConnId, Link>,
    /// Polling sessions the client closed with no GET pending, and when. A GET that arrives
    /// just after, on a connection that was already open at the close, was on its way before
    /// it (sent before the close POST, overtaken by it on another connection or shard): it is
    /// the pending GET and gets `6`, once.
    client_closed: HashMap<String, Instant>,
    rooms: Rooms,
    timers: Timers,
    /// Transport closes the application asked for (e.g. at a token's expiry).
    transport_deadlines: TransportDeadlines,
    /// The application's state for this shard.
    app: H::Shard,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event<H::Forward>>,
    /// True while a large fan-out is being delivered: its frames are marked `fan_out`.
    fanning_out: bool,
    /// True while a room broadcast is being delivered: its transmits are marked `broadcast`.
    delivering: bool,
    next_generation: u64,
    shutting_down: bool,
    /// The time of the call being handled.
    now: Instant,
}

impl<H: Handler> Endpoint<H> {
    /// The endpoint of shard `index` of `shards`, counting into `metrics`.
    pub fn new(
        index: usize,
        shards: usize,
        config: Arc<ServerConfig>,
        handler: Arc<H>,
        metrics: Arc<Metrics>,
        ids: IdSource,
        now: Instant,
    ) -> Self {
        Endpoint {
            index,
            shards,
            cors: Cors::new(config.cors.clone(), config.cors_credentials),
            session_config: Arc::new(SessionConfig {
                ping_interval: config.ping_interval,
                ping_timeout: config.ping_timeout,
                upgrade_timeout: config.upgrade_timeout,
                max_payload: config.max_payload,
            }),
            config,
            handler,
            metrics,
            ids,
            sessions: Slab::new(),
            by_sid: HashMap::new(),
            links: HashMap::new(),
            client_closed: HashMap::new(),
            rooms: Rooms::default(),
            timers: Timers::default(),
            transport_deadlines: TransportDeadlines::default(),
            app: H::Shard::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            fanning_out: false,
            delivering: false,
            next_generation: 1,
            shutting_down: false,
            now,
        }
    }

    /// The next thing the I/O layer must do for a connection, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next message for another shard.
    pub fn poll_event(&mut self) -> Option<Event<H::Forward>> {
        self.events.pop_front()
    }

    /// The earliest instant [`Endpoint::handle_timeout`] has work (a session's heartbeat,
    /// upgrade or connect deadline, a transport close the application asked for, or work the
    /// application deferred). Stale entries may wake the caller early; that is harmless.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = match (self.timers.next(), self.transport_deadlines.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.handler.next_wake(&self.app) {
            Some(app) => Some(next.map_or(app, |n| n.min(app))),
            None => next,
        }
    }

    /// Run every session deadline due at `now` (within [`TIMER_SLACK`]: the caller sleeps in
    /// whole milliseconds and must not oversleep a deadline).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let due = now + TIMER_SLACK;
        while let Some((at, session)) = self.timers.pop_due(due) {
            self.on_session_timer(session, at, due);
        }
        self.close_due_transports(due);
    }

    /// The end of a loop turn, before output is written: the application commits what it
    /// gathered (see [`Handler::on_turn_end`]).
    pub fn handle_turn_end(&mut self, now: Instant) {
        self.now = now;
        self.app_turn_end();
    }

    /// A message from another shard.
    pub fn handle_peer(&mut self, now: Instant, message: PeerMessage<H::Forward>) {
        self.now = now;
        match message {
            PeerMessage::Broadcast(broadcast) => {
                let except = broadcast
                    .except
                    .and_then(|(shard, session)| (shard == self.index).then_some(session));
                self.deliver_local(
                    &broadcast.nsp,
                    &broadcast.room,
                    &broadcast.frames,
                    except,
                    broadcast.seq,
                );
            }
            PeerMessage::EmitTo {
                session,
                nsp,
                frames,
            } => self.emit_local(session, &nsp, &frames),
            PeerMessage::Forward(message) => self.app_forward(message),
            PeerMessage::ToSocket {
                session,
                nsp,
                message,
            } => self.app_to_socket(session, &nsp, message),
        }
    }

    /// The I/O layer closed `conn` on its own (the peer went away, a write failed, a reader
    /// fell too far behind, a WebSocket protocol error): what it carried ends with `reason`
    /// (a WebSocket's session closes; a parked GET's session ends; an upgrade probe's attempt
    /// is abandoned). A connection the endpoint does not know is ignored.
    pub fn handle_conn_closed(&mut self, now: Instant, conn: ConnId, reason: CloseReason) {
        self.now = now;
        let Some(link) = self.unlink(conn) else {
            return;
        };
        self.on_link_closed(link, reason);
    }

    /// Shutdown: close every session with an Engine.IO close (WebSockets with 1001).
    pub fn close_all(&mut self, now: Instant) {
        self.now = now;
        self.shutting_down = true;
        let sessions: Vec<SessionRef> = self
            .sessions
            .iter()
            .map(|(key, s)| SessionRef {
                key,
                generation: s.generation,
            })
            .collect();
        for session in sessions {
            self.close_session(session, CloseReason::ServerClose);
        }
    }

    /// Sessions open on this shard.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Rooms with at least one member on this shard.
    pub fn room_count(&self) -> usize {
        self.rooms.count()
    }

    /// This shard's index.
    pub fn index(&self) -> usize {
        self.index
    }

    fn next_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Remember that the client closed polling session `sid` while no GET was pending.
    fn remember_client_closed(&mut self, sid: String) {
        let now = self.now;
        if self.client_closed.len() >= CLIENT_CLOSED_CAPACITY {
            self.client_closed
                .retain(|_, closed| now.saturating_duration_since(*closed) < CLIENT_CLOSED_GRACE);
        }
        if self.client_closed.len() < CLIENT_CLOSED_CAPACITY {
            self.client_closed.insert(sid, now);
        }
    }

    /// Whether a GET for `sid` on a connection opened at `opened_at` is the pending GET of a
    /// session its client just closed (see `client_closed`). Answers true at most once.
    fn was_pending_at_client_close(&mut self, sid: &str, opened_at: Instant) -> bool {
        let now = self.now;
        self.client_closed.remove(sid).is_some_and(|closed| {
            opened_at <= closed && now.saturating_duration_since(closed) < CLIENT_CLOSED_GRACE
        })
    }

    fn send_peer(&mut self, shard: usize, message: PeerMessage<H::Forward>) {
        self.events.push_back(Event::ToPeer { shard, message });
    }
}
