//! Connection state recovery's transport side: which sequenced broadcasts a session was sent,
//! and which of them its client surely has.
//!
//! Socket.IO's recovery (socket.io 4.6+, `connectionStateRecovery`) lets a client that lost
//! its connection come back with `{ pid, offset }` in its CONNECT, `offset` being the last
//! argument of the last event it handled. socket.io answers from an in-memory buffer of
//! packets; an application here replays from its own ordered log instead, and needs to know
//! exactly what the dropped client had received. This module keeps that, per session, with
//! the rule TCP gives for free: when the client answers a ping, it has read everything written
//! before that ping.
//!
//! - Each delivery of a broadcast that carries a room sequence to a numbered room is logged,
//!   in delivery order, as runs of one room ([`DeliveryLog`]).
//! - When a ping is sent, the log is marked; when its pong comes back, every run before the
//!   mark is folded into the session's per-room "surely received" sequence and dropped. So
//!   the log holds only what was written since the last answered ping: at most a ping
//!   interval's worth of deliveries, one run per change of room.
//! - At a drop, [`Delivered`] is the snapshot: per room the sequence surely received, and
//!   the runs after it. [`Delivered::received_through`] applies the client's offset (the
//!   exact cut in those runs) and gives, per room, the newest sequence the client has.
//!
//! Owns only that bookkeeping: it sends nothing, keeps no sockets, and never decides whether a
//! session may be recovered (the application does).

/// Whether a socket that left for `reason` (a `Handler::on_disconnect` reason) may be
/// recovered: the drops socket.io's server lists as recoverable (`transport close`,
/// `transport error`, `ping timeout`, `server shutting down`, socket.io's
/// `RECOVERABLE_DISCONNECT_REASONS`), but not `forced server close`, which here is a close the
/// server chose (an application's request such as a token's expiry, a limit), nor a client's
/// own `disconnect()` nor a protocol error.
pub fn recoverable(reason: &str) -> bool {
    matches!(
        reason,
        "transport close" | "transport error" | "ping timeout" | "server shutting down"
    )
}

/// A room and a sequence in it: what an offset names (`"<room>:<seq>"` on the wire, e.g.
/// `"2701:42"`, the same bytes for every recipient of the broadcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    pub room: u64,
    pub seq: u64,
}

impl Offset {
    /// `"<room>:<seq>"`, both decimal without sign or leading `+`; None for anything else
    /// (an offset comes from the client and may be anything).
    pub fn parse(text: &str) -> Option<Offset> {
        let (room, seq) = text.split_once(':')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(room) || !digits(seq) {
            return None;
        }
        Some(Offset {
            room: room.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.room, self.seq)
    }
}

/// Consecutive deliveries to one room: sequences `first..=last` (not all of them need have
/// been sent; a member skips nothing, but the run only needs its bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub room: u64,
    pub first: u64,
    pub last: u64,
}

/// No ping is waiting for its pong.
const NO_MARK: u32 = u32::MAX;

/// One session's deliveries since its client last answered a ping, in delivery order.
#[derive(Debug)]
pub struct DeliveryLog {
    runs: Vec<Run>,
    /// How many runs were written before the ping in flight ([`NO_MARK`]: none in flight).
    mark: u32,
}

impl Default for DeliveryLog {
    fn default() -> Self {
        DeliveryLog {
            runs: Vec::new(),
            mark: NO_MARK,
        }
    }
}

impl DeliveryLog {
    /// A broadcast with sequence `seq` of numbered room `room` was written to the session.
    pub fn delivered(&mut self, room: u64, seq: u64) {
        let mark = self.mark as usize;
        let after_mark = self.mark == NO_MARK || self.runs.len() > mark;
        match self.runs.last_mut() {
            // A run never spans the mark: what is before it is confirmed by the pong alone.
            Some(run) if run.room == room && after_mark => run.last = seq,
            _ => self.runs.push(Run {
                room,
                first: seq,
                last: seq,
            }),
        }
    }

    /// A ping was written after everything logged so far.
    pub fn ping_sent(&mut self) {
        self.mark = u32::try_from(self.runs.len()).unwrap_or(NO_MARK - 1);
    }

    /// The pong of the ping in flight arrived: the runs written before it are surely
    /// received. Calls `received(room, seq)` for each (in order) and forgets them.
    pub fn pong_received(&mut self, mut received: impl FnMut(u64, u64)) {
        if self.mark == NO_MARK {
            return;
        }
        let confirmed = (self.mark as usize).min(self.runs.len());
        for run in self.runs.drain(..confirmed) {
            received(run.room, run.last);
        }
        self.mark = NO_MARK;
    }

    /// The runs not yet confirmed, in delivery order.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Forget everything (the memory goes too).
    pub fn clear(&mut self) {
        self.runs = Vec::new();
        self.mark = NO_MARK;
    }
}

/// A dropped session's deliveries: what its application needs to replay exactly the missed
/// broadcasts when the client comes back with an offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Per numbered room the session was in: the newest sequence its client surely has (its
    /// join's floor, raised at each answered ping).
    pub received: Vec<(u64, u64)>,
    /// Deliveries after that, in delivery order.
    pub runs: Vec<Run>,
}

