//! The chat's connection state recovery (docs/API.md, "Reconnecting without losing
//! messages"): the readers kept after a drop, under their `pid`, for the recovery window.
//!
//! socket.io-client 4.6+ sends `{ pid, offset }` in the CONNECT of a reconnection. A reader
//! that dropped unexpectedly is kept here ([`Kept`]: its socket id, identity, rooms and what
//! it had been sent, `socketio::recovery::Delivered`) until it comes back or its window ends.
//! Coming back, the offset cuts its deliveries exactly; each room's home then replays from the
//! store every message after what the reader has (`chat::home`), so a recovery is exact: the
//! store, not a bounded buffer, is the source. At a graceful shutdown every kept reader (the
//! live ones too, which the shutdown drops) is saved in the store and loaded at the next start.
//!
//! Owns the kept table, shared by every shard (a mutex: touched at drops, reconnections and
//! window ends only, never per message) and the due time of its earliest window end (an
//! atomic, read every loop turn without the lock). Never sends, never reads messages: the
//! chat (`chat::mod`) and the homes do.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::book::BookId;
use crate::engineio::session::SessionRef;
use crate::engineio::sid::RandomId;
use crate::socketio::handler::SocketRef;
use crate::socketio::recovery::{Delivered, Offset, Run};

/// Most messages one room may replay to a recovering reader; a gap with more is not
/// recovered (the reader joins again and gets the newest history instead), so a recovery
/// never floods a reader past its outbound limit.
pub const MAX_REPLAY: usize = 2_000;

/// A reader that dropped and may come back.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// The socket id it had, and keeps when recovered.
    pub sid: RandomId,
    /// Its bound userId (its token's `sub` on an authenticated connection).
    pub user_id: Option<String>,
    /// Whether it was authenticated: a recovery then needs a valid token of the same `sub`.
    pub authenticated: bool,
    /// The username it joined with (for the rosters of a restarted server).
    pub username: Option<String>,
    /// What it had been sent, per room it was in (`received`), and the runs after that.
    pub delivered: Delivered,
    /// Its place in the rooms' rosters: its dropped connection's, or after a restart one of
    /// shard [`KEPT_SHARD`] (`Recovery::load`).
    pub roster_key: Option<SocketRef>,
    /// Cluster mode: its dropped connection's name in the cluster's log (`chat::cluster`),
    /// its place in the rosters of every node, kept across a restart.
    pub log_conn: Option<String>,
    /// When its window ends.
    pub deadline: Instant,
}

/// One connection anywhere in the server (the chat lives in `/` only): its shard and session.
pub type ConnKey = (usize, SessionRef);

/// A connected reader's pid: where its connection is, and a reconnection of the same client
/// waiting for that connection to be dropped (its client is back, so it is dead).
#[derive(Debug, Clone, Copy)]
struct Live {
    conn: ConnKey,
    waiting: Option<ConnKey>,
}

/// The kept readers, by pid, with their window ends in order; and the pids of connected
/// readers.
#[derive(Default)]
struct Table {
    by_pid: HashMap<RandomId, Kept>,
    due: BinaryHeap<Reverse<(Instant, RandomId)>>,
    live: HashMap<RandomId, Live>,
}

/// What a reconnection's pid names.
#[derive(Debug)]
pub enum Claim {
    /// A kept reader, taken for this reconnection.
    Kept(Kept),
    /// A connection not yet dropped: the reconnection now waits for its drop (it is told
    /// through [`Recovery::connection_ended`]).
    Live(ConnKey),
    /// Nothing (never given, used, ended).
    Unknown,
}

/// The shard index of the roster places a restarted server gives the readers it kept: no
/// shard has it, so a place never names a live connection (`Recovery::load`).
pub const KEPT_SHARD: usize = usize::MAX;

/// A kept reader to put back into a room's roster after a restart, by the room's home.
#[derive(Debug, Clone)]
struct RosterPlace {
    pid: RandomId,
    book_id: BookId,
    place: SocketRef,
    user_id: String,
    username: String,
}

/// The recovery state every shard shares.
pub struct Recovery {
    /// `--recovery-window`.
    pub window: Duration,
    table: Mutex<Table>,
    /// Kept readers loaded at start, not yet back in their rooms' rosters (each home shard
    /// takes its rooms' at its first turn).
    places: Mutex<Vec<RosterPlace>>,
    /// The earliest window end, in nanoseconds after `epoch` (`u64::MAX`: none).
    next_due: AtomicU64,
    epoch: Instant,
}

