//! The Socket.IO side of one Engine.IO session: namespaces joined, binary reassembly, the
//! connect timeout, and turning packets into [`Handler`] calls.
//!
//! Sans-IO: Engine.IO messages and the time come in; handler calls happen here; what must be
//! written or done comes out as [`Output`]s for the shard to carry out. Rooms are the shard's
//! (they span sessions), so `Join`/`Leave` leave here as commands and the shard reports back
//! through [`SioConnection::socket_mut`].

use std::borrow::Cow;
use std::time::Instant;

use serde_json::Value;

use super::binary::Reassembler;
use super::handler::{Command, EngineMessage, Event, Handler, Origin, Refusal, Socket};
use super::packet::{Limits, Packet, PacketError, PacketKind, DEFAULT_NAMESPACE};
use crate::engineio::sid::{random_id, IdSource, RandomId};
use crate::engineio::violation::{SocketIoRule, Violation};

/// One namespace this connection has joined.
#[derive(Debug)]
pub struct NamespaceSocket<S> {
    /// The namespace; `/`, by far the most common, costs no allocation.
    pub nsp: Cow<'static, str>,
    pub id: RandomId,
    pub state: S,
    next_ack_id: u64,
    /// Its CONNECT is not answered yet ([`Command::DeferConnect`]).
    deferred: bool,
}

/// What every handler call needs besides the socket: the handler, this shard's application
/// state, and where the session lives.
pub struct Call<'a, H: Handler> {
    pub handler: &'a H,
    pub shard: &'a mut H::Shard,
    pub origin: Origin,
    /// Where new socket ids come from.
    pub ids: &'a mut IdSource,
    /// The time of the event being handled.
    pub now: Instant,
    /// For a session closing: its deliveries, when they are logged (see
    /// [`super::handler::Socket::delivered`]).
    pub delivered: Option<&'a super::recovery::Delivered>,
}

/// What the shard must do after a message.
#[derive(Debug, PartialEq)]
pub enum Output<F = ()> {
    /// Write this packet to the session.
    Send(Packet),
    /// Carry out a handler's command for this connection's socket in namespace `nsp`.
    Command { nsp: String, command: Command<F> },
    /// The socket of `nsp` has left its namespace and was removed: take it out of all its
    /// rooms. Commands before this one may still name it.
    Left { nsp: String },
}

/// Why the connection must close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SioError {
    Packet(PacketError),
    /// A packet other than CONNECT for a namespace this connection is not in.
    NotConnected,
    /// CONNECT to a namespace this connection is already in.
    AlreadyConnected,
    /// CONNECT_ERROR is server-to-client only.
    UnexpectedPacket,
    /// More namespaces than allowed on one connection.
    TooManyNamespaces,
}

impl std::fmt::Display for SioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SioError::Packet(e) => e.fmt(f),
            SioError::NotConnected => write!(f, "packet for a namespace not connected"),
            SioError::AlreadyConnected => write!(f, "CONNECT to a namespace already connected"),
            SioError::UnexpectedPacket => write!(f, "CONNECT_ERROR from a client"),
            SioError::TooManyNamespaces => write!(f, "more namespaces than allowed"),
        }
    }
}

impl SioError {
    /// The protocol rule broken, for the metrics and logs.
    pub fn violation(&self) -> Violation {
        Violation::SocketIo(match self {
            SioError::Packet(error) => error.rule(),
            SioError::NotConnected => SocketIoRule::NotConnected,
            SioError::AlreadyConnected => SocketIoRule::AlreadyConnected,
            SioError::UnexpectedPacket => SocketIoRule::ConnectErrorFromClient,
            SioError::TooManyNamespaces => SocketIoRule::TooManyNamespaces,
        })
    }
}

impl From<PacketError> for SioError {
    fn from(e: PacketError) -> Self {
        SioError::Packet(e)
    }
}

/// Socket.IO state of one session.
pub struct SioConnection<S> {
    reassembler: Reassembler,
    sockets: Vec<NamespaceSocket<S>>,
    /// Until the first CONNECT: when the session must be closed.
    connect_deadline: Option<Instant>,
    max_namespaces: usize,
}

impl<S: Default> SioConnection<S> {
    pub fn new(
        limits: Limits,
        max_namespaces: usize,
        connect_deadline: Instant,
    ) -> SioConnection<S> {
        SioConnection {
            reassembler: Reassembler::new(limits),
            sockets: Vec::new(),
            connect_deadline: Some(connect_deadline),
            max_namespaces,
        }
    }

    /// The instant at which the connection must be closed for not connecting, if still due.
    pub fn connect_deadline(&self) -> Option<Instant> {
        self.connect_deadline
    }

    pub fn sockets(&self) -> &[NamespaceSocket<S>] {
        &self.sockets
    }

    pub fn socket_mut(&mut self, nsp: &str) -> Option<&mut NamespaceSocket<S>> {
        self.sockets.iter_mut().find(|s| s.nsp == nsp)
    }

