//! Socket.IO v5, sans-IO: the packet codec, binary attachment reassembly, the per-session
//! namespace state, and the [`Handler`] API applications implement.
//!
//! Packets become Engine.IO [`Frame`]s here, once: a text frame (`4` + the Socket.IO text),
//! then one binary frame per attachment, always sent together.

pub mod binary;
pub mod conformance;
pub mod connection;
pub mod event_json;
pub mod handler;
pub mod json_limits;
pub mod json_text;
pub mod packet;
pub mod recovery;

use bytes::Bytes;

pub use handler::{Command, EngineMessage, Event, Handler, Refusal, Socket};
pub use packet::{Packet, PacketKind};

use crate::engineio::packet::Frame;

/// Encode a packet as the Engine.IO frames that carry it.
pub fn packet_frames(packet: &Packet) -> Vec<Frame> {
    let mut text = Vec::with_capacity(64);
    text.push(b'4');
    packet::encode_into(packet, &mut text);
    let mut frames = Vec::with_capacity(1 + packet.attachments.len());
    frames.push(Frame::Text(Bytes::from(text)));
    frames.extend(packet.attachments.iter().cloned().map(Frame::Binary));
    frames
}
