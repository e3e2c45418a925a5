//! Engine.IO v4 packets and polling payloads: the codec, nothing else.
//!
//! Owns the wire format of one packet (a type digit, then the payload) and of an HTTP
//! long-polling body (packets joined by the record separator `\x1e`, binary messages written
//! as `b` + base64). It never touches a socket or a clock, so unit tests and fuzz targets
//! drive it directly.
//!
//! Outbound packets are [`Frame`]s: encoded once (for a broadcast, once for every recipient)
//! and shared by reference count, because the same bytes go to every transport.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::Bytes;

/// The decoder of `b` records, after [`decode_base64_record`] has removed white space and
/// trailing `=`: the standard alphabet, no padding expected, and the unused low bits of the
/// last character ignored (as Node's decoder ignores them).
const BASE64_RECORD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The record separator between packets in a polling payload.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// One decoded inbound Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket {
    /// `0` + JSON: only servers send it; a client sending it is a protocol error upstream.
    Open(String),
    /// `1`
    Close,
    /// `2` + optional payload (`2probe` during an upgrade).
    Ping(String),
    /// `3` + optional payload (`3probe`).
    Pong(String),
    /// `4` + text.
    Message(String),
    /// A binary message: a WebSocket binary frame, or `b` + base64 in a polling payload.
    Binary(Bytes),
    /// `5`
    Upgrade,
    /// `6`
    Noop,
}

/// Why bytes did not decode as Engine.IO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioDecodeError {
    /// A packet with no type digit.
    Empty,
    /// The first character is not a known packet type.
    UnknownType(u8),
    /// A `b` record whose base64 does not decode.
    InvalidBase64,
    /// A polling payload that is not UTF-8.
    InvalidUtf8,
}

impl std::fmt::Display for EioDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "empty packet"),
            Self::UnknownType(b) => write!(f, "unknown packet type {:?}", *b as char),
            Self::InvalidBase64 => write!(f, "invalid base64 in binary record"),
            Self::InvalidUtf8 => write!(f, "payload is not UTF-8"),
        }
    }
}

impl std::error::Error for EioDecodeError {}

/// Decode one text packet (a WebSocket text frame, or one record of a polling payload that
/// does not start with `b`).
pub fn decode_text(text: &str) -> Result<EioPacket, EioDecodeError> {
    let first = *text.as_bytes().first().ok_or(EioDecodeError::Empty)?;
    // The first byte is ASCII here (checked by the match), so slicing at 1 is a char boundary.
    let rest = || text.get(1..).unwrap_or_default().to_owned();
    Ok(match first {
        b'0' => EioPacket::Open(rest()),
        b'1' => EioPacket::Close,
        b'2' => EioPacket::Ping(rest()),
        b'3' => EioPacket::Pong(rest()),
        b'4' => EioPacket::Message(rest()),
        b'5' => EioPacket::Upgrade,
        b'6' => EioPacket::Noop,
        other => return Err(EioDecodeError::UnknownType(other)),
    })
}

/// Decode a polling body into its packets, in order. An empty body is an error, as is any
/// record that does not decode: the caller ends the session (docs/PROTOCOL.md: a body that does not
/// decode is a 400).
pub fn decode_payload(body: &[u8]) -> Result<Vec<EioPacket>, EioDecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| EioDecodeError::InvalidUtf8)?;
    text.split(RECORD_SEPARATOR as char)
        .map(|record| match record.strip_prefix('b') {
            Some(b64) => {
                decode_base64_record(b64).map(|bytes| EioPacket::Binary(Bytes::from(bytes)))
            }
            None => decode_text(record),
        })
        .collect()
}

/// Decode the base64 of a `b` record the way the reference server does where that is
/// lossless, and refuse the rest.
///
/// engine.io on Node decodes `b` records with `Buffer.from(s, "base64")`, whose documented
/// rules are: ASCII white space anywhere is skipped, the URL-safe alphabet (`-`, `_`) is
/// accepted beside `+` and `/`, padding may be missing. Clients rely on this:
/// engine.io-client-java on Android encodes with `Base64.DEFAULT`, which ends every 76
/// characters and the whole text with a line feed. Accepted here, mirroring Node (checked
/// with node 20 on each case of the unit tests below):
///
/// - white space (space, `\t`, `\n`, `\v`, `\f`, `\r`) anywhere: skipped;
/// - `-` and `_`, also mixed with `+` and `/`: read as `+` and `/`;
/// - any number of `=` at the end (none, too few, too many): ignored;
/// - unused low bits in the last character (`AR==`): ignored.
///
/// Node also decodes, without an error, input it can only read by dropping characters:
/// other characters (`AQ!ID` gives 3 bytes), data after an `=` (`AQ==ID` gives 1), a single
/// character left over at the end (`AQIDB` gives 3). Those are refused here
/// ([`EioDecodeError::InvalidBase64`], a 400 that ends the session, as before), because no
/// client encodes that way and the bytes Node would hand the application are not the ones
/// sent.
pub fn decode_base64_record(b64: &str) -> Result<Vec<u8>, EioDecodeError> {
    let needs_cleaning = b64
        .bytes()
        .any(|b| is_js_ascii_space(b) || b == b'-' || b == b'_');
    let decoded = if needs_cleaning {
        let cleaned: Vec<u8> = b64
            .bytes()
            .filter(|&b| !is_js_ascii_space(b))
            .map(|b| match b {
                b'-' => b'+',
                b'_' => b'/',
                other => other,
            })
            .collect();
        BASE64_RECORD.decode(trim_padding(&cleaned))
    } else {
        BASE64_RECORD.decode(trim_padding(b64.as_bytes()))
    };
    decoded.map_err(|_| EioDecodeError::InvalidBase64)
}

