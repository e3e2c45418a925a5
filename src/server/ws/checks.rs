//! The `ws_reader` fuzz target's check: dropping an idle WebSocket's reader changes nothing.
//!
//! The input (read with [`Input`]) picks `max_payload` (1,000 bytes, or 1..=300 one time in
//! eight) and the peer's byte stream: client frames from a small grammar (mostly what a client
//! may send next: text and binary messages whole or in fragments, pings and pongs between
//! them, a close now and then, every length form, payloads mostly of up to 40 bytes, one in
//! eight of up to 300 (control frames: 125), valid UTF-8
//! where it must be; one frame in 32 anything, masked or not, with any opcode, FIN or none),
//! or, rarely, raw bytes; and after each, where the next piece the stream arrives in ends:
//! 1..=64 bytes on, or at the end of the next element of the stream. The stream is fed piece by
//! piece to a [`ReadState`] (the shard's way: a reader made when input waits, dropped when at
//! rest) and to one [`Reader`] kept throughout, each reading messages until `Pending` after
//! every piece, as the shard does after every socket read. Beyond "never panics", it asserts:
//!
//! - both read the same messages (text, binary), the same end (the peer's close, or a refusal
//!   with the same close code and violation) after the same piece, and write the same bytes
//!   (pongs, the close answer) into the output;
//! - after a piece that left no reader held, the kept reader is at rest too, and the frame scan
//!   of the whole stream so far is at a boundary;
//! - [`FrameScan`] ends in the same state whether the stream is fed in one piece or in the
//!   chosen pieces.
//!
//! Built only for tests and with the `checks` feature (the fuzz build and `tests/` turn it on).

// A check reports a broken invariant by panicking (libFuzzer and the regression test catch the
// panic and keep the input): the crate's no-panic lints do not apply here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::{Buffers, FrameScan, Inbound, ReadState, Reader};
use crate::fuzz_checks::input::Input;

/// Most bytes of peer stream one input makes.
const MAX_STREAM: usize = 8192;

/// What one read produced, comparable.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Closed,
    Refused(u16, &'static str),
    /// The end of a piece: everything buffered was taken.
    Pending,
}

fn seen(inbound: Inbound) -> Seen {
    match inbound {
        Inbound::Text(text) => Seen::Text(text.as_str().to_owned()),
        Inbound::Binary(data) => Seen::Binary(data.to_vec()),
        Inbound::Closed => Seen::Closed,
        Inbound::Refused(close, violation) => Seen::Refused(close.code, violation.label()),
        Inbound::Pending => Seen::Pending,
    }
}