/// Why a reconnection was not recovered (for the logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// No pid, or one never given or already used, expired or ended.
    UnknownPid,
    /// Another reader's token (`sub`), or no valid token where one was held.
    OtherReader,
    /// The offset names something never sent to this reader.
    BadOffset,
    /// More missed messages in a room than [`MAX_REPLAY`].
    GapTooLong,
}

impl Recovery {
    pub fn new(window: Duration) -> Recovery {
        Recovery {
            window,
            table: Mutex::new(Table::default()),
            places: Mutex::new(Vec::new()),
            next_due: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves a table that is still consistent (every
        // change is one insert or remove): keep using it.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish_next_due(&self, table: &Table) {
        let next = table.due.peek().map_or(u64::MAX, |Reverse((at, _))| {
            at.saturating_duration_since(self.epoch).as_nanos() as u64
        });
        self.next_due.store(next, Ordering::Release);
    }

    /// Keep a dropped reader under `pid` until `kept.deadline`.
    pub fn keep(&self, pid: RandomId, kept: Kept) {
        let mut table = self.table();
        table.due.push(Reverse((kept.deadline, pid)));
        table.by_pid.insert(pid, kept);
        self.publish_next_due(&table);
    }

    /// A connection answered with `pid` (fresh or recovered) is at `conn`.
    pub fn connected(&self, pid: RandomId, conn: ConnKey) {
        self.table().live.insert(
            pid,
            Live {
                conn,
                waiting: None,
            },
        );
    }

    /// The connection answered with `pid` ended (before it is kept, if it is): the
    /// reconnection waiting for it, if any, to be told.
    pub fn connection_ended(&self, pid: RandomId, conn: ConnKey) -> Option<ConnKey> {
        let mut table = self.table();
        match table.live.get(&pid) {
            Some(live) if live.conn == conn => table.live.remove(&pid).and_then(|l| l.waiting),
            _ => None,
        }
    }

    /// A reconnection at `conn` names `pid`: the kept reader (taken), the connection still
    /// live under it (the reconnection then waits for it), or nothing.
    pub fn claim(&self, pid: RandomId, conn: ConnKey, now: Instant) -> Claim {
        let mut table = self.table();
        if let Some(kept) = table.by_pid.remove(&pid) {
            return match kept.deadline > now {
                true => Claim::Kept(kept),
                false => Claim::Unknown,
            };
        }
        match table.live.get_mut(&pid) {
            Some(live) => {
                live.waiting = Some(conn);
                Claim::Live(live.conn)
            }
            None => Claim::Unknown,
        }
    }

    /// Take the reader kept under `pid`, if its window has not ended at `now`.
    pub fn take(&self, pid: RandomId, now: Instant) -> Option<Kept> {
        let mut table = self.table();
        let kept = table.by_pid.remove(&pid)?;
        // Its heap entry stays and is skipped when due (no entry under the pid then).
        (kept.deadline > now).then_some(kept)
    }

    /// The earliest window end, if any (read without the lock).
    pub fn next_due(&self) -> Option<Instant> {
        match self.next_due.load(Ordering::Acquire) {
            u64::MAX => None,
            nanos => Some(self.epoch + Duration::from_nanos(nanos)),
        }
    }

    /// The readers whose window ended at `now`, taken out of the table (each once, whichever
    /// shard asks first).
    pub fn take_due(&self, now: Instant) -> Vec<Kept> {
        if self.next_due().is_none_or(|due| due > now) {
            return Vec::new();
        }
        let mut table = self.table();
        let mut ended = Vec::new();
        while let Some(Reverse((at, pid))) = table.due.peek().copied() {
            if at > now {
                break;
            }
            table.due.pop();
            // A pid recovered (or kept again with a later deadline) in the meantime is not due.
            if table.by_pid.get(&pid).is_some_and(|k| k.deadline <= now) {
                if let Some(kept) = table.by_pid.remove(&pid) {
                    ended.push(kept);
                }
            }
        }
        self.publish_next_due(&table);
        ended
    }

    /// Every kept reader, as the bytes [`Recovery::load`] reads (JSON), their window ends as
    /// wall-clock times; the table is left empty. For a graceful shutdown.
    pub fn save(&self, now: Instant) -> Vec<u8> {
        let mut table = self.table();
        let wall = SystemTime::now();
        let saved: Vec<Saved> = table
            .by_pid
            .drain()
            .filter(|(_, kept)| kept.deadline > now)
            .map(|(pid, kept)| Saved::new(pid, kept, now, wall))
            .collect();
        table.due.clear();
        self.publish_next_due(&table);
        if saved.is_empty() {
            return Vec::new();
        }
        serde_json::to_vec(&saved).unwrap_or_default()
    }

    /// Keep the readers [`Recovery::save`] wrote (those whose window has not ended); how many.
    /// Bytes that do not parse keep nobody (a reader then reconnects fresh, never wrongly).
    ///
    /// A restarted server's rosters are empty, yet a kept reader is still in its rooms until
    /// its window ends (docs/API.md): each gets a place of its own (shard [`KEPT_SHARD`]),
    /// which the rooms' homes put back in their rosters ([`Recovery::restore_places`]), its
    /// recovery takes over and its window's end takes out (`userLeft`).
    pub fn load(&self, bytes: &[u8], now: Instant) -> usize {
        let Ok(saved) = serde_json::from_slice::<Vec<Saved>>(bytes) else {
            return 0;
        };
        let wall = SystemTime::now();
        let mut count = 0;
        let mut places = Vec::new();
        for entry in saved {
            if let Some((pid, mut kept)) = entry.into_kept(now, wall) {
                let place = SocketRef {
                    shard: KEPT_SHARD,
                    session: SessionRef::new(count, 0),
                    nsp: "/".to_owned(),
                };
                if let Some(user_id) = &kept.user_id {
                    let username = kept.username.clone().unwrap_or_else(|| user_id.clone());
                    for book_id in kept_books(&kept) {
                        places.push(RosterPlace {
                            pid,
                            book_id,
                            place: place.clone(),
                            user_id: user_id.clone(),
                            username: username.clone(),
                        });
                    }
                }
                kept.roster_key = Some(place);
                self.keep(pid, kept);
                count += 1;
            }
        }
        *self.lock_places() = places;
        count
    }

    fn lock_places(&self) -> std::sync::MutexGuard<'_, Vec<RosterPlace>> {
        self.places
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Put the loaded readers of the rooms `homes` selects back into their rosters with
    /// `put(book, place, user_id, username)`, those still kept (one that recovered already
    /// is back through its recovery). Each place is given once.
    pub fn restore_places(
        &self,
        homes: impl Fn(BookId) -> bool,
        mut put: impl FnMut(BookId, &SocketRef, &str, &str),
    ) {
        // The table's lock is held throughout: a recovery (`take`) is then wholly before
        // (the place is skipped) or wholly after (its home swaps the place for it).
        let table = self.table();
        let mut places = self.lock_places();
        places.retain(|p| {
            if !homes(p.book_id) {
                return true;
            }
            if table.by_pid.contains_key(&p.pid) {
                put(p.book_id, &p.place, &p.user_id, &p.username);
            }
            false
        });
    }

    /// When this table was made (a past instant: a wake-up at it is due at once).
    pub fn started(&self) -> Instant {
        self.epoch
    }

    /// How many readers are kept now.
    pub fn kept_count(&self) -> usize {
        self.table().by_pid.len()
    }
}

/// A fresh random pid from the operating system's generator (None if it fails, which leaves
/// the connection without recovery rather than with a guessable pid).
pub fn new_pid() -> Option<RandomId> {
    use base64::Engine;
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).ok()?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    RandomId::parse(&text)
}

/// A kept reader as the store holds it across a restart.
#[derive(Serialize, Deserialize)]
struct Saved {
    pid: String,
    sid: String,
    user_id: Option<String>,
    authenticated: bool,
    username: Option<String>,
    received: Vec<(u64, u64)>,
    runs: Vec<(u64, u64, u64)>,
    /// The window's end, in milliseconds since the Unix epoch.
    deadline_unix_ms: u64,
    /// Cluster mode: [`Kept::log_conn`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_conn: Option<String>,
}

/// Cluster mode: a connected reader as Redis holds it while it is connected (`rr:live:<node>`),
/// so that it can be recovered on another node if its node dies without seeing it drop. Its
/// node's delivery log dies with the node, so what the client had is known only from the
/// client's offset: a reader in one room is recovered exactly (everything of that room up to
/// the offset, or up to the join's history without one); one in several rooms is not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveRecord {
    pub sid: String,
    pub user_id: Option<String>,
    pub authenticated: bool,
    pub username: Option<String>,
    /// Its connection's name in the cluster's log (its place in the rosters).
    pub log_conn: String,
    /// The rooms it is in (book ids).
    pub rooms: Vec<u64>,
    /// With one room: the newest sequence the client had when it entered it (its join's
    /// history, or a recovery's replay point); None when unknown.
    pub floor: Option<u64>,
}

