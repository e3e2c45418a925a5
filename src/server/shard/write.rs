//! Writing: carrying out the endpoint's transmits on connections, and the order in which a
//! turn's output is written.
//!
//! Output is written in two classes. Answers to one connection (acks, emits, HTTP answers,
//! pongs) and small broadcasts are written first, all of them, every turn. Connections that
//! got output from a large room fan-out are written after them, in order, for at most
//! [`WRITE_BUDGET`] per turn; the rest wait for the next turn, which polls without sleeping
//! and so reads what arrived meanwhile before writing more. So an ack or a small room's
//! message never waits behind a thousand writes of someone else's fan-out, and a long
//! fan-out does not keep a shard from reading. One write per connection per turn, however
//! many frames it got. Must never decide what is sent: only when and how it is written.

use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::Shard;
use crate::endpoint::{Event, Frames, Transmit};
use crate::engineio::packet::Frame;
use crate::engineio::session::CloseReason;
use crate::server::conn::Mode;
use crate::server::ws::{self, status, WsClose};
use crate::socketio::Handler;

/// How long one turn writes large fan-outs before it reads again. A write of one frame to a
/// loopback or LAN socket costs the shard 3–5 µs of kernel time, so this is some 100–150
/// writes: a turn's reads wait at most about this long behind fan-out writes. Shorter costs
/// fan-out throughput (each extra turn is a poll and its bookkeeping; at 200 µs, rooms of 250
/// lost about 5% of their deliveries per CPU-second in BENCHMARKS.md's comparison).
const WRITE_BUDGET: Duration = Duration::from_micros(500);

/// Fan-out writes between two looks at the clock.
const WRITES_PER_CLOCK_CHECK: usize = 8;

