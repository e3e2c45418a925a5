//! The chat's side of connection state recovery, per connection: a CONNECT with a `pid`
//! (recovered or fresh), a drop (kept), a window's end (its rooms left), the home's replay.
//!
//! The rules are docs/API.md's "Reconnecting without losing messages"; the kept table is
//! `recovery`, the exact cut of what a dropped client had is `socketio::recovery`, the replay
//! is read by each room's home (`home::recover_at_home`). Must never replay a message twice or
//! skip one: whatever cannot be made exact (an unknown offset, too long a gap, another
//! reader's token, a store error) is answered as not recovered, or closes the transport so
//! the client reconnects fresh.

use serde_json::Value;

use super::home::{home_shard, LeaveAtHome, RecoverAtHome, RecoveredRoom};
use super::recovery::{
    kept_books, kept_from_bytes, kept_to_bytes, new_pid, Claim, Fresh, Kept, LiveRecord, Recovery,
    MAX_REPLAY,
};
use super::{leave_at_home, ChatApp, ChatForward};
use crate::book::BookId;
use crate::cluster::sessions::ClaimedSession;
use crate::engineio::sid::RandomId;
use crate::socketio::handler::{SocketOf, SocketRef};
use crate::socketio::recovery::{Delivered, Offset};

/// A reconnection ended before Redis answered its claim: the reader this node kept under its
/// pid leaves its rooms.
pub(super) fn abandon_claim(socket: &mut SocketOf<'_, ChatApp>, pending: PendingClaim) {
    if let Some(kept) = &pending.local {
        for (home, leave) in kept_leaves(kept, socket.origin.shard_count) {
            socket.forward(home, leave);
        }
    }
}

/// A CONNECT waiting for Redis's answer to its claim (cluster mode).
pub(super) struct PendingClaim {
    pid: RandomId,
    offset: Option<Option<Offset>>,
    /// The reader this node kept under the pid, if any.
    local: Option<Kept>,
}

impl ChatApp {
    /// A CONNECT while recovery is on: recover the reader kept under its `pid` if the rules
    /// allow, else start fresh; either way the answer carries the connection's pid. A pid
    /// whose connection is still open (the server has not noticed its drop yet, while its
    /// client is already back) has that connection dropped first, and the CONNECT is answered
    /// once it is kept (`resume`).
    pub(super) fn connect_recovering(
        &self,
        socket: &mut SocketOf<'_, Self>,
        recovery: &Recovery,
        auth: &Value,
    ) {
        let claimed = auth
            .get("pid")
            .and_then(Value::as_str)
            .and_then(RandomId::parse);
        // Absent: the client handled no newMessage; present but malformed: refused below.
        let offset = auth
            .get("offset")
            .map(|o| o.as_str().and_then(Offset::parse));
        let Some(pid) = claimed else {
            self.answer_recovery(socket, recovery, false, Err(Fresh::UnknownPid));
            return;
        };
        let me = (socket.origin.shard, socket.origin.session);
        let claim = recovery.claim(pid, me, socket.now);
        if let Some(cluster) = &self.cluster {
            // Cluster mode: Redis's copy decides (the reader may have been recovered on
            // another node since it was kept here, or kept on another node); a connection
            // still open on this node is taken over as in one process.
            let local = match claim {
                Claim::Kept(kept) => Some(kept),
                Claim::Unknown => None,
                Claim::Live(live) => return self.take_over(socket, pid, offset, live),
            };
            if cluster.claim_session(pid, socket.me()) {
                socket.state.claim = Some(Box::new(PendingClaim { pid, offset, local }));
                socket.defer_connect();
                return;
            }
            let outcome = match local {
                Some(kept) => self.recover_kept(socket, pid, &kept, offset),
                None => Err(Fresh::UnknownPid),
            };
            self.answer_recovery(socket, recovery, true, outcome);
            return;
        }
        let outcome = match claim {
            Claim::Kept(kept) => self.recover_kept(socket, pid, &kept, offset),
            Claim::Live(live) => return self.take_over(socket, pid, offset, live),
            Claim::Unknown => Err(Fresh::UnknownPid),
        };
        self.answer_recovery(socket, recovery, true, outcome);
    }

