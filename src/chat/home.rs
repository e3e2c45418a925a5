//! The home shard of a room: the one place that numbers, stores and broadcasts its messages.
//!
//! Every room (book) has a home shard chosen from its book id. A `chatMessage` is checked on
//! the sender's shard, then forwarded here; the home shard gives it the room's next sequence
//! number and an `_id`, gathers the turn's messages into one RocksDB write batch (group
//! commit), and only after the batch is stored broadcasts each `newMessage` — in sequence
//! order, so every member on every shard sees one order, equal to `_id` order and history
//! order — and answers each sender. A failed write broadcasts nothing and answers
//! `unavailable`. Before broadcasting, the turn end publishes each room's new history to the
//! shared history cache (`history`); joins take it on the member's own shard and join with a
//! floor of the newest sequence they served, so a message is seen once: as history or as
//! `newMessage`.
//!
//! # Presence in the same order
//!
//! The home also keeps each room's roster (`presence`): joins, leaves and the leaves of a
//! disconnect are forwarded here like messages, and `userJoined`/`userLeft` are broadcast from
//! here, into the same stream as the room's `newMessage`s. The joiner is put into the room
//! (and gets `previousMessages`, its ack with `members` and `memberCount`) only when the
//! home's answer ([`JoinAnswer`]) reaches its shard. Why every member then sees one order and
//! every message exactly once:
//!
//! 1. Everything the home sends one shard — broadcasts, acks, answers — arrives there in the
//!    order it was sent (one FIFO inbox per shard; on the home's own shard, commands run in
//!    order at once). So each shard, and each member on it, sees the home's broadcasts of a
//!    room in the home's order: presence and messages in one order, the same for all.
//! 2. The home handles the join at one point P of its stream. The answer is sent at P, so on
//!    the joiner's shard every broadcast the home sent before P has been delivered before the
//!    joiner is in the room (it gets none of them), and every one sent after P is delivered
//!    after (it gets all of them). Presence before P is in the answer's `members`, presence
//!    after P arrives as events.
//! 3. The history in the answer is read at P and holds exactly the messages broadcast before
//!    P: messages are broadcast only at the turn end that stored them, right after they are
//!    published to the history cache (or are in the store, which a cache miss reads); a
//!    message numbered but not yet stored at P is broadcast after P. The joiner also joins
//!    with the floor of the newest sequence it was served, so even a message that raced
//!    differently could not come twice.
//! 4. A request from one connection reaches the home in the order it was sent (its shard's
//!    sends to the home are FIFO), so a join, a post and a leave of one connection are handled
//!    in the order the client sent them. A leave of a join not yet answered, or a second join
//!    before the first answer, is told apart by the join's token (`chat::Reader`): a stale
//!    answer sends `previousMessages` and the ack but puts nobody in the room.

use crate::book::BookId;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::socketio::handler::{ShardOf, SocketRef};
use crate::store::{BookTail, IdGenerator, StoredMessage, StoredValue};
use crate::time::now_millis;

use super::errors::{ChatError, ErrorCode};
use super::history::RoomHistory;
use super::message::{book_room, encode_message, new_message_json, presence};
use super::presence::{Presence, Rosters};
use super::validate::MessageRequest;
use super::{ChatApp, ChatForward};

/// The home shard of a book among `shards`.
pub fn home_shard(book_id: BookId, shards: usize) -> usize {
    // Fibonacci hashing spreads consecutive book ids over the shards.
    let mixed = book_id.get().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    (mixed % shards.max(1) as u64) as usize
}

/// A message on its way to its home shard, with where to send the answer.
#[derive(Debug)]
pub struct Post {
    pub request: MessageRequest,
    pub reply_to: SocketRef,
    pub ack_id: Option<u64>,
}

/// A message numbered and waiting for the turn's batch.
#[derive(Debug)]
pub struct Pending {
    pub message: StoredMessage,
    pub reply_to: SocketRef,
    pub ack_id: Option<u64>,
}

