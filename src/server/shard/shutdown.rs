//! Shutdown across shards: two rounds of markers over the bus, so that every chat message a
//! shard read before the signal is stored and its ack written to its client before any shard
//! closes its sessions.
//!
//! Each shard's inbox is FIFO per sender, so a marker a shard receives from a peer comes after
//! everything that peer sent before it:
//!
//! 1. A shard that got [`BusMessage::Shutdown`] stops accepting and reading client input,
//!    finishes its turn (the application stores what it holds; acks, broadcasts and forwards
//!    are on their way) and sends every peer [`Round::NoMoreForwards`].
//! 2. A shard that has round 1 from every peer has handled every message any peer will ever
//!    forward to it, stored it and sent its ack and broadcast (each turn ends before the next
//!    check): it sends every peer [`Round::AnswersSent`].
//! 3. A shard that has round 2 from every peer has received every ack meant for its sessions
//!    and queued them: the caller then sends its sessions the Engine.IO close and ends.
//!
//! Owns the rounds and nothing else: what a shard does before and after them is
//! `Shard::shutdown`'s. Must never read client input or accept a connection, and never waits
//! past the limit it is given: a peer that never answers (stuck or gone) delays the exit by
//! that much, never hangs it.

use std::io;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Token};

use super::{Shard, LISTENER, WAKER};
use crate::server::admission::Admitted;
use crate::server::bus::{BusMessage, Offer, Round};
use crate::socketio::Handler;

/// How often a marker that found a peer's inbox full is sent again.
const RETRY: Duration = Duration::from_millis(5);

/// Events handled per `poll` call while the rounds run.
const EVENTS_CAPACITY: usize = 256;

/// The markers a shard has received, by round and peer (its own counted as received).
#[derive(Debug)]
pub struct Markers {
    received: [Vec<bool>; 2],
}

impl Markers {
    /// For shard `index` of `shards`.
    pub fn new(shards: usize, index: usize) -> Self {
        let mut received = [vec![false; shards], vec![false; shards]];
        for round in &mut received {
            if let Some(own) = round.get_mut(index) {
                *own = true;
            }
        }
        Markers { received }
    }

    /// Note `round` from shard `from`; an index out of range is ignored.
    pub fn record(&mut self, from: usize, round: Round) {
        if let Some(seen) = self
            .received
            .get_mut(round as usize)
            .and_then(|r| r.get_mut(from))
        {
            *seen = true;
        }
    }

    /// Whether every peer has sent `round`.
    pub fn all(&self, round: Round) -> bool {
        self.received
            .get(round as usize)
            .is_some_and(|peers| peers.iter().all(|&seen| seen))
    }
}

impl<H: Handler> Shard<H> {
    /// Run both rounds (see the module docs), handling the bus and writing output meanwhile;
    /// returns once every peer's round 2 is in and handled, or at `until`. The caller has
    /// stopped accepting and reading, and ended the turn in which it got `Shutdown`.
    pub(super) fn finish_peers(&mut self, until: Instant) {
        let shards = self.peers.len();
        if shards < 2 {
            return;
        }
        // Peers each round's marker has yet to reach.
        let mut unsent = [vec![true; shards], vec![true; shards]];
        for round in &mut unsent {
            if let Some(own) = round.get_mut(self.index) {
                *own = false;
            }
        }
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            // Here every bus message received so far is handled and its turn ended.
            self.send_marker(Round::NoMoreForwards, &mut unsent[0]);
            let round_1_done = !unsent[0].contains(&true);
            if round_1_done && self.shutdown_markers.all(Round::NoMoreForwards) {
                self.send_marker(Round::AnswersSent, &mut unsent[1]);
            }
            if !unsent[1].contains(&true) && self.shutdown_markers.all(Round::AnswersSent) {
                // What a peer that ended sent before it is still to be read.
                while self.read_bus() {}
                self.end_turn();
                return;
            }
            let now = Instant::now();
            if now >= until {
                crate::log_warn!(
                    "shutdown_peers_unfinished",
                    shard = self.index,
                    round_1 = self.shutdown_markers.all(Round::NoMoreForwards),
                    round_2 = self.shutdown_markers.all(Round::AnswersSent),
                    hint = "a peer shard did not answer in time; acks on their way are lost"
                );
                return;
            }
            // A short sleep at most: a marker may be waiting for room in a peer's inbox.
            let timeout = (until - now).min(RETRY);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER | WAKER | super::WRITE_TIMER => {}
                    // Client input is no longer read; output that was waiting is written.
                    Token(key) => {
                        if event.is_writable() {
                            self.mark_dirty(key, false);
                        }
                    }
                }
            }
            // `read_bus` stops at a (second) Shutdown; the rest is read on.
            while self.read_bus() {}
            self.end_turn();
        }
    }

    /// Send `round` to every peer still marked in `unsent`, waking each it reaches. A peer
    /// that has ended (it gave up waiting for this shard) will send nothing more: it counts as
    /// finished with both rounds.
    fn send_marker(&mut self, round: Round, unsent: &mut [bool]) {
        for (shard, pending) in unsent.iter_mut().enumerate() {
            if !*pending {
                continue;
            }
            let marker = BusMessage::ShutdownMarker {
                from: self.index,
                round,
            };
            match self.peers.offer(shard, marker) {
                Offer::Sent => {
                    *pending = false;
                    self.peers.wake(shard);
                }
                Offer::Full => {}
                Offer::Gone => {
                    *pending = false;
                    self.shutdown_markers.record(shard, Round::NoMoreForwards);
                    self.shutdown_markers.record(shard, Round::AnswersSent);
                }
            }
        }
    }

    /// A connection another shard handed over while this one shuts down: its request is not
    /// read (no new work), what was queued for it is written, then it is closed.
    pub(super) fn adopt_to_close(
        &mut self,
        stream: TcpStream,
        output: Vec<u8>,
        admitted: Admitted,
    ) {
        if let Some(key) = self.register_conn(stream, Vec::new(), output, admitted) {
            self.close_after_flush(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_complete_once_every_peer_sent_it() {
        let mut markers = Markers::new(3, 1);
        assert!(!markers.all(Round::NoMoreForwards));
        markers.record(0, Round::NoMoreForwards);
        assert!(!markers.all(Round::NoMoreForwards));
        markers.record(2, Round::NoMoreForwards);
        assert!(markers.all(Round::NoMoreForwards));
        assert!(!markers.all(Round::AnswersSent));
        markers.record(9, Round::AnswersSent);
        assert!(!markers.all(Round::AnswersSent));
    }

    #[test]
    fn one_shard_has_nothing_to_wait_for() {
        let markers = Markers::new(1, 0);
        assert!(markers.all(Round::NoMoreForwards) && markers.all(Round::AnswersSent));
    }
}
