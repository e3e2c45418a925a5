//! The Engine.IO transports on a shard: HTTP requests routed to handshakes, polling GETs and
//! POSTs, WebSocket handshakes and frames, and the polling → WebSocket upgrade.
//!
//! Request checks follow engine.io's order (transport, then sid, then method, then protocol
//! version) and answer with docs/PROTOCOL.md's error codes. A request for a session owned by
//! another shard is handed to that shard with its connection before anything else happens.

use std::time::Instant;

use super::admission::Attribution;
use super::bus::BusMessage;
use super::conn::Carrying;
use super::proxy;
use super::shard::{detach, Shard};
use super::timers::SessionRef;
use super::ws::{self, WsClose};
use crate::engineio::packet::{decode_payload, decode_text, EioPacket, Frame, NOOP, PONG_PROBE};
use crate::engineio::session::{CloseReason, GetOutcome, ProbeOutcome, Transport};
use crate::engineio::sid;
use crate::http::{
    parse_head, write_eio_error, write_plain_error, write_response, write_text_head,
    write_websocket_accept, EioErrorCode, HeadError, HeadLimits, Method, RequestHead, Status,
};
use crate::socketio::Handler;

/// The body of a successful POST, as engine.io sends it.
const POST_OK: &[u8] = b"ok";

/// What to do with a request whose head has been read.
enum Next {
    /// Handled; go on with the next request on the connection.
    Continue,
    /// Wait for more bytes (the body), or the connection changed hands or state.
    Stop,
}

impl<H: Handler> Shard<H> {
    /// Handle every complete request buffered on an HTTP connection.
    pub(super) fn process_http(&mut self, key: usize) {
        loop {
            let limits = HeadLimits {
                max_head_bytes: self.config.max_head_bytes,
                max_headers: self.config.max_headers,
            };
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if !matches!(conn.carrying, Carrying::Http) || conn.close_after_flush {
                return;
            }
            self.await_request(key);
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let head = match parse_head(&conn.buffers.input, &limits) {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(error) => {
                    let status = match error {
                        HeadError::TooLarge | HeadError::TooManyHeaders => {
                            Status::HEADER_FIELDS_TOO_LARGE
                        }
                        _ => Status::BAD_REQUEST,
                    };
                    let message = error.to_string();
                    self.reply_and_close(key, |out| {
                        write_plain_error(out, status, &message, &[], false)
                    });
                    return;
                }
            };
            if !self.attribute_to_forwarded_client(key, &head) {
                return;
            }
            let next = self.route(key, head);
            if let Some(conn) = self.conns.get_mut(key) {
                // Answered, or no longer awaiting a request (parked GET, WebSocket).
                if matches!(next, Next::Continue) || !matches!(conn.carrying, Carrying::Http) {
                    conn.request_deadline = None;
                }
            }
            match next {
                Next::Continue => continue,
                Next::Stop => return,
            }
        }
    }

