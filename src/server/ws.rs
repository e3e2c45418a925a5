//! WebSocket framing over a connection's own buffers.
//!
//! Inbound frames go through tungstenite's `WebSocketContext` (unmasking, fragmentation,
//! control frames, UTF-8 checks, size limits), fed from the connection's input buffer by a
//! small adapter that never blocks. Outbound data frames are written here directly: a server
//! frame is a two-to-ten byte header and the payload, and writing it ourselves lets one
//! encoded broadcast be copied straight into each connection's output buffer. Control frames
//! tungstenite queues (pongs, the close answer) are flushed into the same buffer after every
//! read, so whole frames never interleave.
//!
//! Every close the server starts says why, in a close frame with RFC 6455's status code
//! ([`WsClose`]; the mapping is in docs/LIMITS.md). This module never closes a socket itself:
//! it reports what the peer did ([`Inbound`]) and writes frames; the shard decides.

use std::io::{self, Read, Write};

use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::engineio::violation::Violation;

/// Opcode of a text frame with FIN set.
const TEXT: u8 = 0x81;
/// Opcode of a binary frame with FIN set.
const BINARY: u8 = 0x82;

/// Input capacity kept once everything read has been taken: none, so an idle connection
/// holds no input buffer (inbound messages are far rarer than deliveries).
const RETAINED_INPUT: usize = 0;

/// The adapter tungstenite reads from and writes to: bytes read from the socket and not yet
/// given to tungstenite, and the connection's output buffer.
#[derive(Default)]
pub struct Buffers {
    pub input: Vec<u8>,
    /// How much of `input` tungstenite has taken.
    pub taken: usize,
    pub output: Vec<u8>,
}

impl Read for Buffers {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = self.input.get(self.taken..).unwrap_or_default();
        if rest.is_empty() {
            self.input.clear();
            if self.input.capacity() > RETAINED_INPUT {
                // A large message passed; an idle connection keeps no big buffer.
                self.input = Vec::new();
            }
            self.taken = 0;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(rest.len());
        for (slot, byte) in buf.iter_mut().zip(rest) {
            *slot = *byte;
        }
        self.taken += n;
        Ok(n)
    }
}

impl Write for Buffers {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tungstenite's read buffer at rest: small, because idle connections must cost little; it
/// grows to fit a large frame while one arrives.
const READ_BUFFER_BYTES: usize = 32;

/// tungstenite's limits tightened to ours: a message or frame may not exceed maxPayload, and
/// its write buffer is flushed into ours at once.
pub fn config(max_payload: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
        .write_buffer_size(0)
}

/// A server-side WebSocket over [`Buffers`], after our own HTTP handshake.
pub fn server_socket(max_payload: usize, buffers: Buffers) -> WebSocket<Buffers> {
    WebSocket::from_raw_socket(buffers, Role::Server, Some(config(max_payload)))
}

pub use crate::endpoint::io::{status, WsClose};

/// The most reason text a close frame carries (125 payload bytes less the status code).
const MAX_REASON_BYTES: usize = 123;

/// The close for what tungstenite refused in the peer's frames.
fn close_for_error(error: &tungstenite::Error) -> WsClose {
    use tungstenite::Error;
    match error {
        Error::Capacity(e) => WsClose::new(status::TOO_BIG, format!("over maxPayload: {e}")),
        Error::Utf8(_) => WsClose::new(status::INVALID_DATA, "invalid UTF-8 in a text frame"),
        other => WsClose::new(status::PROTOCOL_ERROR, other.to_string()),
    }
}

/// What one read produced.
pub enum Inbound {
    Text(tungstenite::Utf8Bytes),
    Binary(bytes::Bytes),
    /// More bytes are needed.
    Pending,
    /// The peer closed (its close frame answered): close the connection once that is out.
    Closed,
    /// The peer broke the WebSocket protocol or a limit: close with this frame.
    Refused(WsClose, Violation),
}

/// Read the next complete message from the buffered input.
pub fn read_message(ws: &mut WebSocket<Buffers>) -> Inbound {
    loop {
        match ws.read() {
            Ok(Message::Text(text)) => return Inbound::Text(text),
            Ok(Message::Binary(data)) => return Inbound::Binary(data),
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => continue,
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return Inbound::Closed;
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = ws.flush();
                return Inbound::Pending;
            }
            // The close handshake is over, or the connection was already closed.
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Inbound::Closed
            }
            Err(e) => {
                let close = close_for_error(&e);
                let violation = match close.code {
                    status::TOO_BIG => Violation::WebSocketTooBig,
                    status::INVALID_DATA => Violation::WebSocketUtf8,
                    _ => Violation::WebSocketFrame,
                };
                return Inbound::Refused(close, violation);
            }
        }
    }
}

