//! Retention: trimming the partitions' streams by age.
//!
//! Owns the `TRIM` script over every partition in one pipeline: it records the newest entry it
//! removes in `rr:{p}:trimmed` and removes the entries older than the horizon exactly
//! (`XTRIM MINID =`, not `~`), in one atomic step, so a reader (`tail`) is told it is behind
//! at the first entry it lacks, never later. Never trims by count (a quiet partition keeps its
//! entries for the whole retention whatever the traffic of the others), and trimming by hand
//! (a bare XTRIM) would bypass the record: only this may trim.

use std::time::Duration;

use redis::Value;

use super::partition::{log_key, trimmed_key};
use super::scripts;
use super::{ClusterError, Link};

impl Link {
    /// Remove, from every partition, the entries added before `now_ms - retention` (Unix
    /// milliseconds, Redis's clock as in the stream ids). Returns how many were removed.
    pub fn trim(&mut self, now_ms: u64, retention: Duration) -> Result<u64, ClusterError> {
        let horizon = now_ms.saturating_sub(retention.as_millis() as u64);
        if horizon == 0 {
            return Ok(0);
        }
        let horizon = format!("{horizon}-0");
        let calls: Vec<_> = (0..self.partitions())
            .map(|p| {
                let mut call = scripts::TRIM.prepare_invoke();
                call.key(log_key(p)).key(trimmed_key(p)).arg(&horizon);
                call
            })
            .collect();
        let answers = self.with(|connection| scripts::run(connection, &calls))?;
        answers
            .into_iter()
            .map(|answer| match answer {
                Value::Int(n) => u64::try_from(n)
                    .map_err(|_| ClusterError::Malformed(format!("trim: removed {n}"))),
                other => Err(ClusterError::Malformed(format!("trim: {other:?}"))),
            })
            .sum()
    }

    /// Redis's clock in Unix milliseconds (`TIME`): the clock of the stream ids, for
    /// [`Link::trim`], whatever this machine's clock says.
    pub fn redis_time_ms(&mut self) -> Result<u64, ClusterError> {
        let (secs, micros): (u64, u64) =
            self.with(|connection| Ok(redis::cmd("TIME").query(connection)?))?;
        Ok(secs * 1000 + micros / 1000)
    }
}
