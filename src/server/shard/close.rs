//! Closing connections and the shard's own deadlines: request timeouts, lingering closes, and
//! telling the endpoint when a connection it knows is gone.
//!
//! A connection closes either at once (the peer went away, a write failed) or after its
//! output: then it sends a FIN and reads and drops the peer's input until the peer closes
//! too or [`CLOSE_LINGER`] passes (a lingering close, RFC 9112 §9.6), so a reset never
//! discards the close the peer has not read yet. Must never decide why a session ends: it
//! reports the cause to the endpoint.

use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::read::READ_BUDGET;
use super::Shard;
use crate::engineio::session::{CloseReason, TIMER_SLACK};
use crate::http::{write_plain_error, Status};
use crate::server::conn::{Mode, ReadEnd, ReadUntil, READ_CHUNK};
use crate::server::ws::{self, WsClose};
use crate::socketio::Handler;

/// How long a connection the server closes may take to write what was queued (a WebSocket's
/// close frame included) and end its side before the TCP connection is closed regardless.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// At shutdown, how long a connection that was sent its close may take to end its side
/// before it is closed anyway.
const SHUTDOWN_DRAIN: Duration = Duration::from_millis(250);

/// At shutdown, how long output is written before the shard exits regardless.
const SHUTDOWN_WRITE: Duration = Duration::from_secs(2);

impl<H: Handler> Shard<H> {
    /// Close a connection now, telling the endpoint what it carried ends with `reason`.
    pub(super) fn close_conn(&mut self, key: usize, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closed {
            return;
        }
        conn.closed = true;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        // A draining connection has sent its FIN and read the peer's: nothing is left to
        // shut down. A peer that closed its WebSocket gets the FIN when the socket is closed
        // at the end of this turn.
        if !conn.draining && !conn.peer_closed {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
        self.closed.push(key);
        self.end_mode(key, reason);
    }

    /// The connection reads nothing more as HTTP or WebSocket, and the endpoint forgets it
    /// (what it carried ends with `reason`; nothing if the endpoint asked for the close).
    pub(super) fn end_mode(&mut self, key: usize, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.mode = Mode::Http;
        }
        self.endpoint
            .handle_conn_closed(Instant::now(), Self::conn_id(key), reason);
        self.carry_out();
    }

    /// Close a connection the server's way: on a WebSocket, `close` goes out as its close
    /// frame first; the connection closes once its output is written.
    pub(super) fn close_websocket(&mut self, key: usize, close: &WsClose) {
        let Some(conn) = self.conns.get_mut(key).filter(|c| !c.closed) else {
            return;
        };
        if conn.mode == Mode::WebSocket && conn.ws.is_some() {
            ws::write_close(conn.output(), close);
        }
        conn.mode = Mode::Http;
        self.close_after_flush(key);
    }

    /// Close a connection once its output is written, within [`CLOSE_LINGER`].
    pub(super) fn close_after_flush(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.close_after_flush = true;
            if conn.ws.is_some() && conn.close_by.is_none() {
                let by = Instant::now() + CLOSE_LINGER;
                conn.close_by = Some(by);
                self.close_deadlines.push_back((by, key));
            }
            self.mark_dirty(key, false);
        }
    }

    /// A connection whose output is all written and that is to close: send a FIN, tell the
    /// endpoint, and read and drop the peer's input until the peer closes too or
    /// [`CLOSE_LINGER`] passes. Closing at once with input unread makes the kernel answer
    /// with a reset, which can discard what the peer has not read yet (the Engine.IO close,
    /// a close frame, an error answer).
    pub(super) fn start_lingering_close(&mut self, key: usize) {
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
        self.end_mode(key, CloseReason::TransportClose);
    }

    /// Read and drop a draining connection's input; close it at the peer's end of stream.
    /// How far it reads: `until` (`read.rs`).
    pub(super) fn drain_input(&mut self, key: usize, until: ReadUntil) {
        let mut budget = READ_BUDGET;
        while let Some(conn) = self.conns.get_mut(key) {
            match conn.read_chunk(&mut self.read_buf) {
                Ok(n) => {
                    conn.io().input.clear();
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.read_again.push(key);
                        return;
                    }
                    if n < READ_CHUNK && until == ReadUntil::ShortRead {
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

    /// Run the endpoint's due deadlines and the shard's own (requests, lingering closes).
    pub(super) fn run_timers(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        self.carry_out();
        let now = now + TIMER_SLACK;
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
                // Its peer did not take the close in time.
                self.close_conn(key, CloseReason::TransportClose);
            }
        }
    }

    /// Start the clock for the next request on an HTTP connection, unless it runs already.
    pub(super) fn await_request(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.request_deadline.is_none() && conn.mode == Mode::Http {
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
        let Some(conn) = self.conns.get_mut(key).filter(|c| !c.closed) else {
            return;
        };
        if conn.queued_deadline != Some(deadline) {
            return;
        }
        conn.queued_deadline = None;
        if conn.mode != Mode::Http || conn.close_after_flush {
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
            write_plain_error(
                conn.output(),
                Status::REQUEST_TIMEOUT,
                "request not received in time",
                &[],
                false,
            );
        }
        self.close_after_flush(key);
    }

    /// The end of a shutdown: write what every connection has queued and close it, for up
    /// to [`SHUTDOWN_WRITE`]. A peer that read its close usually ends its side within
    /// milliseconds; one that keeps its socket open must not hold the exit (nor a peer shard
    /// waiting on this one).
    pub(super) fn write_out_and_close(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_WRITE;
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
                    Some(conn) if conn.draining => self.drain_input(key, ReadUntil::WouldBlock),
                    _ => self.close_after_flush(key),
                }
            }
            self.end_turn();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
