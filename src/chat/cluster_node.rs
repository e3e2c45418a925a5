//! Starting and stopping a cluster node (`--cluster-redis`): before the server accepts
//! clients, the node reaches Redis, catches up from its applied positions and loads the
//! rooms' rosters; once the shards run, it starts the appender, the applier and the keeper
//! (`cluster::node`) wired to them.
//!
//! Owns the order of those steps and nothing else: what an entry does is `chat::cluster`'s,
//! how Redis is used is `cluster`'s. Never lets a node serve clients while it is behind the
//! log's retention (it refuses to start, telling the operator to seed it from a backup).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::cluster::{answer_batch, roster_forwards, ClusterChat, LogSink, Reply};
use super::cluster_sessions::{self, SessionJob};
use super::ChatForward;
use crate::cluster::node::{self, Batch, Status};
use crate::cluster::{Link, RosterEntry, Settings, StreamId};
use crate::config::ClusterSettings;
use crate::server::Injector;
use crate::store::Store;

/// A node that has caught up and is ready for its shards to start.
pub struct Prepared {
    pub chat: Arc<ClusterChat>,
    pub status: Arc<Status>,
    link: Settings,
    positions: Vec<StreamId>,
    /// Per partition, the position through which the loaded rosters hold presence.
    through: Vec<StreamId>,
    members: Vec<RosterEntry>,
    inbox: Receiver<Batch<Reply>>,
    sessions: Receiver<SessionJob>,
    ttl: Duration,
    retention: Duration,
    /// How long a dead node's readers stay claimable (the recovery window).
    live_window: Duration,
}

/// The node's running threads.
pub struct Running {
    stop: Arc<AtomicBool>,
    keeper_wake: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    link: Settings,
    node: String,
}

/// Reach Redis, check the partition count, catch the store up with the log and load the
/// rosters. `crashed`: the node's previous run kept no sessions (it did not stop
/// gracefully), so the places its readers had are given up now. Errors are for the
/// operator (the node does not start).
pub fn prepare(
    settings: &ClusterSettings,
    data_dir: &std::path::Path,
    store: &Arc<Store>,
    crashed: bool,
    recovery_window: Duration,
) -> Result<Prepared, String> {
    let node_id = node::node_id(data_dir)
        .map_err(|e| format!("cluster: the node id file in {}: {e}", data_dir.display()))?;
    let link_settings = Settings {
        url: settings.redis_url.clone(),
        ca: settings.redis_ca.clone(),
        partitions: settings.partitions,
        connect_timeout: settings.timeout,
        io_timeout: settings.timeout,
        min_replicas: settings.min_replicas,
    };
    let mut link = Link::connect(link_settings.clone()).map_err(|e| e.to_string())?;
    if crashed {
        // Readers of this node's previous run are gone: they leave their rooms now, once,
        // and stay claimable for the window on any node.
        link.retire_live(&node_id, recovery_window)
            .map_err(|e| e.to_string())?;
        let leaves = link.reap(&node_id).map_err(|e| e.to_string())?;
        if leaves > 0 {
            crate::log_info!("cluster_node_reaped", node = node_id, leaves = leaves);
        }
    }
    let positions: Vec<StreamId> = store
        .applied_positions(settings.partitions)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(ms, n)| StreamId { ms, n })
        .collect();
    let (appender, inbox) = crossbeam_channel::unbounded();
    let (session_jobs, sessions) = crossbeam_channel::bounded(cluster_sessions::QUEUE);
    let chat = Arc::new(ClusterChat::new(
        node_id.clone(),
        appender,
        session_jobs,
        // With replicas to wait for, an append may take up to twice the timeout.
        settings.timeout * if settings.min_replicas > 0 { 3 } else { 2 },
        settings.min_replicas > 0,
    ));
    let started = std::time::Instant::now();
    let mut sink = LogSink::storing_only(Arc::clone(store), Arc::clone(&chat));
    node::check_not_behind(&mut link, &positions).map_err(|e| e.to_string())?;
    if let Some(found_by) = link.redis_lost().map_err(|e| e.to_string())? {
        return Err(format!(
            "cluster: node {found_by} found Redis holding less of the log than it applied: {}",
            node::REDIS_BEHIND_FIX
        ));
    }
    if !store.has_applied().map_err(|e| e.to_string())? {
        // A single process's store joining (or forming) a cluster: the rooms' counters in
        // Redis start above its history, so no message is ever numbered twice.
        let tails = store.book_tails().map_err(|e| e.to_string())?;
        for &(book, seq) in &tails {
            link.seed_seq(crate::book::BookId(book), seq)
                .map_err(|e| e.to_string())?;
        }
        if !tails.is_empty() {
            crate::log_info!(
                "cluster_counters_seeded",
                node = node_id,
                books = tails.len()
            );
        }
    }
    let positions = node::catch_up(&mut link, positions, &mut sink).map_err(|e| e.to_string())?;
    let mut through = Vec::with_capacity(positions.len());
    let mut members = Vec::new();
    for partition in 0..settings.partitions {
        let snapshot = link.snapshot(partition).map_err(|e| e.to_string())?;
        through.push(snapshot.through);
        members.extend(snapshot.members);
    }
    crate::log_info!(
        "cluster_caught_up",
        node = node_id,
        applied = sink.applied(),
        readers = members.len(),
        ms = started.elapsed().as_millis()
    );
    let status = Arc::new(Status::new(node_id, &positions));
    Ok(Prepared {
        chat,
        status,
        link: link_settings,
        positions,
        through,
        members,
        inbox,
        sessions,
        ttl: settings.node_ttl,
        retention: settings.retention,
        live_window: recovery_window.max(settings.node_ttl),
    })
}

