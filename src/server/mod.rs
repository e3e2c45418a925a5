//! The I/O: listeners, shard threads with their mio loops, connections and their buffers,
//! HTTP and WebSocket framing, and the cross-shard bus. Every protocol decision is the
//! per-shard [`crate::endpoint::Endpoint`]'s; this module must never make one.
//!
//! [`start`] binds one SO_REUSEPORT listener per shard, starts the shard threads and returns a
//! [`ServerHandle`] to learn the address, stop the server and wait for it.

mod admission;
mod bus;
mod conn;
mod listener;
pub mod proxy;
mod shard;
mod write_delay;
mod ws;

/// The `ws_reader` fuzz target's check (`server/ws/checks.rs`).
#[cfg(any(test, feature = "checks"))]
#[doc(hidden)]
pub use ws::checks as ws_checks;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::{Poll, Waker};

use crossbeam_channel::TrySendError;

use crate::config::ServerConfig;
use crate::endpoint::PeerMessage;
use crate::engineio::sid::MAX_SHARDS;
use crate::socketio::Handler;
use admission::Admission;
use bus::{BusMessage, Mailbox, Peers};
use shard::{Parts, Shard, WAKER};

pub use shard::ops::Ops;

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    /// Sends every shard its Shutdown message (the bus is typed by the application).
    stop: Box<dyn Fn() + Send + Sync>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl ServerHandle {
    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Ask every shard to stop: no new connections and no more client input; the shards
    /// finish the messages they forwarded each other and deliver their acks (up to 1.5 s,
    /// `shard/shutdown.rs`); then every session gets a close and output is written for up to two
    /// seconds. Returns at once; [`ServerHandle::join`] waits.
    pub fn shutdown(&self) {
        (self.stop)();
    }

    /// Wait for every shard thread to end; the first error any returned.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.threads {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a shard thread panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

/// Start the server with `config.shards` shard threads running `handler` (counting metrics,
/// serving nothing but Engine.IO).
pub fn start<H: Handler>(config: ServerConfig, handler: H) -> io::Result<ServerHandle> {
    let ops = Ops::counting_only(config.shards);
    start_with(config, handler, ops)
}

/// Hands application messages to the shards from the application's own threads (cluster
/// mode's log applier): each reaches [`Handler::on_forward`] of its shard, in the order given.
pub struct Injector<F> {
    peers: Peers<F>,
}

impl<F> Injector<F> {
    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.peers.len()
    }

    /// Queue `message` for `shard` and wake it. The caller is not a shard, so a full inbox is
    /// waited out (back-pressure: every message arrives, in order); `Err` gives the message
    /// back if the shard has ended (the server is shutting down).
    pub fn forward(&self, shard: usize, message: F) -> Result<(), F> {
        let Some(mailbox) = self.peers.mailboxes.get(shard) else {
            return Err(message);
        };
        let mut message = BusMessage::Peer(PeerMessage::Forward(message));
        loop {
            match mailbox.sender.try_send(message) {
                Ok(()) => {
                    self.peers.wake(shard);
                    return Ok(());
                }
                Err(TrySendError::Full(back)) => {
                    message = back;
                    self.peers.wake(shard);
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                Err(TrySendError::Disconnected(back)) => {
                    return match back {
                        BusMessage::Peer(PeerMessage::Forward(f)) => Err(f),
                        // Only a Forward was sent.
                        _ => Ok(()),
                    };
                }
            }
        }
    }
}

/// [`start`], with the operational routes and counters `ops` says (see [`Ops`]).
pub fn start_with<H: Handler>(
    config: ServerConfig,
    handler: H,
    ops: Ops,
) -> io::Result<ServerHandle> {
    start_injectable(config, handler, ops).map(|(server, _)| server)
}

/// [`start_with`], also giving an [`Injector`] for the application's own threads.
pub fn start_injectable<H: Handler>(
    config: ServerConfig,
    handler: H,
    ops: Ops,
) -> io::Result<(ServerHandle, Injector<H::Forward>)> {
    let shards = config.shards.clamp(1, MAX_SHARDS);
    let listeners = listener::bind_shared(config.listen, shards)?;
    let local_addr = listeners
        .first()
        .ok_or_else(|| io::Error::other("no listener"))?
        .local_addr()?;
    let config = Arc::new(config);
    let handler = Arc::new(handler);

    let mut polls = Vec::with_capacity(shards);
    let mut mailboxes = Vec::with_capacity(shards);
    let mut inboxes = Vec::with_capacity(shards);
    for _ in 0..shards {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (sender, receiver) = crossbeam_channel::bounded(config.bus_capacity);
        mailboxes.push(Mailbox { sender, waker });
        inboxes.push(receiver);
        polls.push(poll);
    }
    let peers = Peers {
        mailboxes: Arc::new(mailboxes),
    };
    let admission = Admission::new(config.max_connections, config.max_connections_per_ip);

    let mut threads = Vec::with_capacity(shards);
    for (index, ((poll, listener), inbox)) in
        polls.into_iter().zip(listeners).zip(inboxes).enumerate()
    {
        let shard = Shard::new(Parts {
            index,
            config: Arc::clone(&config),
            handler: Arc::clone(&handler),
            poll,
            listener,
            peers: peers.clone(),
            inbox,
            admission: Arc::clone(&admission),
            ops: ops.clone(),
        })?;
        let thread = std::thread::Builder::new()
            .name(format!("shard-{index}"))
            .spawn(move || shard.run())?;
        threads.push(thread);
    }
    let injector = Injector {
        peers: peers.clone(),
    };
    let server = ServerHandle {
        local_addr,
        stop: Box::new(move || stop_all(&peers)),
        threads,
    };
    Ok((server, injector))
}

/// Ask every shard to shut down. A full bus is retried for a second, then the wake alone is
/// sent (the shard drains its inbox and sees Shutdown on a later turn).
fn stop_all<F>(peers: &Peers<F>) {
    for shard in 0..peers.len() {
        for _ in 0..100 {
            if peers.send(shard, BusMessage::Shutdown).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        peers.wake(shard);
    }
}
