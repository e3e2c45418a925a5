//! One TCP connection of a shard: the socket, its buffers, and what it is carrying now.
//!
//! A connection starts as HTTP (a request head, maybe a body), may park a polling GET until
//! its session has something to send, or becomes a WebSocket after the upgrade handshake.
//! Buffers start empty and grow only while data passes (docs/ARCHITECTURE.md, principle 7);
//! so does a WebSocket's reading state ([`ws::ReadState`]); output is written from an offset so a
//! partial write never moves the rest.

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;

use super::admission::Admitted;
use super::ws::{self, Buffers, Inbound};

/// Bytes read from a socket per `read` call; a read returning fewer emptied the socket.
pub const READ_CHUNK: usize = 16 * 1024;

/// How far a connection is read: what its caller knows about the socket's read side.
///
/// mio registers sockets edge-triggered: a readiness event is not repeated until new input
/// (or the peer's end of stream) arrives after it, so input must be read until the socket is
/// known to be empty. A read that returns fewer bytes than asked for shows that: it took
/// everything the socket held, and anything arriving later raises a new edge (epoll(7);
/// tokio clears readiness on such a short read for the same reason). The exception is an end
/// of stream (or an error) that arrived with the data: it raises no new edge, so it must be
/// read now, and only reading until the socket says so finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadUntil {
    /// A short read ends the reading: the event reported input only (not read-closed, hang-up
    /// or error), or the socket was just registered (registration reports whatever is
    /// pending as an event of its own).
    ShortRead,
    /// Read until `WouldBlock`, end of stream or an error: the event reported read-closed,
    /// hang-up or an error, or the connection resumes after using its read budget (an end of
    /// stream seen in an earlier turn is not reported again).
    WouldBlock,
}

/// Output buffers of this shard's thread that were emptied by a complete write, ready for the
/// next connection that has something to send. An idle connection holds no output buffer
/// (idle connections must cost well under 2 KiB each), yet a busy shard allocates none per
/// delivery: the buffer a connection gives back after its write is the one the next frame
/// goes into. Bounded in count and in the size of what it keeps.
mod spare_output {
    use std::cell::RefCell;

    /// Most buffers kept per shard thread.
    const MAX_SPARE: usize = 256;
    /// Larger buffers (a burst, a history) are freed rather than kept.
    const MAX_KEPT_CAPACITY: usize = 2048;

    thread_local! {
        static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer, reused when one is spare.
    pub fn take() -> Vec<u8> {
        SPARE
            .with(|spare| spare.borrow_mut().pop())
            .unwrap_or_default()
    }

    /// Give back an emptied buffer.
    pub fn give(mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > MAX_KEPT_CAPACITY {
            return;
        }
        buffer.clear();
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < MAX_SPARE {
                spare.push(buffer);
            }
        });
    }
}

/// How a connection's bytes are read: which session it serves is the endpoint's to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// HTTP requests, one at a time (keep-alive).
    Http,
    /// A polling GET the endpoint holds: nothing is read as a request until it is answered.
    Parked,
    /// WebSocket frames (in `ws`).
    WebSocket,
}

pub struct Conn {
    pub stream: TcpStream,
    pub buffers: Buffers,
    /// `Some` once the connection is a WebSocket (kept while it closes): its reading state,
    /// which holds nothing between messages.
    pub ws: Option<ws::ReadState>,
    pub mode: Mode,
    /// Closed this turn: its slot is freed at the end of it, and nothing more is done with it.
    pub closed: bool,
    /// Bytes of output already written to the socket.
    written: usize,
    /// Close once the output is written (a `Connection: close` answer, a WebSocket close).
    pub close_after_flush: bool,
    /// A WebSocket being closed by the server is closed by then even if its close frame is
    /// not written yet (a peer that never reads cannot hold it open).
    pub close_by: Option<Instant>,
    /// Output all written and a FIN sent: the peer's input is read and dropped until it
    /// closes too, or `close_by` (a lingering close).
    pub draining: bool,
    /// The peer has closed its WebSocket (its close frame was read) and sends nothing more:
    /// once the close answering it is written, the TCP connection closes at once, with no
    /// lingering close (RFC 6455 §5.5.1: after both closes, the endpoint MUST close the TCP
    /// connection; §7.1.1: the server closes first).
    pub peer_closed: bool,
    /// WRITABLE interest is registered.
    pub writable_armed: bool,
    /// In one of the shard's lists of connections to flush (answers or fan-out).
    pub dirty: bool,
    /// In the shard's list of answers, written first at the end of the loop turn.
    pub urgent: bool,
    /// Broadcast output waits for this connection until then (`--write-delay`, see
    /// `write_delay.rs`); `None` when nothing waits. Cleared by every write.
    pub write_by: Option<Instant>,
    /// When the connection was accepted (kept across hand-overs).
    pub opened_at: Instant,
    /// The request head (and body) being waited for must be complete by then; `None` while
    /// no request is awaited (a parked GET, a WebSocket).
    pub request_deadline: Option<Instant>,
    /// The deadline of this connection's one entry in the shard's queue of request
    /// deadlines, if it has one (a later `request_deadline` is re-queued when it surfaces).
    pub queued_deadline: Option<Instant>,
    /// The connection's place in the server's connection counts, given back on drop.
    pub admitted: Admitted,
}

