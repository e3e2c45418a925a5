//! The chat in cluster mode (`--cluster-redis`): a room's home shard sends its messages and
//! presence to the cluster's log instead of numbering them itself, and acts on them when the
//! node's applier hands them back, in log order.
//!
//! - A `chatMessage`, a first join and a leave become log entries ([`Append`]) at the home;
//!   the turn's entries go to the node's appender as one batch ([`crate::cluster::node`]),
//!   each with an origin (`<node>:<token>`) naming what waits for it here.
//! - Every node applies the whole log: [`LogSink`] stores each read in the node's RocksDB
//!   (messages and the partitions' positions in one write) and then hands the entries to the
//!   rooms' home shards ([`ChatForward::Applied`]), which do what a single process does at
//!   its turn end: publish the history, broadcast `newMessage`/`userJoined`/`userLeft`
//!   encoded once, and answer the waiting sender or joiner of this node — so the log's order
//!   is every member's order on every node, and the sender's ack follows its `newMessage`.
//! - A `_id` and `createdAt` are made from the entry's stream id (Redis's clock and the
//!   partition's order), so every node derives the same ones, growing with the room's
//!   sequence.
//! - When Redis cannot be reached, a post is answered `unavailable` (never `ok`: its entry
//!   may still land and is then delivered to everyone, but its sender is not acked twice); a
//!   join is answered from the local store at once, and the presence entries that could not
//!   be appended are appended again, in order, until Redis is back.
//!
//! Owns the home's log bookkeeping ([`LogState`]) and the conversion between log entries and
//! the chat's types. Never talks to Redis (the node's threads do) and never blocks a shard.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::cluster_sessions::SessionJob;
use super::home::{home_shard, JoinAtHome, LeaveAtHome, Post, RecoverAtHome};
use super::log_state::WaitingPost;
use super::presence::{ConnKey, Presence};
use super::validate::MessageRequest;
use super::{ChatApp, ChatForward};
use crate::book::BookId;
use crate::cluster::node::{Apply, ApplyError, Batch};
use crate::cluster::{Append, Appended, ClusterError, Entry, LogEntry, StreamId};
use crate::engineio::sid::RandomId;
use crate::message_id::MessageId;
use crate::server::Injector;
use crate::socketio::handler::{SessionRef, ShardOf, SocketRef};
use crate::store::{codec, Store, StoredMessage, StoredValue};

/// How often presence entries that could not be appended are tried again.
const BACKLOG_RETRY: Duration = Duration::from_millis(500);

/// The `_id` byte that names the cluster's log as its maker (a single process writes its
/// shard's index there, always below 0xFF).
const CLUSTER_ID_BYTE: u8 = 0xFF;

/// This node, as the chat sees it.
pub struct ClusterChat {
    /// The node's id (`cluster::node::node_id`).
    pub node: String,
    /// This run of the node (random at each start), so a connection of an earlier run never
    /// shares a name with one of this run.
    run: u32,
    /// The high bits of this node's roster keys ([`slot_of`]).
    slot: usize,
    appender: Sender<Batch<Reply>>,
    sessions: Sender<SessionJob>,
    /// How long a post waits for its entry to be applied before it is answered `unavailable`.
    pub wait: Duration,
    /// Whether a post's ack also waits for its append to be confirmed by the appender
    /// (`--cluster-min-replicas` above 0: confirmed once enough replicas hold it).
    pub confirm_appends: bool,
}

/// What the appender hands back with a batch's outcome.
pub struct Reply {
    pub shard: usize,
    /// Each entry's origin token on that shard.
    pub tokens: Vec<u64>,
}

impl ClusterChat {
    /// The chat's view of node `node`; its batches go to `appender`; a post is answered
    /// `unavailable` if not applied within `wait`.
    pub fn new(
        node: String,
        appender: Sender<Batch<Reply>>,
        sessions: Sender<SessionJob>,
        wait: Duration,
        confirm_appends: bool,
    ) -> ClusterChat {
        let mut seed = [0u8; 4];
        // Without OS randomness the time tells runs apart.
        let run = match getrandom::fill(&mut seed) {
            Ok(()) => u32::from_le_bytes(seed),
            Err(_) => crate::time::now_millis() as u32,
        };
        let slot = slot_of(&node, run);
        ClusterChat {
            node,
            run,
            slot,
            appender,
            sessions,
            wait,
            confirm_appends,
        }
    }

