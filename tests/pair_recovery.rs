//! Connection state recovery's transport side on the deterministic pair: the pid in the
//! CONNECT answer, the delivery log of sequenced broadcasts, its fold at the pong of a ping,
//! and what the application is told at a drop (`socketio::recovery`, docs/ARCHITECTURE.md).
//!
//! The handler here is a small numbered-rooms application: `join [room, floor]`, `post [room,
//! seq]` (a broadcast with that sequence, from the shard's context), `replay [room, seq]`
//! (an emit that carries a sequence, as a recovery's replay); it records what `on_disconnect`
//! is given.

mod pair_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pair_support::{base_config, ws_session};
use readrealm_chat::config::{Layer, ServerConfig};
use readrealm_chat::endpoint::pair::Pair;
use readrealm_chat::endpoint::ConnId;
use readrealm_chat::socketio::handler::{event_array_json, ShardContext, SocketRef};
use readrealm_chat::socketio::recovery::{Delivered, Run};
use readrealm_chat::socketio::{Event, Handler, Refusal, Socket};
use serde_json::Value;

type Drops = Arc<Mutex<Vec<(String, Option<Delivered>)>>>;

struct SeqRooms {
    drops: Drops,
    /// The socket whose CONNECT was deferred, if any.
    deferred: Mutex<Option<SocketRef>>,
}

impl Handler for SeqRooms {
    type State = ();
    type Shard = ();
    type Forward = (u64, u64);

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn on_connect(
        &self,
        socket: &mut Socket<'_, (), (), (u64, u64)>,
        auth: &Value,
    ) -> Result<(), Refusal> {
        if auth["defer"] == true {
            // Answered by a later `answer` event of another socket (below), or never.
            socket.defer_connect();
            *self.deferred.lock().unwrap() = Some(socket.me());
            return Ok(());
        }
        socket.connect_as("private-id".into(), None);
        Ok(())
    }

    fn on_event(&self, socket: &mut Socket<'_, (), (), (u64, u64)>, event: Event) {
        let Ok(args) = event.args() else { return };
        let number = |i: usize| args.get(i).and_then(Value::as_u64).unwrap_or_default();
        match event.name() {
            Some("join") => socket.join_after(number(0), number(1)),
            Some("post") => {
                let shard = socket.origin.shard;
                socket.forward(shard, (number(0), number(1)));
            }
            Some("answer") => {
                // Answer the deferred CONNECT: through the shard, as the chat does.
                let shard = socket.origin.shard;
                socket.forward(shard, (u64::MAX, 0));
            }
            Some("replay") => {
                let data = event_array_json("m", &[&number(1).to_string()]);
                socket.emit_sequenced(data, number(0), number(1));
            }
            _ => {}
        }
    }

    fn on_forward(&self, shard: &mut ShardContext<'_, (), (u64, u64)>, (room, seq): (u64, u64)) {
        if room == u64::MAX {
            if let Some(waiting) = self.deferred.lock().unwrap().take() {
                shard.forward_to_socket(waiting, (u64::MAX, 0));
            }
            return;
        }
        let data = event_array_json("m", &[&seq.to_string()]);
        shard.broadcast_json("/", room, data, Some(seq));
    }

    fn on_socket_forward(&self, socket: &mut Socket<'_, (), (), (u64, u64)>, _: (u64, u64)) {
        socket.connect_as("later-pid".into(), None);
    }

    fn on_disconnect(&self, socket: &mut Socket<'_, (), (), (u64, u64)>, reason: &str) {
        let delivered = socket.delivered.cloned();
        self.drops
            .lock()
            .unwrap()
            .push((reason.to_owned(), delivered));
    }
}

fn pair(tweak: impl FnOnce(&mut ServerConfig)) -> (Pair<SeqRooms>, Drops) {
    let mut config = base_config();
    config.path = "/socket.io/".into();
    config.layer = Layer::SocketIo;
    // Heartbeats at 300 ms, 200 ms to answer; connect timeout out of the way.
    config.connect_timeout = Duration::from_secs(60);
    tweak(&mut config);
    let drops = Drops::default();
    let handler = SeqRooms {
        drops: Arc::clone(&drops),
        deferred: Mutex::new(None),
    };
    (Pair::new(config, handler), drops)
}

/// A WebSocket session connected to `/`; the CONNECT answer's JSON.
fn connected(pair: &mut Pair<SeqRooms>) -> (ConnId, Value) {
    let (ws, _) = ws_session(pair);
    pair.ws_text(ws, "40");
    let texts = pair.take_texts(ws);
    let answer = texts
        .first()
        .and_then(|t| t.strip_prefix("40"))
        .expect("a CONNECT answer");
    (ws, serde_json::from_str(answer).expect("JSON"))
}

fn run(room: u64, first: u64, last: u64) -> Run {
    Run { room, first, last }
}

#[test]
fn the_connect_answer_carries_the_pid_the_application_gave() {
    let (mut pair, _) = pair(|_| {});
    let (_, answer) = connected(&mut pair);
    assert_eq!(answer["pid"], "private-id");
    assert!(answer["sid"].is_string(), "{answer}");
}

