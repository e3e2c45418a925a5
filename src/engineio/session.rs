//! One Engine.IO session's state: its transport, heartbeat, upgrade and outbound queue.
//!
//! Sans-IO (docs/ARCHITECTURE.md, principle 1): methods take the current time and decoded
//! input and say what the caller must do; the session owns no socket and reads no clock. The
//! server keeps the sockets (the parked polling GET, the WebSocket, the WebSocket being
//! probed) and maps each answer here to bytes on them.
//!
//! Call order for the I/O layer:
//! - a polling GET: [`Session::on_polling_get`]; a POST: [`Session::on_inbound`] for each
//!   decoded packet of the body;
//! - a WebSocket for this session: [`Session::begin_upgrade`], then its packets through
//!   [`Session::on_probe_packet`] until the upgrade completes, then [`Session::on_inbound`];
//! - something to send: [`Session::enqueue`] (only while not on WebSocket), then
//!   [`Session::take_polling_payload`] when a GET is parked;
//! - time: sleep until [`Session::next_deadline`], then call [`Session::on_timeout`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::packet::{EioPacket, Frame, NOOP, PING};
use super::violation::Violation;

/// Most packets in one polling response. The rest wait for the next GET, which the client
/// sends at once: python-engineio clients refuse payloads of more than 16 packets.
pub const MAX_PACKETS_PER_POLL: usize = 16;

/// The event loop sleeps in whole milliseconds (epoll), so timers run up to this much early
/// rather than late: a ping timeout then closes at its deadline, not a millisecond after it,
/// and a ping goes out on time.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Names one session on its shard across slot reuse: its slot in the shard's session table
/// and its generation (a slot reused by a later session gets a higher one), so a handle to a
/// session that has ended never reaches the next one in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionRef {
    pub(crate) key: usize,
    pub(crate) generation: u64,
}

impl SessionRef {
    /// A handle as the endpoint makes them. Applications get theirs from a `Socket`; build one
    /// only in tests and benches.
    pub fn new(key: usize, generation: u64) -> SessionRef {
        SessionRef { key, generation }
    }
}

/// Timing and size settings of a session (from the server's config).
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub upgrade_timeout: Duration,
    pub max_payload: usize,
}

/// The transport currently carrying the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Polling,
    WebSocket,
}

/// Where an upgrade from polling to WebSocket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    /// No WebSocket is attached for an upgrade.
    None,
    /// A WebSocket is attached but has not sent `2probe` yet.
    Attached { deadline: Instant },
    /// `3probe` was sent: polling GETs get `6`, and `5` completes the upgrade.
    Probed { deadline: Instant },
}

/// The heartbeat: v4 servers ping, clients pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heartbeat {
    PingAt(Instant),
    PongBy(Instant),
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent `1`.
    ClientClose,
    /// No `3` within pingTimeout of a ping.
    PingTimeout,
    /// The client broke the protocol (a bad packet, a client ping, a second GET): which
    /// rule it broke.
    ProtocolError(Violation),
    /// The transport went away (socket closed, WebSocket closed).
    TransportClose,
    /// The server closed it (shutdown, application request, limits).
    ServerClose,
}

impl CloseReason {
    /// The protocol rule broken, for a [`CloseReason::ProtocolError`].
    pub fn violation(self) -> Option<Violation> {
        match self {
            CloseReason::ProtocolError(violation) => Some(violation),
            _ => None,
        }
    }

    /// The reason string socket.io uses for `disconnect`.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client namespace disconnect",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ProtocolError(_) => "parse error",
            CloseReason::TransportClose => "transport close",
            CloseReason::ServerClose => "server shutting down",
        }
    }
}

/// The answer to a polling GET.
#[derive(Debug, PartialEq, Eq)]
pub enum GetOutcome {
    /// Answer at once with these frames as a payload.
    Respond(Vec<Frame>),
    /// Park the request until there is something to send.
    Hold,
    /// A GET is already parked: answer this one 400, answer the parked one with `1` and end
    /// the session.
    Conflict,
    /// The session is on WebSocket now: answer 400 (code 3, bad request).
    WrongTransport,
}

