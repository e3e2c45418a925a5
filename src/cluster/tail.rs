//! Reading the log: each partition from a position, in order, with "behind retention"
//! detected in the same atomic read.
//!
//! Owns the read (`READ` script per partition, all partitions in one pipeline: entries after
//! the position, COUNT-bounded, with the partition's trimmed-through id (`retention`) read at
//! the same instant, so a trim that removed entries past the position is never missed nor raced) and
//! the wait for new entries (`XREAD BLOCK`, whose answer is dropped: the entries are then read
//! by the script, so every entry goes through the one checked path); and every partition's
//! last generated id (`rr:{p}:last`), for lag. Never advances a position itself: the caller
//! stores it with what it applied.

use std::time::Duration;

use redis::Value;

use super::entry::{decode, stream_id, LogEntry, StreamId};
use super::partition::{last_key, log_key, trimmed_key};
use super::scripts;
use super::{ClusterError, Link};

impl Link {
    /// Up to `count` entries of each of `positions`' partitions after its position, grouped
    /// by partition in the order given, each partition's in log order. Errors with
    /// `BehindRetention` if any entry after a position was trimmed.
    pub fn read(
        &mut self,
        positions: &[(u32, StreamId)],
        count: usize,
    ) -> Result<Vec<LogEntry>, ClusterError> {
        let mut calls = Vec::with_capacity(positions.len());
        for &(p, position) in positions {
            let mut call = scripts::READ.prepare_invoke();
            call.key(log_key(p))
                .key(trimmed_key(p))
                .arg(position.to_string())
                .arg(count.max(1));
            calls.push(call);
        }
        let answers = self.with(|connection| scripts::run(connection, &calls))?;
        let mut out = Vec::new();
        for (&(partition, position), answer) in positions.iter().zip(answers) {
            let Value::Array(parts) = answer else {
                return Err(ClusterError::Malformed("read: not an array".into()));
            };
            let Ok::<[Value; 2], _>([trimmed, Value::Array(entries)]) = parts.try_into() else {
                return Err(ClusterError::Malformed(
                    "read: not [trimmed, entries]".into(),
                ));
            };
            let trimmed_through = stream_id(&trimmed)?;
            if trimmed_through > position {
                return Err(ClusterError::BehindRetention {
                    partition,
                    position,
                    trimmed_through,
                });
            }
            for entry in entries {
                out.push(decode(partition, entry)?);
            }
        }
        Ok(out)
    }

    /// As [`Link::read`], but when no partition has anything new, wait up to `block` for an
    /// entry to be added to any of them (`XREAD BLOCK`) and read again. An empty answer means
    /// `block` passed with nothing new. The call is bounded by `block` plus the I/O timeout.
    pub fn tail(
        &mut self,
        positions: &[(u32, StreamId)],
        count: usize,
        block: Duration,
    ) -> Result<Vec<LogEntry>, ClusterError> {
        let entries = self.read(positions, count)?;
        if !entries.is_empty() || positions.is_empty() {
            return Ok(entries);
        }
        let io_timeout = self.settings().io_timeout;
        // `read` above left a connection open (or failed).
        self.set_read_timeout(io_timeout + block)?;
        let mut xread = redis::cmd("XREAD");
        xread
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS");
        for &(p, _) in positions {
            xread.arg(log_key(p));
        }
        for &(_, position) in positions {
            xread.arg(position.to_string());
        }
        let woke = self.with(|connection| Ok(xread.query::<Value>(connection)?));
        // Restore the bound of ordinary calls even when the wait failed.
        let restored = self.set_read_timeout(io_timeout);
        match woke? {
            Value::Nil => Ok(Vec::new()),
            _ => {
                restored?;
                self.read(positions, count)
            }
        }
    }

    /// Every partition's last generated stream id (index = partition; `0-0` for one that never
    /// had an entry), in one pipeline: with a node's applied positions, its lag.
    pub fn last_ids(&mut self) -> Result<Vec<StreamId>, ClusterError> {
        let mut pipe = redis::pipe();
        for p in 0..self.partitions() {
            pipe.cmd("GET").arg(last_key(p));
        }
        let held: Vec<Option<String>> = self.with(|connection| Ok(pipe.query(connection)?))?;
        held.into_iter()
            .map(|last| match last {
                None => Ok(StreamId::ZERO),
                Some(text) => StreamId::parse(&text)
                    .ok_or_else(|| ClusterError::Malformed(format!("last id {text:?}"))),
            })
            .collect()
    }
}
