//! Operational counters and gauges, rendered for `GET /metrics` (Prometheus text format 0.0.4)
//! and summarised for `GET /health`.
//!
//! Owns the numbers, not the routes. Each shard has its own cache-line-aligned
//! [`ShardMetrics`] of relaxed `AtomicU64`s: the shard thread (and the application running on
//! it) adds to its own block only, so counting is an uncontended atomic add with no lock, no
//! allocation and no false sharing between shards. A scrape reads every block and adds them
//! up; totals may be a few events apart from one another, which monitoring tolerates.
//!
//! Why not a metrics crate (`prometheus`, `metrics`): its cost is in the two things this design
//! avoids, measured by `cargo bench --locked --bench counters` (benches/RESULTS.md, "Counters";
//! medians on the 2-core test machine, 2026-11-30). A plain counter costs the same either way
//! (ours 9.4 ns, `prometheus::IntCounter::inc` 9.0 ns). A labelled one, the crate's idiom for
//! errors by code and closes by reason, hashes its labels and takes a read lock per increment:
//! `IntCounterVec::with_label_values(code).inc()` 48.4 ns against [`ShardMetrics::error`]'s
//! 7.2 ns. And one process-wide counter is one cache line bounced between the shards: with two
//! threads counting at once, 23.4 ns per increment shared against 11.1 ns per-shard (130.5 ns
//! for the shared labelled family). Resolving a crate handle per label per shard would match
//! our cost, and would be this design with a registry on top.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::engineio::session::CloseReason;
use crate::engineio::sid::MAX_SHARDS;
use crate::engineio::violation::Violation;

/// The chat's error codes (docs/API.md), in label order; anything else counts as `other`.
pub const ERROR_CODES: [&str; 7] = [
    "invalid_payload",
    "not_in_room",
    "identity_mismatch",
    "too_many_rooms",
    "rate_limited",
    "unavailable",
    "other",
];

/// What became of connection state recovery attempts and kept readers, as labels: a
/// reconnection `recovered`, or started fresh for one of the reasons after it
/// (`chat::recovery::Fresh`); a dropped reader `kept`; a kept one whose `window_ended`.
pub const RECOVERY_OUTCOMES: [&str; 7] = [
    "recovered",
    "unknown_pid",
    "other_reader",
    "bad_offset",
    "gap_too_long",
    "kept",
    "window_ended",
];

/// Why sessions ended, as metric labels (see [`CloseReason`]).
pub const DISCONNECT_REASONS: [&str; 5] = [
    "client_close",
    "ping_timeout",
    "protocol_error",
    "transport_close",
    "server_close",
];

/// What a dropped cross-shard bus message was, as labels (`server::bus::BusMessage::kind`).
pub const BUS_DROP_KINDS: [&str; 5] = ["hand_off", "broadcast", "emit", "forward", "shutdown"];

/// Upper bounds of the store write latency buckets, in microseconds (+Inf follows).
pub const WRITE_BUCKETS_US: [u64; 13] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Engine.IO transports, as labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportLabel {
    Polling = 0,
    WebSocket = 1,
}

const TRANSPORTS: [&str; 2] = ["polling", "websocket"];

impl TransportLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportLabel::Polling => "polling",
            TransportLabel::WebSocket => "websocket",
        }
    }
}

/// Where an index out of range would count (the label enums never produce one): nothing
/// renders it.
static SPARE: AtomicU64 = AtomicU64::new(0);

/// Counter `index` of `counters`, or [`SPARE`] past the end.
fn slot(counters: &[AtomicU64], index: usize) -> &AtomicU64 {
    counters.get(index).unwrap_or(&SPARE)
}