impl Prepared {
    /// The shards run: give them the rosters, then start the node's threads.
    pub fn start(
        self,
        store: Arc<Store>,
        injector: Injector<ChatForward>,
    ) -> std::io::Result<Running> {
        let shards = injector.shards();
        for (home, rosters) in roster_forwards(&self.chat, self.members, shards) {
            let _ = injector.forward(home, rosters);
        }
        let injector = Arc::new(injector);
        let announcer = Arc::clone(&injector);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let answers = Arc::clone(&injector);
        let confirm = self.chat.confirm_appends;
        threads.push(node::spawn_appender(
            self.link.clone(),
            self.inbox,
            Arc::clone(&self.status),
            move |reply, result| answer_batch(&answers, confirm, reply, result),
        )?);
        threads.push(cluster_sessions::spawn(
            self.link.clone(),
            self.chat.node.clone(),
            self.sessions,
            Arc::clone(&injector),
            Arc::clone(&stop),
        )?);
        let sink = LogSink::delivering(store, Arc::clone(&self.chat), injector, self.through);
        threads.push(node::spawn_applier(
            self.link.clone(),
            self.positions,
            Arc::clone(&self.status),
            sink,
            Arc::clone(&stop),
            |error| {
                crate::log_error!("cluster_behind_retention", cause = error);
                eprintln!("readrealm-chat: {error}");
                std::process::exit(1);
            },
        )?);
        let (keeper_wake, wake) = crossbeam_channel::bounded(1);
        threads.push(node::spawn_keeper(
            self.link.clone(),
            Arc::clone(&self.status),
            (self.ttl, self.retention, self.live_window),
            Arc::clone(&stop),
            wake,
            move || {
                for shard in 0..announcer.shards() {
                    let _ = announcer.forward(shard, ChatForward::Reannounce);
                }
            },
        )?);
        Ok(Running {
            stop,
            keeper_wake: Some(keeper_wake),
            threads,
            link: self.link,
            node: self.chat.node.clone(),
        })
    }
}

impl Running {
    /// Stop the applier and the keeper (the shards have stopped). With `keep_for` (the
    /// recovery window, after a graceful shutdown that kept its readers), the node's liveness
    /// key is set to last that long, so the others do not see its readers leave while it
    /// restarts.
    pub fn stop(mut self, keep_for: Option<Duration>) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.keeper_wake.take());
        for thread in self.threads.drain(..) {
            // The appender ends when its last sender (the chat's) is dropped; not waited for.
            if thread.thread().name() != Some("cluster-append") {
                let _ = thread.join();
            }
        }
        if let Some(window) = keep_for {
            match Link::connect(self.link.clone()).and_then(|mut l| l.heartbeat(&self.node, window))
            {
                Ok(_) => crate::log_info!(
                    "cluster_node_kept",
                    node = self.node,
                    ms = window.as_millis()
                ),
                Err(e) => crate::log_warn!("cluster_node_keep_failed", cause = e),
            }
        }
    }
}
