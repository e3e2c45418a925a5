//! ReadRealm Chat: a hand-written Engine.IO v4 / Socket.IO v5 server on sharded mio event
//! loops.
//!
//! # Layout
//!
//! Every module, in the order a message flows through them:
//!
//! - [`server`]: the I/O — listeners, shard threads and their mio loops, connections and their
//!   buffers, HTTP request and WebSocket framing, the cross-shard bus, the order of writes;
//!   it makes no protocol decision;
//! - [`http`]: request heads (httparse), responses, CORS — sans-IO;
//! - [`endpoint`]: one shard's protocol endpoint — every Engine.IO and Socket.IO decision,
//!   events in (given `now`), transmits out; and the deterministic test pair — sans-IO;
//! - [`engineio`]: Engine.IO packets and payloads, session ids, the session state machine
//!   (transport and the connections carrying it, heartbeat, upgrade, queue), the protocol
//!   violations — sans-IO;
//! - [`socketio`]: Socket.IO packets, JSON limits, binary reassembly, namespaces, and the
//!   [`socketio::Handler`] API an application implements — sans-IO;
//! - [`chat`]: the book chat, one `Handler`: payload rules, identity, rates, home shards,
//!   rosters (who is here), the encoded history cache, older history by page;
//! - [`store`]: the RocksDB message store, its layout and migration, backups; [`book`]: a
//!   book's id; [`message_id`]: a message's `_id` and its generator;
//! - `cluster` (the `cluster` feature, on with `store`): cluster mode's log on Redis —
//!   partitions, appends numbered by Lua, reading, retention, liveness (not wired yet);
//! - [`metrics`]: lock-free per-shard counters behind `/metrics` and `/health`;
//! - [`site`]: the reading-room page at `/` and the client script it loads;
//! - [`config`]: every knob and its default; [`config_file`] the TOML file and `--print-config`;
//! - [`logging`]: levelled logfmt or JSON lines on stderr (a `tracing` subscriber); [`time`]:
//!   wall-clock time and its ISO-8601 form;
//! - `fuzz_checks` (hidden; tests and the `checks` feature only): what the stateful fuzz
//!   targets assert, and the table of every target's check, shared with `cargo test`; the
//!   codecs' round-trip checks sit beside their codecs (`checks` modules).

// Nothing a client sends may panic the server: no unwrap, expect, unchecked index or panic
// outside tests. The few exceptions are marked where they are, each with its reason.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

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
pub mod book;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
#[cfg(feature = "store")]
pub mod config_file;
pub mod endpoint;
pub mod engineio;
#[cfg(any(test, feature = "checks"))]
#[doc(hidden)]
pub mod fuzz_checks;
pub mod http;
pub mod logging;
pub mod message_id;
pub mod metrics;
pub mod server;
pub mod site;
pub mod socketio;
#[cfg(feature = "store")]
pub mod store;
pub mod time;
