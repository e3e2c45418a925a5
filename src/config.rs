//! Every server knob, its default, and why it has that default.
//!
//! The binary fills a [`Settings`] from flags and environment variables ([`Flags`], parsed by
//! clap) over an optional TOML file (`crate::config_file`, which depends on this module,
//! never the reverse); tests and the conformance server build a [`ServerConfig`] in code.
//! Nothing else in the crate hard-codes these numbers. [`Settings::set`] is the one place a
//! setting's text is checked, whichever layer it came from.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
#[cfg(feature = "store")]
use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "store")]
#[cfg(feature = "store")]
use crate::logging::{Level, LogFormat};
#[cfg(feature = "store")]
use crate::site::CLIENT_JS_DEFAULT;

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
    /// Default 16384, Node's (see [`crate::http::request::DEFAULT_MAX_HEAD_BYTES`]).
    pub max_head_bytes: usize,
    /// Most headers in one request head.
    pub max_headers: usize,
    /// Outbound bytes that may wait for one connection before it counts as too slow a reader
    /// and is disconnected (docs/ARCHITECTURE.md, principle 4). Several maxPayloads, so one large
    /// message never trips it.
    pub max_outbound_bytes: usize,
    /// Binary attachments allowed in one Socket.IO packet.
    pub max_attachments: usize,
    /// Namespaces one connection may join at once.
    pub max_namespaces_per_connection: usize,
    /// Open TCP connections, all shards together; beyond it new ones get 503 and are closed
    /// at accept (0: no cap). Keep it under the process's file-descriptor limit.
    pub max_connections: usize,
    /// Open TCP connections from one client IP address; beyond it new ones get 429 and are
    /// closed (0: no cap, the default). Off by default because a proxy not listed in
    /// `trusted_proxies` makes every reader one address, and any cap would then silently cap
    /// the whole server (docs/LIMITS.md). With the proxies listed, the address counted is the
    /// client's (PROXY header or `X-Forwarded-For`), so a cap is safe to set.
    pub max_connections_per_ip: usize,
    /// Peers (addresses and CIDR blocks) whose PROXY protocol header (v1 or v2) and
    /// `X-Forwarded-For` are believed for the client's address; empty by default. From any
    /// other peer both are ignored as such: a PROXY header is not HTTP and gets 400.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Time allowed for a whole request (head and body) to arrive, counted from when the
    /// connection starts waiting for it: accept, or the end of the previous request on a
    /// keep-alive connection. Bounds slow-header attacks and idle keep-alive connections
    /// (Node's keepAliveTimeout is 5 s, so clients expect idle connections to close).
    pub request_timeout: Duration,
    /// Deepest JSON nesting accepted in one Socket.IO packet; deeper closes the connection.
    /// The default is serde_json's own limit (127), so what socket.io parses below it is
    /// answered here too.
    pub max_json_depth: usize,
    /// Most JSON values (array elements and object members) in one Socket.IO packet that is
    /// decoded into a tree (CONNECT, ACK, packets with attachments); bounds what a small
    /// packet may make the server allocate. EVENTs without attachments are read into typed
    /// values without a tree and are not counted (maxPayload bounds them).
    pub max_json_elements: usize,
    /// Cross-shard channel capacity, in messages, per shard.
    pub bus_capacity: usize,
    /// How long broadcast output for a connection may wait so that frames for it coalesce
    /// into one write (Centrifugo's client write delay); answers to the connection never
    /// wait (`server/shard.rs`, `mark_dirty`). Zero, the default, writes at the end of the
    /// loop turn as always. At most [`MAX_WRITE_DELAY`].
    pub write_delay: Duration,
    /// Connection state recovery (`--recovery-window`, docs/API.md "Reconnecting without
    /// losing messages"): how long a connection that dropped unexpectedly may be recovered.
    /// Zero turns recovery off; otherwise each session logs the sequenced broadcasts it was
    /// sent since its client last answered a ping (`socketio::recovery`). Default 120 s.
    pub recovery_window: Duration,
}

/// The longest `--write-delay` accepted: beyond it a chat reads as broken, not batched.
pub const MAX_WRITE_DELAY: Duration = Duration::from_secs(1);

