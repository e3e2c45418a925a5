//! The order in which a shard writes a turn's output: answers to one connection (an ack) go out
//! before the writes of a large room fan-out (shard.rs, `end_turn`).
//!
//! Observed from outside with the kernel's receive timestamps (`SO_TIMESTAMPNS`): on loopback
//! each write of the server is received by the kernel inside that write, so the timestamps
//! follow the order of the server's writes, however late the test reads them.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use readrealm_chat::chat::limits::ChatLimits;
use readrealm_chat::chat::ChatApp;
use readrealm_chat::store::Store;
use serde_json::{json, Value};
use support::{base_config, quiet};
use tungstenite::{Message, WebSocket};

const WAIT: Duration = Duration::from_secs(5);

/// The tests here measure the order of one shard's writes against a client's timing: run one
/// at a time, so neither competes with the other for the machine's cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Raise this process's soft limit on open files to its hard limit; the limit now in force.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return limit.rlim_max;
        }
    }
    limit.rlim_cur
}

/// A TCP stream read with `recvmsg`, keeping the kernel receive time of the latest read.
struct StampedTcp {
    stream: TcpStream,
    /// CLOCK_REALTIME ns of the last read that returned data; 0 if it carried no stamp.
    last: u64,
}

impl StampedTcp {
    fn connect(addr: std::net::SocketAddr) -> StampedTcp {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let one: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value of the size given.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_TIMESTAMPNS: {}", io::Error::last_os_error());
        StampedTcp { stream, last: 0 }
    }
}

impl Read for StampedTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for one cmsg holding a timespec, aligned for cmsghdr.
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain data; zeroed is a valid "no name, no flags" value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: msg points at live buffers of the lengths it states.
        let n = unsafe { libc::recvmsg(self.stream.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n > 0 {
            self.last = 0;
            // SAFETY: walking the control buffer the kernel filled, with libc's macros.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::SOL_SOCKET
                        && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                    {
                        let ts: libc::timespec =
                            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                        self.last = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
                    }
                    cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
                }
            }
        }
        Ok(n as usize)
    }
}

impl Write for StampedTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// One Socket.IO client on `/` whose received packets carry their kernel arrival time.
struct Client {
    ws: WebSocket<StampedTcp>,
}

impl Client {
    fn connect(addr: std::net::SocketAddr) -> Client {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tungstenite::client::client(url.as_str(), StampedTcp::connect(addr))
            .unwrap_or_else(|e| panic!("websocket handshake: {e}"));
        let mut client = Client { ws };
        let (open, _) = client.next();
        assert!(open.starts_with('0'), "open packet, got {open}");
        client.send("40");
        let (connected, _) = client.next();
        assert!(
            connected.starts_with("40"),
            "CONNECT answer, got {connected}"
        );
        client
    }

    fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    /// The next text packet (pings answered) and the kernel arrival time of its frame.
    fn next(&mut self) -> (String, u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no packet in time");
            match self.ws.read() {
                Ok(Message::Text(t)) if t.as_str() == "2" => self.send("3"),
                Ok(Message::Text(t)) => return (t.as_str().to_owned(), self.ws.get_ref().last),
                Ok(_) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Reads until a packet starting with `prefix`; its text and arrival time.
    fn until(&mut self, prefix: &str) -> (String, u64) {
        loop {
            let (text, at) = self.next();
            if text.starts_with(prefix) {
                return (text, at);
            }
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    std::env::temp_dir().join(format!(
        "readrealm-write-order-{tag}-{:016x}",
        u64::from_le_bytes(bytes)
    ))
}

/// A member that joined a large room last posts to it: its ack is written before the room's
/// fan-out, so it arrives before the message reaches any other member (before the change
/// that made it so, the ack waited behind the writes to every member that joined earlier).
#[test]
fn an_ack_is_written_before_a_large_fan_out() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const MEMBERS: usize = 60;
    let dir = temp_dir("ack");
    let store = Arc::new(Store::open(&dir, false).unwrap());
    let mut config = base_config();
    quiet(&mut config);
    config.shards = 1;
    let app = ChatApp::new(Arc::clone(&store), ChatLimits::default());
    let handle = readrealm_chat::server::start(config, app).expect("server starts");
    let addr = handle.local_addr();

    let join = |client: &mut Client, user: &str| {
        client.send(&format!(
            "420{}",
            json!(["joinRoom", { "bookId": 7, "userId": user, "username": user }])
        ));
        let (ack, _) = client.until("430");
        assert!(ack.contains(r#""ok":true"#), "join: {ack}");
    };
    let mut members: Vec<Client> = (0..MEMBERS)
        .map(|i| {
            let mut c = Client::connect(addr);
            join(&mut c, &format!("m{i}"));
            c
        })
        .collect();
    let mut poster = Client::connect(addr);
    join(&mut poster, "poster");
    // Let the kernel's timestamping (switched on from deferred work) be in force.
    std::thread::sleep(Duration::from_millis(50));

    poster.send(&format!(
        "421{}",
        json!(["chatMessage", { "bookId": 7, "userId": "poster", "username": "poster", "content": "first!" }])
    ));
    let (ack, ack_at) = poster.until("431");
    let ack: Value = serde_json::from_str(&ack[3..]).expect("ack JSON");
    assert_eq!(ack[0]["ok"], true, "chatMessage ack: {ack}");
    assert_ne!(ack_at, 0, "the ack's read carried no kernel timestamp");
    for (i, member) in members.iter_mut().enumerate() {
        let (message, at) = member.until(r#"42["newMessage""#);
        assert!(message.contains("first!"), "member {i}: {message}");
        assert_ne!(at, 0, "member {i}: no kernel timestamp");
        assert!(
            ack_at < at,
            "the poster's ack arrived at {ack_at}, after member {i}'s copy at {at} \
             ({} µs later)",
            (ack_at - at) / 1000
        );
    }
    drop(members);
    drop(poster);
    handle.shutdown();
    let _ = handle.join();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A turn that has written a large fan-out for a while reads again before writing the rest:
/// a message posted to a small room while a fan-out to up to 3,000 members is being written is
/// read, acked and delivered before that fan-out reaches its last member (before the change
/// that made it so, it was not even read until the whole fan-out was written). The more
/// members, the longer the fan-out (about 4 µs each here), so the more room a loaded machine's
/// scheduling has to post in time: as many as the open-file limit allows (two descriptors
/// each, client and server, in this process).
#[test]
fn a_long_fan_out_lets_the_shard_read_and_answer_in_between() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let members_max = (raise_fd_limit().saturating_sub(300) / 2) as usize;
    let members_count: usize = members_max.clamp(1000, 3000);
    let dir = temp_dir("budget");
    let store = Arc::new(Store::open(&dir, false).unwrap());
    let mut config = base_config();
    quiet(&mut config);
    config.shards = 1;
    let app = ChatApp::new(Arc::clone(&store), ChatLimits::default());
    let handle = readrealm_chat::server::start(config, app).expect("server starts");
    let addr = handle.local_addr();

    let join = |client: &mut Client, book: u64, user: &str| {
        client.send(&format!(
            "420{}",
            json!(["joinRoom", { "bookId": book, "userId": user, "username": user }])
        ));
        let (ack, _) = client.until("430");
        assert!(ack.contains(r#""ok":true"#), "join: {ack}");
    };
    let mut poster = Client::connect(addr);
    join(&mut poster, 1, "poster");
    let mut members: Vec<Client> = (0..members_count)
        .map(|i| {
            let mut c = Client::connect(addr);
            join(&mut c, 1, &format!("m{i}"));
            c
        })
        .collect();
    let mut other = Client::connect(addr);
    join(&mut other, 2, "other");
    std::thread::sleep(Duration::from_millis(50));

    let post = |client: &mut Client, book: u64, user: &str, content: &str| {
        client.send(&format!(
            "421{}",
            json!(["chatMessage", { "bookId": book, "userId": user, "username": user, "content": content }])
        ));
    };
    post(&mut poster, 1, "poster", "to the crowd");
    // Once the first member has its copy, the shard is writing 1,500 of them (several
    // milliseconds, far beyond the write budget); post to the small room then, so the post
    // surely arrives while the fan-out is being written, however loaded the machine.
    let (first, _) = members[0].until(r#"42["newMessage""#);
    assert!(first.contains("to the crowd"), "first member: {first}");
    post(&mut other, 2, "other", "aside");

    let (ack, other_ack_at) = other.until("431");
    assert!(ack.contains(r#""ok":true"#), "chatMessage ack: {ack}");
    assert_ne!(other_ack_at, 0, "no kernel timestamp");
    let last = members.last_mut().expect("members");
    let (message, last_at) = last.until(r#"42["newMessage""#);
    assert!(message.contains("to the crowd"), "last member: {message}");
    assert!(
        other_ack_at < last_at,
        "the small room's ack arrived {} µs after the large fan-out's last copy",
        (other_ack_at - last_at) / 1000
    );
    drop(members);
    drop(poster);
    drop(other);
    handle.shutdown();
    let _ = handle.join();
    let _ = std::fs::remove_dir_all(&dir);
}
