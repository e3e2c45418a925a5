//! The message store on RocksDB: appends in write batches, the newest N of a book, a page of
//! older messages below an `_id`, and where each book's sequence stands.
//!
//! Owns the database handle and the on-disk layout: messages in the default column family
//! (`key`: bookId ‖ !seq; `codec`: the value), the `_id` index in the `ids` column family
//! (bookId ‖ `_id` → seq, written in the same batch as the message), and the layout's version
//! in the `meta` column family (`layout`: checked and, for an older directory, migrated at
//! open).
//! Never assigns sequences or ids itself — the room's home shard does (see `chat`) — so one
//! writer per room keeps history order equal to broadcast order. Writes always go through the
//! WAL before returning, so a crash of the process loses nothing a caller was told is stored;
//! with `sync_writes` each batch is also fsynced, for power loss.

pub mod backup;
pub mod codec;

pub mod key;
pub mod layout;

use crate::book::BookId;
use std::path::Path;

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options,
    ReadOptions, SliceTransform, WriteBatch, WriteOptions, DB,
};

pub use crate::message_id::{IdGenerator, MessageId};
pub use codec::StoredValue;

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

/// Where a book's history ends: its newest sequence, that message's creation time and `_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BookTail {
    pub seq: u64,
    pub created_ms: u64,
    /// The newest message's `_id` (all zero for an empty book): the next must sort after it.
    pub id: MessageId,
}

/// One page of a book's history, newest first (`Store::page`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub messages: Vec<StoredMessage>,
    /// Whether older messages remain below the page's last one.
    pub has_more: bool,
}

/// The column family of the `_id` index (bookId ‖ `_id` → seq).
pub const IDS_CF: &str = "ids";
/// The column family of the layout's bookkeeping (`layout`).
pub const META_CF: &str = "meta";

/// The `meta` key of the sessions kept for connection state recovery across a restart.
const KEPT_SESSIONS_KEY: &[u8] = b"recovery/kept-sessions";

/// The `meta` keys of cluster mode: each partition's applied position.
const APPLIED_PREFIX: &[u8] = b"cluster/applied/";

