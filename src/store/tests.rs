//! Store tests on a real RocksDB directory in a temporary folder.

use super::*;
use crate::book::BookId;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let mut name = [0u8; 8];
        getrandom::fill(&mut name).unwrap();
        let path =
            std::env::temp_dir().join(format!("readrealm-store-{}", u64::from_le_bytes(name)));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn message(ids: &mut IdGenerator, book_id: u64, seq: u64, ms: u64) -> StoredMessage {
    StoredMessage {
        book_id: BookId(book_id),
        seq,
        value: StoredValue {
            created_ms: ms,
            id: ids.next(ms),
            user_id: format!("u-{seq}"),
            username: "reader".into(),
            content: format!("message {seq} of book {book_id}"),
        },
    }
}

#[test]
fn newest_fifty_after_thousands_of_messages_over_many_rooms() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0, false).unwrap();
    let mut ids = IdGenerator::new(0);
    let books = [
        1u64,
        2,
        255,
        256,
        1 << 32,
        (1 << 32) + 1,
        9_007_199_254_740_991,
    ];
    let mut batch = Vec::new();
    for seq in 1..=600 {
        for &book in &books {
            batch.push(message(&mut ids, book, seq, 1_700_000_000_000 + seq));
        }
        if batch.len() >= 500 {
            store.append(&batch).unwrap();
            batch.clear();
        }
    }
    store.append(&batch).unwrap();
    for &book in &books {
        let newest = store.newest(BookId(book), 50).unwrap();
        assert_eq!(newest.len(), 50);
        assert!(
            newest.iter().all(|m| m.book_id == BookId(book)),
            "prefix boundary of {book}"
        );
        let seqs: Vec<u64> = newest.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (551..=600).rev().collect::<Vec<_>>());
        assert_eq!(store.tail(BookId(book)).unwrap().seq, 600);
    }
    assert!(store.newest(BookId(3), 50).unwrap().is_empty());
    assert!(store.newest(BookId(257), 50).unwrap().is_empty());
    assert_eq!(store.tail(BookId(1 << 31)).unwrap(), BookTail::default());
}

#[test]
fn messages_within_one_millisecond_keep_their_order() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0, false).unwrap();
    let mut ids = IdGenerator::new(1);
    let batch: Vec<_> = (1..=20)
        .map(|seq| message(&mut ids, 9, seq, 1_700_000_000_000))
        .collect();
    store.append(&batch).unwrap();
    let newest = store.newest(BookId(9), 50).unwrap();
    let hex: Vec<String> = newest.iter().rev().map(|m| m.value.id.to_hex()).collect();
    let mut sorted = hex.clone();
    sorted.sort();
    assert_eq!(hex, sorted, "history order equals _id order");
    assert_eq!(newest.first().map(|m| m.seq), Some(20));
}

#[test]
fn sequence_continues_after_reopening() {
    let dir = TempDir::new();
    let mut ids = IdGenerator::new(0);
    {
        let store = Store::open(&dir.0, true).unwrap();
        let batch: Vec<_> = (1..=75)
            .map(|seq| message(&mut ids, 2701, seq, 1_700_000_000_000 + seq))
            .collect();
        store.append(&batch).unwrap();
    }
    let store = Store::open(&dir.0, false).unwrap();
    let tail = store.tail(BookId(2701)).unwrap();
    assert_eq!(
        tail,
        BookTail {
            seq: 75,
            created_ms: 1_700_000_000_075
        }
    );
    store
        .append(&[message(&mut ids, 2701, tail.seq + 1, 1_700_000_000_100)])
        .unwrap();
    let newest = store.newest(BookId(2701), 50).unwrap();
    assert_eq!(newest.first().map(|m| m.seq), Some(76));
    assert_eq!(newest.len(), 50);
}

