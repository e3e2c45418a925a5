//! One shard: a mio event loop thread that owns its connections, sessions, rooms and timers.
//!
//! The loop: wait for readiness, the earliest deadline or a wake from another shard; accept;
//! read and process each ready connection; run due timers; read the bus; then wake the shards
//! the turn sent messages to (they write their part of a broadcast meanwhile) and flush the
//! connections that got output (one write per connection, however many frames it got).
//!
//! Output is written in two classes. Answers to one connection (acks, emits, HTTP answers,
//! pongs) and small broadcasts are written first, all of them, every turn. Connections that
//! got output from a large room fan-out are written after them, in order, for at most
//! [`WRITE_BUDGET`] per turn; the rest wait for the next turn, which polls without sleeping
//! and so reads what arrived meanwhile before writing more. So an ack or a small room's
//! message never waits behind a thousand writes of someone else's fan-out, and a long
//! fan-out does not keep a shard from reading.
//!
//! With `--write-delay` set, broadcast output (either class) for a connection with nothing
//! queued waits up to that delay first, so the frames of several broadcasts to it coalesce
//! into one write (`write_delay.rs`); answers to the connection itself never wait, and take
//! whatever waits for it along.
//!
//! Follows mio's rules: drain readiness to `WouldBlock`, retry on `Interrupted`, ignore
//! unknown tokens, ask for WRITABLE only while output is queued, never reuse a token during
//! the turn that freed it, back off on EMFILE.
//!
//! HTTP routing and the transports are in `transport.rs`; session bookkeeping and the
//! Socket.IO glue in `sessions.rs`.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::admission::{Admission, Admitted, Attribution, Refusal};
use super::bus::{BusMessage, Inbox, Peers};
use super::conn::{Carrying, Conn, ReadEnd};
use super::ops::Ops;
use super::proxy::ProxyHeader;
use super::rooms::Rooms;
use super::sessions::SessionEntry;
use super::timers::{SessionRef, Timers};
use super::ws::{self, WsClose};
use crate::config::ServerConfig;
use crate::engineio::session::{CloseReason, TIMER_SLACK};
use crate::http::Cors;
use crate::socketio::Handler;

pub const LISTENER: Token = Token(usize::MAX - 1);
pub const WAKER: Token = Token(usize::MAX - 2);
/// The write delay's timer (`write_delay.rs`).
pub const WRITE_TIMER: Token = Token(usize::MAX - 3);

/// How long to stop accepting after the process runs out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long after a client's close a GET that was on its way may still arrive.
const CLIENT_CLOSED_GRACE: Duration = Duration::from_millis(100);

/// Most remembered client closes per shard; beyond it, the oldest are not remembered.
const CLIENT_CLOSED_CAPACITY: usize = 4096;

/// Events handled per `poll` call.
const EVENTS_CAPACITY: usize = 1024;

/// How long a WebSocket the server closes may take to write its close frame (and what was
/// queued before it) before the TCP connection is closed regardless.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Longest a shutting-down shard waits for its peers' rounds (`shutdown.rs`) before it
/// closes its sessions regardless; with the two seconds of writing after, the exit stays
/// within 5 s.
const PEERS_LIMIT: Duration = Duration::from_millis(1500);

/// At shutdown, how long a connection that was sent its close may take to end its side
/// before it is closed anyway (see [`Shard::start_lingering_close`]).
const SHUTDOWN_DRAIN: Duration = Duration::from_millis(250);

/// Bytes read from one connection per readiness before the others get their turn.
const READ_BUDGET: usize = 256 * 1024;

/// How long one turn writes large fan-outs before it reads again. A write of one frame to a
/// loopback or LAN socket costs the shard 3–5 µs of kernel time, so this is some 100–150
/// writes: a turn's reads wait at most about this long behind fan-out writes. Shorter costs
/// fan-out throughput (each extra turn is a poll and its bookkeeping; at 200 µs, rooms of 250
/// lost about 5% of their deliveries per CPU-second in BENCHMARKS.md's comparison).
const WRITE_BUDGET: Duration = Duration::from_micros(500);

