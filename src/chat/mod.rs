//! The ReadRealm book chat (docs/API.md) as a Socket.IO [`Handler`]: token authentication at
//! connect (`auth`), `joinRoom`, `chatMessage`, `leaveRoom`, `roomMembers`, `loadHistory`
//! (`paging`) and disconnect, with validation, identity, limits, acks and the `exception` event.
//!
//! Checks that concern one connection (payload, identity, membership, rate) run on the
//! connection's shard; numbering, storing and broadcasting a message, and each room's roster
//! with its `userJoined`/`userLeft`, run on the room's home shard (`home`, `presence`), which
//! keeps one order per room across shards.

pub mod auth;
pub mod cluster;
pub mod cluster_node;
pub mod cluster_sessions;
pub mod errors;
pub mod history;
pub mod home;
pub mod limits;
pub mod log_state;
pub mod message;
pub mod paging;
pub mod presence;
mod reconnect;
pub mod recovery;
pub mod validate;

use crate::book::BookId;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use crate::engineio::sid::RandomId;
use crate::metrics::Metrics;
use crate::socketio::handler::SocketRef;
use crate::socketio::handler::{event_array_json, ShardOf, SocketOf};
use crate::socketio::recovery::{recoverable, Offset};
use crate::socketio::{Event, Handler, Refusal};
use crate::store::{self, Store};
use auth::{TokenIdentity, TokenVerifier};
use errors::{ChatError, ErrorCode};
use history::{HistoryCache, RoomHistory};
use home::{
    home_shard, HomeShard, JoinAnswer, JoinAtHome, LeaveAtHome, MembersAtHome, Post, RecoverAtHome,
    RecoveredRoom,
};
use limits::{ChatLimits, RateLimiter};
use message::{
    book_room, encode_message, message_ack_json, new_message_json, room_name, EncodedMessage,
};
use reconnect::kept_leaves;
use recovery::Recovery;
use validate::{Payload, TokenBound};

/// Most `chat_error` log lines per second, all shards together: errors are caused by
/// clients, and a client must not be able to flood the log (every error is still counted in
/// `/metrics`).
pub const ERROR_LOG_RATE: u64 = 50;

static ERROR_LOG: crate::logging::Throttle = crate::logging::Throttle::new(ERROR_LOG_RATE);

/// History sent on join: the room's newest messages.
pub const HISTORY_LEN: usize = 50;

/// The chat application.
pub struct ChatApp {
    store: Arc<Store>,
    limits: ChatLimits,
    /// Joins, stored messages, store latency and errors are counted here, per shard.
    metrics: Arc<Metrics>,
    /// The rooms' newest messages, encoded, for joins (`history`).
    history: HistoryCache,
    /// Token authentication, when a key is configured (`auth`).
    auth: Option<Arc<TokenVerifier>>,
    /// Connection state recovery, when its window is not zero (`recovery`).
    recovery: Option<Arc<Recovery>>,
    /// Cluster mode: this node, its rooms' messages and presence going through the log.
    cluster: Option<Arc<cluster::ClusterChat>>,
}

impl ChatApp {
    pub fn new(store: Arc<Store>, limits: ChatLimits) -> ChatApp {
        ChatApp {
            store,
            limits,
            metrics: Metrics::new(1),
            history: HistoryCache::default(),
            auth: None,
            recovery: None,
            cluster: None,
        }
    }

    /// Cluster mode (docs/OPERATIONS.md, "Cluster"): messages and presence go through the
    /// cluster's log (`cluster`), whose applier hands them back to the home shards.
    pub fn with_cluster(mut self, cluster: Arc<cluster::ClusterChat>) -> ChatApp {
        self.cluster = Some(cluster);
        self
    }

    /// Recover dropped connections (docs/API.md, "Reconnecting without losing messages"):
    /// `newMessage` carries its offset, CONNECT answers carry a pid, and dropped readers are
    /// kept in `recovery` for its window. The caller keeps a handle to save them at shutdown.
    pub fn with_recovery(mut self, recovery: Arc<Recovery>) -> ChatApp {
        self.recovery = Some(recovery);
        self
    }

    /// Require a valid token on every connection (docs/API.md, "Token authentication").
    pub fn with_auth(mut self, verifier: TokenVerifier) -> ChatApp {
        self.auth = Some(Arc::new(verifier));
        self
    }

