//! The application's side of Socket.IO: the [`Handler`] trait and the [`Socket`] it acts on.
//!
//! Sans-IO like the codecs: a handler never writes to a socket. It records [`Command`]s
//! (emit, ack, join, leave, broadcast, disconnect) on the [`Socket`] it is given, and the
//! shard carries them out after the call returns. That keeps handlers testable without a
//! network and keeps every byte written by one place.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::event_json::{event_name, first_arg};
use super::packet::Packet;
pub use crate::engineio::session::SessionRef;

/// A refused CONNECT: sent to the client as CONNECT_ERROR `{"message", "data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    pub data: Option<Value>,
}

/// An event from the client: its data array (event name first) as JSON text, never parsed
/// into a tree unless the application asks for one; binary values are placeholders
/// (`{"_placeholder":true,"num":i}`) indexing `attachments`.
///
/// Decode the arguments you expect with [`Event::first_arg`] into typed values (serde
/// derive or a hand-written visitor, strings borrowed from the text): a wrong type is then
/// refused without building anything, and the application answers it. [`Event::args`]
/// builds the `serde_json::Value` tree of every argument, for applications that echo
/// arbitrary JSON (its size is bounded by maxPayload only: several times the text).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The data array's text; what the decoder checked and rewrote (see
    /// [`super::packet::decode_deferred`]).
    json: Box<str>,
    /// The name when it is a string (`None` for events named by a number).
    name: Option<Box<str>>,
    pub attachments: Vec<Bytes>,
    /// Present when the client waits for an acknowledgement.
    pub ack_id: Option<u64>,
}

impl Event {
    /// An event from its data array's text, as [`super::packet::decode_deferred`] keeps it.
    pub fn from_json(json: Box<str>, attachments: Vec<Bytes>, ack_id: Option<u64>) -> Event {
        let name = event_name(&json).map(String::into_boxed_str);
        Event {
            json,
            name,
            attachments,
            ack_id,
        }
    }

    /// An event from a decoded data array (a packet with attachments, whose placeholders
    /// were checked on the tree).
    pub fn from_value(data: &Value, attachments: Vec<Bytes>, ack_id: Option<u64>) -> Event {
        // Writing a `Value` to a string cannot fail: its keys are always strings.
        let json = serde_json::to_string(data).unwrap_or_else(|_| "[]".to_owned());
        Event::from_json(json.into_boxed_str(), attachments, ack_id)
    }

    /// The event name (the first element), if it is a string.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The data array as JSON text, name first.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The first argument (the element after the name) as a `T`, the other arguments skipped
    /// without being decoded; `Ok(None)` when there is none. Errors are `T`'s own (a wrong
    /// type, a missing field).
    pub fn first_arg<'a, T: Deserialize<'a>>(&'a self) -> Result<Option<T>, serde_json::Error> {
        first_arg(&self.json)
    }

    /// Every argument after the name, decoded into `Value`s. Fails only when the data nests
    /// deeper than serde_json follows (possible when `--max-json-depth` is set above
    /// [`super::packet::Limits::SERDE_MAX_DEPTH`]).
    pub fn args(&self) -> Result<Vec<Value>, serde_json::Error> {
        let mut all: Vec<Value> = serde_json::from_str(&self.json)?;
        if !all.is_empty() {
            all.remove(0);
        }
        Ok(all)
    }
}

/// One Engine.IO message, for [`crate::config::Layer::EngineIo`] servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineMessage {
    Text(String),
    Binary(Bytes),
}

/// Names one socket anywhere in the server: its shard, its session there, its namespace.
/// It stays valid while the socket lives; a reference to a gone socket reaches nobody.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SocketRef {
    pub shard: usize,
    pub session: SessionRef,
    pub nsp: String,
}

/// A room of a namespace, by its identity: a number (no text is built for it, e.g. a book
/// id) or a name. Two rooms are the same when their ids are equal: `Number(7)` and
/// `Name("7")` are different rooms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoomId {
    Number(u64),
    Name(Box<str>),
}

