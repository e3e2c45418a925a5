//! Reaping a dead node: appending the leaves of every reader its connections had, once.
//!
//! Owns the `REAP` script over every partition in one pipeline: for each field of
//! `rr:{p}:conns:<node>` still in the roster it removes the roster entry and appends a
//! `Leave` (no origin), then deletes the set, atomically per partition, so a second reap (or
//! two survivors racing) appends nothing more and needs no lock. Never decides that a node is
//! dead (that is `liveness` and the caller) and never touches another node's connections.

use redis::Value;

use super::partition::{conns_key, last_key, log_key, roster_key};
use super::scripts;
use super::{ClusterError, Link};

impl Link {
    /// Append a `Leave` for every connection of `node` still in a roster (each exactly once,
    /// whoever else reaps the same node), then forget the node (`SREM rr:nodes`, as
    /// [`Link::forget_node`]) — only once every partition's script has succeeded, so a failed
    /// reap leaves the node listed as expired, to be reaped again. Returns how many leaves
    /// were appended (0 on a second reap). Two round trips: the scripts' pipeline, then the
    /// `SREM`. On an error some partitions' leaves may be appended already; reaping again
    /// appends only the rest.
    pub fn reap(&mut self, node: &str) -> Result<u64, ClusterError> {
        let calls: Vec<_> = (0..self.partitions())
            .map(|p| {
                let mut call = scripts::REAP.prepare_invoke();
                call.key(log_key(p))
                    .key(roster_key(p))
                    .key(conns_key(p, node))
                    .key(last_key(p));
                call
            })
            .collect();
        let answers = self.with(|connection| scripts::run(connection, &calls))?;
        let mut leaves = 0u64;
        for answer in answers {
            match answer {
                Value::Int(n) => {
                    leaves += u64::try_from(n)
                        .map_err(|_| ClusterError::Malformed(format!("reap: {n} leaves")))?;
                }
                other => return Err(ClusterError::Malformed(format!("reap: {other:?}"))),
            }
        }
        self.forget_node(node)?;
        Ok(leaves)
    }
}