    /// Count into `metrics` (the server's, so `/metrics` shows the chat's numbers).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> ChatApp {
        self.metrics = metrics;
        self
    }

    /// Count an error answered on shard `shard` and log it with its cause (at most
    /// [`ERROR_LOG_RATE`] lines a second; the next line says how many were left out).
    fn count_error(&self, shard: usize, event: &str, error: &ChatError) {
        self.metrics.shard(shard).error(error.code.as_str());
        if !crate::logging::enabled(crate::logging::Level::Warn) {
            return;
        }
        if let Some(suppressed) = ERROR_LOG.admit() {
            crate::log_warn!(
                "chat_error",
                shard = shard,
                request = event,
                code = error.code.as_str(),
                cause = error.message,
                suppressed_before = suppressed
            );
        }
    }
}

/// What the chat keeps per connection.
#[derive(Default)]
pub struct Reader {
    /// The userId bound by the token, or else by the first successful join.
    user_id: Option<String>,
    /// The token's identity, on an authenticated connection (boxed, so that without token
    /// authentication it costs an idle reader one word).
    token: Option<Box<TokenIdentity>>,
    /// Books joined, each with its join's token.
    rooms: JoinedBooks,
    rate: RateLimiter,
    /// The token of this connection's latest first join of a room (`home`: an answer to an
    /// older join of a room left since puts nobody in the room).
    joins: u32,
    /// Connection state recovery: the pid its CONNECT answer gave (None with recovery off).
    pid: Option<RandomId>,
    /// The username of its latest join, kept with it if it drops (a restarted server's
    /// rosters learn it back from a recovery).
    username: Option<Box<str>>,
    /// A CONNECT waiting for its pid's old connection to be dropped (`reconnect::resume`):
    /// the pid and the offset it came with.
    resume: Option<Box<(RandomId, Option<Option<Offset>>)>>,
    /// Cluster mode: a CONNECT waiting for Redis's answer to its claim (`reconnect::claimed`):
    /// the pid, the offset, and the reader this node kept under that pid, if any.
    claim: Option<Box<reconnect::PendingClaim>>,
}

/// The books one connection is in, in join order, each with the token of the join that
/// entered it. A short list (at most `max_rooms_per_connection`, usually one or two), so a
/// vector beats a map both in time and in the memory an idle reader costs.
#[derive(Default)]
struct JoinedBooks(Vec<(BookId, u32)>);

impl JoinedBooks {
    fn contains_key(&self, book_id: &BookId) -> bool {
        self.0.iter().any(|(id, _)| id == book_id)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The token of the join that entered `book_id`, if the connection is in it.
    fn token(&self, book_id: &BookId) -> Option<u32> {
        self.0.iter().find(|(id, _)| id == book_id).map(|(_, t)| *t)
    }

    /// Add a book the connection is not in yet.
    fn insert(&mut self, book_id: BookId, token: u32) {
        if self.0.capacity() == 0 {
            self.0.reserve_exact(1);
        }
        self.0.push((book_id, token));
    }

    fn remove(&mut self, book_id: &BookId) -> Option<u32> {
        let index = self.0.iter().position(|(id, _)| id == book_id)?;
        Some(self.0.remove(index).1)
    }

    /// Every book, in join order.
    fn books(&self) -> impl Iterator<Item = BookId> + '_ {
        self.0.iter().map(|(id, _)| *id)
    }

    /// Every book, in join order, leaving the list empty.
    fn drain(&mut self) -> std::vec::Drain<'_, (BookId, u32)> {
        self.0.drain(..)
    }
}

