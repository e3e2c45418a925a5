//! The richer Socket.IO handler of the refusal, server-side disconnect, ack and room tests,
//! shared by `tests/socketio_protocol.rs` (over the wire) and `tests/pair_socketio.rs`.

use readrealm_chat::socketio::{Event, Handler, Refusal, Socket};
use serde_json::{json, Value};

/// `/` only. CONNECT with `{"refuse":true}` is refused with data. Events: `join` (room, acked
/// once joined), `shout` (room, text: broadcast to the room except the sender), `kick`
/// (server-side disconnect), `ask` (emit `question` with an ack; the client's answer comes
/// back as `answer`).
pub struct RoomsHandler;

impl Handler for RoomsHandler {
    type State = ();
    type Shard = ();
    type Forward = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn on_connect(&self, _socket: &mut Socket<'_, ()>, auth: &Value) -> Result<(), Refusal> {
        if auth["refuse"] == json!(true) {
            return Err(Refusal {
                message: "refused".into(),
                data: Some(json!({"why": "test"})),
            });
        }
        Ok(())
    }

    fn on_event(&self, socket: &mut Socket<'_, ()>, event: Event) {
        let Ok(args) = event.args() else { return };
        match event.name() {
            Some("join") => {
                let room = args[0].as_str().unwrap_or_default().to_owned();
                socket.join(&room);
                if let Some(id) = event.ack_id {
                    socket.ack(id, vec![json!(room)], Vec::new());
                }
            }
            Some("shout") => {
                let room = args[0].as_str().unwrap_or_default().to_owned();
                socket.broadcast(&room, "shout", vec![args[1].clone()], true);
            }
            Some("kick") => socket.disconnect(),
            Some("ask") => {
                socket.emit_with_ack("question", vec![json!("?")]);
            }
            _ => {}
        }
    }

    fn on_ack(&self, socket: &mut Socket<'_, ()>, ack_id: u64, data: Value) {
        socket.emit("answer", vec![json!(ack_id), data]);
    }
}
