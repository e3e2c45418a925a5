//! A cluster node's own threads, between the shards and Redis: the appender, the applier and
//! the keeper.
//!
//! - The **appender** takes what the home shards send at the end of their turns
//!   ([`Batch`]), drains everything queued, and appends it all in one round trip
//!   ([`Link::append`]); each batch's answer goes back through the caller's `answer`.
//! - The **applier** reads the whole log from this node's applied positions, in order, and
//!   hands each read to the caller's [`Apply`] (which stores it, positions in the same write,
//!   and then delivers it to the shards). A failed apply is read and applied again: applying
//!   is idempotent.
//! - The **keeper** refreshes this node's liveness key, appends the departures of the readers
//!   of nodes whose key expired (idempotent in Redis, so racing survivors need no lock), and
//!   trims the log to the retention.
//!
//! Owns these threads and the [`Status`] they report (`/health`, `/metrics`). Never runs on a
//! shard thread and never makes a shard wait on Redis; never retries an append (an append
//! whose outcome is unknown is answered as failed by the caller, and is applied if it landed).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{Append, Appended, ClusterError, Link, LogEntry, Settings, StreamId};

/// Most log entries read from Redis per partition and call.
pub const READ_COUNT: usize = 1000;
/// Longest a blocking read of the log waits for new entries before reading again.
const TAIL_BLOCK: Duration = Duration::from_millis(200);
/// Pause after a failed call to Redis before the next (the applier and the keeper).
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// How often the keeper looks for expired nodes.
const REAP_EVERY: Duration = Duration::from_secs(1);
/// How often, at most, the keeper trims the log to the retention (a quarter of the
/// retention when that is shorter).
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// What to do when Redis holds less of the log than a node applied (docs/OPERATIONS.md).
pub const REDIS_BEHIND_FIX: &str = "Redis lost acknowledged entries (restored from an older \
    AOF, or a replica that lagged was promoted): appending now would number messages again, so \
    this node refuses posts; restore Redis from its newest AOF or the replica that has everything";

/// Check that Redis holds at least what this node applied (`positions`, index = partition).
pub fn check_not_behind(link: &mut Link, positions: &[StreamId]) -> Result<(), ClusterError> {
    let newest = link.last_ids()?;
    for (p, (applied, newest)) in positions.iter().zip(&newest).enumerate() {
        if newest < applied {
            return Err(ClusterError::Malformed(format!(
                "partition {p}: Redis's newest entry is {newest} but this node applied through \
                 {applied}: {REDIS_BEHIND_FIX}"
            )));
        }
    }
    Ok(())
}

/// One home shard's turn of entries for the log, and whatever its answer needs (`R`).
pub struct Batch<R> {
    pub entries: Vec<Append>,
    pub reply: R,
}

/// What the applier does with each read: store it (with `positions`, each partition's newest
/// entry of the read, in the same write) and then deliver it. An error must come before any
/// delivery (nothing of the read stored or delivered).
pub trait Apply: Send + 'static {
    fn apply(
        &mut self,
        entries: Vec<LogEntry>,
        positions: &[(u32, StreamId)],
    ) -> Result<(), ApplyError>;
}

/// Why [`Apply::apply`] applied nothing of a read.
#[derive(Debug)]
pub enum ApplyError {
    /// It could not now (the store failed): logged, and the same entries are read and applied
    /// again after a pause.
    Failed(String),
    /// The read numbers a message with a room sequence this node already holds: Redis lost
    /// acknowledged entries and numbered again. Nothing more is applied or appended (the node
    /// is diverged, as when the keeper finds Redis's newest ids behind its positions).
    RedisBehind(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Failed(e) => f.write_str(e),
            ApplyError::RedisBehind(e) => write!(f, "{e}: {REDIS_BEHIND_FIX}"),
        }
    }
}

/// The cluster link's state, for `/health` and `/metrics`; shared by the threads.
#[derive(Debug)]
pub struct Status {
    /// This node's id (its data directory's).
    pub node: String,
    up: AtomicBool,
    appended: AtomicU64,
    applied: AtomicU64,
    append_failures: AtomicU64,
    reaped: AtomicU64,
    /// Redis holds less of some partition than this node applied (it lost acknowledged
    /// entries): appending would number messages again, so nothing is appended.
    diverged: AtomicBool,
    /// Per partition: the applied position and the newest id Redis holds (from the keeper).
    positions: Mutex<Vec<(StreamId, StreamId)>>,
}