/// Messages between shards: requests going to their room's home shard (`home`), and the
/// home's answer to a join coming back to the joining socket.
pub enum ChatForward {
    Post(Post),
    Join(Box<JoinAtHome>),
    Leave(LeaveAtHome),
    Members(MembersAtHome),
    /// For the joining socket, through [`Handler::on_socket_forward`].
    Joined(Box<JoinAnswer>),
    /// A recovered connection back in a room, to the room's home (`recovery`).
    Recover(Box<RecoverAtHome>),
    /// The home's replay for a recovered connection, through [`Handler::on_socket_forward`].
    Recovered(Box<RecoveredRoom>),
    /// A reconnection's pid names this connection, which must then be dead: to its shard,
    /// which drops it (`DropForTakeover`, through [`Handler::on_socket_forward`]).
    TakeOver(SocketRef),
    DropForTakeover,
    /// The connection a deferred CONNECT waited for has ended: to that CONNECT's shard, which
    /// answers it (`Resumed`, through [`Handler::on_socket_forward`]).
    Resume(SocketRef),
    Resumed,
    /// Cluster mode: entries of the log applied to the store, for their rooms' home shard,
    /// in log order (`cluster`).
    Applied(Vec<cluster::Applied>),
    /// Cluster mode: the appender could not append the entries of these origin tokens.
    /// `landed`: the entries are in the log (too few replicas confirmed them).
    LogFailed {
        tokens: Vec<u64>,
        cause: String,
        landed: bool,
    },
    /// Cluster mode, with replicas to confirm appends: these entries were confirmed.
    LogAppended(Vec<u64>),
    /// Cluster mode: the rosters Redis held at start, `(book, place, userId, username)`.
    Rosters(Vec<(BookId, presence::ConnKey, String, String)>),
    /// Cluster mode: Redis's answer to a reconnection's claim of a kept reader (its bytes,
    /// None if none), for the reconnecting socket's shard (`cluster_sessions`).
    Claimed {
        socket: SocketRef,
        result: Result<crate::cluster::sessions::ClaimedSession, String>,
    },
    /// The same answer, for the socket itself (through [`Handler::on_socket_forward`]).
    ClaimAnswer(Result<crate::cluster::sessions::ClaimedSession, String>),
    /// Cluster mode: this node's liveness key had expired; its readers join again.
    Reannounce,
}

impl Handler for ChatApp {
    type State = Reader;
    type Shard = HomeShard;
    type Forward = ChatForward;

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn on_connect(&self, socket: &mut SocketOf<'_, Self>, auth: &Value) -> Result<(), Refusal> {
        if let Some(verifier) = &self.auth {
            let identity = verifier.check_auth(auth).map_err(|reason| {
                auth::log_refusal(socket.origin.shard, reason);
                reason.refusal()
            })?;
            // The transport closes when the token expires (plus the leeway); the client's
            // next connection presents a fresh token.
            if let Some(at) = identity
                .remaining(SystemTime::now())
                .and_then(|left| socket.now.checked_add(left))
            {
                socket.close_transport_at(at);
            }
            socket.state.user_id = Some(identity.user_id.clone());
            socket.state.token = Some(Box::new(identity));
        }
        if let Some(recovery) = &self.recovery {
            self.connect_recovering(socket, recovery, auth);
        }
        Ok(())
    }