impl From<u64> for RoomId {
    fn from(number: u64) -> RoomId {
        RoomId::Number(number)
    }
}

impl From<&str> for RoomId {
    fn from(name: &str) -> RoomId {
        RoomId::Name(name.into())
    }
}

impl From<&String> for RoomId {
    fn from(name: &String) -> RoomId {
        RoomId::Name(name.as_str().into())
    }
}

impl From<String> for RoomId {
    fn from(name: String) -> RoomId {
        RoomId::Name(name.into_boxed_str())
    }
}

impl std::fmt::Display for RoomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoomId::Number(number) => write!(f, "{number}"),
            RoomId::Name(name) => f.write_str(name),
        }
    }
}

/// What a handler asks the shard to do for a socket, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command<F = ()> {
    /// Send a packet to this socket.
    Emit(Packet),
    /// Put this socket in a room of its namespace. Broadcasts sent with a sequence number
    /// at or below `floor` are not delivered to it (it already has them, e.g. as history).
    /// `received` (at most `floor`) is the newest sequence its client surely has, for
    /// connection state recovery (`super::recovery`): `floor` for a join that sent the
    /// history, less for a recovery whose replay (`EmitSequenced`) is not yet confirmed.
    Join {
        room: RoomId,
        floor: u64,
        received: u64,
    },
    /// Send a packet to this socket that carries sequence `seq` of numbered room `room` (a
    /// replayed broadcast): logged like a broadcast's delivery for connection state recovery.
    EmitSequenced { packet: Packet, room: u64, seq: u64 },
    /// The CONNECT answer carries `pid` (connection state recovery's private id, socket.io
    /// 4.6+), and with `id` the socket takes that id instead of a new one (a recovered socket
    /// keeps the id it had). In [`Handler::on_connect`], or in a later call for a socket whose
    /// CONNECT was deferred ([`Command::DeferConnect`]), which it then answers; ignored
    /// anywhere else.
    ConnectAs {
        pid: Box<str>,
        id: Option<crate::engineio::sid::RandomId>,
    },
    /// In [`Handler::on_connect`] only: answer the CONNECT later, with a [`Command::ConnectAs`]
    /// from a later call for this socket (e.g. once another shard has answered). The socket
    /// is in its namespace meanwhile; the connect timeout runs until the answer.
    DeferConnect,
    /// Close this socket's session as a lost transport (`transport close`, which connection
    /// state recovery may recover), e.g. when its client is known to be back on another
    /// connection.
    DropTransport,
    /// Take this socket out of a room.
    Leave(RoomId),
    /// Send a packet to every socket in a room of this namespace, on every shard, optionally
    /// not to this socket. The packet is encoded once.
    Broadcast {
        room: RoomId,
        packet: Packet,
        except_self: bool,
    },
    /// Disconnect this socket from its namespace.
    Disconnect,
    /// Close this socket's Engine.IO session (an Engine.IO close, which a client treats as a
    /// lost transport and reconnects from) at `at`, if the socket is still connected then.
    /// When asked more than once, the earliest deadline applies.
    CloseTransportAt(std::time::Instant),
    /// Hand a message to the application on shard `shard` (this one included), through
    /// [`Handler::on_forward`]. Messages from one shard to another arrive in order.
    Forward { shard: usize, message: F },
}

/// What a handler asks of the shard outside any one socket's call, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardCommand<F = ()> {
    /// Send a packet to one socket, on whichever shard it lives.
    EmitTo {
        socket: SocketRef,
        packet: Packet,
    },
    /// Send a packet to every member of a room on every shard (but `except`). With `seq`,
    /// members that joined with a floor at or above it are skipped.
    Broadcast {
        nsp: String,
        room: RoomId,
        packet: Packet,
        except: Option<SocketRef>,
        seq: Option<u64>,
    },
    Forward {
        shard: usize,
        message: F,
    },
    /// Hand a message to the application for one socket, on whichever shard it lives,
    /// through [`Handler::on_socket_forward`] (dropped if the socket is gone). Messages from
    /// one shard to another, broadcasts included, arrive in the order they were sent.
    ToSocket {
        socket: SocketRef,
        message: F,
    },
}