/// What an inbound packet means for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Nothing to do.
    Nothing,
    /// A text message for the layer above.
    Message(String),
    /// A binary message for the layer above.
    Binary(bytes::Bytes),
    /// End the session for this reason.
    Close(CloseReason),
}

/// What a packet on the WebSocket being probed means for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Send `3probe` on the WebSocket and answer a parked GET with `6`.
    SendProbeAnswer,
    /// The upgrade is complete: the session is on WebSocket now; answer a parked GET with
    /// `6`, then write every frame of [`Session::drain_queue`] to the WebSocket.
    Upgraded,
    /// Nothing to do.
    Nothing,
    /// The probe WebSocket broke the upgrade protocol: close it; the session stays on polling.
    AbortUpgrade,
}

/// What a deadline means for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum TimeoutOutcome {
    Nothing,
    /// A ping was queued (polling) or must be written (WebSocket: write [`PING`]).
    Ping,
    /// The upgrade took too long: close the probe WebSocket; the session stays on polling.
    UpgradeExpired,
    /// End the session.
    Close(CloseReason),
}

/// One Engine.IO session.
#[derive(Debug)]
pub struct Session {
    /// Shared by every session of a shard: one pointer per session, not 56 bytes.
    config: Arc<SessionConfig>,
    transport: Transport,
    upgrade: Upgrade,
    heartbeat: Heartbeat,
    /// Frames waiting for a polling GET (or for the upgrade to finish).
    queue: VecDeque<Frame>,
    queued_bytes: usize,
    get_parked: bool,
}

