//! Rosters: who is in each room, as the log says, read with the log position it is true at.
//!
//! Owns the reading of `rr:{p}:roster` (kept by the `APPEND` and `REAP` scripts, in the same
//! atomic step as the presence entries they add) together with `rr:{p}:last` (the newest id
//! those scripts generated), in one `SNAPSHOT` script, so a node starting can load the rosters
//! and then apply presence entries only after `through`, and derive exactly what every other
//! node derives. Never writes: the roster changes only with the log.

use redis::Value;

use crate::book::BookId;

use super::entry::{stream_id, text, StreamId};
use super::partition::{last_key, roster_key};
use super::scripts;
use super::{ClusterError, Link};

/// One reader's connection in a room.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RosterEntry {
    pub book: BookId,
    /// `"<node>/<rest>"`, as given in the join.
    pub conn: String,
    pub user: String,
    pub username: String,
}

/// A partition's roster as of a log position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The partition's last generated stream id (`0-0` if it never had an entry), also after
    /// trimming emptied the stream: the roster includes every presence entry up to it and
    /// none after.
    pub through: StreamId,
    /// Every (book, conn) present, sorted by book then conn.
    pub members: Vec<RosterEntry>,
}

impl Link {
    /// Partition `partition`'s roster and the position it is true at, read atomically.
    /// Errors: `Malformed` if the roster holds a field or value this layer did not write.
    pub fn snapshot(&mut self, partition: u32) -> Result<Snapshot, ClusterError> {
        let mut call = scripts::SNAPSHOT.prepare_invoke();
        call.key(last_key(partition)).key(roster_key(partition));
        let answers = self.with(|connection| scripts::run(connection, &[call]))?;
        let Ok::<[Value; 1], _>([Value::Array(parts)]) = answers.try_into() else {
            return Err(ClusterError::Malformed("snapshot: not an array".into()));
        };
        let Ok::<[Value; 2], _>([through, Value::Array(hash)]) = parts.try_into() else {
            return Err(ClusterError::Malformed(
                "snapshot: not [through, roster]".into(),
            ));
        };
        let through = stream_id(&through)?;
        let mut members = Vec::with_capacity(hash.len() / 2);
        for pair in hash.chunks(2) {
            let [field, value] = pair else {
                return Err(ClusterError::Malformed("snapshot: odd roster hash".into()));
            };
            members.push(roster_entry(field, value).ok_or_else(|| {
                ClusterError::Malformed(format!(
                    "partition {partition}: roster entry {field:?} = {value:?}"
                ))
            })?);
        }
        members.sort();
        Ok(Snapshot { through, members })
    }
}

/// Decode a roster field `"<book> <conn>"` and its value `"<user>\n<username>"` (split at the
/// last newline: a username holds no control characters, a user id may).
fn roster_entry(field: &Value, value: &Value) -> Option<RosterEntry> {
    let (book, conn) = text(field)?.split_once(' ')?;
    let (user, username) = text(value)?.rsplit_once('\n')?;
    Some(RosterEntry {
        book: BookId(book.parse().ok()?),
        conn: conn.to_owned(),
        user: user.to_owned(),
        username: username.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roster_entries_decode_or_are_refused() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(
            roster_entry(&bulk("12 n1/a b"), &bulk("u\n1\nAnn Lee")),
            Some(RosterEntry {
                book: BookId(12),
                conn: "n1/a b".into(),
                user: "u\n1".into(),
                username: "Ann Lee".into(),
            })
        );
        for (field, value) in [
            ("12", "u\nAnn"),
            ("x n1/a", "u\nAnn"),
            ("12 n1/a", "no newline"),
            ("-1 n1/a", "u\nAnn"),
        ] {
            assert_eq!(roster_entry(&bulk(field), &bulk(value)), None, "{field}");
        }
        assert_eq!(roster_entry(&Value::Nil, &bulk("u\nA")), None);
    }
}