/// A connection joining a room, on its way to the room's home shard (answered with a
/// [`JoinAnswer`] to `conn`).
#[derive(Debug)]
pub struct JoinAtHome {
    pub book_id: BookId,
    pub user_id: String,
    pub username: String,
    /// The joining socket: where the answer goes, and its place in the roster.
    pub conn: SocketRef,
    pub ack_id: Option<u64>,
    /// The join's token on its connection (`chat::Reader`), handed back in the answer.
    pub token: u32,
    /// Whether the connection was not in the room yet (a repeated join only resends history).
    pub first: bool,
    /// Whether this join bound the connection's userId (undone if it fails).
    pub binds: bool,
}

/// A connection leaving a room (`leaveRoom`, or its disconnect), on its way to the home.
#[derive(Debug)]
pub struct LeaveAtHome {
    pub book_id: BookId,
    pub conn: SocketRef,
    /// The connection's reader (its bound userId).
    pub user_id: String,
    /// Cluster mode: the connection's name in the log when it is not `conn` of this run (a
    /// kept reader's, `recovery::Kept::log_conn`).
    pub log_conn: Option<String>,
}

/// `roomMembers`, on its way to the home, answered through the ack of `reply_to`.
#[derive(Debug)]
pub struct MembersAtHome {
    pub book_id: BookId,
    pub reply_to: SocketRef,
    pub ack_id: u64,
}

/// A recovered connection coming back into a room (`chat::recovery`), on its way to the home:
/// answered with a [`RecoveredRoom`] to `conn`.
#[derive(Debug)]
pub struct RecoverAtHome {
    pub book_id: BookId,
    /// The newest sequence of the room the reader has.
    pub after: u64,
    /// Its dropped connection's place in the roster (after a restart, the place the kept
    /// reader was given; None when it had none).
    pub old: Option<SocketRef>,
    /// Cluster mode: its dropped connection's name in the log (`recovery::Kept::log_conn`).
    pub old_log_conn: Option<String>,
    pub conn: SocketRef,
    pub user_id: String,
    pub username: String,
}

/// The home's answer to a recovery: every message the reader missed, oldest first, encoded
/// as `newMessage` data arrays with their offsets; the reader joins above `floor`.
#[derive(Debug)]
pub struct RecoveredRoom {
    pub book_id: BookId,
    /// What the reader had (its replay's `received`).
    pub after: u64,
    /// `(seq, ["newMessage", message, offset])` for each missed message, in room order; or
    /// why they could not be read (the reader is then disconnected, never left with a gap).
    pub replay: Result<Vec<(u64, Box<str>)>, ChatError>,
    /// The newest sequence broadcast before this answer: the reader joins above it.
    pub floor: u64,
}

/// What the home answers a join: the room as of the join (or why it failed).
#[derive(Debug)]
pub struct JoinAnswer {
    pub book_id: BookId,
    pub token: u32,
    pub first: bool,
    pub binds: bool,
    pub ack_id: Option<u64>,
    pub result: Result<RoomAtJoin, ChatError>,
}

/// The room at the moment the home handled a join.
#[derive(Debug)]
pub struct RoomAtJoin {
    /// The newest messages broadcast before the join (`previousMessages`).
    pub history: Arc<RoomHistory>,
    /// `[{userId, username}]`, the joiner first, at most `presence::MAX_LISTED`.
    pub members: Vec<Value>,
    /// Readers in the room, the joiner included.
    pub member_count: usize,
}

/// The chat's state on one shard, as the home of its rooms.
#[derive(Default)]
pub struct HomeShard {
    /// Who is in each room homed here (`presence`).
    pub rosters: Rosters,
    /// Where each room written to since start stands (loaded from the store on first use).
    tails: HashMap<BookId, BookTail>,
    /// This turn's messages, in the order they were numbered.
    pub pending: Vec<Pending>,
    ids: Option<IdGenerator>,
    /// Whether this shard put the readers a restart kept back into its rosters
    /// (`recovery::Recovery::restore_places`, at its first turn).
    pub restored: bool,
    /// Cluster mode: what waits for the log here (`cluster`).
    pub log: super::log_state::LogState<JoinAtHome>,
}

