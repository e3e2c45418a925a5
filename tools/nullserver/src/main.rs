//! `nullserver`: the floor `tools/compare` holds every chat server's fan-out against — the
//! least a server can do for `tools/loadgen fanout` over WebSocket and still be a server the
//! load generator cannot tell from a real one.
//!
//! What it does, as a real server must: one thread in a mio (epoll) loop that sleeps until
//! readiness; accepts loopback TCP with `TCP_NODELAY`; reads each ready socket until
//! `WouldBlock`; answers the WebSocket upgrade, sends the Engine.IO open packet, answers the
//! Socket.IO CONNECT, acknowledges `joinRoom` and remembers the room; for a `chatMessage`
//! encodes one `newMessage` frame (the message with an `_id` and ISO-8601 times) and appends
//! those same bytes to the output of every member of the room, the sender included, then the
//! sender's ack. Like readrealm-chat, output is written at the end of the loop turn, one
//! `write` per connection however many frames it got that turn (so frames for one reader
//! coalesce only by luck, as there); a socket that takes less waits for WRITABLE.
//! Its readers are loadgen's, which sleep in epoll like any client: every write pays for
//! waking one (the reason this, not `rawfloor`, is the floor).
//!
//! What it skips, each a cost every real server has: storage (nothing is kept or made
//! durable), validation of anything (HTTP, WebSocket framing beyond reading it, UTF-8, JSON —
//! fields are cut out of the text, see `chat.rs` — lengths, rates, room membership),
//! Engine.IO heartbeats (no ping is sent and no pong awaited: a fan-out run is shorter than
//! the 25 s ping interval readrealm-chat would use, so neither server sends one in it),
//! long-polling and the upgrade from it, namespaces other than `/`, `userJoined` /
//! `userLeft` / `previousMessages`, any limit on output queued for a slow reader, metrics,
//! logs, timers, shards. It is a measuring instrument, not a server: never expose it.
//!
//! Usage: `nullserver [--listen 127.0.0.1:0]`; prints `listening on ADDR` on stdout, runs
//! until killed.

mod chat;
mod wire;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX - 1);

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;