    /// The pid's connection `live` is still open: its client is here, so that connection is
    /// dead: drop it (kept, as any drop), then answer (`resume`).
    fn take_over(
        &self,
        socket: &mut SocketOf<'_, Self>,
        pid: RandomId,
        offset: Option<Option<Offset>>,
        (shard, session): super::recovery::ConnKey,
    ) {
        socket.state.resume = Some(Box::new((pid, offset)));
        socket.defer_connect();
        let old = SocketRef {
            shard,
            session,
            nsp: "/".to_owned(),
        };
        socket.forward(shard, ChatForward::TakeOver(old));
    }

    /// Cluster mode: Redis answered a reconnection's claim. Its copy is recovered; with none
    /// (recovered elsewhere, or its window ended) the reconnection is fresh, and a reader this
    /// node still kept under the pid leaves its rooms (a leave of a place already given up
    /// changes nothing). If Redis could not be asked, this node's own copy is used.
    pub(super) fn claimed(
        &self,
        socket: &mut SocketOf<'_, Self>,
        result: Result<ClaimedSession, String>,
    ) {
        let (Some(recovery), Some(pending)) = (&self.recovery, socket.state.claim.take()) else {
            return;
        };
        let PendingClaim {
            pid,
            mut offset,
            local,
        } = *pending;
        let kept = match result {
            Ok(ClaimedSession::Kept(bytes)) => {
                kept_from_bytes(&bytes, socket.now).map(|(_, kept)| kept)
            }
            Ok(ClaimedSession::Live(bytes)) => {
                // Its node did not see it drop (it died): what the client had comes from its
                // offset alone (`LiveRecord::into_kept`), which is then used up.
                let record: Option<LiveRecord> = serde_json::from_slice(&bytes).ok();
                let kept = record.and_then(|r| r.into_kept(offset, socket.now, recovery.window));
                offset = None;
                if kept.is_none() {
                    self.answer_recovery(socket, recovery, true, Err(Fresh::BadOffset));
                    return;
                }
                kept
            }
            Ok(ClaimedSession::None) => {
                if let Some(kept) = &local {
                    for (home, leave) in kept_leaves(kept, socket.origin.shard_count) {
                        socket.forward(home, leave);
                    }
                }
                None
            }
            Err(e) => {
                crate::log_warn!("cluster_claim_failed", cause = e);
                local
            }
        };
        let outcome = match kept {
            Some(kept) => self.recover_kept(socket, pid, &kept, offset),
            None => Err(Fresh::UnknownPid),
        };
        self.answer_recovery(socket, recovery, true, outcome);
    }

    /// The connection a deferred CONNECT was waiting for has ended: recover from what it
    /// left, or start fresh, and answer the CONNECT.
    pub(super) fn resume(&self, socket: &mut SocketOf<'_, Self>) {
        let (Some(recovery), Some(resume)) = (&self.recovery, socket.state.resume.take()) else {
            return;
        };
        let (pid, offset) = *resume;
        let outcome = match recovery.take(pid, socket.now) {
            Some(kept) => {
                if let Some(cluster) = &self.cluster {
                    // Kept a moment ago on its drop: Redis's copy goes too.
                    cluster.forget_session(pid);
                }
                self.recover_kept(socket, pid, &kept, offset)
            }
            None => Err(Fresh::UnknownPid),
        };
        self.answer_recovery(socket, recovery, true, outcome);
    }

    /// [`Self::recover`] a kept reader; if it cannot be, its rooms see it leave now.
    fn recover_kept(
        &self,
        socket: &mut SocketOf<'_, Self>,
        pid: RandomId,
        kept: &Kept,
        offset: Option<Option<Offset>>,
    ) -> Result<(), Fresh> {
        let outcome = self.recover(socket, pid, kept, offset);
        if outcome.is_err() {
            for (home, leave) in kept_leaves(kept, socket.origin.shard_count) {
                socket.forward(home, leave);
            }
        }
        outcome
    }

