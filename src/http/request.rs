//! Parsing an HTTP/1.x request head into a [`RequestHead`].
//!
//! Owns: turning the bytes at the front of a connection's read buffer into the few facts the
//! server routes on (method, path, the Engine.IO query, body framing, keep-alive, CORS and
//! WebSocket handshake headers), and the limits that bound that work ([`HeadLimits`]).
//!
//! Must never: read from a socket, consume or copy the caller's buffer, allocate in proportion
//! to the input beyond the few strings it returns, or panic on any input. It is sans-IO so that
//! unit tests and the `http_head` fuzz target drive it directly, and so that a connection's read
//! loop can call it again after every read without bookkeeping.
//!
//! The model is hyper's `proto/h1` parser: [`parse_head`] returns `Ok(None)` while the head is
//! incomplete and nothing is consumed; the caller keeps reading and calls again with the longer
//! buffer. Once the buffer holds more than [`HeadLimits::max_head_bytes`] without a complete head
//! the answer is [`HeadError::TooLarge`], so a peer cannot make the server buffer an endless head.
//! Body framing errors that enable request smuggling (duplicate or malformed `Content-Length`,
//! a `Transfer-Encoding` that does not end in `chunked`) are errors, never guesses.

use std::borrow::Cow;
use std::fmt;

/// Default cap on the head (request line, headers and the final blank line), in bytes.
///
/// Engine.IO heads are small (a path, a short query, a dozen browser headers), except for
/// cookies: a browser on a domain with many cookies sends well over 8 KiB. 16 KiB is Node's
/// default (`--max-http-header-size`, 16384 since Node 13.13 / 12.18.3), which served
/// ReadRealm's apps before, so every head Node took is taken here. For comparison (defaults,
/// not a promise of those servers): nginx reads a head into at most 4 buffers of 8 KiB
/// (`large_client_header_buffers 4 8k`: one line up to 8 KiB, the head up to 32 KiB), Apache
/// httpd allows 8190 bytes per header line and 100 lines, Go's net/http 1 MiB. The cap bounds
/// the bytes buffered for a connection before any routing.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16384;

/// Default cap on the number of header lines.
///
/// Browsers send 10–20; 64 leaves room for proxies while bounding the per-request work and
/// stack space (one `httparse::Header` is two slices).
pub const DEFAULT_MAX_HEADERS: usize = 64;

/// Header slots kept on the stack; a larger [`HeadLimits::max_headers`] falls back to a heap
/// slice. Equal to the default so the usual configuration never allocates for slots.
const STACK_HEADER_SLOTS: usize = DEFAULT_MAX_HEADERS;

/// Limits applied by [`parse_head`]. Configured from `config.rs`; the defaults are the
/// constants above.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Largest head accepted, counting the final CRLFCRLF.
    pub max_head_bytes: usize,
    /// Most header lines accepted.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// The request method. Methods are case-sensitive (RFC 9110 §9.1): `get` is [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Options,
    Head,
    /// Any other method; the server answers it with 405 or 400.
    Other,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "OPTIONS" => Method::Options,
            "HEAD" => Method::Head,
            _ => Method::Other,
        }
    }
}

/// The Engine.IO query parameters. Others (the `t=...` cache buster, `j=`, anything a client
/// adds) are ignored. Values are percent-decoded (and `+` is a space, as in Node's
/// `querystring`, which the reference server uses); the first occurrence of a key wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `EIO`: the protocol version, `"4"` for the clients we serve.
    pub eio: Option<String>,
    /// `transport`: `"polling"` or `"websocket"`.
    pub transport: Option<String>,
    /// `sid`: the session id, once a session exists.
    pub sid: Option<String>,
}