/// The application's view of its own shard, outside any socket: for [`Handler::on_forward`]
/// and [`Handler::on_turn_end`].
pub struct ShardContext<'a, Sh, F = ()> {
    /// This shard's index, and how many shards there are.
    pub index: usize,
    pub count: usize,
    /// The time of the event being handled (the loop turn's, for [`Handler::on_turn_end`]).
    pub now: std::time::Instant,
    pub state: &'a mut Sh,
    pub commands: &'a mut Vec<ShardCommand<F>>,
}

/// Where a socket lives, for building its [`SocketRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub shard: usize,
    pub shard_count: usize,
    pub session: SessionRef,
}

/// The socket a handler call is about.
pub struct Socket<'a, S, Sh = (), F = ()> {
    /// The Socket.IO id sent in the CONNECT answer.
    pub id: &'a str,
    pub nsp: &'a str,
    /// The application's per-socket state.
    pub state: &'a mut S,
    /// The application's state of the shard this socket lives on.
    pub shard: &'a mut Sh,
    pub origin: Origin,
    /// The time of the event being handled: applications read no clock of their own for
    /// protocol timing, so the deterministic test pair controls it.
    pub now: std::time::Instant,
    pub commands: &'a mut Vec<Command<F>>,
    pub next_ack_id: &'a mut u64,
    /// In [`Handler::on_disconnect`] of a session whose deliveries are logged (connection
    /// state recovery on): what its client was sent and surely has (`super::recovery`).
    pub delivered: Option<&'a super::recovery::Delivered>,
}

impl<'a, S, Sh, F> Socket<'a, S, Sh, F> {
    /// This socket, as other shards and later calls can name it.
    pub fn me(&self) -> SocketRef {
        SocketRef {
            shard: self.origin.shard,
            session: self.origin.session,
            nsp: self.nsp.to_owned(),
        }
    }

