//! The cross-shard bus: bounded crossbeam channels, one per shard, each paired with the
//! shard's mio `Waker`.
//!
//! Shards share nothing mutable (docs/ARCHITECTURE.md, principle 2); they send each other
//! connections to adopt and what their endpoints tell each other. Senders never block, because
//! a shard waiting on another shard could deadlock: a message a full (or ended) inbox refuses is
//! dropped by [`Peers::send_or_drop`], which counts it in `readrealm_bus_dropped_total{kind}`
//! and logs it (throttled); the shutdown messages, which must arrive, are offered again by their
//! senders instead ([`Peers::offer`]).

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::Waker;

use crate::endpoint::PeerMessage;
use crate::metrics::ShardMetrics;

/// Log lines a second about dropped bus messages, all shards together: a shard hopelessly
/// behind must not also flood the log.
static DROP_LOG: crate::logging::Throttle = crate::logging::Throttle::new(10);

/// A message for one shard.
pub enum BusMessage<F> {
    /// A connection whose request belongs to a session of the receiving shard; `input` holds
    /// the bytes already read from it (the request head at least), `output` what was queued
    /// for it and not yet written (an earlier answer on the keep-alive connection).
    HandOff {
        stream: mio::net::TcpStream,
        input: Vec<u8>,
        output: Vec<u8>,
        /// When the connection was accepted.
        opened_at: std::time::Instant,
        /// Its place in the connection counts.
        admitted: super::admission::Admitted,
    },
    /// For the receiving shard's endpoint (a broadcast, frames for a socket, an
    /// application message).
    Peer(PeerMessage<F>),
    /// Stop accepting and reading clients, finish with the peers (`shutdown.rs`), close
    /// every session and exit the loop.
    Shutdown,
    /// A shutdown round's marker from shard `from`: everything that shard sent the receiver
    /// before it is ahead of it in the inbox (`shutdown.rs`).
    ShutdownMarker { from: usize, round: Round },
}

impl<F> BusMessage<F> {
    /// What the message is, as the `kind` label of `readrealm_bus_dropped_total` (one of
    /// [`crate::metrics::BUS_DROP_KINDS`]): `hand_off` (a connection: it is closed, its
    /// client retries), `broadcast` (a room message for the members on that shard), `emit`
    /// (frames for one socket: acks, answers), `forward` (an application message: a chat
    /// message for its room's home shard, which then never stores nor acks it, or the home's
    /// answer to a join, which then never puts the socket in the room), `shutdown`.
    pub fn kind(&self) -> &'static str {
        match self {
            BusMessage::HandOff { .. } => "hand_off",
            BusMessage::Peer(PeerMessage::Broadcast(_)) => "broadcast",
            BusMessage::Peer(PeerMessage::EmitTo { .. }) => "emit",
            BusMessage::Peer(PeerMessage::Forward(_) | PeerMessage::ToSocket { .. }) => "forward",
            BusMessage::Shutdown | BusMessage::ShutdownMarker { .. } => "shutdown",
        }
    }
}

/// The shutdown rounds, in order (`shutdown.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// The sender reads no more client input, so it forwards nothing more.
    NoMoreForwards = 0,
    /// The sender has handled every forward from every shard and sent their acks.
    AnswersSent = 1,
}

/// One shard's inbox, as seen by the others.
pub struct Mailbox<F> {
    pub sender: Sender<BusMessage<F>>,
    pub waker: Arc<Waker>,
}

/// Every shard's mailbox, indexed by shard.
pub struct Peers<F> {
    pub mailboxes: Arc<Vec<Mailbox<F>>>,
}

impl<F> Clone for Peers<F> {
    fn clone(&self) -> Self {
        Peers {
            mailboxes: Arc::clone(&self.mailboxes),
        }
    }
}

impl<F> Peers<F> {
    /// Queue a message for `shard` without waking it; returns the message if the channel is
    /// full or gone.
    pub fn send(&self, shard: usize, message: BusMessage<F>) -> Result<(), BusMessage<F>> {
        let Some(mailbox) = self.mailboxes.get(shard) else {
            return Err(message);
        };
        mailbox.sender.try_send(message).map_err(|e| match e {
            TrySendError::Full(m) | TrySendError::Disconnected(m) => m,
        })
    }