impl Session {
    /// A session opened on `transport` at `now`. The first ping is due one full pingInterval
    /// later.
    pub fn new(
        config: impl Into<Arc<SessionConfig>>,
        transport: Transport,
        now: Instant,
    ) -> Session {
        let config = config.into();
        let first_ping = now + config.ping_interval;
        Session {
            config,
            transport,
            upgrade: Upgrade::None,
            heartbeat: Heartbeat::PingAt(first_ping),
            queue: VecDeque::new(),
            queued_bytes: 0,
            get_parked: false,
        }
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Whether a WebSocket is attached for an upgrade (probed or not).
    pub fn is_upgrading(&self) -> bool {
        self.upgrade != Upgrade::None
    }

    pub fn get_parked(&self) -> bool {
        self.get_parked
    }

    /// Bytes waiting in the outbound queue (for the slow-reader limit).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// A polling GET arrived.
    pub fn on_polling_get(&mut self) -> GetOutcome {
        if self.transport == Transport::WebSocket {
            return GetOutcome::WrongTransport;
        }
        if self.get_parked {
            return GetOutcome::Conflict;
        }
        if let Upgrade::Probed { .. } = self.upgrade {
            return GetOutcome::Respond(vec![NOOP]);
        }
        if self.queue.is_empty() {
            self.get_parked = true;
            return GetOutcome::Hold;
        }
        GetOutcome::Respond(self.take_frames())
    }

    /// The parked GET went away (its connection closed) or was answered by the caller.
    pub fn release_get(&mut self) {
        self.get_parked = false;
    }

    /// Queue a frame for the polling transport (or for after the upgrade). Returns true when a
    /// GET is parked and should now be answered with [`Session::take_polling_payload`].
    pub fn enqueue(&mut self, frame: Frame) -> bool {
        self.queued_bytes += frame.polling_len() + 1;
        self.queue.push_back(frame);
        self.can_flush_polling()
    }

    /// Whether a parked GET can be answered now.
    pub fn can_flush_polling(&self) -> bool {
        self.get_parked
            && !self.queue.is_empty()
            && self.transport == Transport::Polling
            && !matches!(self.upgrade, Upgrade::Probed { .. })
    }

    /// The frames to answer the parked GET with (at most maxPayload bytes, at least one
    /// frame); the GET is no longer parked.
    pub fn take_polling_payload(&mut self) -> Vec<Frame> {
        self.get_parked = false;
        self.take_frames()
    }

    /// Everything queued, for writing to the WebSocket after the upgrade.
    pub fn drain_queue(&mut self) -> Vec<Frame> {
        self.queued_bytes = 0;
        self.queue.drain(..).collect()
    }

    fn take_frames(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut size = 0;
        while let Some(frame) = self.queue.front() {
            let len = frame.polling_len() + 1;
            let full = size + len > self.config.max_payload || frames.len() >= MAX_PACKETS_PER_POLL;
            if !frames.is_empty() && full {
                break;
            }
            size += len;
            self.queued_bytes = self.queued_bytes.saturating_sub(len);
            if let Some(frame) = self.queue.pop_front() {
                frames.push(frame);
            }
        }
        frames
    }

    /// A packet from the client on the session's current transport (a POST body's packets,
    /// or the WebSocket's once upgraded).
    pub fn on_inbound(&mut self, packet: EioPacket, now: Instant) -> Inbound {
        match packet {
            EioPacket::Message(text) => Inbound::Message(text),
            EioPacket::Binary(bytes) => Inbound::Binary(bytes),
            EioPacket::Pong(_) => {
                if let Heartbeat::PongBy(_) = self.heartbeat {
                    self.heartbeat = Heartbeat::PingAt(now + self.config.ping_interval);
                }
                Inbound::Nothing
            }
            EioPacket::Close => Inbound::Close(CloseReason::ClientClose),
            EioPacket::Noop => Inbound::Nothing,
            // v4 clients never ping; servers never receive open; `5` belongs on the probe.
            EioPacket::Ping(_) => Inbound::Close(CloseReason::ProtocolError(Violation::ClientPing)),
            EioPacket::Open(_) => Inbound::Close(CloseReason::ProtocolError(Violation::ClientOpen)),
            EioPacket::Upgrade => {
                Inbound::Close(CloseReason::ProtocolError(Violation::UpgradeOutsideProbe))
            }
        }
    }

    /// A WebSocket with this session's sid was accepted. Returns false when it must be
    /// refused: the session is already on WebSocket or another WebSocket is attached.
    pub fn begin_upgrade(&mut self, now: Instant) -> bool {
        if self.transport != Transport::Polling || self.upgrade != Upgrade::None {
            return false;
        }
        self.upgrade = Upgrade::Attached {
            deadline: now + self.config.upgrade_timeout,
        };
        true
    }

    /// A packet on the WebSocket attached for the upgrade.
    pub fn on_probe_packet(&mut self, packet: &EioPacket) -> ProbeOutcome {
        match (self.upgrade, packet) {
            (Upgrade::Attached { deadline }, EioPacket::Ping(payload)) if payload == "probe" => {
                self.upgrade = Upgrade::Probed { deadline };
                ProbeOutcome::SendProbeAnswer
            }
            (Upgrade::Probed { .. }, EioPacket::Upgrade) => {
                self.upgrade = Upgrade::None;
                self.transport = Transport::WebSocket;
                self.get_parked = false;
                ProbeOutcome::Upgraded
            }
            (Upgrade::Probed { .. }, EioPacket::Noop) => ProbeOutcome::Nothing,
            _ => {
                self.upgrade = Upgrade::None;
                ProbeOutcome::AbortUpgrade
            }
        }
    }

    /// The WebSocket attached for the upgrade closed before `5`: stay on polling.
    pub fn cancel_upgrade(&mut self) {
        self.upgrade = Upgrade::None;
    }

    /// The earliest instant at which [`Session::on_timeout`] has something to do.
    pub fn next_deadline(&self) -> Instant {
        let heartbeat = match self.heartbeat {
            Heartbeat::PingAt(at) | Heartbeat::PongBy(at) => at,
        };
        match self.upgrade {
            Upgrade::Attached { deadline } | Upgrade::Probed { deadline } => {
                heartbeat.min(deadline)
            }
            Upgrade::None => heartbeat,
        }
    }

    /// Time passed. Call when `now >= next_deadline()` (earlier calls are harmless).
    pub fn on_timeout(&mut self, now: Instant) -> TimeoutOutcome {
        if let Upgrade::Attached { deadline } | Upgrade::Probed { deadline } = self.upgrade {
            if now >= deadline {
                self.upgrade = Upgrade::None;
                return TimeoutOutcome::UpgradeExpired;
            }
        }
        match self.heartbeat {
            Heartbeat::PongBy(deadline) if now >= deadline => {
                TimeoutOutcome::Close(CloseReason::PingTimeout)
            }
            Heartbeat::PingAt(at) if now >= at => {
                // Count the timeout from when the ping was due if it goes out about on time,
                // so loop latency does not stretch the heartbeat.
                let sent = if now.saturating_duration_since(at) <= TIMER_SLACK {
                    at
                } else {
                    now
                };
                self.heartbeat = Heartbeat::PongBy(sent + self.config.ping_timeout);
                if self.transport == Transport::Polling {
                    // During an upgrade the ping waits in the queue and goes out on the
                    // WebSocket once the upgrade completes (never over polling meanwhile).
                    self.enqueue(PING);
                }
                TimeoutOutcome::Ping
            }
            _ => TimeoutOutcome::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SessionConfig {
        SessionConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            upgrade_timeout: Duration::from_millis(1000),
            max_payload: 20,
        }
    }

    fn polling(now: Instant) -> Session {
        Session::new(config(), Transport::Polling, now)
    }

    #[test]
    fn first_ping_is_one_full_interval_after_the_handshake() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.next_deadline(), t0 + Duration::from_millis(300));
        assert_eq!(
            s.on_timeout(t0 + Duration::from_millis(299)),
            TimeoutOutcome::Nothing
        );
        assert_eq!(
            s.on_timeout(t0 + Duration::from_millis(300)),
            TimeoutOutcome::Ping
        );
        assert_eq!(s.on_polling_get(), GetOutcome::Respond(vec![PING]));
    }

