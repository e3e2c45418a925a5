//! The WebSocket transport: the handshake (a new session, or an upgrade probe for a polling
//! one), the probe and the switch from polling, and the Engine.IO packets of a WebSocket.
//!
//! The I/O layer does the RFC 6455 framing and hands over whole messages; this module
//! decides what they mean. Must never frame or read bytes itself.

use std::time::Instant;

use super::io::{status, ConnId, RequestOutcome, Transmit, WsClose, WsMessage};
use super::links::Role;
use super::timers::SessionRef;
use super::Endpoint;
use crate::engineio::packet::{decode_text, EioPacket, NOOP, PONG_PROBE};
use crate::engineio::session::{CloseReason, ProbeOutcome};
use crate::engineio::violation::Violation;
use crate::http::{write_websocket_accept, EioErrorCode, RequestHead};
use crate::socketio::Handler;

impl<H: Handler> Endpoint<H> {
    /// The WebSocket handshake: a new WebSocket session (no sid) or an upgrade probe.
    pub(super) fn attach_websocket(
        &mut self,
        conn: ConnId,
        head: &RequestHead,
        upgrade_of: Option<SessionRef>,
        cors: &[(&'static str, String)],
    ) -> RequestOutcome {
        let (Some(ws_key), Some("13")) = (
            head.websocket_key.as_deref(),
            head.websocket_version.as_deref(),
        ) else {
            return self.eio_error(conn, head, EioErrorCode::BadRequest, cors);
        };
        let now = self.now;
        let mut accept = Vec::new();
        write_websocket_accept(&mut accept, ws_key);
        self.transmits
            .push_back(Transmit::AcceptWebSocket { conn, accept });
        match upgrade_of {
            None => {
                let session = self.create_session(Some(conn));
                let open = self.open_frame(session, &[]);
                self.transmit_frames(conn, &[open]);
            }
            Some(session) => {
                let accepted = self
                    .session(session)
                    .is_some_and(|entry| entry.eio.begin_upgrade(now, conn).is_ok());
                if accepted {
                    self.link(conn, session, Role::Probe);
                    self.schedule(session);
                } else {
                    // A second WebSocket for the session: accepted, then closed at once.
                    let close = WsClose::new(
                        status::POLICY,
                        "the session has a WebSocket or an upgrade under way",
                    );
                    self.transmits
                        .push_back(Transmit::CloseWebSocket { conn, close });
                }
            }
        }
        RequestOutcome::Done {
            consumed: head.head_len,
        }
    }

    /// One whole WebSocket message from `conn`. A connection the endpoint does not know (it
    /// asked for it to close) is ignored.
    pub fn handle_ws_message(&mut self, now: Instant, conn: ConnId, message: WsMessage<'_>) {
        self.now = now;
        let Some(link) = self.links.get(&conn).copied() else {
            return;
        };
        let packet = match message {
            WsMessage::Text(text) => match decode_text(text) {
                Ok(packet) => packet,
                Err(_) => {
                    let close =
                        WsClose::new(status::NORMAL, "parse error: not an Engine.IO packet");
                    let reason = CloseReason::ProtocolError(Violation::NotAnEngineIoPacket);
                    self.close_websocket(conn, close, reason);
                    return;
                }
            },
            WsMessage::Binary(data) => EioPacket::Binary(data),
        };
        match link.role {
            Role::Probe => self.on_probe_packet(conn, link.session, packet),
            Role::WebSocket => {
                self.on_inbound(link.session, packet);
            }
            Role::Get | Role::Post => {}
        }
    }

    /// Close a WebSocket the server's way: `close` goes out as its close frame. The session
    /// it carries ends with `reason`; on an upgrade probe, only the upgrade is abandoned.
    fn close_websocket(&mut self, conn: ConnId, close: WsClose, reason: CloseReason) {
        let Some(link) = self.links.get(&conn).copied() else {
            return;
        };
        if link.role == Role::WebSocket {
            // Writes `close` on this connection and closes it after.
            self.close_session_with(link.session, reason, close);
            return;
        }
        self.unlink(conn);
        self.transmits
            .push_back(Transmit::CloseWebSocket { conn, close });
        self.on_link_closed(link, reason);
    }

    fn on_probe_packet(&mut self, conn: ConnId, session: SessionRef, packet: EioPacket) {
        let Some(entry) = self.session(session) else {
            let close = WsClose::new(status::NORMAL, "the session is closed");
            self.close_websocket(conn, close, CloseReason::TransportClose);
            return;
        };
        match entry.eio.on_probe_packet(&packet) {
            ProbeOutcome::SendProbeAnswer { get } => {
                self.transmit_frames(conn, &[PONG_PROBE]);
                if let Some(get) = get {
                    self.answer_get(get, &[NOOP]);
                }
            }
            ProbeOutcome::Upgraded { get } => {
                self.metrics.shard(self.index).session_upgraded();
                if let Some(get) = get {
                    self.answer_get(get, &[NOOP]);
                }
                // The probe is the session's WebSocket now.
                self.link(conn, session, Role::WebSocket);
                let queued = match self.session(session) {
                    Some(entry) => entry.eio.drain_queue(),
                    None => Vec::new(),
                };
                for frame in queued {
                    self.transmit_frames(conn, std::slice::from_ref(&frame));
                }
            }
            ProbeOutcome::Nothing => {}
            ProbeOutcome::AbortUpgrade(probe) => {
                let close = WsClose::new(status::NORMAL, "parse error: upgrade aborted");
                let reason = CloseReason::ProtocolError(Violation::UpgradeAborted);
                self.close_websocket(probe, close, reason);
            }
        }
    }
}