impl HomeShard {
    /// Number a message for the batch. `load_tail` reads the room's tail from the store the
    /// first time the room is written here.
    pub fn number<E>(
        &mut self,
        shard: usize,
        post: Post,
        load_tail: impl FnOnce(BookId) -> Result<BookTail, E>,
    ) -> Result<(), (Box<Post>, E)> {
        let book_id = post.request.book_id;
        let tail = match self.tails.get(&book_id) {
            Some(tail) => *tail,
            None => match load_tail(book_id) {
                Ok(tail) => tail,
                Err(e) => return Err((Box::new(post), e)),
            },
        };
        // Milliseconds never go backwards within a room, so `_id`s keep history order even
        // if the clock does.
        // `_id`s grow with the sequence even when this run's counter or shard would give a
        // lower one in the same millisecond (`IdGenerator::next_after`): `loadHistory` pages
        // below an `_id` (`store::Store::page`).
        let created_ms = now_millis().max(tail.created_ms);
        let seq = tail.seq + 1;
        let id = self
            .ids
            .get_or_insert_with(|| IdGenerator::new(shard))
            .next_after(created_ms, tail.id);
        self.tails.insert(
            book_id,
            BookTail {
                seq,
                created_ms,
                id,
            },
        );
        let MessageRequest {
            user_id,
            username,
            content,
            ..
        } = post.request;
        self.pending.push(Pending {
            message: StoredMessage {
                book_id,
                seq,
                value: StoredValue {
                    created_ms,
                    id,
                    user_id,
                    username,
                    content,
                },
            },
            reply_to: post.reply_to,
            ack_id: post.ack_id,
        });
        Ok(())
    }

    /// The batch failed: forget the tails of its rooms so they are read again from the store.
    pub fn forget_tails(&mut self, failed: &[Pending]) {
        for pending in failed {
            self.tails.remove(&pending.message.book_id);
        }
    }
}

impl ChatApp {
    /// A join reached its room's home: read the history, enter the roster, tell the others
    /// if the reader entered, answer the joiner (see the module doc for the order).
    pub(super) fn join_at_home(&self, shard: &mut ShardOf<'_, ChatApp>, join: JoinAtHome) {
        if let Some(cluster) = &self.cluster {
            self.log_join(cluster, shard, join);
            return;
        }
        let key = (join.conn.shard, join.conn.session);
        let rosters = &mut shard.state.rosters;
        if let Presence::Entered(name) =
            rosters.join(join.book_id, key, &join.user_id, &join.username)
        {
            // The joiner is not in the room yet on its shard: the answer comes after.
            let event = vec![presence(&name, now_millis())];
            shard.broadcast("/", book_room(join.book_id), "userJoined", event, None);
        }
        self.answer_join(shard, join);
    }

    /// Answer a join with the room as it is now at its home: the history, the members (the
    /// joiner first) and the count.
    pub(super) fn answer_join(&self, shard: &mut ShardOf<'_, ChatApp>, join: JoinAtHome) {
        let JoinAtHome {
            book_id,
            user_id,
            conn,
            ack_id,
            token,
            first,
            binds,
            ..
        } = join;
        let result = self.room_history(book_id).map(|history| {
            let (members, member_count) = shard.state.rosters.answer(book_id, Some(&user_id));
            RoomAtJoin {
                history,
                members,
                member_count,
            }
        });
        if let Err(error) = &result {
            self.count_error(shard.index, "joinRoom", error);
        }
        let answer = JoinAnswer {
            book_id,
            token,
            first,
            binds,
            ack_id,
            result,
        };
        shard.forward_to_socket(conn, ChatForward::Joined(Box::new(answer)));
    }

    /// A connection left a room: out of the roster; `userLeft` if it was its reader's last.
    pub(super) fn leave_at_home(&self, shard: &mut ShardOf<'_, ChatApp>, leave: LeaveAtHome) {
        if let Some(cluster) = &self.cluster {
            self.log_leave(cluster, shard, leave);
            return;
        }
        let key = (leave.conn.shard, leave.conn.session);
        if let Presence::Left(name) = shard
            .state
            .rosters
            .leave(leave.book_id, key, &leave.user_id)
        {
            let event = vec![presence(&name, now_millis())];
            // A disconnecting socket is still in its rooms while its leaves are handled (at
            // once when this shard is its own): it must not get its own `userLeft`.
            let room = book_room(leave.book_id);
            shard.broadcast_except("/", room, "userLeft", event, leave.conn);
        }
    }