    /// The first request of a trusted proxy's connection that had no PROXY header naming its
    /// client: count the connection under the client its `X-Forwarded-For` names (the proxy
    /// itself without one). Before the request is routed, so a refusal (429 over the per-IP
    /// cap) is an HTTP answer even for a WebSocket handshake. False when refused.
    fn attribute_to_forwarded_client(&mut self, key: usize, head: &RequestHead) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if conn.admitted.attribution() != Attribution::AwaitingRequest {
            return true;
        }
        let peer = conn.admitted.client();
        let client = match head.forwarded_for.as_deref() {
            Some(list) => {
                proxy::client_from_forwarded_for(list, peer, &self.config.trusted_proxies)
            }
            None => peer,
        };
        match conn.admitted.attribute(client) {
            Ok(()) => true,
            Err(refusal) => {
                self.refuse(key, refusal);
                false
            }
        }
    }

    fn route(&mut self, key: usize, mut head: RequestHead) -> Next {
        if head.method == Method::Get && (head.content_length.unwrap_or(0) > 0 || head.chunked) {
            // A GET's body is never read: answer and close, so its bytes are never taken for
            // the next request (request smuggling).
            head.keep_alive = false;
        }
        let cors = self.cors.headers(head.origin.as_deref());
        if head.path != self.config.path {
            if self.ops_route(key, &head) {
                return Next::Continue;
            }
            let keep_alive = head.keep_alive && head.content_length.unwrap_or(0) == 0;
            self.consume(key, head.head_len);
            self.reply(key, keep_alive, |out| {
                write_plain_error(out, Status::NOT_FOUND, "Not Found", &cors, keep_alive)
            });
            return Next::Continue;
        }
        if head.method == Method::Options {
            let headers = self
                .cors
                .preflight_headers(head.origin.as_deref(), head.request_headers.as_deref());
            let body_len = head.content_length.unwrap_or(0);
            let keep_alive = head.keep_alive && body_len == 0;
            self.consume(key, head.head_len);
            self.reply(key, keep_alive, |out| {
                write_response(out, Status::NO_CONTENT, None, &headers, b"", keep_alive)
            });
            return Next::Continue;
        }
        let websocket = match head.query.transport.as_deref() {
            Some("polling") => false,
            Some("websocket") => true,
            _ => return self.eio_error(key, &head, EioErrorCode::TransportUnknown, &cors),
        };
        if let Some(sid) = head.query.sid.clone() {
            if let Some(owner) = sid::owner_shard(&sid) {
                if owner != self.index && owner < self.peers.len() {
                    self.hand_off(key, owner);
                    return Next::Stop;
                }
            }
            let found = sid::Sid::parse(&sid).and_then(|k| self.by_sid.get(&k).copied());
            let Some(session_key) = found else {
                let opened_at = self.conns.get(key).map(|c| c.opened_at);
                let pending_at_close = match opened_at {
                    Some(at) if !websocket && head.method == Method::Get => {
                        self.was_pending_at_client_close(&sid, at)
                    }
                    _ => false,
                };
                if pending_at_close {
                    // Sent before the client's close POST but overtaken by it: it is the
                    // pending GET, which answers `6`.
                    self.consume(key, head.head_len);
                    let keep_alive = head.keep_alive;
                    self.reply(key, keep_alive, |out| {
                        write_polling_response(out, &[NOOP], &cors, keep_alive)
                    });
                    return Next::Continue;
                }
                return self.eio_error(key, &head, EioErrorCode::UnknownSid, &cors);
            };
            let session = SessionRef {
                key: session_key,
                generation: self.sessions.get(session_key).map_or(0, |s| s.generation),
            };
            if websocket {
                if !head.websocket_upgrade {
                    return self.eio_error(key, &head, EioErrorCode::BadRequest, &cors);
                }
                return self.attach_websocket(key, &head, Some(session), &cors);
            }
            let on_websocket = self
                .session(session)
                .is_some_and(|s| s.eio.transport() == Transport::WebSocket);
            if on_websocket {
                return self.eio_error(key, &head, EioErrorCode::BadRequest, &cors);
            }
            return match head.method {
                Method::Get => self.polling_get(key, &head, session, cors),
                Method::Post => self.polling_post(key, &head, session, &cors),
                _ => self.eio_error(key, &head, EioErrorCode::BadRequest, &cors),
            };
        }
        if head.method != Method::Get {
            return self.eio_error(key, &head, EioErrorCode::BadHandshakeMethod, &cors);
        }
        if websocket && !head.websocket_upgrade {
            return self.eio_error(key, &head, EioErrorCode::BadRequest, &cors);
        }
        if head.query.eio.as_deref() != Some("4") {
            return self.eio_error(key, &head, EioErrorCode::UnsupportedProtocolVersion, &cors);
        }
        if websocket {
            return self.attach_websocket(key, &head, None, &cors);
        }
        let now = Instant::now();
        let session = self.create_session(Transport::Polling, now);
        let open = self.open_frame(session, &["websocket"]);
        self.consume(key, head.head_len);
        let keep_alive = head.keep_alive;
        self.reply(key, keep_alive, |out| {
            write_polling_response(out, &[open], &cors, keep_alive)
        });
        Next::Continue
    }

    /// Answer an Engine.IO error; the connection stays open (keep-alive) only for a request
    /// without a body, so no unread body is mistaken for the next request.
    fn eio_error(
        &mut self,
        key: usize,
        head: &RequestHead,
        code: EioErrorCode,
        cors: &[(&'static str, String)],
    ) -> Next {
        let keep_alive =
            head.keep_alive && head.content_length.unwrap_or(0) == 0 && !head.websocket_upgrade;
        self.consume(key, head.head_len);
        self.reply(key, keep_alive, |out| {
            write_eio_error(out, code, cors, keep_alive)
        });
        if keep_alive {
            Next::Continue
        } else {
            Next::Stop
        }
    }

    fn polling_get(
        &mut self,
        key: usize,
        head: &RequestHead,
        session: SessionRef,
        cors: Vec<(&'static str, String)>,
    ) -> Next {
        let Some(entry) = self.session(session) else {
            return self.eio_error(key, head, EioErrorCode::UnknownSid, &cors);
        };
        let outcome = entry.eio.on_polling_get();
        match outcome {
            GetOutcome::Respond(frames) => {
                self.consume(key, head.head_len);
                let keep_alive = head.keep_alive;
                self.reply(key, keep_alive, |out| {
                    write_polling_response(out, &frames, &cors, keep_alive)
                });
                Next::Continue
            }
            GetOutcome::Hold => {
                if let Some(entry) = self.session(session) {
                    entry.get_conn = Some(key);
                }
                self.consume(key, head.head_len);
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.carrying = Carrying::ParkedGet {
                        session,
                        origin: head.origin.clone(),
                        keep_alive: head.keep_alive,
                    };
                }
                Next::Stop
            }
            GetOutcome::Conflict => {
                let next = self.eio_error(key, head, EioErrorCode::BadRequest, &cors);
                self.close_session(session, CloseReason::ProtocolError);
                next
            }
            GetOutcome::WrongTransport => {
                self.eio_error(key, head, EioErrorCode::BadRequest, &cors)
            }
        }
    }

    fn polling_post(
        &mut self,
        key: usize,
        head: &RequestHead,
        session: SessionRef,
        cors: &[(&'static str, String)],
    ) -> Next {
        let Some(length) = head.content_length else {
            self.consume(key, head.head_len);
            self.reply_and_close(key, |out| {
                write_plain_error(out, Status::LENGTH_REQUIRED, "Length Required", cors, false)
            });
            self.close_session(session, CloseReason::ProtocolError);
            return Next::Stop;
        };
        let too_large = usize::try_from(length).map_or(true, |l| l > self.config.max_payload);
        if too_large || head.chunked {
            self.reply_and_close(key, |out| {
                write_plain_error(
                    out,
                    Status::PAYLOAD_TOO_LARGE,
                    "Payload Too Large",
                    cors,
                    false,
                )
            });
            self.close_session(session, CloseReason::ProtocolError);
            return Next::Stop;
        }
        let length = length as usize;
        // One POST at a time per session: a second one while a body is still arriving is an
        // error that ends the session.
        let Some(entry) = self.session(session) else {
            return Next::Stop;
        };
        let post_conn = entry.post_conn;
        match post_conn {
            Some(other) if other != key && self.conns.contains(other) => {
                let next = self.eio_error(key, head, EioErrorCode::BadRequest, cors);
                self.close_session(session, CloseReason::ProtocolError);
                return next;
            }
            _ => {}
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return Next::Stop;
        };
        let Some(body) = conn
            .buffers
            .input
            .get(head.head_len..head.head_len + length)
        else {
            if let Some(entry) = self.session(session) {
                entry.post_conn = Some(key);
            }
            return Next::Stop;
        };
        let decoded = decode_payload(body);
        self.consume(key, head.head_len + length);
        if let Some(entry) = self.session(session) {
            entry.post_conn = None;
        }
        let keep_alive = head.keep_alive;
        match decoded {
            Ok(packets) => {
                self.reply(key, keep_alive, |out| {
                    write_response(
                        out,
                        Status::OK,
                        Some("text/html"),
                        cors,
                        POST_OK,
                        keep_alive,
                    )
                });
                let now = Instant::now();
                for packet in packets {
                    if !self.on_inbound(session, packet, now) {
                        break;
                    }
                }
                if keep_alive {
                    Next::Continue
                } else {
                    Next::Stop
                }
            }
            Err(_) => {
                self.reply(key, keep_alive, |out| {
                    write_eio_error(out, EioErrorCode::BadRequest, cors, keep_alive)
                });
                self.close_session(session, CloseReason::ProtocolError);
                Next::Continue
            }
        }
    }

    /// The WebSocket handshake: a new WebSocket session (no sid) or an upgrade probe.
    fn attach_websocket(
        &mut self,
        key: usize,
        head: &RequestHead,
        upgrade_of: Option<SessionRef>,
        cors: &[(&'static str, String)],
    ) -> Next {
        let (Some(ws_key), Some("13")) = (
            head.websocket_key.as_deref(),
            head.websocket_version.as_deref(),
        ) else {
            return self.eio_error(key, head, EioErrorCode::BadRequest, cors);
        };
        let now = Instant::now();
        let max_payload = self.config.max_payload;
        let Some(conn) = self.conns.get_mut(key) else {
            return Next::Stop;
        };
        let mut buffers = std::mem::take(&mut conn.buffers);
        buffers
            .input
            .drain(..head.head_len.min(buffers.input.len()));
        write_websocket_accept(&mut buffers.output, ws_key);
        conn.ws = Some(Box::new(ws::server_socket(max_payload, buffers)));
        self.mark_dirty(key);
        match upgrade_of {
            None => {
                let session = self.create_session(Transport::WebSocket, now);
                if let Some(entry) = self.session(session) {
                    entry.ws_conn = Some(key);
                }
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.carrying = Carrying::WebSocket {
                        session,
                        probing: false,
                    };
                }
                let open = self.open_frame(session, &[]);
                self.write_ws_frames(key, &[open]);
            }
            Some(session) => {
                let accepted = self
                    .session(session)
                    .is_some_and(|entry| entry.eio.begin_upgrade(now));
                if !accepted {
                    // A second WebSocket for the session: accepted, then closed at once.
                    if let Some(conn) = self.conns.get_mut(key) {
                        let close = WsClose::new(
                            ws::status::POLICY,
                            "the session has a WebSocket or an upgrade under way",
                        );
                        ws::write_close(conn.output(), &close);
                    }
                    self.close_after_flush(key);
                    return Next::Stop;
                }
                if let Some(entry) = self.session(session) {
                    entry.probe_conn = Some(key);
                }
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.carrying = Carrying::WebSocket {
                        session,
                        probing: true,
                    };
                }
                self.schedule(session);
            }
        }
        self.process_websocket(key);
        Next::Stop
    }

    /// Handle every complete WebSocket message buffered on a connection.
    pub(super) fn process_websocket(&mut self, key: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let Carrying::WebSocket { session, probing } = conn.carrying else {
                return;
            };
            let Some(socket) = conn.ws.as_mut() else {
                return;
            };
            let before = socket.get_ref().output.len();
            let message = ws::read_message(socket);
            if socket.get_ref().output.len() != before {
                // tungstenite answered a ping or a close.
                self.mark_dirty(key);
            }
            let packet = match message {
                ws::Inbound::Pending => return,
                ws::Inbound::Closed => {
                    self.close_after_flush(key);
                    self.close_conn_keep_output(key, session, probing);
                    return;
                }
                ws::Inbound::Refused(close) => {
                    self.close_websocket(key, close, CloseReason::ProtocolError);
                    return;
                }
                ws::Inbound::Text(text) => match decode_text(text.as_str()) {
                    Ok(packet) => packet,
                    Err(_) => {
                        let close = WsClose::new(
                            ws::status::NORMAL,
                            "parse error: not an Engine.IO packet",
                        );
                        self.close_websocket(key, close, CloseReason::ProtocolError);
                        return;
                    }
                },
                ws::Inbound::Binary(data) => EioPacket::Binary(data),
            };
            if probing {
                self.on_probe_packet(key, session, packet);
            } else if !self.on_inbound(session, packet, Instant::now()) {
                return;
            }
        }
    }

    /// Close a WebSocket connection the server's way: `close` is written as a close frame,
    /// and the TCP connection closes once it is out (within [`super::shard::CLOSE_LINGER`]).
    /// The session ends with `reason`; on an upgrade probe, only the upgrade is abandoned.
    pub(super) fn close_websocket(&mut self, key: usize, close: WsClose, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Carrying::WebSocket { session, probing } = conn.carrying else {
            return;
        };
        let owns_session = !probing
            && self
                .session(session)
                .is_some_and(|entry| entry.ws_conn == Some(key));
        if owns_session {
            // Writes `close` on this connection and closes it after.
            self.close_session_with(session, reason, close);
            return;
        }
        if let Some(conn) = self.conns.get_mut(key) {
            conn.carrying = Carrying::Http;
            if conn.ws.is_some() {
                ws::write_close(conn.output(), &close);
            }
        }
        self.close_after_flush(key);
        self.on_websocket_closed(session, key, probing, reason);
    }

    /// The peer closed its WebSocket: the close answer tungstenite queued is written, and the
    /// session (or the upgrade attempt) ends now.
    fn close_conn_keep_output(&mut self, key: usize, session: SessionRef, probing: bool) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.carrying = Carrying::Http;
        }
        self.on_websocket_closed(session, key, probing, CloseReason::TransportClose);
    }

    fn on_probe_packet(&mut self, key: usize, session: SessionRef, packet: EioPacket) {
        let Some(entry) = self.session(session) else {
            let close = WsClose::new(ws::status::NORMAL, "the session is closed");
            self.close_websocket(key, close, CloseReason::TransportClose);
            return;
        };
        match entry.eio.on_probe_packet(&packet) {
            ProbeOutcome::SendProbeAnswer => {
                self.write_ws_frames(key, &[PONG_PROBE]);
                self.answer_parked_get_with(session, &[NOOP]);
            }
            ProbeOutcome::Upgraded => {
                self.ops.metrics.shard(self.index).session_upgraded();
                self.answer_parked_get_with(session, &[NOOP]);
                let queued = match self.session(session) {
                    Some(entry) => {
                        entry.probe_conn = None;
                        entry.ws_conn = Some(key);
                        entry.eio.drain_queue()
                    }
                    None => Vec::new(),
                };
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.carrying = Carrying::WebSocket {
                        session,
                        probing: false,
                    };
                }
                self.write_ws_frames(key, &queued);
            }
            ProbeOutcome::Nothing => {}
            ProbeOutcome::AbortUpgrade => {
                if let Some(entry) = self.session(session) {
                    entry.probe_conn = None;
                }
                let close = WsClose::new(ws::status::NORMAL, "parse error: upgrade aborted");
                self.close_websocket(key, close, CloseReason::ProtocolError);
            }
        }
    }

    /// Append frames to a WebSocket connection's output.
    pub(super) fn write_ws_frames(&mut self, key: usize, frames: &[Frame]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let out = conn.output();
        for frame in frames {
            match frame {
                Frame::Text(bytes) => ws::write_frame(out, false, bytes),
                Frame::Binary(bytes) => ws::write_frame(out, true, bytes),
            }
        }
        self.mark_dirty(key);
    }

    /// Answer a parked GET connection with a polling payload and return it to HTTP.
    pub(super) fn answer_get_conn(&mut self, key: usize, frames: &[Frame]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Carrying::ParkedGet {
            origin, keep_alive, ..
        } = std::mem::replace(&mut conn.carrying, Carrying::Http)
        else {
            return;
        };
        let cors = self.cors.headers(origin.as_deref());
        self.reply(key, keep_alive, |out| {
            write_polling_response(out, frames, &cors, keep_alive)
        });
        // A request pipelined behind the GET can be served now.
        if keep_alive {
            self.process_http(key);
        }
    }

    /// Move a connection and its buffered bytes to the shard that owns its session.
    fn hand_off(&mut self, key: usize, owner: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if detach(&self.poll, &mut conn.stream).is_err() {
            return;
        }
        let output = conn.unwritten_output();
        let message = BusMessage::HandOff {
            stream: conn.stream,
            input: std::mem::take(&mut conn.buffers.input),
            output,
            opened_at: conn.opened_at,
            admitted: conn.admitted,
        };
        if self.peers.send(owner, message).is_ok() {
            if let Some(wake) = self.to_wake.get_mut(owner) {
                *wake = true;
            }
        }
        // A full bus drops the connection; the client retries.
    }

    /// Drop `n` consumed bytes from the front of an HTTP connection's input.
    fn consume(&mut self, key: usize, n: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            let input = &mut conn.buffers.input;
            input.drain(..n.min(input.len()));
        }
    }

    /// Write a response on an HTTP connection; close it after unless `keep_alive`.
    fn reply(&mut self, key: usize, keep_alive: bool, write: impl FnOnce(&mut Vec<u8>)) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        write(conn.output());
        if keep_alive {
            self.mark_dirty(key);
        } else {
            self.close_after_flush(key);
        }
    }

    fn reply_and_close(&mut self, key: usize, write: impl FnOnce(&mut Vec<u8>)) {
        self.reply(key, false, write);
    }
}

/// A 200 text/plain response carrying frames as a polling payload.
fn write_polling_response(
    out: &mut Vec<u8>,
    frames: &[Frame],
    cors: &[(&'static str, String)],
    keep_alive: bool,
) {
    let body_len =
        frames.iter().map(Frame::polling_len).sum::<usize>() + frames.len().saturating_sub(1);
    write_text_head(out, body_len, cors, keep_alive);
    crate::engineio::packet::encode_payload(frames, out);
}
