//! The session table: opening, timing, sending to and closing Engine.IO sessions, and which
//! connection carries what for each.
//!
//! A session names its connections: its Engine.IO [`Session`] holds the parked GET, the
//! WebSocket and the WebSocket being probed for an upgrade (each stored there only), the entry
//! holds the POST whose body is arriving; `super::links` names the session back from each
//! connection.
//! Sending picks the path by transport: on WebSocket the frames go to the connection as a
//! transmit; on polling they join the session's queue and answer a parked GET.
//!
//! Must never touch a socket: everything for a connection leaves as a [`Transmit`].

use std::sync::Arc;
use std::time::Instant;

use super::io::{status, ConnId, Frames, Transmit, WsClose};
use super::links::Role;
use super::timers::SessionRef;
use super::Endpoint;
use crate::config::Layer;
use crate::engineio::packet::{encode_payload, open_packet, Frame, CLOSE, NOOP, PING};
use crate::engineio::session::{CloseReason, Conns, Session, TimeoutOutcome, Transport};
use crate::engineio::sid::Sid;
use crate::http::write_text_head;
use crate::metrics::TransportLabel;
use crate::socketio::connection::SioConnection;
use crate::socketio::handler::RoomId;
use crate::socketio::packet::Limits;
use crate::socketio::recovery::{Delivered, DeliveryLog};
use crate::socketio::Handler;

/// One Engine.IO session and everything the endpoint keeps for it.
pub struct SessionEntry<S> {
    pub sid: Sid,
    pub generation: u64,
    /// The Engine.IO state, with the connections carrying it (the parked GET, the WebSocket,
    /// the probe).
    pub eio: Session<ConnId, ParkedGet>,
    /// The Socket.IO state (absent on a plain Engine.IO server).
    pub sio: Option<SioConnection<S>>,
    /// The connection whose POST body is still arriving.
    pub post_conn: Option<ConnId>,
    /// Rooms this session's sockets are in on this shard.
    pub memberships: Vec<super::rooms::Membership>,
    /// The instant of this session's live timer entry.
    pub timer_at: Option<Instant>,
    /// Sequenced broadcasts sent since the client last answered a ping, when connection
    /// state recovery is on (`crate::socketio::recovery`; empty and unallocated otherwise).
    pub deliveries: DeliveryLog,
}

impl<S> SessionEntry<S> {
    /// The client answered the ping in flight: what was sent before it is surely received.
    pub(super) fn pong_received(&mut self) {
        let memberships = &mut self.memberships;
        self.deliveries.pong_received(|room, seq| {
            let joined = memberships
                .iter_mut()
                .find(|m| m.key.room == RoomId::Number(room));
            if let Some(membership) = joined {
                membership.received = membership.received.max(seq);
            }
        });
    }

    /// What the session's client was sent and surely has, for its application at a close.
    pub(super) fn delivered(&self) -> Delivered {
        let received = self
            .memberships
            .iter()
            .filter_map(|m| match m.key.room {
                RoomId::Number(room) => Some((room, m.received)),
                RoomId::Name(_) => None,
            })
            .collect();
        Delivered {
            received,
            runs: self.deliveries.runs().to_vec(),
        }
    }
}

/// A polling GET held until its session has something to send.
#[derive(Debug)]
pub struct ParkedGet {
    pub conn: ConnId,
    /// The request's `Origin`, for the CORS headers of the answer.
    pub origin: Option<String>,
    pub keep_alive: bool,
}

impl<H: Handler> Endpoint<H> {
    /// The live session a reference names, if it still exists.
    pub(super) fn session(&mut self, session: SessionRef) -> Option<&mut SessionEntry<H::State>> {
        self.sessions
            .get_mut(session.key)
            .filter(|entry| entry.generation == session.generation)
    }

    /// Whether sessions log their sequenced deliveries (connection state recovery is on).
    pub(super) fn tracks_deliveries(&self) -> bool {
        !self.config.recovery_window.is_zero()
    }

    /// Open a session: on polling (`websocket` is `None`) or on WebSocket `websocket`.
    pub(super) fn create_session(&mut self, websocket: Option<ConnId>) -> SessionRef {
        let transport = match websocket {
            Some(_) => Transport::WebSocket,
            None => Transport::Polling,
        };
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
            eio: match websocket {
                Some(conn) => Session::websocket(Arc::clone(&self.session_config), conn, now),
                None => Session::polling(Arc::clone(&self.session_config), now),
            },
            sio,
            post_conn: None,
            memberships: Vec::new(),
            timer_at: None,
            deliveries: DeliveryLog::default(),
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
        if let Some(conn) = websocket {
            self.link(conn, session, Role::WebSocket);
        }
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
        let tracking = self.tracks_deliveries();
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
            TimeoutOutcome::Ping => {
                if tracking {
                    // Everything logged so far is written before this ping.
                    entry.deliveries.ping_sent();
                }
                match entry.eio.websocket_conn().copied() {
                    Some(conn) => self.transmit_frames(conn, &[PING]),
                    None => self.flush_polling(session),
                }
            }
            TimeoutOutcome::UpgradeExpired(probe) => {
                self.unlink(probe);
                let close = WsClose::new(status::NORMAL, "upgrade timeout");
                self.transmits
                    .push_back(Transmit::CloseWebSocket { conn: probe, close });
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
            if let Some(&conn) = entry.eio.websocket_conn() {
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
    pub(super) fn flush_polling(&mut self, session: SessionRef) {
        let Some(entry) = self.session(session) else {
            return;
        };
        if let Some((get, frames)) = entry.eio.take_polling_payload() {
            self.answer_get(get, &frames);
        }
    }

    /// Answer a GET the session let go of with exactly these frames, and forget its link.
    pub(super) fn answer_get(&mut self, get: ParkedGet, frames: &[Frame]) {
        self.unlink(get.conn);
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
        let tracking = self.tracks_deliveries();
        let Some(entry) = self.session(session) else {
            return;
        };
        let delivered = tracking.then(|| entry.delivered());
        self.app_session_closed(session, reason, delivered.as_ref());
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
        let on_polling = entry.eio.transport() == Transport::Polling;
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
        let Conns {
            get,
            websocket,
            probe,
        } = entry.eio.into_conns();
        for conn in [entry.post_conn, websocket, probe]
            .into_iter()
            .flatten()
            .chain(get.as_ref().map(|g| g.conn))
        {
            self.links.remove(&conn);
        }
        match (get, reason) {
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
            (None, CloseReason::ClientClose) if on_polling => {
                self.remember_client_closed(entry.sid.as_str().to_owned())
            }
            (None, _) => {}
        }
        if let (Some(conn), CloseReason::ServerClose) = (websocket, reason) {
            self.transmit_frames(conn, &[CLOSE]);
        }
        for conn in [websocket, probe].into_iter().flatten() {
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