#[test]
fn deliveries_before_an_answered_ping_are_received_the_rest_are_runs() {
    let (mut pair, drops) = pair(|_| {});
    let (ws, _) = connected(&mut pair);
    pair.ws_text(ws, r#"42["join",7,2]"#);
    pair.ws_text(ws, r#"42["join",9,0]"#);
    pair.ws_text(ws, r#"42["post",7,2]"#); // at or below the floor: not delivered, not logged
    pair.ws_text(ws, r#"42["post",7,3]"#);
    pair.ws_text(ws, r#"42["post",9,1]"#);
    pair.ws_text(ws, r#"42["post",7,4]"#);
    assert_eq!(
        pair.take_texts(ws),
        [r#"42["m",3]"#, r#"42["m",1]"#, r#"42["m",4]"#]
    );
    // The ping goes out after those; a delivery after it is not confirmed by its pong.
    pair.advance(Duration::from_millis(300));
    assert_eq!(pair.take_texts(ws), ["2"]);
    pair.ws_text(ws, r#"42["post",9,2]"#);
    pair.ws_text(ws, "3");
    pair.ws_text(ws, r#"42["post",9,3]"#);
    pair.ws_text(ws, r#"42["replay",7,5]"#);
    assert_eq!(
        pair.take_texts(ws),
        [r#"42["m",2]"#, r#"42["m",3]"#, r#"42["m",5]"#]
    );
    // The next ping is never answered: the session ends for a ping timeout.
    pair.advance(Duration::from_millis(300 + 200));
    let drops = drops.lock().unwrap();
    let [(reason, delivered)] = &drops[..] else {
        panic!("one drop: {drops:?}")
    };
    assert_eq!(reason, "ping timeout");
    assert_eq!(
        delivered.as_ref().expect("deliveries logged"),
        &Delivered {
            received: vec![(7, 4), (9, 1)],
            runs: vec![run(9, 2, 3), run(7, 5, 5)],
        }
    );
}

#[test]
fn a_pong_with_no_ping_in_flight_confirms_nothing() {
    let (mut pair, drops) = pair(|_| {});
    let (ws, _) = connected(&mut pair);
    pair.ws_text(ws, r#"42["join",7,0]"#);
    pair.ws_text(ws, r#"42["post",7,1]"#);
    pair.ws_text(ws, "3");
    pair.close(ws);
    let drops = drops.lock().unwrap();
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(
        drops[0].0, "transport close",
        "a lost WebSocket is a transport close"
    );
    assert_eq!(
        drops[0].1,
        Some(Delivered {
            received: vec![(7, 0)],
            runs: vec![run(7, 1, 1)],
        })
    );
}

#[test]
fn reasons_tell_a_drop_from_a_chosen_close() {
    let (mut pair, drops) = pair(|_| {});
    let (ws, _) = connected(&mut pair);
    pair.ws_text(ws, "1"); // an Engine.IO close from the client: engine.io's "transport close"
    let (other, _) = connected(&mut pair);
    pair.ws_text(other, "41"); // a Socket.IO DISCONNECT: the client's disconnect()
    let (third, _) = connected(&mut pair);
    pair.shutdown();
    assert!(pair.state(third).is_some());
    let reasons: Vec<String> = drops
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(
        reasons,
        [
            "transport close",
            "client namespace disconnect",
            "server shutting down"
        ]
    );
}

#[test]
fn with_recovery_off_nothing_is_logged() {
    let (mut pair, drops) = pair(|config| config.recovery_window = Duration::ZERO);
    let (ws, _) = connected(&mut pair);
    pair.ws_text(ws, r#"42["join",7,0]"#);
    pair.ws_text(ws, r#"42["post",7,1]"#);
    pair.close(ws);
    assert_eq!(
        drops.lock().unwrap()[0],
        ("transport close".to_owned(), None)
    );
}

#[test]
fn a_deferred_connect_is_answered_by_a_later_call_or_closed_at_the_connect_timeout() {
    let (mut pair, _) = pair(|config| {
        pair_support::quiet(config);
        config.connect_timeout = Duration::from_millis(1000);
    });
    let (waiting, _) = ws_session(&mut pair);
    pair.ws_text(waiting, r#"40{"defer":true}"#);
    assert_eq!(
        pair.take_texts(waiting),
        Vec::<String>::new(),
        "not answered yet"
    );
    let (other, _) = connected(&mut pair);
    pair.ws_text(other, r#"42["answer"]"#);
    let texts = pair.take_texts(waiting);
    let answer: Value =
        serde_json::from_str(texts[0].strip_prefix("40").expect("a CONNECT answer")).unwrap();
    assert_eq!(answer["pid"], "later-pid");
    // Answered: the connect timeout no longer applies.
    pair.advance(Duration::from_millis(1100));
    assert_eq!(
        pair.state(waiting),
        Some(readrealm_chat::endpoint::pair::ConnState::WebSocket)
    );

    // Never answered: closed at the connect timeout, as a CONNECT never sent would be.
    let (never, _) = ws_session(&mut pair);
    pair.ws_text(never, r#"40{"defer":true}"#);
    pair.take_texts(never);
    pair.advance(Duration::from_millis(1100));
    assert_eq!(
        pair.state(never),
        Some(readrealm_chat::endpoint::pair::ConnState::Closed)
    );
}
