//! The `sio_connection` target: stateful fuzzing of one session's Socket.IO side
//! (`socketio::connection::SioConnection`) with a small [`Handler`].
//!
//! The input (read with [`Input`]) picks the namespace limit (1..=3) and the connect timeout,
//! then a sequence of operations, each a call of the connection's own API (the way the endpoint's
//! application glue, `endpoint::app`, calls it; the endpoint itself is fuzzed by the
//! `endpoint` target):
//! an Engine.IO text message (a packet from a small grammar of kinds, namespaces, attachment
//! counts, ack ids and payloads, or arbitrary text), a binary message, the clock advancing
//! (the session closes when the connect deadline passes), a server-side namespace disconnect,
//! or the session closing. An error from `on_message` closes the session, as the server does.
//!
//! The handler knows `/`, `/admin` and `/refuse` (which refuses every CONNECT, echoing the
//! auth); on connect it emits `welcome`; on an event it echoes `echo` (with the attachments),
//! disconnects on `bye`, joins room `r` on `join`, and answers the ack id if there is one;
//! on an ack it emits `acked`; on disconnect it broadcasts `left` to room `r`.
//!
//! A model (joined namespaces in order, the reassembler's state through an independent
//! [`Reassembler`], the connect deadline) rides along. Beyond "never panics", it asserts:
//!
//! - every message is accepted or refused exactly as the protocol says: CONNECT to an unknown
//!   namespace answers `Invalid namespace`; a second CONNECT to a joined namespace is
//!   `AlreadyConnected`; one over the limit `TooManyNamespaces`; any other packet for a
//!   namespace not joined is `NotConnected`; CONNECT_ERROR from a client `UnexpectedPacket`;
//!   codec and reassembly errors pass through unchanged;
//! - the outputs are exactly the handler's, in order, tagged with the namespace: a CONNECT
//!   answer `{"sid": id}` first (with the socket's id, unique among the connection's sockets),
//!   a namespace's commands before its `Left`, one `Left` per socket removed;
//! - `sockets()` lists exactly the joined namespaces, at most the limit; the connect deadline
//!   holds until the first successful CONNECT and is gone for good after it; closing removes
//!   every socket;
//! - every packet the server would send (answers, emits, broadcasts) encodes to text that
//!   decodes, with its attachments, to the same packet: a client can always read it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use super::input::Input;
use crate::socketio::binary::Reassembler;
use crate::socketio::connection::{Call, Output, SioConnection, SioError};
use crate::socketio::handler::{Command, EngineMessage, Event, Handler, Origin, Refusal, SocketOf};
use crate::socketio::packet::checks::same_value;
use crate::socketio::packet::{decode, encode_into, Limits, Packet, PacketKind};

/// The fuzz target's application (see the module doc).
pub struct Probe;

const NAMESPACES: [&str; 5] = ["/", "/admin", "/refuse", "/nope", "/admin/x"];

impl Handler for Probe {
    type State = ();
    type Shard = ();
    type Forward = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        matches!(nsp, "/" | "/admin" | "/refuse")
    }

    fn on_connect(&self, socket: &mut SocketOf<'_, Self>, auth: &Value) -> Result<(), Refusal> {
        if socket.nsp == "/refuse" {
            return Err(Refusal {
                message: "refused".into(),
                data: Some(auth.clone()),
            });
        }
        socket.emit("welcome", vec![auth.clone()]);
        Ok(())
    }

    fn on_event(&self, socket: &mut SocketOf<'_, Self>, event: Event) {
        let Ok(args) = event.args() else { return };
        match event.name() {
            Some("echo") => socket.emit_binary("echo", args.clone(), event.attachments.clone()),
            Some("bye") => socket.disconnect(),
            Some("join") => socket.join("r"),
            _ => {}
        }
        if let Some(id) = event.ack_id {
            socket.ack(id, args, Vec::new());
        }
    }

    fn on_ack(&self, socket: &mut SocketOf<'_, Self>, ack_id: u64, data: Value) {
        socket.emit("acked", vec![json!(ack_id), data]);
    }

    fn on_disconnect(&self, socket: &mut SocketOf<'_, Self>, reason: &str) {
        socket.broadcast("r", "left", vec![json!(reason)], true);
    }
}

