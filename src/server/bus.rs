//! The cross-shard bus: bounded crossbeam channels, one per shard, each paired with the
//! shard's mio `Waker`.
//!
//! Shards share nothing mutable (DESIGN.md, principle 2); they send each other connections to
//! adopt and broadcasts to deliver. Senders never block: a full channel is reported to the
//! caller, which drops the connection or counts the lost broadcast, because a shard waiting
//! on another shard could deadlock.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::Waker;

use crate::engineio::packet::Frame;

/// A room broadcast, encoded once and shared by every shard.
#[derive(Debug)]
pub struct Broadcast {
    pub nsp: String,
    pub room: String,
    pub frames: Vec<Frame>,
}

pub enum BusMessage {
    /// A connection whose request belongs to a session of the receiving shard; `input` holds
    /// the bytes already read from it (the request head at least), `output` what was queued
    /// for it and not yet written (an earlier answer on the keep-alive connection).
    HandOff {
        stream: mio::net::TcpStream,
        input: Vec<u8>,
        output: Vec<u8>,
    },
    Broadcast(Arc<Broadcast>),
    /// Stop accepting, close every session and exit the loop.
    Shutdown,
}

/// One shard's inbox, as seen by the others.
#[derive(Clone)]
pub struct Mailbox {
    pub sender: Sender<BusMessage>,
    pub waker: Arc<Waker>,
}

/// Every shard's mailbox, indexed by shard.
#[derive(Clone)]
pub struct Peers {
    pub mailboxes: Arc<Vec<Mailbox>>,
}

impl Peers {
    /// Queue a message for `shard` without waking it; returns the message if the channel is
    /// full or gone.
    pub fn send(&self, shard: usize, message: BusMessage) -> Result<(), BusMessage> {
        let Some(mailbox) = self.mailboxes.get(shard) else {
            return Err(message);
        };
        mailbox.sender.try_send(message).map_err(|e| match e {
            TrySendError::Full(m) | TrySendError::Disconnected(m) => m,
        })
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

/// A shard's receiving end.
pub type Inbox = Receiver<BusMessage>;
