//! Sessions on a shard: creating, timing, sending to and closing Engine.IO sessions, and the
//! glue from Engine.IO messages to the Socket.IO layer and the application.
//!
//! Sending picks the path by transport: on WebSocket a frame is appended straight to the
//! connection's output; on polling it joins the session's queue and answers a parked GET.
//! Broadcasts are encoded once and the same frames go to every member here and on the other
//! shards (docs/ARCHITECTURE.md, principle 3).

use std::sync::Arc;
use std::time::Instant;

use super::bus::{Broadcast, BusMessage};
use super::rooms::{Member, Membership, RoomKey};
use super::shard::Shard;
use super::timers::SessionRef;
use super::ws::{self, WsClose};
use crate::config::Layer;
use crate::engineio::packet::{open_packet, EioPacket, Frame, CLOSE, NOOP, PING};
use crate::engineio::session::{
    CloseReason, Inbound, Session, SessionConfig, TimeoutOutcome, Transport,
};
use crate::engineio::sid;
use crate::metrics::TransportLabel;
use crate::socketio::connection::{Call, Output, SioConnection};
use crate::socketio::handler::{
    Command, EngineMessage, Origin, ShardCommand, ShardContext, SocketRef,
};
use crate::socketio::packet::{Limits, Packet};
use crate::socketio::{packet_frames, Handler};

/// One Engine.IO session and everything the shard keeps for it.
pub struct SessionEntry<S> {
    pub sid: sid::Sid,
    pub generation: u64,
    pub eio: Session,
    /// The Socket.IO state (absent on a plain Engine.IO server).
    pub sio: Option<SioConnection<S>>,
    /// The connection of the parked polling GET.
    pub get_conn: Option<usize>,
    /// The connection whose POST body is still arriving.
    pub post_conn: Option<usize>,
    /// The WebSocket carrying the session, once on WebSocket.
    pub ws_conn: Option<usize>,
    /// The WebSocket attached for an upgrade, until it completes.
    pub probe_conn: Option<usize>,
    /// Rooms this session's sockets are in on this shard.
    pub memberships: Vec<Membership>,
    /// The instant of this session's live timer entry.
    pub timer_at: Option<Instant>,
}

impl<H: Handler> Shard<H> {
    /// The live session a reference names, if it still exists.
    pub fn session(&mut self, session: SessionRef) -> Option<&mut SessionEntry<H::State>> {
        self.sessions
            .get_mut(session.key)
            .filter(|entry| entry.generation == session.generation)
    }