/// ASCII white space as JavaScript's `\s` and Node's base64 decoder see it.
fn is_js_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `bytes` without the `=` at its end.
fn trim_padding(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., b'='] = bytes {
        bytes = rest;
    }
    bytes
}

/// An outbound Engine.IO packet, already encoded.
///
/// `Text` holds the whole packet including its type digit (`b"42[\"hi\"]"`, `b"2"`); `Binary`
/// holds a binary message's raw bytes. Cloning is a reference-count increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(Bytes),
    Binary(Bytes),
}

impl Frame {
    /// A text packet from a type digit and a payload.
    pub fn text(kind: u8, payload: &[u8]) -> Frame {
        let mut buf = Vec::with_capacity(1 + payload.len());
        buf.push(kind);
        buf.extend_from_slice(payload);
        Frame::Text(Bytes::from(buf))
    }

    /// A static packet such as `b"2"` or `b"6"`, with no allocation.
    pub const fn fixed(packet: &'static [u8]) -> Frame {
        Frame::Text(Bytes::from_static(packet))
    }

    /// `4` + text.
    pub fn message(text: &str) -> Frame {
        Frame::text(b'4', text.as_bytes())
    }

    /// Bytes this frame adds to a polling payload (without the separator).
    pub fn polling_len(&self) -> usize {
        match self {
            Frame::Text(b) => b.len(),
            Frame::Binary(b) => 1 + base64::encoded_len(b.len(), true).unwrap_or(usize::MAX),
        }
    }
}

pub const PING: Frame = Frame::fixed(b"2");
pub const PONG_PROBE: Frame = Frame::fixed(b"3probe");
pub const CLOSE: Frame = Frame::fixed(b"1");
pub const NOOP: Frame = Frame::fixed(b"6");

/// Append frames to `out` as one polling payload.
pub fn encode_payload<'a>(frames: impl IntoIterator<Item = &'a Frame>, out: &mut Vec<u8>) {
    for (i, frame) in frames.into_iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        match frame {
            Frame::Text(b) => out.extend_from_slice(b),
            Frame::Binary(b) => {
                out.push(b'b');
                let start = out.len();
                let len = base64::encoded_len(b.len(), true).unwrap_or(0);
                out.resize(start + len, 0);
                if let Some(dst) = out.get_mut(start..) {
                    // The slice is exactly the encoded length, so this cannot run short.
                    let _ = BASE64.encode_slice(b, dst);
                }
            }
        }
    }
}

/// The JSON body of the open packet: exactly the five keys docs/PROTOCOL.md lists.
pub fn open_packet(
    sid: &str,
    upgrades: &[&str],
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    max_payload: usize,
) -> Frame {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Open<'a> {
        sid: &'a str,
        upgrades: &'a [&'a str],
        ping_interval: u64,
        ping_timeout: u64,
        max_payload: usize,
    }
    let mut buf = vec![b'0'];
    let open = Open {
        sid,
        upgrades,
        ping_interval: ping_interval_ms,
        ping_timeout: ping_timeout_ms,
        max_payload,
    };
    // Serializing plain strings and numbers into a Vec cannot fail.
    if serde_json::to_writer(&mut buf, &open).is_err() {
        buf.truncate(1);
    }
    Frame::Text(Bytes::from(buf))
}

