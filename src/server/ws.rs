//! WebSocket framing over a connection's own buffers.
//!
//! Inbound frames go through tungstenite's `WebSocketContext` (unmasking, fragmentation,
//! control frames, UTF-8 checks, size limits), fed from the connection's input buffer by a
//! small adapter that never blocks. Outbound data frames are written here directly: a server
//! frame is a two-to-ten byte header and the payload, and writing it ourselves lets one
//! encoded broadcast be copied straight into each connection's output buffer. Control frames
//! tungstenite queues (pongs, the close answer) are flushed into the same buffer after every
//! read, so whole frames never interleave.

use std::io::{self, Read, Write};

use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

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
        buf[..n].copy_from_slice(&rest[..n]);
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

/// What one read produced.
pub enum Inbound {
    Text(tungstenite::Utf8Bytes),
    Binary(bytes::Bytes),
    /// More bytes are needed.
    Pending,
    /// The peer closed, or broke the WebSocket protocol: close the connection.
    Closed,
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
            Err(_) => return Inbound::Closed,
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

/// Append a close frame (status 1000) to `out`.
pub fn write_close(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x88, 0x02, 0x03, 0xe8]);
}

#[cfg(test)]
mod tests {
    use super::*;

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
