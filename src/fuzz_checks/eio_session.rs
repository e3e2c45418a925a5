//! The `eio_session` target: stateful fuzzing of the sans-IO Engine.IO session
//! (`engineio::session::Session`).
//!
//! The input chooses a config (durations of 0..=1023 ms, maxPayload of 0..=255 bytes), the
//! opening transport, then a sequence of operations, each a call of the session's own API in
//! the order its docs ask for (the way `endpoint::sessions` and `endpoint::websocket` call
//! it; the endpoint itself is fuzzed by the `endpoint` target):
//!
//! - a polling GET (a `Conflict` ends the session, as the server closes it);
//! - the parked GET's connection closing (`take_get`);
//! - sending 1..=4 frames while on polling (`enqueue` each, then answer the parked GET with
//!   `take_polling_payload` if `can_flush_polling`, like `send_frames` + `flush_polling`);
//! - an inbound packet (a POST, or a WebSocket message once upgraded) — `Close` outcomes end
//!   the session;
//! - a WebSocket attached for an upgrade (`begin_upgrade`), a packet on it
//!   (`on_probe_packet`, only while upgrading), its closing (`cancel_upgrade`);
//! - virtual time: advancing the clock and firing every due deadline like the timer loop
//!   (`on_timeout` while `now >= next_deadline()`, flushing after a ping), or a bare
//!   `on_timeout` call at the current instant (possibly early).
//!
//! Connections are numbered by the driver (the opening WebSocket is 0, then each GET and each
//! WebSocket attached for an upgrade gets the next number; no input byte is read for them), so
//! the session's handle type is `u32`. A small model of the documented behaviour rides along
//! (outbound queue contents, parked GET, upgrade state and deadline, heartbeat, which
//! connection carries what) and after every operation the session must agree:
//!
//! - the session holds exactly the model's connections: the parked GET (`parked_get`), the
//!   probe (`probe`), the WebSocket (`websocket_conn`); every handle it lets go of (a GET
//!   answered, the GET answered `6` at the probe and at the upgrade, the probe aborted,
//!   expired or cancelled, a refused WebSocket) is exactly the one the model says, and the
//!   probe becomes the WebSocket at the upgrade;
//! - `queued_bytes()` is exactly the sum of `polling_len() + 1` over the queued frames, so it
//!   is 0 whenever the queue was drained;
//! - frames leave the queue in FIFO order, none lost or duplicated; a GET answer is never
//!   empty, fits `max_payload` unless it is a single frame, holds at most
//!   `MAX_PACKETS_PER_POLL` frames, and stops early only when the next frame would not fit or
//!   that count is reached; while probed a GET is answered with exactly `6` and the queue
//!   stays;
//! - `enqueue` returns exactly `can_flush_polling()`, and a parked GET never starves: after
//!   the driver has done what the session told it, `can_flush_polling()` is false;
//! - `begin_upgrade` succeeds exactly on polling with no upgrade attached; the probe sequence
//!   is `2probe` → `SendProbeAnswer`, then `5` → `Upgraded`, `6` → `Nothing`, anything else
//!   aborts; after `Upgraded` the transport is WebSocket for good, `drain_queue` hands over
//!   the whole queue, polling GETs get `WrongTransport` and no GET is parked;
//! - `next_deadline()` is the earlier of the heartbeat deadline (first ping one pingInterval
//!   after the open, pingTimeout after a ping, one pingInterval after the pong answering it)
//!   and the upgrade deadline, and no operation at `now` moves it before `min(previous, now)`;
//! - `on_timeout(now)` does nothing (and changes nothing) before `next_deadline()`, always does
//!   something once it is due, and the timer loop settles within a few calls at one instant;
//!   a ping on polling queues exactly `2`, on WebSocket queues nothing.
//!
//! The input is read with [`Input`] (the byte layout of `arbitrary::Unstructured`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::input::Input;
use crate::engineio::packet::{EioPacket, Frame, CLOSE, NOOP, PING};
use crate::engineio::session::{
    CloseReason, GetOutcome, Inbound, ProbeOutcome, Session, SessionConfig, TimeoutOutcome,
    Transport, MAX_PACKETS_PER_POLL, TIMER_SLACK,
};

/// A connection, numbered by the driver.
type Conn = u32;
use crate::engineio::violation::Violation;

