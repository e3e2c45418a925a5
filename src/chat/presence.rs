//! Who is in each room, per reader: the rosters a home shard keeps for its rooms.
//!
//! A reader is a `userId` (docs/API.md, "Presence is per reader"). A room's [`Roster`] knows
//! each reader in the room, with its username (that of the reader's first connection to join)
//! and its connections there. A connection entering
//! makes its reader enter only if none of the reader's connections was in the room
//! ([`Presence::Entered`] → `userJoined`); a connection leaving makes its reader leave only if
//! it was the reader's last ([`Presence::Left`] → `userLeft`). A second tab tells nobody.
//!
//! Rosters know each reader's connections, not just their count: a connection joining twice is
//! counted once, and a connection leaving a room it is not in (its join failed, or it left
//! already) changes nothing, so a roster can never drift from the connections really in the
//! room. A reader with one connection (the common case) costs one map entry and its two
//! strings.
//!
//! Owns the rosters and nothing else: it never sends, never reads the store, never looks at
//! another shard. The home shard (`home`, `chat::on_forward`) calls it in the room's order and
//! broadcasts what it answers. Memory is bounded by the room's connections: a connection's
//! entry goes when it leaves, a reader's with its last connection, a room's with its last
//! reader.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::book::BookId;
use crate::socketio::handler::SessionRef;

/// Most readers listed in a `members` answer (docs/API.md, "Who is here").
pub const MAX_LISTED: usize = 100;

/// One connection anywhere in the server: its shard and its session there (the chat lives in
/// the default namespace only).
pub type ConnKey = (usize, SessionRef);

/// What a join or a leave did to the room's readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The reader had no connection in the room and now has one: `userJoined { username }`.
    Entered(String),
    /// The reader's last connection left: `userLeft { username }` (the reader's username).
    Left(String),
    /// The room's readers are the same (a second tab, a repeated join, an unknown leave).
    Unchanged,
}

/// One reader of a room: its username and its connections there (the first one kept inline,
/// so a reader with one tab costs no allocation for it).
#[derive(Debug)]
struct Reader {
    /// The username of the reader's first connection to join.
    username: Box<str>,
    first: ConnKey,
    /// The reader's other connections in the room (empty, unallocated, for one tab).
    more: Vec<ConnKey>,
}

impl Reader {
    fn has(&self, conn: &ConnKey) -> bool {
        self.first == *conn || self.more.contains(conn)
    }

    /// Take `conn` out; whether it was the reader's last connection.
    fn remove(&mut self, conn: &ConnKey) -> bool {
        if self.first == *conn {
            match self.more.pop() {
                Some(next) => self.first = next,
                None => return true,
            }
        } else if let Some(i) = self.more.iter().position(|c| c == conn) {
            self.more.swap_remove(i);
        }
        false
    }
}

/// One room's readers, by userId.
#[derive(Debug, Default)]
pub struct Roster {
    readers: HashMap<Box<str>, Reader>,
}

impl Roster {
    /// How many readers (distinct userIds) are in the room.
    pub fn reader_count(&self) -> usize {
        self.readers.len()
    }

    /// `[{userId, username}]`: at most `max` readers, `first` (when in the room) among them
    /// and listed first, each once; the rest in no particular order.
    pub fn members(&self, first: Option<&str>, max: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(self.readers.len().min(max));
        let first = first.and_then(|id| self.readers.get_key_value(id));
        if let Some((id, reader)) = first {
            if max > 0 {
                out.push(member_json(id, reader));
            }
        }
        let first_id = first.map(|(id, _)| &**id);
        for (id, reader) in &self.readers {
            if out.len() >= max {
                break;
            }
            if Some(&**id) != first_id {
                out.push(member_json(id, reader));
            }
        }
        out
    }
}

fn member_json(user_id: &str, reader: &Reader) -> Value {
    json!({ "userId": user_id, "username": &*reader.username })
}

/// The rosters of the rooms one home shard owns.
#[derive(Debug, Default)]
pub struct Rosters {
    rooms: HashMap<BookId, Roster>,
}

