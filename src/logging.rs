//! The server's log: levelled, structured `key=value` lines on stderr, one write per line.
//!
//! Owns the process-wide level (`--log` / `READREALM_LOG`: error, warn, info, debug, trace)
//! and the line format. A disabled level costs one relaxed atomic load (the macros check it
//! before formatting anything), so debug lines may sit on connection paths; nothing is logged
//! per message at info. Lines look like
//!
//! ```text
//! ts=2025-01-02T03:04:05.678Z level=warn event=chat_error shard=1 code=rate_limited msg="..."
//! ```
//!
//! Values with spaces, quotes, `=` or control characters are quoted and escaped, so every line
//! splits into fields unambiguously. Lines a client can cause (errors it provokes) go through a
//! [`Throttle`], so no client can flood the log.

use std::fmt::{self, Display, Write as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
}

impl Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The level in force; lines above it are skipped. Info until [`set_level`].
static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether lines at `level` are written.
#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Format one line (without the trailing newline): timestamp, level, event, then fields.
pub fn format_line(level: Level, event: &str, fields: &[(&str, &dyn Display)]) -> String {
    let mut line = String::with_capacity(96);
    let _ = write!(
        line,
        "ts={} level={} event=",
        timestamp(SystemTime::now()),
        level
    );
    push_value(&mut line, event);
    let mut value = String::new();
    for (key, field) in fields {
        value.clear();
        let _ = write!(value, "{field}");
        line.push(' ');
        line.push_str(key);
        line.push('=');
        push_value(&mut line, &value);
    }
    line
}

/// Write one line to stderr if `level` is enabled (use the macros, which check first).
pub fn write(level: Level, event: &str, fields: &[(&str, &dyn Display)]) {
    if !enabled(level) {
        return;
    }
    let mut line = format_line(level, event, fields);
    line.push('\n');
    // One write_all on the locked handle: lines from different threads never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
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
    crate::time::iso8601(since.as_millis() as u64)
}

/// `log_at!(Level::Debug, "event", key = value, ...)`: one structured line if the level is on.
/// Values are formatted with `Display` only when the line is written.
#[macro_export]
macro_rules! log_at {
    ($level:expr, $event:expr $(, $key:ident = $value:expr)* $(,)?) => {
        if $crate::logging::enabled($level) {
            $crate::logging::write($level, $event, &[$((stringify!($key), &$value as &dyn ::std::fmt::Display)),*]);
        }
    };
}

#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log_at!($crate::logging::Level::Error, $($t)*) }; }
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log_at!($crate::logging::Level::Warn, $($t)*) }; }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log_at!($crate::logging::Level::Info, $($t)*) }; }
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log_at!($crate::logging::Level::Debug, $($t)*) }; }

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse(" debug "), Some(Level::Debug));
        assert_eq!(Level::parse("loud"), None);
        assert!(Level::Error < Level::Trace);
    }

    #[test]
    fn lines_are_key_value_with_quoting() {
        let line = format_line(
            Level::Warn,
            "chat_error",
            &[("code", &"rate_limited"), ("msg", &"at most \"10\" a=b\nx")],
        );
        let rest = line.split_once(" level=").unwrap().1;
        assert_eq!(
            rest,
            "warn event=chat_error code=rate_limited msg=\"at most \\\"10\\\" a=b\\nx\""
        );
        assert!(line.starts_with("ts="));
        assert!(format_line(Level::Info, "x", &[("empty", &"")]).ends_with("empty=\"\""));
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
