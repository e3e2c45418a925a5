//! The server's log: levelled, structured events on stderr, one line per event, written by a
//! `tracing` subscriber (`tracing-subscriber`'s fmt layer) in one of two formats.
//!
//! Owns the level (`--log` / `READREALM_LOG`: error, warn, info, debug, trace), the format
//! (`--log-format` / `READREALM_LOG_FORMAT`: logfmt or json), the subscriber a binary installs
//! with [`init`], and the call-site macros (`log_error!`, `log_warn!`, `log_info!`,
//! `log_debug!`), thin wrappers over `tracing::event!` that the rest of the crate uses. It
//! never decides what to log, and the library installs no subscriber of its own: until a
//! binary calls [`init`] nothing is written.
//!
//! A disabled level costs one relaxed atomic load (tracing's global `LevelFilter`, checked by
//! [`enabled`] before anything is formatted), so debug lines may sit on connection paths;
//! nothing is logged per message at info. A logfmt line looks like
//!
//! ```text
//! ts=2025-01-02T03:04:05.678Z level=warn event=chat_error shard=1 code=rate_limited msg="..."
//! ```
//!
//! (values with spaces, quotes, `=` or control characters are quoted and escaped, so every
//! line splits into fields unambiguously), and the same event in json, one object per line
//! for Loki or ELK (tracing-subscriber's JSON formatter; every value is a string):
//!
//! ```text
//! {"timestamp":"2025-01-02T03:04:05.678Z","level":"WARN","event":"chat_error","shard":"1","code":"rate_limited","msg":"..."}
//! ```
//!
//! Lines a client can cause (errors it provokes) go through a [`Throttle`], so no client can
//! flood the log.

use std::fmt::{self, Display, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The `tracing` crate, for the macros (which expand in other crates too).
#[doc(hidden)]
pub use tracing as __tracing;

/// How much to log, from least to most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    #[default]
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// Parse a level name (case-insensitive).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => return None,
        })
    }

    /// The same level in `tracing`.
    pub const fn to_tracing(self) -> tracing::Level {
        match self {
            Level::Error => tracing::Level::ERROR,
            Level::Warn => tracing::Level::WARN,
            Level::Info => tracing::Level::INFO,
            Level::Debug => tracing::Level::DEBUG,
            Level::Trace => tracing::Level::TRACE,
        }
    }

    fn from_tracing(level: tracing::Level) -> Level {
        match level {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::INFO => Level::Info,
            tracing::Level::DEBUG => Level::Debug,
            _ => Level::Trace,
        }
    }
}

impl Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How each event is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `ts=… level=… event=… key=value …`, one line per event.
    #[default]
    Logfmt,
    /// One JSON object per line: `timestamp`, `level` (upper case), `event`, then the fields.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Logfmt => "logfmt",
            LogFormat::Json => "json",
        }
    }

    /// Parse a format name (case-insensitive): `logfmt` or `json`.
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "logfmt" => Some(LogFormat::Logfmt),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

impl Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether events at `level` are written: one relaxed load of tracing's global maximum level
/// (off until a subscriber is installed).
#[inline]
pub fn enabled(level: Level) -> bool {
    level.to_tracing() <= LevelFilter::current()
}

/// Install the process's subscriber: events at `level` and below, in `format`, on stderr.
/// Call once, at start-up, from a binary.
///
/// # Errors
///
/// When a global subscriber is already installed.
pub fn init(level: Level, format: LogFormat) -> Result<(), String> {
    tracing::subscriber::set_global_default(subscriber(level, format, std::io::stderr))
        .map_err(|e| format!("cannot install the logger: {e}"))
}

/// A subscriber writing events at `level` and below in `format` to `writer` (stderr for the
/// server; a buffer in tests). Each event is formatted whole, then written with one
/// `write_all`, so lines from different threads never interleave.
pub fn subscriber<W>(
    level: Level,
    format: LogFormat,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync + 'static>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_max_level(level.to_tracing())
        .with_writer(writer)
        .with_timer(Millis);
    match format {
        LogFormat::Logfmt => Box::new(builder.event_format(Logfmt).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(false)
                .finish(),
        ),
    }
}

/// Timestamps as RFC 3339 UTC with milliseconds (see [`timestamp`]).
struct Millis;

impl FormatTime for Millis {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_str(&timestamp(SystemTime::now()))
    }
}

/// The logfmt line: `ts=… level=… event=…` then each field as `key=value`, in the order the
/// call site names them.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = Level::from_tracing(*event.metadata().level());
        let mut fields = LogfmtFields {
            line: String::with_capacity(96),
            scratch: String::new(),
        };
        let _ = write!(
            fields.line,
            "ts={} level={level}",
            timestamp(SystemTime::now())
        );
        event.record(&mut fields);
        fields.line.push('\n');
        writer.write_str(&fields.line)
    }
}

/// Appends each field of an event to a logfmt line.
struct LogfmtFields {
    line: String,
    /// Reused for values that arrive as `Debug` (the macros' `Display` values).
    scratch: String,
}

impl LogfmtFields {
    fn push(&mut self, key: &str, value: &str) {
        self.line.push(' ');
        self.line.push_str(key);
        self.line.push('=');
        push_value(&mut self.line, value);
    }
}

impl Visit for LogfmtFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let _ = write!(scratch, "{value:?}");
        self.push(field.name(), &scratch);
        self.scratch = scratch;
    }
}