/// A write delay as `--write-delay` takes it: `0`, or a whole number with `us`, `ms` or `s`
/// (`250us`, `1ms`); a bare number counts milliseconds, as every other duration flag does.
/// `None` for anything else or more than [`MAX_WRITE_DELAY`].
pub fn parse_write_delay(value: &str) -> Option<Duration> {
    let value = value.trim();
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let delay = match unit.trim() {
        "us" | "µs" => Duration::from_micros(number),
        "" | "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        _ => return None,
    };
    (delay <= MAX_WRITE_DELAY).then_some(delay)
}

/// A write delay as [`parse_write_delay`] reads it back: `0` or whole microseconds (`250us`).
pub fn format_write_delay(delay: Duration) -> String {
    if delay.is_zero() {
        "0".to_owned()
    } else {
        format!("{}us", delay.as_micros())
    }
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
            max_head_bytes: crate::http::request::DEFAULT_MAX_HEAD_BYTES,
            max_headers: 64,
            max_outbound_bytes: 4_000_000,
            max_attachments: 10,
            max_namespaces_per_connection: 32,
            max_connections: 100_000,
            max_connections_per_ip: 0,
            trusted_proxies: Vec::new(),
            request_timeout: Duration::from_millis(10_000),
            max_json_depth: crate::socketio::packet::Limits::DEFAULT_MAX_JSON_DEPTH,
            max_json_elements: 10_000,
            bus_capacity: 65_536,
            write_delay: Duration::ZERO,
            recovery_window: Duration::from_millis(120_000),
        }
    }
}

#[cfg(feature = "store")]
/// Everything the `readrealm-chat` binary is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerConfig,
    /// The RocksDB directory holding the history.
    pub data_dir: PathBuf,
    /// fsync every write batch (survives power loss); without it the WAL still makes every
    /// acknowledged message survive a crash of the process.
    pub sync_writes: bool,
    pub chat: ChatLimits,
    /// Token authentication (off unless a key file is set).
    pub auth: AuthSettings,
    /// Operations: log level and format, and the client script the reading-room page loads.
    pub ops: OpsSettings,
}

#[cfg(feature = "store")]
impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerConfig::default(),
            data_dir: PathBuf::from("./data"),
            sync_writes: false,
            chat: ChatLimits::default(),
            auth: AuthSettings::default(),
            ops: OpsSettings::default(),
        }
    }
}

/// Settings about running the server rather than serving the chat.
#[cfg(feature = "store")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsSettings {
    /// How much to log.
    pub log: Level,
    /// How log lines are written: logfmt `key=value` lines or JSON objects.
    pub log_format: LogFormat,
    /// The socket.io-client browser bundle, when given explicitly.
    pub client_js: Option<PathBuf>,
    /// The settings file in use, if any (for `--print-config`).
    pub config: Option<PathBuf>,
}

#[cfg(feature = "store")]
impl OpsSettings {
    /// The client script to serve: the explicit one, else [`CLIENT_JS_DEFAULT`] under the
    /// working directory or next to the binary (or up to three levels above it, for
    /// `target/release`), whichever exists first.
    pub fn client_js_path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.client_js {
            return Some(path.clone());
        }
        let mut bases = vec![PathBuf::from(".")];
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        {
            bases.extend(dir.ancestors().take(4).map(Path::to_path_buf));
        }
        bases
            .into_iter()
            .map(|base| base.join(CLIENT_JS_DEFAULT))
            .find(|path| path.is_file())
    }
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