    fn on_event(&self, socket: &mut SocketOf<'_, Self>, event: Event) {
        let Some(name) = event.name() else {
            return;
        };
        if !matches!(
            name,
            "joinRoom" | "chatMessage" | "leaveRoom" | "roomMembers" | "loadHistory"
        ) {
            // Unknown events are ignored (docs/API.md), their arguments never read.
            return;
        }
        // The payload is read from the event's text into typed fields: nothing is built for
        // a field of the wrong type, however large (see `validate`).
        let payload = match event.first_arg::<Payload<'_>>() {
            Ok(payload) => payload,
            // The decoder checked the text and a `Payload` takes any value, so this is not
            // expected; answered as a bad payload all the same.
            Err(_) => Some(Payload::NotObject),
        };
        let payload = payload.as_ref();
        let result = match name {
            "joinRoom" => self.join(socket, payload, event.ack_id),
            "chatMessage" => self.post(socket, payload, event.ack_id),
            "leaveRoom" => self.leave(socket, payload),
            "roomMembers" => self.members(socket, payload, event.ack_id),
            "loadHistory" => self.load_history(socket, payload, event.ack_id),
            // Unknown events are ignored (docs/API.md).
            _ => return,
        };
        if let Err(error) = &result {
            self.count_error(socket.origin.shard, name, error);
        }
        match (result, event.ack_id) {
            (Ok(Some(body)), Some(ack)) => socket.ack(ack, vec![body], Vec::new()),
            // A message's, a join's and roomMembers' answers come from the room's home shard.
            (Ok(_), _) => {}
            (Err(error), Some(ack)) => socket.ack(ack, vec![error.ack_body()], Vec::new()),
            (Err(error), None) => socket.emit("exception", vec![error.exception_body(name)]),
        }
    }

    fn on_disconnect(&self, socket: &mut SocketOf<'_, Self>, reason: &str) {
        // A reconnection that ended while its claim was with Redis: the reader this node
        // kept under its pid leaves its rooms (nobody will recover it here).
        if let Some(pending) = socket.state.claim.take() {
            reconnect::abandon_claim(socket, *pending);
        }
        // A reconnection of this client may be waiting for this connection to end.
        let me = (socket.origin.shard, socket.origin.session);
        let waiting = self
            .recovery
            .as_ref()
            .zip(socket.state.pid)
            .and_then(|(recovery, pid)| recovery.connection_ended(pid, me));
        // A drop that may be recovered keeps the reader in its rooms until its window ends
        // (`recovery`); anything else (a clean disconnect, a close at token expiry, a
        // protocol error) leaves every room now, each once.
        let kept = match self.recovery.as_ref().filter(|_| recoverable(reason)) {
            Some(recovery) => self.keep_dropped(socket, recovery),
            None => false,
        };
        if !kept {
            if let (Some(cluster), Some(pid)) = (&self.cluster, socket.state.pid) {
                cluster.end_session(pid);
            }
            let rooms: Vec<(BookId, u32)> = socket.state.rooms.drain().collect();
            for (book_id, _) in rooms {
                leave_at_home(socket, book_id);
            }
        }
        if let Some((shard, session)) = waiting {
            let waiting = SocketRef {
                shard,
                session,
                nsp: "/".to_owned(),
            };
            socket.forward(shard, ChatForward::Resume(waiting));
        }
    }

    fn on_socket_forward(&self, socket: &mut SocketOf<'_, Self>, message: ChatForward) {
        match message {
            ChatForward::Joined(answer) => self.joined(socket, *answer),
            ChatForward::Recovered(room) => self.recovered(socket, *room),
            ChatForward::DropForTakeover => socket.drop_transport(),
            ChatForward::Resumed => self.resume(socket),
            ChatForward::ClaimAnswer(result) => self.claimed(socket, result),
            _ => {}
        }
    }

    fn next_wake(&self, shard: &HomeShard) -> Option<Instant> {
        let log = shard.log.next_wake();
        let Some(recovery) = self.recovery.as_ref() else {
            return log;
        };
        let recovery = if !shard.restored {
            // The first turn puts the readers a restart kept back into the rosters.
            Some(recovery.started())
        } else {
            recovery.next_due()
        };
        match (log, recovery) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_forward(&self, shard: &mut ShardOf<'_, Self>, message: ChatForward) {
        match message {
            ChatForward::Join(join) => self.join_at_home(shard, *join),
            ChatForward::Leave(leave) => self.leave_at_home(shard, leave),
            ChatForward::Members(ask) => self.members_at_home(shard, ask),
            ChatForward::Recover(back) => self.recover_at_home(shard, *back),
            ChatForward::TakeOver(old) => {
                shard.forward_to_socket(old, ChatForward::DropForTakeover);
            }
            ChatForward::Resume(waiting) => shard.forward_to_socket(waiting, ChatForward::Resumed),
            ChatForward::Applied(entries) => self.log_applied(shard, entries),
            ChatForward::LogFailed {
                tokens,
                cause,
                landed,
            } => self.log_failed(shard, tokens, &cause, landed),
            ChatForward::LogAppended(tokens) => self.log_appended(shard, tokens),
            ChatForward::Reannounce => {
                if let Some(cluster) = &self.cluster {
                    self.log_reannounce(cluster, shard);
                }
            }
            ChatForward::Claimed { socket, result } => {
                shard.forward_to_socket(socket, ChatForward::ClaimAnswer(result));
            }
            ChatForward::Rosters(members) => {
                for (book, place, user_id, username) in members {
                    shard.state.rosters.join(book, place, &user_id, &username);
                }
            }
            // Answers go to sockets (`on_socket_forward`), never to a shard.
            ChatForward::Joined(_)
            | ChatForward::Recovered(_)
            | ChatForward::DropForTakeover
            | ChatForward::ClaimAnswer(_)
            | ChatForward::Resumed => {}
            ChatForward::Post(post) => {
                if let Some(cluster) = &self.cluster {
                    self.log_post(cluster, shard, post);
                    return;
                }
                let index = shard.index;
                let store = &self.store;
                if let Err((post, error)) = shard.state.number(index, post, |book| store.tail(book))
                {
                    let error = ChatError::new(ErrorCode::Unavailable, error.to_string());
                    self.count_error(index, "chatMessage", &error);
                    reply_error(shard, post.reply_to, post.ack_id, &error);
                }
            }
        }
    }

    fn on_turn_end(&self, shard: &mut ShardOf<'_, Self>) {
        if let Some(recovery) = &self.recovery {
            if !shard.state.restored && self.cluster.is_some() {
                // Cluster mode: the rosters came from Redis, kept readers' places in them.
                shard.state.restored = true;
            }
            if !shard.state.restored {
                // The readers a restart kept are still in their rooms: back in the rosters.
                shard.state.restored = true;
                let (index, count) = (shard.index, shard.count);
                let rosters = &mut shard.state.rosters;
                recovery.restore_places(
                    |book| home_shard(book, count) == index,
                    |book, place, user_id, username| {
                        let place = (place.shard, place.session);
                        rosters.rebind(book, None, place, user_id, username);
                    },
                );
            }
            // Readers whose recovery window ended: they leave their rooms now.
            for kept in recovery.take_due(shard.now) {
                self.metrics.shard(shard.index).recovery("window_ended");
                for (home, leave) in kept_leaves(&kept, shard.count) {
                    shard.forward(home, leave);
                }
            }
        }
        if let Some(cluster) = &self.cluster {
            self.log_turn_end(cluster, shard);
            return;
        }
        if shard.state.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut shard.state.pending);
        let started = Instant::now();
        let written = self.store.append(pending.iter().map(|p| &p.message));
        self.metrics.shard(shard.index).store_write(
            pending.len() as u64,
            started.elapsed(),
            written.is_ok(),
        );
        match written {
            Ok(()) => {
                let stored = pending
                    .into_iter()
                    .map(|p| {
                        let ack = p.ack_id.map(|ack| (p.reply_to, ack));
                        (p.message, ack)
                    })
                    .collect();
                self.publish(shard, stored);
            }
            Err(error) => {
                shard.state.forget_tails(&pending);
                let error = ChatError::new(ErrorCode::Unavailable, error.to_string());
                // One log line for the batch; every refused message is counted.
                self.count_error(shard.index, "chatMessage", &error);
                for _ in 1..pending.len() {
                    self.metrics.shard(shard.index).error(error.code.as_str());
                }
                for item in pending {
                    reply_error(shard, item.reply_to, item.ack_id, &error);
                }
            }
        }
    }
}

