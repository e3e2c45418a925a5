//! The two applications of docs/PROTOCOL.md's "conformance test server", shared by the
//! `conformance` binary and the integration tests so both exercise the same behaviour.
//!
//! They only answer what the upstream suites ask for; they never keep state beyond the
//! `auth` packets waiting for their delay (see [`AUTH_DELAY`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::handler::{
    EngineMessage, Event, Handler, Refusal, ShardOf, Socket, SocketOf, SocketRef,
};

/// How long after the CONNECT answer the `auth` event is sent.
///
/// The upstream Socket.IO suite (socketio/socket.io-protocol `test-suite/`) reads the CONNECT
/// answer with a one-shot listener and only then adds the listener for `auth`; its `ws` client
/// (8.5.0) emits every frame of one TCP read synchronously, so an `auth` frame that arrives in
/// the same read as the answer is lost to the test, which then gets a ping instead. Writing
/// the two in separate `write`s is not enough (measured: still 5–6 of 32 failing, since the
/// client reads both from its buffer); socket.io 4.8.4 itself, sending them one event-loop
/// tick apart, fails 1–4 of 32 on this machine. A delay the client's read cannot race makes the
/// run deterministic. The suite only checks that `auth` follows the answer, not when.
pub const AUTH_DELAY: Duration = Duration::from_millis(20);

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

/// Socket.IO mode: `auth` with the handshake's auth object [`AUTH_DELAY`] after each
/// connect, `message` answered by `message-back` with the same arguments, `message-with-ack`
/// acknowledged with them (binary included); namespaces `/` and `/custom`, any other refused.
pub struct ConformanceSocketIo;

/// `auth` events waiting for their time, oldest first (one delay for all, so in time order).
#[derive(Default)]
pub struct PendingAuth(VecDeque<(Instant, SocketRef, Value)>);

impl Handler for ConformanceSocketIo {
    type State = ();
    type Shard = PendingAuth;
    type Forward = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/" || nsp == "/custom"
    }

    fn on_connect(&self, socket: &mut SocketOf<'_, Self>, auth: &Value) -> Result<(), Refusal> {
        let due = socket.now + AUTH_DELAY;
        let me = socket.me();
        socket.shard.0.push_back((due, me, auth.clone()));
        Ok(())
    }

    fn on_event(&self, socket: &mut SocketOf<'_, Self>, event: Event) {
        // Data deeper than serde_json follows cannot be echoed; such an event is dropped.
        let Ok(args) = event.args() else { return };
        match (event.name(), event.ack_id) {
            (Some("message"), _) => socket.emit_binary("message-back", args, event.attachments),
            (Some("message-with-ack"), Some(id)) => socket.ack(id, args, event.attachments),
            _ => {}
        }
    }

    fn on_turn_end(&self, shard: &mut ShardOf<'_, Self>) {
        let now = shard.now;
        while shard.state.0.front().is_some_and(|(due, ..)| *due <= now) {
            if let Some((_, socket, auth)) = shard.state.0.pop_front() {
                // A socket gone meanwhile is reached by nobody.
                shard.emit_to(socket, "auth", vec![auth]);
            }
        }
    }

    fn next_wake(&self, shard: &PendingAuth) -> Option<Instant> {
        shard.0.front().map(|(due, ..)| *due)
    }
}