impl LiveRecord {
    /// The reader as a kept one whose `received` is exactly what the client had, given the
    /// reconnection's offset (absent: it handled no `newMessage`); None when that cannot be
    /// known exactly (several rooms, an offset of another room, a malformed offset).
    pub fn into_kept(
        self,
        offset: Option<Option<Offset>>,
        now: Instant,
        window: Duration,
    ) -> Option<Kept> {
        let received = match (self.rooms.as_slice(), offset) {
            ([], Some(None)) => return None,
            ([], _) => Vec::new(),
            ([room], None) => vec![(*room, self.floor?)],
            ([room], Some(Some(offset))) if offset.room == *room => {
                vec![(*room, offset.seq.max(self.floor.unwrap_or(0)))]
            }
            _ => return None,
        };
        Some(Kept {
            sid: RandomId::parse(&self.sid)?,
            user_id: self.user_id,
            authenticated: self.authenticated,
            username: self.username,
            delivered: Delivered {
                received,
                runs: Vec::new(),
            },
            roster_key: None,
            log_conn: Some(self.log_conn),
            deadline: now + window,
        })
    }
}

/// One kept reader as bytes (the JSON [`Recovery::save`] writes per reader), for cluster
/// mode's copy in Redis; read back with [`kept_from_bytes`].
pub fn kept_to_bytes(pid: RandomId, kept: &Kept, now: Instant) -> Vec<u8> {
    let saved = Saved::new(pid, kept.clone(), now, SystemTime::now());
    serde_json::to_vec(&saved).unwrap_or_default()
}