/// `N` counters (arrays of more than 32 have no derived `Default`).
#[derive(Debug)]
struct Counters<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// One shard's numbers. Aligned to 128 bytes (two cache lines, for adjacent-line prefetch) so
/// two shards never write the same line.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Open Engine.IO sessions, by transport (gauges).
    sessions: [AtomicU64; 2],
    /// Sessions opened, by the transport they started on.
    sessions_opened: [AtomicU64; 2],
    /// Polling sessions upgraded to WebSocket.
    upgrades: AtomicU64,
    /// Open TCP connections on the shard (sampled every loop turn).
    tcp_connections: AtomicU64,
    /// Rooms with at least one member on the shard (sampled every loop turn).
    rooms: AtomicU64,
    joins: AtomicU64,
    messages_stored: AtomicU64,
    /// Frames of room broadcasts handed to members (one per member per broadcast).
    deliveries: AtomicU64,
    errors: [AtomicU64; ERROR_CODES.len()],
    disconnects: [AtomicU64; DISCONNECT_REASONS.len()],
    /// Connection state recovery, by [`RECOVERY_OUTCOMES`].
    recoveries: [AtomicU64; RECOVERY_OUTCOMES.len()],
    /// Sessions closed for a protocol error, by the rule broken ([`Violation::index`]).
    violations: Counters<{ Violation::COUNT }>,
    /// Cross-shard bus messages this shard dropped (a full or ended inbox), by
    /// [`BUS_DROP_KINDS`].
    bus_drops: [AtomicU64; BUS_DROP_KINDS.len()],
    write_buckets: [AtomicU64; WRITE_BUCKETS_US.len() + 1],
    write_sum_us: AtomicU64,
    write_count: AtomicU64,
    /// Time spent handling events (from poll's return to the end of the turn).
    busy_ns: AtomicU64,
    turns: AtomicU64,
}

impl ShardMetrics {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn session_opened(&self, transport: TransportLabel) {
        Self::add(slot(&self.sessions, transport as usize), 1);
        Self::add(slot(&self.sessions_opened, transport as usize), 1);
    }

    pub fn session_upgraded(&self) {
        slot(&self.sessions, TransportLabel::Polling as usize).fetch_sub(1, Relaxed);
        Self::add(slot(&self.sessions, TransportLabel::WebSocket as usize), 1);
        Self::add(&self.upgrades, 1);
    }

    pub fn session_closed(&self, transport: TransportLabel, reason: CloseReason) {
        slot(&self.sessions, transport as usize).fetch_sub(1, Relaxed);
        let index = match reason {
            CloseReason::ClientClose => 0,
            CloseReason::PingTimeout => 1,
            CloseReason::ProtocolError(violation) => {
                if let Some(counter) = self.violations.0.get(violation.index()) {
                    Self::add(counter, 1);
                }
                2
            }
            CloseReason::TransportClose => 3,
            CloseReason::ServerClose => 4,
        };
        Self::add(slot(&self.disconnects, index), 1);
    }

    pub fn joined(&self) {
        Self::add(&self.joins, 1);
    }

    pub fn delivered(&self, n: u64) {
        Self::add(&self.deliveries, n);
    }

    /// An error answered with `code` (one of [`ERROR_CODES`]).
    pub fn error(&self, code: &str) {
        let index = ERROR_CODES
            .iter()
            .position(|c| *c == code)
            .unwrap_or(ERROR_CODES.len() - 1);
        Self::add(slot(&self.errors, index), 1);
    }

    /// A connection state recovery event, `outcome` one of [`RECOVERY_OUTCOMES`] (anything
    /// else is not counted).
    pub fn recovery(&self, outcome: &str) {
        if let Some(index) = RECOVERY_OUTCOMES.iter().position(|o| *o == outcome) {
            Self::add(slot(&self.recoveries, index), 1);
        }
    }

    /// A bus message of `kind` (one of [`BUS_DROP_KINDS`]) dropped: its inbox was full or
    /// its shard had ended.
    pub fn bus_dropped(&self, kind: &str) {
        if let Some(index) = BUS_DROP_KINDS.iter().position(|k| *k == kind) {
            Self::add(slot(&self.bus_drops, index), 1);
        }
    }

    /// A store write batch of `messages` that took `took`; `stored` when it succeeded.
    pub fn store_write(&self, messages: u64, took: Duration, stored: bool) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = WRITE_BUCKETS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(WRITE_BUCKETS_US.len());
        Self::add(slot(&self.write_buckets, bucket), 1);
        Self::add(&self.write_sum_us, us);
        Self::add(&self.write_count, 1);
        if stored {
            Self::add(&self.messages_stored, messages);
        }
    }

    /// One loop turn that was busy for `busy`, ending with these table sizes.
    pub fn turn(&self, busy: Duration, tcp_connections: usize, rooms: usize) {
        Self::add(
            &self.busy_ns,
            u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX),
        );
        Self::add(&self.turns, 1);
        self.tcp_connections.store(tcp_connections as u64, Relaxed);
        self.rooms.store(rooms as u64, Relaxed);
    }
}