impl Status {
    pub fn new(node: String, applied: &[StreamId]) -> Status {
        Status {
            node,
            up: AtomicBool::new(false),
            appended: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            append_failures: AtomicU64::new(0),
            reaped: AtomicU64::new(0),
            diverged: AtomicBool::new(false),
            positions: Mutex::new(applied.iter().map(|&p| (p, p)).collect()),
        }
    }

    /// Whether the last call to Redis, by any of the threads, succeeded.
    pub fn link_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                crate::log_info!("cluster_link_up", node = self.node);
            } else {
                crate::log_warn!("cluster_link_down", node = self.node);
            }
        }
    }

    /// Entries appended by this node, entries applied, appends failed (each answered
    /// `unavailable`), departures appended for dead nodes.
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (
            self.appended.load(Ordering::Relaxed),
            self.applied.load(Ordering::Relaxed),
            self.append_failures.load(Ordering::Relaxed),
            self.reaped.load(Ordering::Relaxed),
        )
    }

    /// Per partition: whether this node has applied everything Redis held at the keeper's
    /// last look (`lagging` = the partition's newest id is past the applied position).
    pub fn lag(&self) -> Vec<(StreamId, StreamId)> {
        self.positions.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn record_applied(&self, positions: &[(u32, StreamId)], entries: u64) {
        self.applied.fetch_add(entries, Ordering::Relaxed);
        if let Ok(mut all) = self.positions.lock() {
            for &(p, id) in positions {
                if let Some(slot) = all.get_mut(p as usize) {
                    slot.0 = id;
                    slot.1 = slot.1.max(id);
                }
            }
        }
    }

    /// Redis's newest ids, read after `applied` (the applied positions then) was taken: a
    /// newest below what was applied before it was read means Redis lost entries.
    fn record_newest(&self, newest: &[StreamId], applied: &[(StreamId, StreamId)]) {
        let Ok(mut all) = self.positions.lock() else {
            return;
        };
        for (p, ((slot, &id), before)) in all.iter_mut().zip(newest).zip(applied).enumerate() {
            if id < before.0 && !self.diverged.swap(true, Ordering::Relaxed) {
                crate::log_error!(
                    "cluster_redis_behind",
                    partition = p,
                    redis_newest = id,
                    applied = before.0,
                    fix = REDIS_BEHIND_FIX
                );
            }
            slot.1 = slot.1.max(id);
        }
    }

    /// The applier found Redis numbering again what this node holds (`detail` says where).
    fn found_redis_behind(&self, detail: &str) {
        if !self.diverged.swap(true, Ordering::Relaxed) {
            crate::log_error!(
                "cluster_redis_behind",
                found = detail,
                fix = REDIS_BEHIND_FIX
            );
        }
    }

    /// Whether Redis was found holding less than this node applied (posts are refused).
    pub fn diverged(&self) -> bool {
        self.diverged.load(Ordering::Relaxed)
    }
}

/// Start the appender: each drained set of batches is appended in one round trip and each
/// batch answered with its entries' places (in its order) or the error.
pub fn spawn_appender<R: Send + 'static>(
    settings: Settings,
    inbox: Receiver<Batch<R>>,
    status: Arc<Status>,
    mut answer: impl FnMut(R, Result<Vec<Appended>, ClusterError>) + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cluster-append".into())
        .spawn(move || {
            // An append Redis runs later than half the I/O timeout after it was sent is
            // refused there: by the full timeout its posts are answered `unavailable`.
            let grace = settings.io_timeout / 2;
            let mut clock = RedisClock::default();
            let mut link = match Link::lazy(settings) {
                Ok(link) => link,
                Err(e) => {
                    crate::log_error!("cluster_append_failed", cause = e);
                    return;
                }
            };
            while let Ok(first) = inbox.recv() {
                // Everything queued goes in this round trip: however slow Redis is, the queue
                // holds no more than what arrived during one call (each post is answered
                // within its deadline anyway).
                let mut batches = vec![first];
                batches.extend(inbox.try_iter());
                let mut entries = Vec::new();
                let mut replies = Vec::with_capacity(batches.len());
                for batch in batches {
                    replies.push((batch.reply, batch.entries.len()));
                    entries.extend(batch.entries);
                }
                let result = if status.diverged() {
                    Err(ClusterError::Malformed(REDIS_BEHIND_FIX.into()))
                } else {
                    let deadline = clock.deadline(&mut link, grace);
                    link.append_by(&entries, deadline)
                };
                status.set_up(!matches!(result, Err(ClusterError::Connection(_))));
                match result {
                    Ok(places) => {
                        status
                            .appended
                            .fetch_add(places.len() as u64, Ordering::Relaxed);
                        let mut places = places.into_iter();
                        for (reply, n) in replies {
                            answer(reply, Ok(places.by_ref().take(n).collect()));
                        }
                    }
                    Err(e) => {
                        status
                            .append_failures
                            .fetch_add(entries.len() as u64, Ordering::Relaxed);
                        crate::log_warn!(
                            "cluster_append_failed",
                            entries = entries.len(),
                            cause = e
                        );
                        for (reply, _) in replies {
                            answer(reply, Err(e.clone()));
                        }
                    }
                }
            }
        })
}

