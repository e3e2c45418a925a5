//! Room membership on one shard: which of this shard's sessions are in which room.
//!
//! A room is named by its namespace and its name. Each room holds a slab of members so a
//! member leaves in O(1) with the index it got when it joined; an empty room is dropped.
//! Only the owning shard touches its table (docs/ARCHITECTURE.md: no locks on the hot path);
//! a broadcast reaches the other shards' tables through the bus.

use std::collections::HashMap;

use slab::Slab;

use super::timers::SessionRef;
use crate::socketio::handler::RoomId;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomKey {
    pub nsp: String,
    pub room: RoomId,
}

/// Where one session sits in one room: what it needs to leave again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub key: RoomKey,
    pub slot: usize,
    /// Connection state recovery: the newest sequence of this room the session's client
    /// surely has (its join's, raised at each answered ping; `crate::socketio::recovery`).
    pub received: u64,
}

/// One member: its session, and the sequence number at or below which broadcasts are not
/// delivered to it (it got them another way, e.g. as history when it joined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub session: SessionRef,
    pub floor: u64,
}

/// Namespace → room → members; nested so a lookup borrows the namespace's `&str` and the
/// room's id without building a key (a broadcast's hot path).
#[derive(Default)]
pub struct Rooms {
    rooms: HashMap<String, HashMap<RoomId, Slab<Member>>>,
}

impl Rooms {
    /// Add `member` to the room; returns its membership.
    pub fn join(&mut self, key: RoomKey, member: Member) -> Membership {
        let slot = self
            .rooms
            .entry(key.nsp.clone())
            .or_default()
            .entry(key.room.clone())
            .or_default()
            .insert(member);
        Membership {
            key,
            slot,
            received: 0,
        }
    }

    /// Remove a membership returned by [`Rooms::join`].
    pub fn leave(&mut self, membership: &Membership) {
        let Some(rooms) = self.rooms.get_mut(&membership.key.nsp) else {
            return;
        };
        if let Some(members) = rooms.get_mut(&membership.key.room) {
            members.try_remove(membership.slot);
            if members.is_empty() {
                rooms.remove(&membership.key.room);
            }
        }
        if rooms.is_empty() {
            self.rooms.remove(&membership.key.nsp);
        }
    }

    /// The members of a room on this shard, walked in place (none if the room is empty).
    pub fn members<'a>(
        &'a self,
        nsp: &str,
        room: &RoomId,
    ) -> impl Iterator<Item = &'a Member> + 'a {
        self.rooms
            .get(nsp)
            .and_then(|rooms| rooms.get(room))
            .into_iter()
            .flat_map(|members| members.iter().map(|(_, m)| m))
    }

    /// How many members a room has on this shard.
    pub fn len_of(&self, nsp: &str, room: &RoomId) -> usize {
        self.rooms
            .get(nsp)
            .and_then(|rooms| rooms.get(room))
            .map_or(0, Slab::len)
    }

    /// Rooms with at least one member on this shard.
    pub fn count(&self) -> usize {
        self.rooms.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(room: &str) -> RoomKey {
        RoomKey {
            nsp: "/".into(),
            room: room.into(),
        }
    }

    #[test]
    fn join_and_leave_keep_the_table_exact() {
        let mut rooms = Rooms::default();
        let a = SessionRef::new(1, 1);
        let b = SessionRef::new(2, 2);
        let a = Member {
            session: a,
            floor: 0,
        };
        let b = Member {
            session: b,
            floor: 7,
        };
        let ma = rooms.join(key("book_1"), a);
        let mb = rooms.join(key("book_1"), b);
        let book_1 = RoomId::from("book_1");
        assert_eq!(rooms.len_of("/", &book_1), 2);
        assert_eq!(
            rooms.len_of("/", &RoomId::Number(1)),
            0,
            "a number is another room"
        );
        rooms.leave(&ma);
        assert_eq!(rooms.members("/", &book_1).collect::<Vec<_>>(), vec![&b]);
        rooms.leave(&mb);
        assert_eq!(rooms.members("/", &book_1).count(), 0);
        assert_eq!(rooms.count(), 0, "empty rooms are dropped");
        assert_eq!(rooms.len_of("/custom", &book_1), 0);
    }
}
