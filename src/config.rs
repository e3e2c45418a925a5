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

/// A duration as the duration settings that take units read it: a whole number with `us`,
/// `ms`, `s`, `m` (minutes), `h` or `d` (days) after it (`250us`, `5s`, `7d`); a bare number
/// counts milliseconds, as every duration flag does. `None` for anything else (a fraction, a
/// sign, two numbers, an unknown unit, an overflow).
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = value.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let seconds = |per: u64| number.checked_mul(per).map(Duration::from_secs);
    match unit.trim() {
        "us" | "µs" => Some(Duration::from_micros(number)),
        "" | "ms" => Some(Duration::from_millis(number)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => None,
    }
}

/// A duration as [`parse_duration`] reads it back, in the largest unit that holds it whole
/// (`7d`, `90m`, `1500ms`, `250us`; `0` for zero).
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0".to_owned();
    }
    let micros = duration.as_micros();
    for (unit, per) in [
        ("d", 86_400_000_000u128),
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ] {
        if micros.is_multiple_of(per) {
            return format!("{}{unit}", micros / per);
        }
    }
    format!("{micros}us")
}

/// A write delay as `--write-delay` takes it: `0`, or a duration as [`parse_duration`] reads
/// it (`250us`, `1ms`; a bare number counts milliseconds). `None` for anything else or more
/// than [`MAX_WRITE_DELAY`].
pub fn parse_write_delay(value: &str) -> Option<Duration> {
    parse_duration(value).filter(|delay| *delay <= MAX_WRITE_DELAY)
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
    /// Cluster mode: `None` (one process, no Redis) unless `--cluster-redis` is set.
    pub cluster: Option<ClusterSettings>,
    /// The `--cluster-*` values set so far, kept whether or not `--cluster-redis` is (a
    /// layer may give the knobs and a later one the URL); [`Settings::cluster`] is these with
    /// the URL once one is set.
    cluster_values: ClusterSettings,
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
            cluster: None,
            cluster_values: ClusterSettings::default(),
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
        env = "READREALM_CLUSTER_REDIS",
        value_name = "URL",
        help = "cluster mode: redis://[user:password@]host:port[/db] (rediss:// for TLS) of the \
                Redis holding the cluster's log; empty: one process, no Redis [default: none]"
    )]
    pub cluster_redis: Option<String>,
    #[arg(
        long,
        env = "READREALM_CLUSTER_REDIS_CA",
        value_name = "FILE",
        help = "cluster mode: PEM bundle of the CA certificates a rediss:// Redis's certificate \
                must chain to, trusted instead of the system roots; read at start [default: \
                none: the system roots]"
    )]
    pub cluster_redis_ca: Option<String>,
    #[arg(
        long,
        env = "READREALM_CLUSTER_PARTITIONS",
        value_name = "N",
        help = "cluster mode: partitions (Redis streams) the rooms are spread over, the same on \
                every node, 1 to 4096 [default: 64]"
    )]
    pub cluster_partitions: Option<String>,
    #[arg(
        long,
        env = "READREALM_CLUSTER_RETENTION",
        value_name = "DURATION",
        help = "cluster mode: how long the log keeps entries: ms, or with a unit s, m, h, d \
                (e.g. 36h) [default: 7d]"
    )]
    pub cluster_retention: Option<String>,
    #[arg(
        long,
        env = "READREALM_CLUSTER_NODE_TTL",
        value_name = "MS",
        help = "cluster mode: ms a node's liveness key lives; a dead node's readers are seen \
                leaving after about this long, at least 1000 [default: 5000]"
    )]
    pub cluster_node_ttl: Option<String>,
    #[arg(
        long,
        env = "READREALM_CLUSTER_TIMEOUT",
        value_name = "MS",
        help = "cluster mode: ms allowed to connect to Redis and for each call; a post answers \
                unavailable within about this when Redis is down [default: 1000]"
    )]
    pub cluster_timeout: Option<String>,
    #[arg(
        long,
        env = "READREALM_CLUSTER_MIN_REPLICAS",
        value_name = "N",
        help = "cluster mode: Redis replicas that must hold a post (WAIT) before it is \
                acknowledged [default: 0]"
    )]
    pub cluster_min_replicas: Option<String>,
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
            "--cluster-redis" if value.is_empty() => {
                self.cluster_values.redis_url.clear();
                self.cluster = None;
            }
            "--cluster-redis" => {
                self.cluster_values.redis_url = parse_redis_url(value).map_err(|what| {
                    format!(
                        "invalid {flag} (env {}): {:?} ({what})",
                        env_name(flag),
                        mask_redis_password(value)
                    )
                })?;
            }
            "--cluster-redis-ca" if value.is_empty() => self.cluster_values.redis_ca = None,
            "--cluster-redis-ca" => {
                // Read and checked now (a bad file stops the start, exit 2); the error names
                // the file and what is wrong with it, never what it holds.
                let ca = crate::cluster::tls::RedisCa::load(Path::new(value))
                    .map_err(|e| format!("invalid {flag} (env {}): {e}", env_name(flag)))?;
                self.cluster_values.redis_ca = Some(ca);
            }
            "--cluster-partitions" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_CLUSTER_PARTITIONS).contains(&n) => {
                    self.cluster_values.partitions = n
                }
                _ => return Err(bad("a whole number from 1 to 4096")),
            },
            "--cluster-retention" => {
                self.cluster_values.retention = parse_duration(value)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad("a positive duration: ms, or e.g. 90s, 36h, 7d"))?
            }
            "--cluster-node-ttl" => {
                self.cluster_values.node_ttl = parse_duration(value)
                    .filter(|d| *d >= MIN_CLUSTER_NODE_TTL)
                    .ok_or_else(|| bad("a number of milliseconds, at least 1000"))?
            }
            "--cluster-timeout" => {
                self.cluster_values.timeout = parse_duration(value)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad("a positive number of milliseconds"))?
            }
            "--cluster-min-replicas" => match value.parse::<u32>() {
                Ok(n) => self.cluster_values.min_replicas = n,
                _ => return Err(bad("a whole number, 0 or more")),
            },
            "--client-js" => self.ops.client_js = Some(path(value)?),
            "--config" => self.ops.config = Some(path(value)?),
            _ => return Err(format!("unknown setting {flag}")),
        }
        if flag.starts_with("--cluster-") {
            self.cluster =
                (!self.cluster_values.redis_url.is_empty()).then(|| self.cluster_values.clone());
        }
        Ok(())
    }

    /// The `--cluster-*` values as set, whether or not `--cluster-redis` is (then the URL is
    /// empty): what `--print-config` shows. [`Settings::cluster`] is what a node runs with.
    pub fn cluster_values(&self) -> &ClusterSettings {
        &self.cluster_values
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

    #[test]
    fn durations_take_units_and_read_back() {
        for (text, duration) in [
            ("0", Duration::ZERO),
            ("1500", Duration::from_millis(1500)),
            ("250us", Duration::from_micros(250)),
            ("90s", Duration::from_secs(90)),
            ("15m", Duration::from_secs(900)),
            ("36h", Duration::from_secs(36 * 3600)),
            ("7d", Duration::from_secs(7 * 86_400)),
        ] {
            assert_eq!(parse_duration(text), Some(duration), "{text}");
            assert_eq!(
                parse_duration(&format_duration(duration)),
                Some(duration),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "90m");
        for bad in ["", "d", "-1d", "1.5h", "1w", "1 2", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_duration("213503982334602d"), None, "overflow");
    }

    #[test]
    fn cluster_mode_is_off_unless_a_redis_url_is_set() {
        let settings = from_args(&[]).unwrap();
        assert_eq!(settings.cluster, None);
        // The knobs alone do not make a cluster member.
        let settings = from_args(&strings(&["--cluster-partitions", "8"])).unwrap();
        assert_eq!(settings.cluster, None);
        assert_eq!(settings.cluster_values().partitions, 8);
        // An empty URL (e.g. READREALM_CLUSTER_REDIS= over a file) turns it off again.
        let settings = from_args(&strings(&[
            "--cluster-redis",
            "redis://10.0.0.9:6379",
            "--cluster-redis=",
        ]))
        .unwrap();
        assert_eq!(settings.cluster, None);
    }

    #[test]
    fn cluster_flags_fill_the_cluster_settings_in_any_order() {
        let settings =
            from_args(&strings(&["--cluster-redis", "redis://10.0.0.9:6379/2"])).unwrap();
        assert_eq!(
            settings.cluster,
            Some(ClusterSettings {
                redis_url: "redis://10.0.0.9:6379/2".into(),
                redis_ca: None,
                partitions: 64,
                retention: Duration::from_secs(7 * 24 * 3600),
                node_ttl: Duration::from_millis(5000),
                timeout: Duration::from_millis(1000),
                min_replicas: 0,
            })
        );
        // Knobs before and after the URL both count (apply_flags goes in flag order, and a
        // file may give the knobs while the environment gives the URL).
        let mut settings = Settings::default();
        settings.set("--cluster-partitions", "4096").unwrap();
        settings.set("--cluster-retention", "36h").unwrap();
        settings
            .set("--cluster-redis", "redis://app:pw@redis.internal:6380")
            .unwrap();
        settings.set("--cluster-node-ttl", "1000").unwrap();
        settings.set("--cluster-timeout", "250").unwrap();
        settings.set("--cluster-min-replicas", "2").unwrap();
        let cluster = settings.cluster.clone().unwrap();
        assert_eq!(cluster.redis_url, "redis://app:pw@redis.internal:6380");
        assert_eq!(cluster.partitions, 4096);
        assert_eq!(cluster.retention, Duration::from_secs(36 * 3600));
        assert_eq!(cluster.node_ttl, Duration::from_millis(1000));
        assert_eq!(cluster.timeout, Duration::from_millis(250));
        assert_eq!(cluster.min_replicas, 2);
        assert_eq!(settings.cluster_values(), &cluster);
    }

    #[test]
    fn bad_cluster_values_are_refused_naming_the_flag() {
        for (flag, value, what) in [
            ("--cluster-partitions", "0", "from 1 to 4096"),
            ("--cluster-partitions", "4097", "from 1 to 4096"),
            ("--cluster-partitions", "many", "from 1 to 4096"),
            ("--cluster-retention", "0", "positive duration"),
            ("--cluster-retention", "1w", "positive duration"),
            ("--cluster-node-ttl", "999", "at least 1000"),
            ("--cluster-node-ttl", "-5000", "at least 1000"),
            ("--cluster-timeout", "0", "positive"),
            ("--cluster-min-replicas", "-1", "0 or more"),
            ("--cluster-redis", "localhost:6379", "redis:// or rediss://"),
            (
                "--cluster-redis",
                "http://localhost:6379",
                "redis:// or rediss://",
            ),
            (
                "--cluster-redis",
                "unix:///run/redis.sock",
                "redis:// or rediss://",
            ),
            ("--cluster-redis", "redis://", "connect"),
            ("--cluster-redis", "redis://0.0.0.0:6379", "wildcard"),
            ("--cluster-redis", "redis://localhost:6379/db", "database"),
            ("--cluster-redis", "redis://localhost:99999", "redis://"),
        ] {
            let err = from_args(&strings(&[flag, value])).unwrap_err();
            assert!(
                err.contains(flag) && err.contains(&env_name(flag)) && err.contains(what),
                "{flag} {value}: {err}"
            );
        }
    }

    #[test]
    fn rediss_is_accepted_and_the_redis_ca_is_read_at_start() {
        // The `redis` crate is built with rustls (Cargo.toml): a rediss:// URL is accepted.
        let settings = from_args(&strings(&[
            "--cluster-redis",
            "rediss://redis.internal:6380",
        ]))
        .unwrap();
        let cluster = settings.cluster.expect("a cluster member");
        assert_eq!(cluster.redis_url, "rediss://redis.internal:6380");
        assert_eq!(cluster.redis_ca, None, "the system roots by default");

        // A real CA bundle (two certificates) is read and kept with its path.
        let dir = std::env::temp_dir().join(format!("rr-config-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_pem = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.self_signed(&key).unwrap().pem()
        };
        let bundle = dir.join("ca.pem");
        std::fs::write(&bundle, ca_pem("one") + &ca_pem("two")).unwrap();
        let path = bundle.to_str().unwrap();
        let settings = from_args(&strings(&[
            "--cluster-redis-ca",
            path,
            "--cluster-redis",
            "rediss://redis.internal:6380",
        ]))
        .unwrap();
        let ca = settings.cluster.unwrap().redis_ca.expect("the CA is kept");
        assert_eq!((ca.path(), ca.certificates()), (bundle.as_path(), 2));
        // An empty value turns it off again (back to the system roots).
        let settings = from_args(&strings(&[
            "--cluster-redis",
            "rediss://redis.internal:6380",
            "--cluster-redis-ca",
            "",
        ]))
        .unwrap();
        assert_eq!(settings.cluster.unwrap().redis_ca, None);

        // A file that is no CA bundle is refused naming the setting and the file, never
        // quoting what it holds.
        let bad = dir.join("bad.pem");
        std::fs::write(&bad, "s3cret-not-a-certificate\n").unwrap();
        for file in [bad.clone(), dir.join("missing.pem")] {
            let err =
                from_args(&strings(&["--cluster-redis-ca", file.to_str().unwrap()])).unwrap_err();
            assert!(
                err.contains("--cluster-redis-ca")
                    && err.contains("READREALM_CLUSTER_REDIS_CA")
                    && err.contains(file.to_str().unwrap())
                    && !err.contains("s3cret"),
                "{err}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_redis_password_is_never_shown() {
        let url = "redis://app:hunter2-secret@redis.internal:6380/3";
        assert_eq!(
            mask_redis_password(url),
            "redis://app:***@redis.internal:6380/3"
        );
        assert_eq!(
            mask_redis_password("redis://:hunter2-secret@redis.internal"),
            "redis://:***@redis.internal"
        );
        assert_eq!(
            mask_redis_password("redis://redis.internal:6380"),
            "redis://redis.internal:6380"
        );
        assert!(!mask_redis_password("http://a:hunter2-secret@x").contains("hunter2"));
        let settings = from_args(&strings(&["--cluster-redis", url])).unwrap();
        let cluster = settings.cluster.as_ref().unwrap();
        assert_eq!(
            cluster.redis_url, url,
            "the node connects with the real one"
        );
        assert!(!format!("{settings:?}").contains("hunter2"), "{settings:?}");
        assert!(format!("{cluster:?}").contains("redis://app:***@redis.internal:6380/3"));
        // A bad URL's error shows it masked too.
        for bad in [
            "redis://app:hunter2-secret@0.0.0.0:6379",
            "redis://app:hunter2-secret@localhost/x",
            "https://app:hunter2-secret@localhost",
        ] {
            let err = from_args(&strings(&["--cluster-redis", bad])).unwrap_err();
            assert!(
                err.contains("--cluster-redis") && !err.contains("hunter2"),
                "{err}"
            );
        }
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

/// The partition count a cluster is created with unless `--cluster-partitions` says otherwise.
pub const DEFAULT_CLUSTER_PARTITIONS: u32 = 64;
/// The most partitions `--cluster-partitions` accepts (each is one Redis stream every node
/// reads).
pub const MAX_CLUSTER_PARTITIONS: u32 = 4096;
/// How long the cluster's log keeps entries unless `--cluster-retention` says otherwise: 7 days.
pub const DEFAULT_CLUSTER_RETENTION: Duration = Duration::from_secs(7 * 86_400);
/// A node's liveness key lifetime unless `--cluster-node-ttl` says otherwise.
pub const DEFAULT_CLUSTER_NODE_TTL: Duration = Duration::from_millis(5_000);
/// The shortest `--cluster-node-ttl` accepted: below it a busy node's heartbeat could miss it.
pub const MIN_CLUSTER_NODE_TTL: Duration = Duration::from_millis(1_000);
/// The bound on connecting to Redis and on each call unless `--cluster-timeout` says otherwise.
pub const DEFAULT_CLUSTER_TIMEOUT: Duration = Duration::from_millis(1_000);

/// What `--print-config` and the logs show in place of a Redis password.
pub const MASKED_PASSWORD: &str = "***";

/// Cluster mode (issue 13; docs/OPERATIONS.md "Cluster"): present when --cluster-redis is set.
///
/// `Debug` shows the URL with its password masked ([`ClusterSettings::redis_url_masked`]), so
/// a settings dump in a log never holds the secret.
#[cfg(feature = "store")]
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// --cluster-redis: redis://[user:pass@]host:port[/db] or rediss://... for TLS (checked
    /// by [`parse_redis_url`]; the password is the secret: show [`Self::redis_url_masked`]).
    pub redis_url: String,
    /// --cluster-redis-ca FILE (default none: the system roots): the CA bundle, read at start,
    /// that a rediss:// server's certificate must chain to (`crate::cluster::tls`).
    pub redis_ca: Option<crate::cluster::tls::RedisCa>,
    /// --cluster-partitions (default 64, 1..=4096): every node must use the same; checked at start.
    pub partitions: u32,
    /// --cluster-retention (default 7d; a bare number is ms, or `ms`, `s`, `m`, `h`, `d`
    /// suffixes, [`parse_duration`]): how long the log keeps entries.
    pub retention: Duration,
    /// --cluster-node-ttl (default 5000 ms, min 1000): a node's liveness key lifetime; readers of
    /// a node whose key expired are seen leaving after about this long.
    pub node_ttl: Duration,
    /// --cluster-timeout (default 1000 ms): bound on connecting to Redis and on each call; a post
    /// answers `unavailable` within about this when Redis is unreachable.
    pub timeout: Duration,
    /// --cluster-min-replicas (default 0): WAIT for this many Redis replicas before acking a post.
    pub min_replicas: u32,
}

#[cfg(feature = "store")]
impl Default for ClusterSettings {
    /// The defaults above, with no URL (so not yet a cluster member).
    fn default() -> Self {
        ClusterSettings {
            redis_url: String::new(),
            redis_ca: None,
            partitions: DEFAULT_CLUSTER_PARTITIONS,
            retention: DEFAULT_CLUSTER_RETENTION,
            node_ttl: DEFAULT_CLUSTER_NODE_TTL,
            timeout: DEFAULT_CLUSTER_TIMEOUT,
            min_replicas: 0,
        }
    }
}

#[cfg(feature = "store")]
impl ClusterSettings {
    /// [`Self::redis_url`] with its password, if any, replaced by [`MASKED_PASSWORD`]: what
    /// `--print-config`, errors and logs show.
    pub fn redis_url_masked(&self) -> String {
        mask_redis_password(&self.redis_url)
    }

    /// Whether [`Self::redis_url`] holds a password (which [`Self::redis_url_masked`] hides).
    pub fn has_password(&self) -> bool {
        redis::parse_redis_url(&self.redis_url).is_some_and(|url| url.password().is_some())
    }
}

#[cfg(feature = "store")]
impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("redis_url", &self.redis_url_masked())
            .field("redis_ca", &self.redis_ca)
            .field("partitions", &self.partitions)
            .field("retention", &self.retention)
            .field("node_ttl", &self.node_ttl)
            .field("timeout", &self.timeout)
            .field("min_replicas", &self.min_replicas)
            .finish()
    }
}

/// Check a `--cluster-redis` URL: `redis://` or `rediss://`, with a host (not a wildcard
/// address), an optional port and database number, as the `redis` crate will connect with it
/// (`redis::IntoConnectionInfo`). The error says what is wrong and never holds the URL itself
/// (it may hold a password): the caller names the setting and shows the URL masked.
#[cfg(feature = "store")]
pub fn parse_redis_url(value: &str) -> Result<String, String> {
    use redis::IntoConnectionInfo as _;
    if !(value.starts_with("redis://") || value.starts_with("rediss://")) {
        return Err("a URL starting with redis:// or rediss://".to_owned());
    }
    redis::parse_redis_url(value).ok_or("not a URL like redis://[user:password@]host:6379[/db]")?;
    value
        .into_connection_info()
        .map_err(|e| format!("not a Redis URL this server can connect with: {e}"))?;
    Ok(value.to_owned())
}

/// `url` with the password of its user part, if it has one, replaced by [`MASKED_PASSWORD`]
/// (`redis://app:s3cret@db:6379/0` → `redis://app:***@db:6379/0`); unchanged without one. A
/// value that is not a Redis URL but holds an `@` is shown as `(hidden: not a Redis URL)`, since
/// where its password ends cannot be known.
#[cfg(feature = "store")]
pub fn mask_redis_password(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(mut parsed) if parsed.password().is_some() => {
            match parsed.set_password(Some(MASKED_PASSWORD)) {
                Ok(()) => parsed.to_string(),
                Err(()) => "(hidden: holds a password)".to_owned(),
            }
        }
        Some(_) => url.to_owned(),
        None if url.contains('@') => "(hidden: not a Redis URL)".to_owned(),
        None => url.to_owned(),
    }
}