/// Fan-out writes between two looks at the clock.
const WRITES_PER_CLOCK_CHECK: usize = 8;

/// A broadcast to more of this shard's members than this is a large fan-out: its connections
/// are written after the turn's other output, within [`WRITE_BUDGET`].
pub const SMALL_FANOUT: usize = 16;

pub struct Shard<H: Handler> {
    pub index: usize,
    pub config: Arc<ServerConfig>,
    pub handler: Arc<H>,
    pub cors: Cors,
    pub poll: Poll,
    listener: Option<TcpListener>,
    pub conns: Slab<Conn>,
    pub sessions: Slab<SessionEntry<H::State>>,
    /// Session slab keys by sid.
    pub by_sid: HashMap<crate::engineio::sid::Sid, usize>,
    /// The Engine.IO settings every session of this shard shares (made on first use).
    pub session_config: Option<Arc<crate::engineio::session::SessionConfig>>,
    /// Polling sessions the client closed with no GET pending, and when. A GET that arrives
    /// just after, on a connection that was already open at the close, was on its way before
    /// it (sent before the close POST, overtaken by it on another connection or shard): it is
    /// the pending GET and gets `6`, once.
    client_closed: HashMap<String, Instant>,
    pub rooms: Rooms,
    pub timers: Timers,
    /// When each awaited HTTP request must be complete, and its connection, in deadline order
    /// (one fixed timeout, so pushing at the back keeps the order). At most one entry per
    /// connection (its `queued_deadline`): a keep-alive connection serving many requests
    /// moves its `request_deadline` on and is re-queued when its entry surfaces, so the queue
    /// never grows with the request rate. Entries that match no connection's
    /// `queued_deadline` are stale and skipped.
    pub request_deadlines: VecDeque<(Instant, usize)>,
    /// When each closing WebSocket must be gone ([`CLOSE_LINGER`] after its close began, so
    /// pushing at the back keeps the order), and its connection; stale entries (matching no
    /// connection's `close_by`) are skipped.
    close_deadlines: VecDeque<(Instant, usize)>,
    /// Connections that used their read budget and may have more input waiting.
    read_again: Vec<usize>,
    pub peers: Peers<H::Forward>,
    inbox: Inbox<H::Forward>,
    /// The server-wide connection counts (total and per client IP).
    admission: Arc<Admission>,
    /// Metrics and the routes beside Engine.IO.
    pub ops: Ops,
    /// The application's state for this shard.
    pub app: H::Shard,
    /// Connections with output to write at the end of this turn, all of them (answers, small
    /// broadcasts).
    pub dirty: Vec<usize>,
    /// Connections with output from large fan-outs, written after `dirty`, oldest first, for
    /// at most [`WRITE_BUDGET`] per turn. May hold keys already written through `dirty` or
    /// freed since: an entry whose connection is not `dirty` is skipped.
    bulk: VecDeque<usize>,
    /// True while a large fan-out is being delivered: output marked now goes to `bulk`.
    pub fanning_out: bool,
    /// True while a broadcast (of any size) is being delivered: output marked now may wait
    /// up to `--write-delay` (see [`Shard::mark_dirty`]).
    pub delivering: bool,
    /// Connections whose broadcast output waits (`--write-delay`), and its timer.
    write_delays: super::write_delay::WriteDelays,
    /// Connections closed this turn; their slab slots are freed at the end of it.
    closed: Vec<usize>,
    /// Shards sent bus messages this turn, to wake once each.
    pub to_wake: Vec<bool>,
    next_generation: u64,
    accept_paused_until: Option<Instant>,
    shutting_down: bool,
    /// The shutdown markers received from peers (`shutdown.rs`).
    pub shutdown_markers: super::shutdown::Markers,
}