impl<H: Handler> Shard<H> {
    /// Carry out everything the endpoint asked for, in order: transmits on connections and
    /// messages for other shards. A connection that reads requests again (a parked GET was
    /// answered, a WebSocket was accepted) has its buffered input processed after.
    pub(super) fn carry_out(&mut self) {
        let mut read_on = Vec::new();
        while let Some(transmit) = self.endpoint.poll_transmit() {
            if let Some(key) = self.apply(transmit) {
                read_on.push(key);
            }
        }
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::ToPeer { shard, message } => {
                    // A full bus drops (and counts) the message: the shard it was for is
                    // hopelessly behind.
                    let message = crate::server::bus::BusMessage::Peer(message);
                    let metrics = self.ops.metrics.shard(self.index);
                    if self.peers.send_or_drop(self.index, shard, message, metrics) {
                        self.wake_later(shard);
                    }
                }
            }
        }
        for key in read_on {
            self.process_input(key);
        }
    }

    /// Carry out one transmit; the connection's key when it now reads input again.
    fn apply(&mut self, transmit: Transmit) -> Option<usize> {
        match transmit {
            Transmit::Http {
                conn,
                bytes,
                keep_alive,
                broadcast,
            } => {
                let key = conn.0;
                let conn = self.conns.get_mut(key).filter(|c| !c.closed)?;
                let was_parked = conn.mode == Mode::Parked;
                if was_parked {
                    conn.mode = Mode::Http;
                }
                conn.output().extend_from_slice(&bytes);
                if keep_alive {
                    if broadcast {
                        self.mark_broadcast(key, false);
                    } else {
                        self.mark_dirty(key, false);
                    }
                    // A request pipelined behind the GET can be served now.
                    was_parked.then_some(key)
                } else {
                    self.close_after_flush(key);
                    None
                }
            }
            Transmit::Park { conn } => {
                if let Some(conn) = self.conns.get_mut(conn.0) {
                    conn.mode = Mode::Parked;
                }
                None
            }
            Transmit::AcceptWebSocket { conn, accept } => {
                let key = conn.0;
                let conn = self.conns.get_mut(key).filter(|c| !c.closed)?;
                conn.output().extend_from_slice(&accept);
                // No reading state until a frame arrives (`Conn::read_ws_message`).
                conn.ws = Some(ws::ReadState::default());
                conn.mode = Mode::WebSocket;
                self.mark_dirty(key, false);
                Some(key)
            }
            Transmit::Frames {
                conn,
                frames,
                fan_out,
                broadcast,
            } => {
                self.write_frames(conn.0, &frames, fan_out, broadcast);
                None
            }
            Transmit::CloseWebSocket { conn, close } => {
                self.close_websocket(conn.0, &close);
                None
            }
        }
    }

    /// Append WebSocket data frames to a connection's output.
    fn write_frames(&mut self, key: usize, frames: &Frames, fan_out: bool, broadcast: bool) {
        let Some(conn) = self.conns.get_mut(key).filter(|c| !c.closed) else {
            return;
        };
        if conn.mode != Mode::WebSocket {
            return;
        }
        let out = conn.output();
        for frame in frames.as_slice() {
            match frame {
                Frame::Text(bytes) => ws::write_frame(out, false, bytes),
                Frame::Binary(bytes) => ws::write_frame(out, true, bytes),
            }
        }
        if broadcast {
            self.mark_broadcast(key, fan_out);
        } else {
            self.mark_dirty(key, fan_out);
        }
    }

    /// Queue broadcast output for writing. With `--write-delay` set, a connection that has no
    /// write queued waits instead: it is queued for writing (as a fan-out) when the delay has
    /// passed (`release_waiting`), and frames that come meanwhile join it. Answers (acks,
    /// emits to one session, HTTP answers, pongs, closes, WRITABLE) never wait: an ack's
    /// latency is what its sender sees, heartbeats and closes have deadlines; and since a
    /// connection has one output buffer, an answer's write carries whatever broadcast output
    /// was waiting, in order, and ends the wait.
    fn mark_broadcast(&mut self, key: usize, fan_out: bool) {
        if self.write_delays.is_on() && !self.shutting_down {
            // A close (a session ended by its own delivery) does not wait.
            if let Some(conn) = self.conns.get_mut(key).filter(|c| !c.close_after_flush) {
                if !conn.dirty && conn.write_by.is_none() {
                    conn.write_by = Some(self.write_delays.push(key));
                }
                return;
            }
        }
        self.mark_dirty(key, fan_out);
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

    /// Queue a connection's output for writing at the end of the turn: with the turn's
    /// answers, or with the large fan-outs (`fan_out`). A connection queued as fan-out that
    /// gets an answer too moves up to the answers.
    pub(super) fn mark_dirty(&mut self, key: usize, fan_out: bool) {
        if let Some(conn) = self.conns.get_mut(key) {
            if fan_out {
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

    /// Let the application finish the turn, wake shards we sent messages to (before writing,
    /// so they write their part of a broadcast while this one writes its own), write the
    /// answers, then large fan-outs within the budget, free closed slots, wake shards that
    /// closes sent messages to.
    pub(super) fn end_turn(&mut self) {
        self.endpoint.handle_turn_end(Instant::now());
        self.carry_out();
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
        let Some(conn) = self.conns.get_mut(key).filter(|c| !c.closed) else {
            return;
        };
        conn.dirty = false;
        conn.urgent = false;
        // Whatever waited for this connection goes out with this write.
        conn.write_by = None;
        match conn.write_out() {
            Ok(true) => {
                if conn.close_after_flush {
                    if conn.peer_closed {
                        // Nothing more will come to linger for.
                        self.close_conn(key, CloseReason::TransportClose);
                    } else {
                        self.start_lingering_close(key);
                    }
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
                    let websocket = conn.mode == Mode::WebSocket;
                    if websocket && conn.cut_output_after_frame_in_progress() {
                        let close = WsClose::new(
                            status::POLICY,
                            "reader too slow: over --max-outbound-bytes",
                        );
                        self.close_websocket(key, &close);
                        self.end_mode(key, CloseReason::TransportClose);
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
}
