//! Fuzz the Socket.IO packet codec and attachment reassembly.
//!
//! The input is a sequence of records, each one Engine.IO message:
//!
//! ```text
//! tag: u8            bit 0: 0 = text message, 1 = binary message
//!                    bit 1: 0 = one length byte follows, 1 = two (little-endian)
//! len: u8 | u16le
//! body: len bytes    (fewer if the input ends; text is taken as lossy UTF-8)
//! ```
//!
//! Every record goes to one [`Reassembler`], and every text record also goes straight to
//! [`decode`]. Beyond "never panics", it asserts:
//!
//! - the reassembler refuses text exactly when it is waiting, and binary exactly when not;
//! - every packet that comes out, re-encoded with [`encode_into`] and fed to a fresh
//!   reassembler (text, then its attachments), comes back equal. JSON numbers are compared
//!   with a tolerance of a few ulps because serde_json without `float_roundtrip` may parse
//!   the shortest representation of an `f64` to a neighbouring value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use readrealm_chat::socketio::binary::Reassembler;
use readrealm_chat::socketio::packet::{decode, encode_into, Limits, Packet, PacketError};
use serde_json::Value;

fuzz_target!(|input: &[u8]| {
    let limits = Limits::default();
    let mut reassembler = Reassembler::new(limits);
    let mut rest = input;
    while let Some((&tag, after)) = rest.split_first() {
        let (len, after) = if tag & 2 == 0 {
            match after.split_first() {
                Some((&n, after)) => (usize::from(n), after),
                None => (0, after),
            }
        } else {
            match after {
                [lo, hi, after @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), after),
                _ => (0, &[][..]),
            }
        };
        let (body, after) = after.split_at(len.min(after.len()));
        rest = after;

        let was_waiting = reassembler.is_waiting();
        if tag & 1 == 0 {
            let text = String::from_utf8_lossy(body);
            if let Ok((mut packet, count)) = decode(&text, &limits) {
                assert!(count <= limits.max_attachments);
                assert!(count == 0 || packet.kind.is_binary());
                packet.attachments = (0..count).map(|i| vec![i as u8].into()).collect();
                assert_round_trips(&packet, &limits, false);
            }
            match reassembler.push_text(&text) {
                Ok(Some(packet)) => {
                    assert!(!was_waiting);
                    assert_round_trips(&packet, &limits, true);
                }
                Ok(None) => assert!(!was_waiting && reassembler.is_waiting()),
                Err(e) => {
                    let unexpected = e == PacketError::UnexpectedText;
                    assert_eq!(unexpected, was_waiting, "{e}");
                }
            }
        } else {
            match reassembler.push_binary(body.to_vec().into()) {
                Ok(Some(packet)) => {
                    assert!(was_waiting && !reassembler.is_waiting());
                    assert_round_trips(&packet, &limits, true);
                }
                Ok(None) => assert!(was_waiting && reassembler.is_waiting()),
                Err(_) => assert!(!was_waiting),
            }
        }
    }
});

/// Encode `packet`, decode it again (through a fresh reassembler when `reassemble`, which
/// also checks placeholders; with plain [`decode`] otherwise) and assert the result equals it.
fn assert_round_trips(packet: &Packet, limits: &Limits, reassemble: bool) {
    let mut out = Vec::new();
    encode_into(packet, &mut out);
    let text = std::str::from_utf8(&out).expect("the encoder writes UTF-8");
    let back = if reassemble {
        let mut r = Reassembler::new(*limits);
        let mut back = r
            .push_text(text)
            .unwrap_or_else(|e| panic!("re-encoded {text:?} refused: {e}"));
        for attachment in &packet.attachments {
            assert!(back.is_none(), "{text:?} completed before its attachments");
            back = r
                .push_binary(attachment.clone())
                .unwrap_or_else(|e| panic!("attachment of {text:?} refused: {e}"));
        }
        back.unwrap_or_else(|| panic!("{text:?} never completed"))
    } else {
        let (mut back, count) =
            decode(text, limits).unwrap_or_else(|e| panic!("re-encoded {text:?} refused: {e}"));
        assert_eq!(count, packet.attachments.len(), "{text:?}");
        back.attachments = packet.attachments.clone();
        back
    };
    assert_eq!(back.kind, packet.kind, "{text:?}");
    assert_eq!(back.nsp, packet.nsp, "{text:?}");
    assert_eq!(back.id, packet.id, "{text:?}");
    assert_eq!(back.attachments, packet.attachments, "{text:?}");
    let same = match (&back.data, &packet.data) {
        (Some(a), Some(b)) => same_value(a, b),
        (None, None) => true,
        _ => false,
    };
    assert!(same, "{text:?}: {:?} != {:?}", back.data, packet.data);
}

/// JSON equality, with floats equal when within a few ulps (see the module doc).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => close(x, y),
                _ => false,
            }
        }
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same_value(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, vy))
        }
        _ => a == b,
    }
}

fn close(x: f64, y: f64) -> bool {
    // Subnormals lose relative precision, so anything that tiny counts as equal.
    let diff = (x - y).abs();
    x == y || diff <= 1e-13 * x.abs().max(y.abs()) || diff <= f64::MIN_POSITIVE
}
