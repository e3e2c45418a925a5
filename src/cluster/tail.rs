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

    /// Wait up to `block` for any partition to have entries after its position (`XREAD
    /// BLOCK`, which answers at once when some already have), then [`Link::read`] only the
    /// partitions that have: a wake reads what changed, not every partition. An empty answer
    /// means `block` passed with nothing new. The call is bounded by `block` plus the I/O
    /// timeout. (A partition trimmed past its position is found when it is next read.)
    pub fn tail(
        &mut self,
        positions: &[(u32, StreamId)],
        count: usize,
        block: Duration,
    ) -> Result<Vec<LogEntry>, ClusterError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let io_timeout = self.settings().io_timeout;
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
        let woke = self.with_read_timeout(io_timeout + block, |connection| {
            Ok(xread.query::<Value>(connection)?)
        })?;
        let named = named_partitions(&woke, positions);
        if named.is_empty() {
            return Ok(Vec::new());
        }
        self.read(&named, count)
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

/// The partitions (with their positions) whose streams an `XREAD` answer names: RESP2
/// `[[key, entries], …]` or RESP3 `{key: entries}`. Nil (nothing new) names none.
fn named_partitions(answer: &Value, positions: &[(u32, StreamId)]) -> Vec<(u32, StreamId)> {
    let keys: Vec<&[u8]> = match answer {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|stream| match stream {
                Value::Array(pair) => match pair.first() {
                    Some(Value::BulkString(key)) => Some(key.as_slice()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams
            .iter()
            .filter_map(|(key, _)| match key {
                Value::BulkString(key) => Some(key.as_slice()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    positions
        .iter()
        .filter(|(p, _)| keys.contains(&log_key(*p).as_bytes()))
        .copied()
        .collect()
}
