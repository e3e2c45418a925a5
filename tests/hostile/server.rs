//! The server under attack: the real `readrealm-chat` binary as a child process (ChatApp over
//! RocksDB in a fresh temp directory, two shards), so its memory (`VmRSS`) and open file
//! descriptors can be read from `/proc/PID` without other tests in this process adding to them.
//!
//! Short heartbeat and connect timeouts keep "never answers" cases quick. Stderr goes to a file
//! in the temp directory; a panic there fails the test that owns the server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Engine.IO pingInterval of every hostile-suite server, ms.
pub const PING_INTERVAL_MS: u64 = 500;
/// Engine.IO pingTimeout, ms: long enough that a bystander on a busy 2-core machine always
/// answers in time.
pub const PING_TIMEOUT_MS: u64 = 1000;
/// Socket.IO connect timeout, ms.
pub const CONNECT_TIMEOUT_MS: u64 = 1000;
/// Time allowed for a whole HTTP request to arrive, ms.
pub const REQUEST_TIMEOUT_MS: u64 = 1000;
/// Chat rate limit: high enough for the bystander's sender, low enough for a blast to trip.
pub const MESSAGE_RATE: u32 = 500;
pub const MESSAGE_BURST: u32 = 50;
/// Rooms per connection (low, so `too_many_rooms` is cheap to reach).
pub const MAX_ROOMS: usize = 5;
/// Largest Socket.IO packet / POST body.
pub const MAX_PAYLOAD: usize = 1_000_000;

/// A `readrealm-chat` child process on 127.0.0.1 with its own data directory; killed and its
/// directory removed on drop.
pub struct ChildServer {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

impl ChildServer {
    /// Start the server with the suite's settings plus `extra` flags (later flags win).
    pub fn start(extra: &[&str]) -> ChildServer {
        let dir = std::env::temp_dir().join(format!(
            "readrealm-hostile-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("stderr log");
        let data = dir.join("data");
        let ping_interval = PING_INTERVAL_MS.to_string();
        let ping_timeout = PING_TIMEOUT_MS.to_string();
        let connect_timeout = CONNECT_TIMEOUT_MS.to_string();
        let request_timeout = REQUEST_TIMEOUT_MS.to_string();
        let rate = MESSAGE_RATE.to_string();
        let burst = MESSAGE_BURST.to_string();
        let rooms = MAX_ROOMS.to_string();
        let payload = MAX_PAYLOAD.to_string();
        let mut args: Vec<&str> = vec![
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--data-dir",
            data.to_str().expect("UTF-8 temp path"),
            "--ping-interval",
            &ping_interval,
            "--ping-timeout",
            &ping_timeout,
            "--connect-timeout",
            &connect_timeout,
            "--request-timeout",
            &request_timeout,
            "--message-rate",
            &rate,
            "--message-burst",
            &burst,
            "--max-rooms",
            &rooms,
            "--max-payload",
            &payload,
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_readrealm-chat"))
            .args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn readrealm-chat");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        break addr.trim().parse().expect("listen address");
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
                    panic!("readrealm-chat did not start: {log}");
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ChildServer { child, addr, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Panics unless the process is still running and has not reported a panic.
    pub fn assert_alive(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{what}: the server exited ({status}); stderr:\n{}",
                self.stderr()
            );
        }
        let log = self.stderr();
        assert!(
            !log.contains("panicked"),
            "{what}: the server panicked; stderr:\n{log}"
        );
    }

    /// Resident memory, bytes (`VmRSS` in /proc/PID/status).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .expect("VmRSS in /proc/PID/status")
    }

    /// Open file descriptors (entries of /proc/PID/fd).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// Wait (bounded) until the open descriptors are at most `limit`; the last count seen.
    pub fn wait_fds_at_most(&self, limit: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let fds = self.open_fds();
            if fds <= limit || Instant::now() >= deadline {
                return fds;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
