//! Idle memory per joined WebSocket connection (issue 12's goal: at most 2 KiB each at 19,000
//! held; `tools/loadgen idle` measures it at that size, benches/RESULTS.md has the figures).
//!
//! The real `readrealm-chat` binary as a child process (two shards, RocksDB in a temp
//! directory; `tests/hostile/server.rs`) and a few thousand real WebSocket clients in this
//! process, each connected to `/` and joined to a room of ten readers, then left idle. The
//! server's resident memory (`VmRSS`) growth divided by the clients must stay within 2 KiB.
//! The growth is taken from a warmed-up server (a first batch of clients joined, so one-time
//! costs — the store's first reads, the history cache — are not spread over the rest); the
//! kernel's socket buffers are not in RSS.

mod support;

#[allow(dead_code)]
#[path = "hostile/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "hostile/server.rs"]
mod server;

use std::thread;
use std::time::Duration;

use client::ChatClient;
use server::ChildServer;

/// The clients measured (after the warm-up batch). Each takes a descriptor here and one in the
/// server, under the 20,000 the machines allow a process.
const CLIENTS: usize = 4000;
/// Clients joined before the baseline is read.
const WARM_UP: usize = 200;
/// Readers per room, as in `tools/loadgen idle`.
const PER_ROOM: usize = 10;
/// Client threads connecting at once.
const THREADS: usize = 4;
/// The goal, bytes per connection.
const BUDGET: u64 = 2048;

/// Raise this process's soft limit on open files to its hard limit (the server started after
/// it inherits it).
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
    }
}

/// Clients `from..to`, each connected and joined to book `900_000 + i / PER_ROOM` as `i<i>`,
/// over [`THREADS`] threads; they stay open while the returned vector lives.
fn join_clients(server: &ChildServer, from: usize, to: usize) -> Vec<ChatClient> {
    let addr = server.addr;
    let per_thread = (to - from).div_ceil(THREADS);
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let start = from + t * per_thread;
            let end = (start + per_thread).min(to);
            thread::spawn(move || {
                (start..end)
                    .map(|i| {
                        let mut client = ChatClient::connect(addr);
                        client.join(900_000 + (i / PER_ROOM) as u64, &format!("i{i}"));
                        client
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|w| w.join().expect("client thread"))
        .collect()
}

/// Resident memory of process `pid`, bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status");
    kib * 1024
}

#[test]
fn idle_joined_websocket_connections_cost_at_most_2_kib_each() {
    raise_fd_limit();
    // Heartbeats slower than the test, so no client has to answer a ping while it waits.
    let mut server = ChildServer::start(&["--ping-interval", "60000", "--ping-timeout", "60000"]);
    let warm = join_clients(&server, 0, WARM_UP);
    thread::sleep(Duration::from_millis(300));
    let before = rss_bytes(server.pid());
    let clients = join_clients(&server, WARM_UP, WARM_UP + CLIENTS);
    thread::sleep(Duration::from_millis(300));
    let after = rss_bytes(server.pid());
    server.assert_alive("idle connections");
    let per_connection = after.saturating_sub(before) / CLIENTS as u64;
    eprintln!(
        "idle: {CLIENTS} joined WebSocket connections: server RSS {} -> {} KiB, {per_connection} B each",
        before / 1024,
        after / 1024
    );
    assert!(
        per_connection <= BUDGET,
        "{per_connection} B per idle joined WebSocket connection, over {BUDGET} B"
    );
    drop(clients);
    drop(warm);
}
