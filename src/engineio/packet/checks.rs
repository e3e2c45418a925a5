//! The round-trip check of the Engine.IO packet and polling-payload codec (its parent,
//! `engineio::packet`): the `eio_payload` fuzz target, its regression replay
//! (`tests/fuzz_regressions.rs`) and the codec's unit tests all call [`check`]. Built only for
//! tests and with the `checks` feature (the fuzz build and `tests/` turn it on).
//!
//! Every input is used twice.
//!
//! 1. As a polling body, given to [`decode_payload`] as is. Beyond "never panics":
//!    - the result agrees with decoding record by record: not UTF-8 is `InvalidUtf8`; otherwise
//!      the body splits on `\x1e` into exactly as many packets as records, each `b` record is
//!      its standard, padded base64 and each other record is [`decode_text`] of it, and an error is the error of
//!      the first record that fails;
//!    - every body that decodes round-trips: its packets, turned into the [`Frame`]s a server
//!      would send (`Message(t)` → `Frame::message(&t)`, `Binary(b)` → `Frame::Binary(b)`, the
//!      others → their text packet) and joined by [`encode_payload`], decode to the same
//!      packets; the encoding is exactly as long as the frames' [`Frame::polling_len`] plus
//!      one separator between each two, and encoding is canonical (decoding and re-encoding
//!      the output gives the same bytes).
//! 2. As a list of frames (see [`frames_from`]), encoded with [`encode_payload`] and decoded
//!    again: the packets are exactly the ones the frames stand for, and the length matches
//!    `polling_len`. This covers arbitrary binary contents, which the first direction only
//!    reaches through valid base64. Text payloads here never contain `\x1e`: a polling payload
//!    cannot carry one (the separator is not escaped), so such a frame cannot round-trip and
//!    is not generated.
//!
//! The input as lossy UTF-8 also goes to [`decode_text`]: `Empty` exactly for "", `UnknownType`
//! exactly for a first byte outside `0`..=`6`, and a decoded packet's payload is the text
//! after the type digit.

// A check reports a broken invariant by panicking (libFuzzer and the regression test catch the
// panic and keep the input): the crate's no-panic lints do not apply here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use crate::engineio::packet::{
    decode_payload, decode_text, encode_payload, EioDecodeError, EioPacket, Frame, RECORD_SEPARATOR,
};
use bytes::Bytes;

/// Check the codec on `data` (the module doc says how); panics when an invariant fails.
pub fn check(data: &[u8]) {
    check_text(&String::from_utf8_lossy(data));
    check_payload(data);
    check_frames(data);
}

/// The frame a server would send for a packet (the mapping of the module doc).
fn frame_for(packet: &EioPacket) -> Frame {
    match packet {
        EioPacket::Open(s) => Frame::text(b'0', s.as_bytes()),
        EioPacket::Close => Frame::text(b'1', b""),
        EioPacket::Ping(s) => Frame::text(b'2', s.as_bytes()),
        EioPacket::Pong(s) => Frame::text(b'3', s.as_bytes()),
        EioPacket::Message(t) => Frame::message(t),
        EioPacket::Binary(b) => Frame::Binary(b.clone()),
        EioPacket::Upgrade => Frame::text(b'5', b""),
        EioPacket::Noop => Frame::text(b'6', b""),
    }
}

/// Encode `frames` as one polling payload, checking its length against `polling_len`.
fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_payload(frames, &mut out);
    let expected: usize =
        frames.iter().map(Frame::polling_len).sum::<usize>() + frames.len().saturating_sub(1);
    assert_eq!(
        out.len(),
        expected,
        "encoded length vs polling_len: {frames:?}"
    );
    out
}

fn check_text(text: &str) {
    match decode_text(text) {
        Ok(packet) => {
            let first = text.as_bytes()[0];
            assert!((b'0'..=b'6').contains(&first), "{text:?} -> {packet:?}");
            let rest = &text[1..];
            let payload = match &packet {
                EioPacket::Open(s)
                | EioPacket::Ping(s)
                | EioPacket::Pong(s)
                | EioPacket::Message(s) => Some(s.as_str()),
                EioPacket::Binary(_) => panic!("decode_text gave a binary packet for {text:?}"),
                EioPacket::Close | EioPacket::Upgrade | EioPacket::Noop => None,
            };
            if let Some(payload) = payload {
                assert_eq!(payload, rest, "{text:?}");
            }
            // The packet's own frame starts with the same type digit.
            let Frame::Text(bytes) = frame_for(&packet) else {
                panic!("text packet {packet:?} became a binary frame");
            };
            assert_eq!(bytes.first(), Some(&first));
        }
        Err(EioDecodeError::Empty) => assert!(text.is_empty()),
        Err(EioDecodeError::UnknownType(b)) => {
            assert_eq!(text.as_bytes().first(), Some(&b));
            assert!(!(b'0'..=b'6').contains(&b), "{text:?}");
        }
        Err(e) => panic!("decode_text({text:?}) gave {e:?}"),
    }
}

