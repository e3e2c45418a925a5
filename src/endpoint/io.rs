//! What crosses between the endpoint and the I/O around it: connection handles, the
//! transmits the endpoint asks for, a request's outcome, WebSocket closes, and the messages
//! shards send each other about sessions and rooms.
//!
//! Owns these shapes only. Must never hold a socket, a clock or a channel: the I/O layer maps
//! each value to bytes, mio registrations and bus sends.

use std::sync::Arc;

use bytes::Bytes;

use super::timers::SessionRef;
use crate::engineio::packet::Frame;

/// One connection of the I/O layer, as the endpoint names it (the shard's slab key). A
/// handle stays valid until the endpoint is told the connection closed
/// ([`super::Endpoint::handle_conn_closed`]) or asks for it to close; the I/O layer never
/// reuses a handle within the loop turn that freed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub usize);

/// What became of a request given to [`super::Endpoint::handle_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Handled: drop `consumed` bytes (the head, and the body if one was read) from the
    /// front of the connection's input, then carry out the transmits.
    Done { consumed: usize },
    /// The body has not all arrived: call again with the same head once more bytes are in.
    NeedMore,
    /// The session belongs to shard `shard`: hand it the connection, its input untouched.
    HandOff { shard: usize },
}

/// One WebSocket message from a client (text borrowed from the I/O layer's buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage<'a> {
    Text(&'a str),
    Binary(Bytes),
}

/// The frames of one packet (and its attachments), kept together. One frame, the common
/// case, costs no allocation to share; several share one `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frames {
    One(Frame),
    Many(Arc<[Frame]>),
}

impl Frames {
    /// The frames of a slice (one shared allocation when there are several).
    pub fn from_slice(frames: &[Frame]) -> Frames {
        match frames {
            [one] => Frames::One(one.clone()),
            many => Frames::Many(Arc::from(many)),
        }
    }

    /// The frames of a packet just encoded (`socketio::packet_frames`), moved, not copied.
    pub fn from_vec(mut frames: Vec<Frame>) -> Frames {
        match (frames.pop(), frames.is_empty()) {
            (Some(one), true) => Frames::One(one),
            (Some(last), false) => {
                frames.push(last);
                Frames::Many(Arc::from(frames))
            }
            (None, _) => Frames::Many(Arc::from(frames)),
        }
    }

    pub fn as_slice(&self) -> &[Frame] {
        match self {
            Frames::One(frame) => std::slice::from_ref(frame),
            Frames::Many(frames) => frames,
        }
    }
}

/// Something the endpoint asks the I/O layer to do, in order, for one connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Append an HTTP answer to the output. With `keep_alive` the connection then reads its
    /// next request (a connection that was parked reads again: it may hold a pipelined
    /// one); without, it closes once the answer is written.
    Http {
        conn: ConnId,
        bytes: Vec<u8>,
        keep_alive: bool,
        /// A polling GET answered with a room broadcast's frames: it may wait like
        /// broadcast frames (`--write-delay`).
        broadcast: bool,
    },
    /// The request is held (a polling GET): read nothing more from the connection until a
    /// later [`Transmit::Http`] answers it; keep what arrives, within the head limit.
    Park { conn: ConnId },
    /// The WebSocket handshake is accepted: write `accept` (the 101 answer), then carry
    /// WebSocket frames both ways.
    AcceptWebSocket { conn: ConnId, accept: Vec<u8> },
    /// WebSocket data frames. `fan_out`: part of a large room fan-out, which the I/O layer
    /// may write after the turn's other output.
    Frames {
        conn: ConnId,
        frames: Frames,
        fan_out: bool,
        /// Part of a room broadcast (of any size): may wait up to `--write-delay` to coalesce
        /// with the next broadcast frames for the connection; answers never wait.
        broadcast: bool,
    },
    /// Write a close frame (when the connection is a WebSocket) and close the connection once
    /// it is out; the endpoint has forgotten the connection.
    CloseWebSocket { conn: ConnId, close: WsClose },
}

/// RFC 6455 §7.4.1 status codes the server sends.
pub mod status {
    /// The purpose of the connection is fulfilled: an Engine.IO or Socket.IO level close
    /// (heartbeat timeout, connect timeout, an invalid Engine.IO or Socket.IO packet).
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// A WebSocket protocol error (unmasked client frame, reserved opcode or bits, a bad
    /// continuation, a fragmented or oversized control frame).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A policy refusal (a second WebSocket for a session that has one; a reader so far
    /// behind that more than `--max-outbound-bytes` wait for it).
    pub const POLICY: u16 = 1008;
    /// A message or frame over maxPayload.
    pub const TOO_BIG: u16 = 1009;
}

/// Why the server closes a WebSocket: the status code of its close frame and a short reason
/// naming the cause (cut to 123 bytes at a character boundary when written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsClose {
    /// One of [`status`].
    pub code: u16,
    pub reason: String,
}

impl WsClose {
    pub fn new(code: u16, reason: impl Into<String>) -> WsClose {
        WsClose {
            code,
            reason: reason.into(),
        }
    }
}

/// A room broadcast, encoded once and shared by every shard.
#[derive(Debug)]
pub struct Broadcast {
    pub nsp: String,
    pub room: crate::socketio::handler::RoomId,
    pub frames: Frames,
    /// A socket not to deliver to: its shard and session.
    pub except: Option<(usize, SessionRef)>,
    /// Members whose join floor is at or above this are skipped.
    pub seq: Option<u64>,
}

/// What one shard's endpoint tells another's.
#[derive(Debug)]
pub enum PeerMessage<F> {
    Broadcast(Arc<Broadcast>),
    /// Frames for one socket of the receiving shard.
    EmitTo {
        session: SessionRef,
        nsp: String,
        frames: Frames,
    },
    /// An application message for [`crate::socketio::Handler::on_forward`].
    Forward(F),
    /// An application message for one socket of the receiving shard
    /// ([`crate::socketio::Handler::on_socket_forward`]).
    ToSocket {
        session: SessionRef,
        nsp: String,
        message: F,
    },
}

/// Something for the I/O layer outside any connection.
#[derive(Debug)]
pub enum Event<F> {
    /// Send `message` to shard `shard` (and wake it before this turn's writes).
    ToPeer {
        shard: usize,
        message: PeerMessage<F>,
    },
}