    /// Copy a kept reader to Redis for `ttl` (queued; never blocks).
    pub fn keep_session(&self, pid: RandomId, bytes: Vec<u8>, ttl: Duration) {
        let pid = pid.as_str().to_owned();
        let _ = self.sessions.try_send(SessionJob::Keep { pid, bytes, ttl });
    }

    /// Write a connected reader's live record (queued).
    pub fn live_session(&self, pid: RandomId, bytes: Vec<u8>) {
        let pid = pid.as_str().to_owned();
        let _ = self.sessions.try_send(SessionJob::Live { pid, bytes });
    }

    /// A reader's connection ended for good: its live record goes (queued).
    pub fn end_session(&self, pid: RandomId) {
        let pid = pid.as_str().to_owned();
        let _ = self.sessions.try_send(SessionJob::End { pid });
    }

    /// Forget the copy of a reader recovered on this node (queued).
    pub fn forget_session(&self, pid: RandomId) {
        let pid = pid.as_str().to_owned();
        let _ = self.sessions.try_send(SessionJob::Forget { pid });
    }

    /// Claim the reader kept under `pid` for `socket` (answered as `ChatForward::Claimed`);
    /// false if the claim cannot be queued (shutting down).
    pub fn claim_session(&self, pid: RandomId, socket: SocketRef) -> bool {
        let pid = pid.as_str().to_owned();
        self.sessions
            .try_send(SessionJob::Claim { pid, socket })
            .is_ok()
    }

    /// A connection of this node in the log: `<node>/<run>.<shard>.<slot key>.<generation>`.
    pub fn conn_name(&self, conn: &SocketRef) -> String {
        format!(
            "{}/{}.{}.{}.{}",
            self.node, self.run, conn.shard, conn.session.key, conn.session.generation
        )
    }

    /// A connection of this node as a roster key (the same every node derives from its name).
    pub fn place(&self, conn: &SocketRef) -> ConnKey {
        (self.slot | conn.shard, conn.session)
    }

    /// A connection named in the log: its roster key, and the socket when it is this node's.
    fn parse_conn(&self, name: &str) -> Option<(ConnKey, Option<SocketRef>)> {
        let (node, rest) = name.split_once('/')?;
        let mut parts = rest.split('.');
        let run: u32 = parts.next()?.parse().ok()?;
        let shard: usize = parts.next()?.parse().ok()?;
        let key: usize = parts.next()?.parse().ok()?;
        let generation: u64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || shard > 0xFFFF {
            return None;
        }
        let session = SessionRef::new(key, generation);
        let local = (node == self.node && run == self.run).then(|| SocketRef {
            shard,
            session,
            nsp: "/".to_owned(),
        });
        Some(((slot_of(node, run) | shard, session), local))
    }

    /// The log name of a roster key of this node's run (None for another node's or run's).
    fn own_conn_name(&self, key: ConnKey) -> Option<String> {
        (key.0 >> 16 == self.slot >> 16).then(|| {
            format!(
                "{}/{}.{}.{}.{}",
                self.node,
                self.run,
                key.0 & 0xFFFF,
                key.1.key,
                key.1.generation
            )
        })
    }

    /// An origin of this node: the token; another node's (or none): None.
    fn own_token(&self, origin: &str) -> Option<u64> {
        let (node, token) = origin.split_once(':')?;
        (node == self.node).then(|| token.parse().ok()).flatten()
    }
}

/// The high bits of a node run's roster keys: a hash of its id and run above the 16 bits of
/// a shard index, so the connections of different nodes and runs do not share a key.
fn slot_of(node: &str, run: u32) -> usize {
    // FNV-1a, 32 bits: stable across builds and nodes.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in node.bytes().chain(run.to_le_bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash as usize) << 16
}

