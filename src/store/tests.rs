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
            created_ms: 1_700_000_000_075,
            id: store.newest(BookId(2701), 1).unwrap()[0].value.id,
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
        // The `_id` index came along: a page below the 10th message is the 9 before it.
        let page = restored
            .page(BookId(7), Some(first[9].value.id), 50)
            .unwrap();
        assert_eq!(seqs(&page.messages), (1..=9).rev().collect::<Vec<_>>());
        assert_eq!(
            layout::version(&restored).unwrap(),
            Some(layout::LAYOUT_VERSION)
        );
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

fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

/// Paging with `before` = the last `_id` of each page walks a book of 1,000 messages (among
/// other books' messages) from the newest to the first, each once, `has_more` true until the
/// last page.
#[test]
fn pages_walk_a_book_to_its_first_message_each_once() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0, false).unwrap();
    let mut ids = IdGenerator::new(0);
    let mut batch = Vec::new();
    for seq in 1..=1000 {
        for book in [8u64, 9, 10] {
            batch.push(message(&mut ids, book, seq, 1_700_000_000_000 + seq));
        }
    }
    store.append(&batch).unwrap();
    let mut before = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.page(BookId(9), before, 64).unwrap();
        pages += 1;
        assert!(page.messages.iter().all(|m| m.book_id == BookId(9)));
        seen.extend(seqs(&page.messages));
        before = page.messages.last().map(|m| m.value.id);
        if !page.has_more {
            break;
        }
        assert_eq!(page.messages.len(), 64);
    }
    assert_eq!(pages, 16);
    assert_eq!(seen, (1..=1000).rev().collect::<Vec<_>>());
    // Below the first message: nothing, and nothing more.
    assert_eq!(store.page(BookId(9), before, 64).unwrap(), Page::default());
    // A page ending exactly at the first message says so.
    let last_two = store
        .page(BookId(9), Some(batch[3 * 2 + 1].value.id), 2)
        .unwrap();
    assert_eq!(
        (seqs(&last_two.messages), last_two.has_more),
        (vec![2, 1], false)
    );
    // An empty book.
    assert_eq!(store.page(BookId(11), None, 50).unwrap(), Page::default());
}

/// An `_id` the book does not hold (another book's, one between two of the book's, one
/// below or above them all) pages from the book's newest message sorting before it.
#[test]
fn a_page_below_an_id_the_book_does_not_hold_starts_below_it() {
    let dir = TempDir::new();
    let store = Store::open(&dir.0, false).unwrap();
    let mut ids = IdGenerator::new(0);
    // Books 1 and 2 alternate, so each one's `_id`s fall between the other's.
    let mut all = Vec::new();
    for seq in 1..=100 {
        all.push(message(&mut ids, 1, seq, 1_700_000_000_000 + 2 * seq));
        all.push(message(&mut ids, 2, seq, 1_700_000_000_001 + 2 * seq));
    }
    store.append(&all).unwrap();
    let book1 = |m: &&StoredMessage| m.book_id == BookId(1);
    for other in all.iter().filter(|m| m.book_id == BookId(2)).step_by(17) {
        let below: Vec<u64> = all
            .iter()
            .filter(book1)
            .filter(|m| m.value.id < other.value.id)
            .map(|m| m.seq)
            .rev()
            .take(10)
            .collect();
        let page = store.page(BookId(1), Some(other.value.id), 10).unwrap();
        assert_eq!(seqs(&page.messages), below, "below {}", other.value.id);
        assert_eq!(page.has_more, below.last().is_some_and(|&s| s > 1));
    }
    let lowest = MessageId([0; 12]);
    assert_eq!(
        store.page(BookId(1), Some(lowest), 10).unwrap(),
        Page::default()
    );
    let highest = MessageId([0xff; 12]);
    let page = store.page(BookId(1), Some(highest), 3).unwrap();
    assert_eq!(
        (seqs(&page.messages), page.has_more),
        (vec![100, 99, 98], true)
    );
}

/// A data directory as a server before the `_id` index wrote it (layout 1): the messages
/// alone, in the default column family, written with the rocksdb crate directly.
fn old_layout_directory(path: &std::path::Path, messages: &[StoredMessage]) {
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    let db = rocksdb::DB::open(&options, path).unwrap();
    for m in messages {
        let mut value = Vec::new();
        codec::encode(&m.value, &mut value);
        db.put(key::encode(m.book_id.get(), m.seq), value).unwrap();
    }
    db.flush().unwrap();
}

/// Old-layout messages of three books; book 4's `_id`s go down once (a restart within one
/// millisecond with a lower counter, as the older server could write), which the migration
/// must not reorder.
fn old_messages() -> Vec<StoredMessage> {
    let mut ids = IdGenerator::new(1);
    let mut messages = Vec::new();
    for seq in 1..=120 {
        for book in [3u64, 4, 1 << 40] {
            messages.push(message(&mut ids, book, seq, 1_700_000_000_000 + seq));
        }
    }
    let m = messages
        .iter_mut()
        .find(|m| m.book_id == BookId(4) && m.seq == 61)
        .unwrap();
    m.value.id = MessageId([0x01; 12]);
    messages
}

