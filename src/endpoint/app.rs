//! The glue from Engine.IO messages to the Socket.IO layer and the application, and what the
//! application asks for in return: emits, acks, rooms, broadcasts, forwards to other shards.
//!
//! Broadcasts are encoded once and the same frames go to every member here and on the other
//! shards; a room's members are walked in place, never collected. Must never touch a socket
//! or block: other shards are reached through [`super::Event::ToPeer`].

use std::sync::Arc;
use std::time::Instant;

use super::io::{status, Broadcast, Frames, PeerMessage, Transmit, WsClose};
use super::rooms::{Member, Membership, RoomKey};
use super::timers::{SessionRef, TransportDeadline};
use super::{Endpoint, SMALL_FANOUT};
use crate::engineio::packet::{EioPacket, Frame};
use crate::engineio::session::{CloseReason, Inbound, Transport};
use crate::socketio::connection::{Call, Output, SioConnection};
use crate::socketio::handler::{
    Command, EngineMessage, Origin, RoomId, ShardCommand, ShardContext, SocketRef,
};
use crate::socketio::packet::Packet;
use crate::socketio::recovery::Delivered;
use crate::socketio::{packet_frames, Handler};

impl<H: Handler> Endpoint<H> {
    /// A packet from the client on the session's transport. Returns false once the session
    /// is closed.
    pub(super) fn on_inbound(&mut self, session: SessionRef, packet: EioPacket) -> bool {
        let now = self.now;
        let Some(entry) = self.session(session) else {
            return false;
        };
        let message = match entry.eio.on_inbound(packet, now) {
            Inbound::Nothing => {
                self.schedule(session);
                return true;
            }
            Inbound::Pong => {
                entry.pong_received();
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
                self.send_frames(session, &Frames::One(frame));
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
            let close = WsClose::new(status::NORMAL, format!("parse error: {error}"));
            let reason = CloseReason::ProtocolError(error.violation());
            self.close_session_with(session, reason, close);
            return false;
        }
        self.schedule(session);
        true
    }

    /// The session is closing: its sockets leave their namespaces (the application hears
    /// of it, and what its sockets' last commands broadcast reaches everyone else); nothing
    /// more is sent to the session itself.
    ///
    /// `delivered` is what the session's client was sent and surely has, when deliveries are
    /// logged (connection state recovery), for the application's `on_disconnect`.
    pub(super) fn app_session_closed(
        &mut self,
        session: SessionRef,
        reason: CloseReason,
        delivered: Option<&Delivered>,
    ) {
        let reason = reason.socket_reason(self.shutting_down);
        let outputs = self
            .with_sio_delivered(session, delivered, |sio, call, out| {
                sio.close(call, reason, out)
            })
            .map(|((), outputs)| outputs)
            .unwrap_or_default();
        let outputs = outputs
            .into_iter()
            .filter(|o| {
                !matches!(
                    o,
                    Output::Send(_)
                        | Output::Command {
                            command: Command::Emit(_) | Command::EmitSequenced { .. },
                            ..
                        }
                )
            })
            .collect();
        self.run_outputs(session, outputs);
    }

    /// Run `f` on a session's Socket.IO state with what handler calls need (the handler, this
    /// shard's application state, the session's origin, the id source); returns its result
    /// and the outputs to carry out. None when the session is gone or has no Socket.IO layer.
    fn with_sio<R>(
        &mut self,
        session: SessionRef,
        f: impl FnOnce(
            &mut SioConnection<H::State>,
            &mut Call<'_, H>,
            &mut Vec<Output<H::Forward>>,
        ) -> R,
    ) -> Option<(R, Vec<Output<H::Forward>>)> {
        self.with_sio_delivered(session, None, f)
    }

    /// [`Self::with_sio`], the calls seeing `delivered` (a closing session's deliveries).
    fn with_sio_delivered<R>(
        &mut self,
        session: SessionRef,
        delivered: Option<&Delivered>,
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
            ids: &mut self.ids,
            now: self.now,
            delivered,
        };
        let mut outputs = Vec::new();
        let result = f(sio, &mut call, &mut outputs);
        Some((result, outputs))
    }