/// What the server needs from a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The path without the query (and without scheme and authority when the request line
    /// uses the absolute form). Not percent-decoded: routes are plain ASCII.
    pub path: String,
    pub query: Query,
    /// The `Content-Length`, when present (exactly once, all digits).
    pub content_length: Option<u64>,
    /// `Transfer-Encoding` is present and ends in `chunked`. The server does not decode chunked
    /// bodies and refuses such requests (411/400); this flag is how it knows to.
    pub chunked: bool,
    /// Whether the connection may carry another request after this one: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    /// The `Origin` header (first one), if any.
    pub origin: Option<String>,
    /// `Upgrade` lists `websocket` and `Connection` lists `upgrade` (both case-insensitive).
    /// The method and version are the server's to check (RFC 6455 requires a GET).
    pub websocket_upgrade: bool,
    /// `Sec-WebSocket-Key` (first one), if any.
    pub websocket_key: Option<String>,
    /// `Sec-WebSocket-Version` (first one), if any.
    pub websocket_version: Option<String>,
    /// `Access-Control-Request-Headers`, several lines joined with `", "`; for preflights.
    pub request_headers: Option<String>,
    /// `X-Forwarded-For`, several lines joined with `", "` (RFC 9110 §5.3); believed only from
    /// a trusted proxy (`server::proxy`).
    pub forwarded_for: Option<String>,
    /// Bytes of the head, including the final CRLFCRLF: the body (if any) starts here.
    pub head_len: usize,
}

/// Why a request head was refused. Every variant is the peer's fault and ends the connection
/// after a 400 (431 would also fit `TooLarge`/`TooManyHeaders`; the server picks the status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// More than `max_head_bytes` without a complete head, or a complete head longer than that.
    TooLarge,
    /// More than `max_headers` header lines.
    TooManyHeaders,
    /// The bytes are not an HTTP/1.0 or HTTP/1.1 request head; the text says where it broke.
    Malformed(&'static str),
    /// A `Content-Length` that is not a plain decimal number fitting in a `u64`.
    BadContentLength,
    /// `Content-Length` given more than once (even with equal values): refused rather than
    /// reconciled, because disagreeing framing is how requests get smuggled.
    DuplicateContentLength,
    /// A `Transfer-Encoding` whose final coding is not `chunked`: the body length is then
    /// unknowable (RFC 9112 §6.3), so the request must be refused.
    BadTransferEncoding,
    /// A header the server keeps as text (named here) is not valid UTF-8.
    BadHeaderValue(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => f.write_str("request head too large"),
            HeadError::TooManyHeaders => f.write_str("too many request headers"),
            HeadError::Malformed(why) => write!(f, "malformed request head: {why}"),
            HeadError::BadContentLength => f.write_str("invalid Content-Length"),
            HeadError::DuplicateContentLength => f.write_str("duplicate Content-Length"),
            HeadError::BadTransferEncoding => {
                f.write_str("Transfer-Encoding does not end in chunked")
            }
            HeadError::BadHeaderValue(name) => write!(f, "header {name} is not valid UTF-8"),
        }
    }
}

impl std::error::Error for HeadError {}

/// Parses the request head at the front of `buf`.
///
/// - `Ok(Some(head))`: a complete head of `head.head_len` bytes; the body, or the next
///   pipelined request, starts at `buf[head.head_len..]`.
/// - `Ok(None)`: incomplete; read more and call again with the whole buffer. Only returned
///   while `buf.len() <= limits.max_head_bytes`.
/// - `Err(HeadError::TooLarge)` once `buf` holds more than `max_head_bytes` with no complete
///   head in them (or a complete head is longer than that); other errors as they are found,
///   possibly before the head is complete.
///
/// Work per call is bounded by `max_head_bytes`: bytes past the limit are never looked at.
pub fn parse_head(buf: &[u8], limits: &HeadLimits) -> Result<Option<RequestHead>, HeadError> {
    let window = buf.get(..limits.max_head_bytes).unwrap_or(buf);
    let mut slots = [httparse::EMPTY_HEADER; STACK_HEADER_SLOTS];
    let mut heap_slots;
    let headers: &mut [httparse::Header<'_>] = if limits.max_headers <= STACK_HEADER_SLOTS {
        slots.get_mut(..limits.max_headers).unwrap_or(&mut [])
    } else {
        heap_slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
        &mut heap_slots
    };
    let mut req = httparse::Request::new(headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head_bytes => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(httparse_reason(e))),
    };
    // httparse fills these for every complete request; absence would be a bug there, but it
    // is still answered as bad input rather than a panic.
    let method = req.method.ok_or(HeadError::Malformed("missing method"))?;
    let target = req
        .path
        .ok_or(HeadError::Malformed("missing request target"))?;
    let version = req.version.ok_or(HeadError::Malformed("missing version"))?;

    let mut facts = HeaderFacts::default();
    for header in req.headers.iter() {
        facts.add(header.name, header.value)?;
    }
    let chunked = match facts.te_ends_chunked {
        None => false,
        Some(true) => true,
        Some(false) => return Err(HeadError::BadTransferEncoding),
    };

    let (path, query) = split_target(target);
    let keep_alive = if version >= 1 {
        !facts.connection_close
    } else {
        facts.connection_keep_alive && !facts.connection_close
    };
    Ok(Some(RequestHead {
        method: Method::from_token(method),
        path: path.to_owned(),
        query: parse_query(query),
        content_length: facts.content_length,
        chunked,
        keep_alive,
        origin: facts.origin,
        websocket_upgrade: facts.upgrade_websocket && facts.connection_upgrade,
        websocket_key: facts.websocket_key,
        websocket_version: facts.websocket_version,
        request_headers: facts.request_headers,
        forwarded_for: facts.forwarded_for,
        head_len,
    }))
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid new line",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// What the header lines say, gathered in one pass.
#[derive(Default)]
struct HeaderFacts {
    content_length: Option<u64>,
    /// Set by each `Transfer-Encoding` line: whether that line's last coding is `chunked`.
    /// The last line decides, since codings apply in order across lines.
    te_ends_chunked: Option<bool>,
    connection_close: bool,
    connection_keep_alive: bool,
    connection_upgrade: bool,
    upgrade_websocket: bool,
    origin: Option<String>,
    websocket_key: Option<String>,
    websocket_version: Option<String>,
    request_headers: Option<String>,
    forwarded_for: Option<String>,
}

