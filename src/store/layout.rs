//! The on-disk layout's version, and the migration of an older data directory at open.
//!
//! Versions (the `layout` key of the `meta` column family, a u32 big-endian):
//!
//! - 1 (no `layout` key; servers before `loadHistory`): messages only, under bookId ‖ !seq.
//! - 2: the same messages, unchanged, plus the `_id` index (bookId ‖ `_id` → seq, column
//!   family `ids`) that lets a `loadHistory` page start below an `_id`: one seek in the
//!   index, one in the messages, whatever the room's size.
//!
//! Migrating 1 → 2 adds the index: every message key is read in key order and its index
//! entry written, [`MIGRATION_BATCH`] messages per write batch, each batch also recording the
//! last message key it indexed (`migrated_through`). A migration cut short (a crash, a kill)
//! resumes after that key at the next open; an entry written twice is the same entry. The
//! last batch writes `layout` = 2 and drops `migrated_through`, so a directory is either
//! fully indexed and marked, or resumed. Messages are never rewritten: their keys, values and
//! `_id`s stay byte for byte what the older server wrote.
//!
//! Owns the version check and the migration; never writes a message, and never runs while
//! the server serves (it runs inside `Store::open`).

use std::time::Instant;

use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use super::{codec, key, Store, StoreError, IDS_CF, META_CF};

/// The layout this build writes.
pub const LAYOUT_VERSION: u32 = 2;
/// Messages indexed per write batch while migrating.
pub const MIGRATION_BATCH: usize = 4096;

/// The `meta` key holding the layout version.
const LAYOUT_KEY: &[u8] = b"layout";
/// The `meta` key holding the last message key a cut-short migration indexed.
const PROGRESS_KEY: &[u8] = b"migrated_through";

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// The directory had the current layout already (or was new).
    Current,
    /// Messages were indexed; `done` tells whether the layout is now current (false only
    /// when `max_batches` stopped it).
    Indexed { messages: u64, done: bool },
}

/// The layout version of an open store: `None` for a version 1 directory (or one not yet
/// marked), `Some(v)` otherwise.
pub fn version(store: &Store) -> Result<Option<u32>, StoreError> {
    let meta = store.cf(META_CF)?;
    match store.db.get_cf(meta, LAYOUT_KEY)? {
        None => Ok(None),
        Some(bytes) => {
            let bytes: [u8; 4] = bytes.as_slice().try_into().map_err(|_| {
                StoreError(format!(
                    "malformed layout version {bytes:?} in the meta column family"
                ))
            })?;
            Ok(Some(u32::from_be_bytes(bytes)))
        }
    }
}

/// Bring `store` to [`LAYOUT_VERSION`]: nothing for a current directory, the `_id` index for
/// a version 1 one (resuming a cut-short migration), an error for a newer one. `max_batches`
/// stops the migration after that many batches (tests of resuming); `None` runs it through.
pub fn migrate(
    store: &Store,
    batch_len: usize,
    max_batches: Option<usize>,
) -> Result<Migration, StoreError> {
    match version(store)? {
        Some(LAYOUT_VERSION) => return Ok(Migration::Current),
        Some(newer) => {
            return Err(StoreError(format!(
                "the data directory has layout version {newer}, newer than this server's \
                 {LAYOUT_VERSION}; run a newer server on it"
            )))
        }
        None => {}
    }
    let started = Instant::now();
    let meta = store.cf(META_CF)?;
    let ids = store.cf(IDS_CF)?;
    let resume = store.db.get_cf(meta, PROGRESS_KEY)?;
    // Every book, in key order: a total-order scan, not one book's prefix.
    let mut read = ReadOptions::default();
    read.set_total_order_seek(true);
    let mode = match &resume {
        Some(last) => IteratorMode::From(last, Direction::Forward),
        None => IteratorMode::Start,
    };
    let mut iter = store.db.iterator_opt(mode, read).peekable();
    let mut messages = 0u64;
    let mut batches = 0usize;
    let mut options = WriteOptions::default();
    options.set_sync(store.sync_writes);
    loop {
        let mut batch = WriteBatch::default();
        let mut last = None;
        while batch.len() < batch_len {
            let Some(item) = iter.next() else {
                break;
            };
            let (k, v) = item?;
            if resume.as_deref() == Some(&*k) {
                continue; // indexed by the batch that recorded it
            }
            let (book, seq) = key::decode(&k)
                .ok_or_else(|| StoreError(format!("malformed message key {k:?}")))?;
            let value = codec::decode(&v)
                .ok_or_else(|| StoreError(format!("malformed value for book {book} seq {seq}")))?;
            batch.put_cf(ids, key::id_key(book, &value.id.0), seq.to_be_bytes());
            last = Some(k);
            messages += 1;
        }
        let finished = iter.peek().is_none();
        if finished {
            batch.put_cf(meta, LAYOUT_KEY, LAYOUT_VERSION.to_be_bytes());
            batch.delete_cf(meta, PROGRESS_KEY);
        } else if let Some(last) = &last {
            batch.put_cf(meta, PROGRESS_KEY, last);
        }
        store.db.write_opt(batch, &options)?;
        batches += 1;
        if finished {
            break;
        }
        if max_batches.is_some_and(|max| batches >= max) {
            return Ok(Migration::Indexed {
                messages,
                done: false,
            });
        }
    }
    if messages > 0 {
        crate::log_info!(
            "store_migrated",
            from_layout = 1,
            to_layout = LAYOUT_VERSION,
            messages_indexed = messages,
            resumed = resume.is_some(),
            ms = started.elapsed().as_millis() as u64
        );
    }
    Ok(Migration::Indexed {
        messages,
        done: true,
    })
}
