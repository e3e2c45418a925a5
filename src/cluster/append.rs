//! Appending to the log: messages numbered per room, and presence, in one order per
//! partition.
//!
//! Owns the batch: a loop turn's entries of every partition go to Redis in ONE pipeline (one
//! round trip), one `APPEND` script call per partition, which numbers each message from the
//! room's counter (`HINCRBY rr:{p}:seq book 1`) and adds it to the partition's stream in the
//! same atomic step, so two nodes posting to one room get one gapless numbering. Never
//! retries: after a `Connection` error the batch may be wholly, partly (per partition) or not
//! at all in the log, and only reading the log tells (the caller answers `unavailable`).

use std::collections::BTreeMap;

use redis::Value;

use crate::book::BookId;

use super::entry::{stream_id, StreamId};
use super::partition::{log_key, partition_of, seq_key};
use super::scripts;
use super::{ClusterError, Link};

/// One entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Append {
    /// A message with its stored value's bytes; Redis gives its sequence.
    Message { book: BookId, body: Vec<u8> },
    /// A reader joined `book` from connection `conn`.
    Join {
        book: BookId,
        user: String,
        conn: String,
    },
    /// A reader left `book`.
    Leave {
        book: BookId,
        user: String,
        conn: String,
    },
}

impl Append {
    fn book(&self) -> BookId {
        match self {
            Append::Message { book, .. }
            | Append::Join { book, .. }
            | Append::Leave { book, .. } => *book,
        }
    }
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub partition: u32,
    pub id: StreamId,
    /// The room's sequence for a message; `None` for presence.
    pub seq: Option<u64>,
}

impl Link {
    /// Append `entries` (a loop turn's, any rooms) in one round trip: entries of one partition
    /// keep their order here, with none of another writer in between. Returns one
    /// [`Appended`] per entry, in the order given.
    pub fn append(&mut self, entries: &[Append]) -> Result<Vec<Appended>, ClusterError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let partitions = self.partitions();
        // partition → indices of its entries, in order.
        let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            by_partition
                .entry(partition_of(entry.book(), partitions))
                .or_default()
                .push(i);
        }
        let mut calls = Vec::with_capacity(by_partition.len());
        for (&p, indices) in &by_partition {
            let mut call = scripts::APPEND.prepare_invoke();
            call.key(log_key(p)).key(seq_key(p));
            for entry in indices.iter().filter_map(|&i| entries.get(i)) {
                match entry {
                    Append::Message { book, body } => {
                        call.arg("msg").arg(book.get()).arg(body.as_slice()).arg("");
                    }
                    Append::Join { book, user, conn } => {
                        call.arg("join").arg(book.get()).arg(user).arg(conn);
                    }
                    Append::Leave { book, user, conn } => {
                        call.arg("leave").arg(book.get()).arg(user).arg(conn);
                    }
                }
            }
            calls.push(call);
        }
        let answers = self.with(|connection| scripts::run(connection, &calls))?;
        let mut out: Vec<Option<Appended>> = vec![None; entries.len()];
        for ((&p, indices), answer) in by_partition.iter().zip(answers) {
            let Value::Array(values) = answer else {
                return Err(ClusterError::Malformed("append: not an array".into()));
            };
            if values.len() != indices.len() * 2 {
                return Err(ClusterError::Malformed(format!(
                    "append: {} values for {} entries",
                    values.len(),
                    indices.len()
                )));
            }
            for (&i, pair) in indices.iter().zip(values.chunks(2)) {
                let [Value::Int(seq), id] = pair else {
                    return Err(ClusterError::Malformed("append: not [seq, id]".into()));
                };
                let seq = match entries.get(i) {
                    Some(Append::Message { .. }) => {
                        Some(u64::try_from(*seq).map_err(|_| {
                            ClusterError::Malformed(format!("append: sequence {seq}"))
                        })?)
                    }
                    _ => None,
                };
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(Appended {
                        partition: p,
                        id: stream_id(id)?,
                        seq,
                    });
                }
            }
        }
        out.into_iter()
            .map(|a| a.ok_or_else(|| ClusterError::Malformed("append: an entry unanswered".into())))
            .collect()
    }
}
