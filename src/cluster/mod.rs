//! Cluster mode's log on Redis (issue 13), standalone: the layer the shards will use to put
//! each room's messages and presence into one ordered, numbered log shared by every node.
//!
//! Owns the connection to Redis (bounded connect/read/write timeouts, reconnection at the
//! next call after a failure, the partition count checked at each connect) and the typed
//! errors. The jobs are in submodules: [`partition`] (book → partition, key names),
//! [`entry`] (stream ids and log entries, decoded and checked), [`append`] (one Lua script per
//! partition, every partition of a turn in one pipeline, rosters kept with the entries,
//! `WAIT` for replicas; seeding a room's counter), [`tail`] (reading partitions from
//! positions; their last ids), [`roster`] (a partition's roster with the position it is true
//! at), [`reap`] (a dead node's readers' leaves), [`retention`] (trimming by time; "behind
//! retention" detection is in `tail`), [`liveness`] (node heartbeats), [`tls`] (`rediss://`:
//! the CA bundle and the client). Never touches the local store or the shards, never blocks
//! longer than its settings say, and never retries a write on its own (a retried append could
//! number a message twice: the caller decides).

pub mod append;
pub mod entry;
pub mod liveness;
pub mod node;
pub mod partition;
pub mod reap;
pub mod retention;
pub mod roster;
pub mod sessions;
pub mod tail;
pub mod tls;

mod scripts;

use std::time::Duration;

use redis::{Client, Connection, RedisError};

pub use append::{Append, Appended};
pub use entry::{Entry, LogEntry, StreamId};
pub use partition::partition_of;
pub use roster::{RosterEntry, Snapshot};

/// How to reach Redis and what the cluster must agree on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `redis://[user:pass@]host:port[/db]`, or `rediss://…` for TLS (server certificate
    /// checked against `ca`, else the system roots; [`tls`]).
    pub url: String,
    /// `--cluster-redis-ca`: the CA bundle a `rediss://` server's certificate must chain to,
    /// instead of the system roots; refused with a `redis://` URL.
    pub ca: Option<tls::RedisCa>,
    /// The number of partitions (streams); every node must use the one Redis holds.
    pub partitions: u32,
    /// Bound on opening the TCP connection.
    pub connect_timeout: Duration,
    /// Bound on each read and write of a call (a blocking read adds its block time).
    pub io_timeout: Duration,
    /// Replicas that must acknowledge an append (`WAIT`, bounded by `io_timeout`) before it
    /// succeeds; 0 waits for none (`--cluster-min-replicas`, issue 13).
    pub min_replicas: u32,
}

/// A cluster-layer failure. The caller answers `unavailable` for a post on any of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterError {
    /// Redis unreachable, the connection dropped or a timeout passed; the next call
    /// reconnects. An append that failed so may or may not be in the log.
    Connection(String),
    /// A script failed in Redis (a bug, or a key of the wrong type).
    Script(String),
    /// Redis holds another partition count than this node's setting.
    PartitionMismatch { redis: u32, ours: u32 },
    /// Entries after `position` of `partition` were trimmed (the newest trimmed is
    /// `trimmed_through`): this node cannot catch up from the log and must be seeded from a
    /// live node's backup.
    BehindRetention {
        partition: u32,
        position: StreamId,
        trimmed_through: StreamId,
    },
    /// Redis answered something this layer did not write (a foreign or corrupt entry).
    Malformed(String),
    /// `WAIT` saw only `got` of the `wanted` replicas acknowledge an append within the I/O
    /// timeout: the entries may be in the log (and will be applied) but are not on enough
    /// replicas to survive losing the primary.
    Replicas { wanted: u32, got: u32 },
    /// Any other error answered by Redis or the client (bad URL, authentication, …).
    Redis(String),
}

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterError::Connection(e) => write!(f, "cluster log: Redis connection: {e}"),
            ClusterError::Script(e) => write!(f, "cluster log: script failed in Redis: {e}"),
            ClusterError::PartitionMismatch { redis, ours } => write!(
                f,
                "cluster log: Redis holds {redis} partitions but this node is set to {ours}; \
                 every node must use the cluster's partition count"
            ),
            ClusterError::BehindRetention {
                partition,
                position,
                trimmed_through,
            } => write!(
                f,
                "cluster log: partition {partition} was trimmed through {trimmed_through}, past \
                 this node's position {position}: seed the data directory from a live node's \
                 `readrealm-chat backup`"
            ),
            ClusterError::Malformed(e) => write!(f, "cluster log: unexpected data in Redis: {e}"),
            ClusterError::Replicas { wanted, got } => write!(
                f,
                "cluster log: only {got} of {wanted} replicas acknowledged in time; the entries \
                 may be in the log but not on enough replicas"
            ),
            ClusterError::Redis(e) => write!(f, "cluster log: Redis: {e}"),
        }
    }
}