    /// Hand `message` to the application on `shard` (see [`Command::Forward`]).
    pub fn forward(&mut self, shard: usize, message: F) {
        self.commands.push(Command::Forward { shard, message });
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

    /// Emit an event whose data array (name first) the application encoded already, e.g.
    /// with [`event_array_json`]; see [`Packet::event_json`].
    pub fn emit_json(&mut self, data: Box<str>) {
        let packet = Packet::event_json(self.nsp, data, None);
        self.commands.push(Command::Emit(packet));
    }

    /// Answer the client's acknowledgement `ack_id` with a values array the application
    /// encoded already (e.g. with [`array_json`]); see [`Packet::ack_json`].
    pub fn ack_json(&mut self, ack_id: u64, values: Box<str>) {
        let packet = Packet::ack_json(self.nsp, ack_id, values);
        self.commands.push(Command::Emit(packet));
    }

    pub fn join(&mut self, room: impl Into<RoomId>) {
        self.join_after(room, 0);
    }

    /// Join, skipping broadcasts with a sequence number at or below `floor`.
    pub fn join_after(&mut self, room: impl Into<RoomId>, floor: u64) {
        self.commands.push(Command::Join {
            room: room.into(),
            floor,
            received: floor,
        });
    }

    /// Join a recovered socket's room: broadcasts up to `floor` are replayed by the
    /// application ([`Socket::emit_sequenced`]); its client surely has up to `received`.
    pub fn join_recovered(&mut self, room: u64, floor: u64, received: u64) {
        self.commands.push(Command::Join {
            room: RoomId::Number(room),
            floor,
            received: received.min(floor),
        });
    }

    /// Emit an event (data array already encoded, name first) that carries sequence `seq`
    /// of numbered room `room`; see [`Command::EmitSequenced`].
    pub fn emit_sequenced(&mut self, data: Box<str>, room: u64, seq: u64) {
        let packet = Packet::event_json(self.nsp, data, None);
        self.commands
            .push(Command::EmitSequenced { packet, room, seq });
    }

    /// Answer the CONNECT with `pid`, and as socket `id` when recovered; see
    /// [`Command::ConnectAs`].
    pub fn connect_as(&mut self, pid: Box<str>, id: Option<crate::engineio::sid::RandomId>) {
        self.commands.push(Command::ConnectAs { pid, id });
    }

    /// In [`Handler::on_connect`]: answer the CONNECT later; see [`Command::DeferConnect`].
    pub fn defer_connect(&mut self) {
        self.commands.push(Command::DeferConnect);
    }

    /// Close this socket's session as a lost transport; see [`Command::DropTransport`].
    pub fn drop_transport(&mut self) {
        self.commands.push(Command::DropTransport);
    }

    pub fn leave(&mut self, room: impl Into<RoomId>) {
        self.commands.push(Command::Leave(room.into()));
    }

    /// Emit `event` to every member of `room` (this socket too unless `except_self`).
    pub fn broadcast(
        &mut self,
        room: impl Into<RoomId>,
        event: &str,
        args: Vec<Value>,
        except_self: bool,
    ) {
        self.broadcast_binary(room, event, args, Vec::new(), except_self);
    }

    /// Broadcast with binary attachments (placeholders in `args` index them).
    pub fn broadcast_binary(
        &mut self,
        room: impl Into<RoomId>,
        event: &str,
        args: Vec<Value>,
        attachments: Vec<Bytes>,
        except_self: bool,
    ) {
        let packet = Packet::event(self.nsp, event_array(event, args), None, attachments);
        self.commands.push(Command::Broadcast {
            room: room.into(),
            packet,
            except_self,
        });
    }

    pub fn disconnect(&mut self) {
        self.commands.push(Command::Disconnect);
    }

    /// Close this socket's transport at `at` (e.g. when its credentials expire); see
    /// [`Command::CloseTransportAt`]. Every socket of the session leaves with it.
    pub fn close_transport_at(&mut self, at: std::time::Instant) {
        self.commands.push(Command::CloseTransportAt(at));
    }
}

impl<Sh, F> ShardContext<'_, Sh, F> {
    /// Emit `event` with `args` to one socket anywhere.
    pub fn emit_to(&mut self, socket: SocketRef, event: &str, args: Vec<Value>) {
        let packet = Packet::event(&socket.nsp, event_array(event, args), None, Vec::new());
        self.commands.push(ShardCommand::EmitTo { socket, packet });
    }

    /// Answer acknowledgement `ack_id` of one socket anywhere.
    pub fn ack_to(&mut self, socket: SocketRef, ack_id: u64, values: Vec<Value>) {
        let packet = Packet::ack(&socket.nsp, ack_id, Value::Array(values), Vec::new());
        self.commands.push(ShardCommand::EmitTo { socket, packet });
    }

    /// Answer acknowledgement `ack_id` of one socket anywhere with a values array the
    /// application encoded already (e.g. with [`array_json`]); see [`Packet::ack_json`].
    pub fn ack_to_json(&mut self, socket: SocketRef, ack_id: u64, values: Box<str>) {
        let packet = Packet::ack_json(&socket.nsp, ack_id, values);
        self.commands.push(ShardCommand::EmitTo { socket, packet });
    }

    /// Emit an event whose data array (name first) the application encoded already (e.g.
    /// with [`event_array_json`]) to a room on every shard; see [`ShardCommand::Broadcast`].
    pub fn broadcast_json(
        &mut self,
        nsp: &str,
        room: impl Into<RoomId>,
        data: Box<str>,
        seq: Option<u64>,
    ) {
        let packet = Packet::event_json(nsp, data, None);
        self.commands.push(ShardCommand::Broadcast {
            nsp: nsp.to_owned(),
            room: room.into(),
            packet,
            except: None,
            seq,
        });
    }