    /// An Engine.IO message arrived. Handler calls happen here; `out` receives what to do.
    pub fn on_message<H: Handler<State = S>>(
        &mut self,
        call: &mut Call<'_, H>,
        message: EngineMessage,
        out: &mut Vec<Output<H::Forward>>,
    ) -> Result<(), SioError> {
        let packet = match message {
            EngineMessage::Text(text) => self.reassembler.push_text(&text)?,
            EngineMessage::Binary(bytes) => self.reassembler.push_binary(bytes)?,
        };
        match packet {
            Some(packet) => self.on_packet(call, packet, out),
            None => Ok(()),
        }
    }

    fn on_packet<H: Handler<State = S>>(
        &mut self,
        call: &mut Call<'_, H>,
        packet: Packet,
        out: &mut Vec<Output<H::Forward>>,
    ) -> Result<(), SioError> {
        if packet.kind == PacketKind::Connect {
            return self.connect(call, packet, out);
        }
        // A packet for a namespace this connection is not in (never joined, refused, or
        // left) is an invalid state that closes the connection, as socket.io does.
        let Some(index) = self.sockets.iter().position(|s| s.nsp == packet.nsp) else {
            return Err(SioError::NotConnected);
        };
        match packet.kind {
            PacketKind::Disconnect => {
                self.remove(call, index, "client namespace disconnect", out);
            }
            PacketKind::Event | PacketKind::BinaryEvent => {
                let event = match (packet.json, &packet.data) {
                    (Some(json), _) => Event::from_json(json, packet.attachments, packet.id),
                    (None, Some(data)) => Event::from_value(data, packet.attachments, packet.id),
                    // The decoder refuses an EVENT without data.
                    (None, None) => return Err(SioError::Packet(PacketError::EventDataNotArray)),
                };
                let handler = call.handler;
                self.call(call, index, out, |socket| handler.on_event(socket, event));
            }
            PacketKind::Ack | PacketKind::BinaryAck => {
                if let Some(id) = packet.id {
                    let data = packet.data.unwrap_or(Value::Null);
                    let handler = call.handler;
                    self.call(call, index, out, |socket| handler.on_ack(socket, id, data));
                }
            }
            PacketKind::Connect | PacketKind::ConnectError => {
                return Err(SioError::UnexpectedPacket)
            }
        }
        Ok(())
    }

    fn connect<H: Handler<State = S>>(
        &mut self,
        call: &mut Call<'_, H>,
        packet: Packet,
        out: &mut Vec<Output<H::Forward>>,
    ) -> Result<(), SioError> {
        if !call.handler.has_namespace(&packet.nsp) {
            out.push(Output::Send(Packet::connect_error(
                &packet.nsp,
                "Invalid namespace",
                None,
            )));
            return Ok(());
        }
        if self.sockets.iter().any(|s| s.nsp == packet.nsp) {
            // A second CONNECT to a namespace already joined: socket.io closes.
            return Err(SioError::AlreadyConnected);
        }
        if self.sockets.len() >= self.max_namespaces {
            return Err(SioError::TooManyNamespaces);
        }
        let auth = packet
            .data
            .unwrap_or_else(|| Value::Object(Default::default()));
        let nsp = if packet.nsp == DEFAULT_NAMESPACE {
            Cow::Borrowed(DEFAULT_NAMESPACE)
        } else {
            Cow::Owned(packet.nsp)
        };
        let mut socket = NamespaceSocket {
            nsp,
            id: random_id(call.ids),
            state: S::default(),
            next_ack_id: 0,
            deferred: false,
        };
        let mut commands = Vec::new();
        let handler = call.handler;
        let result = handler.on_connect(&mut socket_view(&mut socket, call, &mut commands), &auth);
        match result {
            Ok(()) => {
                let deferred = commands.iter().any(|c| matches!(c, Command::DeferConnect));
                if deferred {
                    // Answered later (`complete_connect`); the connect timeout runs meanwhile.
                    commands.retain(|command| {
                        !matches!(command, Command::DeferConnect | Command::ConnectAs { .. })
                    });
                    socket.deferred = true;
                    push_commands(&socket.nsp, commands, out);
                    self.sockets.push(socket);
                    return Ok(());
                }
                // Connected: the connect timeout no longer applies.
                self.connect_deadline = None;
                let mut pid = None;
                commands.retain_mut(|command| match command {
                    Command::ConnectAs { pid: p, id } => {
                        pid = Some(std::mem::take(p));
                        if let Some(id) = id.take() {
                            socket.id = id;
                        }
                        false
                    }
                    _ => true,
                });
                out.push(Output::Send(connect_answer(
                    &socket.nsp,
                    socket.id.as_str(),
                    pid.as_deref(),
                )));
                push_commands(&socket.nsp, commands, out);
                if self.sockets.capacity() == 0 {
                    // Most connections join one namespace: room for one, not four (a
                    // socket is ~144 bytes, and an idle connection must cost < 2 KiB).
                    self.sockets.reserve_exact(1);
                }
                self.sockets.push(socket);
            }
            Err(Refusal { message, data }) => {
                out.push(Output::Send(Packet::connect_error(
                    &socket.nsp,
                    &message,
                    data,
                )));
            }
        }
        Ok(())
    }

