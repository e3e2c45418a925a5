//! One shard: a mio event loop thread that owns its sockets and feeds its [`Endpoint`].
//!
//! The shard is the I/O only: sockets and their buffers, mio registration, HTTP request
//! framing and WebSocket framing, the cross-shard bus, and the order of writes. Every
//! Engine.IO and Socket.IO decision is the endpoint's (`crate::endpoint`): the shard hands it
//! parsed requests, whole WebSocket messages, closed connections, peer messages and the time,
//! and carries out the transmits it returns (`write.rs`).
//!
//! The loop: wait for readiness, the earliest deadline or a wake from another shard; run due
//! deadlines; accept; read and process each ready connection (`read.rs`); read the bus; then
//! let the application end its turn, wake the shards the turn sent messages to, and write.
//! Follows mio's rules: drain readiness (to `WouldBlock`, or to a short read when no end of
//! stream was signalled, `conn::ReadUntil`), retry on `Interrupted`, ignore
//! unknown tokens, ask for WRITABLE only while output is queued, never reuse a token during
//! the turn that freed it, back off on EMFILE. Closing (lingering closes, deadlines) is in
//! `close.rs`, shutdown across shards in `shutdown.rs`, the routes beside Engine.IO in
//! `ops.rs`.
//!
//! Must never decide protocol behaviour itself, and never block on another shard.

mod accept;
mod close;
pub mod ops;
mod read;
pub mod shutdown;
mod write;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::admission::Admission;
use super::bus::{BusMessage, Inbox, Peers};
use super::conn::Conn;
use crate::config::ServerConfig;
use crate::endpoint::{ConnId, Endpoint};
use crate::engineio::session::TIMER_SLACK;
use crate::engineio::sid::IdSource;
use crate::server::conn::ReadUntil;
use crate::socketio::Handler;
use ops::Ops;

pub const LISTENER: Token = Token(usize::MAX - 1);
pub const WAKER: Token = Token(usize::MAX - 2);
/// The write delay's timer (`server/write_delay.rs`).
pub const WRITE_TIMER: Token = Token(usize::MAX - 3);

/// Events handled per `poll` call.
const EVENTS_CAPACITY: usize = 1024;

/// Longest a shutting-down shard waits for its peers' rounds (`shutdown.rs`) before it
/// closes its sessions regardless; with the two seconds of writing after, the exit stays
/// within 5 s.
const PEERS_LIMIT: Duration = Duration::from_millis(1500);

/// One shard's loop and everything it owns.
pub struct Shard<H: Handler> {
    index: usize,
    config: Arc<ServerConfig>,
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    /// Every protocol decision of this shard.
    endpoint: Endpoint<H>,
    /// When each awaited HTTP request must be complete, and its connection, in deadline order
    /// (one fixed timeout, so pushing at the back keeps the order). At most one entry per
    /// connection (its `queued_deadline`): a keep-alive connection serving many requests
    /// moves its `request_deadline` on and is re-queued when its entry surfaces, so the queue
    /// never grows with the request rate. Entries that match no connection's
    /// `queued_deadline` are stale and skipped.
    request_deadlines: VecDeque<(Instant, usize)>,
    /// When each closing connection must be gone, and its connection; stale entries
    /// (matching no connection's `close_by`) are skipped.
    close_deadlines: VecDeque<(Instant, usize)>,
    /// Connections that used their read budget and may have more input waiting.
    read_again: Vec<usize>,
    /// Every socket read goes through this one buffer ([`crate::server::conn::READ_CHUNK`]
    /// bytes, zeroed once), then into the connection's input.
    read_buf: Box<[u8]>,
    peers: Peers<H::Forward>,
    inbox: Inbox<H::Forward>,
    /// The server-wide connection counts (total and per client IP).
    admission: Arc<Admission>,
    /// Metrics and the routes beside Engine.IO.
    ops: Ops,
    /// Connections with output to write at the end of this turn, all of them (answers, small
    /// broadcasts).
    dirty: Vec<usize>,
    /// Connections with output from large fan-outs, written after `dirty`, oldest first, for
    /// at most `write::WRITE_BUDGET` per turn. May hold keys already written through `dirty`
    /// or freed since: an entry whose connection is not `dirty` is skipped.
    bulk: VecDeque<usize>,
    /// Connections whose broadcast output waits (`--write-delay`), and its timer.
    write_delays: super::write_delay::WriteDelays,
    /// Connections closed this turn; their slab slots are freed at the end of it.
    closed: Vec<usize>,
    /// Shards sent bus messages this turn, to wake once each.
    to_wake: Vec<bool>,
    accept_paused_until: Option<Instant>,
    shutting_down: bool,
    /// The shutdown markers received from peers (`shutdown.rs`).
    shutdown_markers: shutdown::Markers,
}

/// The parts `server::start` makes for one shard.
pub struct Parts<H: Handler> {
    pub index: usize,
    pub config: Arc<ServerConfig>,
    pub handler: Arc<H>,
    pub poll: Poll,
    pub listener: std::net::TcpListener,
    pub peers: Peers<H::Forward>,
    pub inbox: Inbox<H::Forward>,
    pub admission: Arc<Admission>,
    pub ops: Ops,
}

