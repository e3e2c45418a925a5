//! Every server knob, its default, and why it has that default.
//!
//! The binary fills a [`ServerConfig`] from flags and environment variables; tests and the
//! conformance server build one in code. Nothing else in the crate hard-codes these numbers.

use std::net::SocketAddr;
use std::time::Duration;

use crate::http::cors::CorsPolicy;

/// Which protocol layer sits on top of Engine.IO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Socket.IO v5: namespaces, events, acks, rooms (the product).
    SocketIo,
    /// Plain Engine.IO: each message goes to [`crate::socketio::Handler::on_engine_message`].
    EngineIo,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Event-loop threads; each owns its connections and sessions for life.
    pub shards: usize,
    /// The request path of the Engine.IO endpoint (`/socket.io/` or `/engine.io/`).
    pub path: String,
    pub layer: Layer,
    /// Engine.IO pingInterval: socket.io's default, 25 s.
    pub ping_interval: Duration,
    /// Engine.IO pingTimeout: socket.io's default, 20 s.
    pub ping_timeout: Duration,
    /// How long a WebSocket may take from attaching to sending `5` (socket.io: 10 s).
    pub upgrade_timeout: Duration,
    /// Time allowed from the handshake to the first Socket.IO CONNECT (socket.io: 45 s).
    pub connect_timeout: Duration,
    /// maxPayload / maxHttpBufferSize: the largest POST body or WebSocket message (1 MB).
    pub max_payload: usize,
    /// Allowed CORS origins (default: any).
    pub cors: CorsPolicy,
    /// Whether CORS answers allow credentials (cookies, `withCredentials`).
    pub cors_credentials: bool,
    /// Largest request head, in bytes; larger heads get 431 and the connection closes.
    pub max_head_bytes: usize,
    /// Most headers in one request head.
    pub max_headers: usize,
    /// Outbound bytes that may wait for one connection before it counts as too slow a reader
    /// and is disconnected (DESIGN.md, principle 4). Several maxPayloads, so one large
    /// message never trips it.
    pub max_outbound_bytes: usize,
    /// Binary attachments allowed in one Socket.IO packet.
    pub max_attachments: usize,
    /// Namespaces one connection may join at once.
    pub max_namespaces_per_connection: usize,
    /// Open TCP connections per shard; beyond it new ones are closed at accept.
    pub max_connections_per_shard: usize,
    /// Cross-shard channel capacity, in messages, per shard.
    pub bus_capacity: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 3000)),
            shards: cores,
            path: "/socket.io/".to_owned(),
            layer: Layer::SocketIo,
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            connect_timeout: Duration::from_millis(45_000),
            max_payload: 1_000_000,
            cors: CorsPolicy::AnyOrigin,
            cors_credentials: true,
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_outbound_bytes: 4_000_000,
            max_attachments: 10,
            max_namespaces_per_connection: 32,
            max_connections_per_shard: 100_000,
            bus_capacity: 65_536,
        }
    }
}
