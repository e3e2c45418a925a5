//! The history cache: the newest [`HISTORY_LEN`] messages of recently used rooms, encoded once,
//! so a `joinRoom` neither reads RocksDB nor encodes a message.
//!
//! Each room's history is an immutable snapshot ([`RoomHistory`]: the messages' JSON texts,
//! newest first, and the newest sequence in it) behind an `Arc`, published in a map shared by
//! every shard ([`HistoryCache`]). Who writes what:
//!
//! - the room's **home shard** publishes a new snapshot after each stored batch and before it
//!   broadcasts the batch ([`HistoryCache::record_batch`]): the previous snapshot plus the new
//!   messages, or, when the previous one is not cached, the newest messages read back from the
//!   store. A failed write publishes nothing, so a message the store refused is never history.
//! - a **joining shard** takes the room's snapshot ([`HistoryCache::get`]); on a miss (a room
//!   not written since start, or evicted) it reads the store once and offers what it read
//!   ([`HistoryCache::offer`]), which is kept only if nothing newer was published meanwhile.
//!
//! Exactly once: the home publishes a snapshot before it broadcasts the messages in it, and a
//! joiner joins the room with a floor equal to the newest sequence of the snapshot it served,
//! so a message is either in the history a joiner got or delivered to it as `newMessage`,
//! never both and never neither. A joiner's offer read from the store is refused if it is
//! older than what the home last published for the room (a watermark kept even after the
//! room is evicted), so an evicted room cannot come back older than a broadcast already sent.
//!
//! Bounds: at most [`MAX_ROOMS`] rooms and about [`MAX_BYTES`] bytes (message texts plus their
//! bookkeeping), the least recently used rooms evicted first, split evenly over [`PARTS`]
//! independently locked parts; plus one watermark (a `u64`) per room written since start. An
//! evicted room is read from the store again at its next join or write.
//!
//! It never reads the store or takes a lock of another part while a part is locked, and never
//! holds a lock across a call back into the caller.

use crate::book::BookId;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use super::message::{encode_message, EncodedMessage};
use super::HISTORY_LEN;
use crate::store::StoredMessage;

/// Rooms the cache holds at most, all parts together.
pub const MAX_ROOMS: usize = 16_384;
/// Bytes the cached histories take at most, all parts together (about: see
/// [`RoomHistory::weight`]). A part always keeps its newest room, however large.
pub const MAX_BYTES: usize = 64 << 20;
/// Independently locked parts of the map: joins on different shards rarely wait on each
/// other or on a home publishing.
pub const PARTS: usize = 16;

/// Bytes a cached message costs beyond its text: the `Arc`'s counts and the slice's pointer.
const PER_MESSAGE: usize = 32;
/// Bytes a cached room costs beyond its messages: the snapshot and the map's entry.
const PER_ROOM: usize = 128;

/// One room's newest messages at one moment, immutable once published.
#[derive(Debug, Default)]
pub struct RoomHistory {
    /// The newest sequence in `messages` (0 for a room with none).
    newest_seq: u64,
    /// Message JSON texts, newest first, at most [`HISTORY_LEN`].
    messages: Box<[EncodedMessage]>,
}

impl RoomHistory {
    /// A room's history from its newest messages as the store gives them (newest first),
    /// each encoded here.
    pub fn from_stored(newest_first: &[StoredMessage]) -> RoomHistory {
        RoomHistory {
            newest_seq: newest_first.first().map_or(0, |m| m.seq),
            messages: newest_first
                .iter()
                .take(HISTORY_LEN)
                .map(encode_message)
                .collect(),
        }
    }

    /// The newest sequence in this history: the floor a joiner served it joins with.
    pub fn newest_seq(&self) -> u64 {
        self.newest_seq
    }

    /// The messages' JSON texts, newest first.
    pub fn messages(&self) -> &[EncodedMessage] {
        &self.messages
    }

