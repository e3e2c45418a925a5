//! Liveness: each node's heartbeat key with a short TTL, and which nodes stopped beating.
//!
//! Owns `rr:node:<id>` (`SET … PX ttl`, refreshed by the node well within its TTL) and the
//! set `rr:nodes` of node ids ever seen, so a node whose key expired can be named. Never
//! decides what a dead node's departure means (appending its readers' leaves, once, under a
//! lock, is the caller's job).

use std::time::Duration;

use super::partition::{node_key, NODES_KEY};
use super::{ClusterError, Link};

impl Link {
    /// Say `node_id` is alive for `ttl` more (rounded up to a millisecond).
    ///
    /// Returns whether the key was still there (false: it had expired, or never was — the
    /// others may have reaped the node's readers meanwhile).
    pub fn heartbeat(&mut self, node_id: &str, ttl: Duration) -> Result<bool, ClusterError> {
        let ttl_ms = (ttl.as_millis() as u64).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(node_key(node_id))
            .arg(1)
            .arg("PX")
            .arg(ttl_ms)
            .arg("GET")
            .cmd("SADD")
            .arg(NODES_KEY)
            .arg(node_id)
            .ignore();
        let (before,): (Option<String>,) = self.with(|connection| Ok(pipe.query(connection)?))?;
        Ok(before.is_some())
    }

    /// The nodes seen once whose heartbeat key has expired, sorted.
    pub fn expired_nodes(&mut self) -> Result<Vec<String>, ClusterError> {
        self.with(|connection| {
            let mut nodes: Vec<String> = redis::cmd("SMEMBERS").arg(NODES_KEY).query(connection)?;
            nodes.sort();
            if nodes.is_empty() {
                return Ok(nodes);
            }
            let mut pipe = redis::pipe();
            for node in &nodes {
                pipe.cmd("EXISTS").arg(node_key(node));
            }
            let alive: Vec<bool> = pipe.query(connection)?;
            Ok(nodes
                .into_iter()
                .zip(alive)
                .filter_map(|(node, alive)| (!alive).then_some(node))
                .collect())
        })
    }

    /// Forget a node (its departures were handled): it is no longer listed as expired.
    pub fn forget_node(&mut self, node_id: &str) -> Result<(), ClusterError> {
        self.with(|connection| {
            Ok(redis::cmd("SREM")
                .arg(NODES_KEY)
                .arg(node_id)
                .exec(connection)?)
        })
    }
}

/// The `rr:meta` field a node sets when it finds Redis holding less of the log than it
/// applied: every node then refuses posts and stops applying (the counters would number
/// messages again, and applying them would overwrite stored history).
const REDIS_LOST_FIELD: &str = "redis_lost_entries";

impl Link {
    /// Tell every node that Redis lost acknowledged entries (`found_by`: this node's id).
    pub fn mark_redis_lost(&mut self, found_by: &str) -> Result<(), ClusterError> {
        self.with(|connection| {
            redis::cmd("HSET")
                .arg(super::partition::META_KEY)
                .arg(REDIS_LOST_FIELD)
                .arg(found_by)
                .query::<()>(connection)?;
            Ok(())
        })
    }

    /// The node that found Redis holding less than it applied, if one did.
    pub fn redis_lost(&mut self) -> Result<Option<String>, ClusterError> {
        self.with(|connection| {
            Ok(redis::cmd("HGET")
                .arg(super::partition::META_KEY)
                .arg(REDIS_LOST_FIELD)
                .query(connection)?)
        })
    }
}