pub fn check(data: &[u8]) {
    let mut u = Input::new(data);
    let max_namespaces = u.usize_in(1, 3);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_millis(u.u64_in(0, 1023));
    let mut d = Driver {
        conn: SioConnection::new(Limits::default(), max_namespaces, deadline),
        reference: Reassembler::new(Limits::default()),
        joined: Vec::new(),
        deadline: Some(deadline),
        max_namespaces,
        now: t0,
        shard: (),
        ids: crate::engineio::sid::IdSource::seeded(0),
    };
    while !u.is_empty() {
        let open = match u.u8_in(0, 6) {
            0 | 1 => {
                let text = packet_text(&mut u);
                d.message(EngineMessage::Text(text))
            }
            2 => {
                let text = u.text_up_to(64);
                d.message(EngineMessage::Text(text))
            }
            3 => {
                let bytes = Bytes::copy_from_slice(u.bytes_up_to(16));
                d.message(EngineMessage::Binary(bytes))
            }
            4 => {
                d.now += Duration::from_millis(u.u64_in(0, 2047));
                d.tick()
            }
            5 => {
                let nsp = NAMESPACES[u.usize_in(0, NAMESPACES.len() - 1)];
                d.server_disconnect(nsp);
                true
            }
            _ => false,
        };
        d.check();
        if !open {
            d.close();
            return;
        }
    }
    d.close();
}

/// A Socket.IO packet text from a small grammar that reaches every state.
fn packet_text(u: &mut Input) -> String {
    let kind = u.u8_in(0, 6);
    let mut text = String::from(char::from(b'0' + kind));
    if kind == 5 || kind == 6 {
        text.push_str(&u.u8_in(0, 3).to_string());
        text.push('-');
    }
    let nsp = u.usize_in(0, NAMESPACES.len());
    if let Some(nsp) = NAMESPACES.get(nsp) {
        if *nsp != "/" || u.bool() {
            text.push_str(nsp);
            text.push(',');
        }
    }
    if u.ratio(1, 3) {
        text.push_str(&u.u64_in(0, 20).to_string());
    }
    const DATA: [&str; 12] = [
        "",
        "{}",
        "{\"token\":1}",
        "[\"echo\",1,\"two\"]",
        "[\"bye\"]",
        "[\"join\"]",
        "[\"other\",{\"a\":[null]}]",
        "[\"echo\",{\"_placeholder\":true,\"num\":0}]",
        "[\"echo\",{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":0}]",
        "[1,2]",
        "\"text\"",
        "{\"message\":\"m\"}",
    ];
    text.push_str(DATA[u.usize_in(0, DATA.len() - 1)]);
    text
}

struct Driver {
    conn: SioConnection<()>,
    /// The reassembly the connection must agree with.
    reference: Reassembler,
    joined: Vec<String>,
    deadline: Option<Instant>,
    max_namespaces: usize,
    now: Instant,
    shard: (),
    ids: crate::engineio::sid::IdSource,
}

impl Driver {
    fn call(&mut self) -> (Call<'_, Probe>, &mut SioConnection<()>) {
        let call = Call {
            handler: &Probe,
            shard: &mut self.shard,
            origin: Origin {
                shard: 0,
                shard_count: 1,
                session: crate::engineio::session::SessionRef::new(0, 0),
            },
            delivered: None,
            ids: &mut self.ids,
            now: self.now,
        };
        (call, &mut self.conn)
    }

