//! The session table: opening, timing, sending to and closing Engine.IO sessions, and which
//! connection carries what for each.
//!
//! A session names its connections (the parked GET, the POST whose body is arriving, the
//! WebSocket, the WebSocket being probed for an upgrade) and [`Link`]s name the session back
//! from each connection; both change only in [`Endpoint::link`] and [`Endpoint::unlink`].
//! Sending picks the path by transport: on WebSocket the frames go to the connection as a
//! transmit; on polling they join the session's queue and answer a parked GET.
//!
//! Must never touch a socket: everything for a connection leaves as a [`Transmit`].

use std::time::Instant;

use super::io::{status, ConnId, Frames, Transmit, WsClose};
use super::timers::SessionRef;
use super::Endpoint;
use crate::config::Layer;
use crate::engineio::packet::{encode_payload, open_packet, Frame, CLOSE, NOOP, PING};
use crate::engineio::session::{CloseReason, Session, TimeoutOutcome, Transport};
use crate::engineio::sid::Sid;
use crate::http::write_text_head;
use crate::metrics::TransportLabel;
use crate::socketio::connection::SioConnection;
use crate::socketio::packet::Limits;
use crate::socketio::Handler;

/// One Engine.IO session and everything the endpoint keeps for it.
pub struct SessionEntry<S> {
    pub sid: Sid,
    pub generation: u64,
    pub eio: Session,
    /// The Socket.IO state (absent on a plain Engine.IO server).
    pub sio: Option<SioConnection<S>>,
    /// The parked polling GET, and how to answer it.
    pub get: Option<ParkedGet>,
    /// The connection whose POST body is still arriving.
    pub post_conn: Option<ConnId>,
    /// The WebSocket carrying the session, once on WebSocket.
    pub ws_conn: Option<ConnId>,
    /// The WebSocket attached for an upgrade, until it completes.
    pub probe_conn: Option<ConnId>,
    /// Rooms this session's sockets are in on this shard.
    pub memberships: Vec<super::rooms::Membership>,
    /// The instant of this session's live timer entry.
    pub timer_at: Option<Instant>,
}

/// A polling GET held until its session has something to send.
pub struct ParkedGet {
    pub conn: ConnId,
    /// The request's `Origin`, for the CORS headers of the answer.
    pub origin: Option<String>,
    pub keep_alive: bool,
}

/// What a connection carries for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Get,
    Post,
    WebSocket,
    Probe,
}

/// A connection's session and role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub session: SessionRef,
    pub role: Role,
}

impl<H: Handler> Endpoint<H> {
    /// The live session a reference names, if it still exists.
    pub(super) fn session(&mut self, session: SessionRef) -> Option<&mut SessionEntry<H::State>> {
        self.sessions
            .get_mut(session.key)
            .filter(|entry| entry.generation == session.generation)
    }

    /// Record that `conn` carries `role` for `session` (both directions).
    pub(super) fn link(&mut self, conn: ConnId, session: SessionRef, role: Role) {
        let Some(entry) = self.session(session) else {
            return;
        };
        match role {
            Role::Get => {} // set by the caller with its answer details
            Role::Post => entry.post_conn = Some(conn),
            Role::WebSocket => entry.ws_conn = Some(conn),
            Role::Probe => entry.probe_conn = Some(conn),
        }
        self.links.insert(conn, Link { session, role });
    }

    /// Forget what `conn` carries (both directions); the link it had, if any.
    pub(super) fn unlink(&mut self, conn: ConnId) -> Option<Link> {
        let link = self.links.remove(&conn)?;
        if let Some(entry) = self.session(link.session) {
            let slot = match link.role {
                Role::Get => {
                    if entry.get.as_ref().is_some_and(|g| g.conn == conn) {
                        entry.get = None;
                        entry.eio.release_get();
                    }
                    return Some(link);
                }
                Role::Post => &mut entry.post_conn,
                Role::WebSocket => &mut entry.ws_conn,
                Role::Probe => &mut entry.probe_conn,
            };
            if *slot == Some(conn) {
                *slot = None;
            }
        }
        Some(link)
    }

    /// A connection that carried `link` is gone.
    pub(super) fn on_link_closed(&mut self, link: Link, reason: CloseReason) {
        match link.role {
            // engine.io: "poll connection closed prematurely": the client is gone.
            Role::Get => self.close_session(link.session, CloseReason::TransportClose),
            Role::Post => {}
            Role::WebSocket => self.close_session(link.session, reason),
            Role::Probe => {
                if let Some(entry) = self.session(link.session) {
                    entry.eio.cancel_upgrade();
                }
            }
        }
    }

