//! Reading the log: each partition from a position, in order, with "behind retention"
//! detected in the same atomic read.
//!
//! Owns the read (`READ` script per partition, all partitions in one pipeline: entries after
//! the position, COUNT-bounded, with the partition's trimmed-through id (`retention`) read at
//! the same instant, so a trim that removed entries past the position is never missed nor
//! raced), the tail (`XREAD BLOCK` over every partition, with the trimmed-through ids read
//! right after it by one `MGET` in the same round trip: a wake costs one round trip and two
//! commands, whatever the number of partitions); and every partition's
//! last generated id (`rr:{p}:last`), for lag. Never advances a position itself: the caller
//! stores it with what it applied.

use std::time::Duration;

use redis::Value;

use super::entry::{decode, stream_id, LogEntry, StreamId};
use super::partition::{last_key, log_key, partition_of_log_key, trimmed_key};
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
            take_entries(partition, position, stream_id(&trimmed)?, entries, &mut out)?;
        }
        Ok(out)
    }

    /// Wait up to `block` for any partition to have entries after its position, and take
    /// them: up to `count` per partition, grouped by partition, each in log order, in one round
    /// trip (`XREAD BLOCK`, which answers at once when some partition has entries, then every
    /// partition's trimmed-through id by one `MGET` in the same pipeline). An empty answer
    /// means `block` passed with nothing new; the call is bounded by `block` plus the I/O
    /// timeout.
    ///
    /// `BehindRetention` when a partition it read has been trimmed past its position (read
    /// after the entries, so a trim in between reports it too: a node that close to the
    /// retention's edge is behind it anyway).
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
        let mut pipe = redis::pipe();
        let xread = pipe
            .cmd("XREAD")
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS");
        for &(p, _) in positions {
            xread.arg(log_key(p));
        }
        for &(_, position) in positions {
            xread.arg(position.to_string());
        }
        // One MGET, not a GET per partition: a wake is two commands for Redis to run, however
        // many partitions there are.
        let mget = pipe.cmd("MGET");
        for &(p, _) in positions {
            mget.arg(trimmed_key(p));
        }
        let answers = self.with_read_timeout(io_timeout + block, |connection| {
            Ok(pipe.query::<Vec<Value>>(connection)?)
        })?;
        let Ok::<[Value; 2], _>([woke, Value::Array(trimmed)]) = answers.try_into() else {
            return Err(ClusterError::Malformed(
                "tail: not [streams, trimmed ids]".into(),
            ));
        };
        if trimmed.len() != positions.len() {
            return Err(ClusterError::Malformed("tail: trimmed ids missing".into()));
        }
        let mut out = Vec::new();
        for (key, entries) in streams_of(woke)? {
            let named = partition_of_log_key(&key);
            let Some((index, &(partition, position))) = positions
                .iter()
                .enumerate()
                .find(|(_, (p, _))| Some(*p) == named)
            else {
                return Err(ClusterError::Malformed("tail: an unasked stream".into()));
            };
            let trimmed_through = match trimmed.get(index) {
                Some(Value::Nil) | None => StreamId::ZERO,
                Some(value) => stream_id(value)?,
            };
            take_entries(partition, position, trimmed_through, entries, &mut out)?;
        }
        Ok(out)
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

/// Decode `entries` of `partition` (read after `position`) onto `out`, unless the partition
/// was trimmed past the position (`trimmed_through`): then `BehindRetention`, as entries
/// this node never applied are gone.
fn take_entries(
    partition: u32,
    position: StreamId,
    trimmed_through: StreamId,
    entries: Vec<Value>,
    out: &mut Vec<LogEntry>,
) -> Result<(), ClusterError> {
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
    Ok(())
}

/// One stream of an `XREAD` answer: its key and its entries.
type Stream = (Vec<u8>, Vec<Value>);

/// The streams of an `XREAD` answer, `(key, entries)`: RESP2 `[[key, entries], …]` or RESP3
/// `{key: entries}`; Nil (nothing new) has none.
fn streams_of(answer: Value) -> Result<Vec<Stream>, ClusterError> {
    let malformed = || ClusterError::Malformed("tail: not an XREAD answer".into());
    let pairs: Vec<(Value, Value)> = match answer {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(pair) => {
                    let [key, entries]: [Value; 2] = pair.try_into().map_err(|_| malformed())?;
                    Ok((key, entries))
                }
                _ => Err(malformed()),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(streams) => streams,
        _ => return Err(malformed()),
    };
    pairs
        .into_iter()
        .map(|(key, entries)| match (key, entries) {
            (Value::BulkString(key), Value::Array(entries)) => Ok((key, entries)),
            _ => Err(malformed()),
        })
        .collect()
}