/// A room's entry as its home shard applies it.
#[derive(Debug)]
pub enum Applied {
    /// A stored message; `origin` is this node's token when its sender is waiting here.
    Message {
        message: StoredMessage,
        origin: Option<u64>,
    },
    Join {
        book: BookId,
        key: ConnKey,
        local: Option<SocketRef>,
        user: String,
        username: String,
        origin: Option<u64>,
    },
    Leave {
        book: BookId,
        key: ConnKey,
        local: Option<SocketRef>,
        user: String,
    },
}

impl ChatApp {
    /// Cluster mode: a post reached its room's home; it becomes a log entry.
    pub(super) fn log_post(
        &self,
        cluster: &ClusterChat,
        shard: &mut ShardOf<'_, ChatApp>,
        post: Post,
    ) {
        let Post {
            request,
            reply_to,
            ack_id,
        } = post;
        let MessageRequest {
            book_id,
            user_id,
            username,
            content,
        } = request;
        // The body is the stored value without its `_id` and time, which the log gives.
        let mut body = Vec::with_capacity(64 + content.len());
        codec::encode(
            &StoredValue {
                created_ms: 0,
                id: MessageId::default(),
                user_id,
                username,
                content,
            },
            &mut body,
        );
        let log = &mut shard.state.log;
        let token = log.token();
        log.posts.insert(
            token,
            WaitingPost {
                reply_to,
                ack_id,
                appended: !cluster.confirm_appends,
                applied_ack: None,
            },
        );
        log.deadlines.push_back((shard.now + cluster.wait, token));
        log.outgoing.push(Append::Message {
            book: book_id,
            body,
            origin: format!("{}:{token}", cluster.node),
        });
        log.tokens.push(token);
    }

    /// Cluster mode: a join reached its room's home. A first join becomes a log entry and is
    /// answered when it is applied; a repeated one is answered now (it changes no roster).
    pub(super) fn log_join(
        &self,
        cluster: &ClusterChat,
        shard: &mut ShardOf<'_, ChatApp>,
        join: JoinAtHome,
    ) {
        if !join.first {
            self.answer_join(shard, join);
            return;
        }
        let conn = cluster.conn_name(&join.conn);
        let log = &mut shard.state.log;
        let token = log.token();
        let entry = Append::Join {
            book: join.book_id,
            user: join.user_id.clone(),
            username: join.username.clone(),
            conn,
            origin: format!("{}:{token}", cluster.node),
        };
        if !log.backlog.is_empty() {
            // Redis is away: the joiner is answered from this node's store now, and the
            // others learn of it when the backlog is appended.
            log.backlog.push(entry);
            self.answer_join(shard, join);
            return;
        }
        log.joins.insert(token, join);
        log.presence.insert(token, entry.clone());
        log.outgoing.push(entry);
        log.tokens.push(token);
    }

    /// Cluster mode: a presence entry (a leave, a recovered connection's new place) for the
    /// log, behind any backlog.
    fn log_presence(&self, shard: &mut ShardOf<'_, ChatApp>, entry: Append) {
        let log = &mut shard.state.log;
        if !log.backlog.is_empty() {
            log.backlog.push(entry);
            return;
        }
        let token = log.token();
        log.presence.insert(token, entry.clone());
        log.outgoing.push(entry);
        log.tokens.push(token);
    }

    /// Cluster mode: this node's liveness key had expired (it could not reach Redis for a
    /// while), so the others may have taken its readers out of the rosters: each of its
    /// connections in a room homed here joins again (no change where it still is).
    pub(super) fn log_reannounce(&self, cluster: &ClusterChat, shard: &mut ShardOf<'_, ChatApp>) {
        let joins: Vec<Append> = shard
            .state
            .rosters
            .connections()
            .filter_map(|(book, key, user, username)| {
                Some(Append::Join {
                    book,
                    user: user.to_owned(),
                    username: username.to_owned(),
                    conn: cluster.own_conn_name(key)?,
                    origin: String::new(),
                })
            })
            .collect();
        for join in joins {
            self.log_presence(shard, join);
        }
    }