/// The `readrealm-chat` command line, parsed by clap: one optional value per setting, each
/// also read from its `READREALM_*` environment variable (a flag wins over its variable).
///
/// Values stay text here and are checked by [`Settings::set`], the one validator the flags,
/// the environment and the TOML file (`crate::config_file`) share, so a bad value gets the
/// same message (naming the flag and its variable) wherever it came from. The help texts are
/// also the comments of `--print-config`. Defaults are not clap defaults: they live in
/// [`ServerConfig::default`], [`Settings::default`] and [`ChatLimits::default`] (a clap
/// default would hide the file's value), and the help text names them.
#[cfg(feature = "store")]
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "readrealm-chat",
    version,
    about = "ReadRealm Chat: the book chat server (Socket.IO v5 on /socket.io/).",
    long_about = None,
    override_usage = "readrealm-chat [FLAG VALUE]... [--print-config]\n       \
                      readrealm-chat backup --data-dir DIR --to NEW_DIR",
    after_help = "Each flag is also read from its environment variable (shown as env); \
                  flags win over the environment, which wins over the --config file.",
    args_override_self = true,
    // A value may start with '-' (`--message-rate -1` gets the validator's message).
    allow_hyphen_values = true,
    next_line_help = true,
    max_term_width = 100
)]
pub struct Flags {
    #[arg(
        long,
        env = "READREALM_LISTEN",
        value_name = "ADDR",
        help = "address to listen on [default: 0.0.0.0:3000]"
    )]
    pub listen: Option<String>,
    #[arg(
        long,
        env = "READREALM_DATA_DIR",
        value_name = "DIR",
        help = "RocksDB directory for the history [default: ./data]"
    )]
    pub data_dir: Option<String>,
    #[arg(
        long,
        env = "READREALM_SYNC_WRITES",
        value_name = "BOOL",
        help = "fsync every write batch: true or false [default: false]"
    )]
    pub sync_writes: Option<String>,
    #[arg(
        long,
        env = "READREALM_SHARDS",
        value_name = "N",
        help = "event-loop threads [default: available cores]"
    )]
    pub shards: Option<String>,
    #[arg(
        long,
        env = "READREALM_CORS_ORIGIN",
        value_name = "ORIGINS",
        help = "allowed CORS origins: *, none, or a comma-separated list [default: *]"
    )]
    pub cors_origin: Option<String>,
    #[arg(
        long,
        env = "READREALM_PING_INTERVAL",
        value_name = "MS",
        help = "Engine.IO pingInterval in ms [default: 25000]"
    )]
    pub ping_interval: Option<String>,
    #[arg(
        long,
        env = "READREALM_PING_TIMEOUT",
        value_name = "MS",
        help = "Engine.IO pingTimeout in ms [default: 20000]"
    )]
    pub ping_timeout: Option<String>,
    #[arg(
        long,
        env = "READREALM_CONNECT_TIMEOUT",
        value_name = "MS",
        help = "ms allowed to send Socket.IO CONNECT [default: 45000]"
    )]
    pub connect_timeout: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_PAYLOAD",
        value_name = "BYTES",
        help = "largest message or POST body in bytes [default: 1000000]"
    )]
    pub max_payload: Option<String>,
    #[arg(
        long,
        env = "READREALM_UPGRADE_TIMEOUT",
        value_name = "MS",
        help = "ms allowed to complete the WebSocket upgrade [default: 10000]"
    )]
    pub upgrade_timeout: Option<String>,
    #[arg(
        long,
        env = "READREALM_RECOVERY_WINDOW",
        value_name = "MS",
        help = "ms a connection that dropped unexpectedly can be recovered with every message it \
                missed; 0: recovery off [default: 120000]"
    )]
    pub recovery_window: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_CONNECTIONS",
        value_name = "N",
        help = "open connections, all shards together; 0: no cap [default: 100000]"
    )]
    pub max_connections: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_CONNECTIONS_PER_IP",
        value_name = "N",
        help = "open connections from one client IP; 0: no cap [default: 0]"
    )]
    pub max_connections_per_ip: Option<String>,
    #[arg(
        long,
        env = "READREALM_TRUSTED_PROXIES",
        value_name = "LIST",
        help = "addresses/CIDRs whose PROXY header and X-Forwarded-For name the client \
                  [default: none]"
    )]
    pub trusted_proxies: Option<String>,
    #[arg(
        long,
        env = "READREALM_REQUEST_TIMEOUT",
        value_name = "MS",
        help = "ms allowed for a whole HTTP request to arrive [default: 10000]"
    )]
    pub request_timeout: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_HEAD_BYTES",
        value_name = "BYTES",
        help = "largest HTTP request head in bytes [default: 16384]"
    )]
    pub max_head_bytes: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_HEADERS",
        value_name = "N",
        help = "most headers in one request [default: 64]"
    )]
    pub max_headers: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_JSON_DEPTH",
        value_name = "N",
        help = "deepest JSON nesting in one packet [default: 127]"
    )]
    pub max_json_depth: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_JSON_ELEMENTS",
        value_name = "N",
        help = "most JSON values in a CONNECT, ACK or binary packet [default: 10000]"
    )]
    pub max_json_elements: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_ATTACHMENTS",
        value_name = "N",
        help = "binary attachments in one packet [default: 10]"
    )]
    pub max_attachments: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_NAMESPACES",
        value_name = "N",
        help = "namespaces one connection may join [default: 32]"
    )]
    pub max_namespaces: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_OUTBOUND_BYTES",
        value_name = "BYTES",
        help = "bytes queued for one slow reader before it is disconnected [default: 4000000]"
    )]
    pub max_outbound_bytes: Option<String>,
    #[arg(
        long,
        env = "READREALM_WRITE_DELAY",
        value_name = "DURATION",
        help = "how long broadcast output may wait to coalesce into one write per connection: 0 \
                (off), or e.g. 250us, 1ms; answers never wait [default: 0]"
    )]
    pub write_delay: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_ROOMS",
        value_name = "N",
        help = "rooms per connection [default: 100]"
    )]
    pub max_rooms: Option<String>,
    #[arg(
        long,
        env = "READREALM_MESSAGE_RATE",
        value_name = "PER_SECOND",
        help = "chatMessages per second per connection [default: 10]"
    )]
    pub message_rate: Option<String>,
    #[arg(
        long,
        env = "READREALM_MESSAGE_BURST",
        value_name = "N",
        help = "chatMessages allowed at once before the rate applies [default: 20]"
    )]
    pub message_burst: Option<String>,
    #[arg(
        long,
        env = "READREALM_MAX_CONTENT_LENGTH",
        value_name = "CHARS",
        help = "longest message content in characters [default: 4000]"
    )]
    pub max_content_length: Option<String>,
    #[arg(
        long,
        env = "READREALM_AUTH_JWT_SECRET_FILE",
        value_name = "FILE",
        help = "token auth: file holding the HMAC secret for HS256/HS384/HS512 tokens (less one \
                trailing newline) [default: none]"
    )]
    pub auth_jwt_secret_file: Option<String>,
    #[arg(
        long,
        env = "READREALM_AUTH_JWT_PUBLIC_KEY_FILE",
        value_name = "FILE",
        help = "token auth: PEM public key (RSA, EC P-256/P-384 or Ed25519) verifying the tokens \
                [default: none]"
    )]
    pub auth_jwt_public_key_file: Option<String>,
    #[arg(
        long,
        env = "READREALM_AUTH_JWT_ISSUER",
        value_name = "ISS",
        help = "token auth: the iss every token must carry [default: not checked]"
    )]
    pub auth_jwt_issuer: Option<String>,
    #[arg(
        long,
        env = "READREALM_AUTH_JWT_AUDIENCE",
        value_name = "AUD",
        help = "token auth: a value every token's aud must hold [default: not checked]"
    )]
    pub auth_jwt_audience: Option<String>,
    #[arg(
        long,
        env = "READREALM_AUTH_JWT_LEEWAY",
        value_name = "SECONDS",
        help = "token auth: clock skew tolerated on exp and nbf, in seconds [default: 30]"
    )]
    pub auth_jwt_leeway: Option<String>,
    #[arg(
        long,
        env = "READREALM_CONFIG",
        value_name = "FILE",
        help = "TOML file of settings, keys named like these flags without -- (env and flags win)"
    )]
    pub config: Option<String>,
    #[arg(
        long,
        env = "READREALM_LOG",
        value_name = "LEVEL",
        help = "log level: error, warn, info, debug or trace [default: info]"
    )]
    pub log: Option<String>,
    #[arg(
        long,
        env = "READREALM_LOG_FORMAT",
        value_name = "FORMAT",
        help = "log line format: logfmt (key=value) or json (one object per line) \
                  [default: logfmt]"
    )]
    pub log_format: Option<String>,
    #[arg(
        long,
        env = "READREALM_CLIENT_JS",
        value_name = "FILE",
        help = "socket.io.min.js for the reading-room page [default: \
                  static/node_modules/socket.io-client/dist/socket.io.min.js under the working \
                  directory or the binary's]"
    )]
    pub client_js: Option<String>,
    /// `--print-config`: print the effective settings as TOML and exit.
    #[arg(
        long,
        help = "print the effective settings as TOML (a file --config reads back) and exit"
    )]
    pub print_config: bool,
}

