//! The conformance test server of docs/PROTOCOL.md, for independent Engine.IO v4 and Socket.IO v5
//! test suites: `conformance engineio` or `conformance socketio`, on 127.0.0.1:3000 (or the
//! address in `CONFORMANCE_LISTEN`), with pingInterval 300 ms, pingTimeout 200 ms,
//! maxPayload 1,000,000, connectTimeout 1000 ms and CORS origin `*`. In Socket.IO mode the
//! `auth` event follows each CONNECT answer after `conformance::AUTH_DELAY` (20 ms; why: its
//! doc). `tools/upstream-suites.sh` runs the upstream suites against both modes.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::ExitCode;
use std::time::Duration;

use readrealm_chat::config::{Layer, ServerConfig};
use readrealm_chat::socketio::conformance::{ConformanceSocketIo, EchoEngine};

fn main() -> ExitCode {
    // The server's log lines on stderr at info, as before the logger became a subscriber.
    let _ = readrealm_chat::logging::init(Default::default(), Default::default());
    let mode = std::env::args().nth(1).unwrap_or_default();
    let listen = std::env::var("CONFORMANCE_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let Ok(listen) = listen.parse() else {
        eprintln!("conformance: invalid CONFORMANCE_LISTEN {listen:?}");
        return ExitCode::from(2);
    };
    let mut config = ServerConfig {
        listen,
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(1000),
        max_payload: 1_000_000,
        ..ServerConfig::default()
    };
    // One shard by default, like the single Node process of the reference server: two
    // requests of one client racing on two TCP connections then reach the session in the
    // order they arrive. With several shards a request that lands on a shard other than its
    // session's owner is handed over, and can be overtaken by one sent just after it (the
    // suite's "forcefully closes the session" race). CONFORMANCE_SHARDS sets more.
    config.shards = std::env::var("CONFORMANCE_SHARDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let started = match mode.as_str() {
        "engineio" => {
            config.path = "/engine.io/".into();
            config.layer = Layer::EngineIo;
            readrealm_chat::server::start(config, EchoEngine)
        }
        "socketio" => readrealm_chat::server::start(config, ConformanceSocketIo),
        _ => {
            eprintln!("usage: conformance engineio|socketio");
            return ExitCode::from(2);
        }
    };
    match started {
        Ok(server) => {
            eprintln!("conformance {mode} listening on {}", server.local_addr());
            match server.join() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("conformance: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("conformance: cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}
