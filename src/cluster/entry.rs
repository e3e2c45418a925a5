//! What the log holds: stream ids (a partition's positions) and typed log entries, decoded
//! from what Redis answers and checked.
//!
//! Owns the entry's fields in the stream: `kind` (`msg`, `join`, `leave`), `book` (the book id
//! in decimal), then for `msg` `seq` (the room's sequence, decimal) and `body` (opaque bytes),
//! for `join` `user`, `username` and `conn`, for `leave` `user` and `conn`; and for every kind
//! an optional `origin` (opaque node-local text, absent when empty). Never guesses at an entry
//! it cannot decode (a required field missing, not UTF-8 where text is required, a field it
//! does not know): that is `ClusterError::Malformed`.

use crate::book::BookId;
use redis::Value;

use super::ClusterError;

/// A stream id, `<ms>-<n>`: a position in a partition. `0-0` is before every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Redis's clock (Unix milliseconds) when the entry was added, never going backwards.
    pub ms: u64,
    /// The entry's number within that millisecond.
    pub n: u64,
}

impl StreamId {
    /// Before every entry.
    pub const ZERO: StreamId = StreamId { ms: 0, n: 0 };

    /// Parse `<ms>-<n>` (both decimal u64), or `None`.
    pub fn parse(text: &str) -> Option<StreamId> {
        let (ms, n) = text.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.n)
    }
}

/// What happened in a room. `origin` is the opaque node-local text given with the
/// [`Append`](super::Append) (`""` for none); a reap's leaves have none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A message: the room's sequence (1, 2, … with no gap) and its opaque body bytes.
    Message {
        book: BookId,
        seq: u64,
        body: Vec<u8>,
        origin: String,
    },
    /// A reader joined the room from connection `conn` (`"<node>/<rest>"`).
    Join {
        book: BookId,
        user: String,
        username: String,
        conn: String,
        origin: String,
    },
    /// A reader left the room (or its connection ended, or its node was reaped).
    Leave {
        book: BookId,
        user: String,
        conn: String,
        origin: String,
    },
}

impl Entry {
    /// The room the entry is about.
    pub fn book(&self) -> BookId {
        match self {
            Entry::Message { book, .. } | Entry::Join { book, .. } | Entry::Leave { book, .. } => {
                *book
            }
        }
    }
}

/// An entry with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub partition: u32,
    pub id: StreamId,
    pub entry: Entry,
}

/// The text of a bulk or simple string answer.
pub(super) fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// A stream id answered by Redis.
pub(super) fn stream_id(value: &Value) -> Result<StreamId, ClusterError> {
    text(value)
        .and_then(StreamId::parse)
        .ok_or_else(|| ClusterError::Malformed(format!("not a stream id: {value:?}")))
}