    fn origin(&self, session: SessionRef) -> Origin {
        Origin {
            shard: self.index,
            shard_count: self.shards,
            session,
        }
    }

    /// Carry out what the Socket.IO layer and the handler asked for.
    fn run_outputs(&mut self, session: SessionRef, outputs: Vec<Output<H::Forward>>) {
        for output in outputs {
            match output {
                Output::Send(packet) => self.send_packet(session, &packet),
                Output::Command { nsp, command } => self.run_command(session, &nsp, command),
                Output::Left { nsp } => self.leave_rooms(session, &nsp, |_| true),
            }
        }
    }

    fn send_packet(&mut self, session: SessionRef, packet: &Packet) {
        let frames = Frames::from_vec(packet_frames(packet));
        self.send_frames(session, &frames);
    }

    fn run_command(&mut self, session: SessionRef, nsp: &str, command: Command<H::Forward>) {
        match command {
            Command::Emit(packet) => self.send_packet(session, &packet),
            Command::Join {
                room,
                floor,
                received,
            } => self.join_room(session, nsp, room, floor, received),
            Command::EmitSequenced { packet, room, seq } => {
                self.send_packet(session, &packet);
                if self.tracks_deliveries() {
                    if let Some(entry) = self.session(session) {
                        entry.deliveries.delivered(room, seq);
                    }
                }
            }
            // In `on_connect` the Socket.IO layer takes it; later it answers a deferred CONNECT.
            Command::ConnectAs { pid, id } => {
                let answer = self
                    .session(session)
                    .and_then(|e| e.sio.as_mut())
                    .and_then(|sio| sio.complete_connect(nsp, &pid, id));
                if let Some(answer) = answer {
                    self.send_packet(session, &answer);
                    self.schedule(session);
                }
            }
            // Taken by the Socket.IO layer in `on_connect`.
            Command::DeferConnect => {}
            Command::DropTransport => self.close_session(session, CloseReason::TransportClose),
            Command::Leave(room) => self.leave_rooms(session, nsp, |r| *r == room),
            Command::Broadcast {
                room,
                packet,
                except_self,
            } => {
                let except = except_self.then_some((self.index, session));
                self.broadcast_from(nsp, &room, &packet, except, None);
            }
            Command::Disconnect => {
                if let Some(((), outputs)) = self.with_sio(session, |sio, call, out| {
                    sio.server_disconnect(call, nsp, out)
                }) {
                    self.run_outputs(session, outputs);
                }
            }
            Command::Forward { shard, message } => self.forward(shard, message),
            Command::CloseTransportAt(at) => self.close_transport_at(session, nsp, at),
        }
    }

    /// Remember to close the session at `at` if the socket of `nsp` that asked is still
    /// connected then ([`Command::CloseTransportAt`]).
    fn close_transport_at(&mut self, session: SessionRef, nsp: &str, at: Instant) {
        let Some(socket_id) = self
            .session(session)
            .and_then(|e| e.sio.as_mut())
            .and_then(|sio| sio.socket_mut(nsp))
            .map(|socket| Box::<str>::from(socket.id.as_str()))
        else {
            return;
        };
        // Entries of sessions that closed before their deadline wait in the heap; when they
        // outnumber the live sessions, they go, so the heap stays the size of what is open.
        if self.transport_deadlines.len() > 2 * self.sessions.len() + 64 {
            let sessions = &self.sessions;
            self.transport_deadlines.retain(|d| {
                sessions
                    .get(d.session.key)
                    .is_some_and(|e| e.generation == d.session.generation)
            });
        }
        self.transport_deadlines.push(TransportDeadline {
            at,
            session,
            nsp: nsp.into(),
            socket_id,
        });
    }