/// How a read ended.
pub enum ReadEnd {
    /// The socket has nothing more for now.
    WouldBlock,
    /// The peer closed its side, or the socket failed.
    Closed,
}

impl Conn {
    pub fn new(stream: TcpStream, input: Vec<u8>, admitted: Admitted) -> Conn {
        Conn {
            stream,
            buffers: Buffers {
                input,
                ..Buffers::default()
            },
            ws: None,
            mode: Mode::Http,
            closed: false,
            written: 0,
            close_after_flush: false,
            close_by: None,
            draining: false,
            peer_closed: false,
            writable_armed: false,
            dirty: false,
            urgent: false,
            write_by: None,
            opened_at: Instant::now(),
            request_deadline: None,
            queued_deadline: None,
            admitted,
        }
    }

    /// The connection's buffers.
    pub fn io(&mut self) -> &mut Buffers {
        &mut self.buffers
    }

    /// Read the next complete WebSocket message from the buffered input (`None` when the
    /// connection is not a WebSocket); see [`ws::ReadState::read_message`].
    pub fn read_ws_message(&mut self, max_payload: usize) -> Option<Inbound> {
        let buffers = &mut self.buffers;
        self.ws
            .as_mut()
            .map(|state| state.read_message(buffers, max_payload))
    }

    pub fn output(&mut self) -> &mut Vec<u8> {
        let output = &mut self.io().output;
        if output.capacity() == 0 {
            *output = spare_output::take();
        }
        output
    }

    /// Bytes queued and not yet written.
    pub fn pending_output(&mut self) -> usize {
        let written = self.written;
        self.io().output.len().saturating_sub(written)
    }

    /// Drop the queued WebSocket frames that have not begun to go out, keeping a frame in
    /// progress whole, so that a close frame queued next is the next thing the peer reads.
    /// False (nothing dropped) when the output does not hold whole frames from its start.
    pub fn cut_output_after_frame_in_progress(&mut self) -> bool {
        let written = self.written;
        let output = &mut self.io().output;
        match super::ws::frame_cut(output, written) {
            Some(end) => {
                output.truncate(end);
                true
            }
            None => false,
        }
    }

    /// Take the output not yet written (for a hand-off to another shard).
    pub fn unwritten_output(&mut self) -> Vec<u8> {
        let written = std::mem::take(&mut self.written);
        let mut output = std::mem::take(&mut self.buffers.output);
        output.drain(..written.min(output.len()));
        output
    }

    /// Read one chunk (at most `chunk.len()` bytes, through `chunk`: the shard's scratch
    /// buffer, so no 16 KiB array is zeroed per read) into the input buffer. `Ok(n)` with
    /// n > 0: more may follow.
    pub fn read_chunk(&mut self, chunk: &mut [u8]) -> Result<usize, ReadEnd> {
        loop {
            match self.stream.read(chunk) {
                Ok(0) => return Err(ReadEnd::Closed),
                Ok(n) => {
                    let read = chunk.get(..n).unwrap_or_default();
                    self.io().input.extend_from_slice(read);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(ReadEnd::WouldBlock),
                Err(_) => return Err(ReadEnd::Closed),
            }
        }
    }

    /// Write as much output as the socket takes. Ok(true) when all of it is written.
    ///
    /// The output of a connection that closes once it is written (`close_after_flush`) goes
    /// with `MSG_MORE`: the kernel holds it back for the FIN the close (or lingering close's
    /// shutdown) sends right after, in the same loop turn, and sends both in one segment, so
    /// the peer is woken once, not twice (tcp(7), `MSG_MORE` as `TCP_CORK` for one call; the
    /// FIN joins the queued segment, `tcp_send_fin`).
    pub fn write_out(&mut self) -> io::Result<bool> {
        let mut written = self.written;
        let last = self.close_after_flush;
        let stream = &mut self.stream;
        let buffers = &mut self.buffers;
        let result = loop {
            let Some(rest) = buffers.output.get(written..) else {
                break Ok(true);
            };
            if rest.is_empty() {
                break Ok(true);
            }
            let sent = if last {
                socket2::SockRef::from(&*stream)
                    .send_with_flags(rest, libc::MSG_MORE | libc::MSG_NOSIGNAL)
            } else {
                stream.write(rest)
            };
            match sent {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
                Err(e) => break Err(e),
            }
        };
        if let Ok(true) = result {
            spare_output::give(std::mem::take(&mut buffers.output));
            written = 0;
        }
        self.written = written;
        result
    }
}
