//! `--write-delay`: broadcast output for a connection waits up to the delay so that frames for
//! it coalesce into one write; answers never wait; a delay of zero (the default) writes at
//! the end of the turn (shard.rs, `mark_dirty`; write_delay.rs).
//!
//! Observed from outside over real sockets: every client is read by its own thread, blocked
//! in `read`, which stamps each packet with the time its read returned. Two frames written by
//! one write arrive in one read (stamped within microseconds of each other); frames written
//! a [`GAP`] apart arrive about that far apart. The bounds leave tens of milliseconds for a
//! busy machine's scheduling.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use readrealm_chat::chat::limits::ChatLimits;
use readrealm_chat::chat::ChatApp;
use readrealm_chat::store::Store;
use serde_json::json;
use support::{base_config, quiet};
use tungstenite::{Message, WebSocket};

const WAIT: Duration = Duration::from_secs(5);

/// Time between the two messages a test posts.
const GAP: Duration = Duration::from_millis(200);

/// One Socket.IO client on `/`: a reader thread hands over every text packet with the time
/// its read returned; sends go through the same socket (tungstenite, behind a lock).
struct Client {
    ws: Arc<Mutex<WebSocket<TcpStream>>>,
    packets: Receiver<(String, Instant)>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tungstenite::client::client(url.as_str(), stream)
            .unwrap_or_else(|e| panic!("websocket handshake: {e}"));
        let open = ws.read().expect("open packet");
        assert!(open.to_text().unwrap_or("").starts_with('0'), "{open:?}");
        ws.send(Message::text("40")).expect("send CONNECT");
        let connected = ws.read().expect("CONNECT answer");
        assert!(connected.to_text().unwrap_or("").starts_with("40"));
        // Reads block for at most a few milliseconds, so a send takes the lock soon.
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let ws = Arc::new(Mutex::new(ws));
        let (tx, packets) = mpsc::channel();
        let reader = Arc::clone(&ws);
        std::thread::spawn(move || loop {
            let read = reader.lock().expect("lock").read();
            let at = Instant::now();
            match read {
                Ok(Message::Text(t)) if t.as_str() == "2" => {
                    let _ = reader.lock().expect("lock").send(Message::text("3"));
                }
                Ok(Message::Text(t)) => {
                    if tx.send((t.as_str().to_owned(), at)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // Sleep rather than yield: std's Mutex is not fair, and a reader that
                    // takes the lock again at once can keep a send waiting for hundreds of
                    // milliseconds (which delayed posts and failed this test's bounds).
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(_) => return,
            }
        });
        Client { ws, packets }
    }

    fn send(&self, text: &str) {
        self.ws
            .lock()
            .expect("lock")
            .send(Message::text(text))
            .expect("send");
    }

    /// Reads until a packet starting with `prefix`; its text and when its read returned.
    fn until(&self, prefix: &str) -> (String, Instant) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (text, at) = self
                .packets
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no packet starting with {prefix} in time"));
            if text.starts_with(prefix) {
                return (text, at);
            }
        }
    }

    fn join(&self, book: u64, user: &str) {
        self.send(&format!(
            "420{}",
            json!(["joinRoom", { "bookId": book, "userId": user, "username": user }])
        ));
        let (ack, _) = self.until("430");
        assert!(ack.contains(r#""ok":true"#), "join: {ack}");
    }

    /// Posts, and returns when the post was written: taken with the socket's lock held, so a
    /// wait for the lock is not counted as the server's.
    fn post(&self, ack: u32, book: u64, user: &str, content: &str) -> Instant {
        let text = format!(
            "42{ack}{}",
            json!(["chatMessage", { "bookId": book, "userId": user, "username": user, "content": content }])
        );
        let mut ws = self.ws.lock().expect("lock");
        let at = Instant::now();
        ws.send(Message::text(text)).expect("send");
        at
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    std::env::temp_dir().join(format!(
        "readrealm-write-delay-{tag}-{:016x}",
        u64::from_le_bytes(bytes)
    ))
}

/// What one run saw: when each message was posted, when its ack reached the poster, when each
/// copy reached the member.
struct Seen {
    posted: [Instant; 2],
    acked: [Instant; 2],
    delivered: [Instant; 2],
}

/// A poster and a member in one room (the poster joined last, so it is not the member whose
/// output is watched); the poster posts twice, [`GAP`] apart.
fn two_posts(tag: &str, write_delay: Option<Duration>) -> Seen {
    let dir = temp_dir(tag);
    let store = Arc::new(Store::open(&dir, false).unwrap());
    let mut config = base_config();
    quiet(&mut config);
    config.shards = 1;
    if let Some(delay) = write_delay {
        config.write_delay = delay;
    }
    let app = ChatApp::new(Arc::clone(&store), ChatLimits::default());
    let handle = readrealm_chat::server::start(config, app).expect("server starts");
    let addr = handle.local_addr();

    let member = Client::connect(addr);
    member.join(9, "member");
    let poster = Client::connect(addr);
    poster.join(9, "poster");
    // The member hears of the poster's arrival; let that be written and read first.
    member.until(r#"42["userJoined""#);

    let first = poster.post(1, 9, "poster", "one");
    let (ack1, acked1) = poster.until("431");
    assert!(ack1.contains(r#""ok":true"#), "first ack: {ack1}");
    std::thread::sleep(GAP.saturating_sub(first.elapsed()));
    let second = poster.post(2, 9, "poster", "two");
    let (ack2, acked2) = poster.until("432");
    assert!(ack2.contains(r#""ok":true"#), "second ack: {ack2}");
    let (m1, at1) = member.until(r#"42["newMessage""#);
    assert!(m1.contains(r#""content":"one""#), "first copy: {m1}");
    let (m2, at2) = member.until(r#"42["newMessage""#);
    assert!(m2.contains(r#""content":"two""#), "second copy: {m2}");

    drop(member);
    drop(poster);
    handle.shutdown();
    let _ = handle.join();
    let _ = std::fs::remove_dir_all(&dir);
    Seen {
        posted: [first, second],
        acked: [acked1, acked2],
        delivered: [at1, at2],
    }
}

/// With a write delay longer than the gap between two messages, the member's first copy
/// waits for the delay and the second joins it in one write; the poster's acks do not wait.
#[test]
fn broadcast_frames_wait_for_the_write_delay_and_coalesce() {
    const DELAY: Duration = Duration::from_millis(500);
    let seen = two_posts("on", Some(DELAY));
    for i in 0..2 {
        let ack = seen.acked[i].duration_since(seen.posted[i]);
        assert!(
            ack < DELAY / 2,
            "ack {} took {ack:?}: answers must not wait for the write delay",
            i + 1
        );
    }
    let waited = seen.delivered[0].duration_since(seen.posted[0]);
    assert!(
        waited >= DELAY - Duration::from_millis(2),
        "the first copy arrived {waited:?} after its post, before the {DELAY:?} delay"
    );
    // Up to the delay, counted from the first frame that waits: a later frame joins the
    // wait, it does not restart it.
    assert!(
        waited < DELAY + GAP / 2,
        "the first copy arrived {waited:?} after its post: it waited longer than {DELAY:?}"
    );
    let apart = seen.delivered[1].duration_since(seen.delivered[0]);
    assert!(
        apart < GAP / 2,
        "the two copies arrived {apart:?} apart: not one write (posted {:?} apart)",
        seen.posted[1].duration_since(seen.posted[0])
    );
}

/// With no write delay (the default), each copy is written in the turn that stored it: the
/// first reaches the member before the second message is even posted ([`GAP`] later).
#[test]
fn without_a_write_delay_each_broadcast_is_written_at_once() {
    let seen = two_posts("off", None);
    assert!(
        seen.delivered[0] < seen.posted[1],
        "the first copy arrived {:?} after its post, after the second post ({:?} after the \
         first): it waited, with no write delay",
        seen.delivered[0].duration_since(seen.posted[0]),
        seen.posted[1].duration_since(seen.posted[0])
    );
}