    /// [`Peers::send`] for a message that is not sent again if refused: a refused message is
    /// dropped, counted in `metrics` (the sending shard's block, `readrealm_bus_dropped_total`
    /// by [`BusMessage::kind`]) and logged at warn (at most 10 lines a second, all shards).
    /// True when it was queued (the caller then wakes `shard`).
    pub fn send_or_drop(
        &self,
        from: usize,
        shard: usize,
        message: BusMessage<F>,
        metrics: &ShardMetrics,
    ) -> bool {
        let (kind, full) = match self.mailboxes.get(shard) {
            Some(mailbox) => match mailbox.sender.try_send(message) {
                Ok(()) => return true,
                Err(TrySendError::Full(m)) => (m.kind(), true),
                Err(TrySendError::Disconnected(m)) => (m.kind(), false),
            },
            None => (message.kind(), false),
        };
        metrics.bus_dropped(kind);
        if crate::logging::enabled(crate::logging::Level::Warn) {
            if let Some(suppressed) = DROP_LOG.admit() {
                let (cause, fix) = if full {
                    (
                        "inbox full",
                        "the receiving shard is far behind: check readrealm_shard_busy_seconds_total \
                         and readrealm_shard_queue_depth; more cores or fewer connections per shard",
                    )
                } else {
                    ("shard ended", "none: the server is shutting down")
                };
                crate::log_warn!(
                    "bus_message_dropped",
                    from = from,
                    to = shard,
                    kind = kind,
                    cause = cause,
                    fix = fix,
                    suppressed_before = suppressed
                );
            }
        }
        false
    }

    /// [`Peers::send`], telling a full inbox from a shard that has ended (its inbox dropped).
    pub fn offer(&self, shard: usize, message: BusMessage<F>) -> Offer {
        let Some(mailbox) = self.mailboxes.get(shard) else {
            return Offer::Gone;
        };
        match mailbox.sender.try_send(message) {
            Ok(()) => Offer::Sent,
            Err(TrySendError::Full(_)) => Offer::Full,
            Err(TrySendError::Disconnected(_)) => Offer::Gone,
        }
    }

    /// Wake `shard` so it reads its inbox.
    pub fn wake(&self, shard: usize) {
        if let Some(mailbox) = self.mailboxes.get(shard) {
            // A failed wake means the shard is gone (shutting down); nothing to do.
            let _ = mailbox.waker.wake();
        }
    }

    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }
}

/// What became of a message given to [`Peers::offer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Sent,
    /// The shard's inbox is full; try again later.
    Full,
    /// The shard has ended (or never was): it reads nothing more.
    Gone,
}

/// A shard's receiving end.
pub type Inbox<F> = Receiver<BusMessage<F>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// One shard's bus of `capacity` messages (its waker on a poll of its own).
    fn bus(capacity: usize) -> (Peers<()>, Inbox<()>, mio::Poll) {
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let (sender, receiver) = crossbeam_channel::bounded(capacity);
        let peers = Peers {
            mailboxes: Arc::new(vec![Mailbox { sender, waker }]),
        };
        (peers, receiver, poll)
    }

    fn dropped(metrics: &Metrics, kind: &str) -> u64 {
        let line = format!("readrealm_bus_dropped_total{{kind=\"{kind}\"}} ");
        metrics
            .render(&[])
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {line} in /metrics"))
    }

    #[test]
    fn a_full_bus_counts_each_message_it_drops_by_kind() {
        let (peers, inbox, _poll) = bus(2);
        let metrics = Metrics::new(1);
        let shard = metrics.shard(0);
        let forward = || BusMessage::Peer(PeerMessage::Forward(()));
        assert!(peers.send_or_drop(0, 0, forward(), shard));
        assert!(peers.send_or_drop(0, 0, forward(), shard));
        assert_eq!(dropped(&metrics, "forward"), 0);
        // Full now: both of these are dropped, and counted under their own kinds.
        assert!(!peers.send_or_drop(0, 0, forward(), shard));
        assert!(!peers.send_or_drop(0, 0, BusMessage::Shutdown, shard));
        assert_eq!(dropped(&metrics, "forward"), 1);
        assert_eq!(dropped(&metrics, "shutdown"), 1);
        assert_eq!(dropped(&metrics, "broadcast"), 0);
        assert_eq!(inbox.len(), 2);
        // Read one: the next message fits again and is not counted.
        assert!(inbox.try_recv().is_ok());
        assert!(peers.send_or_drop(0, 0, forward(), shard));
        assert_eq!(dropped(&metrics, "forward"), 1);
    }

    #[test]
    fn a_message_for_an_ended_shard_is_counted_as_dropped() {
        let (peers, inbox, _poll) = bus(4);
        drop(inbox);
        let metrics = Metrics::new(1);
        let message = BusMessage::Peer(PeerMessage::Forward(()));
        assert!(!peers.send_or_drop(0, 0, message, metrics.shard(0)));
        assert!(!peers.send_or_drop(0, 7, BusMessage::Shutdown, metrics.shard(0)));
        assert_eq!(dropped(&metrics, "forward"), 1);
        assert_eq!(dropped(&metrics, "shutdown"), 1);
    }
}