/// This node's estimate of Redis's clock (the one `TIME` and the stream ids use), measured
/// again every [`CLOCK_EVERY`].
#[derive(Default)]
struct RedisClock {
    /// Redis's Unix ms minus ours, and when that was measured.
    offset: Option<(i64, Instant)>,
}

/// How often the appender measures Redis's clock against its own.
const CLOCK_EVERY: Duration = Duration::from_secs(10);

impl RedisClock {
    /// Redis's time `grace` from now, in its Unix ms; None if its clock cannot be read (the
    /// append then goes without a deadline, and fails anyway if Redis is unreachable).
    fn deadline(&mut self, link: &mut Link, grace: Duration) -> Option<u64> {
        let fresh = self
            .offset
            .filter(|(_, at)| at.elapsed() < CLOCK_EVERY)
            .map(|(offset, _)| offset);
        let offset = match fresh {
            Some(offset) => offset,
            None => {
                let before = unix_ms();
                let redis = link.redis_time_ms().ok()?;
                let after = unix_ms();
                let offset = redis as i64 - ((before + after) / 2) as i64;
                self.offset = Some((offset, Instant::now()));
                offset
            }
        };
        let now = unix_ms() as i64 + offset;
        Some((now.max(0) as u64).saturating_add(grace.as_millis() as u64))
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Read every partition from `positions` until nothing is left, applying each read; for a
/// node's start, before it accepts clients. Returns the positions reached.
pub fn catch_up(
    link: &mut Link,
    mut positions: Vec<StreamId>,
    apply: &mut impl Apply,
) -> Result<Vec<StreamId>, ClusterError> {
    loop {
        let from: Vec<(u32, StreamId)> = positions
            .iter()
            .enumerate()
            .map(|(p, &id)| (p as u32, id))
            .collect();
        let entries = link.read(&from, READ_COUNT)?;
        if entries.is_empty() {
            return Ok(positions);
        }
        let reached = newest_per_partition(&entries);
        apply.apply(entries, &reached).map_err(|e| match e {
            ApplyError::Failed(e) => ClusterError::Redis(e),
            behind @ ApplyError::RedisBehind(_) => ClusterError::Malformed(behind.to_string()),
        })?;
        for (p, id) in reached {
            if let Some(slot) = positions.get_mut(p as usize) {
                *slot = id;
            }
        }
    }
}

/// Each partition's newest entry in `entries`.
fn newest_per_partition(entries: &[LogEntry]) -> Vec<(u32, StreamId)> {
    let mut out: Vec<(u32, StreamId)> = Vec::new();
    for entry in entries {
        match out.iter_mut().find(|(p, _)| *p == entry.partition) {
            Some(slot) => slot.1 = slot.1.max(entry.id),
            None => out.push((entry.partition, entry.id)),
        }
    }
    out
}

/// Start the applier from `positions` (index = partition). `behind` is called once if the
/// log was trimmed past a position (this node cannot go on: it must be seeded again); the
/// thread then ends.
pub fn spawn_applier(
    settings: Settings,
    mut positions: Vec<StreamId>,
    status: Arc<Status>,
    mut apply: impl Apply,
    stop: Arc<AtomicBool>,
    behind: impl FnOnce(ClusterError) + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cluster-apply".into())
        .spawn(move || {
            let mut link = match Link::lazy(settings) {
                Ok(link) => link,
                Err(e) => {
                    crate::log_error!("cluster_apply_failed", cause = e);
                    return;
                }
            };
            let mut failing_since: Option<Instant> = None;
            while !stop.load(Ordering::Relaxed) {
                let from: Vec<(u32, StreamId)> = positions
                    .iter()
                    .enumerate()
                    .map(|(p, &id)| (p as u32, id))
                    .collect();
                let entries = match link.tail(&from, READ_COUNT, TAIL_BLOCK) {
                    Ok(entries) => {
                        status.set_up(true);
                        failing_since = None;
                        entries
                    }
                    Err(e @ ClusterError::BehindRetention { .. }) => {
                        behind(e);
                        return;
                    }
                    Err(e) => {
                        status.set_up(false);
                        if failing_since.is_none() {
                            failing_since = Some(Instant::now());
                            crate::log_warn!("cluster_read_failed", cause = e);
                        }
                        std::thread::sleep(RETRY_PAUSE);
                        continue;
                    }
                };
                if entries.is_empty() {
                    continue;
                }
                if status.diverged() {
                    // Entries numbered again by a Redis that lost some would overwrite stored
                    // history: nothing more is applied until the operator restores Redis.
                    std::thread::sleep(RETRY_PAUSE);
                    continue;
                }
                let reached = newest_per_partition(&entries);
                let count = entries.len() as u64;
                match apply.apply(entries, &reached) {
                    Ok(()) => {}
                    Err(ApplyError::RedisBehind(detail)) => {
                        // Nothing of it is applied; the loop waits above from now on.
                        status.found_redis_behind(&detail);
                        continue;
                    }
                    Err(ApplyError::Failed(e)) => {
                        // The positions stay where they were: the same entries are read and
                        // applied again, so nothing of the log is ever skipped.
                        crate::log_error!("cluster_apply_failed", cause = e);
                        std::thread::sleep(RETRY_PAUSE);
                        continue;
                    }
                }
                status.record_applied(&reached, count);
                for (p, id) in reached {
                    if let Some(slot) = positions.get_mut(p as usize) {
                        *slot = id;
                    }
                }
            }
        })
}

/// Start the keeper for node `node`: its liveness key every `ttl / 3`, expired nodes' readers
/// reaped (their live records kept claimable for `live_window`), the log trimmed to
/// `retention` every minute (or quarter retention),
/// Redis's newest ids read
/// for the lag. Ends when `stop` is set (checked at least every `ttl / 3`).
pub fn spawn_keeper(
    settings: Settings,
    status: Arc<Status>,
    (ttl, retention, live_window): (Duration, Duration, Duration),
    stop: Arc<AtomicBool>,
    wake: Receiver<()>,
    lost: impl Fn() + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cluster-keep".into())
        .spawn(move || {
            let mut link = match Link::lazy(settings) {
                Ok(link) => link,
                Err(e) => {
                    crate::log_error!("cluster_keeper_failed", cause = e);
                    return;
                }
            };
            let beat = (ttl / 3).max(Duration::from_millis(100));
            let mut keeper = Keeper {
                next_reap: Instant::now(),
                next_trim: Instant::now(),
                up_since: None,
                first: true,
                marked: false,
            };
            while !stop.load(Ordering::Relaxed) {
                let result = keeper.keep(&mut link, &status, (ttl, retention, live_window), &lost);
                status.set_up(result.is_ok());
                if let Err(e) = result {
                    keeper.up_since = None;
                    crate::log_debug!("cluster_keeper_call_failed", cause = e);
                }
                match wake.recv_timeout(beat) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        })
}

/// The keeper's own state between its rounds.
struct Keeper {
    next_reap: Instant,
    next_trim: Instant,
    /// Since when its calls to Redis succeed (None after a failure).
    up_since: Option<Instant>,
    /// Before its first heartbeat of this run.
    first: bool,
    /// Whether it told the others that Redis lost entries.
    marked: bool,
}

impl Keeper {
    fn keep(
        &mut self,
        link: &mut Link,
        status: &Status,
        (ttl, retention, live_window): (Duration, Duration, Duration),
        lost: &impl Fn(),
    ) -> Result<(), ClusterError> {
        let was_alive = link.heartbeat(&status.node, ttl)?;
        let now = Instant::now();
        let up_since = *self.up_since.get_or_insert(now);
        // Whether Redis lost entries is settled before this node's readers are announced
        // again: those joins would give a Redis that lost everything new newest ids, which
        // hide it.
        let applied = status.lag();
        status.record_newest(&link.last_ids()?, &applied);
        // Redis lost entries: every node must know (it may not have applied them itself).
        if status.diverged() {
            if !self.marked {
                link.mark_redis_lost(&status.node)?;
                self.marked = true;
            }
        } else if let Some(found_by) = link.redis_lost()? {
            if !status.diverged.swap(true, Ordering::Relaxed) {
                crate::log_error!(
                    "cluster_redis_behind",
                    found_by = found_by,
                    fix = REDIS_BEHIND_FIX
                );
            }
        }
        if !was_alive && !std::mem::replace(&mut self.first, false) {
            // This node's key expired while it could not reach Redis: the others may have
            // reaped its readers, who are still here. They are announced again (a join of a
            // connection already in a roster changes nothing) unless Redis lost entries (then
            // nothing is appended any more).
            crate::log_warn!("cluster_node_key_lost", node = status.node);
            if !status.diverged() {
                lost();
            }
        }
        self.first = false;
        // After an outage, every node's key may have expired: reap only once the others had
        // a whole TTL to beat again.
        if now >= self.next_reap && now.duration_since(up_since) >= ttl {
            self.next_reap = now + REAP_EVERY;
            for node in link.expired_nodes()? {
                if node == status.node {
                    continue;
                }
                // Its connected readers stay claimable for the window (recovery elsewhere).
                link.retire_live(&node, live_window)?;
                let leaves = link.reap(&node)?;
                status.reaped.fetch_add(leaves, Ordering::Relaxed);
                crate::log_info!("cluster_node_reaped", node = node, leaves = leaves);
            }
        }
        if now >= self.next_trim {
            self.next_trim = now + TRIM_EVERY.min(retention / 4);
            let now_ms = link.redis_time_ms()?;
            let trimmed = link.trim(now_ms, retention)?;
            if trimmed > 0 {
                crate::log_info!("cluster_log_trimmed", entries = trimmed);
            }
        }
        Ok(())
    }
}

/// The file in the data directory that names its node (not in the store itself, so a data
/// directory seeded from another node's backup gets a name of its own).
pub const NODE_ID_FILE: &str = "CLUSTER_NODE_ID";

/// This data directory's node id: made (16 random hex digits) at its first cluster start and
/// kept in [`NODE_ID_FILE`], so a restarted node is the same node to the others.
pub fn node_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() && !text.contains('/') => {
            return Ok(text.trim().to_owned())
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
    let id = format!("{:016x}", u64::from_le_bytes(seed));
    std::fs::write(&path, format!("{id}\n"))?;
    Ok(id)
}

/// `/health` gains `"cluster": {"node", "link": "up"|"down", "max_lag_ms",
/// "lagging_partitions"}`; `/metrics` the `readrealm_cluster_*` families (docs/OPERATIONS.md).
/// A partition's lag is the time between its newest entry in Redis (at the keeper's last
/// look, every `ttl / 3`) and the newest this node applied: 0 when caught up.
impl crate::metrics::Section for Status {
    fn health(&self) -> (&'static str, serde_json::Value) {
        let lags: Vec<u64> = self
            .lag()
            .iter()
            .map(|(a, n)| n.ms.saturating_sub(a.ms).max(u64::from(n > a)))
            .collect();
        (
            "cluster",
            serde_json::json!({
                "node": self.node,
                "link": if self.link_up() { "up" } else { "down" },
                "max_lag_ms": lags.iter().copied().max().unwrap_or(0),
                "redis_lost_entries": self.diverged(),
                "lagging_partitions": lags.iter().filter(|&&l| l > 0).count(),
            }),
        )
    }

    fn metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let (appended, applied, failed, reaped) = self.counts();
        let mut family = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        family(
            "readrealm_cluster_link_up",
            "gauge",
            "1 when the node's last call to Redis succeeded, else 0.",
            u64::from(self.link_up()),
        );
        family(
            "readrealm_cluster_appended_total",
            "counter",
            "Log entries this node appended (messages and presence).",
            appended,
        );
        family(
            "readrealm_cluster_applied_total",
            "counter",
            "Log entries this node applied to its store, from every node.",
            applied,
        );
        family(
            "readrealm_cluster_append_failed_total",
            "counter",
            "Log entries whose append failed (posts answered unavailable).",
            failed,
        );
        family(
            "readrealm_cluster_reaped_total",
            "counter",
            "Departures this node appended for the readers of dead nodes.",
            reaped,
        );
        let _ = writeln!(
            out,
            "# HELP readrealm_cluster_lag_seconds Per partition: how far this node's applied \
             position is behind the newest entry in Redis.\n\
             # TYPE readrealm_cluster_lag_seconds gauge"
        );
        for (p, (applied, newest)) in self.lag().iter().enumerate() {
            let lag = newest.ms.saturating_sub(applied.ms) as f64 / 1000.0;
            let _ = writeln!(
                out,
                "readrealm_cluster_lag_seconds{{partition=\"{p}\"}} {lag}"
            );
        }
    }
}
