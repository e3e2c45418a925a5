//! Cluster mode: what a room's home shard keeps about the log (`chat::cluster`) — the turn's
//! entries on their way to the appender, and the posts, joins and presence entries waiting for
//! their entries to come back applied.
//!
//! Owns that bookkeeping's state only; what happens to it is `chat::cluster`'s. Never talks to
//! Redis, never sends.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::cluster::Append;
use crate::socketio::handler::SocketRef;

/// A home shard's log bookkeeping.
/// A post waiting for its entry: where its answer goes, whether its append was confirmed
/// (always, unless replicas must confirm it: `--cluster-min-replicas`), and its ack once it
/// was applied before the confirmation came.
pub struct WaitingPost {
    pub reply_to: SocketRef,
    pub ack_id: Option<u64>,
    pub appended: bool,
    pub applied_ack: Option<Box<str>>,
}

/// `J` is what a waiting join keeps (the home's `JoinAtHome`).
pub struct LogState<J> {
    /// This turn's entries for the log, with their origin tokens.
    pub(super) outgoing: Vec<Append>,
    pub(super) tokens: Vec<u64>,
    next_token: u64,
    /// Posts waiting for their entry to be applied.
    pub(super) posts: HashMap<u64, WaitingPost>,
    /// When each waiting post is answered `unavailable`, in order.
    pub(super) deadlines: VecDeque<(Instant, u64)>,
    /// First joins waiting for their entry to be applied.
    pub(super) joins: HashMap<u64, J>,
    /// Presence entries in flight, kept to be appended again if the append fails.
    pub(super) presence: HashMap<u64, Append>,
    /// Presence entries that could not be appended, in order, and when to try again.
    pub(super) backlog: Vec<Append>,
    pub(super) retry_at: Option<Instant>,
}

impl<J> Default for LogState<J> {
    fn default() -> Self {
        LogState {
            outgoing: Vec::new(),
            tokens: Vec::new(),
            next_token: 0,
            posts: HashMap::new(),
            deadlines: VecDeque::new(),
            joins: HashMap::new(),
            presence: HashMap::new(),
            backlog: Vec::new(),
            retry_at: None,
        }
    }
}

impl<J> LogState<J> {
    pub(super) fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// When the home must be woken for the log: a post's deadline or the backlog's retry.
    pub fn next_wake(&self) -> Option<Instant> {
        let deadline = self.deadlines.front().map(|(at, _)| *at);
        match (deadline, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
