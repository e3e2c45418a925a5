//! Wall-clock milliseconds and their ISO-8601 UTC form (`2026-11-24T12:00:00.000Z`), the
//! `createdAt` of a message and the `ts` of a log line.
//!
//! The calendar is the `time` crate's (the most used date-time crate, also behind
//! `tracing-subscriber`'s and `cookie`'s timestamps): [`iso8601`] converts with
//! [`time::OffsetDateTime`] and writes with a format description checked at compile time. This
//! module only reads the clock and formats; it never parses a date.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch now.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: RFC 3339 in UTC, always with three digits of milliseconds (the
/// form JavaScript's `Date.prototype.toISOString` gives, which socket.io clients parse).
const ISO8601_MILLIS: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// The latest instant [`iso8601`] writes, 9999-12-31T23:59:59.999Z: four-digit years, as
/// `toISOString` writes them; later instants are written as this one.
pub const MAX_ISO8601_MILLIS: u64 = 253_402_300_799_999;

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch (proleptic Gregorian calendar,
/// UTC); instants after [`MAX_ISO8601_MILLIS`] are written as it.
pub fn iso8601(millis: u64) -> String {
    let millis = millis.min(MAX_ISO8601_MILLIS);
    let nanos = i128::from(millis) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|at| at.format(ISO8601_MILLIS).ok())
        // Unreachable: every instant up to MAX_ISO8601_MILLIS is in `time`'s range and the
        // description has no component UTC lacks. Still an answer, never a panic.
        .unwrap_or_else(|| "9999-12-31T23:59:59.999Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_iso8601_with_milliseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_521_600_000), "2026-11-24T12:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn the_calendar_holds_at_its_edges() {
        // Not a leap year (divisible by 100), then a leap year (by 400).
        assert_eq!(iso8601(4_107_542_399_001), "2100-02-28T23:59:59.001Z");
        assert_eq!(iso8601(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(iso8601(13_574_608_496_007), "2400-02-29T12:34:56.007Z");
        assert_eq!(iso8601(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(iso8601(MAX_ISO8601_MILLIS), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso8601(u64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