impl<H: Handler> Shard<H> {
    // The shard's parts, each made by `server::start`: a struct for them would only repeat
    // this list.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        config: Arc<ServerConfig>,
        handler: Arc<H>,
        poll: Poll,
        listener: std::net::TcpListener,
        peers: Peers<H::Forward>,
        inbox: Inbox<H::Forward>,
        admission: Arc<Admission>,
        ops: Ops,
    ) -> io::Result<Self> {
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let shard_count = peers.len();
        let write_delays =
            super::write_delay::WriteDelays::new(config.write_delay, poll.registry(), WRITE_TIMER)?;
        Ok(Shard {
            index,
            cors: Cors::new(config.cors.clone(), config.cors_credentials),
            config,
            handler,
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            sessions: Slab::new(),
            by_sid: HashMap::new(),
            session_config: None,
            client_closed: HashMap::new(),
            rooms: Rooms::default(),
            timers: Timers::default(),
            request_deadlines: VecDeque::new(),
            close_deadlines: VecDeque::new(),
            read_again: Vec::new(),
            peers,
            inbox,
            admission,
            ops,
            app: H::Shard::default(),
            dirty: Vec::new(),
            bulk: VecDeque::new(),
            fanning_out: false,
            delivering: false,
            write_delays,
            closed: Vec::new(),
            to_wake: vec![false; shard_count],
            next_generation: 1,
            accept_paused_until: None,
            shutting_down: false,
            shutdown_markers: super::shutdown::Markers::new(shard_count, index),
        })
    }

    /// Remember that the client closed polling session `sid` while no GET was pending.
    pub fn remember_client_closed(&mut self, sid: String) {
        let now = Instant::now();
        if self.client_closed.len() >= CLIENT_CLOSED_CAPACITY {
            self.client_closed
                .retain(|_, closed| now.duration_since(*closed) < CLIENT_CLOSED_GRACE);
        }
        if self.client_closed.len() < CLIENT_CLOSED_CAPACITY {
            self.client_closed.insert(sid, now);
        }
    }

    /// Whether a GET for `sid` on a connection opened at `opened_at` is the pending GET of a
    /// session its client just closed (see `client_closed`). Answers true at most once.
    pub fn was_pending_at_client_close(&mut self, sid: &str, opened_at: Instant) -> bool {
        let now = Instant::now();
        self.client_closed.remove(sid).is_some_and(|closed| {
            opened_at <= closed && now.duration_since(closed) < CLIENT_CLOSED_GRACE
        })
    }

    pub fn next_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Run until shut down.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = if self.read_again.is_empty() && self.bulk.is_empty() {
                let now = Instant::now();
                // Waiting output wakes the shard by its own timer, to the microsecond.
                self.write_delays.arm(now);
                self.poll_timeout(now)
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let woke = Instant::now();
            self.write_delays.begin_turn(woke);
            // Deadlines that passed while the shard slept come first, as in Node's event loop
            // (timers, then I/O): a request arriving after its session's ping timeout finds
            // the session closed, even when the shard wakes late for both.
            self.run_timers(woke);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    WRITE_TIMER => self.write_delays.on_timer(),
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key);
                        }
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.read_again) {
                self.on_readable(key);
            }
            let now = Instant::now();
            if self.accept_paused_until.is_some_and(|until| now >= until) {
                self.accept_paused_until = None;
                self.accept();
            }
            self.run_timers(now);
            if self.read_bus() {
                self.shutdown();
                return Ok(());
            }
            self.end_turn();
            self.record_turn(woke);
        }
    }

    /// How long to sleep: until the earliest deadline less [`TIMER_SLACK`], since epoll
    /// rounds the sleep up to whole milliseconds and a deadline must not be overslept.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let mut next = self.timers.next();
        if let Some(&(at, _)) = self.request_deadlines.front() {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(&(at, _)) = self.close_deadlines.front() {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(until) = self.accept_paused_until {
            next = Some(next.map_or(until, |n| n.min(until)));
        }
        if let Some(at) = self.handler.next_wake(&self.app) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        next.map(|at| at.saturating_duration_since(now + TIMER_SLACK))
    }

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() || self.shutting_down {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => match self.admission.admit(
                    super::proxy::canonical(peer.ip()),
                    super::proxy::is_trusted(&self.config.trusted_proxies, peer.ip()),
                ) {
                    Ok(admitted) => {
                        let _ = stream.set_nodelay(true);
                        self.adopt(stream, Vec::new(), Vec::new(), None, admitted);
                    }
                    Err(refusal) => {
                        log_refusal(refusal, super::proxy::canonical(peer.ip()));
                        // Best effort: a fresh socket's send buffer takes this at once.
                        let _ = std::io::Write::write(&mut stream, refusal.response());
                        let _ = stream.shutdown(std::net::Shutdown::Write);
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_out_of_descriptors(&e) => {
                    // At most one line per shard per backoff period.
                    crate::log_warn!(
                        "accept_paused",
                        shard = self.index,
                        cause = e,
                        pause_ms = ACCEPT_BACKOFF.as_millis(),
                        fix = "raise the file-descriptor limit (LimitNOFILE) or --max-connections"
                    );
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                // ECONNABORTED and friends concern one connection only.
                Err(_) => continue,
            }
        }
    }

    /// Register a stream for reading and keep it with its buffered input and output; `None`
    /// (the stream dropped) when mio refuses it.
    pub(super) fn register_conn(
        &mut self,
        mut stream: TcpStream,
        input: Vec<u8>,
        output: Vec<u8>,
        admitted: Admitted,
    ) -> Option<usize> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
            .ok()?;
        let mut conn = Conn::new(stream, input, admitted);
        conn.buffers.output = output;
        entry.insert(conn);
        Some(key)
    }

    /// Register a connection (accepted here or handed over by another shard) and process the
    /// bytes already read from it.
    pub fn adopt(
        &mut self,
        stream: TcpStream,
        input: Vec<u8>,
        output: Vec<u8>,
        opened_at: Option<Instant>,
        admitted: Admitted,
    ) {
        let has_input = !input.is_empty();
        let has_output = !output.is_empty();
        let Some(key) = self.register_conn(stream, input, output, admitted) else {
            return;
        };
        if let Some(opened_at) = opened_at {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.opened_at = opened_at;
            }
        }
        self.await_request(key);
        if has_output {
            self.mark_dirty(key);
        }
        if has_input {
            self.process_input(key);
        }
        // Bytes may have arrived before registration; reading now is harmless if not.
        self.on_readable(key);
    }

    /// Read what the socket has, processing as it arrives: at most [`READ_BUDGET`] bytes,
    /// then the connection waits for the next turn ([`Shard::read_again`]), so one client
    /// that sends without pause can neither hold the shard in this loop nor make it buffer
    /// without bound while its answers (and everyone else) wait.
    fn on_readable(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|conn| conn.draining) && !self.closed.contains(&key) {
            self.drain_input(key);
            return;
        }
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if self.closed.contains(&key) {
                return;
            }
            if budget == 0 {
                self.read_again.push(key);
                return;
            }
            match conn.read_chunk() {
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.process_input(key);
                    let Some(conn) = self.conns.get_mut(key) else {
                        return;
                    };
                    if conn.close_after_flush {
                        // Answered and closing: nothing it sends now will be read.
                        conn.io().input.clear();
                        return;
                    }
                }
                Err(ReadEnd::WouldBlock) => return,
                Err(ReadEnd::Closed) => {
                    self.close_conn(key, CloseReason::TransportClose);
                    return;
                }
            }
        }
    }

    /// Process buffered input according to what the connection carries.
    pub fn process_input(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if self.closed.contains(&key) {
            return;
        }
        match conn.carrying {
            Carrying::Http if conn.admitted.attribution() == Attribution::AwaitingProxyHeader => {
                if self.read_proxy_header(key) {
                    self.process_http(key);
                }
            }
            Carrying::Http => self.process_http(key),
            Carrying::WebSocket { .. } => self.process_websocket(key),
            // A parked GET's connection sends nothing until answered; keep what arrives
            // (a pipelined request) for then, within the head limit.
            Carrying::ParkedGet { .. } => {
                let limit = self.config.max_head_bytes + self.config.max_payload;
                if let Some(conn) = self.conns.get_mut(key) {
                    if conn.io().input.len() > limit {
                        self.close_conn(key, CloseReason::ProtocolError);
                    }
                }
            }
        }
    }

    /// A trusted proxy's connection before its first request: take a PROXY header (v1 or v2)
    /// off the front of the input and count the connection under the client it names. True
    /// when HTTP may be read next; false while the header is incomplete, or when the
    /// connection was refused (400 for a bad header, 429 over the per-IP cap) and closes.
    fn read_proxy_header(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        match super::proxy::parse_proxy_header(&conn.buffers.input) {
            ProxyHeader::Incomplete => false,
            ProxyHeader::Absent => {
                conn.admitted.await_request();
                true
            }
            ProxyHeader::Found { source, len } => {
                conn.buffers
                    .input
                    .drain(..len.min(conn.buffers.input.len()));
                match source {
                    None => {
                        conn.admitted.await_request();
                        true
                    }
                    Some(client) => match conn.admitted.attribute(client) {
                        Ok(()) => true,
                        Err(refusal) => {
                            self.refuse(key, refusal);
                            false
                        }
                    },
                }
            }
            ProxyHeader::Invalid(why) => {
                conn.buffers.input.clear();
                crate::http::write_plain_error(
                    conn.output(),
                    crate::http::Status::BAD_REQUEST,
                    why,
                    &[],
                    false,
                );
                self.close_after_flush(key);
                false
            }
        }
    }

    /// Answer a connection refused after accept (its client is over the per-IP cap) and
    /// close it once the answer is out.
    pub fn refuse(&mut self, key: usize, refusal: Refusal) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        log_refusal(refusal, conn.admitted.client());
        conn.buffers.input.clear();
        conn.output().extend_from_slice(refusal.response());
        self.close_after_flush(key);
    }

    /// Queue a connection's output for writing at the end of the turn: with the turn's
    /// answers, or with the large fan-outs while [`Shard::fanning_out`] is set. A connection
    /// queued as fan-out that gets an answer too moves up to the answers.
    ///
    /// With `--write-delay` set, broadcast output ([`Shard::delivering`]) for a connection
    /// that has no write queued waits instead: it is queued for writing (as a fan-out) when
    /// the delay has passed (`release_waiting`), and frames that come meanwhile join it.
    /// Answers (acks, emits to one session, HTTP answers, pongs, closes, WRITABLE) never
    /// wait: an ack's latency is what its sender sees, heartbeats and closes have deadlines;
    /// and since a connection has one output buffer, an answer's write carries whatever
    /// broadcast output was waiting, in order, and ends the wait.
    pub fn mark_dirty(&mut self, key: usize) {
        let bulk = self.fanning_out;
        if self.delivering && self.write_delays.is_on() && !self.shutting_down {
            // A close (a session ended by its own delivery) does not wait.
            if let Some(conn) = self.conns.get_mut(key).filter(|c| !c.close_after_flush) {
                if !conn.dirty && conn.write_by.is_none() {
                    conn.write_by = Some(self.write_delays.push(key));
                }
                return;
            }
        }
        if let Some(conn) = self.conns.get_mut(key) {
            if bulk {
                if !conn.dirty {
                    conn.dirty = true;
                    self.bulk.push_back(key);
                }
            } else if !conn.urgent {
                conn.dirty = true;
                conn.urgent = true;
                self.dirty.push(key);
            }
        }
    }

    /// Close a connection now: what it carries ends (a WebSocket's session closes with
    /// `reason`; a parked GET's session just loses its GET).
    pub fn close_conn(&mut self, key: usize, reason: CloseReason) {
        if self.closed.contains(&key) {
            return;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        self.closed.push(key);
        self.end_carrying(key, reason);
    }

    /// End what a connection carried (a parked GET, a WebSocket and its session or upgrade
    /// attempt); it carries plain HTTP afterwards.
    fn end_carrying(&mut self, key: usize, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let carrying = std::mem::replace(&mut conn.carrying, Carrying::Http);
        match carrying {
            Carrying::Http => {}
            Carrying::ParkedGet { session, .. } => self.on_get_conn_closed(session),
            Carrying::WebSocket { session, probing } => {
                self.on_websocket_closed(session, key, probing, reason)
            }
        }
    }

    /// A connection whose output is all written and that is to close: send a FIN, end what
    /// it carried, and read and drop the peer's input until the peer closes too or
    /// [`CLOSE_LINGER`] passes. Closing at once with input unread makes the kernel answer
    /// with a reset, which can discard what the peer has not read yet (the Engine.IO close,
    /// a close frame, an error answer): RFC 9112 §9.6 calls this a lingering close.
    fn start_lingering_close(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.draining {
            return;
        }
        conn.draining = true;
        conn.io().input.clear();
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        if conn.writable_armed {
            conn.writable_armed = false;
            let _ =
                self.poll
                    .registry()
                    .reregister(&mut conn.stream, Token(key), Interest::READABLE);
        }
        if conn.close_by.is_none() {
            let by = Instant::now() + CLOSE_LINGER;
            conn.close_by = Some(by);
            self.close_deadlines.push_back((by, key));
        }
        self.end_carrying(key, CloseReason::TransportClose);
    }

    /// Read and drop a draining connection's input; close it at the peer's end of stream.
    fn drain_input(&mut self, key: usize) {
        let mut budget = READ_BUDGET;
        while let Some(conn) = self.conns.get_mut(key) {
            match conn.read_chunk() {
                Ok(n) => {
                    conn.io().input.clear();
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.read_again.push(key);
                        return;
                    }
                }
                Err(ReadEnd::WouldBlock) => return,
                Err(ReadEnd::Closed) => {
                    self.close_conn(key, CloseReason::TransportClose);
                    return;
                }
            }
        }
    }

    /// Close a connection once its output is written; a WebSocket's within [`CLOSE_LINGER`].
    pub fn close_after_flush(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.close_after_flush = true;
            if conn.ws.is_some() && conn.close_by.is_none() {
                let by = Instant::now() + CLOSE_LINGER;
                conn.close_by = Some(by);
                self.close_deadlines.push_back((by, key));
            }
            self.mark_dirty(key);
        }
    }

    /// Whether the shard is shutting down (sessions it closes now close with 1001).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    fn run_timers(&mut self, now: Instant) {
        let now = now + TIMER_SLACK;
        while let Some((at, session)) = self.timers.pop_due(now) {
            self.on_session_timer(session, at, now);
        }
        while let Some(&(at, key)) = self.request_deadlines.front() {
            if at > now {
                break;
            }
            self.request_deadlines.pop_front();
            self.on_request_timeout(key, at);
        }
        while let Some(&(at, key)) = self.close_deadlines.front() {
            if at > now {
                break;
            }
            self.close_deadlines.pop_front();
            let lingering = self
                .conns
                .get(key)
                .is_some_and(|conn| conn.close_by == Some(at));
            if lingering {
                // Its peer did not take the close frame in time.
                self.close_conn(key, CloseReason::TransportClose);
            }
        }
    }

    /// Start the clock for the next request on an HTTP connection, unless it runs already.
    pub fn await_request(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.request_deadline.is_none() && matches!(conn.carrying, Carrying::Http) {
            let deadline = Instant::now() + self.config.request_timeout;
            conn.request_deadline = Some(deadline);
            if conn.queued_deadline.is_none() {
                conn.queued_deadline = Some(deadline);
                self.request_deadlines.push_back((deadline, key));
            }
        }
    }

    /// A connection that has not sent a whole request by `deadline`: 408 if it sent part of
    /// one (a slow or stalled client), a plain close if it sent nothing (idle keep-alive).
    fn on_request_timeout(&mut self, key: usize, deadline: Instant) {
        if self.closed.contains(&key) {
            return;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.queued_deadline != Some(deadline) {
            return;
        }
        conn.queued_deadline = None;
        if !matches!(conn.carrying, Carrying::Http) || conn.close_after_flush {
            return;
        }
        match conn.request_deadline {
            None => return,
            // A later request is awaited now: queue its deadline (the latest there is, so
            // the back keeps the order).
            Some(later) if later > deadline => {
                conn.queued_deadline = Some(later);
                self.request_deadlines.push_back((later, key));
                return;
            }
            Some(_) => {}
        }
        conn.request_deadline = None;
        if !conn.buffers.input.is_empty() {
            conn.buffers.input.clear();
            crate::http::write_plain_error(
                conn.output(),
                crate::http::Status::REQUEST_TIMEOUT,
                "request not received in time",
                &[],
                false,
            );
        }
        self.close_after_flush(key);
    }

    /// Handle bus messages; true when the shard must shut down.
    pub(super) fn read_bus(&mut self) -> bool {
        while let Ok(message) = self.inbox.try_recv() {
            match message {
                BusMessage::HandOff {
                    stream,
                    output,
                    admitted,
                    ..
                } if self.shutting_down => self.adopt_to_close(stream, output, admitted),
                BusMessage::HandOff {
                    stream,
                    input,
                    output,
                    opened_at,
                    admitted,
                } => self.adopt(stream, input, output, Some(opened_at), admitted),
                BusMessage::Broadcast(broadcast) => {
                    let except = broadcast
                        .except
                        .and_then(|(shard, session)| (shard == self.index).then_some(session));
                    self.deliver_local(
                        &broadcast.nsp,
                        &broadcast.room,
                        &broadcast.frames,
                        except,
                        broadcast.seq,
                    )
                }
                BusMessage::EmitTo {
                    session,
                    nsp,
                    frames,
                } => self.emit_local(session, &nsp, &frames),
                BusMessage::Forward(message) => self.app_forward(message),
                BusMessage::Shutdown => return true,
                BusMessage::ShutdownMarker { from, round } => {
                    self.shutdown_markers.record(from, round)
                }
            }
        }
        false
    }

    /// Let the application finish the turn, wake shards we sent messages to (before writing,
    /// so they write their part of a broadcast while this one writes its own), write the
    /// answers, then large fan-outs within the budget, free closed slots, wake shards that
    /// closes sent messages to.
    pub(super) fn end_turn(&mut self) {
        self.app_turn_end();
        self.wake_peers();
        self.release_waiting();
        self.flush_answers();
        self.flush_bulk();
        // A connection closed while its fan-out was written may have told a room it left.
        self.flush_answers();
        for key in self.closed.drain(..) {
            self.conns.try_remove(key);
        }
        self.wake_peers();
    }

    /// Write every connection queued with the turn's answers. Writing one can close a
    /// connection, and that close can queue more answers (its rooms are told it left): those
    /// are written too, in the same turn, never dropped from the queue (a connection marked
    /// dirty but in no queue would not be written again).
    fn flush_answers(&mut self) {
        let mut queue = Vec::new();
        loop {
            std::mem::swap(&mut self.dirty, &mut queue);
            if queue.is_empty() {
                return;
            }
            for key in queue.drain(..) {
                self.flush(key);
            }
        }
    }

    /// Queue for writing, as fan-out, the connections whose write delay has passed (all of
    /// them while shutting down). Entries whose connection was written meanwhile (its
    /// `write_by` moved on), closed or freed are skipped.
    fn release_waiting(&mut self) {
        let now = Instant::now();
        let all = self.shutting_down;
        while let Some((at, key)) = self.write_delays.pop_due(now, all) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.write_by != Some(at) {
                continue;
            }
            conn.write_by = None;
            if !conn.dirty {
                conn.dirty = true;
                self.bulk.push_back(key);
            }
        }
    }

    fn wake_peers(&mut self) {
        for (shard, wake) in self.to_wake.iter_mut().enumerate() {
            if std::mem::take(wake) {
                self.peers.wake(shard);
            }
        }
    }

    /// Write queued fan-out connections, oldest first, until none is left or the turn has
    /// written them for [`WRITE_BUDGET`] (no budget while shutting down).
    fn flush_bulk(&mut self) {
        let started = Instant::now();
        let mut written = 0;
        while let Some(key) = self.bulk.pop_front() {
            if !self.conns.get(key).is_some_and(|c| c.dirty) {
                continue;
            }
            self.flush(key);
            written += 1;
            if written % WRITES_PER_CLOCK_CHECK == 0
                && !self.shutting_down
                && started.elapsed() >= WRITE_BUDGET
            {
                return;
            }
        }
    }

    fn flush(&mut self, key: usize) {
        if self.closed.contains(&key) {
            return;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.dirty = false;
        conn.urgent = false;
        // Whatever waited for this connection goes out with this write.
        conn.write_by = None;
        match conn.write_out() {
            Ok(true) => {
                if conn.close_after_flush {
                    self.start_lingering_close(key);
                    return;
                }
                if conn.writable_armed {
                    conn.writable_armed = false;
                    let _ = self.poll.registry().reregister(
                        &mut conn.stream,
                        Token(key),
                        Interest::READABLE,
                    );
                }
            }
            Ok(false) => {
                if conn.pending_output() > self.config.max_outbound_bytes {
                    // Too slow a reader: it reloads on reconnect (docs/ARCHITECTURE.md,
                    // principle 4). A WebSocket gets a close frame right after the frame it is
                    // reading (what was queued behind it is dropped), within the close linger.
                    let websocket = matches!(conn.carrying, Carrying::WebSocket { .. });
                    if websocket && conn.cut_output_after_frame_in_progress() {
                        let close = WsClose::new(
                            ws::status::POLICY,
                            "reader too slow: over --max-outbound-bytes",
                        );
                        self.close_websocket(key, close, CloseReason::TransportClose);
                    } else {
                        self.close_conn(key, CloseReason::TransportClose);
                    }
                    return;
                }
                if !conn.writable_armed {
                    conn.writable_armed = true;
                    let _ = self.poll.registry().reregister(
                        &mut conn.stream,
                        Token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                }
            }
            Err(_) => self.close_conn(key, CloseReason::TransportClose),
        }
    }

    /// Stop accepting, close every session with an Engine.IO close, write what can be written.
    fn shutdown(&mut self) {
        self.shutting_down = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        // Finish what this turn started first: the application commits what it holds (a
        // chat message is stored and acked, not dropped) and answers go out.
        self.end_turn();
        // Then the peers' forwards and the acks for this shard's sessions (`shutdown.rs`).
        self.finish_peers(Instant::now() + PEERS_LIMIT);
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
        self.end_turn();
        let deadline = Instant::now() + Duration::from_secs(2);
        // A peer that read its close usually ends its side within milliseconds; one that
        // keeps its socket open must not hold the exit (nor a peer shard waiting on this one).
        let drained_by = Instant::now() + SHUTDOWN_DRAIN;
        while Instant::now() < deadline {
            let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
            if keys.is_empty() {
                break;
            }
            let now = Instant::now();
            for key in keys {
                match self.conns.get(key) {
                    Some(conn)
                        if conn.draining
                            && (now >= drained_by || conn.close_by.is_some_and(|by| by <= now)) =>
                    {
                        self.close_conn(key, CloseReason::TransportClose)
                    }
                    Some(conn) if conn.draining => self.drain_input(key),
                    _ => self.close_after_flush(key),
                }
            }
            self.end_turn();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Lines a second about refused connections, all shards together: a flood of connections
/// must not flood the log.
static REFUSAL_LOG: crate::logging::Throttle = crate::logging::Throttle::new(10);

/// Log a refused connection with the client's address (behind a trusted proxy, the client it
/// named) and what to change if the refusal is wrong.
fn log_refusal(refusal: Refusal, client: std::net::IpAddr) {
    if !crate::logging::enabled(crate::logging::Level::Warn) {
        return;
    }
    let Some(suppressed) = REFUSAL_LOG.admit() else {
        return;
    };
    let (cause, fix) = match refusal {
        Refusal::ServerFull => ("server full", "raise --max-connections"),
        Refusal::TooManyFromAddress => (
            "per-IP cap",
            "if this address is a proxy, list it in --trusted-proxies; or raise \
             --max-connections-per-ip",
        ),
    };
    crate::log_warn!(
        "connection_refused",
        client = client,
        cause = cause,
        fix = fix,
        suppressed_before = suppressed
    );
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
        || e.kind() == io::ErrorKind::OutOfMemory
}

/// Deregister a stream so it can be handed to another shard.
pub fn detach(poll: &Poll, stream: &mut TcpStream) -> io::Result<()> {
    poll.registry().deregister(stream)
}