impl HeaderFacts {
    fn add(&mut self, name: &str, value: &[u8]) -> Result<(), HeadError> {
        let value = trim_ows(value);
        if name.eq_ignore_ascii_case("content-length") {
            if self.content_length.is_some() {
                return Err(HeadError::DuplicateContentLength);
            }
            self.content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // An empty line (no codings) is not a framing statement; ignore it.
            if let Some(last) = tokens(value).last() {
                self.te_ends_chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(value) {
                if token.eq_ignore_ascii_case(b"close") {
                    self.connection_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.connection_keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    self.connection_upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            // `Upgrade: websocket/13` names a protocol version; RFC 6455 uses the bare name.
            if tokens(value).any(|t| t.eq_ignore_ascii_case(b"websocket")) {
                self.upgrade_websocket = true;
            }
        } else if name.eq_ignore_ascii_case("origin") {
            keep_first(&mut self.origin, value, "Origin")?;
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            keep_first(&mut self.websocket_key, value, "Sec-WebSocket-Key")?;
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            keep_first(&mut self.websocket_version, value, "Sec-WebSocket-Version")?;
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            join_lines(
                &mut self.request_headers,
                utf8(value, "Access-Control-Request-Headers")?,
            );
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            join_lines(&mut self.forwarded_for, utf8(value, "X-Forwarded-For")?);
        }
        Ok(())
    }
}

/// Add one line of a list-valued header to the lines before it, joined with `", "`.
fn join_lines(slot: &mut Option<String>, text: &str) {
    match slot {
        Some(joined) if !text.is_empty() => {
            if !joined.is_empty() {
                joined.push_str(", ");
            }
            joined.push_str(text);
        }
        Some(_) => {}
        None => *slot = Some(text.to_owned()),
    }
}

fn keep_first(
    slot: &mut Option<String>,
    value: &[u8],
    name: &'static str,
) -> Result<(), HeadError> {
    let text = utf8(value, name)?;
    if slot.is_none() {
        *slot = Some(text.to_owned());
    }
    Ok(())
}

fn utf8<'a>(value: &'a [u8], name: &'static str) -> Result<&'a str, HeadError> {
    std::str::from_utf8(value).map_err(|_| HeadError::BadHeaderValue(name))
}

/// A `Content-Length` value: one or more ASCII digits, nothing else (no sign, no list), that
/// fits in a `u64`. `str::parse` is not used because it accepts a leading `+`.
fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    if value.is_empty() {
        return Err(HeadError::BadContentLength);
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(HeadError::BadContentLength);
        }
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(b - b'0')))
            .ok_or(HeadError::BadContentLength)
    })
}