impl<H: Handler> Shard<H> {
    pub fn new(parts: Parts<H>) -> io::Result<Self> {
        let Parts {
            index,
            config,
            handler,
            poll,
            listener,
            peers,
            inbox,
            admission,
            ops,
        } = parts;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let shard_count = peers.len();
        let write_delays =
            super::write_delay::WriteDelays::new(config.write_delay, poll.registry(), WRITE_TIMER)?;
        let ids = IdSource::from_os().map_err(io::Error::other)?;
        let endpoint = Endpoint::new(
            index,
            shard_count,
            Arc::clone(&config),
            handler,
            Arc::clone(&ops.metrics),
            ids,
            Instant::now(),
        );
        Ok(Shard {
            index,
            config,
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            endpoint,
            request_deadlines: VecDeque::new(),
            close_deadlines: VecDeque::new(),
            read_again: Vec::new(),
            read_buf: vec![0; super::conn::READ_CHUNK].into_boxed_slice(),
            peers,
            inbox,
            admission,
            ops,
            dirty: Vec::new(),
            bulk: VecDeque::new(),
            write_delays,
            closed: Vec::new(),
            to_wake: vec![false; shard_count],
            accept_paused_until: None,
            shutting_down: false,
            shutdown_markers: shutdown::Markers::new(shard_count, index),
        })
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
            let mut listener_ready = false;
            for event in events.iter() {
                match event.token() {
                    // New connections are accepted after the known ones are read: a request
                    // on a kept-alive connection that arrived with a new connection's request
                    // is handled first (a polling GET before the POST that closes its session
                    // on a new connection, as the upstream suites send them).
                    LISTENER => listener_ready = true,
                    WAKER => {}
                    WRITE_TIMER => self.write_delays.on_timer(),
                    Token(key) => {
                        if event.is_read_closed() || event.is_error() {
                            self.on_readable(key, ReadUntil::WouldBlock);
                        } else if event.is_readable() {
                            self.on_readable(key, ReadUntil::ShortRead);
                        }
                        if event.is_writable() {
                            self.mark_dirty(key, false);
                        }
                    }
                }
            }
            if listener_ready {
                self.accept();
            }
            for key in std::mem::take(&mut self.read_again) {
                self.on_readable(key, ReadUntil::WouldBlock);
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
        let deadlines = [
            self.endpoint.poll_timeout(),
            self.request_deadlines.front().map(|&(at, _)| at),
            self.close_deadlines.front().map(|&(at, _)| at),
            self.accept_paused_until,
        ];
        let next = deadlines.into_iter().flatten().min();
        next.map(|at| at.saturating_duration_since(now + TIMER_SLACK))
    }

    /// Handle bus messages; true when the shard must shut down.
    fn read_bus(&mut self) -> bool {
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
                BusMessage::Peer(message) => {
                    self.endpoint.handle_peer(Instant::now(), message);
                    self.carry_out();
                }
                BusMessage::Shutdown => return true,
                BusMessage::ShutdownMarker { from, round } => {
                    self.shutdown_markers.record(from, round)
                }
            }
        }
        false
    }

    /// Move a connection and its buffered bytes to the shard that owns its session.
    fn hand_off(&mut self, key: usize, owner: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if self.poll.registry().deregister(&mut conn.stream).is_err() {
            return;
        }
        let output = conn.unwritten_output();
        let message = BusMessage::HandOff {
            stream: conn.stream,
            input: std::mem::take(&mut conn.buffers.input),
            output,
            opened_at: conn.opened_at,
            admitted: conn.admitted,
        };
        // A full bus drops (and counts) the connection; the client retries.
        let metrics = self.ops.metrics.shard(self.index);
        if self.peers.send_or_drop(self.index, owner, message, metrics) {
            self.wake_later(owner);
        }
    }

    fn wake_later(&mut self, shard: usize) {
        if let Some(wake) = self.to_wake.get_mut(shard) {
            *wake = true;
        }
    }

    fn wake_peers(&mut self) {
        for (shard, wake) in self.to_wake.iter_mut().enumerate() {
            if std::mem::take(wake) {
                self.peers.wake(shard);
            }
        }
    }

    /// Stop accepting, finish with the peers, close every session with an Engine.IO close,
    /// write what can be written.
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
        self.endpoint.close_all(Instant::now());
        self.carry_out();
        self.end_turn();
        self.write_out_and_close();
    }

    /// Count a loop turn that woke at `woke` and is done now.
    fn record_turn(&self, woke: Instant) {
        self.ops.metrics.shard(self.index).turn(
            woke.elapsed(),
            self.conns.len(),
            self.endpoint.room_count(),
        );
    }

    /// The handle the endpoint knows a connection by.
    fn conn_id(key: usize) -> ConnId {
        ConnId(key)
    }
}