#[test]
fn an_old_layout_directory_reads_the_same_after_migrating_at_open() {
    let dir = TempDir::new();
    let messages = old_messages();
    old_layout_directory(&dir.0, &messages);
    let store = Store::open(&dir.0, false).unwrap();
    assert_eq!(
        layout::version(&store).unwrap(),
        Some(layout::LAYOUT_VERSION)
    );
    for book in [3u64, 4, 1 << 40] {
        let mut expected: Vec<StoredMessage> = messages
            .iter()
            .filter(|m| m.book_id == BookId(book))
            .cloned()
            .collect();
        expected.reverse();
        assert_eq!(store.newest(BookId(book), 50).unwrap(), expected[..50]);
        // Every message's `_id` is a cursor: the page below it is the messages before it.
        for (i, m) in expected.iter().enumerate() {
            let page = store.page(BookId(book), Some(m.value.id), 5).unwrap();
            let want: Vec<StoredMessage> = expected.iter().skip(i + 1).take(5).cloned().collect();
            assert_eq!(page.messages, want, "book {book} below seq {}", m.seq);
        }
    }
    // Opening again finds the current layout and does nothing.
    drop(store);
    let store = Store::open(&dir.0, false).unwrap();
    assert_eq!(
        layout::migrate(&store, 10, None).unwrap(),
        layout::Migration::Current
    );
}

#[test]
fn a_migration_cut_short_resumes_where_it_stopped() {
    let dir = TempDir::new();
    let messages = old_messages();
    old_layout_directory(&dir.0, &messages);
    {
        let store = Store::open_unmigrated(&dir.0, false).unwrap();
        assert_eq!(
            layout::migrate(&store, 100, Some(2)).unwrap(),
            layout::Migration::Indexed {
                messages: 200,
                done: false
            }
        );
        assert_eq!(layout::version(&store).unwrap(), None);
    }
    {
        let store = Store::open_unmigrated(&dir.0, false).unwrap();
        assert_eq!(
            layout::migrate(&store, 100, None).unwrap(),
            layout::Migration::Indexed {
                messages: messages.len() as u64 - 200,
                done: true
            }
        );
    }
    let store = Store::open(&dir.0, false).unwrap();
    for m in &messages {
        let page = store.page(m.book_id, Some(m.value.id), 1).unwrap();
        assert_eq!(
            seqs(&page.messages),
            (1..m.seq).rev().take(1).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_directory_of_a_newer_layout_is_refused() {
    let dir = TempDir::new();
    {
        let store = Store::open(&dir.0, false).unwrap();
        store
            .db
            .put_cf(store.cf(META_CF).unwrap(), b"layout", 3u32.to_be_bytes())
            .unwrap();
    }
    let err = Store::open(&dir.0, false).err().expect("refused");
    assert!(err.0.contains("layout version 3"), "{err}");
}

/// Backing up a directory of the older layout, by checkpoint (our own, free directory) and
/// through a secondary instance (another user's): the directory stays as the older server
/// wrote it (it still opens without the new column families), and each backup opens migrated,
/// its history the same and its `_id`s cursors.
#[test]
fn backups_of_an_old_layout_directory_leave_it_old_and_open_migrated() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new();
    let data = dir.0.join("data");
    let messages = old_messages();
    old_layout_directory(&data, &messages);
    let other_user = std::fs::metadata(&data).unwrap().uid().wrapping_add(1);
    let copies = [dir.0.join("checkpoint"), dir.0.join("secondary")];
    assert_eq!(
        backup::backup(&data, &copies[0]).unwrap(),
        backup::Method::Checkpoint
    );
    assert_eq!(
        backup::backup_as(&data, &copies[1], other_user).unwrap(),
        backup::Method::SecondaryCopy {
            keys: messages.len() as u64
        }
    );
    // The older server opens its directory with the default column family alone, which
    // RocksDB refuses once others exist.
    assert_eq!(
        rocksdb::DB::list_cf(&rocksdb::Options::default(), &data).unwrap(),
        vec!["default".to_owned()]
    );
    for copy in &copies {
        let store = Store::open(copy, false).unwrap();
        assert_eq!(
            layout::version(&store).unwrap(),
            Some(layout::LAYOUT_VERSION)
        );
        let mut book: Vec<StoredMessage> = messages
            .iter()
            .filter(|m| m.book_id == BookId(4))
            .cloned()
            .collect();
        book.reverse();
        assert_eq!(store.newest(BookId(4), 50).unwrap(), book[..50]);
        let page = store.page(BookId(4), Some(book[10].value.id), 3).unwrap();
        assert_eq!(page.messages, book[11..14]);
    }
}

/// Every book's newest sequence, whatever the books' ids (neighbours, 0, the largest), and
/// the applied positions of cluster mode written with messages in one batch.
#[test]
fn book_tails_and_applied_positions() {
    let dir = TempDir::new();
    let mut ids = IdGenerator::new(0);
    let store = Store::open(&dir.0, false).unwrap();
    assert_eq!(store.book_tails().unwrap(), []);
    assert!(!store.has_applied().unwrap());
    let mut batch = Vec::new();
    for (book, n) in [(0u64, 3u64), (7, 12), (8, 1), (u64::MAX, 2)] {
        for seq in 1..=n {
            batch.push(message(&mut ids, book, seq, 1_700_000_000_000 + seq));
        }
    }
    store.append(&batch).unwrap();
    assert_eq!(
        store.book_tails().unwrap(),
        [(0, 3), (7, 12), (8, 1), (u64::MAX, 2)]
    );
    let applied = [message(&mut ids, 9, 1, 1_700_000_000_500)];
    store
        .apply_log(&applied, &[(2, (1_700_000_000_500, 3)), (0, (5, 0))])
        .unwrap();
    assert!(store.has_applied().unwrap());
    assert_eq!(
        store.applied_positions(3).unwrap(),
        [(5, 0), (0, 0), (1_700_000_000_500, 3)]
    );
    assert_eq!(store.tail(BookId(9)).unwrap().seq, 1);
}