    /// Emit `event` to a room on every shard; see [`ShardCommand::Broadcast`].
    pub fn broadcast(
        &mut self,
        nsp: &str,
        room: impl Into<RoomId>,
        event: &str,
        args: Vec<Value>,
        seq: Option<u64>,
    ) {
        let packet = Packet::event(nsp, event_array(event, args), None, Vec::new());
        self.commands.push(ShardCommand::Broadcast {
            nsp: nsp.to_owned(),
            room: room.into(),
            packet,
            except: None,
            seq,
        });
    }

    pub fn forward(&mut self, shard: usize, message: F) {
        self.commands.push(ShardCommand::Forward { shard, message });
    }

    /// [`ShardContext::broadcast`] to every member but `except` (e.g. a socket leaving, which
    /// is still in its rooms while its disconnect is handled).
    pub fn broadcast_except(
        &mut self,
        nsp: &str,
        room: impl Into<RoomId>,
        event: &str,
        args: Vec<Value>,
        except: SocketRef,
    ) {
        let packet = Packet::event(nsp, event_array(event, args), None, Vec::new());
        self.commands.push(ShardCommand::Broadcast {
            nsp: nsp.to_owned(),
            room: room.into(),
            packet,
            except: Some(except),
            seq: None,
        });
    }

    /// Hand `message` to the application for `socket` (see [`ShardCommand::ToSocket`]).
    pub fn forward_to_socket(&mut self, socket: SocketRef, message: F) {
        self.commands
            .push(ShardCommand::ToSocket { socket, message });
    }
}

pub fn event_array(event: &str, args: Vec<Value>) -> Value {
    let mut array = Vec::with_capacity(args.len() + 1);
    array.push(Value::String(event.to_owned()));
    array.extend(args);
    Value::Array(array)
}

/// `["event",arg,...]` from an event name and arguments that are JSON text already (each
/// one complete JSON value, e.g. serde_json's output), for [`Socket::emit_json`] and
/// [`ShardContext::broadcast_json`]: the arguments are copied, not parsed or re-encoded.
pub fn event_array_json(event: &str, args: &[&str]) -> Box<str> {
    let args_len: usize = args.iter().map(|a| a.len() + 1).sum();
    let mut out = Vec::with_capacity(4 + event.len() + args_len);
    out.push(b'[');
    // Writing a string into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut out, event);
    for arg in args {
        out.push(b',');
        out.extend_from_slice(arg.as_bytes());
    }
    out.push(b']');
    // serde_json writes UTF-8 and every argument is a `str`, so this never falls back.
    String::from_utf8(out)
        .map(String::into_boxed_str)
        .unwrap_or_default()
}

/// `[value,...]` from values that are JSON text already, for [`ShardContext::ack_to_json`]
/// (copied, not parsed).
pub fn array_json(values: &[&str]) -> Box<str> {
    // `[`, the values, a comma between two, `]`.
    let len = 1 + values.iter().map(|v| v.len() + 1).sum::<usize>();
    let mut out = String::with_capacity(len.max(2));
    out.push('[');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(value);
    }
    out.push(']');
    out.into_boxed_str()
}

/// The [`Socket`] type a handler `H` is called with.
pub type SocketOf<'a, H> =
    Socket<'a, <H as Handler>::State, <H as Handler>::Shard, <H as Handler>::Forward>;

/// The [`ShardContext`] type a handler `H` is called with.
pub type ShardOf<'a, H> = ShardContext<'a, <H as Handler>::Shard, <H as Handler>::Forward>;

