//! Connection state recovery across nodes: what a node holds about its readers, copied to
//! Redis so a reconnection landing on any node can recover them.
//!
//! Owns two kinds of keys:
//! - `rr:live:<node>` (a hash, pid → bytes): each connected reader's *live record* (its
//!   identity, its rooms), written when they change and removed when it ends; what a reader
//!   of a node that died without warning (SIGKILL, power loss) is recovered from. When a node
//!   is found dead, its hash is renamed `rr:live:<node>:dead` and expires after the recovery
//!   window.
//! - `rr:kept:<pid>`: a reader a live node kept after its connection dropped, for its window;
//!   written only while that node still owns the pid's live record (so a reader already
//!   recovered elsewhere is never kept again by its old node).
//!
//! A claim takes a pid's kept copy, else its live record on any node, each with a command
//! that only one claimer can win. Never interprets the bytes.

use std::time::Duration;

use redis::Script;
use std::sync::LazyLock;

use super::partition::NODES_KEY as NODES_KEY_NAME;
use super::{ClusterError, Link};

/// The key of a kept reader.
pub fn kept_key(pid: &str) -> String {
    format!("rr:kept:{pid}")
}

/// The hash of a node's live records.
pub fn live_key(node: &str) -> String {
    format!("rr:live:{node}")
}

/// The hash of a dead node's live records, for its readers' recovery window.
pub fn dead_live_key(node: &str) -> String {
    format!("rr:live:{node}:dead")
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimedSession {
    /// A reader kept after a drop its node saw.
    Kept(Vec<u8>),
    /// The live record of a connection whose node did not see it end (died, or has not
    /// noticed yet).
    Live(Vec<u8>),
    /// Nothing under that pid.
    None,
}

/// KEYS: the node's live hash, the kept key. ARGV: the pid, the bytes, the ttl in ms. Keeps
/// the reader only if the node still owns its live record (taking the record out).
static KEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"#,
    )
});

impl Link {
    /// Write the live record of `pid`, a reader connected to `node`.
    pub fn live_session(
        &mut self,
        node: &str,
        pid: &str,
        bytes: &[u8],
    ) -> Result<(), ClusterError> {
        self.with(|connection| {
            redis::cmd("HSET")
                .arg(live_key(node))
                .arg(pid)
                .arg(bytes)
                .query::<()>(connection)?;
            Ok(())
        })
    }

    /// Remove the live record of `pid` on `node` (its connection ended for good).
    pub fn end_session(&mut self, node: &str, pid: &str) -> Result<(), ClusterError> {
        self.with(|connection| {
            redis::cmd("HDEL")
                .arg(live_key(node))
                .arg(pid)
                .query::<()>(connection)?;
            Ok(())
        })
    }

    /// Keep `bytes` under `pid` for `ttl` (at least 1 ms) if `node` still owns the pid's
    /// live record; whether it was kept.
    pub fn keep_session(
        &mut self,
        node: &str,
        pid: &str,
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<bool, ClusterError> {
        let ttl_ms = (ttl.as_millis() as u64).max(1);
        self.with(|connection| {
            let kept: i64 = KEEP
                .key(live_key(node))
                .key(kept_key(pid))
                .arg(pid)
                .arg(bytes)
                .arg(ttl_ms)
                .invoke(connection)?;
            Ok(kept == 1)
        })
    }

    /// Take what Redis holds under `pid`: its kept copy, else its live record on any node
    /// (a node's live hash, then a dead node's). Only one claimer can win each.
    pub fn claim_session(&mut self, pid: &str) -> Result<ClaimedSession, ClusterError> {
        self.with(|connection| {
            let kept: Option<Vec<u8>> =
                redis::cmd("GETDEL").arg(kept_key(pid)).query(connection)?;
            if let Some(bytes) = kept {
                return Ok(ClaimedSession::Kept(bytes));
            }
            let nodes: Vec<String> = redis::cmd("SMEMBERS")
                .arg(NODES_KEY_NAME)
                .query(connection)?;
            for node in nodes {
                for key in [live_key(&node), dead_live_key(&node)] {
                    let found: Option<Vec<u8>> =
                        redis::cmd("HGET").arg(&key).arg(pid).query(connection)?;
                    let Some(bytes) = found else {
                        continue;
                    };
                    let won: i64 = redis::cmd("HDEL").arg(&key).arg(pid).query(connection)?;
                    if won == 1 {
                        return Ok(ClaimedSession::Live(bytes));
                    }
                }
            }
            Ok(ClaimedSession::None)
        })
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

    /// `node` died: its live records stay claimable for `window`, then go (a node that starts
    /// again under the same id writes a fresh hash).
    pub fn retire_live(&mut self, node: &str, window: Duration) -> Result<(), ClusterError> {
        let ms = (window.as_millis() as u64).max(1);
        self.with(|connection| {
            let exists: i64 = redis::cmd("EXISTS").arg(live_key(node)).query(connection)?;
            if exists == 1 {
                redis::cmd("RENAME")
                    .arg(live_key(node))
                    .arg(dead_live_key(node))
                    .query::<()>(connection)?;
            }
            redis::cmd("PEXPIRE")
                .arg(dead_live_key(node))
                .arg(ms)
                .query::<()>(connection)?;
            Ok(())
        })
    }
}
