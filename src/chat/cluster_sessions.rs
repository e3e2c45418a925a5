//! Cluster mode's kept readers in Redis, from the chat's side: the thread that copies a
//! dropped reader there, forgets it once recovered here, and claims one for a reconnection
//! whose pid this node does not hold (the answer goes back to the reconnecting socket's shard
//! as [`ChatForward::Claimed`]).
//!
//! Owns that thread and its queue. Never blocks a shard (shards only queue jobs); at a
//! graceful shutdown it writes everything queued before it ends, so the readers the shutdown
//! dropped can be recovered on another node or after the restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::ChatForward;
use crate::cluster::{Link, Settings};
use crate::server::Injector;
use crate::socketio::handler::SocketRef;

/// What a shard asks of the thread.
pub enum SessionJob {
    /// Write a connected reader's live record.
    Live { pid: String, bytes: Vec<u8> },
    /// Its connection ended for good: remove its live record.
    End { pid: String },
    /// Copy a kept reader to Redis for `ttl` (if this node still owns its live record).
    Keep {
        pid: String,
        bytes: Vec<u8>,
        ttl: Duration,
    },
    /// Forget a kept reader (recovered on this node).
    Forget { pid: String },
    /// Take the reader kept under `pid` for the reconnecting `socket`.
    Claim { pid: String, socket: SocketRef },
}

/// Start the thread. It ends when its queue is closed, or when `stop` is set and the queue
/// is empty.
pub fn spawn(
    settings: Settings,
    node: String,
    jobs: Receiver<SessionJob>,
    injector: Arc<Injector<ChatForward>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cluster-sessions".into())
        .spawn(move || {
            let mut link = match Link::lazy(settings) {
                Ok(link) => link,
                Err(e) => {
                    crate::log_error!("cluster_sessions_failed", cause = e);
                    return;
                }
            };
            loop {
                let job = match jobs.recv_timeout(Duration::from_millis(100)) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => return,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                };
                match job {
                    SessionJob::Live { pid, bytes } => {
                        if let Err(e) = link.live_session(&node, &pid, &bytes) {
                            crate::log_debug!("cluster_live_session_failed", cause = e);
                        }
                    }
                    SessionJob::End { pid } => {
                        if let Err(e) = link.end_session(&node, &pid) {
                            crate::log_debug!("cluster_end_session_failed", cause = e);
                        }
                    }
                    SessionJob::Keep { pid, bytes, ttl } => {
                        match link.keep_session(&node, &pid, &bytes, ttl) {
                            Ok(true) => {}
                            // Recovered on another node meanwhile: nothing to keep.
                            Ok(false) => crate::log_debug!("cluster_keep_session_superseded"),
                            Err(e) => crate::log_warn!("cluster_keep_session_failed", cause = e),
                        }
                    }
                    SessionJob::Forget { pid } => {
                        if let Err(e) = link.forget_session(&pid) {
                            crate::log_warn!("cluster_forget_session_failed", cause = e);
                        }
                    }
                    SessionJob::Claim { pid, socket } => {
                        let result = link.claim_session(&pid).map_err(|e| e.to_string());
                        let shard = socket.shard;
                        // A shard that has ended is shutting down: the socket is gone too.
                        let _ = injector.forward(shard, ChatForward::Claimed { socket, result });
                    }
                }
            }
        })
}