    /// Cluster mode: a leave reached its room's home.
    pub(super) fn log_leave(
        &self,
        cluster: &ClusterChat,
        shard: &mut ShardOf<'_, ChatApp>,
        leave: LeaveAtHome,
    ) {
        let entry = Append::Leave {
            book: leave.book_id,
            user: leave.user_id,
            conn: leave
                .log_conn
                .unwrap_or_else(|| cluster.conn_name(&leave.conn)),
            origin: String::new(),
        };
        self.log_presence(shard, entry);
    }

    /// Cluster mode: a recovered connection takes its old place: its new connection joins
    /// and its old one leaves, in that order, so nobody is told (the reader never had no
    /// connection in the room).
    pub(super) fn log_rebind(
        &self,
        cluster: &ClusterChat,
        shard: &mut ShardOf<'_, ChatApp>,
        back: &RecoverAtHome,
    ) {
        let join = Append::Join {
            book: back.book_id,
            user: back.user_id.clone(),
            username: back.username.clone(),
            conn: cluster.conn_name(&back.conn),
            origin: String::new(),
        };
        self.log_presence(shard, join);
        let old = match (&back.old_log_conn, &back.old) {
            (Some(name), _) => Some(name.clone()),
            (None, Some(old)) => Some(cluster.conn_name(old)),
            (None, None) => None,
        };
        if let Some(old) = old {
            let leave = Append::Leave {
                book: back.book_id,
                user: back.user_id.clone(),
                conn: old,
                origin: String::new(),
            };
            self.log_presence(shard, leave);
        }
    }

    /// Cluster mode, at the home's turn end: answer the posts whose wait is over, try the
    /// backlog again when due, and send the turn's entries to the appender as one batch.
    pub(super) fn log_turn_end(&self, cluster: &ClusterChat, shard: &mut ShardOf<'_, ChatApp>) {
        let now = shard.now;
        while let Some(&(at, token)) = shard.state.log.deadlines.front() {
            if at > now {
                break;
            }
            shard.state.log.deadlines.pop_front();
            if let Some(WaitingPost {
                reply_to, ack_id, ..
            }) = shard.state.log.posts.remove(&token)
            {
                let error = super::errors::ChatError::new(
                    super::errors::ErrorCode::Unavailable,
                    "the cluster's log did not confirm the message in time",
                );
                self.count_error(shard.index, "chatMessage", &error);
                super::reply_error(shard, reply_to, ack_id, &error);
            }
        }
        let log = &mut shard.state.log;
        if !log.backlog.is_empty() && log.retry_at.is_none_or(|at| at <= now) {
            log.retry_at = None;
            for entry in std::mem::take(&mut log.backlog) {
                let token = log.token();
                log.presence.insert(token, entry.clone());
                log.outgoing.push(entry);
                log.tokens.push(token);
            }
        }
        if log.outgoing.is_empty() {
            return;
        }
        let batch = Batch {
            entries: std::mem::take(&mut log.outgoing),
            reply: Reply {
                shard: shard.index,
                tokens: std::mem::take(&mut log.tokens),
            },
        };
        if let Err(refused) = cluster.appender.send(batch) {
            // The appender has ended (shutting down): nothing will be appended.
            let tokens = refused.into_inner().reply.tokens;
            self.log_failed(shard, tokens, "the node is shutting down", false);
        }
    }

    /// Cluster mode, with replicas to confirm appends: these entries are on enough replicas;
    /// a post already applied gets its ack now (never before: `--cluster-min-replicas`).
    pub(super) fn log_appended(&self, shard: &mut ShardOf<'_, ChatApp>, tokens: Vec<u64>) {
        for token in tokens {
            let log = &mut shard.state.log;
            let Some(post) = log.posts.get_mut(&token) else {
                continue;
            };
            match post.applied_ack.take() {
                Some(ack) => {
                    let (reply_to, ack_id) = (post.reply_to.clone(), post.ack_id);
                    log.posts.remove(&token);
                    if let Some(ack_id) = ack_id {
                        shard.ack_to_json(reply_to, ack_id, ack);
                    }
                }
                None => post.appended = true,
            }
        }
    }