/// A kept reader from [`kept_to_bytes`]'s bytes, its window measured from `now`; None for
/// bytes that do not parse or a window that has ended.
pub fn kept_from_bytes(bytes: &[u8], now: Instant) -> Option<(RandomId, Kept)> {
    let saved: Saved = serde_json::from_slice(bytes).ok()?;
    saved.into_kept(now, SystemTime::now())
}

impl Saved {
    fn new(pid: RandomId, kept: Kept, now: Instant, wall: SystemTime) -> Saved {
        let left = kept.deadline.saturating_duration_since(now);
        let deadline = (wall + left)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        Saved {
            pid: pid.as_str().to_owned(),
            sid: kept.sid.as_str().to_owned(),
            user_id: kept.user_id,
            authenticated: kept.authenticated,
            username: kept.username,
            received: kept.delivered.received,
            runs: kept
                .delivered
                .runs
                .iter()
                .map(|r| (r.room, r.first, r.last))
                .collect(),
            deadline_unix_ms: deadline,
            log_conn: kept.log_conn,
        }
    }

    fn into_kept(self, now: Instant, wall: SystemTime) -> Option<(RandomId, Kept)> {
        let deadline = UNIX_EPOCH + Duration::from_millis(self.deadline_unix_ms);
        let left = deadline.duration_since(wall).ok()?;
        let pid = RandomId::parse(&self.pid)?;
        let sid = RandomId::parse(&self.sid)?;
        let runs = self
            .runs
            .into_iter()
            .map(|(room, first, last)| Run { room, first, last })
            .collect();
        Some((
            pid,
            Kept {
                sid,
                user_id: self.user_id,
                authenticated: self.authenticated,
                username: self.username,
                delivered: Delivered {
                    received: self.received,
                    runs,
                },
                roster_key: None,
                log_conn: self.log_conn,
                deadline: now + left,
            },
        ))
    }
}