/// A separate statement of what a `b` record may hold (the rules documented on
/// `decode_base64_record`: what Node's `Buffer.from(s, "base64")` reads without dropping a
/// character), decoded by hand rather than with the base64 crate: JavaScript's ASCII white
/// space anywhere is skipped; `+`/`-` are 62 and `/`/`_` 63; `=` may only end the record (in
/// any number, or none); one character left over is refused; unused low bits are ignored.
fn node_lossless_base64(text: &str) -> Option<Vec<u8>> {
    let mut values = Vec::new();
    let mut padding = false;
    for b in text.bytes() {
        let value = match b {
            b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => continue,
            b'=' => {
                padding = true;
                continue;
            }
            _ if padding => return None,
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        values.push(u32::from(value));
    }
    if values.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    for group in values.chunks(4) {
        let bits = group
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, v)| acc | (v << (18 - 6 * i)));
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        out.extend_from_slice(&bytes[..group.len() - 1]);
    }
    Some(out)
}

fn check_payload(body: &[u8]) {
    let result = decode_payload(body);

    // What decoding record by record says.
    let expected = match std::str::from_utf8(body) {
        Err(_) => Err(EioDecodeError::InvalidUtf8),
        Ok(text) => text
            .split(RECORD_SEPARATOR as char)
            .map(|record| match record.strip_prefix('b') {
                Some(b64) => node_lossless_base64(b64)
                    .map(|bytes| EioPacket::Binary(Bytes::from(bytes)))
                    .ok_or(EioDecodeError::InvalidBase64),
                None => decode_text(record),
            })
            .collect::<Result<Vec<_>, _>>(),
    };
    assert_eq!(result, expected, "{:?}", String::from_utf8_lossy(body));

    let Ok(packets) = result else { return };
    assert!(!packets.is_empty());
    let records = body.iter().filter(|&&b| b == RECORD_SEPARATOR).count() + 1;
    assert_eq!(packets.len(), records);

    let frames: Vec<Frame> = packets.iter().map(frame_for).collect();
    let encoded = encode(&frames);
    let again = decode_payload(&encoded).unwrap_or_else(|e| {
        panic!(
            "re-encoded payload {:?} does not decode: {e}",
            String::from_utf8_lossy(&encoded)
        )
    });
    assert_eq!(again, packets, "{:?}", String::from_utf8_lossy(&encoded));
    // The encoding is canonical: a second round gives the same bytes.
    let frames2: Vec<Frame> = again.iter().map(frame_for).collect();
    assert_eq!(encode(&frames2), encoded);
}

/// Reads the input as frames: per frame a tag byte (`tag % 9`: 0..=6 a text packet of that
/// type digit, 7 a binary message, 8 `Frame::message`), a length byte and that many bytes of
/// content. Types `1`, `5` and `6` carry no payload (decoding drops one); text content is
/// lossy UTF-8 with every `\x1e` removed.
fn frames_from(data: &[u8]) -> Vec<(Frame, EioPacket)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [tag, len, after @ ..] = rest {
        let (body, after) = after.split_at(usize::from(*len).min(after.len()));
        rest = after;
        let text: String = String::from_utf8_lossy(body)
            .chars()
            .filter(|&c| c != RECORD_SEPARATOR as char)
            .collect();
        let pair = match tag % 9 {
            0 => (Frame::text(b'0', text.as_bytes()), EioPacket::Open(text)),
            1 => (Frame::text(b'1', b""), EioPacket::Close),
            2 => (Frame::text(b'2', text.as_bytes()), EioPacket::Ping(text)),
            3 => (Frame::text(b'3', text.as_bytes()), EioPacket::Pong(text)),
            4 => (Frame::text(b'4', text.as_bytes()), EioPacket::Message(text)),
            5 => (Frame::text(b'5', b""), EioPacket::Upgrade),
            6 => (Frame::text(b'6', b""), EioPacket::Noop),
            7 => {
                let bytes = Bytes::copy_from_slice(body);
                (Frame::Binary(bytes.clone()), EioPacket::Binary(bytes))
            }
            _ => (Frame::message(&text), EioPacket::Message(text)),
        };
        out.push(pair);
    }
    out
}

fn check_frames(data: &[u8]) {
    let (frames, packets): (Vec<Frame>, Vec<EioPacket>) = frames_from(data).into_iter().unzip();
    let encoded = encode(&frames);
    match decode_payload(&encoded) {
        Ok(back) => assert_eq!(back, packets, "{:?}", String::from_utf8_lossy(&encoded)),
        Err(e) => {
            // Only the empty payload (no frames at all) does not decode.
            assert!(frames.is_empty(), "{frames:?} encoded to {encoded:?}: {e}");
            assert_eq!(e, EioDecodeError::Empty);
        }
    }
}
