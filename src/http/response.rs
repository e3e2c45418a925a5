//! Writing HTTP/1.1 responses into a connection's output buffer.
//!
//! Owns: the exact bytes of every response the server sends over HTTP — the status line, the
//! framing headers (`Content-Length`, `Connection`), the Engine.IO error body and the
//! WebSocket `101 Switching Protocols` answer.
//!
//! Must never: write to a socket, decide routing or session state, or emit a response without
//! explicit framing. Every response carries `Content-Length` (except 1xx and 204, which RFC
//! 9110 §8.6 forbids it on and which have no body by definition) and an explicit
//! `Connection: keep-alive` or `Connection: close`, so a client on a kept-alive connection can
//! always find where one response ends and the next begins, and so the server's own decision
//! to close is announced rather than discovered. Functions only append to `out`, so a response
//! can be built in place behind bytes already queued.
//!
//! Extra headers (CORS, from [`super::cors`]) are passed as `(name, value)` pairs. A pair
//! whose name or value contains CR or LF is skipped: values such as an echoed `Origin` come
//! from the peer, and a line break in them would let it write headers of its own.

/// A status code and its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16, pub &'static str);

impl Status {
    pub const SWITCHING_PROTOCOLS: Status = Status(101, "Switching Protocols");
    pub const OK: Status = Status(200, "OK");
    pub const NO_CONTENT: Status = Status(204, "No Content");
    pub const BAD_REQUEST: Status = Status(400, "Bad Request");
    pub const FORBIDDEN: Status = Status(403, "Forbidden");
    pub const NOT_FOUND: Status = Status(404, "Not Found");
    pub const METHOD_NOT_ALLOWED: Status = Status(405, "Method Not Allowed");
    pub const LENGTH_REQUIRED: Status = Status(411, "Length Required");
    pub const REQUEST_TIMEOUT: Status = Status(408, "Request Timeout");
    pub const PAYLOAD_TOO_LARGE: Status = Status(413, "Payload Too Large");
    pub const HEADER_FIELDS_TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");
    pub const INTERNAL: Status = Status(500, "Internal Server Error");
    pub const SERVICE_UNAVAILABLE: Status = Status(503, "Service Unavailable");

    /// Responses with these codes have no body and must not carry `Content-Length`.
    fn forbids_body(self) -> bool {
        (100..200).contains(&self.0) || self.0 == 204
    }
}

/// `Content-Type` of polling payloads and plain-text answers, as the reference server writes it.
pub const TEXT_PLAIN_UTF8: &str = "text/plain; charset=UTF-8";

/// `Content-Type` of Engine.IO error bodies.
pub const APPLICATION_JSON: &str = "application/json";

/// Appends a complete response: head, then `body`.
///
/// `content_type` is written when given; `extra` headers (CORS) follow it. For 1xx and 204
/// neither `Content-Length` nor `body` is written (RFC 9110 §8.6, §15.3.5): pass an empty body.
pub fn write_response(
    out: &mut Vec<u8>,
    status: Status,
    content_type: Option<&str>,
    extra: &[(&str, String)],
    body: &[u8],
    keep_alive: bool,
) {
    let body = if status.forbids_body() { &[][..] } else { body };
    write_head(out, status, content_type, body.len(), extra, keep_alive);
    out.extend_from_slice(body);
}

/// Appends only the head of a `200 OK`, `text/plain; charset=UTF-8` response whose body of
/// `body_len` bytes the caller appends itself (polling payloads are encoded in place, after
/// the head, with no intermediate copy).
pub fn write_text_head(
    out: &mut Vec<u8>,
    body_len: usize,
    extra: &[(&str, String)],
    keep_alive: bool,
) {
    write_head(
        out,
        Status::OK,
        Some(TEXT_PLAIN_UTF8),
        body_len,
        extra,
        keep_alive,
    );
}

/// Appends a short plain-text error (404, 405, 411, 413, 400, ...): `status` with
/// `text/plain; charset=UTF-8` and `message` as the body. CORS headers are worth passing:
/// without them a browser hides the status from the page.
pub fn write_plain_error(
    out: &mut Vec<u8>,
    status: Status,
    message: &str,
    extra: &[(&str, String)],
    keep_alive: bool,
) {
    write_response(
        out,
        status,
        Some(TEXT_PLAIN_UTF8),
        extra,
        message.as_bytes(),
        keep_alive,
    );
}

/// The Engine.IO error codes (docs/PROTOCOL.md "Errors"), with the reference server's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EioErrorCode {
    TransportUnknown = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    Forbidden = 4,
    UnsupportedProtocolVersion = 5,
}

