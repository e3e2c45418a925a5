//! ReadRealm Chat: a hand-written Engine.IO v4 / Socket.IO v5 server on sharded mio event
//! loops.
//!
//! # Layout
//!
//! A request flows through the modules in this order:
//!
//! - [`http`]: request heads (httparse), responses, CORS — sans-IO;
//! - [`engineio`]: Engine.IO packets and payloads, session ids, the session state machine
//!   (transport, heartbeat, upgrade, queue) — sans-IO;
//! - [`socketio`]: Socket.IO packets, binary reassembly, namespaces, and the [`socketio::Handler`]
//!   API an application implements — sans-IO;
//! - [`server`]: the I/O — listeners, shard threads, connections, timers, rooms and the
//!   cross-shard bus;
//! - [`config`]: every knob and its default; [`config_file`] the TOML file and `--print-config`;
//! - [`metrics`]: lock-free per-shard counters behind `/metrics` and `/health`;
//! - [`logging`]: levelled logfmt or JSON lines on stderr (a `tracing` subscriber);
//! - [`site`]: the reading-room page at `/` and the client script it loads.

#[cfg(feature = "store")]
pub mod chat;
/// Without the `store` feature only the chat's payload rules are built (the fuzz targets
/// check them); the handler itself needs the store.
#[cfg(not(feature = "store"))]
pub mod chat {
    pub mod errors;
    pub mod limits;
    pub mod validate;
}
pub mod config;
#[cfg(feature = "store")]
pub mod config_file;
pub mod engineio;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod site;
pub mod socketio;
#[cfg(feature = "store")]
pub mod store;
pub mod time;