    pub(super) fn create_session(&mut self, transport: Transport) -> SessionRef {
        let now = self.now;
        let sio = (self.config.layer == Layer::SocketIo).then(|| {
            SioConnection::new(
                Limits {
                    max_attachments: self.config.max_attachments,
                    max_json_depth: self.config.max_json_depth,
                    max_json_elements: self.config.max_json_elements,
                },
                self.config.max_namespaces_per_connection,
                now + self.config.connect_timeout,
            )
        });
        let generation = self.next_generation();
        let sid = Sid::generate(self.index, &mut self.ids);
        let key = self.sessions.insert(SessionEntry {
            sid,
            generation,
            eio: Session::new(std::sync::Arc::clone(&self.session_config), transport, now),
            sio,
            get: None,
            post_conn: None,
            ws_conn: None,
            probe_conn: None,
            memberships: Vec::new(),
            timer_at: None,
        });
        self.metrics
            .shard(self.index)
            .session_opened(transport_label(transport));
        crate::log_debug!(
            "session_open",
            shard = self.index,
            sid = sid,
            transport = transport_label(transport).as_str()
        );
        self.by_sid.insert(sid, key);
        let session = SessionRef { key, generation };
        self.schedule(session);
        session
    }

    pub(super) fn open_frame(&mut self, session: SessionRef, upgrades: &[&str]) -> Frame {
        let sid = self.session(session).map(|e| e.sid);
        open_packet(
            sid.as_ref().map_or("", Sid::as_str),
            upgrades,
            self.config.ping_interval.as_millis() as u64,
            self.config.ping_timeout.as_millis() as u64,
            self.config.max_payload,
        )
    }

    /// Make sure the session's next deadline has a live timer entry.
    pub(super) fn schedule(&mut self, session: SessionRef) {
        let Some(entry) = self.session(session) else {
            return;
        };
        let mut due = entry.eio.next_deadline();
        if let Some(connect) = entry.sio.as_ref().and_then(|s| s.connect_deadline()) {
            due = due.min(connect);
        }
        if entry.timer_at.is_none_or(|at| due < at) {
            entry.timer_at = Some(due);
            self.timers.push(due, session);
        }
    }

    pub(super) fn on_session_timer(&mut self, session: SessionRef, at: Instant, now: Instant) {
        let Some(entry) = self.session(session) else {
            return;
        };
        if entry.timer_at != Some(at) {
            return;
        }
        entry.timer_at = None;
        if entry
            .sio
            .as_ref()
            .and_then(|s| s.connect_deadline())
            .is_some_and(|deadline| now >= deadline)
        {
            let close = WsClose::new(status::NORMAL, "connect timeout");
            self.close_session_with(session, CloseReason::ServerClose, close);
            return;
        }
        match entry.eio.on_timeout(now) {
            TimeoutOutcome::Nothing => {}
            TimeoutOutcome::Ping => match (entry.eio.transport(), entry.ws_conn) {
                (Transport::WebSocket, Some(conn)) => self.transmit_frames(conn, &[PING]),
                _ => self.flush_polling(session),
            },
            TimeoutOutcome::UpgradeExpired => {
                if let Some(probe) = entry.probe_conn {
                    self.unlink(probe);
                    let close = WsClose::new(status::NORMAL, "upgrade timeout");
                    self.transmits
                        .push_back(Transmit::CloseWebSocket { conn: probe, close });
                }
            }
            TimeoutOutcome::Close(reason) => {
                self.close_session(session, reason);
                return;
            }
        }
        self.schedule(session);
    }

    /// WebSocket frames for a connection.
    pub(super) fn transmit_frames(&mut self, conn: ConnId, frames: &[Frame]) {
        if frames.is_empty() {
            return;
        }
        self.transmits.push_back(Transmit::Frames {
            conn,
            frames: Frames::from_slice(frames),
            fan_out: self.fanning_out,
            broadcast: self.delivering,
        });
    }

    /// Send frames (one packet and its attachments, kept together) to a session.
    pub(super) fn send_frames(&mut self, session: SessionRef, frames: &Frames) {
        let max_outbound = self.config.max_outbound_bytes;
        let (fan_out, broadcast) = (self.fanning_out, self.delivering);
        let Some(entry) = self.session(session) else {
            return;
        };
        if entry.eio.transport() == Transport::WebSocket {
            if let Some(conn) = entry.ws_conn {
                self.transmits.push_back(Transmit::Frames {
                    conn,
                    frames: frames.clone(),
                    fan_out,
                    broadcast,
                });
            }
            return;
        }
        for frame in frames.as_slice() {
            entry.eio.enqueue(frame.clone());
        }
        if entry.eio.queued_bytes() > max_outbound {
            // A polling reader this far behind is dropped like a slow WebSocket one.
            self.close_session(session, CloseReason::TransportClose);
            return;
        }
        self.flush_polling(session);
    }

