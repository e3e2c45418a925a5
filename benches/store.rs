//! Criterion benches of the message store (`src/store`) under a realistic history: a temporary
//! RocksDB filled once per run with 10^6 messages (10,000 books × 100), then
//!
//! - `append`: one message (the batch of a quiet loop turn) and 32 messages in one batch (a busy
//!   turn), each a new sequence at the end of a book, through the WAL as the server writes;
//! - `newest 50`: a join's history read, for books picked across the whole store;
//! - `loadHistory page of 50 from a room of 10^6 messages`: a second store holding one book of
//!   10^6 messages (and its `_id` index), a page below an `_id` picked across the whole room,
//!   read (`Store::page`: two seeks) and encoded as the ack's JSON (`chat::paging`), as the
//!   server answers a `loadHistory`. Before criterion runs it, 100,000 single pages are timed
//!   one by one and their p50 / p99 / p99.9 / max printed (criterion reports means of batches);
//!   `loadHistory page of 50, store read only` is the same without the JSON encoding;
//! - not a criterion bench: the time a directory of the older layout (10^6 messages, no `_id`
//!   index) takes to migrate at open, printed once.
//!
//! `cargo bench --bench store`; results and the machine in benches/RESULTS.md. Under
//! `cargo test` (no `--bench` argument) the store holds 1,000 messages, so the test run stays
//! quick; READREALM_BENCH_MESSAGES overrides the count.

use readrealm_chat::book::BookId;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use readrealm_chat::chat::paging::page_ack_json;
use readrealm_chat::store::{
    codec, key, layout, IdGenerator, MessageId, Store, StoredMessage, StoredValue,
};

const MESSAGES_PER_BOOK: u64 = 100;
const CONTENT: &str = "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse.";

/// A temporary store directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "readrealm-bench-store-{}-{nanos}",
            std::process::id()
        ));
        TempDir(dir)
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
            user_id: format!("u-{}", seq % 1000),
            username: format!("reader-{}", seq % 1000),
            content: CONTENT.to_owned(),
        },
    }
}

/// How many messages to store first: 10^6 for `cargo bench`, 1,000 under `cargo test`.
fn message_count() -> u64 {
    if let Some(n) = std::env::var("READREALM_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
        1_000_000
    } else {
        1_000
    }
}