/// Append one client frame to `out`. Mostly what a client may send next (`fragmented`: a
/// data frame without FIN was sent and its last continuation not yet), so that inputs reach
/// far into a stream; now and then a frame the server must refuse.
fn frame(input: &mut Input<'_>, fragmented: &mut bool, out: &mut Vec<u8>) {
    let invalid = input.ratio(1, 32);
    let opcode = match input.u8_in(0, 9) {
        _ if invalid => [0, 1, 2, 3, 8, 9, 10, 11][input.usize_in(0, 7)],
        0 => 9,
        1 => 10,
        2 if input.ratio(1, 8) => 8,
        _ if *fragmented => 0,
        _ => 1 + input.u8_in(0, 1),
    };
    let control = opcode >= 8;
    let fin = if control && !invalid {
        true
    } else {
        input.ratio(3, 4)
    };
    let masked = invalid || input.ratio(63, 64);
    let max_len = match (control && !invalid, input.ratio(1, 8)) {
        (true, _) => 125,
        (false, true) => 300,
        (false, false) => 40,
    };
    let payload: Vec<u8> = if opcode == 8 && !invalid {
        // A close frame: a status code and a short reason, or nothing.
        let mut close = Vec::new();
        if input.bool() {
            close.extend_from_slice(&input.u64_in(1000, 4999).to_be_bytes()[6..]);
            close.extend_from_slice(input.text_up_to(20).as_bytes());
        }
        close
    } else if input.bool() || opcode == 1 || (opcode == 0 && input.bool()) {
        let mut text = input.text_up_to(max_len).into_bytes();
        text.truncate(max_len);
        while std::str::from_utf8(&text).is_err() {
            text.pop();
        }
        text
    } else {
        input.bytes_up_to(max_len).to_vec()
    };
    if !control {
        match opcode {
            1 | 2 => *fragmented = !fin,
            0 if fin => *fragmented = false,
            _ => {}
        }
    }
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    match input.u8_in(0, 15) {
        0 if !control => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        1 if !control => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        _ if len < 126 => out.push(mask_bit | len as u8),
        _ => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    if masked {
        let key = [input.byte(), input.byte(), input.byte(), input.byte()];
        out.extend_from_slice(&key);
        out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    } else {
        out.extend_from_slice(&payload);
    }
}

/// Panics when dropping a reader at rest changes what is read from `data`'s stream.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let max_payload = if input.ratio(1, 8) {
        input.usize_in(1, 300)
    } else {
        1000
    };
    let mut stream = Vec::new();
    let mut pieces = Vec::new();
    let mut ends = Vec::new();
    let mut fragmented = false;
    while !input.is_empty() && stream.len() < MAX_STREAM {
        if input.ratio(1, 64) {
            stream.extend_from_slice(input.bytes_up_to(8));
        } else {
            frame(&mut input, &mut fragmented, &mut stream);
        }
        ends.push(stream.len());
        // Half the pieces end where an element of the stream ends (as a client's writes do).
        pieces.push(if input.bool() {
            None
        } else {
            Some(input.usize_in(1, 64))
        });
    }
    if pieces.is_empty() {
        pieces.push(Some(1));
    }
    // The end of the piece that starts at `pos`, the `turn`th.
    let piece_end = |pos: usize, turn: usize| -> usize {
        let end = match pieces[turn % pieces.len()] {
            Some(size) => pos + size,
            None => ends
                .iter()
                .copied()
                .find(|&end| end > pos)
                .unwrap_or(stream.len()),
        };
        end.min(stream.len())
    };

    let mut shard_way = ReadState::default();
    let mut shard_buffers = Buffers::default();
    let mut kept = Reader::new(max_payload);
    let mut kept_buffers = Buffers::default();
    let mut whole_scan = FrameScan::default();
    let mut pos = 0;
    let mut turn = 0;
    'pieces: while pos < stream.len() {
        let end = piece_end(pos, turn);
        turn += 1;
        let piece = &stream[pos..end];
        pos = end;
        whole_scan.feed(piece);
        shard_buffers.input.extend_from_slice(piece);
        kept_buffers.input.extend_from_slice(piece);
        loop {
            let a = seen(shard_way.read_message(&mut shard_buffers, max_payload));
            let b = seen(kept.read_message(&mut kept_buffers));
            assert_eq!(
                a, b,
                "the shard's reader and the kept one disagree at byte {pos}"
            );
            assert_eq!(
                shard_buffers.output, kept_buffers.output,
                "different control answers at byte {pos}"
            );
            match a {
                Seen::Pending => break,
                Seen::Closed | Seen::Refused(..) => break 'pieces,
                Seen::Text(_) | Seen::Binary(_) => {}
            }
        }
        if !shard_way.is_reading() {
            assert!(
                kept.at_rest(),
                "a reader dropped where the kept one is not at rest"
            );
            assert!(whole_scan.at_boundary(), "a reader dropped inside a frame");
        }
    }

    let mut one_piece = FrameScan::default();
    one_piece.feed(&stream);
    let mut scan = FrameScan::default();
    let mut pos = 0;
    let mut turn = 0;
    while pos < stream.len() {
        let end = piece_end(pos, turn);
        scan.feed(&stream[pos..end]);
        pos = end;
        turn += 1;
    }
    assert_eq!(
        scan, one_piece,
        "the frame scan depends on how the bytes were cut"
    );
}
