//! Reading: bytes from a socket, framed into what the endpoint takes — a PROXY header off the
//! front, HTTP request heads (and the bytes after them), whole WebSocket messages.
//!
//! Owns the read budget, the HTTP framing rules that are not Engine.IO's (head limits, a
//! GET's body never read, the routes beside Engine.IO) and attributing a trusted proxy's
//! connection to its client. Must never answer an Engine.IO request itself.

use std::time::Instant;

use super::Shard;
use crate::endpoint::{RequestOutcome, WsMessage};
use crate::engineio::session::CloseReason;
use crate::engineio::violation::Violation;
use crate::http::{
    parse_head, write_plain_error, HeadError, HeadLimits, Method, RequestHead, Status,
};
use crate::server::admission::{Attribution, Refusal};
use crate::server::conn::{Mode, ReadEnd, ReadUntil, READ_CHUNK};
use crate::server::proxy::{self, ProxyHeader};
use crate::server::ws;
use crate::socketio::Handler;

/// Bytes read from one connection per readiness before the others get their turn.
pub(super) const READ_BUDGET: usize = 256 * 1024;

impl<H: Handler> Shard<H> {
    /// Read what the socket has, processing as it arrives: at most [`READ_BUDGET`] bytes,
    /// then the connection waits for the next turn (`read_again`), so one client that sends
    /// without pause can neither hold the shard in this loop nor make it buffer without bound
    /// while its answers (and everyone else) wait. How far it reads otherwise: `until`.
    pub(super) fn on_readable(&mut self, key: usize, until: ReadUntil) {
        match self.conns.get(key) {
            Some(conn) if conn.closed => return,
            Some(conn) if conn.draining => {
                self.drain_input(key, until);
                return;
            }
            Some(_) => {}
            None => return,
        }
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.closed {
                return;
            }
            if budget == 0 {
                self.read_again.push(key);
                return;
            }
            match conn.read_chunk(&mut self.read_buf) {
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.process_input(key);
                    let Some(conn) = self.conns.get_mut(key) else {
                        return;
                    };
                    if conn.close_after_flush {
                        // Answered and closing: nothing it sends now will be read.
                        conn.io().input.clear();
                        return;
                    }
                    if n < READ_CHUNK && until == ReadUntil::ShortRead {
                        // The socket is empty: the next input raises a new event.
                        return;
                    }
                }
                Err(ReadEnd::WouldBlock) => return,
                Err(ReadEnd::Closed) => {
                    self.close_conn(key, CloseReason::TransportClose);
                    return;
                }
            }
        }
    }

    /// Process buffered input according to how the connection is read now.
    pub(super) fn process_input(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.closed {
            return;
        }
        match conn.mode {
            Mode::Http if conn.admitted.attribution() == Attribution::AwaitingProxyHeader => {
                if self.read_proxy_header(key) {
                    self.process_http(key);
                }
            }
            Mode::Http => self.process_http(key),
            Mode::WebSocket => self.process_websocket(key),
            // A parked GET's connection sends nothing until answered; keep what arrives
            // (a pipelined request) for then, within the head limit.
            Mode::Parked => {
                let limit = self.config.max_head_bytes + self.config.max_payload;
                if let Some(conn) = self.conns.get_mut(key) {
                    if conn.io().input.len() > limit {
                        self.close_conn(
                            key,
                            CloseReason::ProtocolError(Violation::PipelinedWhileParked),
                        );
                    }
                }
            }
        }
    }

    /// A trusted proxy's connection before its first request: take a PROXY header (v1 or v2)
    /// off the front of the input and count the connection under the client it names. True
    /// when HTTP may be read next; false while the header is incomplete, or when the
    /// connection was refused (400 for a bad header, 429 over the per-IP cap) and closes.
    fn read_proxy_header(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        match proxy::parse_proxy_header(&conn.buffers.input) {
            ProxyHeader::Incomplete => false,
            ProxyHeader::Absent => {
                conn.admitted.await_request();
                true
            }
            ProxyHeader::Found { source, len } => {
                conn.buffers
                    .input
                    .drain(..len.min(conn.buffers.input.len()));
                match source {
                    None => {
                        conn.admitted.await_request();
                        true
                    }
                    Some(client) => match conn.admitted.attribute(client) {
                        Ok(()) => true,
                        Err(refusal) => {
                            self.refuse(key, refusal);
                            false
                        }
                    },
                }
            }
            ProxyHeader::Invalid(why) => {
                conn.buffers.input.clear();
                write_plain_error(conn.output(), Status::BAD_REQUEST, why, &[], false);
                self.close_after_flush(key);
                false
            }
        }
    }

    /// Answer a connection refused after accept (its client is over the per-IP cap) and
    /// close it once the answer is out.
    pub(super) fn refuse(&mut self, key: usize, refusal: Refusal) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        super::accept::log_refusal(refusal, conn.admitted.client());
        conn.buffers.input.clear();
        conn.output().extend_from_slice(refusal.response());
        self.close_after_flush(key);
    }

    /// Handle every complete request buffered on an HTTP connection.
    fn process_http(&mut self, key: usize) {
        let limits = HeadLimits {
            max_head_bytes: self.config.max_head_bytes,
            max_headers: self.config.max_headers,
        };
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.mode != Mode::Http || conn.close_after_flush || conn.closed {
                return;
            }
            self.await_request(key);
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let mut head = match parse_head(&conn.buffers.input, &limits) {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(error) => {
                    let status = match error {
                        HeadError::TooLarge | HeadError::TooManyHeaders => {
                            Status::HEADER_FIELDS_TOO_LARGE
                        }
                        _ => Status::BAD_REQUEST,
                    };
                    conn.buffers.input.clear();
                    write_plain_error(conn.output(), status, &error.to_string(), &[], false);
                    self.close_after_flush(key);
                    return;
                }
            };
            if head.method == Method::Get && (head.content_length.unwrap_or(0) > 0 || head.chunked)
            {
                // A GET's body is never read: answer and close, so its bytes are never taken
                // for the next request (request smuggling).
                head.keep_alive = false;
            }
            if !self.attribute_to_forwarded_client(key, &head) {
                return;
            }
            if self.ops_route(key, &head) {
                self.request_answered(key);
                continue;
            }
            let Some(conn) = self.conns.get(key) else {
                return;
            };
            let after_head = conn.buffers.input.get(head.head_len..).unwrap_or_default();
            let outcome = self.endpoint.handle_request(
                Instant::now(),
                Self::conn_id(key),
                conn.opened_at,
                &head,
                after_head,
            );
            match outcome {
                RequestOutcome::Done { consumed } => {
                    if let Some(conn) = self.conns.get_mut(key) {
                        let input = &mut conn.buffers.input;
                        input.drain(..consumed.min(input.len()));
                    }
                    self.request_answered(key);
                    self.carry_out();
                }
                RequestOutcome::NeedMore => return,
                RequestOutcome::HandOff { shard } => {
                    self.hand_off(key, shard);
                    return;
                }
            }
        }
    }

    /// The request deadline stops once a request is answered (the next one's starts when it
    /// is awaited).
    fn request_answered(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.request_deadline = None;
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

    /// Hand every complete WebSocket message buffered on a connection to the endpoint.
    fn process_websocket(&mut self, key: usize) {
        let max_payload = self.config.max_payload;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.mode != Mode::WebSocket || conn.closed {
                return;
            }
            let before = conn.buffers.output.len();
            let Some(inbound) = conn.read_ws_message(max_payload) else {
                return;
            };
            if conn.buffers.output.len() != before {
                // tungstenite answered a ping or a close.
                self.mark_dirty(key, false);
            }
            let message = match inbound {
                ws::Inbound::Pending => return,
                ws::Inbound::Closed => {
                    // The close answer tungstenite queued is written, then the connection
                    // closes (the peer sends nothing after its close); what it carried ends
                    // now.
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.peer_closed = true;
                    }
                    self.close_after_flush(key);
                    self.end_mode(key, CloseReason::TransportClose);
                    return;
                }
                ws::Inbound::Refused(close, violation) => {
                    self.close_websocket(key, &close);
                    self.end_mode(key, CloseReason::ProtocolError(violation));
                    return;
                }
                ws::Inbound::Text(text) => {
                    let message = WsMessage::Text(text.as_str());
                    self.endpoint
                        .handle_ws_message(Instant::now(), Self::conn_id(key), message);
                    self.carry_out();
                    continue;
                }
                ws::Inbound::Binary(data) => WsMessage::Binary(data),
            };
            self.endpoint
                .handle_ws_message(Instant::now(), Self::conn_id(key), message);
            self.carry_out();
        }
    }
}
