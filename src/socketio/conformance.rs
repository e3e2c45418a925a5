//! The two applications of PROTOCOL.md's "conformance test server", shared by the
//! `conformance` binary and the integration tests so both exercise the same behaviour.

use serde_json::Value;

use super::handler::{EngineMessage, Event, Handler, Refusal, Socket};

/// Engine.IO mode (`Layer::EngineIo`, path `/engine.io/`): every message is sent straight
/// back on its session, text as text and binary as binary.
pub struct EchoEngine;

impl Handler for EchoEngine {
    type State = ();
    type Shard = ();
    type Forward = ();

    fn has_namespace(&self, _nsp: &str) -> bool {
        false
    }

    fn on_connect(&self, _socket: &mut Socket<'_, ()>, _auth: &Value) -> Result<(), Refusal> {
        Ok(())
    }

    fn on_event(&self, _socket: &mut Socket<'_, ()>, _event: Event) {}

    fn on_engine_message(&self, message: EngineMessage) -> Vec<EngineMessage> {
        vec![message]
    }
}

/// Socket.IO mode: `auth` on connect with the handshake's auth object, `message` answered
/// by `message-back` with the same arguments, `message-with-ack` acknowledged with them
/// (binary included); namespaces `/` and `/custom`, any other refused.
pub struct ConformanceSocketIo;

impl Handler for ConformanceSocketIo {
    type State = ();
    type Shard = ();
    type Forward = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/" || nsp == "/custom"
    }

    fn on_connect(&self, socket: &mut Socket<'_, ()>, auth: &Value) -> Result<(), Refusal> {
        socket.emit("auth", vec![auth.clone()]);
        Ok(())
    }

    fn on_event(&self, socket: &mut Socket<'_, ()>, event: Event) {
        // Data deeper than serde_json follows cannot be echoed; such an event is dropped.
        let Ok(args) = event.args() else { return };
        match (event.name(), event.ack_id) {
            (Some("message"), _) => socket.emit_binary("message-back", args, event.attachments),
            (Some("message-with-ack"), Some(id)) => socket.ack(id, args, event.attachments),
            _ => {}
        }
    }
}