/// Decode one XRANGE/XREAD entry, `[id, [field, value, …]]`, of `partition`.
pub(super) fn decode(partition: u32, value: Value) -> Result<LogEntry, ClusterError> {
    let malformed = |what: &str| ClusterError::Malformed(format!("partition {partition}: {what}"));
    let Value::Array(parts) = value else {
        return Err(malformed("an entry is not an array"));
    };
    let [id, Value::Array(fields)] = parts.as_slice() else {
        return Err(malformed("an entry is not [id, fields]"));
    };
    let id = stream_id(id)?;
    let mut kind = None;
    let mut book = None;
    let mut seq = None;
    let mut body = None;
    let mut user = None;
    let mut username = None;
    let mut conn = None;
    let mut origin = None;
    for pair in fields.chunks(2) {
        let [Value::BulkString(name), Value::BulkString(value)] = pair else {
            return Err(malformed("a field is not a pair of strings"));
        };
        match name.as_slice() {
            b"kind" => kind = Some(value.as_slice()),
            b"book" => book = Some(value.as_slice()),
            b"seq" => seq = Some(value.as_slice()),
            b"body" => body = Some(value.clone()),
            b"user" => user = Some(value.as_slice()),
            b"username" => username = Some(value.as_slice()),
            b"conn" => conn = Some(value.as_slice()),
            b"origin" => origin = Some(value.as_slice()),
            _ => return Err(malformed("an unknown field")),
        }
    }
    let number = |bytes: Option<&[u8]>, what: &str| {
        bytes
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| malformed(&format!("{id}: no {what}")))
    };
    let string = |bytes: Option<&[u8]>, what: &str| {
        bytes
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
            .ok_or_else(|| malformed(&format!("{id}: no {what}")))
    };
    let book = BookId(number(book, "book")?);
    let origin = match origin {
        None => String::new(),
        some => string(some, "UTF-8 origin")?,
    };
    let entry = match kind {
        Some(b"msg") => Entry::Message {
            book,
            seq: number(seq, "seq")?,
            body: body.ok_or_else(|| malformed(&format!("{id}: no body")))?,
            origin,
        },
        Some(b"join") => Entry::Join {
            book,
            user: string(user, "user")?,
            username: string(username, "username")?,
            conn: string(conn, "conn")?,
            origin,
        },
        Some(b"leave") => Entry::Leave {
            book,
            user: string(user, "user")?,
            conn: string(conn, "conn")?,
            origin,
        },
        _ => return Err(malformed(&format!("{id}: no known kind"))),
    };
    Ok(LogEntry {
        partition,
        id,
        entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_parse_and_order() {
        let a = StreamId::parse("1700000000000-3").unwrap();
        assert_eq!(
            a,
            StreamId {
                ms: 1_700_000_000_000,
                n: 3
            }
        );
        assert!(StreamId::parse("1700000000000-4").unwrap() > a);
        assert!(StreamId::parse("1700000000001-0").unwrap() > a);
        assert_eq!(a.to_string(), "1700000000000-3");
        for bad in [
            "",
            "12",
            "-1",
            "a-1",
            "1-",
            "1-2-3",
            "18446744073709551616-0",
        ] {
            assert_eq!(StreamId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn entries_that_are_not_ours_are_refused() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = |fields: Vec<Value>| Value::Array(vec![bulk("5-1"), Value::Array(fields)]);
        let good = entry(vec![
            bulk("kind"),
            bulk("msg"),
            bulk("book"),
            bulk("9"),
            bulk("seq"),
            bulk("2"),
            bulk("body"),
            bulk("x"),
        ]);
        assert_eq!(
            decode(3, good).unwrap(),
            LogEntry {
                partition: 3,
                id: StreamId { ms: 5, n: 1 },
                entry: Entry::Message {
                    book: BookId(9),
                    seq: 2,
                    body: b"x".to_vec(),
                    origin: String::new(),
                }
            }
        );
        let join = entry(vec![
            bulk("kind"),
            bulk("join"),
            bulk("book"),
            bulk("9"),
            bulk("user"),
            bulk("u\n1"),
            bulk("username"),
            bulk("Ann"),
            bulk("conn"),
            bulk("n1/4"),
            bulk("origin"),
            bulk("o"),
        ]);
        assert_eq!(
            decode(3, join).unwrap().entry,
            Entry::Join {
                book: BookId(9),
                user: "u\n1".into(),
                username: "Ann".into(),
                conn: "n1/4".into(),
                origin: "o".into(),
            }
        );
        for fields in [
            vec![bulk("kind"), bulk("msg"), bulk("book"), bulk("9")],
            vec![bulk("kind"), bulk("what"), bulk("book"), bulk("9")],
            vec![
                bulk("kind"),
                bulk("join"),
                bulk("book"),
                bulk("x"),
                bulk("user"),
                bulk("u"),
                bulk("conn"),
                bulk("c"),
            ],
            vec![bulk("kind"), bulk("join"), bulk("book")],
            // A join without its username.
            vec![
                bulk("kind"),
                bulk("join"),
                bulk("book"),
                bulk("9"),
                bulk("user"),
                bulk("u"),
                bulk("conn"),
                bulk("c"),
            ],
            // A leave without its conn.
            vec![
                bulk("kind"),
                bulk("leave"),
                bulk("book"),
                bulk("9"),
                bulk("user"),
                bulk("u"),
            ],
            // An origin that is not text.
            vec![
                bulk("kind"),
                bulk("leave"),
                bulk("book"),
                bulk("9"),
                bulk("user"),
                bulk("u"),
                bulk("conn"),
                bulk("c"),
                bulk("origin"),
                Value::BulkString(vec![0xff]),
            ],
            vec![bulk("other"), bulk("1")],
        ] {
            assert!(matches!(
                decode(3, entry(fields)),
                Err(ClusterError::Malformed(_))
            ));
        }
        assert!(matches!(
            decode(3, Value::Nil),
            Err(ClusterError::Malformed(_))
        ));
    }
}
