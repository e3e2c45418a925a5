//! The bytes on the wire: the WebSocket upgrade answer (request read with httparse, the
//! accept key from tungstenite) and RFC 6455 frames — reading the client's masked frames and
//! writing the server's unmasked ones. Nothing here touches a socket.
//!
//! Deliberately not validated (this is a measuring instrument facing one known client, see
//! the crate doc): the upgrade request's method, version and headers other than
//! `Sec-WebSocket-Key`; a client frame's RSV bits, masking and fragmentation (a fragmented
//! message is not reassembled: each frame is taken as a whole message); UTF-8.

/// What the front of a connection's input holds.
pub enum Request {
    /// Not a whole request head yet.
    Partial,
    /// A WebSocket upgrade: the 101 answer to write, and the head's length to consume.
    Upgrade { answer: Vec<u8>, len: usize },
    /// Anything else (no `Sec-WebSocket-Key`, or not HTTP): answer 400 and close.
    Refused,
}

/// Reads an HTTP request head off the front of `input`.
pub fn read_request(input: &[u8]) -> Request {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(input) {
        Ok(httparse::Status::Partial) => Request::Partial,
        Ok(httparse::Status::Complete(len)) => {
            let key = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                .map(|h| h.value);
            match key {
                Some(key) => {
                    let accept = tungstenite::handshake::derive_accept_key(key);
                    let answer = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                    );
                    Request::Upgrade {
                        answer: answer.into_bytes(),
                        len,
                    }
                }
                None => Request::Refused,
            }
        }
        Err(_) => Request::Refused,
    }
}

/// The 400 answer to anything but a WebSocket upgrade.
pub const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// One client frame read off the front of the input.
pub enum Frame {
    /// Not a whole frame yet.
    Partial,
    /// A text or binary frame's unmasked payload, and the frame's length in the input.
    Data { payload: Vec<u8>, len: usize },
    /// A close frame (answer with a close and end the connection).
    Close,
    /// A ping, pong or continuation frame, skipped; its length in the input.
    Skip { len: usize },
}

/// Reads one frame off the front of `input` (RFC 6455 §5.2).
pub fn read_frame(input: &[u8]) -> Frame {
    let (Some(&b0), Some(&b1)) = (input.first(), input.get(1)) else {
        return Frame::Partial;
    };
    let opcode = b0 & 0x0f;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => match input.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Frame::Partial,
        },
        127 => match input.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Frame::Partial,
        },
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        match input.get(at..at + 4) {
            Some(m) => {
                at += 4;
                [m[0], m[1], m[2], m[3]]
            }
            None => return Frame::Partial,
        }
    } else {
        [0; 4]
    };
    let Ok(len) = usize::try_from(len) else {
        return Frame::Close;
    };
    let end = at.saturating_add(len);
    let Some(payload) = input.get(at..end) else {
        return Frame::Partial;
    };
    match opcode {
        0x1 | 0x2 => Frame::Data {
            payload: payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect(),
            len: end,
        },
        0x8 => Frame::Close,
        _ => Frame::Skip { len: end },
    }
}

/// Appends one unmasked text frame holding `payload` to `out`.
pub fn write_text(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
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

/// A close frame with status 1000 and no reason.
pub const CLOSE: &[u8] = &[0x88, 0x02, 0x03, 0xe8];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_client_frame_is_read_whole_or_not_at_all() {
        // "40" masked with 1,2,3,4.
        let frame = [0x81, 0x82, 1, 2, 3, 4, b'4' ^ 1, b'0' ^ 2, 0xff];
        for cut in 0..8 {
            assert!(matches!(read_frame(&frame[..cut]), Frame::Partial), "{cut}");
        }
        match read_frame(&frame) {
            Frame::Data { payload, len } => {
                assert_eq!(payload, b"40");
                assert_eq!(len, 8);
            }
            _ => panic!("not a data frame"),
        }
    }

    #[test]
    fn server_frames_use_the_short_and_16_bit_lengths() {
        let mut out = Vec::new();
        write_text(&mut out, b"2");
        assert_eq!(out, [0x81, 1, b'2']);
        out.clear();
        write_text(&mut out, &[b'x'; 200]);
        assert_eq!(&out[..4], &[0x81, 126, 0, 200]);
        assert_eq!(out.len(), 204);
    }
}