    /// Count and log a reconnection's outcome (`attempt`: it named a pid); a fresh one gets a
    /// new pid; either way the CONNECT is answered and the pid is the connection's.
    fn answer_recovery(
        &self,
        socket: &mut SocketOf<'_, Self>,
        recovery: &Recovery,
        attempt: bool,
        outcome: Result<(), Fresh>,
    ) {
        let label = match outcome {
            Ok(()) => "recovered",
            Err(Fresh::UnknownPid) => "unknown_pid",
            Err(Fresh::OtherReader) => "other_reader",
            Err(Fresh::BadOffset) => "bad_offset",
            Err(Fresh::GapTooLong) => "gap_too_long",
        };
        if attempt {
            self.metrics.shard(socket.origin.shard).recovery(label);
        }
        crate::log_debug!("recovery", shard = socket.origin.shard, outcome = label);
        if outcome.is_err() {
            let Some(pid) = new_pid() else {
                // No pid: the connection cannot be recovered; its CONNECT is answered all
                // the same.
                socket.connect_as("".into(), None);
                return;
            };
            socket.state.pid = Some(pid);
            socket.connect_as(pid.as_str().into(), None);
        }
        if let Some(pid) = socket.state.pid {
            recovery.connected(pid, (socket.origin.shard, socket.origin.session));
            if outcome.is_err() {
                self.publish_live(socket, None, None);
            }
        }
    }

    /// Cluster mode: write this reader's live record (`recovery::LiveRecord`), with `floor`
    /// when it is in one room and the newest sequence it had there is known.
    /// `sid`: the socket id it is known by, when not this connection's own (a recovered one
    /// keeps its old id).
    pub(super) fn publish_live(
        &self,
        socket: &mut SocketOf<'_, Self>,
        floor: Option<u64>,
        sid: Option<RandomId>,
    ) {
        let (Some(cluster), Some(pid)) = (&self.cluster, socket.state.pid) else {
            return;
        };
        let rooms: Vec<u64> = socket.state.rooms.books().map(|b| b.get()).collect();
        let record = LiveRecord {
            sid: sid.map_or_else(|| socket.id.to_owned(), |s| s.as_str().to_owned()),
            user_id: socket.state.user_id.clone(),
            authenticated: socket.state.token.is_some(),
            username: token_name(socket.state),
            log_conn: cluster.conn_name(&socket.me()),
            floor: floor.filter(|_| rooms.len() == 1),
            rooms,
        };
        if let Ok(bytes) = serde_json::to_vec(&record) {
            cluster.live_session(pid, bytes);
        }
    }

    /// Make this socket the kept reader again: same id and pid, same identity, back in each
    /// of its rooms through the room's home, which replays what it missed.
    fn recover(
        &self,
        socket: &mut SocketOf<'_, Self>,
        pid: RandomId,
        kept: &Kept,
        offset: Option<Option<Offset>>,
    ) -> Result<(), Fresh> {
        let same_reader = match &socket.state.token {
            Some(token) => kept.user_id.as_deref() == Some(token.user_id.as_str()),
            None => !kept.authenticated,
        };
        if !same_reader {
            return Err(Fresh::OtherReader);
        }
        let offset = match offset {
            None => None,
            Some(Some(offset)) => Some(offset),
            Some(None) => return Err(Fresh::BadOffset),
        };
        let through = kept
            .delivered
            .received_through(offset)
            .map_err(|_| Fresh::BadOffset)?;
        for &(room, had) in &through {
            let missed = self
                .store
                .tail(BookId(room))
                .map(|tail| tail.seq.saturating_sub(had))
                .map_err(|_| Fresh::GapTooLong)?;
            if missed > MAX_REPLAY as u64 {
                return Err(Fresh::GapTooLong);
            }
        }
        let state = &mut *socket.state;
        if state.token.is_none() {
            state.user_id.clone_from(&kept.user_id);
        }
        state.username = kept.username.as_deref().map(Into::into);
        let user_id = state.user_id.clone().unwrap_or_default();
        let username = token_name(state).unwrap_or_default();
        let conn = socket.me();
        let single = through.first().map(|t| t.1).filter(|_| through.len() == 1);
        for (room, had) in through {
            let book_id = BookId(room);
            socket.state.joins = socket.state.joins.wrapping_add(1);
            let token = socket.state.joins;
            socket.state.rooms.insert(book_id, token);
            let back = RecoverAtHome {
                book_id,
                after: had,
                old: kept.roster_key.clone(),
                old_log_conn: kept.log_conn.clone(),
                conn: conn.clone(),
                user_id: user_id.clone(),
                username: username.clone(),
            };
            let home = home_shard(book_id, socket.origin.shard_count);
            socket.forward(home, ChatForward::Recover(Box::new(back)));
        }
        socket.state.pid = Some(pid);
        socket.connect_as(pid.as_str().into(), Some(kept.sid));
        self.publish_live(socket, single, Some(kept.sid));
        Ok(())
    }