/// Why [`Delivered::received_through`] cannot place an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetError {
    /// The offset names a sequence of one of the session's rooms that the session was never
    /// sent: not an offset this server gave this session.
    NeverSent,
}

impl Delivered {
    /// Per room of `received`, the newest sequence the client has, given the offset of the
    /// last event it handled (None when it handled none since connecting).
    ///
    /// Everything written before the run holding the offset, and that run up to the offset,
    /// reached the client (one TCP stream, in order); nothing after the offset is counted.
    /// An offset found in no run is older than the last answered ping, or names a room the
    /// session left: the client then has exactly `received`. An offset beyond what the
    /// session was sent in one of its rooms is an error: no replay can be exact.
    pub fn received_through(&self, offset: Option<Offset>) -> Result<Vec<(u64, u64)>, OffsetError> {
        let mut through = self.received.clone();
        let Some(offset) = offset else {
            return Ok(through);
        };
        let cut = self
            .runs
            .iter()
            .position(|r| r.room == offset.room && r.first <= offset.seq && offset.seq <= r.last);
        let Some(cut) = cut else {
            let sent_up_to = self
                .runs
                .iter()
                .filter(|r| r.room == offset.room)
                .map(|r| r.last)
                .chain(
                    self.received
                        .iter()
                        .filter(|r| r.0 == offset.room)
                        .map(|r| r.1),
                )
                .max();
            return match sent_up_to {
                Some(sent) if offset.seq > sent => Err(OffsetError::NeverSent),
                _ => Ok(through),
            };
        };
        let raise = |through: &mut Vec<(u64, u64)>, room: u64, seq: u64| {
            if let Some(entry) = through.iter_mut().find(|(r, _)| *r == room) {
                entry.1 = entry.1.max(seq);
            }
        };
        for run in self.runs.iter().take(cut) {
            raise(&mut through, run.room, run.last);
        }
        raise(&mut through, offset.room, offset.seq);
        Ok(through)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(room: u64, first: u64, last: u64) -> Run {
        Run { room, first, last }
    }

    #[test]
    fn offsets_are_room_colon_sequence_and_nothing_else() {
        assert_eq!(
            Offset::parse("2701:42"),
            Some(Offset {
                room: 2701,
                seq: 42
            })
        );
        assert_eq!(Offset { room: 7, seq: 0 }.to_string(), "7:0");
        for bad in [
            "",
            ":",
            "1:",
            ":1",
            "1:2:3",
            "-1:2",
            "+1:2",
            "1: 2",
            "a:1",
            "99999999999999999999999:1",
            "1:18446744073709551616",
        ] {
            assert_eq!(Offset::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn deliveries_are_runs_per_room_that_never_span_a_ping() {
        let mut log = DeliveryLog::default();
        log.delivered(1, 5);
        log.delivered(1, 6);
        log.delivered(2, 3);
        log.delivered(1, 7);
        assert_eq!(log.runs(), [run(1, 5, 6), run(2, 3, 3), run(1, 7, 7)]);
        log.ping_sent();
        log.delivered(1, 8);
        assert_eq!(log.runs().len(), 4, "a run is not extended across the mark");
        let mut confirmed = Vec::new();
        log.pong_received(|room, seq| confirmed.push((room, seq)));
        assert_eq!(confirmed, [(1, 6), (2, 3), (1, 7)]);
        assert_eq!(log.runs(), [run(1, 8, 8)]);
        log.pong_received(|_, _| panic!("no ping in flight: nothing is confirmed"));
        log.delivered(1, 9);
        assert_eq!(
            log.runs(),
            [run(1, 8, 9)],
            "after the pong runs merge again"
        );
    }

    #[test]
    fn the_offset_cuts_the_runs_exactly() {
        let delivered = Delivered {
            received: vec![(1, 4), (2, 2), (3, 10)],
            runs: vec![run(1, 5, 6), run(2, 3, 5), run(1, 7, 9)],
        };
        // The client handled 2:4: it has room 1 up to 6 (written before), room 2 up to 4,
        // and nothing of the later run of room 1.
        assert_eq!(
            delivered.received_through(Some(Offset { room: 2, seq: 4 })),
            Ok(vec![(1, 6), (2, 4), (3, 10)])
        );
        assert_eq!(
            delivered.received_through(Some(Offset { room: 1, seq: 8 })),
            Ok(vec![(1, 8), (2, 5), (3, 10)])
        );
        // An offset from before the last answered ping, none at all, or one of a room left:
        // exactly what was confirmed.
        for offset in [
            Some(Offset { room: 1, seq: 3 }),
            None,
            Some(Offset { room: 9, seq: 99 }),
        ] {
            assert_eq!(
                delivered.received_through(offset),
                Ok(vec![(1, 4), (2, 2), (3, 10)])
            );
        }
        // Beyond anything sent in a room of the session: refused, never guessed.
        assert_eq!(
            delivered.received_through(Some(Offset { room: 1, seq: 10 })),
            Err(OffsetError::NeverSent)
        );
        assert_eq!(
            delivered.received_through(Some(Offset { room: 3, seq: 11 })),
            Err(OffsetError::NeverSent)
        );
    }
}