/// Picks one counter out of a shard's block.
type Field = fn(&ShardMetrics) -> &AtomicU64;

/// A part of `/health` and `/metrics` that the application adds (cluster mode's link).
pub trait Section: Send + Sync {
    /// The key and the value it adds to the `/health` object.
    fn health(&self) -> (&'static str, serde_json::Value);
    /// Its families, appended to the `/metrics` text (exposition format, with HELP/TYPE).
    fn metrics(&self, out: &mut String);
}

/// The server's numbers: one block per shard, and when the server started.
pub struct Metrics {
    started: Instant,
    shards: Box<[ShardMetrics]>,
    section: OnceLock<Arc<dyn Section>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("started", &self.started)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Blocks for `shards` shards (clamped to 1..=MAX_SHARDS, like the server).
    pub fn new(shards: usize) -> Arc<Metrics> {
        let shards = shards.clamp(1, MAX_SHARDS);
        Arc::new(Metrics {
            started: Instant::now(),
            shards: (0..shards).map(|_| ShardMetrics::default()).collect(),
            section: OnceLock::new(),
        })
    }

    /// Add `section` to `/health` and `/metrics` (once; a second is ignored).
    pub fn add_section(&self, section: Arc<dyn Section>) {
        let _ = self.section.set(section);
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Shard `index`'s block (an index past the end, which a correctly sized registry never
    /// sees, wraps around rather than panicking).
    // The registry holds at least one block (`new` clamps to 1..=MAX_SHARDS) and the index is
    // taken modulo its length: this index cannot be out of range.
    #[allow(clippy::indexing_slicing)]
    pub fn shard(&self, index: usize) -> &ShardMetrics {
        &self.shards[index % self.shards.len()]
    }

    fn sum(&self, field: impl Fn(&ShardMetrics) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| field(s).load(Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// Open Engine.IO sessions, all transports, all shards.
    pub fn connections(&self) -> u64 {
        self.sum(|s| slot(&s.sessions, 0))
            .wrapping_add(self.sum(|s| slot(&s.sessions, 1)))
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The `/health` body.
    pub fn health_json(&self) -> String {
        let mut health = serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": self.uptime().as_secs(),
            "connections": self.connections(),
            "shards": self.shard_count(),
        });
        if let (Some(section), Some(object)) = (self.section.get(), health.as_object_mut()) {
            let (key, value) = section.health();
            object.insert(key.to_owned(), value);
        }
        health.to_string()
    }

    /// The `/metrics` body; `queue_depths[i]` is shard i's bus inbox length now.
    pub fn render(&self, queue_depths: &[usize]) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "readrealm_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
        );
        let _ = writeln!(
            out,
            "readrealm_uptime_seconds {:.3}",
            self.uptime().as_secs_f64()
        );
        family(
            &mut out,
            "readrealm_connections",
            "gauge",
            "Open Engine.IO sessions by transport.",
        );
        for (i, transport) in TRANSPORTS.iter().enumerate() {
            let n = self.sum(|s| slot(&s.sessions, i));
            let _ = writeln!(
                out,
                "readrealm_connections{{transport=\"{transport}\"}} {n}"
            );
        }
        family(
            &mut out,
            "readrealm_connections_opened_total",
            "counter",
            "Engine.IO sessions opened, by the transport they started on.",
        );
        for (i, transport) in TRANSPORTS.iter().enumerate() {
            let n = self.sum(|s| slot(&s.sessions_opened, i));
            let _ = writeln!(
                out,
                "readrealm_connections_opened_total{{transport=\"{transport}\"}} {n}"
            );
        }
        let simple: [(&str, &str, &str, Field); 6] = [
            (
                "readrealm_upgrades_total",
                "counter",
                "Polling sessions upgraded to WebSocket.",
                |s| &s.upgrades,
            ),
            (
                "readrealm_tcp_connections",
                "gauge",
                "Open TCP connections (sampled each loop turn).",
                |s| &s.tcp_connections,
            ),
            (
                "readrealm_rooms",
                "gauge",
                "Rooms with members, counted once per shard holding members of it.",
                |s| &s.rooms,
            ),
            (
                "readrealm_joins_total",
                "counter",
                "Successful joinRoom requests that entered a room.",
                |s| &s.joins,
            ),
            (
                "readrealm_messages_stored_total",
                "counter",
                "Chat messages written to the store.",
                |s| &s.messages_stored,
            ),
            (
                "readrealm_deliveries_total",
                "counter",
                "Room broadcast packets handed to members (one per member).",
                |s| &s.deliveries,
            ),
        ];
        for (name, kind, help, field) in simple {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {}", self.sum(field));
        }
        family(
            &mut out,
            "readrealm_errors_total",
            "counter",
            "Chat requests answered with an error, by code.",
        );
        for (i, code) in ERROR_CODES.iter().enumerate() {
            let n = self.sum(|s| slot(&s.errors, i));
            let _ = writeln!(out, "readrealm_errors_total{{code=\"{code}\"}} {n}");
        }
        family(
            &mut out,
            "readrealm_recoveries_total",
            "counter",
            "Connection state recovery: reconnections recovered or started fresh (by why), \
             readers kept after a drop, kept readers whose window ended.",
        );
        for (i, outcome) in RECOVERY_OUTCOMES.iter().enumerate() {
            let n = self.sum(|s| slot(&s.recoveries, i));
            let _ = writeln!(
                out,
                "readrealm_recoveries_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        family(
            &mut out,
            "readrealm_disconnects_total",
            "counter",
            "Engine.IO sessions ended, by reason.",
        );
        for (i, reason) in DISCONNECT_REASONS.iter().enumerate() {
            let n = self.sum(|s| slot(&s.disconnects, i));
            let _ = writeln!(
                out,
                "readrealm_disconnects_total{{reason=\"{reason}\"}} {n}"
            );
        }
        family(
            &mut out,
            "readrealm_protocol_violations_total",
            "counter",
            "Sessions closed for a protocol error, by the rule the client broke.",
        );
        for index in 0..Violation::COUNT {
            let Some(violation) = Violation::from_index(index) else {
                continue;
            };
            let n = self.sum(|s| s.violations.0.get(index).unwrap_or(&SPARE));
            let label = violation.label();
            let _ = writeln!(
                out,
                "readrealm_protocol_violations_total{{violation=\"{label}\"}} {n}"
            );
        }
        family(
            &mut out,
            "readrealm_bus_dropped_total",
            "counter",
            "Cross-shard bus messages dropped because the receiving shard's inbox was full (or the shard had ended), by kind.",
        );
        for (i, kind) in BUS_DROP_KINDS.iter().enumerate() {
            let n = self.sum(|s| slot(&s.bus_drops, i));
            let _ = writeln!(out, "readrealm_bus_dropped_total{{kind=\"{kind}\"}} {n}");
        }
        family(
            &mut out,
            "readrealm_store_write_seconds",
            "histogram",
            "Latency of one store write batch (a loop turn's messages for one home shard).",
        );
        let mut cumulative = 0u64;
        for (i, bound) in WRITE_BUCKETS_US.iter().enumerate() {
            cumulative += self.sum(|s| slot(&s.write_buckets, i));
            let _ = writeln!(
                out,
                "readrealm_store_write_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        cumulative += self.sum(|s| slot(&s.write_buckets, WRITE_BUCKETS_US.len()));
        let _ = writeln!(
            out,
            "readrealm_store_write_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "readrealm_store_write_seconds_sum {}",
            self.sum(|s| &s.write_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "readrealm_store_write_seconds_count {}",
            self.sum(|s| &s.write_count)
        );
        family(
            &mut out,
            "readrealm_shard_busy_seconds_total",
            "counter",
            "Time each shard's event loop spent handling events rather than waiting.",
        );
        for (i, shard) in self.shards.iter().enumerate() {
            let ns = shard.busy_ns.load(Relaxed);
            let _ = writeln!(
                out,
                "readrealm_shard_busy_seconds_total{{shard=\"{i}\"}} {}",
                ns as f64 / 1e9
            );
        }
        family(
            &mut out,
            "readrealm_shard_loop_turns_total",
            "counter",
            "Event-loop turns per shard.",
        );
        for (i, shard) in self.shards.iter().enumerate() {
            let n = shard.turns.load(Relaxed);
            let _ = writeln!(out, "readrealm_shard_loop_turns_total{{shard=\"{i}\"}} {n}");
        }
        family(
            &mut out,
            "readrealm_shard_queue_depth",
            "gauge",
            "Messages waiting in each shard's cross-shard inbox.",
        );
        for (i, depth) in queue_depths.iter().enumerate() {
            let _ = writeln!(out, "readrealm_shard_queue_depth{{shard=\"{i}\"}} {depth}");
        }
        family(
            &mut out,
            "readrealm_shard_tcp_connections",
            "gauge",
            "Open TCP connections per shard.",
        );
        for (i, shard) in self.shards.iter().enumerate() {
            let n = shard.tcp_connections.load(Relaxed);
            let _ = writeln!(out, "readrealm_shard_tcp_connections{{shard=\"{i}\"}} {n}");
        }
        if let Some(section) = self.section.get() {
            section.metrics(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the first sample line starting with `series` (name and labels).
    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing"))
            .parse()
            .unwrap()
    }

    #[test]
    fn shard_blocks_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<ShardMetrics>(), 128);
        assert_eq!(std::mem::size_of::<ShardMetrics>() % 128, 0);
    }

    #[test]
    fn counts_add_up_across_shards_and_render() {
        let metrics = Metrics::new(2);
        metrics.shard(0).session_opened(TransportLabel::Polling);
        metrics.shard(1).session_opened(TransportLabel::WebSocket);
        metrics.shard(1).session_opened(TransportLabel::Polling);
        metrics.shard(1).session_upgraded();
        metrics
            .shard(0)
            .session_closed(TransportLabel::Polling, CloseReason::PingTimeout);
        metrics.shard(0).error("rate_limited");
        metrics.shard(1).error("no_such_code");
        metrics
            .shard(1)
            .store_write(3, Duration::from_micros(700), true);
        metrics
            .shard(1)
            .store_write(2, Duration::from_secs(3), false);
        metrics.shard(0).delivered(5);
        metrics.shard(1).turn(Duration::from_millis(2), 4, 1);
        let text = metrics.render(&[0, 9]);
        assert_eq!(metrics.connections(), 2);
        assert_eq!(
            sample(&text, "readrealm_connections{transport=\"websocket\"}"),
            2.0
        );
        assert_eq!(
            sample(&text, "readrealm_connections{transport=\"polling\"}"),
            0.0
        );
        assert_eq!(
            sample(
                &text,
                "readrealm_connections_opened_total{transport=\"polling\"}"
            ),
            2.0
        );
        assert_eq!(sample(&text, "readrealm_upgrades_total"), 1.0);
        assert_eq!(
            sample(
                &text,
                "readrealm_disconnects_total{reason=\"ping_timeout\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(&text, "readrealm_errors_total{code=\"rate_limited\"}"),
            1.0
        );
        assert_eq!(sample(&text, "readrealm_errors_total{code=\"other\"}"), 1.0);
        assert_eq!(sample(&text, "readrealm_messages_stored_total"), 3.0);
        assert_eq!(sample(&text, "readrealm_deliveries_total"), 5.0);
        assert_eq!(
            sample(&text, "readrealm_store_write_seconds_bucket{le=\"0.0005\"}"),
            0.0
        );
        assert_eq!(
            sample(&text, "readrealm_store_write_seconds_bucket{le=\"0.001\"}"),
            1.0
        );
        assert_eq!(
            sample(&text, "readrealm_store_write_seconds_bucket{le=\"+Inf\"}"),
            2.0
        );
        assert_eq!(sample(&text, "readrealm_store_write_seconds_count"), 2.0);
        assert_eq!(
            sample(&text, "readrealm_shard_queue_depth{shard=\"1\"}"),
            9.0
        );
        assert_eq!(sample(&text, "readrealm_tcp_connections"), 4.0);
        assert_eq!(
            sample(&text, "readrealm_shard_busy_seconds_total{shard=\"1\"}"),
            0.002
        );
        let health: serde_json::Value = serde_json::from_str(&metrics.health_json()).unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["connections"], 2);
        assert_eq!(health["shards"], 2);
    }
}
