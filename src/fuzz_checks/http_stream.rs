//! The `http_stream` target: a connection's byte stream, carrying pipelined requests with
//! `Content-Length` bodies, cut into reads at arbitrary points.
//!
//! The server frames requests in `server::transport` (`process_http`, `polling_post`): after
//! every read it calls [`parse_head`] on everything unconsumed; a complete head is followed by
//! a body of exactly `Content-Length` bytes (none without the header) and, once all of it has
//! arrived, both are consumed and the next request starts right after; a head error, a
//! chunked body or a body over the limit ends the connection, and so does a request without
//! keep-alive. [`Framer`] does that, sans-IO, so the parser can be driven the way the
//! connection drives it. It reads a body for every method, where the server reads one only
//! for a POST and answers and closes any other request that carries one; that makes no
//! difference to what is checked here, which is how the results depend on where reads end.
//!
//! Input layout: byte 0 (mod 8) is a number `n` of read sizes, then `n` little-endian `u16`
//! sizes (0 counts as 1), then the stream. The stream is fed three ways — in one read, in reads
//! of the given sizes (the rest in one last read), and one byte per read when it is short —
//! and beyond "never panics" it asserts:
//!
//! - every way gives the same requests (heads and bodies), the same final error, and leaves
//!   the same bytes unconsumed: where reads end never changes what the server sees;
//! - the requests tile the stream: each head re-parses the same from exactly its bytes, the
//!   body is exactly `Content-Length` bytes and starts where the head ends, and the heads,
//!   bodies and unconsumed rest add up to the whole stream (unless the connection ended);
//! - what is left unconsumed while the connection is open is either an incomplete head of at
//!   most `max_head_bytes` or a complete head still waiting for its body.

use crate::http::request::{parse_head, HeadError, HeadLimits, RequestHead};

/// Largest body accepted (the server's `maxPayload` default is 1 MB; a small one makes the
/// limit reachable).
pub const MAX_BODY: u64 = 4096;

/// Longest stream also fed one byte per read (each read re-parses the unconsumed bytes).
const BYTEWISE_MAX: usize = 1024;

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Head(HeadError),
    Chunked,
    BodyTooLarge(u64),
    /// The last request did not keep the connection alive.
    NotKeepAlive,
}

/// One request as the server receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub head: RequestHead,
    pub body: Vec<u8>,
}

/// The connection's request framing, fed read by read.
#[derive(Debug)]
pub struct Framer {
    limits: HeadLimits,
    max_body: u64,
    input: Vec<u8>,
    consumed: usize,
    pub requests: Vec<Request>,
    pub ended: Option<Ended>,
}

impl Framer {
    pub fn new(limits: HeadLimits, max_body: u64) -> Framer {
        Framer {
            limits,
            max_body,
            input: Vec::new(),
            consumed: 0,
            requests: Vec::new(),
            ended: None,
        }
    }

    /// Bytes received and not yet consumed by a request.
    pub fn unconsumed(&self) -> &[u8] {
        &self.input
    }

    /// Bytes consumed by requests so far.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// One read's bytes: handle every request they complete.
    pub fn read(&mut self, bytes: &[u8]) {
        if self.ended.is_some() {
            return;
        }
        self.input.extend_from_slice(bytes);
        while self.ended.is_none() {
            let head = match parse_head(&self.input, &self.limits) {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(e) => {
                    self.ended = Some(Ended::Head(e));
                    return;
                }
            };
            if head.chunked {
                self.ended = Some(Ended::Chunked);
                return;
            }
            let length = head.content_length.unwrap_or(0);
            if length > self.max_body {
                self.ended = Some(Ended::BodyTooLarge(length));
                return;
            }
            // `length <= max_body`, a small number.
            let end = head.head_len + length as usize;
            let Some(body) = self.input.get(head.head_len..end) else {
                return;
            };
            let body = body.to_vec();
            self.input.drain(..end);
            self.consumed += end;
            let keep_alive = head.keep_alive;
            self.requests.push(Request { head, body });
            if !keep_alive {
                self.ended = Some(Ended::NotKeepAlive);
            }
        }
    }
}

pub fn check(data: &[u8]) {
    let (sizes, stream) = split_input(data);
    let limits = HeadLimits::default();

    let whole = feed(stream, std::iter::once(stream.len()), limits);
    check_tiling(stream, &whole, limits);

    let chunked = feed(stream, sizes.iter().copied(), limits);
    assert_same(&whole, &chunked, "reads of the given sizes");

    if stream.len() <= BYTEWISE_MAX {
        let bytewise = feed(stream, std::iter::repeat(1), limits);
        assert_same(&whole, &bytewise, "one byte per read");
    }
}

/// The read sizes and the stream, from the input layout of the module doc.
fn split_input(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, mut rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let mut sizes = Vec::new();
    for _ in 0..n % 8 {
        let [lo, hi, after @ ..] = rest else {
            break;
        };
        sizes.push(usize::from(u16::from_le_bytes([*lo, *hi])).max(1));
        rest = after;
    }
    (sizes, rest)
}

/// Feed `stream` in reads of `sizes` (then the rest in one read).
fn feed(stream: &[u8], sizes: impl Iterator<Item = usize>, limits: HeadLimits) -> Framer {
    let mut framer = Framer::new(limits, MAX_BODY);
    let mut rest = stream;
    for size in sizes {
        if rest.is_empty() {
            break;
        }
        let (read, after) = rest.split_at(size.min(rest.len()));
        framer.read(read);
        rest = after;
    }
    framer.read(rest);
    framer
}

fn assert_same(a: &Framer, b: &Framer, how: &str) {
    assert_eq!(a.requests, b.requests, "requests differ when fed in {how}");
    assert_eq!(a.ended, b.ended, "the end differs when fed in {how}");
    if a.ended.is_none() {
        assert_eq!(
            a.unconsumed(),
            b.unconsumed(),
            "unconsumed bytes differ when fed in {how}"
        );
    }
}

fn check_tiling(stream: &[u8], framer: &Framer, limits: HeadLimits) {
    let mut at = 0;
    for request in &framer.requests {
        let head = &request.head;
        let bytes = stream
            .get(at..at + head.head_len)
            .expect("head within stream");
        assert_eq!(parse_head(bytes, &limits), Ok(Some(head.clone())));
        let length = head.content_length.unwrap_or(0);
        assert_eq!(request.body.len() as u64, length);
        let body_at = at + head.head_len;
        assert_eq!(
            stream.get(body_at..body_at + request.body.len()),
            Some(&request.body[..])
        );
        at = body_at + request.body.len();
    }
    assert_eq!(at, framer.consumed());
    if framer.ended.is_none() {
        assert_eq!(at + framer.unconsumed().len(), stream.len());
        match parse_head(framer.unconsumed(), &limits) {
            Ok(None) => assert!(framer.unconsumed().len() <= limits.max_head_bytes),
            Ok(Some(head)) => {
                let want = head.head_len as u64 + head.content_length.unwrap_or(0);
                assert!(
                    (framer.unconsumed().len() as u64) < want,
                    "{head:?} complete"
                );
            }
            Err(e) => panic!("unconsumed bytes are an error {e:?} but the connection is open"),
        }
    }
}
