//! A small Socket.IO application for the client test suites: everything the protocol core
//! offers an application, reachable by events, with a command line for shards and timings.
//!
//! `protocol-testserver [--listen ADDR] [--shards N] [--ping-interval MS] [--ping-timeout MS]`
//! prints `listening on ADDR` once ready. Namespaces: `/` and `/custom` (others are refused
//! with `Invalid namespace`; a CONNECT with `auth.token == "bad"` is refused with
//! `{"message":"unauthorized","data":{"reason":"bad token"}}`). Events:
//!
//! - `echo` (any args, binary included): emitted back as `echo`;
//! - `ack` (with an ack): acknowledged with the same args;
//! - `join` `(room)` / `leave` `(room)`: room membership, acked with `true` when asked;
//! - `broadcast` `(room, payload, exceptSelf)`: `payload` emitted as `broadcast` to the room;
//! - `ask` `(payload)`: the server emits `question` with an ack, and emits `answer` with what
//!   the client acknowledged;
//! - `bye`: the server disconnects this socket from its namespace.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::ExitCode;
use std::time::Duration;

use readrealm_chat::config::ServerConfig;
use readrealm_chat::socketio::{Event, Handler, Refusal, Socket};
use serde_json::{json, Value};

struct TestApp;

impl Handler for TestApp {
    type State = ();
    type Shard = ();
    type Forward = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/" || nsp == "/custom"
    }

    fn on_connect(&self, _socket: &mut Socket<'_, ()>, auth: &Value) -> Result<(), Refusal> {
        if auth.get("token").and_then(Value::as_str) == Some("bad") {
            return Err(Refusal {
                message: "unauthorized".into(),
                data: Some(json!({ "reason": "bad token" })),
            });
        }
        Ok(())
    }

    fn on_event(&self, socket: &mut Socket<'_, ()>, event: Event) {
        // Data deeper than serde_json follows cannot be echoed; such an event is dropped.
        let Ok(args) = event.args() else { return };
        let room = args.first().and_then(Value::as_str).map(str::to_owned);
        match event.name() {
            Some("echo") => socket.emit_binary("echo", args, event.attachments),
            Some("ack") => {
                if let Some(id) = event.ack_id {
                    socket.ack(id, args, event.attachments);
                }
            }
            Some("join") | Some("leave") => {
                if let Some(room) = room {
                    if event.name() == Some("join") {
                        socket.join(&room);
                    } else {
                        socket.leave(&room);
                    }
                }
                if let Some(id) = event.ack_id {
                    socket.ack(id, vec![Value::Bool(true)], Vec::new());
                }
            }
            Some("broadcast") => {
                let payload = args.get(1).cloned().unwrap_or(Value::Null);
                let except_self = args.get(2).and_then(Value::as_bool).unwrap_or(false);
                if let Some(room) = room {
                    socket.broadcast_binary(
                        &room,
                        "broadcast",
                        vec![payload],
                        event.attachments,
                        except_self,
                    );
                }
                if let Some(id) = event.ack_id {
                    socket.ack(id, vec![Value::Bool(true)], Vec::new());
                }
            }
            Some("ask") => {
                socket.emit_with_ack("question", args);
            }
            Some("bye") => socket.disconnect(),
            _ => {}
        }
    }

    fn on_ack(&self, socket: &mut Socket<'_, ()>, _ack_id: u64, data: Value) {
        let args = data.as_array().cloned().unwrap_or_default();
        socket.emit("answer", args);
    }
}

fn main() -> ExitCode {
    // The server's log lines on stderr at info, as before the logger became a subscriber.
    let _ = readrealm_chat::logging::init(Default::default(), Default::default());
    let mut config = ServerConfig {
        listen: ([127, 0, 0, 1], 3001).into(),
        ..ServerConfig::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("{flag} needs a value");
            return ExitCode::from(2);
        };
        let ok = match flag.as_str() {
            "--listen" => value.parse().map(|v| config.listen = v).is_ok(),
            "--shards" => value.parse().map(|v| config.shards = v).is_ok(),
            "--ping-interval" => value
                .parse()
                .map(|v| config.ping_interval = Duration::from_millis(v))
                .is_ok(),
            "--ping-timeout" => value
                .parse()
                .map(|v| config.ping_timeout = Duration::from_millis(v))
                .is_ok(),
            _ => false,
        };
        if !ok {
            eprintln!("invalid argument {flag} {value}");
            return ExitCode::from(2);
        }
    }
    match readrealm_chat::server::start(config, TestApp) {
        Ok(server) => {
            println!("listening on {}", server.local_addr());
            match server.join() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("protocol-testserver: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("protocol-testserver: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}