/// Trims optional whitespace (space, tab) from both ends of a header value.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// The non-empty elements of a comma-separated header list, whitespace trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|t| !t.is_empty())
}

/// Splits a request target into the path and the query (without the `?`). A fragment, which
/// clients should not send, is dropped; the absolute form (`http://host/path?q`, sent to
/// proxies and accepted by servers per RFC 9112 §3.2.2) is reduced to its path.
fn split_target(target: &str) -> (&str, &str) {
    let target = target.split_once('#').map_or(target, |(before, _)| before);
    let target = strip_scheme_and_authority(target);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path.is_empty() {
        // Absolute form with no path (`http://host` or `http://host?x`) means `/`.
        ("/", query)
    } else {
        (path, query)
    }
}

fn strip_scheme_and_authority(target: &str) -> &str {
    if target.starts_with('/') {
        return target;
    }
    let Some((scheme, after)) = target.split_once("://") else {
        return target;
    };
    let is_scheme = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !is_scheme {
        return target;
    }
    after
        .find(['/', '?'])
        .and_then(|i| after.get(i..))
        .unwrap_or("")
}

/// Picks the Engine.IO parameters out of a query string.
fn parse_query(query: &str) -> Query {
    let mut out = Query::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match &*percent_decode(key) {
            "EIO" => &mut out.eio,
            "transport" => &mut out.transport,
            "sid" => &mut out.sid,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(percent_decode(value).into_owned());
        }
    }
    out
}