    /// Cluster mode: the appender could not append these entries (they may still have
    /// landed): posts are answered `unavailable`, joins from the local store, presence goes
    /// to the backlog. `landed`: they are in the log for sure (only too few replicas
    /// confirmed them): joins are then answered when applied, presence is not appended again.
    pub(super) fn log_failed(
        &self,
        shard: &mut ShardOf<'_, ChatApp>,
        tokens: Vec<u64>,
        cause: &str,
        landed: bool,
    ) {
        let error = super::errors::ChatError::new(
            super::errors::ErrorCode::Unavailable,
            format!("the cluster's log is unavailable: {cause}"),
        );
        let mut counted = false;
        for token in tokens {
            let log = &mut shard.state.log;
            if let Some(WaitingPost {
                reply_to, ack_id, ..
            }) = log.posts.remove(&token)
            {
                if !counted {
                    self.count_error(shard.index, "chatMessage", &error);
                    counted = true;
                } else {
                    self.metrics.shard(shard.index).error(error.code.as_str());
                }
                super::reply_error(shard, reply_to, ack_id, &error);
                continue;
            }
            if let Some(entry) = log.presence.remove(&token) {
                if !landed {
                    log.backlog.push(entry);
                    log.retry_at = Some(shard.now + BACKLOG_RETRY);
                }
            }
            if landed {
                continue;
            }
            if let Some(join) = shard.state.log.joins.remove(&token) {
                self.answer_join(shard, join);
            }
        }
    }

    /// Cluster mode: entries of rooms homed here, applied to the store, in log order.
    pub(super) fn log_applied(&self, shard: &mut ShardOf<'_, ChatApp>, entries: Vec<Applied>) {
        let mut run: Vec<(StoredMessage, Option<(SocketRef, u64)>)> = Vec::new();
        for entry in entries {
            match entry {
                Applied::Message { message, origin } => {
                    let log = &mut shard.state.log;
                    let ack = match origin.and_then(|t| log.posts.get_mut(&t).map(|p| (t, p))) {
                        None => None,
                        Some((token, post)) if post.appended => {
                            let (reply_to, ack_id) = (post.reply_to.clone(), post.ack_id);
                            log.posts.remove(&token);
                            ack_id.map(|a| (reply_to, a))
                        }
                        Some((_, post)) => {
                            // Broadcast now; acked once replicas confirm (`log_appended`).
                            let text = super::message::encode_message(&message);
                            post.applied_ack = Some(super::message::message_ack_json(&text));
                            None
                        }
                    };
                    run.push((message, ack));
                }
                Applied::Join {
                    book,
                    key,
                    local,
                    user,
                    username,
                    origin,
                } => {
                    self.publish(shard, std::mem::take(&mut run));
                    if let Some(token) = origin {
                        shard.state.log.presence.remove(&token);
                    }
                    if let Presence::Entered(name) =
                        shard.state.rosters.join(book, key, &user, &username)
                    {
                        let event =
                            vec![super::message::presence(&name, crate::time::now_millis())];
                        let room = super::message::book_room(book);
                        match local {
                            Some(me) => shard.broadcast_except("/", room, "userJoined", event, me),
                            None => shard.broadcast("/", room, "userJoined", event, None),
                        }
                    }
                    if let Some(join) = origin.and_then(|t| shard.state.log.joins.remove(&t)) {
                        self.answer_join(shard, join);
                    }
                }
                Applied::Leave {
                    book,
                    key,
                    local,
                    user,
                } => {
                    self.publish(shard, std::mem::take(&mut run));
                    if let Presence::Left(name) = shard.state.rosters.leave(book, key, &user) {
                        let event =
                            vec![super::message::presence(&name, crate::time::now_millis())];
                        let room = super::message::book_room(book);
                        match local {
                            Some(me) => shard.broadcast_except("/", room, "userLeft", event, me),
                            None => shard.broadcast("/", room, "userLeft", event, None),
                        }
                    }
                }
            }
        }
        self.publish(shard, run);
    }
}