    /// Answer the parked GET if the session has frames for it.
    fn flush_polling(&mut self, session: SessionRef) {
        let Some(entry) = self.session(session) else {
            return;
        };
        if !entry.eio.can_flush_polling() {
            return;
        }
        let frames = entry.eio.take_polling_payload();
        self.answer_parked_get(session, &frames);
    }

    /// Answer the parked GET, if any, with exactly these frames (a noop, a close).
    pub(super) fn answer_parked_get(&mut self, session: SessionRef, frames: &[Frame]) {
        let Some(entry) = self.session(session) else {
            return;
        };
        let Some(get) = entry.get.take() else {
            return;
        };
        entry.eio.release_get();
        self.links.remove(&get.conn);
        let cors = self.cors.headers(get.origin.as_deref());
        let mut bytes = Vec::new();
        write_polling_response(&mut bytes, frames, &cors, get.keep_alive);
        self.transmits.push_back(Transmit::Http {
            conn: get.conn,
            bytes,
            keep_alive: get.keep_alive,
            broadcast: self.delivering,
        });
    }

    /// End a session: the application hears of it, its rooms forget it, its connections
    /// are answered or closed, its sid is gone.
    ///
    /// A WebSocket of the session gets a close frame: 1001 while the server shuts down, else
    /// 1000 with socket.io's reason text ([`CloseReason::as_str`]).
    pub(super) fn close_session(&mut self, session: SessionRef, reason: CloseReason) {
        let close = if self.shutting_down {
            WsClose::new(status::GOING_AWAY, "server shutting down")
        } else {
            WsClose::new(status::NORMAL, reason.as_str())
        };
        self.close_session_with(session, reason, close);
    }

    /// [`Endpoint::close_session`], its WebSocket (if any) closed with `close`.
    pub(super) fn close_session_with(
        &mut self,
        session: SessionRef,
        reason: CloseReason,
        close: WsClose,
    ) {
        if self.session(session).is_none() {
            return;
        }
        self.app_session_closed(session, reason);
        let Some(entry) = self.session(session) else {
            return;
        };
        let memberships = std::mem::take(&mut entry.memberships);
        for membership in &memberships {
            self.rooms.leave(membership);
        }
        let Some(entry) = self.sessions.try_remove(session.key) else {
            return;
        };
        let transport = transport_label(entry.eio.transport());
        self.metrics
            .shard(self.index)
            .session_closed(transport, reason);
        crate::log_debug!(
            "session_close",
            shard = self.index,
            sid = entry.sid,
            transport = transport.as_str(),
            reason = reason.as_str(),
            violation = reason.violation().map_or("", |v| v.label())
        );
        self.by_sid.remove(&entry.sid);
        for conn in [entry.post_conn, entry.ws_conn, entry.probe_conn]
            .into_iter()
            .flatten()
            .chain(entry.get.as_ref().map(|g| g.conn))
        {
            self.links.remove(&conn);
        }
        match (entry.get, reason) {
            // A client close gets a noop; any other end tells the client with a close packet.
            (Some(get), reason) => {
                let frame = if reason == CloseReason::ClientClose {
                    NOOP
                } else {
                    CLOSE
                };
                let cors = self.cors.headers(get.origin.as_deref());
                let mut bytes = Vec::new();
                write_polling_response(&mut bytes, &[frame], &cors, get.keep_alive);
                // A close never waits.
                self.transmits.push_back(Transmit::Http {
                    conn: get.conn,
                    bytes,
                    keep_alive: get.keep_alive,
                    broadcast: false,
                });
            }
            (None, CloseReason::ClientClose) if entry.eio.transport() == Transport::Polling => {
                self.remember_client_closed(entry.sid.as_str().to_owned())
            }
            (None, _) => {}
        }
        if let (Some(conn), CloseReason::ServerClose) = (entry.ws_conn, reason) {
            self.transmit_frames(conn, &[CLOSE]);
        }
        for conn in [entry.ws_conn, entry.probe_conn].into_iter().flatten() {
            self.transmits.push_back(Transmit::CloseWebSocket {
                conn,
                close: close.clone(),
            });
        }
    }
}

pub(super) fn transport_label(transport: Transport) -> TransportLabel {
    match transport {
        Transport::Polling => TransportLabel::Polling,
        Transport::WebSocket => TransportLabel::WebSocket,
    }
}

/// A 200 text/plain response carrying frames as a polling payload.
pub(super) fn write_polling_response(
    out: &mut Vec<u8>,
    frames: &[Frame],
    cors: &[(&'static str, String)],
    keep_alive: bool,
) {
    let body_len =
        frames.iter().map(Frame::polling_len).sum::<usize>() + frames.len().saturating_sub(1);
    write_text_head(out, body_len, cors, keep_alive);
    encode_payload(frames, out);
}
