//! The bystanders: a busy room that must not notice the attack. One sender posts a numbered
//! sequence (`seq N`) with acks, one after the other; two receivers over WebSocket (with two
//! shards, at least one of the three likely sits on the other shard) record every
//! `newMessage`. At the end every receiver, and the sender itself, must have seen exactly
//! `0..acked` in order: nothing lost, nothing duplicated, nothing reordered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::ChatClient;

/// The busy room's book.
pub const BOOK: u64 = 2701;
/// Pause between two posts of the sender.
const POST_GAP: Duration = Duration::from_millis(2);
/// How long receivers may lag behind the last ack once the sender stopped.
const DRAIN: Duration = Duration::from_secs(5);

/// `seq N` → N.
fn seq_of(message: &Value) -> u64 {
    let content = message["content"].as_str().expect("content is a string");
    content
        .strip_prefix("seq ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a bystander message: {message}"))
}

pub struct Bystander {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    /// The number of messages acked, published when the sender stopped.
    total: Arc<AtomicU64>,
    sender: Option<JoinHandle<Vec<u64>>>,
    receivers: Vec<JoinHandle<Vec<u64>>>,
}

impl Bystander {
    /// Join the receivers, then start the sender; returns once the first messages are acked.
    pub fn start(addr: SocketAddr) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(u64::MAX));
        let mut receivers = Vec::new();
        for r in 0..2 {
            let mut client = ChatClient::connect(addr);
            client.join(BOOK, &format!("reader-{r}"));
            let total = Arc::clone(&total);
            receivers.push(std::thread::spawn(move || receive(client, &total)));
        }
        let mut client = ChatClient::connect(addr);
        client.join(BOOK, "writer");
        let sender = {
            let (stop, acked, total) = (Arc::clone(&stop), Arc::clone(&acked), Arc::clone(&total));
            std::thread::spawn(move || send(client, &stop, &acked, &total))
        };
        let bystander = Bystander {
            stop,
            acked,
            total,
            sender: Some(sender),
            receivers,
        };
        bystander.wait_acked(20);
        bystander
    }

    /// Messages acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Wait (bounded) until `n` messages in all are acked.
    pub fn wait_acked(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.acked() < n {
            if self.sender.as_ref().is_some_and(|s| s.is_finished()) {
                return; // finish() reports why
            }
            assert!(
                Instant::now() < deadline,
                "bystander: only {} of {n} messages acked",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stop posting and check every receiver got exactly `0..acked`, in order; the count.
    pub fn finish(mut self) -> u64 {
        // Keep the room busy a little longer, so traffic overlaps the end of the attack.
        let target = self.acked() + 20;
        self.wait_acked(target);
        self.stop.store(true, Ordering::SeqCst);
        let sender = self.sender.take().expect("sender");
        let own = join_or_panic(sender, "sender");
        let total = self.total.load(Ordering::SeqCst);
        let expected: Vec<u64> = (0..total).collect();
        assert!(total >= 40, "the room was busy: {total} messages");
        check(&own, &expected, "sender's own newMessages");
        for (i, receiver) in std::mem::take(&mut self.receivers).into_iter().enumerate() {
            let got = join_or_panic(receiver, "receiver");
            check(&got, &expected, &format!("receiver {i}"));
        }
        total
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn join_or_panic(handle: JoinHandle<Vec<u64>>, who: &str) -> Vec<u64> {
    match handle.join() {
        Ok(seqs) => seqs,
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("bystander {who} failed: {text}")
        }
    }
}

fn check(got: &[u64], expected: &[u64], who: &str) {
    if got == expected {
        return;
    }
    let first_bad = got
        .iter()
        .zip(expected)
        .position(|(g, e)| g != e)
        .unwrap_or(got.len().min(expected.len()));
    panic!(
        "{who}: received {} messages, expected {}; first difference at index {first_bad}: \
         got {:?}, expected {:?}",
        got.len(),
        expected.len(),
        &got[first_bad..got.len().min(first_bad + 5)],
        &expected[first_bad..expected.len().min(first_bad + 5)],
    );
}

/// Post `seq 0`, `seq 1`, ... each after the previous ack, until told to stop; the sequence
/// numbers of the sender's own `newMessage`s.
fn send(
    mut client: ChatClient,
    stop: &AtomicBool,
    acked: &AtomicU64,
    total: &AtomicU64,
) -> Vec<u64> {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let id = client.emit_with_ack(
            "chatMessage",
            &json!({ "bookId": BOOK, "userId": "writer", "username": "writer",
                     "content": format!("seq {n}") }),
        );
        let ack = client.expect_ack(id);
        assert_eq!(ack["ok"], json!(true), "bystander post {n}: {ack}");
        assert_eq!(seq_of(&ack["message"]), n, "ack for post {n}: {ack}");
        n += 1;
        acked.store(n, Ordering::SeqCst);
        std::thread::sleep(POST_GAP);
    }
    total.store(n, Ordering::SeqCst);
    collect(client, total)
}

fn receive(client: ChatClient, total: &AtomicU64) -> Vec<u64> {
    collect(client, total)
}

/// Record every `newMessage` until `total` is known and reached (or [`DRAIN`] passed after).
fn collect(mut client: ChatClient, total: &AtomicU64) -> Vec<u64> {
    let mut seqs: Vec<u64> = Vec::new();
    let mut drain_deadline: Option<Instant> = None;
    let take_events = |client: &mut ChatClient, seqs: &mut Vec<u64>| {
        for (name, arg) in std::mem::take(&mut client.events) {
            if name == "newMessage" {
                seqs.push(seq_of(&arg));
            }
        }
    };
    loop {
        take_events(&mut client, &mut seqs);
        let goal = total.load(Ordering::SeqCst);
        if goal != u64::MAX {
            if seqs.len() as u64 >= goal {
                // A duplicate would arrive right behind the last message: keep listening a
                // little, so check() sees it.
                let until = Instant::now() + Duration::from_millis(100);
                while let Some(packet) =
                    client.next_packet(until.saturating_duration_since(Instant::now()))
                {
                    let (name, arg) = super::client::event_parts(&packet);
                    if name == "newMessage" {
                        seqs.push(seq_of(&arg));
                    }
                }
                return seqs;
            }
            let deadline = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN);
            if Instant::now() >= deadline {
                return seqs;
            }
        }
        if let Some(packet) = client.next_packet(Duration::from_millis(50)) {
            match packet.kind {
                2 => {
                    let (name, arg) = super::client::event_parts(&packet);
                    match name.as_str() {
                        "newMessage" => seqs.push(seq_of(&arg)),
                        // Presence of other bystanders and of hostile clients that join.
                        "userJoined" | "userLeft" => {}
                        _ => panic!("bystander: unexpected event {packet:?}"),
                    }
                }
                _ => panic!("bystander: unexpected packet {packet:?}"),
            }
        }
    }
}
