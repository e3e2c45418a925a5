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
//! An idle connection holds no reading state: a [`Reader`] (tungstenite's context and its
//! read buffer, ~500 bytes) is made when input arrives and can be dropped once everything
//! read has been taken and it is [at rest](Reader::at_rest): the bytes given to it ended
//! exactly at a frame's end, outside a fragmented message, on an open WebSocket. Whether they
//! did is tracked by [`FrameScan`] from the frame headers (RFC 6455 §5.2) as tungstenite
//! reads them; tungstenite alone validates them. The `ws_reader` fuzz check (`checks`) holds
//! the shard's way to one reader kept throughout, on streams cut into any pieces.
//!
//! Every close the server starts says why, in a close frame with RFC 6455's status code
//! ([`WsClose`]; the mapping is in docs/LIMITS.md). This module never closes a socket itself:
//! it reports what the peer did ([`Inbound`]) and writes frames; the shard decides.

use std::io::{self, Read, Write};

use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

use crate::engineio::violation::Violation;

#[cfg(any(test, feature = "checks"))]
pub mod checks;

/// Opcode of a text frame with FIN set.
const TEXT: u8 = 0x81;
/// Opcode of a binary frame with FIN set.
const BINARY: u8 = 0x82;

/// Input capacity kept once everything read has been taken: none, so an idle connection
/// holds no input buffer (inbound messages are far rarer than deliveries).
const RETAINED_INPUT: usize = 0;

/// A connection's buffers: bytes read from the socket and not yet taken (by the HTTP
/// framing, or given to tungstenite), and the output not yet written.
#[derive(Default)]
pub struct Buffers {
    pub input: Vec<u8>,
    /// How much of `input` tungstenite has taken.
    pub taken: usize,
    pub output: Vec<u8>,
}

/// The adapter tungstenite reads from and writes to: a connection's [`Buffers`], and the
/// scan of the frames tungstenite is given.
struct Feed<'a> {
    buffers: &'a mut Buffers,
    scan: &'a mut FrameScan,
}

impl Read for Feed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let buffers = &mut *self.buffers;
        let rest = buffers.input.get(buffers.taken..).unwrap_or_default();
        if rest.is_empty() {
            buffers.input.clear();
            if buffers.input.capacity() > RETAINED_INPUT {
                // A large message passed; an idle connection keeps no big buffer.
                buffers.input = Vec::new();
            }
            buffers.taken = 0;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(rest.len());
        for (slot, byte) in buf.iter_mut().zip(rest) {
            *slot = *byte;
        }
        self.scan.feed(rest.get(..n).unwrap_or_default());
        buffers.taken += n;
        Ok(n)
    }
}

impl Write for Feed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffers.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The longest client frame header: two bytes, an eight-byte length, a four-byte mask key.
const MAX_HEADER_BYTES: usize = 14;

/// Where the bytes given to tungstenite stand in the peer's frame sequence (RFC 6455 §5.2):
/// inside a header, inside a payload, or between frames; and whether a fragmented message
/// is open (a text or binary frame without FIN, until a continuation frame with FIN; control
/// frames may come in between, §5.4). Only the framing is read here, never judged: a header
/// tungstenite refuses closes the connection anyway.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FrameScan {
    /// The header bytes of the frame begun, while its header is incomplete.
    header: [u8; MAX_HEADER_BYTES],
    /// How many of `header` are filled (0 between frames and inside a payload).
    have: u8,
    /// Payload bytes of the current frame not yet seen.
    payload_left: u64,
    /// A data frame without FIN was seen, and no final continuation frame since.
    fragmented: bool,
}