    /// The invariants that hold between operations.
    fn check(&self) {
        let nsps: Vec<&str> = self.conn.sockets().iter().map(|s| s.nsp.as_ref()).collect();
        assert_eq!(nsps, self.joined);
        assert!(self.joined.len() <= self.max_namespaces);
        let mut ids: Vec<&str> = self.conn.sockets().iter().map(|s| s.id.as_str()).collect();
        assert!(ids.iter().all(|id| !id.is_empty()));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), self.joined.len(), "socket ids are not unique");
        assert_eq!(self.conn.connect_deadline(), self.deadline);
    }

    /// One Engine.IO message; false when the session must close.
    fn message(&mut self, message: EngineMessage) -> bool {
        let reference = match &message {
            EngineMessage::Text(text) => self.reference.push_text(text),
            EngineMessage::Binary(bytes) => self.reference.push_binary(bytes.clone()),
        };
        let mut out = Vec::new();
        let (mut call, conn) = self.call();
        let result = conn.on_message(&mut call, message, &mut out);
        let packet = match reference {
            Err(e) => {
                assert_eq!(result, Err(SioError::Packet(e)));
                assert!(out.is_empty());
                return false;
            }
            Ok(None) => {
                assert_eq!(result, Ok(()));
                assert!(out.is_empty());
                return true;
            }
            Ok(Some(packet)) => packet,
        };
        check_outputs(&out);
        let joined = self.joined.iter().position(|n| *n == packet.nsp);
        match (packet.kind, joined) {
            (PacketKind::Connect, _) => self.connect(&packet, result, &out),
            (_, None) => {
                assert_eq!(result, Err(SioError::NotConnected), "{packet:?}");
                assert!(out.is_empty());
                false
            }
            (PacketKind::ConnectError, Some(_)) => {
                assert_eq!(result, Err(SioError::UnexpectedPacket));
                false
            }
            (PacketKind::Disconnect, Some(index)) => {
                assert_eq!(result, Ok(()));
                let nsp = self.joined.remove(index);
                assert_eq!(out.last(), Some(&Output::Left { nsp: nsp.clone() }));
                assert_commands_of(&out[..out.len() - 1], &nsp);
                true
            }
            (_, Some(_)) => {
                assert_eq!(result, Ok(()));
                self.check_event_outputs(&packet, &out);
                self.carry_out(&out);
                true
            }
        }
    }

    fn connect(
        &mut self,
        packet: &Packet,
        result: Result<(), SioError>,
        out: &[Output<()>],
    ) -> bool {
        let nsp = packet.nsp.as_str();
        if !Probe.has_namespace(nsp) {
            assert_eq!(result, Ok(()));
            assert_eq!(
                out,
                [Output::Send(Packet::connect_error(
                    nsp,
                    "Invalid namespace",
                    None
                ))]
            );
            return true;
        }
        if self.joined.iter().any(|n| n == nsp) {
            assert_eq!(result, Err(SioError::AlreadyConnected));
            return false;
        }
        if self.joined.len() >= self.max_namespaces {
            assert_eq!(result, Err(SioError::TooManyNamespaces));
            return false;
        }
        assert_eq!(result, Ok(()));
        let auth = packet.data.clone().unwrap_or_else(|| json!({}));
        if nsp == "/refuse" {
            let [Output::Send(answer)] = out else {
                panic!("a refused CONNECT gave {out:?}");
            };
            assert_eq!(answer.kind, PacketKind::ConnectError);
            assert_eq!(answer.nsp, nsp);
            let data = answer.data.as_ref().expect("CONNECT_ERROR data");
            assert_eq!(data["message"], "refused");
            assert!(same_value(&data["data"], &auth));
            return true;
        }
        let Some((Output::Send(answer), commands)) = out.split_first() else {
            panic!("a CONNECT gave {out:?}");
        };
        assert_eq!(answer.kind, PacketKind::Connect);
        assert_eq!(answer.nsp, nsp);
        let socket = self
            .conn
            .sockets()
            .iter()
            .find(|s| s.nsp == nsp)
            .expect("the socket was added");
        assert_eq!(answer.data, Some(json!({ "sid": socket.id.as_str() })));
        assert_eq!(
            commands,
            [Output::Command {
                nsp: nsp.to_owned(),
                command: Command::Emit(Packet::event(nsp, json!(["welcome", auth]), None, vec![])),
            }]
        );
        self.joined.push(nsp.to_owned());
        self.deadline = None;
        true
    }

    /// An EVENT or ACK in a joined namespace: the handler's commands, in order.
    fn check_event_outputs(&self, packet: &Packet, out: &[Output<()>]) {
        let nsp = packet.nsp.as_str();
        let command = |command| Output::Command {
            nsp: nsp.to_owned(),
            command,
        };
        // An event's data kept as text by the decoder, as a tree for the expectations.
        let data = packet.data.clone().or_else(|| {
            let json = packet.json.as_deref()?;
            Some(serde_json::from_str::<Value>(json).expect("kept text is JSON"))
        });
        let args = || -> Vec<Value> {
            data.as_ref()
                .and_then(Value::as_array)
                .and_then(|a| a.get(1..))
                .unwrap_or_default()
                .to_vec()
        };
        let mut expected = Vec::new();
        if packet.kind.is_event() {
            let name = data.as_ref().and_then(|d| d.get(0)).and_then(Value::as_str);
            match name {
                Some("echo") => {
                    let mut data = vec![json!("echo")];
                    data.extend(args());
                    expected.push(command(Command::Emit(Packet::event(
                        nsp,
                        Value::Array(data),
                        None,
                        packet.attachments.clone(),
                    ))));
                }
                Some("bye") => expected.push(command(Command::Disconnect)),
                Some("join") => expected.push(command(Command::Join {
                    room: "r".into(),
                    floor: 0,
                    received: 0,
                })),
                _ => {}
            }
            if let Some(id) = packet.id {
                expected.push(command(Command::Emit(Packet::ack(
                    nsp,
                    id,
                    Value::Array(args()),
                    vec![],
                ))));
            }
        } else if let Some(id) = packet.id {
            let data = packet.data.clone().unwrap_or(Value::Null);
            expected.push(command(Command::Emit(Packet::event(
                nsp,
                json!(["acked", id, data]),
                None,
                vec![],
            ))));
        }
        assert_eq!(out, expected, "{packet:?}");
    }

    /// What the shard does with commands that act back on the connection.
    fn carry_out(&mut self, out: &[Output<()>]) {
        for output in out {
            if let Output::Command {
                nsp,
                command: Command::Disconnect,
            } = output
            {
                self.server_disconnect(nsp);
            }
        }
    }

    fn server_disconnect(&mut self, nsp: &str) {
        let mut out = Vec::new();
        let (mut call, conn) = self.call();
        conn.server_disconnect(&mut call, nsp, &mut out);
        check_outputs(&out);
        match self.joined.iter().position(|n| n == nsp) {
            None => assert!(out.is_empty(), "{out:?}"),
            Some(index) => {
                self.joined.remove(index);
                assert_eq!(out.first(), Some(&Output::Send(Packet::disconnect(nsp))));
                assert_eq!(
                    out.last(),
                    Some(&Output::Left {
                        nsp: nsp.to_owned()
                    })
                );
                assert_commands_of(&out[1..out.len() - 1], nsp);
            }
        }
    }

    /// The clock moved: false when the connect deadline has passed (the server closes).
    fn tick(&mut self) -> bool {
        match self.conn.connect_deadline() {
            Some(deadline) => self.now < deadline,
            None => true,
        }
    }

    fn close(&mut self) {
        let mut out = Vec::new();
        let (mut call, conn) = self.call();
        conn.close(&mut call, "transport close", &mut out);
        check_outputs(&out);
        let left: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                Output::Left { nsp } => Some(nsp.as_str()),
                _ => None,
            })
            .collect();
        let mut expected: Vec<&str> = self.joined.iter().map(String::as_str).collect();
        expected.reverse();
        assert_eq!(left, expected);
        assert!(self.conn.sockets().is_empty());
        self.joined.clear();
        if let Some(last) = out.last() {
            assert!(matches!(last, Output::Left { .. }));
        }
    }
}

