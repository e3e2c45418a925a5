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

use crate::book::BookId;
use std::collections::HashMap;

use crate::socketio::handler::SocketRef;
use crate::store::{BookTail, IdGenerator, StoredMessage, StoredValue};
use crate::time::now_millis;

use super::validate::MessageRequest;

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

/// The chat's state on one shard, as the home of its rooms.
#[derive(Default)]
pub struct HomeShard {
    /// Where each room written to since start stands (loaded from the store on first use).
    tails: HashMap<BookId, BookTail>,
    /// This turn's messages, in the order they were numbered.
    pub pending: Vec<Pending>,
    ids: Option<IdGenerator>,
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