/// Every setting's flag (`--ping-interval`) and help text, in the order `--help` and
/// `--print-config` list them: the [`Flags`] that have an environment variable.
#[cfg(feature = "store")]
pub fn settings_flags() -> Vec<(String, String)> {
    use clap::CommandFactory as _;
    Flags::command()
        .get_arguments()
        .filter(|arg| arg.get_env().is_some())
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            Some((format!("--{long}"), help))
        })
        .collect()
}

#[cfg(feature = "store")]
impl Settings {
    /// Apply one setting by flag name; the error names the setting.
    pub fn set(&mut self, flag: &str, value: &str) -> Result<(), String> {
        let bad = |what: &str| {
            format!(
                "invalid {flag} (env {}): {value:?} ({what})",
                env_name(flag)
            )
        };
        let millis = |value: &str| -> Result<Duration, String> {
            match value.parse::<u64>() {
                Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                _ => Err(bad("a positive number of milliseconds")),
            }
        };
        let count = |value: &str, min: usize| -> Result<usize, String> {
            match value.parse::<usize>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(bad(&format!("a whole number, at least {min}"))),
            }
        };
        let rate = |value: &str| -> Result<f64, String> {
            match value.parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
                _ => Err(bad("a positive number")),
            }
        };
        let path = |value: &str| -> Result<PathBuf, String> {
            match value {
                "" => Err(bad("a file path")),
                _ => Ok(PathBuf::from(value)),
            }
        };
        let server = &mut self.server;
        match flag {
            "--listen" => {
                server.listen = value
                    .parse()
                    .map_err(|_| bad("an address like 0.0.0.0:3000"))?
            }
            "--data-dir" if !value.is_empty() => self.data_dir = PathBuf::from(value),
            "--data-dir" => return Err(bad("a directory")),
            "--sync-writes" => {
                self.sync_writes = match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(bad("true or false")),
                }
            }
            "--shards" => match value.parse::<usize>() {
                Ok(n) if (1..=crate::engineio::sid::MAX_SHARDS).contains(&n) => server.shards = n,
                _ => return Err(bad("a whole number from 1 to 64")),
            },
            "--cors-origin" => server.cors = crate::http::Cors::parse_policy(value),
            "--ping-interval" => server.ping_interval = millis(value)?,
            "--ping-timeout" => server.ping_timeout = millis(value)?,
            "--connect-timeout" => server.connect_timeout = millis(value)?,
            "--max-payload" => server.max_payload = count(value, 1024)?,
            "--upgrade-timeout" => server.upgrade_timeout = millis(value)?,
            "--recovery-window" => {
                server.recovery_window = value
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| bad("a whole number of milliseconds (0 turns recovery off)"))?
            }
            "--max-connections" => server.max_connections = count(value, 0)?,
            "--max-connections-per-ip" => server.max_connections_per_ip = count(value, 0)?,
            "--trusted-proxies" => {
                server.trusted_proxies = parse_trusted(value).map_err(|what| bad(&what))?
            }
            "--request-timeout" => server.request_timeout = millis(value)?,
            "--max-head-bytes" => server.max_head_bytes = count(value, 1024)?,
            "--max-headers" => server.max_headers = count(value, 8)?,
            "--max-json-depth" => server.max_json_depth = count(value, 2)?,
            "--max-json-elements" => server.max_json_elements = count(value, 8)?,
            "--max-attachments" => server.max_attachments = count(value, 0)?,
            "--max-namespaces" => server.max_namespaces_per_connection = count(value, 1)?,
            "--max-outbound-bytes" => server.max_outbound_bytes = count(value, 4096)?,
            "--write-delay" => {
                server.write_delay = parse_write_delay(value)
                    .ok_or_else(|| bad("0, or a duration like 250us or 1ms, at most 1s"))?
            }
            "--max-rooms" => self.chat.max_rooms_per_connection = count(value, 1)?,
            "--message-rate" => self.chat.message_rate = rate(value)?,
            "--message-burst" => self.chat.message_burst = rate(value)?.max(1.0),
            "--max-content-length" => self.chat.max_content_chars = count(value, 1)?,
            "--log" => {
                self.ops.log = Level::parse(value)
                    .ok_or_else(|| bad("one of error, warn, info, debug, trace"))?
            }
            "--log-format" => {
                self.ops.log_format =
                    LogFormat::parse(value).ok_or_else(|| bad("logfmt or json"))?
            }
            "--auth-jwt-secret-file" => self.auth.secret_file = Some(path(value)?),
            "--auth-jwt-public-key-file" => self.auth.public_key_file = Some(path(value)?),
            "--auth-jwt-issuer" => {
                self.auth.issuer = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "--auth-jwt-audience" => {
                self.auth.audience = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "--auth-jwt-leeway" => match value.parse::<u32>() {
                Ok(secs) => self.auth.leeway_secs = u64::from(secs),
                _ => return Err(bad("a whole number of seconds")),
            },
            "--client-js" => self.ops.client_js = Some(path(value)?),
            "--config" => self.ops.config = Some(path(value)?),
            _ => return Err(format!("unknown setting {flag}")),
        }
        Ok(())
    }

    /// Apply every setting clap's `matches` of [`Flags`] carry (each from the command line, or
    /// else its environment variable), in [`settings_flags`] order; the first bad value's error
    /// (the message of [`Settings::set`]).
    pub fn apply_flags(&mut self, matches: &clap::ArgMatches) -> Result<(), String> {
        for (flag, _) in settings_flags() {
            let id = flag.trim_start_matches('-').replace('-', "_");
            // `try_get_one`: an id clap does not know is an error here, never a panic.
            let value = matches
                .try_get_one::<String>(&id)
                .map_err(|e| format!("{flag}: {e}"))?;
            if let Some(value) = value {
                self.set(&flag, value)?;
            }
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "store"))]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// The settings `args` (after the program name) give over the defaults, as the binary
    /// parses them (without a settings file); the error as clap would print it.
    fn from_args(args: &[String]) -> Result<Settings, String> {
        let argv = std::iter::once("readrealm-chat".to_owned()).chain(args.iter().cloned());
        let matches = Flags::command()
            .try_get_matches_from(argv)
            .map_err(|e| e.to_string())?;
        let mut settings = Settings::default();
        settings.apply_flags(&matches)?;
        Ok(settings)
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn write_delay_takes_microseconds_and_reads_back() {
        assert_eq!(Settings::default().server.write_delay, Duration::ZERO);
        for (text, delay) in [
            ("0", Duration::ZERO),
            ("250us", Duration::from_micros(250)),
            ("1ms", Duration::from_millis(1)),
            ("5", Duration::from_millis(5)),
            ("1s", Duration::from_secs(1)),
        ] {
            let mut settings = Settings::default();
            settings.set("--write-delay", text).unwrap();
            assert_eq!(settings.server.write_delay, delay, "{text}");
            assert_eq!(
                parse_write_delay(&format_write_delay(delay)),
                Some(delay),
                "{text}"
            );
        }
        for bad in ["", "-1", "1.5ms", "2s", "1 ns", "ms"] {
            let err = Settings::default().set("--write-delay", bad).unwrap_err();
            assert!(err.contains("READREALM_WRITE_DELAY"), "{err}");
        }
    }

    #[test]
    fn flags_override_defaults_and_name_themselves_in_errors() {
        let args: Vec<String> = [
            "--shards",
            "2",
            "--ping-interval=300",
            "--data-dir",
            "/tmp/x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let settings = from_args(&args).unwrap();
        assert_eq!(settings.server.shards, 2);
        assert_eq!(settings.server.ping_interval, Duration::from_millis(300));
        assert_eq!(settings.data_dir, PathBuf::from("/tmp/x"));
        let err = Settings::default().set("--shards", "0").unwrap_err();
        assert!(
            err.contains("--shards") && err.contains("READREALM_SHARDS"),
            "{err}"
        );
        assert!(Settings::default().set("--nope", "1").is_err());
        assert!(Settings::default().set("--sync-writes", "maybe").is_err());
        assert!(Settings::default().set("--message-rate", "-1").is_err());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_blocks_and_default_to_none() {
        let defaults = Settings::default();
        assert!(defaults.server.trusted_proxies.is_empty());
        assert_eq!(defaults.server.max_connections_per_ip, 0);
        let mut settings = Settings::default();
        settings
            .set("--trusted-proxies", "10.0.0.0/8, 192.0.2.7")
            .unwrap();
        let listed: Vec<String> = settings
            .server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(listed, ["10.0.0.0/8", "192.0.2.7/32"]);
        let err = Settings::default()
            .set("--trusted-proxies", "10.0.0.0/8,proxy.local")
            .unwrap_err();
        assert!(
            err.contains("READREALM_TRUSTED_PROXIES") && err.contains("proxy.local"),
            "{err}"
        );
    }

    #[test]
    fn every_setting_has_its_environment_variable_and_a_help_text() {
        let flags = settings_flags();
        assert!(flags.len() >= 29, "{flags:?}");
        let command = Flags::command();
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let flag = format!("--{long}");
            match arg.get_env() {
                Some(env) => assert_eq!(env.to_str(), Some(env_name(&flag).as_str()), "{flag}"),
                None => assert!(
                    ["--print-config", "--help", "--version"].contains(&flag.as_str()),
                    "{flag} has no environment variable"
                ),
            }
        }
        for (flag, help) in &flags {
            assert!(!help.is_empty(), "{flag} has no help");
            // Every setting is known to the validator: a bad value is refused by name, not as
            // an unknown setting.
            let err = Settings::default().set(flag, "\u{0}bad").err();
            assert!(
                err.as_ref()
                    .is_none_or(|e| !e.starts_with("unknown setting")),
                "{flag}: {err:?}"
            );
        }
    }

    #[test]
    fn the_command_line_keeps_its_forms_and_the_last_value_wins() {
        let settings = from_args(&strings(&[
            "--max-rooms",
            "3",
            "--max-rooms=4",
            "--log",
            "debug",
            "--log-format=json",
        ]))
        .unwrap();
        assert_eq!(settings.chat.max_rooms_per_connection, 4);
        assert_eq!(settings.ops.log, Level::Debug);
        assert_eq!(settings.ops.log_format, LogFormat::Json);
        // A value that starts with '-' reaches the validator, which names the flag.
        let err = from_args(&strings(&["--message-rate", "-1"])).unwrap_err();
        assert!(
            err.contains("--message-rate") && err.contains("READREALM_MESSAGE_RATE"),
            "{err}"
        );
        let err = from_args(&strings(&["--log-format", "xml"])).unwrap_err();
        assert!(
            err.contains("--log-format") && err.contains("logfmt or json"),
            "{err}"
        );
        let err = from_args(&strings(&["--nope", "1"])).unwrap_err();
        assert!(err.contains("--nope"), "{err}");
        let err = from_args(&strings(&["--shards"])).unwrap_err();
        assert!(err.contains("--shards"), "{err}");
    }
}

/// The chat limits of docs/API.md, each configurable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatLimits {
    /// Rooms one connection may be in.
    pub max_rooms_per_connection: usize,
    /// Sustained `chatMessage`s per second per connection.
    pub message_rate: f64,
    /// Messages a connection may send at once before the rate applies.
    pub message_burst: f64,
    /// Longest content after trimming, in characters.
    pub max_content_chars: usize,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_rooms_per_connection: 100,
            message_rate: 10.0,
            message_burst: 20.0,
            max_content_chars: 4000,
        }
    }
}

