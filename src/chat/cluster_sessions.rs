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
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::ChatForward;
use crate::cluster::{ClusterError, Link, Settings};
use crate::server::Injector;
use crate::socketio::handler::SocketRef;

/// Most jobs waiting for the thread. A full queue refuses new ones (Redis is away or slow):
/// a refused record or copy only makes that reader unrecoverable on another node, and a
/// refused claim is answered from this node's own copy. Memory stays bounded whatever the
/// connection churn while Redis is away.
pub const QUEUE: usize = 65_536;

/// After a call fails on the connection, how long jobs are not tried (claims are answered
/// with the error at once, the rest dropped): an unreachable Redis costs one timeout, not one
/// per job.
const BACK_OFF: Duration = Duration::from_secs(1);

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
            // After a connection failure, jobs are not tried until then.
            let mut down_until: Option<Instant> = None;
            loop {
                let job = match jobs.recv_timeout(Duration::from_millis(100)) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => return,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                };
                let away = down_until.is_some_and(|until| Instant::now() < until);
                let outcome = match job {
                    SessionJob::Claim { socket, .. } if away => {
                        let result = Err("the cluster's Redis is unreachable".to_owned());
                        // A shard that has ended is shutting down: the socket is gone too.
                        let _ =
                            injector.forward(socket.shard, ChatForward::Claimed { socket, result });
                        continue;
                    }
                    _ if away => continue,
                    SessionJob::Live { pid, bytes } => link.live_session(&node, &pid, &bytes),
                    SessionJob::End { pid } => link.end_session(&node, &pid),
                    // Not kept when recovered on another node meanwhile (it owns the reader).
                    SessionJob::Keep { pid, bytes, ttl } => {
                        link.keep_session(&node, &pid, &bytes, ttl).map(|_| ())
                    }
                    SessionJob::Forget { pid } => link.forget_session(&pid),
                    SessionJob::Claim { pid, socket } => {
                        let claimed = link.claim_session(&pid);
                        let result = claimed.clone().map_err(|e| e.to_string());
                        let _ =
                            injector.forward(socket.shard, ChatForward::Claimed { socket, result });
                        claimed.map(|_| ())
                    }
                };
                match outcome {
                    Ok(()) => down_until = None,
                    Err(e) => {
                        if matches!(e, ClusterError::Connection(_)) {
                            down_until = Some(Instant::now() + BACK_OFF);
                        }
                        crate::log_debug!("cluster_session_job_failed", cause = e);
                    }
                }
            }
        })
}