impl std::error::Error for ClusterError {}

impl From<RedisError> for ClusterError {
    fn from(e: RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            ClusterError::Connection(tls::explain(e.to_string()))
        } else {
            ClusterError::Redis(e.to_string())
        }
    }
}

/// One blocking connection to Redis, opened lazily and again after a connection failure.
pub struct Link {
    client: Client,
    settings: Settings,
    connection: Option<Connection>,
}

impl Link {
    /// A link to `settings.url`, connected and checked now: the partition count is set in
    /// `rr:meta` if the cluster is new, else compared (`PartitionMismatch`).
    pub fn connect(settings: Settings) -> Result<Link, ClusterError> {
        let client = tls::client(&settings.url, settings.ca.as_ref())?;
        let mut link = Link {
            client,
            settings,
            connection: None,
        };
        link.connection()?;
        Ok(link)
    }

    /// A link to `settings.url` that connects at its first call (a node whose Redis is down
    /// at start still starts its threads; they reconnect by themselves). Fails only on a URL
    /// the client cannot use (or a CA with a `redis://` URL).
    pub fn lazy(settings: Settings) -> Result<Link, ClusterError> {
        let client = tls::client(&settings.url, settings.ca.as_ref())?;
        Ok(Link {
            client,
            settings,
            connection: None,
        })
    }

    /// The settings the link was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The number of partitions (checked against Redis at each connect).
    pub fn partitions(&self) -> u32 {
        self.settings.partitions
    }

    /// Run `call` on the connection (opening it first if needed); a connection error drops
    /// the connection so the next call reconnects.
    pub(crate) fn with<T>(
        &mut self,
        call: impl FnOnce(&mut Connection) -> Result<T, ClusterError>,
    ) -> Result<T, ClusterError> {
        let connection = self.connection()?;
        let result = call(connection);
        if let Err(ClusterError::Connection(_)) = result {
            self.connection = None;
        }
        result
    }

    /// As [`Link::with`], with the connection's read timeout set to `timeout` for this call
    /// (a command that waits in Redis, as `WAIT`, needs its wait more), restored to
    /// `io_timeout` after it if the connection is still open.
    pub(crate) fn with_read_timeout<T>(
        &mut self,
        timeout: Duration,
        call: impl FnOnce(&mut Connection) -> Result<T, ClusterError>,
    ) -> Result<T, ClusterError> {
        let result = self.with(|connection| {
            connection.set_read_timeout(Some(timeout))?;
            call(connection)
        });
        let io_timeout = self.settings.io_timeout;
        let restored = self.set_read_timeout(io_timeout);
        let value = result?;
        restored?;
        Ok(value)
    }

    /// Set the read timeout of the open connection (a blocking read needs its block time
    /// more). Without one there is nothing to set: a new connection gets `io_timeout`.
    pub(crate) fn set_read_timeout(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        if let Some(connection) = self.connection.as_mut() {
            if let Err(e) = connection.set_read_timeout(Some(timeout)) {
                self.connection = None;
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn connection(&mut self) -> Result<&mut Connection, ClusterError> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.open()?,
        };
        Ok(self.connection.insert(connection))
    }

    fn open(&self) -> Result<Connection, ClusterError> {
        let mut connection = self
            .client
            .get_connection_with_timeout(self.settings.connect_timeout)?;
        connection.set_read_timeout(Some(self.settings.io_timeout))?;
        connection.set_write_timeout(Some(self.settings.io_timeout))?;
        check_partitions(&mut connection, self.settings.partitions)?;
        scripts::load_all(&mut connection)?;
        Ok(connection)
    }
}

/// Set `rr:meta partitions` if absent, then compare it with `ours`.
fn check_partitions(connection: &mut Connection, ours: u32) -> Result<(), ClusterError> {
    let (_, held): (i64, Option<String>) = redis::pipe()
        .cmd("HSETNX")
        .arg(partition::META_KEY)
        .arg(partition::META_PARTITIONS)
        .arg(ours)
        .cmd("HGET")
        .arg(partition::META_KEY)
        .arg(partition::META_PARTITIONS)
        .query(connection)?;
    let held = held.ok_or_else(|| ClusterError::Malformed("rr:meta has no partitions".into()))?;
    let redis: u32 = held
        .parse()
        .map_err(|_| ClusterError::Malformed(format!("rr:meta partitions = {held:?}")))?;
    if redis == ours {
        Ok(())
    } else {
        Err(ClusterError::PartitionMismatch { redis, ours })
    }
}
