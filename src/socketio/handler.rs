//! The application's side of Socket.IO: the [`Handler`] trait and the [`Socket`] it acts on.
//!
//! Sans-IO like the codecs: a handler never writes to a socket. It records [`Command`]s
//! (emit, ack, join, leave, broadcast, disconnect) on the [`Socket`] it is given, and the
//! shard carries them out after the call returns. That keeps handlers testable without a
//! network and keeps every byte written by one place.

use bytes::Bytes;
use serde_json::Value;

use super::packet::Packet;

/// A refused CONNECT: sent to the client as CONNECT_ERROR `{"message", "data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    pub data: Option<Value>,
}

/// An event from the client: `data` is the whole array, event name first; binary values are
/// placeholders indexing `attachments`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub data: Value,
    pub attachments: Vec<Bytes>,
    /// Present when the client waits for an acknowledgement.
    pub ack_id: Option<u64>,
}

impl Event {
    /// The event name (the first element), if it is a string.
    pub fn name(&self) -> Option<&str> {
        self.data.as_array()?.first()?.as_str()
    }

    /// The arguments after the name.
    pub fn args(&self) -> &[Value] {
        self.data
            .as_array()
            .and_then(|a| a.get(1..))
            .unwrap_or_default()
    }
}

/// One Engine.IO message, for [`crate::config::Layer::EngineIo`] servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineMessage {
    Text(String),
    Binary(Bytes),
}

/// What a handler asks the shard to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Send a packet to this socket.
    Emit(Packet),
    /// Put this socket in a room of its namespace.
    Join(String),
    /// Take this socket out of a room.
    Leave(String),
    /// Send a packet to every socket in a room of this namespace, on every shard, optionally
    /// not to this socket. The packet is encoded once.
    Broadcast {
        room: String,
        packet: Packet,
        except_self: bool,
    },
    /// Disconnect this socket from its namespace.
    Disconnect,
}

/// The socket a handler call is about.
pub struct Socket<'a, S> {
    /// The Socket.IO id sent in the CONNECT answer.
    pub id: &'a str,
    pub nsp: &'a str,
    /// The application's per-socket state.
    pub state: &'a mut S,
    /// The rooms this socket is in (as of before this call's commands run).
    pub rooms: &'a [String],
    pub(crate) commands: &'a mut Vec<Command>,
    pub(crate) next_ack_id: &'a mut u64,
}

impl<'a, S> Socket<'a, S> {
    /// A socket context that records into `commands` (the shard's, or a test's).
    pub fn new(
        id: &'a str,
        nsp: &'a str,
        state: &'a mut S,
        rooms: &'a [String],
        commands: &'a mut Vec<Command>,
        next_ack_id: &'a mut u64,
    ) -> Self {
        Socket {
            id,
            nsp,
            state,
            rooms,
            commands,
            next_ack_id,
        }
    }

    /// Emit `event` with `args` to this socket.
    pub fn emit(&mut self, event: &str, args: Vec<Value>) {
        self.emit_binary(event, args, Vec::new());
    }

    /// Emit with binary attachments (placeholders in `args` index them).
    pub fn emit_binary(&mut self, event: &str, args: Vec<Value>, attachments: Vec<Bytes>) {
        let packet = Packet::event(self.nsp, event_array(event, args), None, attachments);
        self.commands.push(Command::Emit(packet));
    }

    /// Emit and ask the client for an acknowledgement; its answer arrives through
    /// [`Handler::on_ack`] with the returned id.
    pub fn emit_with_ack(&mut self, event: &str, args: Vec<Value>) -> u64 {
        let id = *self.next_ack_id;
        *self.next_ack_id += 1;
        let packet = Packet::event(self.nsp, event_array(event, args), Some(id), Vec::new());
        self.commands.push(Command::Emit(packet));
        id
    }

    /// Answer the client's acknowledgement `ack_id` with `values`.
    pub fn ack(&mut self, ack_id: u64, values: Vec<Value>, attachments: Vec<Bytes>) {
        let packet = Packet::ack(self.nsp, ack_id, Value::Array(values), attachments);
        self.commands.push(Command::Emit(packet));
    }

    pub fn join(&mut self, room: &str) {
        self.commands.push(Command::Join(room.to_owned()));
    }

    pub fn leave(&mut self, room: &str) {
        self.commands.push(Command::Leave(room.to_owned()));
    }

    /// Emit `event` to every member of `room` (this socket too unless `except_self`).
    pub fn broadcast(&mut self, room: &str, event: &str, args: Vec<Value>, except_self: bool) {
        let packet = Packet::event(self.nsp, event_array(event, args), None, Vec::new());
        self.commands.push(Command::Broadcast {
            room: room.to_owned(),
            packet,
            except_self,
        });
    }

    pub fn disconnect(&mut self) {
        self.commands.push(Command::Disconnect);
    }
}

fn event_array(event: &str, args: Vec<Value>) -> Value {
    let mut array = Vec::with_capacity(args.len() + 1);
    array.push(Value::String(event.to_owned()));
    array.extend(args);
    Value::Array(array)
}

/// A Socket.IO application. One instance serves every shard, so it is `Sync`; per-socket
/// state lives in `State`.
pub trait Handler: Send + Sync + 'static {
    type State: Default + Send + 'static;

    /// Whether a namespace exists (`/` included). Unknown ones get `Invalid namespace`.
    fn has_namespace(&self, nsp: &str) -> bool;

    /// A client connected to a namespace with `auth` (`{}` when it sent none). Refuse it to
    /// send CONNECT_ERROR.
    fn on_connect(&self, socket: &mut Socket<'_, Self::State>, auth: &Value)
        -> Result<(), Refusal>;

    /// An event from the client.
    fn on_event(&self, socket: &mut Socket<'_, Self::State>, event: Event);

    /// The client acknowledged an event sent with [`Socket::emit_with_ack`].
    fn on_ack(&self, _socket: &mut Socket<'_, Self::State>, _ack_id: u64, _data: Value) {}

    /// The socket left its namespace (client DISCONNECT, transport close, ping timeout, ...).
    /// It is still in its rooms during this call; broadcasts reach the other members.
    fn on_disconnect(&self, _socket: &mut Socket<'_, Self::State>, _reason: &str) {}

    /// Plain Engine.IO servers only: a message arrived; return the messages to send back.
    fn on_engine_message(&self, _message: EngineMessage) -> Vec<EngineMessage> {
        Vec::new()
    }
}