    /// This history followed by `newer` (sequence and text, oldest first), cut to the newest
    /// [`HISTORY_LEN`]; `None` unless `newer` continues this history without a gap (its first
    /// sequence is `newest_seq + 1`, each next one more).
    pub fn extended(&self, newer: &[(u64, EncodedMessage)]) -> Option<RoomHistory> {
        let contiguous = newer
            .iter()
            .zip(self.newest_seq + 1..)
            .all(|((seq, _), expected)| *seq == expected);
        let (last, _) = newer.last()?;
        if !contiguous {
            return None;
        }
        let messages = newer
            .iter()
            .rev()
            .map(|(_, text)| Arc::clone(text))
            .chain(self.messages.iter().map(Arc::clone))
            .take(HISTORY_LEN)
            .collect();
        Some(RoomHistory {
            newest_seq: *last,
            messages,
        })
    }

    /// `["previousMessages",[<message>,...]]`: the data array of the event a joiner gets, the
    /// messages newest first (docs/API.md), their texts copied, not re-encoded.
    pub fn previous_messages_json(&self) -> Box<str> {
        const HEAD: &str = r#"["previousMessages",["#;
        const TAIL: &str = "]]";
        let texts: usize = self.messages.iter().map(|m| m.len() + 1).sum();
        let mut out = String::with_capacity(HEAD.len() + texts + TAIL.len());
        out.push_str(HEAD);
        for (i, message) in self.messages.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(message);
        }
        out.push_str(TAIL);
        out.into_boxed_str()
    }

    /// Bytes this snapshot is counted for in the cache's bound.
    pub fn weight(&self) -> usize {
        PER_ROOM
            + self
                .messages
                .iter()
                .map(|m| m.len() + PER_MESSAGE)
                .sum::<usize>()
    }
}

/// One independently locked part of the cache.
struct Part {
    rooms: LruCache<BookId, Arc<RoomHistory>>,
    /// Sum of the cached snapshots' weights.
    bytes: usize,
    /// The newest sequence the home published per room written since start, kept after
    /// eviction (see the module doc).
    published: HashMap<BookId, u64>,
}

impl Part {
    /// Cache `history` for `book`, replacing the room's snapshot, then evict the least
    /// recently used rooms while over `max_bytes` (the newest room always stays).
    fn insert(&mut self, book: BookId, history: Arc<RoomHistory>, max_bytes: usize) {
        self.bytes += history.weight();
        if let Some((_, gone)) = self.rooms.push(book, history) {
            self.bytes = self.bytes.saturating_sub(gone.weight());
        }
        while self.bytes > max_bytes && self.rooms.len() > 1 {
            match self.rooms.pop_lru() {
                Some((_, gone)) => self.bytes = self.bytes.saturating_sub(gone.weight()),
                None => break,
            }
        }
    }
}

/// The rooms' cached histories, shared by every shard (see the module doc).
pub struct HistoryCache {
    parts: [Mutex<Part>; PARTS],
    part_bytes: usize,
}

impl Default for HistoryCache {
    fn default() -> Self {
        HistoryCache::new(MAX_ROOMS, MAX_BYTES)
    }
}

impl HistoryCache {
    /// A cache of at most `max_rooms` rooms and about `max_bytes` bytes (each split evenly
    /// over [`PARTS`] parts, at least one room per part).
    pub fn new(max_rooms: usize, max_bytes: usize) -> HistoryCache {
        let rooms = NonZeroUsize::new(max_rooms / PARTS).unwrap_or(NonZeroUsize::MIN);
        let parts = std::array::from_fn(|_| {
            Mutex::new(Part {
                rooms: LruCache::new(rooms),
                bytes: 0,
                published: HashMap::new(),
            })
        });
        HistoryCache {
            parts,
            part_bytes: max_bytes / PARTS,
        }
    }