/// One client connection.
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` already written.
    written: usize,
    /// After the upgrade: frames, not an HTTP request, are read.
    websocket: bool,
    /// The room (book id) it joined, if any.
    room: Option<u64>,
    /// In the turn's list of connections to write.
    dirty: bool,
    writable_armed: bool,
    /// Close once the output is written.
    close_after_write: bool,
}

/// The server's whole state.
struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    /// Members of each room, by book id.
    rooms: HashMap<u64, Vec<usize>>,
    /// Connections with output to write at the end of this turn.
    dirty: Vec<usize>,
    /// Connections closed this turn, removed at its end.
    closed: Vec<usize>,
    next_id: u64,
}

impl Server {
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, Token(key), Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    entry.insert(Conn {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        written: 0,
                        websocket: false,
                        room: None,
                        dirty: false,
                        writable_armed: false,
                        close_after_write: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors or an aborted connection: try again next readiness.
                Err(_) => return,
            }
        }
    }

    /// Read everything the socket has, then act on it.
    fn on_readable(&mut self, key: usize) {
        let mut chunk = [0u8; READ_CHUNK];
        let mut closed = false;
        {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => conn.input.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        self.process(key);
        if closed {
            self.close(key);
        }
    }

    /// Act on the buffered input: the upgrade request, then frame after frame.
    fn process(&mut self, key: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.close_after_write || conn.input.is_empty() {
                return;
            }
            if !conn.websocket {
                match wire::read_request(&conn.input) {
                    wire::Request::Partial => return,
                    wire::Request::Refused => {
                        conn.input.clear();
                        conn.output.extend_from_slice(wire::BAD_REQUEST);
                        conn.close_after_write = true;
                    }
                    wire::Request::Upgrade { answer, len } => {
                        conn.input.drain(..len);
                        conn.output.extend_from_slice(&answer);
                        conn.websocket = true;
                        let sid = format!("{key:020}");
                        wire::write_text(&mut conn.output, chat::open(&sid).as_bytes());
                    }
                }
                self.mark_dirty(key);
                continue;
            }
            match wire::read_frame(&conn.input) {
                wire::Frame::Partial => return,
                wire::Frame::Skip { len } => {
                    conn.input.drain(..len);
                }
                wire::Frame::Close => {
                    conn.input.clear();
                    conn.output.extend_from_slice(wire::CLOSE);
                    conn.close_after_write = true;
                    self.mark_dirty(key);
                }
                wire::Frame::Data { payload, len } => {
                    conn.input.drain(..len);
                    if let Ok(text) = std::str::from_utf8(&payload) {
                        self.on_packet(key, text);
                    }
                }
            }
        }
    }

    /// One Engine.IO packet from connection `key`.
    fn on_packet(&mut self, key: usize, packet: &str) {
        match chat::parse(packet) {
            chat::Packet::Connect => {
                let answer = chat::connected(&format!("{key:020}"));
                self.send(key, answer.as_bytes());
            }
            chat::Packet::Join { ack, book } => {
                let answer = chat::join_ack(ack);
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                if conn.room.is_none() {
                    conn.room = Some(book);
                    self.rooms.entry(book).or_default().push(key);
                }
                self.send(key, answer.as_bytes());
            }
            chat::Packet::Chat {
                ack,
                book,
                user,
                name,
                content,
            } => {
                self.next_id += 1;
                let message = chat::message(self.next_id, book, user, name, content);
                // One encoded frame, copied to every member's output.
                let mut frame = Vec::new();
                wire::write_text(&mut frame, chat::new_message(&message).as_bytes());
                let members = self.rooms.get(&book).map(Vec::len).unwrap_or(0);
                for i in 0..members {
                    let Some(&member) = self.rooms.get(&book).and_then(|m| m.get(i)) else {
                        break;
                    };
                    self.send_frame(member, &frame);
                }
                self.send(key, chat::chat_ack(ack, &message).as_bytes());
            }
            chat::Packet::Other => {}
        }
    }

    /// Queue a text frame holding `payload` for `key`.
    fn send(&mut self, key: usize, payload: &[u8]) {
        if let Some(conn) = self.conns.get_mut(key) {
            wire::write_text(&mut conn.output, payload);
            self.mark_dirty(key);
        }
    }

    /// Queue an encoded frame for `key`.
    fn send_frame(&mut self, key: usize, frame: &[u8]) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.output.extend_from_slice(frame);
            self.mark_dirty(key);
        }
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Write every connection that got output this turn, one `write` each.
    fn flush(&mut self) {
        for key in std::mem::take(&mut self.dirty) {
            if self.closed.contains(&key) {
                continue;
            }
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.dirty = false;
            let done = loop {
                let Some(rest) = conn.output.get(conn.written..) else {
                    break Ok(true);
                };
                if rest.is_empty() {
                    break Ok(true);
                }
                match conn.stream.write(rest) {
                    Ok(0) => break Err(()),
                    Ok(n) => conn.written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
                    Err(_) => break Err(()),
                }
            };
            match done {
                Ok(true) => {
                    conn.output.clear();
                    conn.written = 0;
                    if conn.close_after_write {
                        self.close(key);
                    } else if conn.writable_armed {
                        conn.writable_armed = false;
                        let _ = self.poll.registry().reregister(
                            &mut conn.stream,
                            Token(key),
                            Interest::READABLE,
                        );
                    }
                }
                Ok(false) => {
                    if !conn.writable_armed {
                        conn.writable_armed = true;
                        let _ = self.poll.registry().reregister(
                            &mut conn.stream,
                            Token(key),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                    }
                }
                Err(()) => self.close(key),
            }
        }
    }

    /// Forget a connection: out of its room now, its slot freed at the end of the turn.
    fn close(&mut self, key: usize) {
        if self.closed.contains(&key) {
            return;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Some(room) = conn.room.take() {
            if let Some(members) = self.rooms.get_mut(&room) {
                members.retain(|&m| m != key);
            }
        }
        self.closed.push(key);
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    Token(key) => {
                        if self.closed.contains(&key) {
                            continue;
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(key);
                        }
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                    }
                }
            }
            self.flush();
            for key in self.closed.drain(..) {
                self.conns.try_remove(key);
            }
        }
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut i = 0;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--listen", Some(addr)) => {
                listen = addr
                    .parse()
                    .map_err(|_| io::Error::other(format!("bad --listen {addr}")))?;
                i += 2;
            }
            _ => {
                eprintln!("usage: nullserver [--listen 127.0.0.1:0]");
                std::process::exit(2);
            }
        }
    }
    let poll = Poll::new()?;
    let mut listener = TcpListener::bind(listen)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    Server {
        poll,
        listener,
        conns: Slab::new(),
        rooms: HashMap::new(),
        dirty: Vec::new(),
        closed: Vec::new(),
        next_id: 0,
    }
    .run()
}