/// Decodes `%XX` escapes and `+` (a space, as in form encoding and Node's `querystring`).
/// A malformed escape is kept literally and invalid UTF-8 becomes U+FFFD, as Node does; such a
/// value can only fail to match, never crash. Borrows when there is nothing to decode.
fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).and_then(|&h| hex_value(h)),
                bytes.get(i + 2).and_then(|&l| hex_value(l)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The parser check (fuzz target `http_head`), shared by the fuzz target, `tests/fuzz_regressions.rs`
/// and the unit tests below.
#[cfg(any(test, feature = "checks"))]
#[doc(hidden)]
pub mod checks;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        parse_head(buf, &HeadLimits::default())
    }

    fn complete(buf: &[u8]) -> RequestHead {
        match parse(buf) {
            Ok(Some(head)) => head,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    const POLLING_GET: &[u8] = b"GET /socket.io/?EIO=4&transport=polling&t=OxqR1ps HTTP/1.1\r\n\
Host: localhost:3000\r\n\
Accept: */*\r\n\
Origin: http://localhost:8080\r\n\
\r\n";

    #[test]
    fn parses_a_polling_handshake() {
        let head = complete(POLLING_GET);
        assert_eq!(head.method, Method::Get);
        assert_eq!(head.path, "/socket.io/");
        assert_eq!(
            head.query,
            Query {
                eio: Some("4".into()),
                transport: Some("polling".into()),
                sid: None
            }
        );
        assert_eq!(head.content_length, None);
        assert!(!head.chunked);
        assert!(head.keep_alive);
        assert_eq!(head.origin.as_deref(), Some("http://localhost:8080"));
        assert!(!head.websocket_upgrade);
        assert_eq!(head.head_len, POLLING_GET.len());
    }

    #[test]
    fn head_split_at_every_offset_is_incomplete_until_the_last_byte() {
        let post = b"POST /engine.io/?EIO=4&transport=polling&sid=abc-_12 HTTP/1.1\r\n\
Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 5\r\n\r\n4hello";
        for input in [POLLING_GET, &post[..]] {
            let full = complete(input);
            for cut in 0..full.head_len {
                assert_eq!(parse(&input[..cut]), Ok(None), "cut at {cut}");
            }
            for cut in full.head_len..=input.len() {
                assert_eq!(parse(&input[..cut]), Ok(Some(full.clone())), "cut at {cut}");
            }
        }
    }

    #[test]
    fn body_after_the_head_is_not_part_of_it() {
        let buf = b"POST /engine.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\n\
Content-Length: 6\r\n\r\n4hello";
        let head = complete(buf);
        assert_eq!(head.method, Method::Post);
        assert_eq!(head.content_length, Some(6));
        assert_eq!(&buf[head.head_len..], b"4hello");
        assert_eq!(head.query.sid.as_deref(), Some("x"));
    }

    #[test]
    fn incomplete_head_over_the_limit_is_too_large() {
        let limits = HeadLimits {
            max_head_bytes: 64,
            max_headers: 8,
        };
        let mut buf = b"GET / HTTP/1.1\r\nCookie: ".to_vec();
        buf.resize(64, b'a');
        assert_eq!(parse_head(&buf, &limits), Ok(None));
        buf.push(b'a');
        assert_eq!(parse_head(&buf, &limits), Err(HeadError::TooLarge));
    }

    #[test]
    fn complete_head_longer_than_the_limit_is_too_large() {
        let buf = b"GET / HTTP/1.1\r\nX-Padding: aaaaaaaaaaaaaaaa\r\n\r\n";
        let exact = HeadLimits {
            max_head_bytes: buf.len(),
            max_headers: 8,
        };
        assert!(matches!(parse_head(buf, &exact), Ok(Some(_))));
        let short = HeadLimits {
            max_head_bytes: buf.len() - 1,
            ..exact
        };
        assert_eq!(parse_head(buf, &short), Err(HeadError::TooLarge));
    }

    #[test]
    fn body_bytes_past_the_limit_do_not_count_against_the_head() {
        let mut buf = b"POST /x HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".to_vec();
        let head_len = buf.len();
        buf.resize(100_000, b'4');
        let head = complete(&buf);
        assert_eq!(head.head_len, head_len);
    }

    #[test]
    fn default_limit_is_8_kib() {
        let mut buf = b"GET / HTTP/1.1\r\nCookie: ".to_vec();
        buf.resize(DEFAULT_MAX_HEAD_BYTES, b'c');
        assert_eq!(parse(&buf), Ok(None));
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&buf), Err(HeadError::TooLarge));
    }

    fn head_with_headers(n: usize) -> Vec<u8> {
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..n {
            buf.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        buf
    }

    #[test]
    fn too_many_headers_is_an_error_at_any_limit() {
        for max_headers in [0, 1, 3, DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADERS + 10] {
            let limits = HeadLimits {
                max_head_bytes: 1 << 20,
                max_headers,
            };
            let ok = head_with_headers(max_headers);
            assert!(
                matches!(parse_head(&ok, &limits), Ok(Some(_))),
                "{max_headers} headers"
            );
            let over = head_with_headers(max_headers + 1);
            assert_eq!(parse_head(&over, &limits), Err(HeadError::TooManyHeaders));
            // Found before the head is complete, too.
            let partial = &over[..over.len() - 2];
            assert_eq!(parse_head(partial, &limits), Err(HeadError::TooManyHeaders));
        }
    }

    #[test]
    fn keep_alive_defaults_by_version() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                false,
            ),
        ];
        for (input, keep_alive) in cases {
            assert_eq!(
                complete(input).keep_alive,
                *keep_alive,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn methods() {
        let cases: &[(&[u8], Method)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", Method::Get),
            (b"POST / HTTP/1.1\r\n\r\n", Method::Post),
            (b"PUT / HTTP/1.1\r\n\r\n", Method::Put),
            (b"OPTIONS / HTTP/1.1\r\n\r\n", Method::Options),
            (b"HEAD / HTTP/1.1\r\n\r\n", Method::Head),
            (b"DELETE / HTTP/1.1\r\n\r\n", Method::Other),
            (b"get / HTTP/1.1\r\n\r\n", Method::Other),
        ];
        for (input, method) in cases {
            assert_eq!(complete(input).method, *method);
        }
    }

    #[test]
    fn query_keeps_engine_io_params_and_ignores_cache_busters() {
        let head = complete(
            b"GET /socket.io/?t=OxqR1ps&EIO=4&j=0&transport=polling&sid=AbC_-12&b64=1 HTTP/1.1\r\n\r\n",
        );
        assert_eq!(head.path, "/socket.io/");
        assert_eq!(head.query.eio.as_deref(), Some("4"));
        assert_eq!(head.query.transport.as_deref(), Some("polling"));
        assert_eq!(head.query.sid.as_deref(), Some("AbC_-12"));
    }

    #[test]
    fn query_first_occurrence_wins() {
        assert_eq!(
            parse_query("sid=first&sid=second&EIO=4&EIO=3"),
            Query {
                eio: Some("4".into()),
                transport: None,
                sid: Some("first".into()),
            }
        );
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            parse_query("sid=a%2Db%5f%3d&transport=web%73ocket&%45IO=4"),
            Query {
                eio: Some("4".into()),
                transport: Some("websocket".into()),
                sid: Some("a-b_=".into()),
            }
        );
        assert_eq!(parse_query("sid=a+b").sid.as_deref(), Some("a b"));
        // Malformed escapes stay literal; invalid UTF-8 is replaced, never a crash.
        assert_eq!(parse_query("sid=%zz%4").sid.as_deref(), Some("%zz%4"));
        assert_eq!(parse_query("sid=%ff").sid.as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn query_edge_cases() {
        assert_eq!(parse_query(""), Query::default());
        assert_eq!(parse_query("&&"), Query::default());
        assert_eq!(parse_query("sid").sid.as_deref(), Some(""));
        assert_eq!(parse_query("sid=").sid.as_deref(), Some(""));
        assert_eq!(parse_query("sid=a=b").sid.as_deref(), Some("a=b"));
        assert_eq!(parse_query("SID=a").sid, None);
    }

    #[test]
    fn targets() {
        let cases: &[(&str, &str, &str)] = &[
            ("/socket.io/", "/socket.io/", ""),
            ("/socket.io/?EIO=4", "/socket.io/", "EIO=4"),
            ("/socket.io/?", "/socket.io/", ""),
            ("/a?b?c", "/a", "b?c"),
            ("/a#frag", "/a", ""),
            ("/a?x=1#frag", "/a", "x=1"),
            ("http://host:3000/socket.io/?EIO=4", "/socket.io/", "EIO=4"),
            ("HTTPS://host", "/", ""),
            ("http://host?EIO=4", "/", "EIO=4"),
            ("*", "*", ""),
            ("/redirect?to=http://x/y", "/redirect", "to=http://x/y"),
        ];
        for (target, path, query) in cases {
            assert_eq!(split_target(target), (*path, *query), "{target}");
        }
    }

    #[test]
    fn content_length_rules() {
        let with =
            |v: &str| parse(format!("POST / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n").as_bytes());
        assert_eq!(
            with("0").map(|h| h.and_then(|h| h.content_length)),
            Ok(Some(0))
        );
        assert_eq!(
            with("18446744073709551615").map(|h| h.and_then(|h| h.content_length)),
            Ok(Some(u64::MAX))
        );
        for bad in [
            "",
            "abc",
            "+5",
            "-1",
            "5, 5",
            "0x10",
            "1 2",
            "18446744073709551616",
        ] {
            assert_eq!(with(bad), Err(HeadError::BadContentLength), "{bad:?}");
        }
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
            Err(HeadError::DuplicateContentLength)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nCONTENT-LENGTH: 6\r\n\r\n"),
            Err(HeadError::DuplicateContentLength)
        );
        assert_eq!(
            complete(b"POST / HTTP/1.1\r\ncOnTeNt-LeNgTh:   42  \r\n\r\n").content_length,
            Some(42)
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        let te = |lines: &str| parse(format!("POST / HTTP/1.1\r\n{lines}\r\n").as_bytes());
        let chunked = |lines: &str| te(lines).map(|h| h.map(|h| h.chunked));
        assert_eq!(chunked("Transfer-Encoding: chunked\r\n"), Ok(Some(true)));
        assert_eq!(chunked("transfer-encoding: CHUNKED\r\n"), Ok(Some(true)));
        assert_eq!(
            chunked("Transfer-Encoding: gzip, chunked\r\n"),
            Ok(Some(true))
        );
        assert_eq!(
            chunked("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
            Ok(Some(true))
        );
        assert_eq!(chunked("Transfer-Encoding:\r\n"), Ok(Some(false)));
        assert_eq!(chunked(""), Ok(Some(false)));
        for bad in [
            "Transfer-Encoding: gzip\r\n",
            "Transfer-Encoding: chunked, gzip\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
        ] {
            assert_eq!(te(bad), Err(HeadError::BadTransferEncoding), "{bad:?}");
        }
        // Both framings present: reported as they are; the server refuses chunked anyway.
        let head =
            complete(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert!(head.chunked);
        assert_eq!(head.content_length, Some(3));
    }

    #[test]
    fn websocket_upgrade_headers() {
        let head = complete(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n\
Host: localhost\r\n\
connection: keep-alive, Upgrade\r\n\
upgrade: WebSocket\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
sec-websocket-version: 13\r\n\r\n",
        );
        assert!(head.websocket_upgrade);
        assert_eq!(
            head.websocket_key.as_deref(),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
        assert_eq!(head.websocket_version.as_deref(), Some("13"));
        assert_eq!(head.query.transport.as_deref(), Some("websocket"));

        let no_connection_token = complete(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
        assert!(!no_connection_token.websocket_upgrade);
        let other_protocol =
            complete(b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n");
        assert!(!other_protocol.websocket_upgrade);
        let listed =
            complete(b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: foo, websocket\r\n\r\n");
        assert!(listed.websocket_upgrade);
    }

    #[test]
    fn first_origin_wins_and_request_headers_are_joined() {
        let head = complete(
            b"OPTIONS /socket.io/ HTTP/1.1\r\n\
Origin: https://a.example\r\n\
Origin: https://b.example\r\n\
Access-Control-Request-Headers: x-one\r\n\
access-control-request-headers: x-two, x-three\r\n\r\n",
        );
        assert_eq!(head.origin.as_deref(), Some("https://a.example"));
        assert_eq!(
            head.request_headers.as_deref(),
            Some("x-one, x-two, x-three")
        );
    }

    #[test]
    fn kept_headers_must_be_utf8() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nOrigin: http://\xff\r\n\r\n"),
            Err(HeadError::BadHeaderValue("Origin"))
        );
        // Other headers may carry obs-text; they are not kept.
        assert!(complete(b"GET / HTTP/1.1\r\nX-Name: caf\xe9\r\n\r\n").keep_alive);
    }

    #[test]
    fn malformed_heads_are_errors() {
        for bad in [
            &b"GET / HTTP/2.0\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
            b"GET  HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            assert!(
                matches!(parse(bad), Err(HeadError::Malformed(_))),
                "{:?} -> {:?}",
                String::from_utf8_lossy(bad),
                parse(bad)
            );
        }
    }

    #[test]
    fn leading_blank_lines_are_skipped_and_counted() {
        let buf = b"\r\nGET / HTTP/1.1\r\n\r\n";
        let head = complete(buf);
        assert_eq!(head.head_len, buf.len());
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let buf = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
        let first = complete(buf);
        assert_eq!(first.path, "/a");
        let second = complete(&buf[first.head_len..]);
        assert_eq!(second.path, "/b");
        assert!(!second.keep_alive);
        assert_eq!(first.head_len + second.head_len, buf.len());
    }

    #[test]
    fn errors_display() {
        assert_eq!(HeadError::TooLarge.to_string(), "request head too large");
        assert_eq!(
            HeadError::Malformed("invalid token").to_string(),
            "malformed request head: invalid token"
        );
    }

    /// The fuzz target's invariants, on a few fixed inputs (the target itself lives in
    /// fuzz/fuzz_targets/http_head.rs).
    #[test]
    fn fuzz_invariants_on_fixed_inputs() {
        let limits = HeadLimits::default();
        let inputs: &[&[u8]] = &[
            POLLING_GET,
            b"",
            b"\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\nGET",
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"POST / HTTP/1.0\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        ];
        for data in inputs {
            match parse_head(data, &limits) {
                Ok(Some(head)) => {
                    assert!(head.head_len <= data.len());
                    assert_eq!(
                        parse_head(&data[..head.head_len], &limits),
                        Ok(Some(head.clone()))
                    );
                    for cut in 0..head.head_len {
                        assert!(!matches!(parse_head(&data[..cut], &limits), Ok(Some(_))));
                    }
                }
                Ok(None) => assert!(data.len() <= limits.max_head_bytes),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn the_parser_check_holds_on_a_few_heads() {
        super::checks::check(
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        super::checks::check(b"POST /engine.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nContent-Length: 2\r\n\r\nok");
        super::checks::check(b"GET / HTTP/1.1\r\nHost");
        super::checks::check(b"\r\n\r\n");
    }
}
