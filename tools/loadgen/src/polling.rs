//! The HTTP long-polling transport: two keep-alive HTTP/1.1 connections per client, one
//! parked in `GET /socket.io/?EIO=4&transport=polling&sid=…` (answers carry packets separated
//! by `\x1e`), one sending queued packets in `POST`s. A small HTTP/1.1 client of its own
//! (httparse for the status line and headers; Content-Length or chunked bodies) keeps the
//! tool free of a large HTTP stack.

use crate::net::{self, Target};
use crate::transport::{protocol_error, Conn, ConnectAnswer, Handler, Out};
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Engine.IO's record separator in polling payloads.
const SEP: char = '\x1e';

/// One keep-alive HTTP/1.1 connection that sends a request and reads its whole answer.
struct Http {
    target: Target,
    src: Ipv4Addr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Http {
    fn new(target: &Target, src: Ipv4Addr) -> Http {
        Http {
            target: target.clone(),
            src,
            stream: None,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Sends `method path` with `body` and returns the answer's status and body. Reconnects
    /// once if the kept-alive connection turns out closed before any answer.
    async fn request(
        &mut self,
        method: &str,
        query: &str,
        body: &str,
    ) -> io::Result<(u16, String)> {
        let mut req = format!(
            "{method} /socket.io/?{query} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n",
            self.target.host
        );
        if method == "POST" {
            req.push_str("Content-Type: text/plain;charset=UTF-8\r\n");
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        for attempt in 0..2 {
            if self.stream.is_none() {
                self.stream = Some(net::connect(&self.target, self.src).await?);
                self.buf.clear();
            }
            match self.exchange(req.as_bytes()).await {
                Ok(answer) => return Ok(answer),
                Err(e) if attempt == 0 && e.kind() == io::ErrorKind::ConnectionAborted => {
                    self.stream = None;
                }
                Err(e) => {
                    self.stream = None;
                    return Err(e);
                }
            }
        }
        Err(protocol_error("no answer"))
    }

    async fn exchange(&mut self, req: &[u8]) -> io::Result<(u16, String)> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| protocol_error("no stream"))?;
        if stream.write_all(req).await.is_err() {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        let mut got_any = false;
        loop {
            // Parse what we have: headers, then a body of known length or chunked.
            let mut headers = [httparse::EMPTY_HEADER; 24];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = resp.code.unwrap_or(0);
                    let mut length = None;
                    let mut chunked = false;
                    let mut close = false;
                    for h in resp.headers.iter() {
                        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = v.parse::<usize>().ok();
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = v.eq_ignore_ascii_case("chunked");
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = v.eq_ignore_ascii_case("close");
                        }
                    }
                    let done = if chunked {
                        dechunk(&self.buf[head_len..]).map(|(body, used)| (body, head_len + used))
                    } else {
                        let n = length.unwrap_or(0);
                        (self.buf.len() >= head_len + n)
                            .then(|| (self.buf[head_len..head_len + n].to_vec(), head_len + n))
                    };
                    if let Some((body, used)) = done {
                        self.buf.drain(..used);
                        if close {
                            self.stream = None;
                        }
                        let body = String::from_utf8(body)
                            .map_err(|_| protocol_error("body is not UTF-8"))?;
                        return Ok((status, body));
                    }
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(protocol_error(format!("bad HTTP answer: {e}"))),
            }
            let mut chunk = [0u8; 16384];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(if got_any {
                    protocol_error("connection closed mid-answer")
                } else {
                    io::ErrorKind::ConnectionAborted.into()
                });
            }
            got_any = true;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Decodes a complete chunked body from `data`: the body and the bytes used, or `None` when
/// more is needed.
fn dechunk(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = data[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let size_text = std::str::from_utf8(&data[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers end with an empty line; we send none and expect none.
            return (data.len() >= at + 2).then_some((body, at + 2));
        }
        if data.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&data[at..at + size]);
        at += size + 2;
    }
}

/// Reads the `sid` out of an Engine.IO open packet `0{"sid":"…",…}`.
fn sid_of(open: &str) -> Option<String> {
    let at = open.find("\"sid\"")?;
    let rest = open[at + 5..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

pub async fn connect<H: Handler>(
    target: &Target,
    src: Ipv4Addr,
    payload: Option<&str>,
    mut handler: H,
) -> io::Result<Conn> {
    let mut get = Http::new(target, src);
    let (status, body) = get.request("GET", "EIO=4&transport=polling", "").await?;
    let open = body.split(SEP).next().unwrap_or("");
    if status != 200 || !open.starts_with('0') {
        return Err(protocol_error(format!("handshake {status}: {body}")));
    }
    let sid = sid_of(open).ok_or_else(|| protocol_error("open packet without sid"))?;
    let query = format!("EIO=4&transport=polling&sid={sid}");
    let mut post = Http::new(target, src);
    let connect = format!("40{}", payload.unwrap_or(""));
    let (status, _) = post.request("POST", &query, &connect).await?;
    if status != 200 {
        return Err(protocol_error(format!("POST 40 answered {status}")));
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    // Wait for the Socket.IO CONNECT answer; anything after it goes to the handler.
    let mut answer = None;
    while answer.is_none() {
        let (status, body) = get.request("GET", &query, "").await?;
        if status != 200 {
            return Err(protocol_error(format!("GET answered {status}")));
        }
        for rec in body.split(SEP) {
            if answer.is_some() {
                dispatch(rec, &tx, &mut handler);
            } else if rec.starts_with("40") {
                answer = Some(ConnectAnswer::parse(rec)?);
            } else if rec == "2" {
                let _ = tx.send(Out::Packet("3".into()));
            } else if rec.starts_with("44") || rec.starts_with('1') {
                return Err(protocol_error(format!("connect refused: {rec}")));
            }
        }
    }

    let closed = Arc::new(AtomicBool::new(false));
    let reader_closed = closed.clone();
    let pong_tx = tx.clone();
    let get_query = query.clone();
    let reader = tokio::spawn(async move {
        while let Ok((200, body)) = get.request("GET", &get_query, "").await {
            let mut end = false;
            for rec in body.split(SEP) {
                end |= dispatch(rec, &pong_tx, &mut handler);
            }
            if end {
                break;
            }
        }
        reader_closed.store(true, Ordering::Relaxed);
    });
    let writer_closed = closed.clone();
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut payload = String::new();
            let mut closing = false;
            let mut next = Some(first);
            while let Some(out) = next.take() {
                if !payload.is_empty() {
                    payload.push(SEP);
                }
                match out {
                    Out::Packet(p) => payload.push_str(&p),
                    Out::Close => {
                        payload.push('1');
                        closing = true;
                        break;
                    }
                }
                next = rx.try_recv().ok();
            }
            match post.request("POST", &query, &payload).await {
                Ok((200, _)) if !closing => {}
                _ => break,
            }
        }
        writer_closed.store(true, Ordering::Relaxed);
    });
    let tasks = vec![reader.abort_handle(), writer.abort_handle()];
    let answer = answer.ok_or_else(|| protocol_error("no CONNECT answer"))?;
    Ok(Conn::new(tx, closed, tasks, answer))
}

/// Handles one Engine.IO packet from a GET answer; true when it ends the session.
fn dispatch<H: Handler>(rec: &str, tx: &mpsc::UnboundedSender<Out>, handler: &mut H) -> bool {
    match rec.as_bytes().first() {
        Some(b'2') => {
            let _ = tx.send(Out::Packet("3".into()));
            false
        }
        Some(b'4') => {
            handler(&rec[1..], None);
            false
        }
        Some(b'1') => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_only_when_complete() {
        let data = b"4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\nNEXT";
        assert_eq!(dechunk(data), Some((b"abcdef".to_vec(), data.len() - 4)));
        assert_eq!(dechunk(b"4\r\nab"), None);
        assert_eq!(dechunk(b"zz\r\n"), None);
    }

    #[test]
    fn sid_is_read_from_the_open_packet() {
        assert_eq!(
            sid_of(r#"0{"sid":"abc-_1","upgrades":["websocket"],"pingInterval":25000}"#),
            Some("abc-_1".to_string())
        );
        assert_eq!(sid_of("0{}"), None);
    }
}