    #[test]
    fn missing_pong_closes_after_ping_timeout() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(s.on_timeout(t1), TimeoutOutcome::Ping);
        assert_eq!(s.next_deadline(), t1 + Duration::from_millis(200));
        assert_eq!(
            s.on_timeout(t1 + Duration::from_millis(200)),
            TimeoutOutcome::Close(CloseReason::PingTimeout)
        );
    }

    #[test]
    fn pong_schedules_the_next_ping_an_interval_later() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        let t1 = t0 + Duration::from_millis(300);
        s.on_timeout(t1);
        let t2 = t1 + Duration::from_millis(50);
        assert_eq!(
            s.on_inbound(EioPacket::Pong(String::new()), t2),
            Inbound::Nothing
        );
        assert_eq!(s.next_deadline(), t2 + Duration::from_millis(300));
    }

    #[test]
    fn get_is_held_until_a_frame_is_queued() {
        let mut s = polling(Instant::now());
        assert_eq!(s.on_polling_get(), GetOutcome::Hold);
        assert!(s.enqueue(Frame::message("hi")));
        assert_eq!(s.take_polling_payload(), vec![Frame::message("hi")]);
        assert!(!s.get_parked());
    }

    #[test]
    fn second_get_while_one_is_parked_is_a_conflict() {
        let mut s = polling(Instant::now());
        assert_eq!(s.on_polling_get(), GetOutcome::Hold);
        assert_eq!(s.on_polling_get(), GetOutcome::Conflict);
    }

    #[test]
    fn polling_payload_respects_max_payload_but_sends_at_least_one_frame() {
        let mut s = polling(Instant::now());
        s.enqueue(Frame::message("0123456789"));
        s.enqueue(Frame::message("0123456789"));
        s.enqueue(Frame::message("0123456789abcdefghijklmnop"));
        assert_eq!(
            s.on_polling_get(),
            GetOutcome::Respond(vec![Frame::message("0123456789")])
        );
        assert_eq!(s.on_polling_get().len_frames(), 1);
        assert_eq!(s.on_polling_get().len_frames(), 1);
        assert_eq!(s.queued_bytes(), 0);
    }

    #[test]
    fn polling_payload_holds_at_most_sixteen_packets() {
        let mut s = Session::new(
            SessionConfig {
                max_payload: 1_000_000,
                ..config()
            },
            Transport::Polling,
            Instant::now(),
        );
        for _ in 0..20 {
            s.enqueue(Frame::message("x"));
        }
        assert_eq!(s.on_polling_get().len_frames(), MAX_PACKETS_PER_POLL);
        assert_eq!(s.on_polling_get().len_frames(), 4);
    }

    #[test]
    fn upgrade_answers_gets_with_noop_and_switches_on_upgrade_packet() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.on_polling_get(), GetOutcome::Hold);
        assert!(s.begin_upgrade(t0));
        assert!(!s.begin_upgrade(t0), "a second WebSocket is refused");
        assert_eq!(
            s.on_probe_packet(&EioPacket::Ping("probe".into())),
            ProbeOutcome::SendProbeAnswer
        );
        s.release_get();
        assert_eq!(s.on_polling_get(), GetOutcome::Respond(vec![NOOP]));
        assert!(!s.enqueue(Frame::message("queued")), "no flush to polling");
        assert_eq!(
            s.on_probe_packet(&EioPacket::Upgrade),
            ProbeOutcome::Upgraded
        );
        assert_eq!(s.transport(), Transport::WebSocket);
        assert_eq!(s.drain_queue(), vec![Frame::message("queued")]);
        assert_eq!(s.on_polling_get(), GetOutcome::WrongTransport);
    }

    #[test]
    fn no_ping_goes_over_polling_during_an_upgrade() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.begin_upgrade(t0);
        s.on_probe_packet(&EioPacket::Ping("probe".into()));
        assert_eq!(s.on_polling_get(), GetOutcome::Respond(vec![NOOP]));
        assert_eq!(
            s.on_timeout(t0 + Duration::from_millis(300)),
            TimeoutOutcome::Ping
        );
        assert!(!s.can_flush_polling());
        assert_eq!(
            s.on_probe_packet(&EioPacket::Upgrade),
            ProbeOutcome::Upgraded
        );
        assert_eq!(s.drain_queue(), vec![PING]);
    }

    #[test]
    fn upgrade_expires_and_leaves_the_session_on_polling() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.begin_upgrade(t0);
        assert_eq!(
            s.on_timeout(t0 + Duration::from_millis(1000)),
            TimeoutOutcome::UpgradeExpired
        );
        assert!(!s.is_upgrading());
        assert_eq!(s.transport(), Transport::Polling);
    }

    #[test]
    fn probe_without_ping_probe_aborts_the_upgrade() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        s.begin_upgrade(t0);
        assert_eq!(
            s.on_probe_packet(&EioPacket::Upgrade),
            ProbeOutcome::AbortUpgrade
        );
        assert!(s.begin_upgrade(t0), "a new attempt may follow");
    }

    #[test]
    fn client_ping_is_a_protocol_error_in_v4() {
        let mut s = polling(Instant::now());
        assert_eq!(
            s.on_inbound(EioPacket::Ping(String::new()), Instant::now()),
            Inbound::Close(CloseReason::ProtocolError(Violation::ClientPing))
        );
    }

    impl GetOutcome {
        fn len_frames(&self) -> usize {
            match self {
                GetOutcome::Respond(f) => f.len(),
                _ => 0,
            }
        }
    }
}
