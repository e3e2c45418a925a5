//! The message store on RocksDB: appends in write batches, the newest N of a book, and where
//! each book's sequence stands.
//!
//! Owns the database handle and the on-disk layout (`key`: bookId ‖ !seq; `codec`: the value).
//! Never assigns sequences or ids itself — the room's home shard does (see `chat`) — so one
//! writer per room keeps history order equal to broadcast order. Writes always go through the
//! WAL before returning, so a crash of the process loses nothing a caller was told is stored;
//! with `sync_writes` each batch is also fsynced, for power loss.

pub mod backup;
pub mod codec;
pub mod id;
pub mod key;

use crate::book::BookId;
use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Direction, IteratorMode, Options, ReadOptions, SliceTransform, WriteBatch,
    WriteOptions, DB,
};

pub use codec::StoredValue;
pub use id::{IdGenerator, MessageId};

/// Bloom filter bits per key: ~1% false positives, so a read of an empty book rarely
/// touches a data block.
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// A stored message with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub book_id: BookId,
    pub seq: u64,
    pub value: StoredValue,
}

/// A store failure (I/O, corruption, a full disk): the caller answers `unavailable`.
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError(e.into_string())
    }
}

/// Where a book's history ends: its newest sequence and that message's creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BookTail {
    pub seq: u64,
    pub created_ms: u64,
}

pub struct Store {
    db: DB,
    sync_writes: bool,
}

impl Store {
    /// Open (creating if needed) the store in `path`.
    pub fn open(path: &Path, sync_writes: bool) -> Result<Store, StoreError> {
        let mut options = Self::options();
        options.create_if_missing(true);
        let db = DB::open(&options, path)?;
        Ok(Store { db, sync_writes })
    }

    /// The database options of the store's layout (prefix bloom filters on book ids).
    fn options() -> Options {
        let mut options = Options::default();
        options.set_prefix_extractor(SliceTransform::create_fixed_prefix(key::PREFIX_LEN));
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
        options.set_block_based_table_factory(&table);
        options.set_memtable_prefix_bloom_ratio(0.1);
        options
    }

    /// Write messages as one batch: all or none are stored.
    pub fn append<'a>(
        &self,
        messages: impl IntoIterator<Item = &'a StoredMessage>,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let mut value = Vec::with_capacity(256);
        for message in messages {
            value.clear();
            codec::encode(&message.value, &mut value);
            batch.put(key::encode(message.book_id.get(), message.seq), &value);
        }
        let mut options = WriteOptions::default();
        options.set_sync(self.sync_writes);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// The newest `limit` messages of a book, newest first.
    pub fn newest(&self, book_id: BookId, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let prefix = key::prefix(book_id.get());
        let mut read = ReadOptions::default();
        read.set_prefix_same_as_start(true);
        let iter = self
            .db
            .iterator_opt(IteratorMode::From(&prefix, Direction::Forward), read);
        let mut messages = Vec::with_capacity(limit.min(64));
        for item in iter {
            if messages.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let (book, seq) =
                key::decode(&k).ok_or_else(|| StoreError(format!("malformed key {k:?}")))?;
            let value = codec::decode(&v)
                .ok_or_else(|| StoreError(format!("malformed value for book {book} seq {seq}")))?;
            messages.push(StoredMessage {
                book_id: BookId(book),
                seq,
                value,
            });
        }
        Ok(messages)
    }

    /// Where a book's history ends (all zero for an empty book).
    pub fn tail(&self, book_id: BookId) -> Result<BookTail, StoreError> {
        Ok(self
            .newest(book_id, 1)?
            .first()
            .map(|m| BookTail {
                seq: m.seq,
                created_ms: m.value.created_ms,
            })
            .unwrap_or_default())
    }

    /// Flush memtables to disk (at shutdown, so a restart replays no WAL).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// A consistent checkpoint of the store in `to` (a new directory).
    pub fn checkpoint(&self, to: &Path) -> Result<(), StoreError> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db)?;
        checkpoint.create_checkpoint(to)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
