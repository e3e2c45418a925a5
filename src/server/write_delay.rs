//! The write delay (`--write-delay`, [`crate::config::ServerConfig::write_delay`]): broadcast
//! output for a connection may wait up to that long so that frames for it coalesce into one
//! write (Centrifugo's `client.write_delay` is the model).
//!
//! This module owns the shard's queue of connections waiting to be written, in deadline order
//! (one fixed delay, so pushing at the back keeps the order), and the timer that wakes the
//! shard for the queue's front: a `timerfd` (CLOCK_MONOTONIC, the clock of `Instant`)
//! registered with the shard's poll. The shard's other deadlines wake it through epoll's
//! timeout, which counts whole milliseconds; a delay of 250 µs needs a finer clock.
//!
//! It never writes, reads or closes a connection and knows nothing of what a connection
//! carries: the shard decides which output waits (`Shard::mark_dirty`) and writes what this
//! queue hands back ([`WriteDelays::pop_due`]). With a delay of zero (the default) it holds
//! no timer and nothing ever waits.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// Connections whose output waits, and the timer for the first of them.
pub struct WriteDelays {
    /// How long output may wait; zero: nothing waits.
    delay: Duration,
    /// (write by, connection key), oldest first. An entry is stale (skipped by the shard)
    /// when its connection's `write_by` is no longer that instant: it was written meanwhile.
    queue: VecDeque<(Instant, usize)>,
    /// The timerfd, present when `delay` is not zero.
    timer: Option<OwnedFd>,
    /// The deadline the timer is set for, if it is set.
    armed_for: Option<Instant>,
    /// When the shard's current loop turn began: output queued in a turn waits until this
    /// plus the delay, so a broadcast's connections share one deadline and are written by
    /// one wake-up (a deadline per connection, microseconds apart, could leave the last few
    /// for a wake-up of their own).
    turn_began: Instant,
}

impl WriteDelays {
    /// A queue for `delay`; with a non-zero delay, its timer registered with `registry` under
    /// `token`. Errors: the timerfd could not be made or registered.
    pub fn new(delay: Duration, registry: &Registry, token: Token) -> io::Result<WriteDelays> {
        let timer = if delay.is_zero() {
            None
        } else {
            // SAFETY: timerfd_create takes no pointers; a negative result is an error.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a fresh descriptor this process owns and nothing else holds.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
            Some(fd)
        };
        Ok(WriteDelays {
            delay,
            queue: VecDeque::new(),
            timer,
            armed_for: None,
            turn_began: Instant::now(),
        })
    }

    /// Whether output may wait at all (a non-zero delay).
    pub fn is_on(&self) -> bool {
        self.timer.is_some()
    }

    /// A loop turn begins `now` (when the shard's poll returned).
    pub fn begin_turn(&mut self, now: Instant) {
        self.turn_began = now;
    }

    /// Queue connection `key`, whose output starts waiting in this turn; returns when it must
    /// be written by (the turn's beginning plus the delay: at most the delay from now).
    pub fn push(&mut self, key: usize) -> Instant {
        let at = self.turn_began + self.delay;
        self.queue.push_back((at, key));
        at
    }

    /// The next entry due by `now` (every entry, whatever its deadline, when `all`).
    pub fn pop_due(&mut self, now: Instant, all: bool) -> Option<(Instant, usize)> {
        match self.queue.front() {
            Some(&(at, _)) if all || at <= now => self.queue.pop_front(),
            _ => None,
        }
    }

    /// Before the shard sleeps: set the timer for the queue's front unless it is set for it
    /// already (one `timerfd_settime` per front, so at most one per loop turn).
    pub fn arm(&mut self, now: Instant) {
        let (Some(timer), Some(&(at, _))) = (self.timer.as_ref(), self.queue.front()) else {
            return;
        };
        if self.armed_for.is_some_and(|armed| armed <= at) {
            return;
        }
        // A zero it_value disarms a timerfd: a deadline already passed fires in 1 ns.
        let left = at
            .saturating_duration_since(now)
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd, a stack itimerspec, and no old value asked for.
        let set =
            unsafe { libc::timerfd_settime(timer.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if set == 0 {
            self.armed_for = Some(at);
        }
    }

    /// The timer fired. Its expiry count is not read (a `read` per wake-up saved): mio
    /// registers the timerfd edge-triggered, so every expiry is a new event whether or not the
    /// count was read, and the next `timerfd_settime` resets the count (timerfd_create(2):
    /// `read` returns the expirations "since its settings were last modified using
    /// timerfd_settime(), or since the last successful read").
    pub fn on_timer(&mut self) {
        self.armed_for = None;
    }
}