    /// Answer the deferred CONNECT of the socket of `nsp` ([`Command::DeferConnect`]) with
    /// `pid`, the socket taking `id` if given; the answer to send, or None when that socket's
    /// CONNECT is not waiting (answered already, or no such socket).
    pub fn complete_connect(
        &mut self,
        nsp: &str,
        pid: &str,
        id: Option<RandomId>,
    ) -> Option<Packet> {
        let socket = self
            .sockets
            .iter_mut()
            .find(|s| s.nsp == nsp && s.deferred)?;
        socket.deferred = false;
        if let Some(id) = id {
            socket.id = id;
        }
        self.connect_deadline = None;
        Some(connect_answer(&socket.nsp, socket.id.as_str(), Some(pid)))
    }

    /// The session ended: every namespace socket disconnects with `reason`.
    pub fn close<H: Handler<State = S>>(
        &mut self,
        call: &mut Call<'_, H>,
        reason: &str,
        out: &mut Vec<Output<H::Forward>>,
    ) {
        while !self.sockets.is_empty() {
            self.remove(call, self.sockets.len() - 1, reason, out);
        }
    }

    /// The socket of `nsp` was disconnected by the server (a `Disconnect` command).
    pub fn server_disconnect<H: Handler<State = S>>(
        &mut self,
        call: &mut Call<'_, H>,
        nsp: &str,
        out: &mut Vec<Output<H::Forward>>,
    ) {
        if let Some(index) = self.sockets.iter().position(|s| s.nsp == nsp) {
            out.push(Output::Send(Packet::disconnect(nsp)));
            self.remove(call, index, "server namespace disconnect", out);
        }
    }

    /// A message for the socket of `nsp` from [`super::handler::ShardCommand::ToSocket`]:
    /// the handler's [`Handler::on_socket_forward`] runs with it (dropped when this
    /// connection has no socket in `nsp`).
    pub fn on_forward<H: Handler<State = S>>(
        &mut self,
        call: &mut Call<'_, H>,
        nsp: &str,
        message: H::Forward,
        out: &mut Vec<Output<H::Forward>>,
    ) {
        if let Some(index) = self.sockets.iter().position(|s| s.nsp == nsp) {
            let handler = call.handler;
            self.call(call, index, out, |socket| {
                handler.on_socket_forward(socket, message)
            });
        }
    }

    fn remove<H: Handler<State = S>>(
        &mut self,
        call: &mut Call<'_, H>,
        index: usize,
        reason: &str,
        out: &mut Vec<Output<H::Forward>>,
    ) {
        let handler = call.handler;
        self.call(call, index, out, |socket| {
            handler.on_disconnect(socket, reason)
        });
        if index < self.sockets.len() {
            let socket = self.sockets.remove(index);
            out.push(Output::Left {
                nsp: socket.nsp.into_owned(),
            });
        }
    }

    fn call<H: Handler<State = S>>(
        &mut self,
        call: &mut Call<'_, H>,
        index: usize,
        out: &mut Vec<Output<H::Forward>>,
        f: impl FnOnce(&mut Socket<'_, S, H::Shard, H::Forward>),
    ) {
        let Some(socket) = self.sockets.get_mut(index) else {
            return;
        };
        let mut commands = Vec::new();
        f(&mut socket_view(socket, call, &mut commands));
        push_commands(&socket.nsp, commands, out);
    }
}

fn push_commands<F>(nsp: &str, commands: Vec<Command<F>>, out: &mut Vec<Output<F>>) {
    out.extend(commands.into_iter().map(|command| Output::Command {
        nsp: nsp.to_owned(),
        command,
    }));
}

fn socket_view<'a, H: Handler>(
    socket: &'a mut NamespaceSocket<H::State>,
    call: &'a mut Call<'_, H>,
    commands: &'a mut Vec<Command<H::Forward>>,
) -> Socket<'a, H::State, H::Shard, H::Forward> {
    Socket {
        id: socket.id.as_str(),
        nsp: &socket.nsp,
        state: &mut socket.state,
        shard: call.shard,
        origin: call.origin,
        now: call.now,
        commands,
        next_ack_id: &mut socket.next_ack_id,
        delivered: call.delivered,
    }
}

/// `{"sid"}`, or `{"sid","pid"}` with connection state recovery (socket.io 4.6+).
fn connect_answer(nsp: &str, id: &str, pid: Option<&str>) -> Packet {
    let mut data = serde_json::Map::new();
    data.insert("sid".to_owned(), Value::String(id.to_owned()));
    if let Some(pid) = pid {
        data.insert("pid".to_owned(), Value::String(pid.to_owned()));
    }
    Packet::connect(nsp, Some(Value::Object(data)))
}