/// Append one unmasked data frame (text or binary) to `out`.
pub fn write_frame(out: &mut Vec<u8>, binary: bool, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    out.push(if binary { BINARY } else { TEXT });
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Append a close frame with `close`'s status code and reason to `out`.
pub fn write_close(out: &mut Vec<u8>, close: &WsClose) {
    let mut end = close.reason.len().min(MAX_REASON_BYTES);
    while !close.reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = close.reason.as_bytes().get(..end).unwrap_or_default();
    out.push(0x88);
    out.push((2 + reason.len()) as u8);
    out.extend_from_slice(&close.code.to_be_bytes());
    out.extend_from_slice(reason);
}

/// Where to cut a WebSocket connection's queued output so that a close frame appended after
/// the cut is the next thing its peer reads: the end of the server frame that byte `written`
/// falls in (a frame partly written must go out whole), or the start of the first frame not
/// yet begun. `output` must hold whole server frames from its first byte (unmasked, as
/// [`write_frame`] and [`write_close`] write them); `None` when it does not (the HTTP `101`
/// answer still in it, say), and the caller then closes without a frame.
pub fn frame_cut(output: &[u8], written: usize) -> Option<usize> {
    let mut pos = 0;
    while pos < output.len() {
        if written <= pos {
            return Some(pos);
        }
        let first = *output.get(pos)?;
        let second = *output.get(pos + 1)?;
        if first & 0x70 != 0
            || !matches!(first & 0x0f, 0 | 1 | 2 | 8 | 9 | 10)
            || second & 0x80 != 0
        {
            return None;
        }
        let (header, len) = match second & 0x7f {
            126 => (
                4,
                u16::from_be_bytes(output.get(pos + 2..pos + 4)?.try_into().ok()?) as u64,
            ),
            127 => (
                10,
                u64::from_be_bytes(output.get(pos + 2..pos + 10)?.try_into().ok()?),
            ),
            n => (2, u64::from(n)),
        };
        let end = pos
            .checked_add(header)?
            .checked_add(usize::try_from(len).ok()?)?;
        if end > output.len() {
            return None;
        }
        if written < end {
            return Some(end);
        }
        pos = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_cut_keeps_the_frame_in_progress_and_drops_the_rest() {
        let mut out = Vec::new();
        write_frame(&mut out, false, b"42[\"a\"]");
        let first = out.len();
        write_frame(&mut out, true, &[7u8; 300]);
        let second = out.len();
        write_frame(&mut out, false, &vec![b'x'; 70_000]);
        assert_eq!(frame_cut(&out, 0), Some(0));
        assert_eq!(frame_cut(&out, 1), Some(first));
        assert_eq!(frame_cut(&out, first), Some(first));
        assert_eq!(frame_cut(&out, first + 5), Some(second));
        assert_eq!(frame_cut(&out, second + 1), Some(out.len()));
        // Not whole frames from the start: an HTTP answer, a frame cut short, a masked one.
        assert_eq!(frame_cut(b"HTTP/1.1 101 Switching Protocols\r\n", 3), None);
        assert_eq!(frame_cut(&out[..out.len() - 1], second + 1), None);
        assert_eq!(frame_cut(&[0x81, 0x82, 1, 2, 3, 4, 5, 6], 1), None);
        // Everything written: nothing to cut.
        assert_eq!(frame_cut(&out, out.len()), None);
    }

    #[test]
    fn frame_headers_use_the_shortest_length_form() {
        let mut out = Vec::new();
        write_frame(&mut out, false, b"42");
        assert_eq!(out, [0x81, 2, b'4', b'2']);
        out.clear();
        write_frame(&mut out, true, &[0u8; 126]);
        assert_eq!(&out[..4], &[0x82, 126, 0, 126]);
        out.clear();
        write_frame(&mut out, true, &vec![0u8; 70_000]);
        assert_eq!(&out[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn close_frames_carry_the_code_and_a_reason_cut_at_a_character_boundary() {
        let mut out = Vec::new();
        write_close(&mut out, &WsClose::new(status::TOO_BIG, "big"));
        assert_eq!(out, [0x88, 5, 0x03, 0xf1, b'b', b'i', b'g']);
        out.clear();
        // 62 two-byte characters: 124 bytes, cut to 122 (not 123, inside a character).
        write_close(&mut out, &WsClose::new(status::NORMAL, "é".repeat(62)));
        assert_eq!(out[1], 2 + 122);
        assert_eq!(out.len(), 2 + 2 + 122);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }

    fn refusal_of(frame: &[u8]) -> Option<WsClose> {
        let mut ws = server_socket(
            16,
            Buffers {
                input: frame.to_vec(),
                ..Buffers::default()
            },
        );
        match read_message(&mut ws) {
            Inbound::Refused(close, _) => Some(close),
            _ => None,
        }
    }

    #[test]
    fn refused_frames_map_to_rfc_6455_codes() {
        // Unmasked client frame.
        assert_eq!(
            refusal_of(&[0x81, 0x02, b'4', b'0']).map(|c| c.code),
            Some(status::PROTOCOL_ERROR)
        );
        // Reserved opcode 3.
        assert_eq!(
            refusal_of(&[0x83, 0x80, 0, 0, 0, 0]).map(|c| c.code),
            Some(status::PROTOCOL_ERROR)
        );
        // Invalid UTF-8 in a text frame (mask of zeros).
        assert_eq!(
            refusal_of(&[0x81, 0x81, 0, 0, 0, 0, 0xff]).map(|c| c.code),
            Some(status::INVALID_DATA)
        );
        // 17 bytes over a limit of 16.
        let mut big = vec![0x82, 0x80 | 17, 0, 0, 0, 0];
        big.extend([0; 17]);
        assert_eq!(refusal_of(&big).map(|c| c.code), Some(status::TOO_BIG));
    }

    #[test]
    fn tungstenite_reads_masked_client_frames_from_the_buffer() {
        // "hi" masked with key 1,2,3,4 as a client would send it.
        let mut frame = vec![0x81, 0x82, 1, 2, 3, 4];
        frame.extend([b'h' ^ 1, b'i' ^ 2]);
        let mut ws = server_socket(
            1000,
            Buffers {
                input: frame[..3].to_vec(),
                ..Buffers::default()
            },
        );
        assert!(matches!(read_message(&mut ws), Inbound::Pending));
        ws.get_mut().input.extend_from_slice(&frame[3..]);
        match read_message(&mut ws) {
            Inbound::Text(t) => assert_eq!(t.as_str(), "hi"),
            _ => panic!("expected a text message"),
        }
    }
}