fn store(c: &mut Criterion) {
    let dir = TempDir::new();
    let store = Store::open(&dir.0, false).expect("open a temporary store");
    let total = message_count();
    let books = (total / MESSAGES_PER_BOOK).max(1);
    let mut ids = IdGenerator::new(0);
    let base_ms = 1_795_521_600_000u64;

    // Fill: book b gets sequences 1..=100, written in batches of 1,000 messages.
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..total {
        let book = 1 + i % books;
        let seq = 1 + i / books;
        batch.push(message(&mut ids, book, seq, base_ms + i));
        if batch.len() == 1000 {
            store.append(batch.iter()).expect("fill");
            batch.clear();
        }
    }
    store.append(batch.iter()).expect("fill");
    store.flush().expect("flush");
    eprintln!(
        "store bench: {total} messages in {books} books written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut g = c.benchmark_group("store");
    let mut next_seq = MESSAGES_PER_BOOK + 1_000;
    let mut book = 0u64;
    let mut ms = base_ms + total;

    g.throughput(Throughput::Elements(1));
    g.bench_function("append 1 message", |b| {
        b.iter(|| {
            book = book % books + 1;
            next_seq += 1;
            ms += 1;
            let m = message(&mut ids, book, next_seq, ms);
            store.append(std::iter::once(&m)).expect("append")
        })
    });

    g.throughput(Throughput::Elements(32));
    g.bench_function("append 32 messages in one batch", |b| {
        b.iter(|| {
            let batch: Vec<StoredMessage> = (0..32)
                .map(|_| {
                    book = book % books + 1;
                    next_seq += 1;
                    ms += 1;
                    message(&mut ids, book, next_seq, ms)
                })
                .collect();
            store.append(batch.iter()).expect("append")
        })
    });

    let first = store.newest(BookId(1), 50).expect("read");
    assert_eq!(first.len(), 50, "every book holds at least 50 messages");
    assert!(
        first.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );

    // Books spread over the whole key space (a stride co-prime with most book counts).
    let mut pick = 0u64;
    g.throughput(Throughput::Elements(1));
    g.bench_function("newest 50 of a book", |b| {
        b.iter(|| {
            pick = (pick + 7_919) % books;
            store.newest(black_box(BookId(pick + 1)), 50).expect("read")
        })
    });
    g.bench_function("newest 50 of an empty book", |b| {
        b.iter(|| {
            store
                .newest(black_box(BookId(books + 1_000_000)), 50)
                .expect("read")
        })
    });
    g.finish();
    drop(store);
}

/// One book of `message_count()` messages; `loadHistory` pages below `_id`s across it.
fn load_history(c: &mut Criterion) {
    const BOOK: u64 = 2701;
    let dir = TempDir::new();
    let store = Store::open(&dir.0, false).expect("open a temporary store");
    let total = message_count();
    let mut ids = IdGenerator::new(0);
    let base_ms = 1_795_521_600_000u64;
    let started = Instant::now();
    let mut all_ids: Vec<MessageId> = Vec::with_capacity(total as usize);
    let mut batch = Vec::with_capacity(1000);
    for seq in 1..=total {
        let m = message(&mut ids, BOOK, seq, base_ms + seq / 4);
        all_ids.push(m.value.id);
        batch.push(m);
        if batch.len() == 1000 {
            store.append(batch.iter()).expect("fill");
            batch.clear();
        }
    }
    store.append(batch.iter()).expect("fill");
    store.flush().expect("flush");
    eprintln!(
        "loadHistory bench: one book of {total} messages written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // A cursor picked across the whole room (a stride co-prime with the room's size).
    let mut pick = 0usize;
    let mut next_cursor = || {
        pick = (pick + 7_919) % all_ids.len();
        all_ids[pick]
    };
    let page = store
        .page(BookId(BOOK), Some(all_ids[all_ids.len() / 2]), 50)
        .expect("page");
    assert_eq!(page.messages.len(), 50.min(all_ids.len() / 2));

    // Single pages timed one by one: the distribution criterion's batch means hide.
    let mut times: Vec<Duration> = (0..100_000)
        .map(|_| {
            let cursor = next_cursor();
            let t = Instant::now();
            let page = store.page(BookId(BOOK), Some(cursor), 50).expect("page");
            black_box(page_ack_json(&page));
            t.elapsed()
        })
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    eprintln!(
        "loadHistory bench: 100000 single pages of 50: p50 {:?} p99 {:?} p99.9 {:?} max {:?}",
        at(0.50),
        at(0.99),
        at(0.999),
        times[times.len() - 1]
    );

    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    g.bench_function("loadHistory page of 50 from a room of 10^6 messages", |b| {
        b.iter(|| {
            let cursor = next_cursor();
            let page = store
                .page(black_box(BookId(BOOK)), Some(cursor), 50)
                .expect("page");
            page_ack_json(&page)
        })
    });
    g.bench_function("loadHistory page of 50, store read only", |b| {
        b.iter(|| {
            let cursor = next_cursor();
            store
                .page(black_box(BookId(BOOK)), Some(cursor), 50)
                .expect("page")
        })
    });
    g.finish();
}

/// Not a criterion bench: the time `Store::open` takes to migrate a directory of the older
/// layout (messages only) holding `message_count()` messages in 100 books, printed once.
fn migration(_: &mut Criterion) {
    let dir = TempDir::new();
    let total = message_count();
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = rocksdb::DB::open(&options, &dir.0).expect("open an old-layout store");
        let mut ids = IdGenerator::new(0);
        let mut batch = rocksdb::WriteBatch::default();
        let mut value = Vec::new();
        for i in 0..total {
            let m = message(&mut ids, 1 + i % 100, 1 + i / 100, 1_795_521_600_000 + i);
            value.clear();
            codec::encode(&m.value, &mut value);
            batch.put(key::encode(m.book_id.get(), m.seq), &value);
            if batch.len() == 1000 {
                db.write(std::mem::take(&mut batch)).expect("fill");
            }
        }
        db.write(batch).expect("fill");
        db.flush().expect("flush");
    }
    let started = Instant::now();
    let store = Store::open(&dir.0, false).expect("open and migrate");
    eprintln!(
        "migration bench: a layout 1 directory of {total} messages migrated at open in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        layout::version(&store).expect("layout"),
        Some(layout::LAYOUT_VERSION)
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = store, load_history, migration
}
criterion_main!(benches);
