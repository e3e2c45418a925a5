//! The cross-shard bus: bounded crossbeam channels, one per shard, each paired with the
//! shard's mio `Waker`.
//!
//! Shards share nothing mutable (docs/ARCHITECTURE.md, principle 2); they send each other
//! connections to adopt and what their endpoints tell each other. Senders never block: a full channel is
//! reported to the caller, which drops the connection or counts the lost broadcast, because a
//! shard waiting on another shard could deadlock.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::Waker;

use crate::endpoint::PeerMessage;

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
