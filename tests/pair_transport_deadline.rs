//! A transport close the application asks for (`Socket::close_transport_at`, used by the chat
//! at a token's expiry) on the deterministic endpoint pair: the session closes at the deadline
//! and not before (less the loop's 1 ms timer slack, `TIMER_SLACK`), on WebSocket (close packet and close frame) and on polling
//! (the parked GET gets the close packet); the socket's namespace hears of it once; a socket
//! that left, and a new socket of the same namespace on the same session, are not closed by a
//! deadline that is no longer theirs; of two deadlines the earlier applies.

mod pair_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pair_support::*;
use readrealm_chat::config::Layer;
use readrealm_chat::endpoint::pair::{ConnState, Pair};
use readrealm_chat::socketio::handler::SocketOf;
use readrealm_chat::socketio::{Event, Handler, Refusal};
use serde_json::Value;

/// Asks for a transport close `closeInMs` after the CONNECT (from its `auth`), or after an
/// `expire` event (its first argument, in ms); records every disconnect's reason.
#[derive(Clone, Default)]
struct Expiring {
    disconnects: Arc<Mutex<Vec<String>>>,
}

impl Handler for Expiring {
    type State = ();
    type Shard = ();
    type Forward = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn on_connect(&self, socket: &mut SocketOf<'_, Self>, auth: &Value) -> Result<(), Refusal> {
        if let Some(ms) = auth.get("closeInMs").and_then(Value::as_u64) {
            socket.close_transport_at(socket.now + Duration::from_millis(ms));
        }
        Ok(())
    }

    fn on_event(&self, socket: &mut SocketOf<'_, Self>, event: Event) {
        if event.name() == Some("expire") {
            if let Ok(Some(ms)) = event.first_arg::<u64>() {
                socket.close_transport_at(socket.now + Duration::from_millis(ms));
            }
        }
    }

    fn on_disconnect(&self, _socket: &mut SocketOf<'_, Self>, reason: &str) {
        self.disconnects.lock().unwrap().push(reason.to_owned());
    }
}

fn pair() -> (Pair<Expiring>, Arc<Mutex<Vec<String>>>) {
    let mut config = base_config();
    config.path = "/socket.io/".into();
    config.layer = Layer::SocketIo;
    quiet(&mut config);
    let handler = Expiring::default();
    let disconnects = Arc::clone(&handler.disconnects);
    (Pair::new(config, handler), disconnects)
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_websocket_session_closes_at_its_deadline_and_not_before() {
    let (mut pair, disconnects) = pair();
    let (ws, _) = ws_session(&mut pair);
    pair.ws_text(ws, r#"40{"closeInMs":1500}"#);
    let connected = pair.take_texts(ws);
    assert!(connected[0].starts_with("40{"), "{connected:?}");
    pair.advance(1498 * MS);
    assert_eq!(pair.state(ws), Some(ConnState::WebSocket), "closed early");
    assert!(pair.take_texts(ws).is_empty());
    assert!(disconnects.lock().unwrap().is_empty());
    pair.advance(2 * MS);
    // An Engine.IO close (which clients reconnect from), then the close frame.
    assert_eq!(pair.take_texts(ws), ["1"]);
    assert_ws_closed(&pair, ws, 1000, "transport closed by the application");
    assert_eq!(disconnects.lock().unwrap().len(), 1);
    pair.advance(Duration::from_secs(5));
    assert_eq!(disconnects.lock().unwrap().len(), 1, "one disconnect");
    assert!(pair.violations().is_empty(), "{:?}", pair.violations());
}

#[test]
fn a_polling_session_answers_its_parked_get_with_a_close_at_its_deadline() {
    let (mut pair, disconnects) = pair();
    let (sid, _) = handshake(&mut pair);
    post_ok(&mut pair, &sid, r#"40{"closeInMs":800}"#);
    let connected = get_packets(&mut pair, &sid);
    assert!(connected[0].starts_with("40{"), "{connected:?}");
    let parked = park_get(&mut pair, &sid);
    pair.advance(798 * MS);
    assert!(pair.take_answer(parked).is_none(), "answered early");
    pair.advance(2 * MS);
    let answer = parked_answer(&mut pair, parked);
    assert_eq!(decode_payload(&answer.text()), ["1"]);
    assert_eq!(disconnects.lock().unwrap().len(), 1);
    // The session is gone.
    assert_eio_error(&get(&mut pair, &sid), 1);
}

#[test]
fn a_deadline_is_the_asking_sockets_own() {
    let (mut pair, disconnects) = pair();
    let (ws, _) = ws_session(&mut pair);
    pair.ws_text(ws, r#"40{"closeInMs":1000}"#);
    pair.take_texts(ws);
    // The socket leaves, and a new one connects on the same session without a deadline.
    pair.ws_text(ws, "41");
    pair.ws_text(ws, "40");
    assert!(pair.take_texts(ws)[0].starts_with("40{"));
    pair.advance(Duration::from_secs(3));
    assert_eq!(
        pair.state(ws),
        Some(ConnState::WebSocket),
        "closed by the old socket's deadline"
    );
    assert_eq!(
        disconnects.lock().unwrap().len(),
        1,
        "only the client's disconnect"
    );
    // Of two deadlines, the earlier applies.
    pair.ws_text(ws, r#"42["expire",5000]"#);
    pair.ws_text(ws, r#"42["expire",700]"#);
    pair.advance(698 * MS);
    assert_eq!(pair.state(ws), Some(ConnState::WebSocket));
    pair.advance(2 * MS);
    assert_ws_closed(&pair, ws, 1000, "transport closed by the application");
    assert_eq!(disconnects.lock().unwrap().len(), 2);
}