impl EioErrorCode {
    /// The `message` the reference server sends with this code.
    pub fn message(self) -> &'static str {
        match self {
            EioErrorCode::TransportUnknown => "Transport unknown",
            EioErrorCode::UnknownSid => "Session ID unknown",
            EioErrorCode::BadHandshakeMethod => "Bad handshake method",
            EioErrorCode::BadRequest => "Bad request",
            EioErrorCode::Forbidden => "Forbidden",
            EioErrorCode::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The numeric code of the JSON body.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// 403 for `Forbidden`, 400 for everything else, as the reference server answers.
    pub fn status(self) -> Status {
        match self {
            EioErrorCode::Forbidden => Status::FORBIDDEN,
            _ => Status::BAD_REQUEST,
        }
    }
}

/// Appends an Engine.IO error: 400 (403 for code 4), `Content-Type: application/json`, body
/// `{"code":N,"message":"..."}` — the bytes `JSON.stringify({code, message})` produces.
pub fn write_eio_error(
    out: &mut Vec<u8>,
    code: EioErrorCode,
    extra: &[(&str, String)],
    keep_alive: bool,
) {
    // The messages are fixed ASCII without quotes or backslashes: no JSON escaping needed.
    let message = code.message();
    let body_len = br#"{"code":0,"message":""}"#.len() + message.len();
    write_head(
        out,
        code.status(),
        Some(APPLICATION_JSON),
        body_len,
        extra,
        keep_alive,
    );
    out.extend_from_slice(br#"{"code":"#);
    push_decimal(out, u64::from(code.code()));
    out.extend_from_slice(br#","message":""#);
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(br#""}"#);
}

/// Appends the `101 Switching Protocols` answer to a WebSocket upgrade whose
/// `Sec-WebSocket-Key` is `key` (RFC 6455 §4.2.2). The key is used as sent (the request parser
/// has already trimmed surrounding whitespace); checking that it is present and the version is
/// 13 is the caller's job.
pub fn write_websocket_accept(out: &mut Vec<u8>, key: &str) {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// The shared head writer: status line, `Content-Type`, `Content-Length` (unless the status
/// forbids a body), extra headers, `Connection`, blank line.
fn write_head(
    out: &mut Vec<u8>,
    status: Status,
    content_type: Option<&str>,
    body_len: usize,
    extra: &[(&str, String)],
    keep_alive: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status.0));
    out.push(b' ');
    out.extend_from_slice(status.1.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(content_type) = content_type {
        push_header(out, "Content-Type", content_type);
    }
    if !status.forbids_body() {
        out.extend_from_slice(b"Content-Length: ");
        // usize always fits in u64 on the targets we build for; saturate rather than panic.
        push_decimal(out, u64::try_from(body_len).unwrap_or(u64::MAX));
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in extra {
        push_header(out, name, value);
    }
    out.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
}

/// Writes `name: value\r\n`, or nothing if either contains CR or LF (see the module doc).
fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    let breaks_line = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
    if name.is_empty() || breaks_line(name) || breaks_line(value) {
        return;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal without going through `fmt` (no `Result` to unwrap, no allocation).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).expect("responses are ASCII")
    }

    #[test]
    fn eio_error_exact_bytes() {
        let mut out = Vec::new();
        write_eio_error(&mut out, EioErrorCode::UnknownSid, &[], true);
        assert_eq!(
            text(&out),
            "HTTP/1.1 400 Bad Request\r\n\
Content-Type: application/json\r\n\
Content-Length: 41\r\n\
Connection: keep-alive\r\n\
\r\n\
{\"code\":1,\"message\":\"Session ID unknown\"}"
        );
    }

    #[test]
    fn eio_error_with_cors_and_close() {
        let mut out = Vec::new();
        let cors = [
            (
                "Access-Control-Allow-Origin",
                "http://a.example".to_string(),
            ),
            ("Vary", "Origin".to_string()),
        ];
        write_eio_error(&mut out, EioErrorCode::TransportUnknown, &cors, false);
        assert_eq!(
            text(&out),
            "HTTP/1.1 400 Bad Request\r\n\
Content-Type: application/json\r\n\
Content-Length: 40\r\n\
Access-Control-Allow-Origin: http://a.example\r\n\
Vary: Origin\r\n\
Connection: close\r\n\
\r\n\
{\"code\":0,\"message\":\"Transport unknown\"}"
        );
    }

    #[test]
    fn every_eio_error_has_its_status_code_and_a_correct_length() {
        let all = [
            (EioErrorCode::TransportUnknown, 0, 400, "Transport unknown"),
            (EioErrorCode::UnknownSid, 1, 400, "Session ID unknown"),
            (
                EioErrorCode::BadHandshakeMethod,
                2,
                400,
                "Bad handshake method",
            ),
            (EioErrorCode::BadRequest, 3, 400, "Bad request"),
            (EioErrorCode::Forbidden, 4, 403, "Forbidden"),
            (
                EioErrorCode::UnsupportedProtocolVersion,
                5,
                400,
                "Unsupported protocol version",
            ),
        ];
        for (code, number, status, message) in all {
            assert_eq!(code.code(), number);
            assert_eq!(code.message(), message);
            assert_eq!(code.status().0, status);
            let mut out = Vec::new();
            write_eio_error(&mut out, code, &[], true);
            let (head, body) = text(&out).split_once("\r\n\r\n").expect("a head");
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert_eq!(
                body,
                format!("{{\"code\":{number},\"message\":\"{message}\"}}")
            );
            assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        }
    }

    #[test]
    fn forbidden_is_403() {
        let mut out = Vec::new();
        write_eio_error(&mut out, EioErrorCode::Forbidden, &[], true);
        assert!(text(&out).starts_with("HTTP/1.1 403 Forbidden\r\n"));
        assert!(text(&out).ends_with("{\"code\":4,\"message\":\"Forbidden\"}"));
    }

    #[test]
    fn text_head_then_body_in_place() {
        let mut out = b"queued".to_vec();
        let payload = b"4hello\x1e4world";
        write_text_head(&mut out, payload.len(), &[], true);
        out.extend_from_slice(payload);
        assert_eq!(
            text(&out),
            "queuedHTTP/1.1 200 OK\r\n\
Content-Type: text/plain; charset=UTF-8\r\n\
Content-Length: 13\r\n\
Connection: keep-alive\r\n\
\r\n\
4hello\u{1e}4world"
        );
    }

    #[test]
    fn ok_post_answer() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            Status::OK,
            Some(TEXT_PLAIN_UTF8),
            &[],
            b"ok",
            false,
        );
        assert_eq!(
            text(&out),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n\
Content-Length: 2\r\nConnection: close\r\n\r\nok"
        );
    }

    #[test]
    fn response_without_content_type_or_body() {
        let mut out = Vec::new();
        write_response(&mut out, Status::NOT_FOUND, None, &[], b"", true);
        assert_eq!(
            text(&out),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn no_content_has_neither_length_nor_body() {
        let mut out = Vec::new();
        let cors = [("Access-Control-Allow-Origin", "*".to_string())];
        write_response(&mut out, Status::NO_CONTENT, None, &cors, b"ignored", true);
        assert_eq!(
            text(&out),
            "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n\
Connection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn plain_errors() {
        let mut out = Vec::new();
        write_plain_error(
            &mut out,
            Status::PAYLOAD_TOO_LARGE,
            "payload too large",
            &[],
            false,
        );
        assert_eq!(
            text(&out),
            "HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain; charset=UTF-8\r\n\
Content-Length: 17\r\nConnection: close\r\n\r\npayload too large"
        );
        out.clear();
        write_plain_error(&mut out, Status::NOT_FOUND, "not found", &[], true);
        assert!(text(&out).starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text(&out).ends_with("\r\n\r\nnot found"));
    }

    #[test]
    fn headers_with_line_breaks_are_dropped() {
        let mut out = Vec::new();
        let extra = [
            (
                "Access-Control-Allow-Origin",
                "http://x\r\nSet-Cookie: a=b".to_string(),
            ),
            ("X-Bad\n", "v".to_string()),
            ("", "v".to_string()),
            ("Vary", "Origin".to_string()),
        ];
        write_response(&mut out, Status::OK, None, &extra, b"", true);
        assert_eq!(
            text(&out),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nVary: Origin\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn websocket_accept_rfc6455_example() {
        let mut out = Vec::new();
        write_websocket_accept(&mut out, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(
            text(&out),
            "HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
\r\n"
        );
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 99, 100, 1_000_000, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(text(&out), n.to_string());
        }
    }

    #[test]
    fn responses_parse_back_as_http() {
        let mut out = Vec::new();
        write_eio_error(&mut out, EioErrorCode::BadRequest, &[], true);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        let status = response.parse(&out).expect("valid HTTP");
        let httparse::Status::Complete(head_len) = status else {
            panic!("incomplete")
        };
        assert_eq!(response.code, Some(400));
        assert_eq!(out.len() - head_len, 34);
    }
}