/// Outputs between a `Send(DISCONNECT)` and a `Left`: only this namespace's commands.
fn assert_commands_of(out: &[Output<()>], nsp: &str) {
    for output in out {
        match output {
            Output::Command { nsp: n, .. } => assert_eq!(n, nsp),
            other => panic!("{other:?} amid the commands of {nsp}"),
        }
    }
}

/// Every packet the server would write decodes back to itself.
fn check_outputs(out: &[Output<()>]) {
    for output in out {
        let packet = match output {
            Output::Send(p)
            | Output::Command {
                command: Command::Emit(p),
                ..
            }
            | Output::Command {
                command: Command::Broadcast { packet: p, .. },
                ..
            } => p,
            _ => continue,
        };
        let mut text = Vec::new();
        encode_into(packet, &mut text);
        let text = String::from_utf8(text).expect("the encoder writes UTF-8");
        let mut r = Reassembler::new(Limits::default());
        let mut back = r
            .push_text(&text)
            .unwrap_or_else(|e| panic!("the server wrote {text:?}, which does not decode: {e}"));
        for attachment in &packet.attachments {
            back = r.push_binary(attachment.clone()).expect("attachment");
        }
        let back = back.unwrap_or_else(|| panic!("{text:?} never completes"));
        let (_, count) = decode(&text, &Limits::default()).expect("decodes");
        assert_eq!(count, packet.attachments.len());
        assert_eq!(back.nsp, packet.nsp);
        assert_eq!(back.id, packet.id);
        assert_eq!(back.attachments, packet.attachments);
        // The reassembler keeps an event's data as text; read it back into a tree here.
        let back_data = back.data.clone().or_else(|| {
            let json = back.json.as_deref()?;
            Some(serde_json::from_str::<Value>(json).expect("kept text is JSON"))
        });
        assert!(
            match (&back_data, &packet.data) {
                (Some(a), Some(b)) => same_value(a, b),
                (a, b) => a == b,
            },
            "{text:?}"
        );
    }
}