fn applied_key(partition: u32) -> Vec<u8> {
    let mut key = APPLIED_PREFIX.to_vec();
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

pub struct Store {
    db: DB,
    sync_writes: bool,
}

impl Store {
    /// Open (creating if needed) the store in `path`. A directory of an older layout is
    /// migrated first ([`layout`]); one of a newer layout than this build knows is refused.
    pub fn open(path: &Path, sync_writes: bool) -> Result<Store, StoreError> {
        let store = Self::open_unmigrated(path, sync_writes)?;
        layout::migrate(&store, layout::MIGRATION_BATCH, None)?;
        Ok(store)
    }

    /// Open without looking at the layout (the migration's tests stop it half-way).
    pub(crate) fn open_unmigrated(path: &Path, sync_writes: bool) -> Result<Store, StoreError> {
        let mut options = Self::options();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let db = DB::open_cf_descriptors(&options, path, Self::column_families())?;
        Ok(Store { db, sync_writes })
    }

    /// Every column family of the layout with its options.
    fn column_families() -> Vec<ColumnFamilyDescriptor> {
        vec![
            ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, Self::options()),
            ColumnFamilyDescriptor::new(IDS_CF, Self::options()),
            ColumnFamilyDescriptor::new(META_CF, Options::default()),
        ]
    }

    /// A column family of the layout (all are created at open).
    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError(format!("column family {name} is missing")))
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
        self.put_messages(&mut batch, messages)?;
        self.write(batch)
    }

    /// Each message and its `_id` index entry, into `batch`.
    fn put_messages<'a>(
        &self,
        batch: &mut WriteBatch,
        messages: impl IntoIterator<Item = &'a StoredMessage>,
    ) -> Result<(), StoreError> {
        let ids = self.cf(IDS_CF)?;
        let mut value = Vec::with_capacity(256);
        for message in messages {
            value.clear();
            codec::encode(&message.value, &mut value);
            let book = message.book_id.get();
            batch.put(key::encode(book, message.seq), &value);
            batch.put_cf(
                ids,
                key::id_key(book, &message.value.id.0),
                message.seq.to_be_bytes(),
            );
        }
        Ok(())
    }

    /// Write `batch` (synced to disk with `sync_writes`).
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
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
            messages.push(Self::decode_message(&k, &v)?);
        }
        Ok(messages)
    }

    /// A page of `book_id`'s history, newest first: at most `limit` messages whose `_id`
    /// sorts before `before` (from the newest without it), and whether older ones remain.
    ///
    /// Two seeks, whatever the book's size: one in the `_id` index for the greatest `_id`
    /// of the book at or below `before` (its sequence is where the page starts: below it
    /// when it is `before` itself, at it otherwise), one in the messages from there. An
    /// `_id` the book does not hold (another book's, or one never assigned) thus pages from
    /// the book's newest message sorting before it, as `_id`s of a book grow with its
    /// sequence (`chat::home` assigns them so).
    pub fn page(
        &self,
        book_id: BookId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let book = book_id.get();
        let start = match before {
            None => u64::MAX,
            Some(id) => match self.seq_at_or_below(book, id)? {
                Some((seq, exact)) if exact => seq.saturating_sub(1),
                Some((seq, _)) => seq,
                None => 0,
            },
        };
        if start == 0 || limit == 0 {
            return Ok(Page::default());
        }
        let prefix = key::prefix(book);
        let mut read = ReadOptions::default();
        read.set_prefix_same_as_start(true);
        let mut iter = self.db.raw_iterator_opt(read);
        iter.seek(key::encode(book, start));
        let mut messages = Vec::with_capacity(limit.min(128));
        let mut has_more = false;
        while iter.valid() {
            let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
                break;
            };
            if !k.starts_with(&prefix) {
                break;
            }
            if messages.len() == limit {
                has_more = true;
                break;
            }
            messages.push(Self::decode_message(k, v)?);
            iter.next();
        }
        iter.status()?;
        Ok(Page { messages, has_more })
    }

    /// The sequence of the greatest `_id` of `book` at or below `id`, and whether it is `id`
    /// itself; None when the book holds no `_id` at or below it.
    fn seq_at_or_below(&self, book: u64, id: MessageId) -> Result<Option<(u64, bool)>, StoreError> {
        let target = key::id_key(book, &id.0);
        let mut read = ReadOptions::default();
        read.set_prefix_same_as_start(true);
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(IDS_CF)?, read);
        iter.seek_for_prev(target);
        let found = match (iter.key(), iter.value()) {
            (Some(k), Some(v)) if iter.valid() && k.starts_with(&key::prefix(book)) => {
                let seq = key::decode_seq(v)
                    .ok_or_else(|| StoreError(format!("malformed _id index value for {k:?}")))?;
                Some((seq, k == target))
            }
            _ => None,
        };
        iter.status()?;
        Ok(found)
    }

    fn decode_message(k: &[u8], v: &[u8]) -> Result<StoredMessage, StoreError> {
        let (book, seq) =
            key::decode(k).ok_or_else(|| StoreError(format!("malformed key {k:?}")))?;
        let value = codec::decode(v)
            .ok_or_else(|| StoreError(format!("malformed value for book {book} seq {seq}")))?;
        Ok(StoredMessage {
            book_id: BookId(book),
            seq,
            value,
        })
    }

    /// A book's messages with a sequence above `after`, oldest first; at most `limit` of the
    /// newest of them, and whether there were more (connection state recovery's replay, which
    /// refuses rather than skip any). One seek, then one step per message.
    pub fn after(
        &self,
        book_id: BookId,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StoredMessage>, bool), StoreError> {
        let prefix = key::prefix(book_id.get());
        let mut read = ReadOptions::default();
        read.set_prefix_same_as_start(true);
        let mut iter = self.db.raw_iterator_opt(read);
        iter.seek(prefix);
        let mut messages = Vec::new();
        let mut more = false;
        while iter.valid() {
            let (Some(k), Some(v)) = (iter.key(), iter.value()) else {
                break;
            };
            if !k.starts_with(&prefix) {
                break;
            }
            let message = Self::decode_message(k, v)?;
            if message.seq <= after {
                break;
            }
            if messages.len() == limit {
                more = true;
                break;
            }
            messages.push(message);
            iter.next();
        }
        iter.status()?;
        messages.reverse();
        Ok((messages, more))
    }

    /// Cluster mode (`crate::cluster`): write messages applied from the cluster's log and,
    /// in the same batch, each partition's applied position `(partition, (ms, n))`, so a
    /// restart resumes exactly after what the store holds. Idempotent: a message is keyed by
    /// its book and sequence, so applying it again writes the same bytes.
    pub fn apply_log<'a>(
        &self,
        messages: impl IntoIterator<Item = &'a StoredMessage>,
        positions: &[(u32, (u64, u64))],
    ) -> Result<(), StoreError> {
        let meta = self.cf(META_CF)?;
        let mut batch = WriteBatch::default();
        self.put_messages(&mut batch, messages)?;
        for (partition, (ms, n)) in positions {
            let mut position = [0u8; 16];
            position[..8].copy_from_slice(&ms.to_be_bytes());
            position[8..].copy_from_slice(&n.to_be_bytes());
            batch.put_cf(meta, applied_key(*partition), position);
        }
        self.write(batch)
    }

    /// Cluster mode: each partition's applied position `(ms, n)` (`(0, 0)` for one never
    /// applied), index = partition.
    pub fn applied_positions(&self, partitions: u32) -> Result<Vec<(u64, u64)>, StoreError> {
        let meta = self.cf(META_CF)?;
        let mut out = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            let position = match self.db.get_cf(meta, applied_key(partition))? {
                None => (0, 0),
                Some(bytes) => {
                    let (ms, n) = bytes
                        .split_at_checked(8)
                        .and_then(|(ms, n)| Some((ms.try_into().ok()?, n.try_into().ok()?)))
                        .ok_or_else(|| {
                            StoreError(format!("applied position of partition {partition}: bad"))
                        })?;
                    (u64::from_be_bytes(ms), u64::from_be_bytes(n))
                }
            };
            out.push(position);
        }
        Ok(out)
    }

    /// Every book's newest sequence, `(bookId, seq)`, in book order: one seek per book (its
    /// newest message is its first key). For turning a single process's store into a
    /// cluster's (`chat::cluster_node`): the cluster's counters must start above them.
    pub fn book_tails(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut read = rocksdb::ReadOptions::default();
        read.set_total_order_seek(true);
        let mut iter = self.db.raw_iterator_opt(read);
        let mut out = Vec::new();
        iter.seek_to_first();
        while iter.valid() {
            let Some((book, seq)) = iter.key().and_then(key::decode) else {
                break;
            };
            out.push((book, seq));
            match book.checked_add(1) {
                Some(next) => iter.seek(key::prefix(next)),
                None => break,
            }
        }
        iter.status()?;
        Ok(out)
    }

    /// Cluster mode: whether any partition was ever applied here (a data directory of a
    /// cluster node, rather than of a single process).
    pub fn has_applied(&self) -> Result<bool, StoreError> {
        let meta = self.cf(META_CF)?;
        let mut iter = self.db.raw_iterator_cf(meta);
        iter.seek(APPLIED_PREFIX);
        let found = iter.valid() && iter.key().is_some_and(|k| k.starts_with(APPLIED_PREFIX));
        iter.status()?;
        Ok(found)
    }

    /// Keep `blob` (the sessions kept for connection state recovery at a graceful shutdown)
    /// until [`Store::take_kept_sessions`]; an empty blob forgets them.
    pub fn save_kept_sessions(&self, blob: &[u8]) -> Result<(), StoreError> {
        let meta = self.cf(META_CF)?;
        if blob.is_empty() {
            self.db.delete_cf(meta, KEPT_SESSIONS_KEY)?;
        } else {
            self.db.put_cf(meta, KEPT_SESSIONS_KEY, blob)?;
        }
        Ok(())
    }

    /// The blob [`Store::save_kept_sessions`] kept, removed from the store (a crash after this
    /// start then recovers nobody: never a session twice).
    pub fn take_kept_sessions(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let meta = self.cf(META_CF)?;
        let blob = self.db.get_cf(meta, KEPT_SESSIONS_KEY)?;
        if blob.is_some() {
            self.db.delete_cf(meta, KEPT_SESSIONS_KEY)?;
        }
        Ok(blob)
    }

    /// Where a book's history ends (all zero for an empty book).
    pub fn tail(&self, book_id: BookId) -> Result<BookTail, StoreError> {
        Ok(self
            .newest(book_id, 1)?
            .first()
            .map(|m| BookTail {
                seq: m.seq,
                created_ms: m.value.created_ms,
                id: m.value.id,
            })
            .unwrap_or_default())
    }

    /// Flush memtables to disk (at shutdown, so a restart replays no WAL).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.db.flush_cf(self.cf(IDS_CF)?)?;
        self.db.flush_cf(self.cf(META_CF)?)?;
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