/// The applier's [`Apply`] for the chat: store each read, then hand each room's entries to
/// its home shard, in order. Before the server starts (catching up), it only stores.
pub struct LogSink {
    store: Arc<Store>,
    cluster: Arc<ClusterChat>,
    injector: Option<Arc<Injector<ChatForward>>>,
    /// Per partition: presence through here is in the rosters loaded at start (skipped).
    through: Vec<StreamId>,
    applied: u64,
}

impl LogSink {
    /// A sink for catching up before the shards run: it stores, and delivers nothing.
    pub fn storing_only(store: Arc<Store>, cluster: Arc<ClusterChat>) -> LogSink {
        LogSink {
            store,
            cluster,
            injector: None,
            through: Vec::new(),
            applied: 0,
        }
    }

    /// A sink that stores and then delivers to the home shards; presence entries through
    /// `through[partition]` are already in the rosters the shards were given.
    pub fn delivering(
        store: Arc<Store>,
        cluster: Arc<ClusterChat>,
        injector: Arc<Injector<ChatForward>>,
        through: Vec<StreamId>,
    ) -> LogSink {
        LogSink {
            store,
            cluster,
            injector: Some(injector),
            through,
            applied: 0,
        }
    }

    /// Entries applied so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }
}

impl Apply for LogSink {
    fn apply(
        &mut self,
        entries: Vec<LogEntry>,
        positions: &[(u32, StreamId)],
    ) -> Result<(), ApplyError> {
        self.check_numbering(&entries)?;
        let count = entries.len();
        let mut applied = Vec::with_capacity(count);
        for entry in entries {
            let presence = !matches!(entry.entry, Entry::Message { .. });
            let seen = self
                .through
                .get(entry.partition as usize)
                .is_some_and(|&t| entry.id <= t);
            if presence && seen {
                continue;
            }
            match self.decode(entry) {
                Ok(item) => applied.push(item),
                Err(e) => crate::log_error!("cluster_entry_skipped", cause = e),
            }
        }
        let messages = applied.iter().filter_map(|a| match a {
            Applied::Message { message, .. } => Some(message),
            _ => None,
        });
        let positions: Vec<(u32, (u64, u64))> = positions
            .iter()
            .map(|(p, id)| (*p, (id.ms, id.n)))
            .collect();
        self.store
            .apply_log(messages, &positions)
            .map_err(|e| ApplyError::Failed(e.to_string()))?;
        self.applied += count as u64;
        let Some(injector) = &self.injector else {
            return Ok(());
        };
        let shards = injector.shards();
        let mut per_home: Vec<Vec<Applied>> = (0..shards).map(|_| Vec::new()).collect();
        for item in applied {
            let book = match &item {
                Applied::Message { message, .. } => message.book_id,
                Applied::Join { book, .. } | Applied::Leave { book, .. } => *book,
            };
            if let Some(list) = per_home.get_mut(home_shard(book, shards)) {
                list.push(item);
            }
        }
        for (home, list) in per_home.into_iter().enumerate() {
            if !list.is_empty() {
                // A shard that has ended is shutting down: nothing more to deliver there.
                let _ = injector.forward(home, ChatForward::Applied(list));
            }
        }
        Ok(())
    }
}

impl LogSink {
    /// Check that every message of `entries` (one read, in log order) numbers its room past
    /// what this node holds. Every message read past the applied positions is new here, so
    /// one that is not was numbered again by a Redis that lost entries, and storing it would
    /// overwrite a stored message: `RedisBehind` names the first. One store seek per room of
    /// the read ([`Store::tail`]), nothing kept between reads.
    fn check_numbering(&self, entries: &[LogEntry]) -> Result<(), ApplyError> {
        let mut newest: HashMap<BookId, u64> = HashMap::new();
        for entry in entries {
            let Entry::Message { book, seq, .. } = &entry.entry else {
                continue;
            };
            let held = match newest.get(book) {
                Some(&held) => held,
                None => {
                    self.store
                        .tail(*book)
                        .map_err(|e| ApplyError::Failed(e.to_string()))?
                        .seq
                }
            };
            if *seq <= held {
                return Err(ApplyError::RedisBehind(format!(
                    "entry {} of partition {} numbers message {seq} of book {}, which this \
                     node already holds through {held}",
                    entry.id,
                    entry.partition,
                    book.get()
                )));
            }
            newest.insert(*book, *seq);
        }
        Ok(())
    }

