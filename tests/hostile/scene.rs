//! One hostile case from start to end: a fresh server, the busy room's bystanders, a memory
//! sampler; then, after the attack, the four checks every case must pass:
//! (a) the server is still running (no exit, no panic) and serves a fresh client,
//! (b) is asserted by the case itself,
//! (c) every bystander saw every message once, in order,
//! (d) memory stayed bounded (peak `VmRSS` growth) and descriptors went back to the baseline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use super::bystander::Bystander;
use super::client::ChatClient;
use super::server::ChildServer;

/// Largest growth of the server's resident memory allowed during one case.
pub const RSS_GROWTH_LIMIT: u64 = 64 * 1024 * 1024;
/// Descriptors the server may hold above its post-warm-up count once the attack is over
/// (RocksDB may roll a log file).
const FD_SLACK: usize = 4;

pub struct Scene {
    pub server: ChildServer,
    bystander: Option<Bystander>,
    rss_start: u64,
    fds_start: usize,
    peak: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

impl Scene {
    /// A server with the suite's settings plus `extra` flags, the bystanders warmed up.
    pub fn start(extra: &[&str]) -> Scene {
        let server = ChildServer::start(extra);
        let bystander = Bystander::start(server.addr);
        bystander.wait_acked(40);
        let rss_start = server.rss_bytes();
        let fds_start = server.open_fds();
        let peak = Arc::new(AtomicU64::new(rss_start));
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
            let status = format!("/proc/{}/status", server.pid());
            std::thread::spawn(move || {
                while sampling.load(Ordering::SeqCst) {
                    if let Some(rss) = read_rss(&status) {
                        peak.fetch_max(rss, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Scene {
            server,
            bystander: Some(bystander),
            rss_start,
            fds_start,
            peak,
            sampling,
            sampler: Some(sampler),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Messages the bystanders got acked so far (to let traffic overlap an attack).
    pub fn wait_more_traffic(&self, more: u64) {
        let bystander = self.bystander.as_ref().expect("bystander");
        bystander.wait_acked(bystander.acked() + more);
    }

    /// Checks (a), (c) and (d); call after every hostile socket was dropped.
    pub fn finish(mut self, what: &str) {
        self.server.assert_alive(what);
        let bystander = self.bystander.take().expect("bystander");
        let messages = bystander.finish();
        // A fresh reader is served: connect, join, post, get the ack and the broadcast.
        // Several connections, so both shards are likely asked.
        for i in 0..4 {
            let mut client = ChatClient::connect(self.addr());
            let user = format!("fresh-{i}");
            client.join(9000 + i, &user);
            let id = client.emit_with_ack(
                "chatMessage",
                &json!({ "bookId": 9000 + i, "userId": user, "username": user, "content": "hi" }),
            );
            let ack = client.expect_ack(id);
            assert_eq!(ack["ok"], json!(true), "{what}: fresh client's post: {ack}");
            let message = client.expect_event("newMessage");
            assert_eq!(message["content"], json!("hi"), "{what}");
        }
        self.sampling.store(false, Ordering::SeqCst);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        let peak = self.peak.load(Ordering::SeqCst);
        let growth = peak.saturating_sub(self.rss_start);
        assert!(
            growth < RSS_GROWTH_LIMIT,
            "{what}: server RSS grew by {} KiB (from {} KiB to a peak of {} KiB)",
            growth / 1024,
            self.rss_start / 1024,
            peak / 1024
        );
        // Bystanders and fresh clients are gone too now, so the count must drop at least
        // back to the post-warm-up one.
        let fds = self
            .server
            .wait_fds_at_most(self.fds_start + FD_SLACK, Duration::from_secs(5));
        assert!(
            fds <= self.fds_start + FD_SLACK,
            "{what}: the server holds {fds} descriptors after the attack, {} before",
            self.fds_start
        );
        self.server.assert_alive(what);
        eprintln!(
            "{what}: ok; bystanders got all {messages} messages; RSS {} KiB -> peak {} KiB; \
             fds {} -> {fds}",
            self.rss_start / 1024,
            peak / 1024,
            self.fds_start
        );
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        self.sampling.store(false, Ordering::SeqCst);
    }
}

fn read_rss(status_path: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_path).ok()?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}