impl FrameScan {
    /// Account for the next bytes of the peer's stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.payload_left -= skip as u64;
                bytes = bytes.get(skip..).unwrap_or_default();
                continue;
            }
            let Some((&byte, rest)) = bytes.split_first() else {
                return;
            };
            bytes = rest;
            if let Some(slot) = self.header.get_mut(usize::from(self.have)) {
                *slot = byte;
                self.have += 1;
            }
            if let Some(len) = self.header_length() {
                self.end_header(len);
            }
        }
    }

    /// The payload length once the header is complete.
    fn header_length(&self) -> Option<u64> {
        let have = usize::from(self.have);
        let second = *self.header.get(1)?;
        if have < 2 {
            return None;
        }
        let extended = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        if have < 2 + extended + mask {
            return None;
        }
        let mut len = u64::from(second & 0x7f);
        if extended > 0 {
            len = self
                .header
                .get(2..2 + extended)?
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        }
        Some(len)
    }

    fn end_header(&mut self, len: u64) {
        let first = self.header[0];
        let fin = first & 0x80 != 0;
        match first & 0x0f {
            // Text or binary: begins a message, whole unless FIN is clear.
            1 | 2 => self.fragmented = !fin,
            // Continuation: the message ends with the one carrying FIN.
            0 if fin => self.fragmented = false,
            // Control frames (and anything tungstenite will refuse) leave it as it is.
            _ => {}
        }
        self.have = 0;
        self.payload_left = len;
    }

    /// Between two frames, and not inside a fragmented message.
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload_left == 0 && !self.fragmented
    }
}

/// The reading state of one server-side WebSocket: tungstenite's context (partial frames, a
/// fragmented message, a pong or close answer to send, the close state) and the scan of the
/// frames given to it. Made when input arrives; see [`Reader::at_rest`] for when it may go.
pub struct Reader {
    context: WebSocketContext,
    scan: FrameScan,
}

impl Reader {
    /// A reader for a WebSocket accepted by our own HTTP handshake, refusing messages and
    /// frames over `max_payload` bytes.
    pub fn new(max_payload: usize) -> Reader {
        Reader {
            context: WebSocketContext::new(Role::Server, Some(config(max_payload))),
            scan: FrameScan::default(),
        }
    }

    /// Read the next complete message from the buffered input; tungstenite's control
    /// answers (pong, the close reply) go into `buffers.output`.
    pub fn read_message(&mut self, buffers: &mut Buffers) -> Inbound {
        let mut feed = Feed {
            buffers,
            scan: &mut self.scan,
        };
        read_message(&mut self.context, &mut feed)
    }

    /// After [`Reader::read_message`] returned [`Inbound::Pending`] (all input taken): true
    /// when this reader holds nothing a fresh one would not — the input given to it ended at
    /// a frame's end outside a fragmented message (so tungstenite holds no partial frame or
    /// message; its answers were flushed into the output), and the WebSocket is open. It
    /// may then be dropped and a new one made for the next input.
    pub fn at_rest(&self) -> bool {
        self.scan.at_boundary() && self.context.can_write()
    }
}

/// A WebSocket connection's reading state: nothing between messages, a [`Reader`] while input
/// is being read (module doc).
#[derive(Default)]
pub struct ReadState(Option<Box<Reader>>);

impl ReadState {
    /// Read the next complete message from `buffers`' input, refusing messages and frames
    /// over `max_payload` bytes. A reader is made when input waits and none is held, and
    /// dropped once it is at rest ([`Reader::at_rest`]) after taking everything, so an idle
    /// connection holds none.
    pub fn read_message(&mut self, buffers: &mut Buffers, max_payload: usize) -> Inbound {
        if self.0.is_none() {
            if buffers.input.len() <= buffers.taken {
                return Inbound::Pending;
            }
            self.0 = Some(Box::new(Reader::new(max_payload)));
        }
        let Some(reader) = self.0.as_mut() else {
            return Inbound::Pending;
        };
        let inbound = reader.read_message(buffers);
        if matches!(inbound, Inbound::Pending) && reader.at_rest() {
            self.0 = None;
        }
        inbound
    }