    fn part(&self, book: BookId) -> MutexGuard<'_, Part> {
        // The top bits of a Fibonacci hash: consecutive book ids land in different parts.
        let index = (book.get().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % PARTS;
        let part = match self.parts.get(index) {
            Some(part) => part,
            // `index` is below PARTS, the parts' count; the first part is never missing.
            None => &self.parts[0],
        };
        // A panic while a part was locked left it consistent (each change is one push or
        // pop), so a poisoned lock is taken over.
        part.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The room's cached history, if any (marking it recently used).
    pub fn get(&self, book: BookId) -> Option<Arc<RoomHistory>> {
        self.part(book).rooms.get(&book).cloned()
    }

    /// A joiner's history read from the store for a room it found uncached: cached unless
    /// the home has published the room at a newer sequence, or a snapshot at least as new is
    /// cached already. Whether it was kept.
    pub fn offer(&self, book: BookId, history: Arc<RoomHistory>) -> bool {
        let max_bytes = self.part_bytes;
        let mut part = self.part(book);
        let published = part.published.get(&book).copied().unwrap_or(0);
        let cached = part.rooms.peek(&book).map(|h| h.newest_seq);
        let newer =
            history.newest_seq >= published && cached.is_none_or(|seq| seq < history.newest_seq);
        if newer {
            part.insert(book, history, max_bytes);
        }
        newer
    }

    /// The home shard stored a batch: publish each of its rooms' new history before the
    /// batch is broadcast. `stored` is the batch in storing order, each message with its
    /// encoded text; `reload` reads a room's newest [`HISTORY_LEN`] from the store (newest
    /// first), for a room whose previous history is not cached. A room whose reload fails is
    /// dropped from the cache (its next join reads the store).
    pub fn record_batch<E>(
        &self,
        stored: &[(&StoredMessage, &EncodedMessage)],
        mut reload: impl FnMut(BookId) -> Result<Vec<StoredMessage>, E>,
    ) {
        let mut newer: Vec<(u64, EncodedMessage)> = Vec::new();
        for (i, (message, _)) in stored.iter().enumerate() {
            let book = message.book_id;
            if stored.iter().take(i).any(|(m, _)| m.book_id == book) {
                continue; // this room was published with its first message
            }
            newer.clear();
            newer.extend(
                stored
                    .iter()
                    .skip(i)
                    .filter(|(m, _)| m.book_id == book)
                    .map(|(m, text)| (m.seq, Arc::clone(text))),
            );
            let Some(&(newest, _)) = newer.last() else {
                continue;
            };
            let base = self.part(book).rooms.peek(&book).cloned();
            let history = match base.and_then(|base| base.extended(&newer)) {
                Some(history) => Some(history),
                // Not cached (never read, or evicted) or not contiguous: read back what is
                // stored now, this batch included. The new messages keep their texts.
                None => reload(book).ok().map(|messages| RoomHistory {
                    newest_seq: messages.first().map_or(0, |m| m.seq),
                    messages: messages
                        .iter()
                        .take(HISTORY_LEN)
                        .map(|m| match newer.iter().find(|(seq, _)| *seq == m.seq) {
                            Some((_, text)) => Arc::clone(text),
                            None => encode_message(m),
                        })
                        .collect(),
                }),
            };
            self.publish(book, newest, history.map(Arc::new));
        }
    }

    /// Record that the home stored `book` up to `newest`, and cache `history` (its newest
    /// messages up to there), or drop the room when there is none.
    fn publish(&self, book: BookId, newest: u64, history: Option<Arc<RoomHistory>>) {
        let max_bytes = self.part_bytes;
        let mut part = self.part(book);
        let watermark = part.published.entry(book).or_insert(0);
        *watermark = (*watermark).max(newest);
        match history {
            Some(history) => part.insert(book, history, max_bytes),
            None => {
                if let Some(gone) = part.rooms.pop(&book) {
                    part.bytes = part.bytes.saturating_sub(gone.weight());
                }
            }
        }
    }

    /// Rooms cached now and the bytes they are counted for, all parts together.
    pub fn usage(&self) -> (usize, usize) {
        self.parts.iter().fold((0, 0), |(rooms, bytes), part| {
            let part = part.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            (rooms + part.rooms.len(), bytes + part.bytes)
        })
    }
}

#[cfg(test)]
mod tests;
