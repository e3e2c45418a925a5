//! Heap allocations per stored message on a room's home shard, counted by a global allocator.
//!
//! Drives the chat's home-shard path as the server does, with no network: for each message a
//! `ChatForward::Post` (built before counting: the sender's shard builds it) through `Handler::on_forward` (numbering), then `Handler::on_turn_end`
//! (the RocksDB batch, the `newMessage` broadcast and the sender's ack), then the frames the
//! shard encodes from every command the turn end returned (`packet_frames`, once per
//! broadcast and once per ack: `src/server/sessions.rs`). What the shard does afterwards per
//! recipient (sharing the frames) is not part of it.
//!
//! Only allocations made by Rust code on the bench's thread are counted (`alloc`,
//! `alloc_zeroed` and `realloc` calls): RocksDB's C++ allocates through its own `malloc`, and
//! its background threads are not the home shard's.
//!
//! `cargo bench --bench home_allocs` (READREALM_BENCH_MESSAGES overrides the 20,000 counted
//! messages); results in benches/RESULTS.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use readrealm_chat::chat::home::{HomeShard, Post};
use readrealm_chat::chat::limits::ChatLimits;
use readrealm_chat::chat::validate::MessageRequest;
use readrealm_chat::chat::{ChatApp, ChatForward};
use readrealm_chat::socketio::handler::SessionRef;
use readrealm_chat::socketio::handler::{ShardCommand, ShardContext, SocketRef};
use readrealm_chat::socketio::{packet_frames, Handler};
use readrealm_chat::store::Store;

/// Counts the allocations of the threads that turned counting on.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to `System` unchanged; counting only reads a thread-local flag
// and adds to two atomics, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Rooms the messages go to, in turn.
const ROOMS: u64 = 20;
const CONTENT: &str = "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse.";

/// A temporary store directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn post(book_id: u64, n: u64) -> ChatForward {
    ChatForward::Post(Post {
        request: MessageRequest {
            book_id: readrealm_chat::book::BookId(book_id),
            user_id: "u-17".to_owned(),
            username: "Ishmael".to_owned(),
            content: CONTENT.to_owned(),
        },
        reply_to: SocketRef {
            shard: 1,
            session: SessionRef::new(n as usize % 1000, 1),
            nsp: "/".to_owned(),
        },
        ack_id: Some(n),
    })
}

/// The posts `first..first + messages`, as the senders' shards build them (before counting).
fn posts(first: u64, messages: u64) -> Vec<ChatForward> {
    (first..first + messages)
        .map(|n| post(1 + n % ROOMS, n))
        .collect()
}

/// Run `posts` through the home path, `per_turn` per loop turn; returns the frames encoded
/// (to check the path did its work) and leaves the counters to the caller.
fn drive(app: &ChatApp, home: &mut HomeShard, posts: Vec<ChatForward>, per_turn: usize) -> usize {
    let mut frames = 0;
    let mut posts = posts.into_iter().peekable();
    while posts.peek().is_some() {
        let mut commands = Vec::new();
        let mut context = ShardContext {
            index: 0,
            count: 2,
            now: std::time::Instant::now(),
            state: &mut *home,
            commands: &mut commands,
        };
        for post in posts.by_ref().take(per_turn) {
            app.on_forward(&mut context, post);
        }
        app.on_turn_end(&mut context);
        for command in commands {
            frames += match command {
                ShardCommand::EmitTo { packet, .. } => packet_frames(&packet).len(),
                ShardCommand::Broadcast { packet, .. } => packet_frames(&packet).len(),
                ShardCommand::Forward { .. } | ShardCommand::ToSocket { .. } => 0,
            };
        }
    }
    frames
}

fn main() {
    let messages: u64 = std::env::var("READREALM_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = TempDir(std::env::temp_dir().join(format!(
        "readrealm-bench-home-allocs-{}",
        std::process::id()
    )));
    let store = Arc::new(Store::open(&dir.0, false).expect("open the bench store"));
    let app = ChatApp::new(store, ChatLimits::default());
    println!("allocations per stored message on the home shard ({messages} messages, {ROOMS} rooms, Rust heap, bench thread):");
    for per_turn in [1usize, 16] {
        let mut home = HomeShard::default();
        // Warm-up, not counted: every room's first write loads its tail from the store.
        let warm = drive(&app, &mut home, posts(0, ROOMS * 4), per_turn);
        assert_eq!(
            warm as u64,
            ROOMS * 4 * 2,
            "a broadcast and an ack per message"
        );
        let counted = posts(ROOMS * 4, messages);
        ALLOCATIONS.store(0, Ordering::Relaxed);
        BYTES.store(0, Ordering::Relaxed);
        COUNTING.with(|c| c.set(true));
        let frames = drive(&app, &mut home, counted, per_turn);
        COUNTING.with(|c| c.set(false));
        assert_eq!(
            frames as u64,
            messages * 2,
            "a broadcast and an ack per message"
        );
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) as f64 / messages as f64;
        let bytes = BYTES.load(Ordering::Relaxed) as f64 / messages as f64;
        println!(
            "  {per_turn:>2} message(s) per turn: {allocations:.2} allocations, {bytes:.0} bytes allocated per message"
        );
    }
}
