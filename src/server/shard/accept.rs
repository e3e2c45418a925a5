//! Accepting: new TCP connections past the connection caps, registered with mio, and
//! connections another shard hands over; each starts as HTTP with the bytes already read.
//!
//! Owns the accept backoff when the process runs out of file descriptors and the log of
//! refused connections. Must never read a request: that is `read.rs`.

use std::io;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::Shard;
use crate::server::admission::{Admitted, Refusal};
use crate::server::conn::{Conn, ReadUntil};
use crate::server::proxy;
use crate::socketio::Handler;

/// How long to stop accepting after the process runs out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl<H: Handler> Shard<H> {
    pub(super) fn accept(&mut self) {
        if self.accept_paused_until.is_some() || self.shutting_down {
            return;
        }
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => match self.admission.admit(
                    proxy::canonical(peer.ip()),
                    proxy::is_trusted(&self.config.trusted_proxies, peer.ip()),
                ) {
                    Ok(admitted) => {
                        let _ = stream.set_nodelay(true);
                        self.adopt(stream, Vec::new(), Vec::new(), None, admitted);
                    }
                    Err(refusal) => {
                        log_refusal(refusal, proxy::canonical(peer.ip()));
                        // Best effort: a fresh socket's send buffer takes this at once.
                        let _ = std::io::Write::write(&mut stream, refusal.response());
                        let _ = stream.shutdown(std::net::Shutdown::Write);
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_out_of_descriptors(&e) => {
                    // At most one line per shard per backoff period.
                    crate::log_warn!(
                        "accept_paused",
                        shard = self.index,
                        cause = e,
                        pause_ms = ACCEPT_BACKOFF.as_millis(),
                        fix = "raise the file-descriptor limit (LimitNOFILE) or --max-connections"
                    );
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                // ECONNABORTED and friends concern one connection only.
                Err(_) => continue,
            }
        }
    }

    /// Register a stream for reading and keep it with its buffered input and output; `None`
    /// (the stream dropped) when mio refuses it.
    pub(super) fn register_conn(
        &mut self,
        mut stream: TcpStream,
        input: Vec<u8>,
        output: Vec<u8>,
        admitted: Admitted,
    ) -> Option<usize> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
            .ok()?;
        let mut conn = Conn::new(stream, input, admitted);
        conn.buffers.output = output;
        entry.insert(conn);
        Some(key)
    }

    /// Register a connection (accepted here or handed over by another shard) and process the
    /// bytes already read from it.
    pub(super) fn adopt(
        &mut self,
        stream: TcpStream,
        input: Vec<u8>,
        output: Vec<u8>,
        opened_at: Option<Instant>,
        admitted: Admitted,
    ) {
        let has_input = !input.is_empty();
        let has_output = !output.is_empty();
        let Some(key) = self.register_conn(stream, input, output, admitted) else {
            return;
        };
        if let Some(opened_at) = opened_at {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.opened_at = opened_at;
            }
        }
        self.await_request(key);
        if has_output {
            self.mark_dirty(key, false);
        }
        if has_input {
            self.process_input(key);
        }
        // Bytes may have arrived before registration; reading now is harmless if not.
        self.on_readable(key, ReadUntil::ShortRead);
    }
}

/// Lines a second about refused connections, all shards together: a flood of connections
/// must not flood the log.
static REFUSAL_LOG: crate::logging::Throttle = crate::logging::Throttle::new(10);

/// Log a refused connection with the client's address (behind a trusted proxy, the client it
/// named) and what to change if the refusal is wrong.
pub(super) fn log_refusal(refusal: Refusal, client: std::net::IpAddr) {
    if !crate::logging::enabled(crate::logging::Level::Warn) {
        return;
    }
    let Some(suppressed) = REFUSAL_LOG.admit() else {
        return;
    };
    let (cause, fix) = match refusal {
        Refusal::ServerFull => ("server full", "raise --max-connections"),
        Refusal::TooManyFromAddress => (
            "per-IP cap",
            "if this address is a proxy, list it in --trusted-proxies; or raise \
             --max-connections-per-ip",
        ),
    };
    crate::log_warn!(
        "connection_refused",
        client = client,
        cause = cause,
        fix = fix,
        suppressed_before = suppressed
    );
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
        || e.kind() == io::ErrorKind::OutOfMemory
}
