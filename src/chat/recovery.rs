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
use crate::engineio::sid::RandomId;
use crate::socketio::handler::SocketRef;
use crate::socketio::recovery::{Delivered, Run};

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
    /// Its place in the rooms' rosters (None once loaded after a restart: rosters are new).
    pub roster_key: Option<SocketRef>,
    /// When its window ends.
    pub deadline: Instant,
}

/// The kept readers, by pid, with their window ends in order.
#[derive(Default)]
struct Table {
    by_pid: HashMap<RandomId, Kept>,
    due: BinaryHeap<Reverse<(Instant, RandomId)>>,
}

/// The recovery state every shard shares.
pub struct Recovery {
    /// `--recovery-window`.
    pub window: Duration,
    table: Mutex<Table>,
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
    pub fn load(&self, bytes: &[u8], now: Instant) -> usize {
        let Ok(saved) = serde_json::from_slice::<Vec<Saved>>(bytes) else {
            return 0;
        };
        let wall = SystemTime::now();
        let mut count = 0;
        for entry in saved {
            if let Some((pid, kept)) = entry.into_kept(now, wall) {
                self.keep(pid, kept);
                count += 1;
            }
        }
        count
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
        expected.roster_key = None;
        assert_eq!(back, expected);
        let left = back.deadline.saturating_duration_since(later);
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        assert_eq!(after.load(b"not json", later), 0);
    }
}
