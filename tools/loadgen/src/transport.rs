//! One Socket.IO client connection over either Engine.IO transport. `connect` performs the
//! Engine.IO open and the Socket.IO CONNECT to `/`, then runs the connection in background
//! tasks: server pings are answered with pongs, every Engine.IO message packet (the text after
//! the `4`) is handed to the caller's handler, and packets queued on [`Conn::send`] are written
//! out. The scenarios see the same interface whichever transport is in use.
//!
//! The CONNECT may carry a payload (`40{"token":…}`, a recovery's `{"pid","offset"}`); the
//! server's answer `40{"sid":…,"pid":…}` is returned as a [`ConnectAnswer`]. [`Conn::kill`]
//! drops a connection the way a lost network does: no close frame, no Engine.IO close packet,
//! the sockets simply closed.

use crate::net::Target;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

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

/// A live connection: a queue to write to, a flag that turns true once it has ended, and its
/// reader and writer tasks (which own its sockets).
#[derive(Clone)]
pub struct Conn {
    out: mpsc::UnboundedSender<Out>,
    closed: Arc<AtomicBool>,
    tasks: Arc<Vec<AbortHandle>>,
    answer: Arc<ConnectAnswer>,
}

impl Conn {
    pub(crate) fn new(
        out: mpsc::UnboundedSender<Out>,
        closed: Arc<AtomicBool>,
        tasks: Vec<AbortHandle>,
        answer: ConnectAnswer,
    ) -> Conn {
        Conn {
            out,
            closed,
            tasks: Arc::new(tasks),
            answer: Arc::new(answer),
        }
    }

    /// The server's answer to this connection's CONNECT.
    pub fn answer(&self) -> &ConnectAnswer {
        &self.answer
    }

    /// Drops the connection abruptly, as a lost network would: the reader and writer tasks are
    /// aborted, which closes their sockets with nothing more written (no WebSocket close frame,
    /// no Engine.IO `1`). The handler sees no packet after the task stops; packets the kernel
    /// had received but the task had not read are discarded with the socket.
    pub fn kill(&self) {
        for t in self.tasks.iter() {
            t.abort();
        }
        self.closed.store(true, Ordering::Relaxed);
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

/// The server's answer to a Socket.IO CONNECT to `/`: `40{"sid":…}` plus, with connection
/// state recovery on, `"pid"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectAnswer {
    /// The Socket.IO socket id (socket.io-client's `socket.id`).
    pub sid: String,
    /// The private id a later CONNECT presents to recover this session; None without recovery.
    pub pid: Option<String>,
    /// When this process read the answer (ns since the Unix epoch, CLOCK_REALTIME).
    pub read_ns: u64,
}

impl ConnectAnswer {
    /// Parses a `40…` packet (Engine.IO `4` + Socket.IO CONNECT `0` + JSON object); an error
    /// for anything without a string `sid`.
    pub fn parse(packet: &str) -> io::Result<ConnectAnswer> {
        let read_ns = crate::proto::now_ns();
        let body = packet
            .strip_prefix("40")
            .ok_or_else(|| protocol_error(format!("not a CONNECT answer: {packet}")))?;
        let v: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| protocol_error(format!("CONNECT answer {packet:?}: {e}")))?;
        let sid = v
            .get("sid")
            .and_then(|s| s.as_str())
            .ok_or_else(|| protocol_error(format!("CONNECT answer without sid: {packet}")))?;
        Ok(ConnectAnswer {
            sid: sid.to_string(),
            pid: v.get("pid").and_then(|p| p.as_str()).map(str::to_string),
            read_ns,
        })
    }
}

/// Opens a Socket.IO session on `/` over `transport` from source address `src`, sending
/// `payload` (a JSON object's text, e.g. `{"token":"…"}`) in the CONNECT when given.
/// Errors: connect failures, a refused CONNECT (`44…`), a malformed answer.
pub async fn connect<H: Handler>(
    target: &Target,
    transport: Transport,
    src: Ipv4Addr,
    payload: Option<&str>,
    handler: H,
) -> io::Result<Conn> {
    match transport {
        Transport::WebSocket => crate::ws::connect(target, src, payload, handler).await,
        Transport::Polling => crate::polling::connect(target, src, payload, handler).await,
    }
}

/// An `io::Error` for a protocol violation by the server.
pub fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_answers_give_sid_and_pid() {
        let a = ConnectAnswer::parse(r#"40{"sid":"s-1","pid":"p_2"}"#).unwrap();
        assert_eq!((a.sid.as_str(), a.pid.as_deref()), ("s-1", Some("p_2")));
        let b = ConnectAnswer::parse(r#"40{"sid":"s-1"}"#).unwrap();
        assert_eq!(b.pid, None);
        assert!(ConnectAnswer::parse("40").is_err());
        assert!(ConnectAnswer::parse(r#"40{"pid":"x"}"#).is_err());
        assert!(ConnectAnswer::parse(r#"44{"message":"no"}"#).is_err());
    }
}