/// The clock skew tolerated when no leeway is configured, in seconds.
pub const DEFAULT_JWT_LEEWAY_SECS: u64 = 30;

/// Token authentication (`--auth-jwt-*`, docs/API.md "Token authentication"; checked by
/// `crate::chat::auth`). Without a key file, connections are not authenticated and nothing
/// else here applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// `--auth-jwt-secret-file`: an HMAC secret (HS256/HS384/HS512), the file's bytes less one
    /// trailing `\n` or `\r\n`.
    pub secret_file: Option<std::path::PathBuf>,
    /// `--auth-jwt-public-key-file`: a PEM public key (RSA, EC P-256/P-384 or Ed25519).
    pub public_key_file: Option<std::path::PathBuf>,
    /// `--auth-jwt-issuer`: the `iss` every token must carry, when set.
    pub issuer: Option<String>,
    /// `--auth-jwt-audience`: a value the token's `aud` must hold, when set.
    pub audience: Option<String>,
    /// `--auth-jwt-leeway`: clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            secret_file: None,
            public_key_file: None,
            issuer: None,
            audience: None,
            leeway_secs: DEFAULT_JWT_LEEWAY_SECS,
        }
    }
}

/// Parse `--trusted-proxies`: addresses and CIDR blocks separated by commas (white space
/// around each is ignored; an empty string is the empty list). The error names the entry.
pub fn parse_trusted(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is not an address or CIDR block"))
        })
        .collect()
}
