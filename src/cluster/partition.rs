//! Where a room lives in the cluster's log: its partition, and the Redis key names of each
//! partition.
//!
//! Owns the mapping book → partition (a stable hash: every node, of every version, must agree,
//! so it may never change without re-partitioning the log) and the key layout:
//! `rr:{p<N>}:log` (the partition's stream), `rr:{p<N>}:seq` (hash: book id → last sequence),
//! `rr:{p<N>}:trimmed` (the newest entry trimmed away), `rr:{p<N>}:last` (the newest stream id
//! generated), `rr:{p<N>}:roster` (hash: `"<book> <conn>"` → `"<user>\n<username>"`, the
//! readers present), `rr:{p<N>}:conns:<node>` (set: the roster fields of one node's
//! connections), all hash-tagged `{p<N>}` so a sharded Redis Cluster keeps one partition's keys
//! in one slot (a Lua script may only touch keys of one slot); `rr:meta` (hash: `partitions` →
//! the count the cluster was created with); `rr:node:<id>` (a node's liveness key) and
//! `rr:nodes` (the set of node ids seen). Also the node of a connection name. Never talks to
//! Redis.

use crate::book::BookId;

/// The hash holding the cluster's settings every node must agree on (`partitions`).
pub const META_KEY: &str = "rr:meta";
/// The field of [`META_KEY`] holding the partition count.
pub const META_PARTITIONS: &str = "partitions";
/// The set of node ids that ever sent a heartbeat (`liveness`).
pub const NODES_KEY: &str = "rr:nodes";

/// The partition of `book_id` among `partitions` (0 ≤ result < partitions; a count of 0 is
/// taken as 1). Fibonacci hashing, as the home shard of one process (`chat::home`), so
/// consecutive book ids spread; fixed forever: changing it strands every room's history.
pub fn partition_of(book_id: BookId, partitions: u32) -> u32 {
    let mixed = book_id.get().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (mixed % u64::from(partitions.max(1))) as u32
}

/// The stream (the ordered log) of partition `p`: `rr:{p<p>}:log`.
pub fn log_key(p: u32) -> String {
    format!("rr:{{p{p}}}:log")
}

/// The partition a stream key names (the inverse of [`log_key`]); None for any other key.
pub fn partition_of_log_key(key: &[u8]) -> Option<u32> {
    let digits = key.strip_prefix(b"rr:{p")?.strip_suffix(b"}:log")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The hash of partition `p`'s rooms' last sequences: `rr:{p<p>}:seq`.
pub fn seq_key(p: u32) -> String {
    format!("rr:{{p{p}}}:seq")
}

/// The newest entry trimmed from partition `p`'s stream (a stream id; absent if never
/// trimmed): `rr:{p<p>}:trimmed`. Set by the retention script, read with every read.
pub fn trimmed_key(p: u32) -> String {
    format!("rr:{{p{p}}}:trimmed")
}

/// The newest stream id generated in partition `p` (absent if none ever): `rr:{p<p>}:last`.
/// Set by every script that adds to the stream, in the same atomic step; trimming leaves it,
/// so it stays right when trimming empties the stream.
pub fn last_key(p: u32) -> String {
    format!("rr:{{p{p}}}:last")
}

/// The readers present in partition `p`'s rooms: `rr:{p<p>}:roster`, a hash whose fields are
/// [`roster_field`]s and whose values are `"<user>\n<username>"`.
pub fn roster_key(p: u32) -> String {
    format!("rr:{{p{p}}}:roster")
}

/// The roster fields of node `node`'s connections in partition `p`:
/// `rr:{p<p>}:conns:<node>` (a set), what a reap of that node walks.
pub fn conns_key(p: u32, node: &str) -> String {
    format!("rr:{{p{p}}}:conns:{node}")
}

/// A roster hash field: `"<book> <conn>"` (the book id in decimal, one space, the connection).
pub fn roster_field(book: BookId, conn: &str) -> String {
    format!("{} {conn}", book.get())
}

/// The node of connection name `conn` (`"<node>/<rest>"`): the text before the first `/`, or
/// the whole name if it has none.
pub fn node_of(conn: &str) -> &str {
    conn.split_once('/').map_or(conn, |(node, _)| node)
}

/// The liveness key of node `node_id`: `rr:node:<id>`.
pub fn node_key(node_id: &str) -> String {
    format!("rr:node:{node_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        // Fixed values: a change of the hash would strand every room's history.
        assert_eq!(partition_of(BookId(1), 16), 9);
        assert_eq!(partition_of(BookId(2701), 16), 4);
        for book in 0..1000 {
            assert!(partition_of(BookId(book), 7) < 7);
        }
        assert_eq!(partition_of(BookId(5), 0), 0);
    }

    #[test]
    fn keys_are_hash_tagged_per_partition() {
        assert_eq!(log_key(7), "rr:{p7}:log");
        assert_eq!(seq_key(7), "rr:{p7}:seq");
        assert_eq!(trimmed_key(7), "rr:{p7}:trimmed");
        assert_eq!(partition_of_log_key(log_key(4095).as_bytes()), Some(4095));
        assert_eq!(partition_of_log_key(b"rr:{p}:log"), None);
        assert_eq!(partition_of_log_key(b"rr:{p1}:seq"), None);
        assert_eq!(last_key(7), "rr:{p7}:last");
        assert_eq!(roster_key(7), "rr:{p7}:roster");
        assert_eq!(conns_key(7, "n2"), "rr:{p7}:conns:n2");
        assert_eq!(roster_field(BookId(12), "n2/a b"), "12 n2/a b");
        assert_eq!(node_key("a1"), "rr:node:a1");
    }

    #[test]
    fn a_connection_names_its_node_before_the_first_slash() {
        assert_eq!(node_of("n1/42"), "n1");
        assert_eq!(node_of("n1/a/b"), "n1");
        assert_eq!(node_of("/x"), "");
        assert_eq!(node_of("alone"), "alone");
    }
}