/// A Socket.IO application. One instance serves every shard, so it is `Sync`; per-socket
/// state lives in `State`.
pub trait Handler: Send + Sync + 'static {
    /// Per-socket state.
    type State: Default + Send + 'static;
    /// Per-shard state (one per shard thread, created empty).
    type Shard: Default + Send + 'static;
    /// Messages the application sends between shards.
    type Forward: Send + 'static;

    /// Whether a namespace exists (`/` included). Unknown ones get `Invalid namespace`.
    fn has_namespace(&self, nsp: &str) -> bool;

    /// A client connected to a namespace with `auth` (`{}` when it sent none). Refuse it to
    /// send CONNECT_ERROR.
    fn on_connect(&self, socket: &mut SocketOf<'_, Self>, auth: &Value) -> Result<(), Refusal>;

    /// An event from the client.
    fn on_event(&self, socket: &mut SocketOf<'_, Self>, event: Event);

    /// The client acknowledged an event sent with [`Socket::emit_with_ack`].
    fn on_ack(&self, _socket: &mut SocketOf<'_, Self>, _ack_id: u64, _data: Value) {}

    /// The socket left its namespace (client DISCONNECT, transport close, ping timeout, ...).
    /// It is still in its rooms during this call; broadcasts reach the other members.
    fn on_disconnect(&self, _socket: &mut SocketOf<'_, Self>, _reason: &str) {}

    /// A message another shard (or this one) forwarded.
    fn on_forward(&self, _shard: &mut ShardOf<'_, Self>, _message: Self::Forward) {}

    /// A message a shard (this one or another) sent to this socket with
    /// [`ShardContext::forward_to_socket`]: the answer to a request the socket forwarded, with
    /// the socket's state at hand. Not called when the socket is gone.
    fn on_socket_forward(&self, _socket: &mut SocketOf<'_, Self>, _message: Self::Forward) {}

    /// The end of a loop turn on a shard, before output is written: the place to commit
    /// work gathered during the turn (one store write for many messages).
    fn on_turn_end(&self, _shard: &mut ShardOf<'_, Self>) {}

    /// The latest instant the shard may sleep until for this application: work the
    /// application deferred (kept in its shard state) is then done in the [`Self::on_turn_end`]
    /// of a turn at or after it. None (the default) adds no wake-up.
    fn next_wake(&self, _shard: &Self::Shard) -> Option<std::time::Instant> {
        None
    }

    /// Plain Engine.IO servers only: a message arrived; return the messages to send back.
    fn on_engine_message(&self, _message: EngineMessage) -> Vec<EngineMessage> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socketio::packet::{decode, encode_into, Limits};
    use serde_json::json;

    #[test]
    fn arrays_from_encoded_json_are_the_arrays_of_their_values() {
        let message = r#"{"a":1,"b":"ü\n"}"#;
        assert_eq!(
            &*event_array_json("newMessage", &[message]),
            json!(["newMessage", {"a": 1, "b": "ü\n"}]).to_string()
        );
        assert_eq!(
            &*event_array_json("say \"hi\"", &[]),
            json!(["say \"hi\""]).to_string()
        );
        assert_eq!(
            &*event_array_json("two", &["1", "[true]"]),
            json!(["two", 1, [true]]).to_string()
        );
        assert_eq!(&*array_json(&[]), "[]");
        assert_eq!(
            &*array_json(&[message]),
            json!([{"a": 1, "b": "ü\n"}]).to_string()
        );
        assert_eq!(&*array_json(&["1", "null"]), "[1,null]");
    }

    #[test]
    fn packets_from_encoded_json_go_on_the_wire_as_their_value_twins() {
        let data = json!(["newMessage", {"content": "Call me Ishmael."}]);
        let text = event_array_json("newMessage", &[r#"{"content":"Call me Ishmael."}"#]);
        let wire = |packet: &Packet| {
            let mut out = Vec::new();
            encode_into(packet, &mut out);
            String::from_utf8(out).unwrap()
        };
        let raw = Packet::event_json("/", text, None);
        let twin = Packet::event("/", data.clone(), None, Vec::new());
        assert_eq!(wire(&raw), wire(&twin));
        let (decoded, _) = decode(&wire(&raw), &Limits::default()).unwrap();
        assert_eq!(decoded.data, Some(data));

        let ack = Packet::ack_json("/chat", 7, array_json(&[r#"{"ok":true}"#]));
        let ack_twin = Packet::ack("/chat", 7, json!([{"ok": true}]), Vec::new());
        assert_eq!(wire(&ack), wire(&ack_twin));
        assert_eq!(wire(&ack), r#"3/chat,7[{"ok":true}]"#);
    }
}