impl ChatApp {
    /// Stored messages of rooms homed here, in each room's order, go out: into the history
    /// cache, then one `newMessage` broadcast each, then the sender's ack (`(socket, ack id)`)
    /// when it asked for one.
    fn publish(
        &self,
        shard: &mut ShardOf<'_, ChatApp>,
        stored: Vec<(store::StoredMessage, Option<(SocketRef, u64)>)>,
    ) {
        if stored.is_empty() {
            return;
        }
        // Each message is encoded once: the same text goes into the room's history, the
        // `newMessage` broadcast and the sender's ack.
        let texts: Vec<EncodedMessage> = stored.iter().map(|(m, _)| encode_message(m)).collect();
        // Published before the broadcasts, so a join never misses a message (`history`).
        let batch: Vec<_> = stored.iter().map(|(m, _)| m).zip(&texts).collect();
        let store = &self.store;
        self.history
            .record_batch(&batch, |book| store.newest(book, HISTORY_LEN));
        drop(batch);
        for ((message, ack), text) in stored.into_iter().zip(texts) {
            let (book_id, seq) = (message.book_id, message.seq);
            // With recovery on, the offset is the last argument: the same bytes for every
            // recipient, so the event is still encoded once.
            let data = match self.recovery {
                Some(_) => new_message_json(&text, book_id, seq),
                None => event_array_json("newMessage", &[&text]),
            };
            shard.broadcast_json("/", book_room(book_id), data, Some(seq));
            if let Some((reply_to, ack)) = ack {
                shard.ack_to_json(reply_to, ack, message_ack_json(&text));
            }
        }
    }
}

