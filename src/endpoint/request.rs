//! HTTP requests to the endpoint: the handshake checks, polling GETs and POSTs, and the
//! routing of a request to the session (or the shard) it belongs to.
//!
//! Checks follow engine.io's order (transport, then sid, then method, then protocol
//! version) and answer with docs/PROTOCOL.md's error codes. A request for a session owned by
//! another shard is handed to that shard before anything else happens. Must never read a
//! socket: the caller parsed the head and passes the bytes after it.

use std::time::Instant;

use super::io::{ConnId, RequestOutcome, Transmit};
use super::links::Role;
use super::sessions::{write_polling_response, ParkedGet};
use super::timers::SessionRef;
use super::Endpoint;
use crate::engineio::packet::{decode_payload, NOOP};
use crate::engineio::session::{CloseReason, GetOutcome, Transport};
use crate::engineio::sid;
use crate::engineio::violation::Violation;
use crate::http::{
    write_eio_error, write_plain_error, write_response, EioErrorCode, Method, RequestHead, Status,
};
use crate::socketio::Handler;

/// The body of a successful POST, as engine.io sends it.
const POST_OK: &[u8] = b"ok";

/// CORS headers of one answer.
type CorsHeaders = Vec<(&'static str, String)>;

impl<H: Handler> Endpoint<H> {
    /// A request whose head the caller parsed; `after_head` holds the bytes that followed it
    /// (part or all of a body, maybe a pipelined request). `opened_at` is when the connection
    /// was accepted. Carry out the outcome, then drain [`Endpoint::poll_transmit`].
    pub fn handle_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        opened_at: Instant,
        head: &RequestHead,
        after_head: &[u8],
    ) -> RequestOutcome {
        self.now = now;
        let done = RequestOutcome::Done {
            consumed: head.head_len,
        };
        let cors = self.cors.headers(head.origin.as_deref());
        if head.path != self.config.path {
            let keep_alive = head.keep_alive && head.content_length.unwrap_or(0) == 0;
            self.http(conn, keep_alive, |out| {
                write_plain_error(out, Status::NOT_FOUND, "Not Found", &cors, keep_alive)
            });
            return done;
        }
        if head.method == Method::Options {
            let headers = self
                .cors
                .preflight_headers(head.origin.as_deref(), head.request_headers.as_deref());
            let keep_alive = head.keep_alive && head.content_length.unwrap_or(0) == 0;
            self.http(conn, keep_alive, |out| {
                write_response(out, Status::NO_CONTENT, None, &headers, b"", keep_alive)
            });
            return done;
        }
        let websocket = match head.query.transport.as_deref() {
            Some("polling") => false,
            Some("websocket") => true,
            _ => return self.eio_error(conn, head, EioErrorCode::TransportUnknown, &cors),
        };
        let Some(sid) = head.query.sid.as_deref() else {
            return self.handshake(conn, head, websocket, cors);
        };
        if let Some(owner) = sid::owner_shard(sid) {
            if owner != self.index && owner < self.shards {
                return RequestOutcome::HandOff { shard: owner };
            }
        }
        let found = sid::Sid::parse(sid).and_then(|k| self.by_sid.get(&k).copied());
        let Some(key) = found else {
            if !websocket
                && head.method == Method::Get
                && self.was_pending_at_client_close(sid, opened_at)
            {
                // Sent before the client's close POST but overtaken by it: it is the pending
                // GET, which answers `6`.
                let keep_alive = head.keep_alive;
                self.http(conn, keep_alive, |out| {
                    write_polling_response(out, &[NOOP], &cors, keep_alive)
                });
                return done;
            }
            return self.eio_error(conn, head, EioErrorCode::UnknownSid, &cors);
        };
        let session = SessionRef {
            key,
            generation: self.sessions.get(key).map_or(0, |s| s.generation),
        };
        if websocket {
            if !head.websocket_upgrade {
                return self.eio_error(conn, head, EioErrorCode::BadRequest, &cors);
            }
            return self.attach_websocket(conn, head, Some(session), &cors);
        }
        let on_websocket = self
            .session(session)
            .is_some_and(|s| s.eio.transport() == Transport::WebSocket);
        if on_websocket {
            return self.eio_error(conn, head, EioErrorCode::BadRequest, &cors);
        }
        match head.method {
            Method::Get => self.polling_get(conn, head, session, cors),
            Method::Post => self.polling_post(conn, head, session, &cors, after_head),
            _ => self.eio_error(conn, head, EioErrorCode::BadRequest, &cors),
        }
    }

    /// A request without a sid: open a session on polling or WebSocket.
    fn handshake(
        &mut self,
        conn: ConnId,
        head: &RequestHead,
        websocket: bool,
        cors: CorsHeaders,
    ) -> RequestOutcome {
        if head.method != Method::Get {
            return self.eio_error(conn, head, EioErrorCode::BadHandshakeMethod, &cors);
        }
        if websocket && !head.websocket_upgrade {
            return self.eio_error(conn, head, EioErrorCode::BadRequest, &cors);
        }
        if head.query.eio.as_deref() != Some("4") {
            return self.eio_error(conn, head, EioErrorCode::UnsupportedProtocolVersion, &cors);
        }
        if websocket {
            return self.attach_websocket(conn, head, None, &cors);
        }
        let session = self.create_session(None);
        let open = self.open_frame(session, &["websocket"]);
        let keep_alive = head.keep_alive;
        self.http(conn, keep_alive, |out| {
            write_polling_response(out, &[open], &cors, keep_alive)
        });
        RequestOutcome::Done {
            consumed: head.head_len,
        }
    }

    /// Answer an Engine.IO error; the connection stays open (keep-alive) only for a request
    /// without a body, so no unread body is mistaken for the next request.
    pub(super) fn eio_error(
        &mut self,
        conn: ConnId,
        head: &RequestHead,
        code: EioErrorCode,
        cors: &[(&'static str, String)],
    ) -> RequestOutcome {
        let keep_alive =
            head.keep_alive && head.content_length.unwrap_or(0) == 0 && !head.websocket_upgrade;
        self.http(conn, keep_alive, |out| {
            write_eio_error(out, code, cors, keep_alive)
        });
        RequestOutcome::Done {
            consumed: head.head_len,
        }
    }

    fn polling_get(
        &mut self,
        conn: ConnId,
        head: &RequestHead,
        session: SessionRef,
        cors: CorsHeaders,
    ) -> RequestOutcome {
        let done = RequestOutcome::Done {
            consumed: head.head_len,
        };
        let Some(entry) = self.session(session) else {
            return self.eio_error(conn, head, EioErrorCode::UnknownSid, &cors);
        };
        let get = ParkedGet {
            conn,
            origin: head.origin.clone(),
            keep_alive: head.keep_alive,
        };
        match entry.eio.on_polling_get(get) {
            GetOutcome::Respond(frames) => {
                let keep_alive = head.keep_alive;
                self.http(conn, keep_alive, |out| {
                    write_polling_response(out, &frames, &cors, keep_alive)
                });
                done
            }
            GetOutcome::Hold => {
                self.link(conn, session, Role::Get);
                self.transmits.push_back(Transmit::Park { conn });
                done
            }
            GetOutcome::Conflict => {
                let outcome = self.eio_error(conn, head, EioErrorCode::BadRequest, &cors);
                self.close_session(session, CloseReason::ProtocolError(Violation::SecondGet));
                outcome
            }
            GetOutcome::WrongTransport => {
                self.eio_error(conn, head, EioErrorCode::BadRequest, &cors)
            }
        }
    }

    fn polling_post(
        &mut self,
        conn: ConnId,
        head: &RequestHead,
        session: SessionRef,
        cors: &[(&'static str, String)],
        after_head: &[u8],
    ) -> RequestOutcome {
        let Some(length) = head.content_length else {
            self.http(conn, false, |out| {
                write_plain_error(out, Status::LENGTH_REQUIRED, "Length Required", cors, false)
            });
            self.close_session(
                session,
                CloseReason::ProtocolError(Violation::LengthRequired),
            );
            return RequestOutcome::Done {
                consumed: head.head_len,
            };
        };
        let length = match usize::try_from(length) {
            Ok(length) if length <= self.config.max_payload && !head.chunked => length,
            _ => {
                self.http(conn, false, |out| {
                    write_plain_error(
                        out,
                        Status::PAYLOAD_TOO_LARGE,
                        "Payload Too Large",
                        cors,
                        false,
                    )
                });
                self.close_session(
                    session,
                    CloseReason::ProtocolError(Violation::PayloadTooLarge),
                );
                return RequestOutcome::Done {
                    consumed: head.head_len,
                };
            }
        };
        // One POST at a time per session: a second one while a body is still arriving is an
        // error that ends the session.
        let Some(entry) = self.session(session) else {
            return RequestOutcome::NeedMore;
        };
        if entry.post_conn.is_some_and(|other| other != conn) {
            let outcome = self.eio_error(conn, head, EioErrorCode::BadRequest, cors);
            self.close_session(session, CloseReason::ProtocolError(Violation::SecondPost));
            return outcome;
        }
        let Some(body) = after_head.get(..length) else {
            self.link(conn, session, Role::Post);
            return RequestOutcome::NeedMore;
        };
        let decoded = decode_payload(body);
        if self.links.get(&conn).is_some_and(|l| l.role == Role::Post) {
            self.unlink(conn);
        }
        let keep_alive = head.keep_alive;
        let consumed = head.head_len + length;
        match decoded {
            Ok(packets) => {
                self.http(conn, keep_alive, |out| {
                    write_response(
                        out,
                        Status::OK,
                        Some("text/html"),
                        cors,
                        POST_OK,
                        keep_alive,
                    )
                });
                for packet in packets {
                    if !self.on_inbound(session, packet) {
                        break;
                    }
                }
            }
            Err(_) => {
                self.http(conn, keep_alive, |out| {
                    write_eio_error(out, EioErrorCode::BadRequest, cors, keep_alive)
                });
                self.close_session(session, CloseReason::ProtocolError(Violation::BadPayload));
            }
        }
        RequestOutcome::Done { consumed }
    }

    /// An HTTP answer for `conn`; it closes after unless `keep_alive`.
    pub(super) fn http(
        &mut self,
        conn: ConnId,
        keep_alive: bool,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let mut bytes = Vec::new();
        write(&mut bytes);
        self.transmits.push_back(Transmit::Http {
            conn,
            bytes,
            keep_alive,
            broadcast: false,
        });
    }
}