/// Append a value, quoted and escaped when it would not read back as one bare token.
fn push_value(line: &mut String, value: &str) {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=');
    if bare {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(line, "\\u{{{:x}}}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

/// A cap on how many lines one kind of event may write per second, so a client that makes the
/// server answer errors as fast as it can cannot flood the log (or the disk). Lines past the
/// cap are counted, and the next line admitted says how many were left out. Lock-free; shared
/// by every shard (it is touched only on the paths it guards).
#[derive(Debug)]
pub struct Throttle {
    per_second: u64,
    /// The current one-second window (seconds since the epoch) and lines admitted in it.
    window: AtomicU64,
    admitted: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    pub const fn new(per_second: u64) -> Throttle {
        Throttle {
            per_second,
            window: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now; when it may, how many were left out before it.
    pub fn admit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.admit_at(now)
    }

    /// [`Throttle::admit`] at `now`, in whole seconds since the epoch (the window's clock).
    fn admit_at(&self, now: u64) -> Option<u64> {
        if self.window.swap(now, Ordering::Relaxed) != now {
            self.admitted.store(0, Ordering::Relaxed);
        }
        if self.admitted.fetch_add(1, Ordering::Relaxed) < self.per_second {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2025-01-02T03:04:05.678Z`.
pub fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    crate::time::iso8601(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// `log_at!(Warn, WARN, "event", key = value, ...)`: one structured event if the level is on
/// (our [`Level`] and tracing's, by name). Values are formatted with `Display`, only when the
/// event is written. Use the four macros below.
#[doc(hidden)]
#[macro_export]
macro_rules! log_at {
    ($level:ident, $tracing_level:ident, $event:expr $(, $key:ident = $value:expr)* $(,)?) => {
        if $crate::logging::enabled($crate::logging::Level::$level) {
            $crate::logging::__tracing::event!(
                $crate::logging::__tracing::Level::$tracing_level,
                event = $event
                $(, $key = %$value)*
            );
        }
    };
}

/// `log_error!("event", key = value, ...)`: an event at error level.
#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log_at!(Error, ERROR, $($t)*) }; }
/// `log_warn!("event", key = value, ...)`: an event at warn level.
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log_at!(Warn, WARN, $($t)*) }; }
/// `log_info!("event", key = value, ...)`: an event at info level.
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log_at!(Info, INFO, $($t)*) }; }
/// `log_debug!("event", key = value, ...)`: an event at debug level.
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log_at!(Debug, DEBUG, $($t)*) }; }

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A writer the subscriber under test writes into.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the macros in `f` write at `level` in `format`.
    fn captured(level: Level, format: LogFormat, f: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        tracing::subscriber::with_default(subscriber(level, format, move || writer.clone()), f);
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse(" debug "), Some(Level::Debug));
        assert_eq!(Level::parse("loud"), None);
        assert!(Level::Error < Level::Trace);
        assert_eq!(LogFormat::parse("JSON"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("logfmt"), Some(LogFormat::Logfmt));
        assert_eq!(LogFormat::parse("xml"), None);
    }

    #[test]
    fn lines_are_key_value_with_quoting() {
        let out = captured(Level::Info, LogFormat::Logfmt, || {
            crate::log_warn!(
                "chat_error",
                code = "rate_limited",
                msg = "at most \"10\" a=b\nx"
            );
            crate::log_info!("x", empty = "", n = 42);
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let rest = lines[0].split_once(" level=").unwrap().1;
        assert_eq!(
            rest,
            "warn event=chat_error code=rate_limited msg=\"at most \\\"10\\\" a=b\\nx\""
        );
        assert!(lines[0].starts_with("ts="));
        let ts = lines[0]["ts=".len()..].split_once(' ').unwrap().0;
        assert_eq!(ts.len(), "2025-01-02T03:04:05.678Z".len(), "{ts}");
        assert!(
            lines[1].ends_with(" level=info event=x empty=\"\" n=42"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn json_lines_are_one_object_each_with_the_fields() {
        let out = captured(Level::Debug, LogFormat::Json, || {
            crate::log_warn!("chat_error", shard = 1, msg = "a \"quoted\"\nline");
            crate::log_debug!("upgrade", sid = "abc");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["level"], "WARN", "{first}");
        assert_eq!(first["event"], "chat_error");
        assert_eq!(first["shard"], "1");
        assert_eq!(first["msg"], "a \"quoted\"\nline");
        let ts = first["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["level"], "DEBUG");
        assert_eq!(second["sid"], "abc");
    }

    #[test]
    fn levels_above_the_chosen_one_are_not_written() {
        let out = captured(Level::Warn, LogFormat::Logfmt, || {
            crate::log_info!("quiet");
            crate::log_debug!("quieter");
            crate::log_error!("loud", cause = "x");
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("level=error event=loud cause=x"), "{out}");
    }

    #[test]
    fn throttle_admits_its_rate_and_counts_the_rest() {
        let throttle = Throttle::new(3);
        // One second: the first three lines pass, the next two are held back.
        let first: Vec<Option<u64>> = (0..5).map(|_| throttle.admit_at(100)).collect();
        assert_eq!(first, [Some(0), Some(0), Some(0), None, None]);
        // The next second: three pass again, the first of them reporting the two left out.
        let second: Vec<Option<u64>> = (0..4).map(|_| throttle.admit_at(101)).collect();
        assert_eq!(second, [Some(2), Some(0), Some(0), None]);
        // A second with no overflow before it reports nothing left out.
        assert_eq!(throttle.admit_at(105), Some(1));
        assert_eq!(throttle.admit_at(105), Some(0));
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(at), "2023-11-14T22:13:20.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&timestamp(leap)[..10], "2000-02-29");
    }
}
