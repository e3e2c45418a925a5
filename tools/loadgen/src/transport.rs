//! One Socket.IO client connection over either Engine.IO transport. `connect` performs the
//! Engine.IO open and the Socket.IO CONNECT to `/`, then runs the connection in background
//! tasks: server pings are answered with pongs, every Engine.IO message packet (the text after
//! the `4`) is handed to the caller's handler, and packets queued on [`Conn::send`] are written
//! out. The scenarios see the same interface whichever transport is in use.

use crate::net::Target;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Which Engine.IO transport a client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Polling,
}

impl Transport {
    pub fn parse(s: &str) -> Result<Transport, String> {
        match s {
            "websocket" | "ws" => Ok(Transport::WebSocket),
            "polling" => Ok(Transport::Polling),
            _ => Err(format!("unknown transport {s:?} (websocket or polling)")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Polling => "polling",
        }
    }
}

/// What the writer task is asked to do.
pub enum Out {
    /// A whole Engine.IO packet, e.g. `42["chatMessage",...]` or `3`.
    Packet(String),
    /// Close the connection (WebSocket close frame / Engine.IO `1` over polling).
    Close,
}

/// A live connection: a queue to write to and a flag that turns true once it has ended.
#[derive(Clone)]
pub struct Conn {
    out: mpsc::UnboundedSender<Out>,
    closed: Arc<AtomicBool>,
}

impl Conn {
    pub(crate) fn new(out: mpsc::UnboundedSender<Out>, closed: Arc<AtomicBool>) -> Conn {
        Conn { out, closed }
    }

    /// Queues one Engine.IO packet; false when the connection is gone.
    pub fn send(&self, packet: String) -> bool {
        self.out.send(Out::Packet(packet)).is_ok()
    }

    /// Asks for an orderly close.
    pub fn close(&self) {
        let _ = self.out.send(Out::Close);
    }

    /// True once the connection has ended, for whatever reason.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Receives each Engine.IO message packet (without its leading `4`) in arrival order, with the
/// kernel's receive time of the read that completed it (ns since the Unix epoch, CLOCK_REALTIME)
/// where the transport has one (WebSocket; None over long-polling).
pub trait Handler: FnMut(&str, Option<u64>) + Send + 'static {}
impl<F: FnMut(&str, Option<u64>) + Send + 'static> Handler for F {}

/// Opens a Socket.IO session on `/` over `transport` from source address `src`.
pub async fn connect<H: Handler>(
    target: &Target,
    transport: Transport,
    src: Ipv4Addr,
    handler: H,
) -> io::Result<Conn> {
    match transport {
        Transport::WebSocket => crate::ws::connect(target, src, handler).await,
        Transport::Polling => crate::polling::connect(target, src, handler).await,
    }
}

/// An `io::Error` for a protocol violation by the server.
pub fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}
