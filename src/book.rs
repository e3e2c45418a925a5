//! What a book is to the server: its id. A book id names the book's chat room, its history in
//! the store (the key prefix) and its home shard, so one type carries it everywhere instead of
//! a bare `u64`.
//!
//! Owns the type only; the rule for which ids a client may send (1 to 2^53−1, docs/API.md) is
//! the chat's (`chat::validate::book_id`).

use serde::Serialize;

/// A book's id. Serialised as the bare number (`"bookId": 2701`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BookId(pub u64);

impl BookId {
    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for BookId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