/// The round-trip check (fuzz target `eio_payload`), shared by the fuzz target, `tests/fuzz_regressions.rs`
/// and the unit tests below.
#[cfg(any(test, feature = "checks"))]
#[doc(hidden)]
pub mod checks;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_text_packet_type() {
        assert_eq!(decode_text("0{}").unwrap(), EioPacket::Open("{}".into()));
        assert_eq!(decode_text("1").unwrap(), EioPacket::Close);
        assert_eq!(decode_text("2").unwrap(), EioPacket::Ping(String::new()));
        assert_eq!(
            decode_text("2probe").unwrap(),
            EioPacket::Ping("probe".into())
        );
        assert_eq!(
            decode_text("3probe").unwrap(),
            EioPacket::Pong("probe".into())
        );
        assert_eq!(
            decode_text("4héllo").unwrap(),
            EioPacket::Message("héllo".into())
        );
        assert_eq!(decode_text("4").unwrap(), EioPacket::Message(String::new()));
        assert_eq!(decode_text("5").unwrap(), EioPacket::Upgrade);
        assert_eq!(decode_text("6").unwrap(), EioPacket::Noop);
    }

    #[test]
    fn rejects_empty_and_unknown_types() {
        assert_eq!(decode_text(""), Err(EioDecodeError::Empty));
        assert_eq!(decode_text("7"), Err(EioDecodeError::UnknownType(b'7')));
        assert_eq!(decode_text("é"), Err(EioDecodeError::UnknownType(0xc3)));
    }

    #[test]
    fn payload_splits_on_record_separator_and_decodes_binary() {
        let packets = decode_payload(b"4hello\x1ebAQIDBA==\x1e4world").unwrap();
        assert_eq!(
            packets,
            vec![
                EioPacket::Message("hello".into()),
                EioPacket::Binary(Bytes::from_static(&[1, 2, 3, 4])),
                EioPacket::Message("world".into()),
            ]
        );
    }

    #[test]
    fn payload_errors_end_the_decode() {
        assert_eq!(decode_payload(b""), Err(EioDecodeError::Empty));
        assert_eq!(decode_payload(b"4a\x1e"), Err(EioDecodeError::Empty));
        assert_eq!(decode_payload(b"b!!"), Err(EioDecodeError::InvalidBase64));
        assert_eq!(decode_payload(b"4\xff"), Err(EioDecodeError::InvalidUtf8));
        assert_eq!(decode_payload(b"x"), Err(EioDecodeError::UnknownType(b'x')));
    }

    /// Each case was run through Node 20's `Buffer.from(s, "base64")` (engine.io's decoder of
    /// `b` records); the bytes here are Node's answers, copied from its output.
    #[test]
    fn base64_records_decode_as_node_decodes_them() {
        let node_agrees: &[(&str, &[u8])] = &[
            ("AQIDBA==", &[1, 2, 3, 4]),
            ("AQIDBA", &[1, 2, 3, 4]),
            ("AQIDBA=", &[1, 2, 3, 4]),
            ("AQIDBA===", &[1, 2, 3, 4]),
            ("AQIDBA====", &[1, 2, 3, 4]),
            ("AQID\nBA==\n", &[1, 2, 3, 4]),
            ("AQ ID\tBA\r\n==", &[1, 2, 3, 4]),
            ("AQIDBA=\n=", &[1, 2, 3, 4]),
            ("AQIDBA\u{b}", &[1, 2, 3, 4]),
            ("AQIDBA\u{c}", &[1, 2, 3, 4]),
            ("-_-_", &[251, 255, 191]),
            ("+/-_", &[251, 255, 191]),
            ("AR==", &[1]),
            ("AQIDBB==", &[1, 2, 3, 4]),
            ("", &[]),
        ];
        for (input, bytes) in node_agrees {
            assert_eq!(
                decode_base64_record(input).as_deref(),
                Ok(*bytes),
                "{input:?}"
            );
        }
        // Node decodes these only by dropping characters; refused here.
        for input in [
            "AQ!ID",
            "!!",
            "AQ==ID",
            "=AQID",
            "AQID=BA",
            "AQIDB",
            "A",
            "AQ\u{a0}ID",
        ] {
            assert_eq!(
                decode_base64_record(input),
                Err(EioDecodeError::InvalidBase64),
                "{input:?}"
            );
        }
    }

    /// What Android's `Base64.DEFAULT` makes of 100 bytes: a line feed after 76 characters
    /// and one at the end (RFC 2045 line length, as android.util.Base64 writes it).
    #[test]
    fn android_line_broken_base64_in_a_payload() {
        let bytes: Vec<u8> = (0..100u8).collect();
        let flat = BASE64.encode(&bytes);
        let android = format!("{}\n{}\n", &flat[..76], &flat[76..]);
        let body = format!("451-[\"m\",{{\"_placeholder\":true,\"num\":0}}]\x1eb{android}");
        let packets = decode_payload(body.as_bytes()).unwrap();
        assert_eq!(packets[1], EioPacket::Binary(Bytes::from(bytes)));
    }

    #[test]
    fn payload_encoding_round_trips() {
        let frames = [
            Frame::message("hello"),
            Frame::Binary(Bytes::from_static(&[1, 2, 3, 4])),
            PING,
        ];
        let mut out = Vec::new();
        encode_payload(&frames, &mut out);
        assert_eq!(out, b"4hello\x1ebAQIDBA==\x1e2");
        assert_eq!(
            frames.iter().map(Frame::polling_len).sum::<usize>() + 2,
            out.len()
        );
        assert_eq!(decode_payload(&out).unwrap().len(), 3);
    }

    #[test]
    fn open_packet_has_exactly_five_keys() {
        let Frame::Text(bytes) = open_packet("abc", &["websocket"], 300, 200, 1_000_000) else {
            panic!("open packet is text");
        };
        assert_eq!(
            &bytes[..],
            br#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#
        );
    }

    #[test]
    fn the_round_trip_check_holds_on_a_few_payloads() {
        super::checks::check(b"4hello\x1ebAQID\x1e2");
        super::checks::check(b"0{\"sid\":\"x\"}");
        super::checks::check(b"bAA==");
        super::checks::check(b"\x04\x03abc\x07\x02\xff\x00");
    }
}