    pub(super) fn create_session(&mut self, transport: Transport, now: Instant) -> SessionRef {
        let config = Arc::clone(self.session_config.get_or_insert_with(|| {
            Arc::new(SessionConfig {
                ping_interval: self.config.ping_interval,
                ping_timeout: self.config.ping_timeout,
                upgrade_timeout: self.config.upgrade_timeout,
                max_payload: self.config.max_payload,
            })
        }));
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
        let sid = sid::Sid::generate(self.index);
        let key = self.sessions.insert(SessionEntry {
            sid,
            generation,
            eio: Session::new(config, transport, now),
            sio,
            get_conn: None,
            post_conn: None,
            ws_conn: None,
            probe_conn: None,
            memberships: Vec::new(),
            timer_at: None,
        });
        self.ops
            .metrics
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
            sid.as_ref().map_or("", sid::Sid::as_str),
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
            let close = WsClose::new(ws::status::NORMAL, "connect timeout");
            self.close_session_with(session, CloseReason::ServerClose, close);
            return;
        }
        let outcome = entry.eio.on_timeout(now);
        match outcome {
            TimeoutOutcome::Nothing => {}
            TimeoutOutcome::Ping => {
                let (transport, ws_conn) = (entry.eio.transport(), entry.ws_conn);
                match (transport, ws_conn) {
                    (Transport::WebSocket, Some(conn)) => self.write_ws_frames(conn, &[PING]),
                    _ => self.flush_polling(session),
                }
            }
            TimeoutOutcome::UpgradeExpired => {
                if let Some(probe) = entry.probe_conn.take() {
                    let close = WsClose::new(ws::status::NORMAL, "upgrade timeout");
                    self.close_websocket(probe, close, CloseReason::TransportClose);
                }
            }
            TimeoutOutcome::Close(reason) => {
                self.close_session(session, reason);
                return;
            }
        }
        self.schedule(session);
    }

    /// Send frames (one packet and its attachments, kept together) to a session.
    pub(super) fn send_frames(&mut self, session: SessionRef, frames: &[Frame]) {
        let max_outbound = self.config.max_outbound_bytes;
        let Some(entry) = self.session(session) else {
            return;
        };
        if entry.eio.transport() == Transport::WebSocket {
            if let Some(conn) = entry.ws_conn {
                self.write_ws_frames(conn, frames);
            }
            return;
        }
        for frame in frames {
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
        let Some(conn) = entry.get_conn.take() else {
            return;
        };
        let frames = entry.eio.take_polling_payload();
        self.answer_get_conn(conn, &frames);
    }

    /// Answer the parked GET, if any, with exactly these frames (a noop, a close).
    pub(super) fn answer_parked_get_with(&mut self, session: SessionRef, frames: &[Frame]) {
        let Some(entry) = self.session(session) else {
            return;
        };
        let Some(conn) = entry.get_conn.take() else {
            return;
        };
        entry.eio.release_get();
        self.answer_get_conn(conn, frames);
    }

    /// The connection of a parked GET closed before it was answered: the client is gone
    /// (engine.io: "poll connection closed prematurely"), so the session ends.
    pub(super) fn on_get_conn_closed(&mut self, session: SessionRef) {
        if let Some(entry) = self.session(session) {
            entry.get_conn = None;
            entry.eio.release_get();
            self.close_session(session, CloseReason::TransportClose);
        }
    }

    /// A WebSocket connection of the session closed.
    pub(super) fn on_websocket_closed(
        &mut self,
        session: SessionRef,
        key: usize,
        probing: bool,
        reason: CloseReason,
    ) {
        let Some(entry) = self.session(session) else {
            return;
        };
        if probing {
            if entry.probe_conn == Some(key) {
                entry.probe_conn = None;
                entry.eio.cancel_upgrade();
            }
        } else if entry.ws_conn == Some(key) {
            entry.ws_conn = None;
            self.close_session(session, reason);
        }
    }

    /// A packet from the client on the session's transport. Returns false once the session
    /// is closed.
    pub(super) fn on_inbound(
        &mut self,
        session: SessionRef,
        packet: EioPacket,
        now: Instant,
    ) -> bool {
        let Some(entry) = self.session(session) else {
            return false;
        };
        let message = match entry.eio.on_inbound(packet, now) {
            Inbound::Nothing => {
                self.schedule(session);
                return true;
            }
            Inbound::Close(reason) => {
                self.close_session(session, reason);
                return false;
            }
            Inbound::Message(text) => EngineMessage::Text(text),
            Inbound::Binary(bytes) => EngineMessage::Binary(bytes),
        };
        self.on_engine_message(session, message)
    }

    fn on_engine_message(&mut self, session: SessionRef, message: EngineMessage) -> bool {
        let Some(entry) = self.session(session) else {
            return false;
        };
        if entry.sio.is_none() {
            // A plain Engine.IO server: the handler answers messages directly.
            for reply in self.handler.on_engine_message(message) {
                let frame = match reply {
                    EngineMessage::Text(text) => Frame::message(&text),
                    EngineMessage::Binary(bytes) => Frame::Binary(bytes),
                };
                self.send_frames(session, std::slice::from_ref(&frame));
            }
            return true;
        }
        let Some((result, outputs)) =
            self.with_sio(session, |sio, call, out| sio.on_message(call, message, out))
        else {
            return false;
        };
        self.run_outputs(session, outputs);
        if let Err(error) = result {
            let close = WsClose::new(ws::status::NORMAL, format!("parse error: {error}"));
            self.close_session_with(session, CloseReason::ProtocolError, close);
            return false;
        }
        self.schedule(session);
        true
    }

    /// Run `f` on a session's Socket.IO state with what handler calls need (the handler, this
    /// shard's application state, the session's origin); returns its result and the outputs
    /// to carry out. None when the session is gone or has no Socket.IO layer.
    fn with_sio<R>(
        &mut self,
        session: SessionRef,
        f: impl FnOnce(
            &mut SioConnection<H::State>,
            &mut Call<'_, H>,
            &mut Vec<Output<H::Forward>>,
        ) -> R,
    ) -> Option<(R, Vec<Output<H::Forward>>)> {
        let handler = Arc::clone(&self.handler);
        let origin = self.origin(session);
        let sio = self
            .sessions
            .get_mut(session.key)
            .filter(|e| e.generation == session.generation)?
            .sio
            .as_mut()?;
        let mut call = Call {
            handler: &*handler,
            shard: &mut self.app,
            origin,
        };
        let mut outputs = Vec::new();
        let result = f(sio, &mut call, &mut outputs);
        Some((result, outputs))
    }

    fn origin(&self, session: SessionRef) -> Origin {
        Origin {
            shard: self.index,
            shard_count: self.peers.len(),
            session: session.key,
            generation: session.generation,
        }
    }

    /// Carry out what the Socket.IO layer and the handler asked for.
    fn run_outputs(&mut self, session: SessionRef, outputs: Vec<Output<H::Forward>>) {
        for output in outputs {
            match output {
                Output::Send(packet) => self.send_frames(session, &packet_frames(&packet)),
                Output::Command { nsp, command } => self.run_command(session, &nsp, command),
                Output::Left { nsp } => self.leave_rooms(session, &nsp, |_| true),
            }
        }
    }

    fn run_command(&mut self, session: SessionRef, nsp: &str, command: Command<H::Forward>) {
        match command {
            Command::Emit(packet) => self.send_frames(session, &packet_frames(&packet)),
            Command::Join { room, floor } => self.join_room(session, nsp, room, floor),
            Command::Leave(room) => self.leave_rooms(session, nsp, |r| r == room),
            Command::Broadcast {
                room,
                packet,
                except_self,
            } => {
                let except = except_self.then_some(session);
                self.broadcast(nsp, &room, &packet, except, None);
            }
            Command::Disconnect => {
                if let Some(((), outputs)) = self.with_sio(session, |sio, call, out| {
                    sio.server_disconnect(call, nsp, out)
                }) {
                    self.run_outputs(session, outputs);
                }
            }
            Command::Forward { shard, message } => self.forward(shard, message),
        }
    }

    /// Hand an application message to a shard: at once on this one, over the bus otherwise.
    fn forward(&mut self, shard: usize, message: H::Forward) {
        if shard == self.index {
            self.app_forward(message);
        } else if self.peers.send(shard, BusMessage::Forward(message)).is_ok() {
            self.wake_later(shard);
        }
        // A full bus drops the message: the shard it was for is hopelessly behind.
    }

    fn wake_later(&mut self, shard: usize) {
        if let Some(wake) = self.to_wake.get_mut(shard) {
            *wake = true;
        }
    }

    /// Let the application handle a forwarded message.
    pub(super) fn app_forward(&mut self, message: H::Forward) {
        self.with_shard_context(|handler, context| handler.on_forward(context, message));
    }

    /// Let the application finish its loop turn.
    pub(super) fn app_turn_end(&mut self) {
        self.with_shard_context(|handler, context| handler.on_turn_end(context));
    }

    /// Call the application with this shard's context, then carry out what it asked for.
    fn with_shard_context(
        &mut self,
        f: impl FnOnce(&H, &mut ShardContext<'_, H::Shard, H::Forward>),
    ) {
        let handler = Arc::clone(&self.handler);
        let mut commands = Vec::new();
        let mut context = ShardContext {
            index: self.index,
            count: self.peers.len(),
            state: &mut self.app,
            commands: &mut commands,
        };
        f(&handler, &mut context);
        self.run_shard_commands(commands);
    }

    fn run_shard_commands(&mut self, commands: Vec<ShardCommand<H::Forward>>) {
        for command in commands {
            match command {
                ShardCommand::EmitTo { socket, packet } => {
                    let frames = packet_frames(&packet);
                    let session = SessionRef {
                        key: socket.session,
                        generation: socket.generation,
                    };
                    if socket.shard == self.index {
                        self.emit_local(session, &socket.nsp, &frames);
                    } else {
                        let message = BusMessage::EmitTo {
                            session,
                            nsp: socket.nsp,
                            frames,
                        };
                        if self.peers.send(socket.shard, message).is_ok() {
                            self.wake_later(socket.shard);
                        }
                    }
                }
                ShardCommand::Broadcast {
                    nsp,
                    room,
                    packet,
                    except,
                    seq,
                } => {
                    let except = except.map(|s: SocketRef| {
                        (
                            s.shard,
                            SessionRef {
                                key: s.session,
                                generation: s.generation,
                            },
                        )
                    });
                    self.broadcast_from(&nsp, &room, &packet, except, seq);
                }
                ShardCommand::Forward { shard, message } => self.forward(shard, message),
            }
        }
    }

    /// Frames for one socket of this shard, if it is still connected to `nsp`.
    pub(super) fn emit_local(&mut self, session: SessionRef, nsp: &str, frames: &[Frame]) {
        let connected = self
            .session(session)
            .and_then(|e| e.sio.as_mut())
            .is_some_and(|sio| sio.socket_mut(nsp).is_some());
        if connected {
            self.send_frames(session, frames);
        }
    }

    /// Put the session's socket of `nsp` in a room (once; a socket no longer connected to
    /// `nsp` joins nothing).
    fn join_room(&mut self, session: SessionRef, nsp: &str, room: String, floor: u64) {
        let Some(entry) = self.session(session) else {
            return;
        };
        let connected = entry
            .sio
            .as_mut()
            .is_some_and(|s| s.socket_mut(nsp).is_some());
        let already_in = entry
            .memberships
            .iter()
            .any(|m| m.key.nsp == nsp && m.key.room == room);
        if !connected || already_in {
            return;
        }
        let key = RoomKey {
            nsp: nsp.to_owned(),
            room,
        };
        let membership = self.rooms.join(key, Member { session, floor });
        if let Some(entry) = self.session(session) {
            if entry.memberships.capacity() == 0 {
                // Most readers are in one room: no room for four.
                entry.memberships.reserve_exact(1);
            }
            entry.memberships.push(membership);
        }
    }

    /// Take the session's socket of `nsp` out of the rooms `leaves` selects.
    fn leave_rooms(&mut self, session: SessionRef, nsp: &str, leaves: impl Fn(&str) -> bool) {
        let Some(entry) = self.session(session) else {
            return;
        };
        let (left, kept) = std::mem::take(&mut entry.memberships)
            .into_iter()
            .partition(|m| m.key.nsp == nsp && leaves(&m.key.room));
        entry.memberships = kept;
        let left: Vec<Membership> = left;
        for membership in &left {
            self.rooms.leave(membership);
        }
    }

    /// Send a packet to every member of a room on every shard, encoded once.
    pub fn broadcast(
        &mut self,
        nsp: &str,
        room: &str,
        packet: &Packet,
        except: Option<SessionRef>,
        seq: Option<u64>,
    ) {
        let except = except.map(|session| (self.index, session));
        self.broadcast_from(nsp, room, packet, except, seq);
    }

    fn broadcast_from(
        &mut self,
        nsp: &str,
        room: &str,
        packet: &Packet,
        except: Option<(usize, SessionRef)>,
        seq: Option<u64>,
    ) {
        let frames = packet_frames(packet);
        let local_except = except.and_then(|(shard, s)| (shard == self.index).then_some(s));
        self.deliver_local(nsp, room, &frames, local_except, seq);
        if self.peers.len() > 1 {
            let broadcast = Arc::new(Broadcast {
                nsp: nsp.to_owned(),
                room: room.to_owned(),
                frames,
                except,
                seq,
            });
            for shard in 0..self.peers.len() {
                if shard == self.index {
                    continue;
                }
                let message = BusMessage::Broadcast(Arc::clone(&broadcast));
                if self.peers.send(shard, message).is_ok() {
                    self.wake_later(shard);
                }
            }
        }
    }

    /// Deliver encoded frames to this shard's members of a room.
    pub(super) fn deliver_local(
        &mut self,
        nsp: &str,
        room: &str,
        frames: &[Frame],
        except: Option<SessionRef>,
        seq: Option<u64>,
    ) {
        let mut delivered = 0;
        let members = self.rooms.members(nsp, room);
        // A large fan-out is written after the turn's answers (shard.rs, `end_turn`). A
        // delivery can close a session whose departure is delivered in turn: the outer
        // fan-out's class is restored after it.
        let outer = std::mem::replace(
            &mut self.fanning_out,
            members.len() > super::shard::SMALL_FANOUT,
        );
        // Output marked now may wait up to --write-delay (shard.rs, `mark_dirty`).
        let outer_delivering = std::mem::replace(&mut self.delivering, true);
        for member in members {
            if Some(member.session) == except || seq.is_some_and(|seq| seq <= member.floor) {
                continue;
            }
            self.send_frames(member.session, frames);
            delivered += 1;
        }
        self.fanning_out = outer;
        self.delivering = outer_delivering;
        self.ops.metrics.shard(self.index).delivered(delivered);
    }

    /// End a session: the application hears of it, its rooms forget it, its connections
    /// are answered or closed, its sid is gone.
    ///
    /// A WebSocket of the session gets a close frame: 1001 while the server shuts down, else
    /// 1000 with socket.io's reason text ([`CloseReason::as_str`]).
    pub fn close_session(&mut self, session: SessionRef, reason: CloseReason) {
        let close = if self.is_shutting_down() {
            WsClose::new(ws::status::GOING_AWAY, "server shutting down")
        } else {
            WsClose::new(ws::status::NORMAL, reason.as_str())
        };
        self.close_session_with(session, reason, close);
    }

    /// [`Shard::close_session`], its WebSocket (if any) closed with `close`.
    pub fn close_session_with(&mut self, session: SessionRef, reason: CloseReason, close: WsClose) {
        if self.session(session).is_none() {
            return;
        }
        let outputs = self
            .with_sio(session, |sio, call, out| {
                sio.close(call, reason.as_str(), out)
            })
            .map(|((), outputs)| outputs)
            .unwrap_or_default();
        // The session is still registered while its sockets' last commands run, so their
        // broadcasts reach everyone else; nothing more is sent to the session itself.
        let outputs = outputs
            .into_iter()
            .filter(|o| {
                !matches!(
                    o,
                    Output::Send(_)
                        | Output::Command {
                            command: Command::Emit(_),
                            ..
                        }
                )
            })
            .collect();
        self.run_outputs(session, outputs);
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
        self.ops
            .metrics
            .shard(self.index)
            .session_closed(transport, reason);
        crate::log_debug!(
            "session_close",
            shard = self.index,
            sid = entry.sid,
            transport = transport.as_str(),
            reason = reason.as_str()
        );
        self.by_sid.remove(&entry.sid);
        match (entry.get_conn, reason) {
            // A client close gets a noop; any other end tells the client with a close packet.
            (Some(conn), CloseReason::ClientClose) => self.answer_get_conn(conn, &[NOOP]),
            (Some(conn), _) => self.answer_get_conn(conn, &[CLOSE]),
            (None, CloseReason::ClientClose) if entry.eio.transport() == Transport::Polling => {
                self.remember_client_closed(entry.sid.as_str().to_owned())
            }
            (None, _) => {}
        }
        if let (Some(conn), CloseReason::ServerClose) = (entry.ws_conn, reason) {
            self.write_ws_frames(conn, &[CLOSE]);
        }
        for conn in [entry.ws_conn, entry.probe_conn].into_iter().flatten() {
            if let Some(c) = self.conns.get_mut(conn) {
                c.carrying = super::conn::Carrying::Http;
                if c.ws.is_some() {
                    ws::write_close(c.output(), &close);
                }
            }
            self.close_after_flush(conn);
        }
    }
}

fn transport_label(transport: Transport) -> TransportLabel {
    match transport {
        Transport::Polling => TransportLabel::Polling,
        Transport::WebSocket => TransportLabel::WebSocket,
    }
}