    /// A log entry as the chat applies it; `Err` for one it cannot read (skipped, logged).
    fn decode(&self, entry: LogEntry) -> Result<Applied, String> {
        let LogEntry {
            partition,
            id,
            entry,
            ..
        } = entry;
        Ok(match entry {
            Entry::Message {
                book,
                seq,
                body,
                origin,
            } => {
                let mut value = codec::decode(&body)
                    .ok_or_else(|| format!("message {id} of partition {partition}: bad body"))?;
                value.created_ms = id.ms;
                value.id = log_message_id(partition, id);
                Applied::Message {
                    message: StoredMessage {
                        book_id: book,
                        seq,
                        value,
                    },
                    origin: self.cluster.own_token(&origin),
                }
            }
            Entry::Join {
                book,
                user,
                username,
                conn,
                origin,
            } => {
                let (key, local) = self
                    .cluster
                    .parse_conn(&conn)
                    .ok_or_else(|| format!("join {id}: bad connection name"))?;
                Applied::Join {
                    book,
                    key,
                    local,
                    user,
                    username,
                    origin: self.cluster.own_token(&origin),
                }
            }
            Entry::Leave {
                book, user, conn, ..
            } => {
                let (key, local) = self
                    .cluster
                    .parse_conn(&conn)
                    .ok_or_else(|| format!("leave {id}: bad connection name"))?;
                Applied::Leave {
                    book,
                    key,
                    local,
                    user,
                }
            }
        })
    }
}

/// A message's `_id` from its place in the log: 6 bytes of the stream id's milliseconds,
/// [`CLUSTER_ID_BYTE`], 2 bytes of partition, 3 bytes of the stream id's counter. Every node
/// makes the same, and within a room (one partition, whose ids only grow) they grow with
/// the sequence.
pub fn log_message_id(partition: u32, id: StreamId) -> MessageId {
    let mut out = [0u8; 12];
    out[..6].copy_from_slice(&id.ms.to_be_bytes()[2..]);
    out[6] = CLUSTER_ID_BYTE;
    out[7..9].copy_from_slice(&(partition as u16).to_be_bytes());
    out[9..].copy_from_slice(&(id.n.min(0x00FF_FFFF) as u32).to_be_bytes()[1..]);
    MessageId(out)
}

/// The appender's answer for one batch: failures go back to the batch's home shard.
/// With `confirm` (replicas must confirm appends), successes go back too.
pub fn answer_batch(
    injector: &Injector<ChatForward>,
    confirm: bool,
    reply: Reply,
    result: Result<Vec<Appended>, ClusterError>,
) {
    match result {
        Err(error) => {
            let landed = matches!(error, ClusterError::Replicas { .. });
            let _ = injector.forward(
                reply.shard,
                ChatForward::LogFailed {
                    tokens: reply.tokens,
                    cause: error.to_string(),
                    landed,
                },
            );
        }
        Ok(_) if confirm => {
            let _ = injector.forward(reply.shard, ChatForward::LogAppended(reply.tokens));
        }
        Ok(_) => {}
    }
}

/// Rosters loaded at start from Redis, for the home shard of each room.
pub fn roster_forwards(
    cluster: &ClusterChat,
    members: Vec<crate::cluster::RosterEntry>,
    shards: usize,
) -> Vec<(usize, ChatForward)> {
    let mut per_home: Vec<Vec<(BookId, ConnKey, String, String)>> =
        (0..shards).map(|_| Vec::new()).collect();
    for member in members {
        let Some((key, _)) = cluster.parse_conn(&member.conn) else {
            crate::log_warn!("cluster_roster_entry_skipped", conn = member.conn);
            continue;
        };
        if let Some(list) = per_home.get_mut(home_shard(member.book, shards)) {
            list.push((member.book, key, member.user, member.username));
        }
    }
    per_home
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(home, list)| (home, ChatForward::Rosters(list)))
        .collect()
}
