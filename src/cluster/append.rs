//! Appending to the log: messages numbered per room, and presence with the rooms' rosters, in
//! one order per partition; and seeding a room's counter.
//!
//! Owns the batch: a loop turn's entries of every partition go to Redis in ONE pipeline (one
//! round trip), one `APPEND` script call per partition, which numbers each message from the
//! room's counter (`HINCRBY rr:{p}:seq book 1`), keeps the partition's roster for each join
//! and leave (`rr:{p}:roster`, `rr:{p}:conns:<node>`), adds each entry to the partition's
//! stream and records the last id (`rr:{p}:last`), all in the same atomic step, so two nodes
//! posting to one room get one gapless numbering and the roster is always the one the log
//! describes up to that id. With `Settings::min_replicas` the pipeline ends with `WAIT`. Never
//! retries: after a `Connection` error the batch may be wholly, partly (per partition) or not
//! at all in the log, and only reading the log tells (the caller answers `unavailable`).

use std::collections::BTreeMap;

use redis::Value;

use crate::book::BookId;

use super::entry::{stream_id, StreamId};
use super::partition::{conns_key, last_key, log_key, node_of, partition_of, roster_key, seq_key};
use super::scripts;
use super::{ClusterError, Link};

/// One entry to append. `origin` is opaque node-local text given back in the
/// [`Entry`](super::Entry) (`""` for none: stored as an absent field); `conn` is
/// `"<node>/<rest>"`, the node being the text before the first `/` (the whole name if it has
/// none): the node whose reap ([`Link::reap`]) will leave for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Append {
    /// A message with opaque body bytes; Redis gives its sequence.
    Message {
        book: BookId,
        body: Vec<u8>,
        origin: String,
    },
    /// A reader joined `book` from connection `conn`: added to the roster.
    Join {
        book: BookId,
        user: String,
        username: String,
        conn: String,
        origin: String,
    },
    /// A reader left `book`: removed from the roster (appended even if it was not in it).
    Leave {
        book: BookId,
        user: String,
        conn: String,
        origin: String,
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
    ///
    /// With `min_replicas > 0` the pipeline ends with `WAIT min_replicas <io_timeout ms>`
    /// (the call may then take up to twice the I/O timeout) and fewer acknowledgements is
    /// `ClusterError::Replicas`: the entries are then in the primary's log (they will be
    /// applied) but not on enough replicas.
    pub fn append(&mut self, entries: &[Append]) -> Result<Vec<Appended>, ClusterError> {
        self.append_by(entries, None)
    }

    /// [`Link::append`], refused by Redis (nothing written) if it runs after `deadline`
    /// (Unix milliseconds of Redis's clock, `TIME`): a call Redis could not run in time (it
    /// was hung, and its caller answered the posts `unavailable`) must not land later. A
    /// refusal is `ClusterError::Script` naming the deadline.
    pub fn append_by(
        &mut self,
        entries: &[Append],
        deadline: Option<u64>,
    ) -> Result<Vec<Appended>, ClusterError> {
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
            call.key(log_key(p))
                .key(seq_key(p))
                .key(roster_key(p))
                .arg(deadline.unwrap_or(0))
                .key(last_key(p));
            // The `conns` sets of the batch's nodes follow the four fixed keys (KEYS[5..]).
            let mut nodes: Vec<&str> = Vec::new();
            for entry in indices.iter().filter_map(|&i| entries.get(i)) {
                match entry {
                    Append::Message { book, body, origin } => {
                        call.arg("msg")
                            .arg(book.get())
                            .arg(body.as_slice())
                            .arg(origin);
                    }
                    Append::Join {
                        book,
                        user,
                        username,
                        conn,
                        origin,
                    } => {
                        let key = conns_key_index(&mut nodes, conn);
                        call.arg("join")
                            .arg(book.get())
                            .arg(user)
                            .arg(username)
                            .arg(conn)
                            .arg(origin)
                            .arg(key);
                    }
                    Append::Leave {
                        book,
                        user,
                        conn,
                        origin,
                    } => {
                        let key = conns_key_index(&mut nodes, conn);
                        call.arg("leave")
                            .arg(book.get())
                            .arg(user)
                            .arg(conn)
                            .arg(origin)
                            .arg(key);
                    }
                }
            }
            for node in nodes {
                call.key(conns_key(p, node));
            }
            calls.push(call);
        }
        let answers = match self.settings().min_replicas {
            0 => self.with(|connection| scripts::run(connection, &calls))?,
            wanted => {
                let io_timeout = self.settings().io_timeout;
                let wait_ms = (io_timeout.as_millis() as u64).max(1);
                let (answers, got) = self.with_read_timeout(io_timeout * 2, |connection| {
                    scripts::run_then_wait(connection, &calls, Some((wanted, wait_ms)))
                })?;
                let got = got.unwrap_or(0);
                if got < i64::from(wanted) {
                    return Err(ClusterError::Replicas {
                        wanted,
                        got: u32::try_from(got.max(0)).unwrap_or(0),
                    });
                }
                answers
            }
        };
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

    /// Raise `book`'s counter to `seq` if it is lower (never lower it), so the room's next
    /// message is numbered `seq + 1`: for a node whose local store already holds the room's
    /// history when the cluster is formed. One script, atomic with appends. `seq` above
    /// `i64::MAX` is refused (`ClusterError::Redis`): Redis's counters are signed 64-bit.
    pub fn seed_seq(&mut self, book: BookId, seq: u64) -> Result<(), ClusterError> {
        if i64::try_from(seq).is_err() {
            return Err(ClusterError::Redis(format!(
                "seed_seq: sequence {seq} is beyond Redis's signed 64-bit counters"
            )));
        }
        let p = partition_of(book, self.partitions());
        let mut call = scripts::SEED.prepare_invoke();
        call.key(seq_key(p)).arg(book.get()).arg(seq.to_string());
        let answers = self.with(|connection| scripts::run(connection, &[call]))?;
        match answers.as_slice() {
            [Value::Int(0 | 1)] => Ok(()),
            other => Err(ClusterError::Malformed(format!("seed: {other:?}"))),
        }
    }
}

/// The index in the `APPEND` script's KEYS of the `conns` set of `conn`'s node, adding the
/// node to `nodes` (the sets after the four fixed keys, in order) if new.
fn conns_key_index<'a>(nodes: &mut Vec<&'a str>, conn: &'a str) -> usize {
    let node = node_of(conn);
    let at = match nodes.iter().position(|n| *n == node) {
        Some(at) => at,
        None => {
            nodes.push(node);
            nodes.len() - 1
        }
    };
    // Lua's KEYS are 1-based and the fixed keys take 1..=4.
    at + 5
}