    /// A recovered connection is back: it takes its old place in the roster (nobody is told)
    /// and gets every message of the room after `after` from the store, then joins above the
    /// newest of them. As for a join (module doc), the answer is sent at one point of the
    /// room's stream: every message broadcast before it is in the store and so in the
    /// replay, every one after reaches the reader as a broadcast.
    pub(super) fn recover_at_home(&self, shard: &mut ShardOf<'_, ChatApp>, back: RecoverAtHome) {
        if let Some(cluster) = &self.cluster {
            // Its old place is given up through the log (`cluster::log_rebind`).
            self.log_rebind(cluster, shard, &back);
        }
        let RecoverAtHome {
            book_id,
            after,
            old,
            old_log_conn: _,
            conn,
            user_id,
            username,
        } = back;
        if self.cluster.is_none() {
            let old = old.map(|old| (old.shard, old.session));
            let key = (conn.shard, conn.session);
            shard
                .state
                .rosters
                .rebind(book_id, old, key, &user_id, &username);
        }
        let read = self
            .store
            .after(book_id, after, super::recovery::MAX_REPLAY * 2);
        let (replay, floor) = match read {
            Ok((messages, false)) => {
                let floor = messages.last().map_or(after, |m| m.seq);
                let replay = messages
                    .iter()
                    .map(|m| (m.seq, new_message_json(&encode_message(m), book_id, m.seq)))
                    .collect();
                (Ok(replay), floor)
            }
            Ok((_, true)) => (
                Err(ChatError::new(
                    ErrorCode::Unavailable,
                    "too many messages missed to replay",
                )),
                after,
            ),
            Err(error) => (
                Err(ChatError::new(ErrorCode::Unavailable, error.to_string())),
                after,
            ),
        };
        let answer = RecoveredRoom {
            book_id,
            after,
            replay,
            floor,
        };
        shard.forward_to_socket(conn, ChatForward::Recovered(Box::new(answer)));
    }

    /// `roomMembers`: the room's readers now, through the asker's ack.
    pub(super) fn members_at_home(&self, shard: &mut ShardOf<'_, ChatApp>, ask: MembersAtHome) {
        let (members, count) = shard.state.rosters.answer(ask.book_id, None);
        let body = json!({ "ok": true, "members": members, "memberCount": count });
        shard.ack_to(ask.reply_to, ask.ack_id, vec![body]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A room whose newest stored `_id` is above what this run's generator gives in the same
    /// millisecond (a restart within it, a counter that started higher, another shard): the
    /// next message's `_id` still sorts after it, and the one after that after it.
    #[test]
    fn ids_keep_growing_past_a_stored_tail_from_a_previous_run() {
        use crate::engineio::session::SessionRef;
        use crate::store::MessageId;
        let future_ms = now_millis() + 60_000;
        let tail_id = MessageId({
            let mut id = [0xff; 12];
            id[..6].copy_from_slice(&future_ms.to_be_bytes()[2..]);
            id
        });
        let post = || Post {
            request: MessageRequest {
                book_id: BookId(9),
                user_id: "u".into(),
                username: "n".into(),
                content: "c".into(),
            },
            reply_to: SocketRef {
                shard: 0,
                session: SessionRef::new(0, 0),
                nsp: "/".into(),
            },
            ack_id: None,
        };
        let mut home = HomeShard::default();
        home.number(0, post(), |_| {
            Ok::<_, ()>(BookTail {
                seq: 41,
                created_ms: future_ms,
                id: tail_id,
            })
        })
        .unwrap();
        home.number(0, post(), |_| Err(())).unwrap();
        let [first, second] = &home.pending[..] else {
            panic!("two messages numbered")
        };
        assert_eq!((first.message.seq, second.message.seq), (42, 43));
        assert!(
            first.message.value.id > tail_id,
            "{:?}",
            first.message.value.id
        );
        assert!(second.message.value.id > first.message.value.id);
        assert_eq!(first.message.value.created_ms, future_ms);
    }

    #[test]
    fn home_shards_spread_consecutive_books() {
        let mut counts = [0usize; 4];
        for book in 1..=4000u64 {
            counts[home_shard(BookId(book), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(home_shard(BookId(2701), 1), 0);
    }
}
