//! Connection state recovery across nodes: the readers a node keeps after a drop, copied to
//! Redis for their window, so a reconnection landing on any node recovers them.
//!
//! Owns the keys `rr:kept:<pid>` (the kept reader's bytes, written by the chat, opaque here)
//! and their lifetime (the rest of the window, set with the write). A claim reads and deletes
//! in one command (`GETDEL`), so two nodes can never both recover one pid. Never interprets
//! the bytes.

use std::time::Duration;

use super::{ClusterError, Link};

/// The key of a kept reader.
pub fn kept_key(pid: &str) -> String {
    format!("rr:kept:{pid}")
}

impl Link {
    /// Keep `bytes` under `pid` for `ttl` (at least 1 ms), replacing an older copy.
    pub fn keep_session(
        &mut self,
        pid: &str,
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<(), ClusterError> {
        let ttl_ms = (ttl.as_millis() as u64).max(1);
        self.with(|connection| {
            redis::cmd("SET")
                .arg(kept_key(pid))
                .arg(bytes)
                .arg("PX")
                .arg(ttl_ms)
                .query::<()>(connection)?;
            Ok(())
        })
    }

    /// Take the reader kept under `pid`: its bytes, removed from Redis; None if there is none
    /// (never kept, its window ended, or claimed already).
    pub fn claim_session(&mut self, pid: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        self.with(|connection| Ok(redis::cmd("GETDEL").arg(kept_key(pid)).query(connection)?))
    }

    /// Forget the reader kept under `pid` (recovered on the node that kept it).
    pub fn forget_session(&mut self, pid: &str) -> Result<(), ClusterError> {
        self.with(|connection| {
            redis::cmd("DEL")
                .arg(kept_key(pid))
                .query::<()>(connection)?;
            Ok(())
        })
    }
}