/// The rooms of a kept reader, as book ids.
pub fn kept_books(kept: &Kept) -> impl Iterator<Item = BookId> + '_ {
    kept.delivered
        .received
        .iter()
        .map(|(room, _)| BookId(*room))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(deadline: Instant) -> Kept {
        Kept {
            sid: RandomId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap(),
            user_id: Some("u1".into()),
            authenticated: false,
            username: Some("Ann".into()),
            delivered: Delivered {
                received: vec![(7, 3)],
                runs: vec![Run {
                    room: 7,
                    first: 4,
                    last: 5,
                }],
            },
            roster_key: None,
            log_conn: None,
            deadline,
        }
    }

    #[test]
    fn a_kept_reader_is_taken_once_within_its_window() {
        let recovery = Recovery::new(Duration::from_secs(2));
        let now = Instant::now();
        let pid = new_pid().unwrap();
        recovery.keep(pid, kept(now + Duration::from_secs(2)));
        assert_eq!(recovery.next_due(), Some(now + Duration::from_secs(2)));
        assert!(recovery.take(pid, now).is_some());
        assert!(recovery.take(pid, now).is_none(), "a pid recovers once");
        assert!(
            recovery.take_due(now + Duration::from_secs(3)).is_empty(),
            "recovered: no window end"
        );
    }

    #[test]
    fn a_pid_still_live_makes_its_reconnection_wait_for_that_connections_end() {
        let recovery = Recovery::new(Duration::from_secs(2));
        let now = Instant::now();
        let pid = new_pid().unwrap();
        let (old, new) = ((0, SessionRef::new(1, 1)), (1, SessionRef::new(2, 1)));
        recovery.connected(pid, old);
        assert!(matches!(recovery.claim(pid, new, now), Claim::Live(conn) if conn == old));
        assert_eq!(
            recovery.connection_ended(pid, new),
            None,
            "only the live connection ends it"
        );
        // The old connection drops: it is kept, and the waiting reconnection is named.
        assert_eq!(recovery.connection_ended(pid, old), Some(new));
        recovery.keep(pid, kept(now + Duration::from_secs(2)));
        assert!(recovery.take(pid, now).is_some());
        assert_eq!(recovery.connection_ended(pid, old), None, "told once");
        assert!(matches!(recovery.claim(pid, new, now), Claim::Unknown));
    }

    #[test]
    fn window_ends_take_each_reader_once_and_expired_pids_do_not_recover() {
        let recovery = Recovery::new(Duration::from_secs(2));
        let now = Instant::now();
        let (a, b) = (new_pid().unwrap(), new_pid().unwrap());
        recovery.keep(a, kept(now + Duration::from_secs(1)));
        recovery.keep(b, kept(now + Duration::from_secs(5)));
        assert!(recovery.take_due(now).is_empty());
        assert_eq!(recovery.take_due(now + Duration::from_secs(1)).len(), 1);
        assert!(recovery.take_due(now + Duration::from_secs(1)).is_empty());
        assert!(recovery.take(a, now).is_none(), "ended");
        assert!(
            recovery.take(b, now + Duration::from_secs(5)).is_none(),
            "expired at its deadline"
        );
    }

    #[test]
    fn loaded_readers_get_roster_places_once_and_only_while_kept() {
        let before = Recovery::new(Duration::from_secs(60));
        let now = Instant::now();
        let (a, b) = (new_pid().unwrap(), new_pid().unwrap());
        before.keep(a, kept(now + Duration::from_secs(60)));
        before.keep(b, kept(now + Duration::from_secs(60)));
        let after = Recovery::new(Duration::from_secs(60));
        assert_eq!(after.load(&before.save(now), now), 2);
        let taken = after.take(a, now).unwrap();
        assert_eq!(taken.roster_key.as_ref().map(|k| k.shard), Some(KEPT_SHARD));
        let mut put = Vec::new();
        after.restore_places(
            |book| book == BookId(99),
            |_, _, _, _| panic!("not this home's"),
        );
        after.restore_places(
            |_| true,
            |book, place, user, name| {
                put.push((book, place.clone(), user.to_owned(), name.to_owned()))
            },
        );
        assert_eq!(put.len(), 1, "a recovered one is not put back: {put:?}");
        assert_eq!(put[0].0, BookId(7));
        assert_eq!((put[0].2.as_str(), put[0].3.as_str()), ("u1", "Ann"));
        assert_eq!(
            Some(&put[0].1),
            after.take(b, now).unwrap().roster_key.as_ref()
        );
        after.restore_places(|_| true, |_, _, _, _| panic!("given once"));
    }

    #[test]
    fn kept_readers_survive_a_save_and_load_with_their_window() {
        let before = Recovery::new(Duration::from_secs(60));
        let now = Instant::now();
        let pid = new_pid().unwrap();
        before.keep(pid, kept(now + Duration::from_secs(60)));
        before.keep(new_pid().unwrap(), kept(now));
        let bytes = before.save(now);
        assert_eq!(before.kept_count(), 0);
        let after = Recovery::new(Duration::from_secs(60));
        let later = Instant::now();
        assert_eq!(
            after.load(&bytes, later),
            1,
            "the one whose window had ended is dropped"
        );
        let back = after.take(pid, later).expect("kept across the restart");
        let mut expected = kept(back.deadline);
        expected.roster_key = back.roster_key.clone();
        assert_eq!(back, expected);
        assert_eq!(back.roster_key.map(|k| k.shard), Some(KEPT_SHARD));
        let left = back.deadline.saturating_duration_since(later);
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        assert_eq!(after.load(b"not json", later), 0);
    }
}
