//! Deadlines of one shard: a min-heap of (instant, session, generation), and the transport
//! closes the application asked for ([`TransportDeadlines`]).
//!
//! Each session keeps at most one live entry (its `timer_at`); entries that no longer match
//! a live session or its current `timer_at` are stale and skipped when they surface. No
//! per-connection timer objects exist (docs/ARCHITECTURE.md, principle 7).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

pub use crate::engineio::session::SessionRef;

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, SessionRef)>>,
}

impl Timers {
    pub fn push(&mut self, at: Instant, session: SessionRef) {
        self.heap.push(Reverse((at, session)));
    }

    /// The earliest entry, live or stale.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Remove and return an entry due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, SessionRef)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }
}

/// Transport closes an application asked for ([`crate::socketio::Command::CloseTransportAt`]),
/// earliest first: when each is due, which session, and which socket of it asked (its
/// namespace and Socket.IO id), so that a socket that left, or a new socket of the same
/// namespace, is not closed by a deadline that is no longer its own. Entries of sessions that
/// closed early stay until they surface (or until [`TransportDeadlines::retain`] drops them).
#[derive(Default)]
pub struct TransportDeadlines {
    heap: BinaryHeap<Reverse<TransportDeadline>>,
}

/// One requested transport close.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TransportDeadline {
    pub at: Instant,
    pub session: SessionRef,
    pub nsp: Box<str>,
    pub socket_id: Box<str>,
}

impl TransportDeadlines {
    pub fn push(&mut self, deadline: TransportDeadline) {
        self.heap.push(Reverse(deadline));
    }

    /// The earliest entry, live or stale.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.at)
    }

    /// Remove and return an entry due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<TransportDeadline> {
        match self.heap.peek() {
            Some(Reverse(d)) if d.at <= now => self.heap.pop().map(|Reverse(d)| d),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Keep only the entries `live` accepts (drops those of closed sessions).
    pub fn retain(&mut self, mut live: impl FnMut(&TransportDeadline) -> bool) {
        self.heap.retain(|Reverse(d)| live(d));
    }
}
