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

/// Where a setting's value came from, for error messages.
fn describe(flag: &str) -> String {
    format!("{flag} (env {})", env_name(flag))
}

/// `--ping-interval` → `READREALM_PING_INTERVAL`.
pub fn env_name(flag: &str) -> String {
    format!(
        "READREALM_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

/// The command-line flags the server binary understands, with their help text.
pub const FLAGS: &[(&str, &str)] = &[
    ("--listen", "address to listen on [default: 0.0.0.0:3000]"),
    ("--shards", "event-loop threads [default: available cores]"),
    (
        "--cors-origin",
        "allowed CORS origins: *, none, or a comma-separated list [default: *]",
    ),
    (
        "--ping-interval",
        "Engine.IO pingInterval in ms [default: 25000]",
    ),
    (
        "--ping-timeout",
        "Engine.IO pingTimeout in ms [default: 20000]",
    ),
    (
        "--connect-timeout",
        "ms allowed to send Socket.IO CONNECT [default: 45000]",
    ),
    (
        "--max-payload",
        "largest message or POST body in bytes [default: 1000000]",
    ),
];

impl ServerConfig {
    /// Apply one setting by flag name; the error names the setting.
    pub fn set(&mut self, flag: &str, value: &str) -> Result<(), String> {
        let bad = |what: &str| format!("invalid {}: {value:?} ({what})", describe(flag));
        let millis = |value: &str| -> Result<Duration, String> {
            match value.parse::<u64>() {
                Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                _ => Err(bad("a positive number of milliseconds")),
            }
        };
        match flag {
            "--listen" => {
                self.listen = value
                    .parse()
                    .map_err(|_| bad("an address like 0.0.0.0:3000"))?
            }
            "--shards" => match value.parse::<usize>() {
                Ok(n) if (1..=crate::engineio::sid::MAX_SHARDS).contains(&n) => self.shards = n,
                _ => return Err(bad("a whole number from 1 to 64")),
            },
            "--cors-origin" => self.cors = crate::http::Cors::parse_policy(value),
            "--ping-interval" => self.ping_interval = millis(value)?,
            "--ping-timeout" => self.ping_timeout = millis(value)?,
            "--connect-timeout" => self.connect_timeout = millis(value)?,
            "--max-payload" => match value.parse::<usize>() {
                Ok(n) if n >= 1024 => self.max_payload = n,
                _ => return Err(bad("a number of bytes, at least 1024")),
            },
            _ => return Err(format!("unknown setting {flag}")),
        }
        Ok(())
    }

    /// Settings from the environment (`READREALM_*`), then from `args` (flags win).
    pub fn from_env_and_args(args: &[String]) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::default();
        for (flag, _) in FLAGS {
            if let Ok(value) = std::env::var(env_name(flag)) {
                config.set(flag, &value)?;
            }
        }
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, value) = match arg.split_once('=') {
                Some((flag, value)) => (flag, value.to_owned()),
                None => {
                    let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                    (arg.as_str(), value.clone())
                }
            };
            config.set(flag, &value)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults_and_name_themselves_in_errors() {
        let args: Vec<String> = ["--shards", "2", "--ping-interval=300"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let config = ServerConfig::from_env_and_args(&args).unwrap();
        assert_eq!(config.shards, 2);
        assert_eq!(config.ping_interval, Duration::from_millis(300));
        let err = ServerConfig::default().set("--shards", "0").unwrap_err();
        assert!(
            err.contains("--shards") && err.contains("READREALM_SHARDS"),
            "{err}"
        );
        assert!(ServerConfig::default().set("--nope", "1").is_err());
    }
}