impl Rosters {
    /// Connection `conn` of reader `user_id` (calling itself `username`) joins `book`.
    pub fn join(&mut self, book: BookId, conn: ConnKey, user_id: &str, username: &str) -> Presence {
        let roster = self.rooms.entry(book).or_default();
        match roster.readers.get_mut(user_id) {
            Some(reader) if reader.has(&conn) => Presence::Unchanged,
            Some(reader) => {
                if reader.more.capacity() == 0 {
                    reader.more.reserve_exact(1);
                }
                reader.more.push(conn);
                Presence::Unchanged
            }
            None => {
                let reader = Reader {
                    username: username.into(),
                    first: conn,
                    more: Vec::new(),
                };
                roster.readers.insert(user_id.into(), reader);
                Presence::Entered(username.to_owned())
            }
        }
    }

    /// Connection `conn` of reader `user_id` leaves `book` (a `leaveRoom`, or its
    /// disconnect). A connection not in the room changes nothing.
    pub fn leave(&mut self, book: BookId, conn: ConnKey, user_id: &str) -> Presence {
        let Some(roster) = self.rooms.get_mut(&book) else {
            return Presence::Unchanged;
        };
        let Some(reader) = roster.readers.get_mut(user_id) else {
            return Presence::Unchanged;
        };
        if !reader.has(&conn) || !reader.remove(&conn) {
            return Presence::Unchanged;
        }
        let username = roster
            .readers
            .remove(user_id)
            .map(|reader| reader.username.into_string())
            .unwrap_or_default();
        if roster.readers.is_empty() {
            self.rooms.remove(&book);
        }
        Presence::Left(username)
    }

    /// A recovered connection takes the place of the dropped one it was (`old`, None after
    /// a restart) in `book`, telling nobody: its reader never left (docs/API.md,
    /// "Reconnecting without losing messages"). If `old` is not in the room (a restart
    /// emptied the rosters), `conn` is added as a join would, but silently.
    pub fn rebind(
        &mut self,
        book: BookId,
        old: Option<ConnKey>,
        conn: ConnKey,
        user_id: &str,
        username: &str,
    ) {
        let held = self
            .rooms
            .get_mut(&book)
            .and_then(|roster| roster.readers.get_mut(user_id))
            .zip(old)
            .filter(|(reader, old)| reader.has(old));
        match held {
            Some((reader, old)) => {
                if reader.first == old {
                    reader.first = conn;
                } else if let Some(slot) = reader.more.iter_mut().find(|c| **c == old) {
                    *slot = conn;
                }
            }
            None => {
                let _silent = self.join(book, conn, user_id, username);
            }
        }
    }

    /// The room's roster (`None` for a room nobody is in).
    pub fn room(&self, book: BookId) -> Option<&Roster> {
        self.rooms.get(&book)
    }

    /// `(members, memberCount)` of `book` for an answer: at most [`MAX_LISTED`] readers,
    /// `first` among them when in the room.
    pub fn answer(&self, book: BookId, first: Option<&str>) -> (Vec<Value>, usize) {
        match self.room(book) {
            Some(roster) => (roster.members(first, MAX_LISTED), roster.reader_count()),
            None => (Vec::new(), 0),
        }
    }