    /// A drop that may be recovered: keep the reader for the window, in the rooms whose
    /// join was answered (the others it leaves now). False when it cannot be kept (no pid,
    /// its token expired, deliveries not logged): the caller makes it leave everything.
    pub(super) fn keep_dropped(
        &self,
        socket: &mut SocketOf<'_, Self>,
        recovery: &Recovery,
    ) -> bool {
        let (Some(pid), Some(delivered), Some(sid)) = (
            socket.state.pid,
            socket.delivered,
            RandomId::parse(socket.id),
        ) else {
            return false;
        };
        let expired = socket.state.token.as_ref().is_some_and(|token| {
            token
                .remaining(std::time::SystemTime::now())
                .is_some_and(|left| left.is_zero())
        });
        if expired {
            return false;
        }
        let mut kept_delivered = Delivered {
            received: Vec::new(),
            runs: delivered.runs.clone(),
        };
        let rooms: Vec<(BookId, u32)> = socket.state.rooms.drain().collect();
        for (book_id, _) in rooms {
            match delivered
                .received
                .iter()
                .find(|(room, _)| *room == book_id.get())
            {
                Some(received) => kept_delivered.received.push(*received),
                // Its join is still on its way back from the home: not in the room yet.
                None => leave_at_home(socket, book_id),
            }
        }
        let kept = Kept {
            sid,
            user_id: socket.state.user_id.clone(),
            authenticated: socket.state.token.is_some(),
            username: token_name(socket.state),
            delivered: kept_delivered,
            roster_key: Some(socket.me()),
            log_conn: self.cluster.as_ref().map(|c| c.conn_name(&socket.me())),
            deadline: socket.now + recovery.window,
        };
        if let Some(cluster) = &self.cluster {
            // Its copy in Redis: a reconnection on any node can recover it.
            cluster.keep_session(pid, kept_to_bytes(pid, &kept, socket.now), recovery.window);
        }
        recovery.keep(pid, kept);
        self.metrics.shard(socket.origin.shard).recovery("kept");
        true
    }

    /// The home's replay for a recovered room: join above it, then the missed messages, in
    /// order, each with its offset. A replay that could not be read closes the transport:
    /// the client reconnects (not recovered) and joins again, rather than live with a gap.
    pub(super) fn recovered(&self, socket: &mut SocketOf<'_, Self>, room: RecoveredRoom) {
        if socket.state.rooms.token(&room.book_id).is_none() {
            // Left (leaveRoom) since: the home has its leave, after the recovery.
            return;
        }
        let book = room.book_id.get();
        match room.replay {
            Ok(replay) => {
                socket.join_recovered(book, room.floor, room.after);
                for (seq, data) in replay {
                    socket.emit_sequenced(data, book, seq);
                }
            }
            Err(error) => {
                self.count_error(socket.origin.shard, "recovery", &error);
                socket.close_transport_at(socket.now);
            }
        }
    }
}

/// The username a kept reader is listed with: its token's `name`, else its latest join's.
fn token_name(reader: &super::Reader) -> Option<String> {
    reader
        .token
        .as_ref()
        .and_then(|t| t.username.clone())
        .or_else(|| reader.username.as_deref().map(str::to_owned))
}

/// The leaves of a kept reader whose window ended (or that turned out unrecoverable), one per
/// room, each to the room's home: its `userLeft` goes out there if it was the reader's last
/// connection (after a restart, its place is the one `Recovery::load` gave it).
pub(super) fn kept_leaves(kept: &Kept, shards: usize) -> Vec<(usize, ChatForward)> {
    let (Some(conn), Some(user_id)) = (&kept.roster_key, &kept.user_id) else {
        return Vec::new();
    };
    kept_books(kept)
        .map(|book_id| {
            let leave = LeaveAtHome {
                book_id,
                conn: conn.clone(),
                user_id: user_id.clone(),
                log_conn: kept.log_conn.clone(),
            };
            (home_shard(book_id, shards), ChatForward::Leave(leave))
        })
        .collect()
}