#[test]
fn checkpoint_holds_the_same_history() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0, false).unwrap();
    let mut ids = IdGenerator::new(0);
    let batch: Vec<_> = (1..=10)
        .map(|seq| message(&mut ids, 5, seq, 1_700_000_000_000 + seq))
        .collect();
    store.append(&batch).unwrap();
    let copy = TempDir::new();
    let target = copy.0.join("checkpoint");
    store.checkpoint(&target).unwrap();
    let restored = Store::open(&target, false).unwrap();
    assert_eq!(
        restored.newest(BookId(5), 50).unwrap(),
        store.newest(BookId(5), 50).unwrap()
    );
}

#[test]
fn backups_of_a_free_and_of_a_locked_store_hold_everything_written() {
    let dir = TempDir::new();
    let data = dir.0.join("data");
    let mut ids = IdGenerator::new(0);
    let first: Vec<StoredMessage> = (1..=30)
        .map(|seq| message(&mut ids, 7, seq, 1_700_000_000_000 + seq))
        .collect();
    {
        let store = Store::open(&data, false).unwrap();
        store.append(&first).unwrap();
    }
    // Nobody holds the store: a checkpoint.
    let stopped = dir.0.join("stopped");
    assert_eq!(
        backup::backup(&data, &stopped).unwrap(),
        backup::Method::Checkpoint
    );
    // The store is open (as a running server holds it): a copy through a secondary instance
    // that sees the writes still only in the primary's WAL.
    let store = Store::open(&data, false).unwrap();
    let second: Vec<StoredMessage> = (31..=45)
        .map(|seq| message(&mut ids, 7, seq, 1_700_000_000_000 + seq))
        .collect();
    store.append(&second).unwrap();
    let running = dir.0.join("running");
    assert_eq!(
        backup::backup(&data, &running).unwrap(),
        backup::Method::SecondaryCopy { keys: 45 }
    );
    assert!(
        backup::backup(&data, &running).is_err(),
        "never into a full directory"
    );
    assert!(backup::backup(&dir.0.join("nothing"), &dir.0.join("x")).is_err());
    drop(store);
    for (path, count) in [(&stopped, 30), (&running, 45)] {
        let restored = Store::open(path, false).unwrap();
        let newest = restored.newest(BookId(7), 100).unwrap();
        assert_eq!(newest.len(), count, "{}", path.display());
        let mut all: Vec<StoredMessage> = first.iter().chain(&second).cloned().collect();
        all.truncate(count);
        all.reverse();
        assert_eq!(newest, all);
    }
}

/// The files in `dir`, with their sizes, sorted.
fn listing(dir: &std::path::Path) -> Vec<(std::ffi::OsString, u64)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), e.metadata().unwrap().len())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_backup_never_writes_into_another_users_data_directory() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new();
    let data = dir.0.join("data");
    let mut ids = IdGenerator::new(0);
    let messages: Vec<StoredMessage> = (1..=5)
        .map(|seq| message(&mut ids, 3, seq, 1_700_000_000_000 + seq))
        .collect();
    Store::open(&data, false)
        .unwrap()
        .append(&messages)
        .unwrap();
    // The backup runs as a user other than the directory's owner (root or not, the test
    // process could write into it; the backup must choose not to).
    let owner = std::fs::metadata(&data).unwrap().uid();
    let other_user = owner.wrapping_add(1);
    let before = listing(&data);
    // No server holds it, but it is not the backup user's: copied through a secondary
    // instance, and no file appears in it or changes (a file of another user there would keep
    // its owner from opening it).
    assert_eq!(
        backup::backup_as(&data, &dir.0.join("copy"), other_user).unwrap(),
        backup::Method::SecondaryCopy { keys: 5 }
    );
    assert_eq!(before, listing(&data));
    let copy = Store::open(&dir.0.join("copy"), false).unwrap();
    assert_eq!(
        copy.newest(BookId(3), 10).unwrap(),
        messages.iter().rev().cloned().collect::<Vec<_>>()
    );
}