fn reply_error(
    shard: &mut ShardOf<'_, ChatApp>,
    reply_to: crate::socketio::handler::SocketRef,
    ack_id: Option<u64>,
    error: &ChatError,
) {
    match ack_id {
        Some(ack) => shard.ack_to(reply_to, ack, vec![error.ack_body()]),
        None => shard.emit_to(
            reply_to,
            "exception",
            vec![error.exception_body("chatMessage")],
        ),
    }
}

impl ChatApp {
    /// `joinRoom`: bind the identity, then ask the room's home, which answers with the
    /// history, the members and the ack (`joined`) and tells the others (`home`).
    fn join(
        &self,
        socket: &mut SocketOf<'_, Self>,
        payload: Option<&Payload<'_>>,
        ack_id: Option<u64>,
    ) -> Result<Option<Value>, ChatError> {
        let request = validate::join_as(payload, token_bound(socket.state))?;
        check_identity(socket.state, &request.user_id)?;
        let joined = socket.state.rooms.token(&request.book_id);
        if joined.is_none() && socket.state.rooms.len() >= self.limits.max_rooms_per_connection {
            return Err(ChatError::new(
                ErrorCode::TooManyRooms,
                format!(
                    "a connection may be in at most {} rooms",
                    self.limits.max_rooms_per_connection
                ),
            ));
        }
        let binds = socket.state.user_id.is_none();
        if socket.state.username.as_deref() != Some(request.username.as_str()) {
            socket.state.username = Some(request.username.as_str().into());
        }
        socket
            .state
            .user_id
            .get_or_insert_with(|| request.user_id.clone());
        let token = joined.unwrap_or_else(|| {
            // In the room from now on for this shard's checks (a post right after the join
            // is accepted and reaches the home after the join).
            socket.state.joins = socket.state.joins.wrapping_add(1);
            let token = socket.state.joins;
            socket.state.rooms.insert(request.book_id, token);
            token
        });
        let home = home_shard(request.book_id, socket.origin.shard_count);
        let conn = socket.me();
        socket.forward(
            home,
            ChatForward::Join(Box::new(JoinAtHome {
                book_id: request.book_id,
                user_id: request.user_id,
                username: request.username,
                conn,
                ack_id,
                token,
                first: joined.is_none(),
                binds,
            })),
        );
        Ok(None)
    }

    /// The home answered a join: enter the room (unless the connection left it or joined it
    /// again since), send `previousMessages`, answer the ack.
    fn joined(&self, socket: &mut SocketOf<'_, Self>, answer: JoinAnswer) {
        let current = socket.state.rooms.token(&answer.book_id) == Some(answer.token);
        match answer.result {
            Ok(room) => {
                if current {
                    // Broadcasts up to the newest message served are in the history already.
                    socket.join_after(book_room(answer.book_id), room.history.newest_seq());
                }
                if current && answer.first {
                    self.metrics.shard(socket.origin.shard).joined();
                    self.publish_live(socket, Some(room.history.newest_seq()), None);
                }
                socket.emit_json(room.history.previous_messages_json());
                if let Some(ack) = answer.ack_id {
                    let body = json!({
                        "ok": true,
                        "room": room_name(answer.book_id),
                        "members": room.members,
                        "memberCount": room.member_count,
                    });
                    socket.ack(ack, vec![body], Vec::new());
                }
            }
            Err(error) => {
                if current && answer.first {
                    // The home did not count it: not in the room.
                    socket.state.rooms.remove(&answer.book_id);
                }
                if answer.binds && socket.state.rooms.len() == 0 {
                    // A failed join binds nothing; no other join is in the room or on its way.
                    socket.state.user_id = None;
                }
                match answer.ack_id {
                    Some(ack) => socket.ack(ack, vec![error.ack_body()], Vec::new()),
                    None => socket.emit("exception", vec![error.exception_body("joinRoom")]),
                }
            }
        }
    }

    /// A room's newest messages for a join: from the cache, or, for a room not cached (not
    /// written since start, or evicted), read from the store once and offered to the cache.
    fn room_history(&self, book_id: BookId) -> Result<Arc<RoomHistory>, ChatError> {
        if let Some(history) = self.history.get(book_id) {
            return Ok(history);
        }
        let stored = self
            .store
            .newest(book_id, HISTORY_LEN)
            .map_err(|e| ChatError::new(ErrorCode::Unavailable, e.to_string()))?;
        let history = Arc::new(RoomHistory::from_stored(&stored));
        self.history.offer(book_id, Arc::clone(&history));
        Ok(history)
    }

