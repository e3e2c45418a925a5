//! Deadlines of one shard: a min-heap of (instant, session, generation).
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