pub fn check(data: &[u8]) {
    run(&mut Input::new(data));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heartbeat {
    PingAt(Instant),
    PongBy(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    None,
    Attached(Conn, Instant),
    Probed(Conn, Instant),
}

impl Upgrade {
    fn conn(self) -> Option<Conn> {
        match self {
            Upgrade::Attached(conn, _) | Upgrade::Probed(conn, _) => Some(conn),
            Upgrade::None => None,
        }
    }
}

/// What the session should look like, from its documentation.
#[derive(Debug)]
struct Model {
    config: SessionConfig,
    transport: Transport,
    upgrade: Upgrade,
    heartbeat: Heartbeat,
    queue: VecDeque<Frame>,
    /// The parked GET's connection.
    get: Option<Conn>,
    /// The WebSocket carrying the session, once on WebSocket.
    websocket: Option<Conn>,
}

impl Model {
    fn queued_bytes(&self) -> usize {
        self.queue.iter().map(|f| f.polling_len() + 1).sum()
    }

    fn next_deadline(&self) -> Instant {
        let heartbeat = match self.heartbeat {
            Heartbeat::PingAt(at) | Heartbeat::PongBy(at) => at,
        };
        match self.upgrade {
            Upgrade::Attached(_, d) | Upgrade::Probed(_, d) => heartbeat.min(d),
            Upgrade::None => heartbeat,
        }
    }

    /// Check a polling answer against the queue and take its frames off the model's queue.
    fn take_answer(&mut self, frames: &[Frame]) {
        assert!(!frames.is_empty(), "a GET was answered with no frame");
        assert!(
            frames.len() <= self.queue.len(),
            "{frames:?} vs {:?}",
            self.queue
        );
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(
                Some(frame),
                self.queue.get(i),
                "frame {i} out of FIFO order"
            );
        }
        let size: usize = frames.iter().map(|f| f.polling_len() + 1).sum();
        let max = self.config.max_payload;
        assert!(
            frames.len() == 1 || size <= max,
            "{size} bytes > maxPayload {max}"
        );
        assert!(
            frames.len() <= MAX_PACKETS_PER_POLL,
            "{} packets in one answer",
            frames.len()
        );
        if let Some(next) = self.queue.get(frames.len()) {
            assert!(
                size + next.polling_len() + 1 > max || frames.len() == MAX_PACKETS_PER_POLL,
                "answer of {} frames, {size} bytes stopped although the next frame fits in {max}",
                frames.len()
            );
        }
        self.queue.drain(..frames.len());
    }
}

struct Driver {
    session: Session<Conn>,
    model: Model,
    now: Instant,
    /// The number of the next connection.
    next_conn: Conn,
}

/// The session ended (the server drops it); stop the run.
struct Ended;

fn run(u: &mut Input) {
    let config = SessionConfig {
        ping_interval: Duration::from_millis(u.u64_in(0, 1023)),
        ping_timeout: Duration::from_millis(u.u64_in(0, 1023)),
        upgrade_timeout: Duration::from_millis(u.u64_in(0, 1023)),
        max_payload: usize::from(u.byte()),
    };
    let transport = if u.ratio(1, 4) {
        Transport::WebSocket
    } else {
        Transport::Polling
    };
    let t0 = Instant::now();
    let (session, websocket) = match transport {
        Transport::WebSocket => (Session::websocket(config, 0, t0), Some(0)),
        Transport::Polling => (Session::polling(config, t0), None),
    };
    let mut d = Driver {
        session,
        model: Model {
            config,
            transport,
            upgrade: Upgrade::None,
            heartbeat: Heartbeat::PingAt(t0 + config.ping_interval),
            queue: VecDeque::new(),
            get: None,
            websocket,
        },
        now: t0,
        next_conn: 1,
    };
    d.check();
    while !u.is_empty() {
        let before = d.session.next_deadline();
        if d.step(u).is_err() {
            break;
        }
        d.check();
        let after = d.session.next_deadline();
        assert!(
            after >= before.min(d.now),
            "next_deadline moved into the past: {before:?} -> {after:?} at {:?}",
            d.now
        );
    }
}

impl Driver {
    /// The invariants that hold between operations.
    fn check(&self) {
        let (s, m) = (&self.session, &self.model);
        assert_eq!(s.transport(), m.transport);
        assert_eq!(s.is_upgrading(), m.upgrade != Upgrade::None, "{m:?}");
        assert_eq!(s.get_parked(), m.get.is_some(), "{m:?}");
        assert_eq!(s.parked_get(), m.get.as_ref(), "{m:?}");
        assert_eq!(s.probe(), m.upgrade.conn().as_ref(), "{m:?}");
        assert_eq!(s.websocket_conn(), m.websocket.as_ref(), "{m:?}");
        assert_eq!(s.queued_bytes(), m.queued_bytes(), "{m:?}");
        assert_eq!(s.next_deadline(), m.next_deadline(), "{m:?}");
        assert!(
            !s.can_flush_polling(),
            "a parked GET starves with frames queued: {m:?}"
        );
        if m.transport == Transport::WebSocket {
            assert!(m.queue.is_empty() && m.get.is_none() && m.upgrade == Upgrade::None);
        }
    }

    fn new_conn(&mut self) -> Conn {
        let conn = self.next_conn;
        self.next_conn += 1;
        conn
    }

    fn step(&mut self, u: &mut Input) -> Result<(), Ended> {
        match u.u8_in(0, 9) {
            0 => self.polling_get(),
            1 => {
                let got = self.session.take_get();
                assert_eq!(got, self.model.get.take(), "the GET let go of");
                Ok(())
            }
            2 => {
                let n = u.usize_in(1, 4);
                let mut frames = Vec::with_capacity(n);
                for _ in 0..n {
                    frames.push(arbitrary_frame(u));
                }
                self.send_frames(&frames);
                Ok(())
            }
            3 => {
                let packet = arbitrary_packet(u);
                self.inbound(packet)
            }
            4 => {
                self.begin_upgrade();
                Ok(())
            }
            5 => {
                let packet = arbitrary_packet(u);
                self.probe_packet(&packet);
                Ok(())
            }
            6 => {
                let probe = self.session.cancel_upgrade();
                assert_eq!(probe, self.model.upgrade.conn(), "the probe cancelled");
                self.model.upgrade = Upgrade::None;
                Ok(())
            }
            7 => {
                let ms = u.u64_in(0, 2047);
                self.now += Duration::from_millis(ms);
                self.fire_timers()
            }
            8 => {
                // A small step, to land just before or at deadlines more often.
                let ms = u.u64_in(0, 15);
                self.now += Duration::from_millis(ms);
                self.fire_timers()
            }
            _ => self.timeout().map(|_| ()),
        }
    }

    fn polling_get(&mut self) -> Result<(), Ended> {
        let conn = self.new_conn();
        let outcome = self.session.on_polling_get(conn);
        let m = &mut self.model;
        match outcome {
            GetOutcome::WrongTransport => {
                assert_eq!(m.transport, Transport::WebSocket);
            }
            _ if m.transport == Transport::WebSocket => {
                panic!("a polling GET on WebSocket got {outcome:?}")
            }
            GetOutcome::Conflict => {
                assert!(m.get.is_some(), "Conflict with no GET parked");
                // The server answers 400 and closes the session.
                return Err(Ended);
            }
            _ if m.get.is_some() => panic!("a second GET got {outcome:?}"),
            GetOutcome::Respond(frames) => {
                if let Upgrade::Probed(..) = m.upgrade {
                    assert_eq!(frames, vec![NOOP], "a GET while probed");
                } else {
                    m.take_answer(&frames);
                }
            }
            GetOutcome::Hold => {
                assert!(
                    !matches!(m.upgrade, Upgrade::Probed(..)),
                    "GET held while probed"
                );
                assert!(m.queue.is_empty(), "GET held with frames queued");
                m.get = Some(conn);
            }
        }
        Ok(())
    }

    /// Enqueue on polling, then flush (as `endpoint::sessions::send_frames`) (on WebSocket frames bypass the session).
    fn send_frames(&mut self, frames: &[Frame]) {
        if self.model.transport == Transport::WebSocket {
            return;
        }
        for frame in frames {
            let flush = self.session.enqueue(frame.clone());
            self.model.queue.push_back(frame.clone());
            assert_eq!(flush, self.session.can_flush_polling());
            assert_eq!(self.session.queued_bytes(), self.model.queued_bytes());
        }
        self.flush_polling();
    }

    /// Answer the parked GET when the session says so (as `endpoint::sessions::flush_polling`).
    fn flush_polling(&mut self) {
        if !self.session.can_flush_polling() {
            assert!(self.session.take_polling_payload().is_none());
            return;
        }
        assert!(self.model.get.is_some() && !self.model.queue.is_empty());
        let (get, frames) = self
            .session
            .take_polling_payload()
            .expect("a payload when can_flush_polling");
        self.model.take_answer(&frames);
        assert_eq!(Some(get), self.model.get.take(), "the GET answered");
    }

    fn inbound(&mut self, packet: EioPacket) -> Result<(), Ended> {
        let outcome = self.session.on_inbound(packet.clone(), self.now);
        let m = &mut self.model;
        match (&packet, outcome) {
            (EioPacket::Message(a), Inbound::Message(b)) => assert_eq!(*a, b),
            (EioPacket::Binary(a), Inbound::Binary(b)) => assert_eq!(*a, b),
            (EioPacket::Pong(_), Inbound::Pong) => {
                assert!(
                    matches!(m.heartbeat, Heartbeat::PongBy(_)),
                    "a pong answers a ping only when one is in flight"
                );
                m.heartbeat = Heartbeat::PingAt(self.now + m.config.ping_interval);
            }
            (EioPacket::Pong(_), Inbound::Nothing) => {
                assert!(
                    !matches!(m.heartbeat, Heartbeat::PongBy(_)),
                    "the pong of the ping in flight is reported"
                );
            }
            (EioPacket::Noop, Inbound::Nothing) => {}
            (EioPacket::Close, Inbound::Close(CloseReason::ClientClose)) => return Err(Ended),
            (
                EioPacket::Ping(_),
                Inbound::Close(CloseReason::ProtocolError(Violation::ClientPing)),
            )
            | (
                EioPacket::Open(_),
                Inbound::Close(CloseReason::ProtocolError(Violation::ClientOpen)),
            )
            | (
                EioPacket::Upgrade,
                Inbound::Close(CloseReason::ProtocolError(Violation::UpgradeOutsideProbe)),
            ) => return Err(Ended),
            (packet, outcome) => panic!("inbound {packet:?} gave {outcome:?}"),
        }
        Ok(())
    }

    fn begin_upgrade(&mut self) {
        let conn = self.new_conn();
        let result = self.session.begin_upgrade(self.now, conn);
        let m = &mut self.model;
        let expected = m.transport == Transport::Polling && m.upgrade == Upgrade::None;
        assert_eq!(result.is_ok(), expected, "begin_upgrade in {m:?}");
        match result {
            Ok(()) => m.upgrade = Upgrade::Attached(conn, self.now + m.config.upgrade_timeout),
            Err(refused) => assert_eq!(refused, conn, "the refused WebSocket"),
        }
    }

    /// A packet on the probe WebSocket (as `endpoint::websocket::on_probe_packet`); only while
    /// one is attached.
    fn probe_packet(&mut self, packet: &EioPacket) {
        if self.model.upgrade == Upgrade::None {
            return;
        }
        let outcome = self.session.on_probe_packet(packet);
        let m = &mut self.model;
        match (m.upgrade, packet, outcome) {
            (
                Upgrade::Attached(conn, d),
                EioPacket::Ping(p),
                ProbeOutcome::SendProbeAnswer { get },
            ) if p == "probe" => {
                m.upgrade = Upgrade::Probed(conn, d);
                // The server answers the parked GET the session let go of with `6`.
                assert_eq!(get, m.get.take(), "the GET answered at the probe");
            }
            (Upgrade::Probed(conn, _), EioPacket::Upgrade, ProbeOutcome::Upgraded { get }) => {
                m.upgrade = Upgrade::None;
                m.transport = Transport::WebSocket;
                m.websocket = Some(conn);
                assert_eq!(get, m.get.take(), "the GET answered at the upgrade");
                assert!(
                    !self.session.get_parked(),
                    "GET still parked after the upgrade"
                );
                assert_eq!(self.session.websocket_conn(), Some(&conn));
                let drained = self.session.drain_queue();
                assert_eq!(drained, Vec::from(std::mem::take(&mut m.queue)));
                assert_eq!(self.session.queued_bytes(), 0);
                assert_eq!(self.session.transport(), Transport::WebSocket);
                let get = self.next_conn;
                self.next_conn += 1;
                assert_eq!(self.session.on_polling_get(get), GetOutcome::WrongTransport);
                let again = self.next_conn;
                self.next_conn += 1;
                assert_eq!(self.session.begin_upgrade(self.now, again), Err(again));
            }
            (Upgrade::Probed(..), EioPacket::Noop, ProbeOutcome::Nothing) => {}
            (_, _, ProbeOutcome::AbortUpgrade(probe)) => {
                assert_eq!(Some(probe), m.upgrade.conn(), "the probe aborted");
                let ok_first = matches!(
                    (m.upgrade, packet),
                    (Upgrade::Attached(..), EioPacket::Ping(p)) if p == "probe"
                );
                let ok_probed = matches!(
                    (m.upgrade, packet),
                    (Upgrade::Probed(..), EioPacket::Upgrade | EioPacket::Noop)
                );
                assert!(
                    !ok_first && !ok_probed,
                    "{packet:?} aborted the upgrade in {m:?}"
                );
                m.upgrade = Upgrade::None;
                assert_eq!(self.session.transport(), Transport::Polling);
            }
            (state, packet, outcome) => {
                panic!("probe packet {packet:?} in {state:?} gave {outcome:?}")
            }
        }
    }

    /// One `on_timeout` at `self.now`, checked against the model.
    fn timeout(&mut self) -> Result<TimeoutOutcome<Conn>, Ended> {
        let due = self.now >= self.session.next_deadline();
        let outcome = self.session.on_timeout(self.now);
        let now = self.now;
        let m = &mut self.model;
        let expected = match (m.upgrade, m.heartbeat) {
            (Upgrade::Attached(conn, d) | Upgrade::Probed(conn, d), _) if now >= d => {
                m.upgrade = Upgrade::None;
                TimeoutOutcome::UpgradeExpired(conn)
            }
            (_, Heartbeat::PongBy(d)) if now >= d => {
                TimeoutOutcome::Close(CloseReason::PingTimeout)
            }
            (_, Heartbeat::PingAt(at)) if now >= at => {
                // The timeout counts from when the ping was due if it goes out within
                // TIMER_SLACK of that, else from now.
                let sent = if now.saturating_duration_since(at) <= TIMER_SLACK {
                    at
                } else {
                    now
                };
                m.heartbeat = Heartbeat::PongBy(sent + m.config.ping_timeout);
                if m.transport == Transport::Polling {
                    m.queue.push_back(PING);
                }
                TimeoutOutcome::Ping
            }
            _ => TimeoutOutcome::Nothing,
        };
        assert_eq!(outcome, expected, "on_timeout at {now:?} in {m:?}");
        assert_eq!(
            due,
            outcome != TimeoutOutcome::Nothing,
            "due vs {outcome:?}"
        );
        match outcome {
            TimeoutOutcome::Close(_) => Err(Ended),
            TimeoutOutcome::Ping => {
                // Polling: the ping waits in the queue; answer a parked GET with it.
                self.flush_polling();
                Ok(outcome)
            }
            _ => Ok(outcome),
        }
    }

    /// The timer loop: call `on_timeout` while a deadline is due. It must settle: an expired
    /// upgrade, a ping, and (with pingTimeout 0) the ping timeout are all it can do at once.
    fn fire_timers(&mut self) -> Result<(), Ended> {
        for _ in 0..4 {
            if self.now < self.session.next_deadline() {
                return Ok(());
            }
            self.timeout()?;
            self.check();
        }
        panic!(
            "the timer loop does not settle at one instant: {:?}",
            self.model
        );
    }
}

fn arbitrary_text(u: &mut Input) -> String {
    u.text_up_to(48)
}

fn arbitrary_frame(u: &mut Input) -> Frame {
    match u.u8_in(0, 5) {
        0 => Frame::message(&arbitrary_text(u)),
        1 => Frame::Binary(Bytes::copy_from_slice(u.bytes_up_to(64))),
        2 => PING,
        3 => NOOP,
        4 => CLOSE,
        _ => Frame::text(b'0' + u.u8_in(0, 6), arbitrary_text(u).as_bytes()),
    }
}

fn arbitrary_packet(u: &mut Input) -> EioPacket {
    match u.u8_in(0, 8) {
        0 => EioPacket::Open(arbitrary_text(u)),
        1 => EioPacket::Close,
        // `2probe` is what a probe WebSocket sends; make it common.
        2 => EioPacket::Ping("probe".into()),
        3 => EioPacket::Ping(arbitrary_text(u)),
        4 => EioPacket::Pong(if u.bool() {
            "probe".into()
        } else {
            arbitrary_text(u)
        }),
        5 => EioPacket::Message(arbitrary_text(u)),
        6 => EioPacket::Binary(Bytes::copy_from_slice(u.bytes_up_to(64))),
        7 => EioPacket::Upgrade,
        _ => EioPacket::Noop,
    }
}