    /// `chatMessage`: check it here, then hand it to the room's home shard.
    fn post(
        &self,
        socket: &mut SocketOf<'_, Self>,
        payload: Option<&Payload<'_>>,
        ack_id: Option<u64>,
    ) -> Result<Option<Value>, ChatError> {
        let request = validate::message_as(
            payload,
            self.limits.max_content_chars,
            token_bound(socket.state),
        )?;
        check_identity(socket.state, &request.user_id)?;
        if !socket.state.rooms.contains_key(&request.book_id) {
            return Err(ChatError::new(
                ErrorCode::NotInRoom,
                format!("join book {} before posting to it", request.book_id),
            ));
        }
        if !socket.state.rate.try_take(
            socket.now,
            self.limits.message_rate,
            self.limits.message_burst,
        ) {
            return Err(ChatError::new(
                ErrorCode::RateLimited,
                format!(
                    "at most {} messages per second, bursts of {}",
                    self.limits.message_rate, self.limits.message_burst
                ),
            ));
        }
        let home = home_shard(request.book_id, socket.origin.shard_count);
        let reply_to = socket.me();
        socket.forward(
            home,
            ChatForward::Post(Post {
                request,
                reply_to,
                ack_id,
            }),
        );
        Ok(None)
    }

    /// `leaveRoom`: leave here at once, and at the home, which tells the rest; leaving a
    /// room not joined is a quiet success.
    fn leave(
        &self,
        socket: &mut SocketOf<'_, Self>,
        payload: Option<&Payload<'_>>,
    ) -> Result<Option<Value>, ChatError> {
        let request = validate::leave_as(payload, token_bound(socket.state))?;
        if let Some(user_id) = &request.user_id {
            check_identity(socket.state, user_id)?;
        }
        if socket.state.rooms.remove(&request.book_id).is_some() {
            socket.leave(book_room(request.book_id));
            leave_at_home(socket, request.book_id);
            self.publish_live(socket, None, None);
        }
        Ok(Some(json!({ "ok": true })))
    }

    /// `roomMembers`: a member asks; the home answers through the ack.
    fn members(
        &self,
        socket: &mut SocketOf<'_, Self>,
        payload: Option<&Payload<'_>>,
        ack_id: Option<u64>,
    ) -> Result<Option<Value>, ChatError> {
        let Some(ack_id) = ack_id else {
            return Err(ChatError::invalid(
                "roomMembers answers through an acknowledgement: pass a callback",
            ));
        };
        let book_id = validate::members(payload)?;
        if socket.state.rooms.token(&book_id).is_none() {
            return Err(ChatError::new(
                ErrorCode::NotInRoom,
                format!("join book {book_id} before asking who is in it"),
            ));
        }
        let home = home_shard(book_id, socket.origin.shard_count);
        let reply_to = socket.me();
        socket.forward(
            home,
            ChatForward::Members(MembersAtHome {
                book_id,
                reply_to,
                ack_id,
            }),
        );
        Ok(None)
    }
}

/// The connection left `book_id` (a `leaveRoom`, or its disconnect): tell the room's home,
/// which takes it out of the roster and sends `userLeft` if it was its reader's last.
fn leave_at_home(socket: &mut SocketOf<'_, ChatApp>, book_id: BookId) {
    // A connection in a room has a bound userId (joins bind it; only a failed join with no
    // room left unbinds it).
    let Some(user_id) = socket.state.user_id.clone() else {
        return;
    };
    let home = home_shard(book_id, socket.origin.shard_count);
    let conn = socket.me();
    socket.forward(
        home,
        ChatForward::Leave(LeaveAtHome {
            book_id,
            conn,
            user_id,
            log_conn: None,
        }),
    );
}

/// The token identity of an authenticated connection, for the payload rules.
fn token_bound(reader: &Reader) -> Option<TokenBound<'_>> {
    reader.token.as_deref().map(|token| TokenBound {
        user_id: &token.user_id,
        username: token.username.as_deref(),
    })
}

fn check_identity(reader: &Reader, user_id: &str) -> Result<(), ChatError> {
    match &reader.user_id {
        Some(bound) if bound != user_id => Err(ChatError::new(
            ErrorCode::IdentityMismatch,
            "userId differs from the one this connection joined with",
        )),
        _ => Ok(()),
    }
}