    /// Every connection in every room: `(book, connection, userId, username)`.
    pub fn connections(&self) -> impl Iterator<Item = (BookId, ConnKey, &str, &str)> + '_ {
        self.rooms.iter().flat_map(|(book, roster)| {
            roster.readers.iter().flat_map(move |(user, reader)| {
                std::iter::once(reader.first)
                    .chain(reader.more.iter().copied())
                    .map(move |conn| (*book, conn, &**user, &*reader.username))
            })
        })
    }

    /// How many rooms have a roster (each has at least one reader).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recovered_connection_takes_the_dropped_ones_place_silently() {
        let mut rosters = Rosters::default();
        let book = BookId(5);
        assert_eq!(
            rosters.join(book, conn(1), "u", "Ann"),
            Presence::Entered("Ann".into())
        );
        assert_eq!(rosters.join(book, conn(2), "u", "Ann"), Presence::Unchanged);
        rosters.rebind(book, Some(conn(2)), conn(3), "u", "Ann");
        assert_eq!(
            rosters.leave(book, conn(2), "u"),
            Presence::Unchanged,
            "replaced"
        );
        assert_eq!(
            rosters.leave(book, conn(1), "u"),
            Presence::Unchanged,
            "conn 3 is still in"
        );
        assert_eq!(
            rosters.leave(book, conn(3), "u"),
            Presence::Left("Ann".into())
        );
        // After a restart: nobody to replace, the reader is back in the room all the same.
        rosters.rebind(book, None, conn(4), "v", "Bob");
        assert_eq!(rosters.answer(book, None).1, 1);
        assert_eq!(
            rosters.leave(book, conn(4), "v"),
            Presence::Left("Bob".into())
        );
    }

    fn conn(n: usize) -> ConnKey {
        (
            n % 2,
            SessionRef {
                key: n,
                generation: 1,
            },
        )
    }

    const BOOK: BookId = BookId(2701);

    #[test]
    fn a_reader_enters_with_the_first_connection_and_leaves_with_the_last() {
        let mut r = Rosters::default();
        assert_eq!(
            r.join(BOOK, conn(1), "u1", "Ishmael"),
            Presence::Entered("Ishmael".into())
        );
        // A second tab, under another name: nobody is told, the first name stays.
        assert_eq!(r.join(BOOK, conn(2), "u1", "Ish"), Presence::Unchanged);
        // The same connection again: counted once.
        assert_eq!(r.join(BOOK, conn(1), "u1", "Ishmael"), Presence::Unchanged);
        assert_eq!(r.join(BOOK, conn(3), "u1", "Ish"), Presence::Unchanged);
        assert_eq!(
            r.leave(BOOK, conn(3), "u1"),
            Presence::Unchanged,
            "a middle tab"
        );
        assert_eq!(
            r.answer(BOOK, None),
            (vec![json!({"userId": "u1", "username": "Ishmael"})], 1)
        );
        assert_eq!(r.leave(BOOK, conn(1), "u1"), Presence::Unchanged);
        assert_eq!(
            r.leave(BOOK, conn(1), "u1"),
            Presence::Unchanged,
            "left already"
        );
        assert_eq!(
            r.leave(BOOK, conn(2), "u1"),
            Presence::Left("Ishmael".into())
        );
        assert_eq!(r.room_count(), 0, "an empty room's roster is dropped");
        assert_eq!(r.leave(BOOK, conn(2), "u1"), Presence::Unchanged);
    }

    #[test]
    fn a_leave_of_a_connection_never_joined_changes_nothing() {
        let mut r = Rosters::default();
        r.join(BOOK, conn(1), "u1", "A");
        assert_eq!(r.leave(BOOK, conn(9), "u1"), Presence::Unchanged);
        assert_eq!(
            r.leave(BOOK, conn(1), "u2"),
            Presence::Unchanged,
            "another reader's"
        );
        assert_eq!(r.leave(BookId(1), conn(1), "u1"), Presence::Unchanged);
        assert_eq!(r.answer(BOOK, None).1, 1);
    }

    #[test]
    fn members_are_capped_and_list_the_first_reader_asked_for() {
        let mut r = Rosters::default();
        for i in 0..250 {
            r.join(BOOK, conn(i), &format!("u{i}"), &format!("name {i}"));
        }
        let (members, count) = r.answer(BOOK, Some("u249"));
        assert_eq!(count, 250);
        assert_eq!(members.len(), MAX_LISTED);
        assert_eq!(
            members[0],
            json!({"userId": "u249", "username": "name 249"})
        );
        let mut ids: Vec<&str> = members
            .iter()
            .filter_map(|m| m["userId"].as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), MAX_LISTED, "each reader once");
        let (members, _) = r.answer(BOOK, Some("nobody"));
        assert_eq!(members.len(), MAX_LISTED);
    }
}