    /// Close the sessions whose transport deadline is due at `now` (their sockets leave their
    /// namespaces, and the rooms see them leave, as at any close).
    pub(super) fn close_due_transports(&mut self, now: Instant) {
        while let Some(due) = self.transport_deadlines.pop_due(now) {
            let still_asking = self
                .session(due.session)
                .and_then(|e| e.sio.as_mut())
                .and_then(|sio| sio.socket_mut(&due.nsp))
                .is_some_and(|socket| socket.id.as_str() == &*due.socket_id);
            if still_asking {
                // Not a client's doing: connection state recovery (not built yet) must not
                // offer this session back; the application knows why it asked (e.g. the
                // chat's token expiry) and decides that in its own state.
                let close = WsClose::new(status::NORMAL, "transport closed by the application");
                self.close_session_with(due.session, CloseReason::ServerClose, close);
            }
        }
    }

    /// Hand an application message to a shard: at once on this one, over the bus otherwise.
    fn forward(&mut self, shard: usize, message: H::Forward) {
        if shard == self.index {
            self.app_forward(message);
        } else {
            self.send_peer(shard, PeerMessage::Forward(message));
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
            count: self.shards,
            now: self.now,
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
                    let frames = Frames::from_vec(packet_frames(&packet));
                    let session = socket.session;
                    if socket.shard == self.index {
                        self.emit_local(session, &socket.nsp, &frames);
                    } else {
                        let message = PeerMessage::EmitTo {
                            session,
                            nsp: socket.nsp,
                            frames,
                        };
                        self.send_peer(socket.shard, message);
                    }
                }
                ShardCommand::Broadcast {
                    nsp,
                    room,
                    packet,
                    except,
                    seq,
                } => {
                    let except = except.map(|s: SocketRef| (s.shard, s.session));
                    self.broadcast_from(&nsp, &room, &packet, except, seq);
                }
                ShardCommand::Forward { shard, message } => self.forward(shard, message),
                ShardCommand::ToSocket { socket, message } => {
                    if socket.shard == self.index {
                        self.app_to_socket(socket.session, &socket.nsp, message);
                    } else {
                        let message = PeerMessage::ToSocket {
                            session: socket.session,
                            nsp: socket.nsp,
                            message,
                        };
                        self.send_peer(socket.shard, message);
                    }
                }
            }
        }
    }

    /// Let the application handle a message for one of this shard's sockets (nothing when
    /// the session or its socket of `nsp` is gone), then carry out what it asked for.
    pub(super) fn app_to_socket(&mut self, session: SessionRef, nsp: &str, message: H::Forward) {
        if let Some(((), outputs)) = self.with_sio(session, |sio, call, out| {
            sio.on_forward(call, nsp, message, out)
        }) {
            self.run_outputs(session, outputs);
        }
    }

    /// Frames for one socket of this shard, if it is still connected to `nsp`.
    pub(super) fn emit_local(&mut self, session: SessionRef, nsp: &str, frames: &Frames) {
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
    fn join_room(
        &mut self,
        session: SessionRef,
        nsp: &str,
        room: RoomId,
        floor: u64,
        received: u64,
    ) {
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
        let mut membership = self.rooms.join(key, Member { session, floor });
        membership.received = received;
        if let Some(entry) = self.session(session) {
            if entry.memberships.capacity() == 0 {
                // Most readers are in one room: no room for four.
                entry.memberships.reserve_exact(1);
            }
            entry.memberships.push(membership);
        }
    }

    /// Take the session's socket of `nsp` out of the rooms `leaves` selects.
    fn leave_rooms(&mut self, session: SessionRef, nsp: &str, leaves: impl Fn(&RoomId) -> bool) {
        let Some(entry) = self.session(session) else {
            return;
        };
        let (left, kept): (Vec<Membership>, Vec<Membership>) =
            std::mem::take(&mut entry.memberships)
                .into_iter()
                .partition(|m| m.key.nsp == nsp && leaves(&m.key.room));
        entry.memberships = kept;
        for membership in &left {
            self.rooms.leave(membership);
        }
    }

    /// Send a packet to every member of a room on every shard (but `except`), encoded once.
    fn broadcast_from(
        &mut self,
        nsp: &str,
        room: &RoomId,
        packet: &Packet,
        except: Option<(usize, SessionRef)>,
        seq: Option<u64>,
    ) {
        let frames = Frames::from_vec(packet_frames(packet));
        let local_except = except.and_then(|(shard, s)| (shard == self.index).then_some(s));
        self.deliver_local(nsp, room, &frames, local_except, seq);
        if self.shards > 1 {
            let broadcast = Arc::new(Broadcast {
                nsp: nsp.to_owned(),
                room: room.clone(),
                frames,
                except,
                seq,
            });
            let own = self.index;
            for shard in (0..self.shards).filter(|&shard| shard != own) {
                self.send_peer(shard, PeerMessage::Broadcast(Arc::clone(&broadcast)));
            }
        }
    }

    /// Deliver encoded frames to this shard's members of a room, walking the room in place.
    /// A polling member's frames join its queue (and answer its parked GET); one that falls
    /// more than `--max-outbound-bytes` behind is closed after the walk.
    pub(super) fn deliver_local(
        &mut self,
        nsp: &str,
        room: &RoomId,
        frames: &Frames,
        except: Option<SessionRef>,
        seq: Option<u64>,
    ) {
        // A large fan-out is written after the turn's answers. A delivery can close a
        // session whose departure is delivered in turn: the outer fan-out's mark is
        // restored after it.
        let large = self.rooms.len_of(nsp, room) > SMALL_FANOUT;
        let outer = std::mem::replace(&mut self.fanning_out, large);
        let outer_delivering = std::mem::replace(&mut self.delivering, true);
        let max_outbound = self.config.max_outbound_bytes;
        // Connection state recovery logs each delivery of a numbered room's sequenced
        // broadcast (`crate::socketio::recovery`): a push onto a run, per member.
        let logged = match (room, seq) {
            (RoomId::Number(room), Some(seq)) if self.tracks_deliveries() => Some((*room, seq)),
            _ => None,
        };
        let mut delivered = 0;
        let mut ready_polls = Vec::new();
        let mut too_slow = Vec::new();
        for member in self.rooms.members(nsp, room) {
            if Some(member.session) == except || seq.is_some_and(|seq| seq <= member.floor) {
                continue;
            }
            let Some(entry) = self
                .sessions
                .get_mut(member.session.key)
                .filter(|e| e.generation == member.session.generation)
            else {
                continue;
            };
            delivered += 1;
            if let Some((room, seq)) = logged {
                entry.deliveries.delivered(room, seq);
            }
            if entry.eio.transport() == Transport::WebSocket {
                if let Some(&conn) = entry.eio.websocket_conn() {
                    self.transmits.push_back(Transmit::Frames {
                        conn,
                        frames: frames.clone(),
                        fan_out: large,
                        broadcast: true,
                    });
                }
                continue;
            }
            for frame in frames.as_slice() {
                entry.eio.enqueue(frame.clone());
            }
            if entry.eio.queued_bytes() > max_outbound {
                too_slow.push(member.session);
            } else if entry.eio.can_flush_polling() {
                ready_polls.push(member.session);
            }
        }
        for session in ready_polls {
            self.flush_polling(session);
        }
        for session in too_slow {
            // A polling reader this far behind is dropped like a slow WebSocket one.
            self.close_session(session, CloseReason::TransportClose);
        }
        self.fanning_out = outer;
        self.delivering = outer_delivering;
        self.metrics.shard(self.index).delivered(delivered);
    }
}