    /// Whether a reader is held now (for the `ws_reader` check).
    #[cfg(any(test, feature = "checks"))]
    pub fn is_reading(&self) -> bool {
        self.0.is_some()
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
fn read_message(ws: &mut WebSocketContext, feed: &mut Feed<'_>) -> Inbound {
    loop {
        match ws.read(feed) {
            Ok(Message::Text(text)) => return Inbound::Text(text),
            Ok(Message::Binary(data)) => return Inbound::Binary(data),
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => continue,
            Ok(Message::Close(_)) => {
                let _ = ws.flush(feed);
                return Inbound::Closed;
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = ws.flush(feed);
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
        let mut buffers = Buffers {
            input: frame.to_vec(),
            ..Buffers::default()
        };
        match Reader::new(16).read_message(&mut buffers) {
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

    /// A client frame: FIN as given, masked with key 1,2,3,4, the shortest length form.
    fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [1u8, 2, 3, 4];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    #[test]
    fn tungstenite_reads_masked_client_frames_from_the_buffer() {
        let frame = client_frame(1, true, b"hi");
        let mut reader = Reader::new(1000);
        let mut buffers = Buffers {
            input: frame[..3].to_vec(),
            ..Buffers::default()
        };
        assert!(matches!(
            reader.read_message(&mut buffers),
            Inbound::Pending
        ));
        // Three bytes of a header given to tungstenite: the reader holds them.
        assert!(!reader.at_rest());
        buffers.input.extend_from_slice(&frame[3..]);
        match reader.read_message(&mut buffers) {
            Inbound::Text(t) => assert_eq!(t.as_str(), "hi"),
            _ => panic!("expected a text message"),
        }
        assert!(matches!(
            reader.read_message(&mut buffers),
            Inbound::Pending
        ));
        assert!(reader.at_rest());
    }

    /// Feed `stream` to a scan in pieces of `piece` bytes; whether it is at a boundary after
    /// each piece.
    fn boundaries(stream: &[u8], piece: usize) -> Vec<bool> {
        let mut scan = FrameScan::default();
        stream
            .chunks(piece)
            .map(|chunk| {
                scan.feed(chunk);
                scan.at_boundary()
            })
            .collect()
    }

    #[test]
    fn the_scan_is_at_a_boundary_only_between_whole_frames_of_whole_messages() {
        // Every header form: 7-bit, 16-bit and 64-bit lengths, and an empty payload.
        for len in [0usize, 5, 125, 126, 300, 65_535, 65_536, 70_000] {
            let frame = client_frame(2, true, &vec![7u8; len]);
            for piece in [1, 2, 3, 7, 13, 4096, frame.len()] {
                let at = boundaries(&frame, piece);
                let last = at.len() - 1;
                assert!(at[last], "len {len} piece {piece}: end of the frame");
                assert!(
                    at[..last].iter().all(|b| !b),
                    "len {len} piece {piece}: a boundary inside the frame"
                );
            }
        }
        // A fragmented text message with a ping between its fragments: at rest only after
        // the final continuation.
        let parts = [
            client_frame(1, false, b"4he"),
            client_frame(9, true, b"p"),
            client_frame(0, false, b"ll"),
            client_frame(0, true, b"o"),
        ];
        let mut scan = FrameScan::default();
        let mut after = Vec::new();
        for part in &parts {
            scan.feed(part);
            after.push(scan.at_boundary());
        }
        assert_eq!(after, [false, false, false, true]);
        // Two whole frames in one piece.
        let mut two = client_frame(1, true, b"42[]");
        two.extend(client_frame(10, true, b""));
        assert_eq!(boundaries(&two, two.len()), [true]);
    }

    #[test]
    fn dropping_idle_readers_changes_nothing_on_varied_streams() {
        // The `ws_reader` fuzz check on inputs from a fixed xorshift generator (more of them
        // run from fuzz/seeds in tests/fuzz_regressions.rs, and under the fuzzer).
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let len = (next() % 1500) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            checks::check(&data);
        }
    }

    #[test]
    fn a_reader_is_at_rest_after_a_whole_fragmented_message_and_not_inside_it() {
        let mut reader = Reader::new(1000);
        let mut buffers = Buffers {
            input: client_frame(1, false, b"4he"),
            ..Buffers::default()
        };
        assert!(matches!(
            reader.read_message(&mut buffers),
            Inbound::Pending
        ));
        assert!(!reader.at_rest(), "inside a fragmented message");
        // A ping between the fragments is answered at once.
        buffers.input = client_frame(9, true, b"p");
        assert!(matches!(
            reader.read_message(&mut buffers),
            Inbound::Pending
        ));
        assert_eq!(buffers.output, [0x8a, 1, b'p']);
        assert!(!reader.at_rest());
        buffers.input = client_frame(0, true, b"llo");
        match reader.read_message(&mut buffers) {
            Inbound::Text(t) => assert_eq!(t.as_str(), "4hello"),
            _ => panic!("expected the whole message"),
        }
        assert!(matches!(
            reader.read_message(&mut buffers),
            Inbound::Pending
        ));
        assert!(reader.at_rest());
        // After the peer's close, never at rest (the close state must be kept).
        buffers.input = client_frame(8, true, &[0x03, 0xe8]);
        assert!(matches!(reader.read_message(&mut buffers), Inbound::Closed));
        assert!(!reader.at_rest());
    }
}
