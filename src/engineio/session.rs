//! One Engine.IO session's state: its transport and the connections carrying it, heartbeat,
//! upgrade and outbound queue.
//!
//! Sans-IO (docs/ARCHITECTURE.md, principle 1): methods take the current time and decoded
//! input and say what the caller must do; the session owns no socket and reads no clock. The
//! session is generic over the caller's handles: `C` names a connection (the WebSocket, the
//! WebSocket being probed for an upgrade) and `G` a parked polling GET (its connection and
//! whatever the caller needs to answer it). Each handle is stored here and only here: the
//! caller asks the session which connection carries what, and every method that lets go of a
//! handle returns it, so the caller can answer or close that connection.
//!
//! Call order for the I/O layer:
//! - a polling GET: [`Session::on_polling_get`]; a POST: [`Session::on_inbound`] for each
//!   decoded packet of the body;
//! - a WebSocket for this session: [`Session::begin_upgrade`], then its packets through
//!   [`Session::on_probe_packet`] until the upgrade completes, then [`Session::on_inbound`];
//! - something to send: [`Session::enqueue`] (only while not on WebSocket), then
//!   [`Session::take_polling_payload`] when [`Session::can_flush_polling`];
//! - a connection gone: [`Session::take_get`] (the parked GET's), [`Session::cancel_upgrade`]
//!   (the probe's), [`Session::lose_websocket`] (the WebSocket's; end the session next);
//! - time: sleep until [`Session::next_deadline`], then call [`Session::on_timeout`];
//! - the end: [`Session::into_conns`] hands back every connection still held.

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

/// The transport with the connections that carry it.
#[derive(Debug)]
enum Carrier<C, G> {
    /// HTTP long-polling: at most one GET parked, maybe a WebSocket being probed.
    Polling { get: Option<G>, upgrade: Upgrade<C> },
    /// On WebSocket for good: no GET, no upgrade.
    WebSocket { conn: C },
    /// Was on WebSocket, and the WebSocket went away: the session is ending.
    WebSocketGone,
}

/// Where an upgrade from polling to WebSocket stands.
#[derive(Debug)]
enum Upgrade<C> {
    /// No WebSocket is attached for an upgrade.
    None,
    /// WebSocket `conn` is attached but has not sent `2probe` yet.
    Attached { conn: C, deadline: Instant },
    /// `3probe` was sent on `conn`: polling GETs get `6`, and `5` completes the upgrade.
    Probed { conn: C, deadline: Instant },
}

impl<C> Upgrade<C> {
    fn deadline(&self) -> Option<Instant> {
        match self {
            Upgrade::Attached { deadline, .. } | Upgrade::Probed { deadline, .. } => {
                Some(*deadline)
            }
            Upgrade::None => None,
        }
    }

    /// The probe's connection; the upgrade is gone.
    fn take_conn(&mut self) -> Option<C> {
        match std::mem::replace(self, Upgrade::None) {
            Upgrade::Attached { conn, .. } | Upgrade::Probed { conn, .. } => Some(conn),
            Upgrade::None => None,
        }
    }
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

    /// The reason a Socket.IO socket of the session leaves with (socket.io's server-side
    /// `disconnect` reasons): an Engine.IO close from the client is a `transport close`, as
    /// in engine.io; a server close is `server shutting down` while the server stops, else
    /// `forced server close` (limits, an application's request). Applications tell
    /// recoverable drops by it (`crate::socketio::recovery::recoverable`).
    pub fn socket_reason(self, shutting_down: bool) -> &'static str {
        match self {
            CloseReason::ClientClose | CloseReason::TransportClose => "transport close",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ProtocolError(_) => "parse error",
            CloseReason::ServerClose if shutting_down => "server shutting down",
            CloseReason::ServerClose => "forced server close",
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
    /// The session keeps the GET (see [`Session::parked_get`]) until there is something to
    /// send.
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
    /// The pong of the ping in flight: the client has read everything written before that
    /// ping (connection state recovery counts on it, `crate::socketio::recovery`).
    Pong,
    /// A text message for the layer above.
    Message(String),
    /// A binary message for the layer above.
    Binary(bytes::Bytes),
    /// End the session for this reason.
    Close(CloseReason),
}

/// What a packet on the WebSocket being probed means for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum ProbeOutcome<C, G> {
    /// Send `3probe` on the WebSocket and answer `get` (the parked GET, now let go of) with
    /// `6`.
    SendProbeAnswer { get: Option<G> },
    /// The upgrade is complete: the probe is the session's WebSocket now; answer `get` (the
    /// parked GET, now let go of) with `6`, then write every frame of
    /// [`Session::drain_queue`] to the WebSocket.
    Upgraded { get: Option<G> },
    /// Nothing to do.
    Nothing,
    /// The probe WebSocket broke the upgrade protocol: close it (the session let go of it);
    /// the session stays on polling.
    AbortUpgrade(C),
}

/// What a deadline means for the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum TimeoutOutcome<C> {
    Nothing,
    /// A ping was queued (polling) or must be written (WebSocket: write [`PING`] to
    /// [`Session::websocket`]).
    Ping,
    /// The upgrade took too long: close the probe WebSocket (the session let go of it); the
    /// session stays on polling.
    UpgradeExpired(C),
    /// End the session.
    Close(CloseReason),
}

/// The connections a session still held when it ended, to answer or close.
#[derive(Debug, PartialEq, Eq)]
pub struct Conns<C, G> {
    pub get: Option<G>,
    pub websocket: Option<C>,
    pub probe: Option<C>,
}

/// One Engine.IO session; `C` names a connection, `G` a parked polling GET (module doc).
#[derive(Debug)]
pub struct Session<C, G = C> {
    /// Shared by every session of a shard: one pointer per session, not 56 bytes.
    config: Arc<SessionConfig>,
    carrier: Carrier<C, G>,
    heartbeat: Heartbeat,
    /// Frames waiting for a polling GET (or for the upgrade to finish).
    queue: VecDeque<Frame>,
    queued_bytes: usize,
}

impl<C, G> Session<C, G> {
    fn new(config: impl Into<Arc<SessionConfig>>, carrier: Carrier<C, G>, now: Instant) -> Self {
        let config = config.into();
        let first_ping = now + config.ping_interval;
        Session {
            config,
            carrier,
            heartbeat: Heartbeat::PingAt(first_ping),
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    /// A session opened on polling at `now`. The first ping is due one full pingInterval
    /// later.
    pub fn polling(config: impl Into<Arc<SessionConfig>>, now: Instant) -> Self {
        let carrier = Carrier::Polling {
            get: None,
            upgrade: Upgrade::None,
        };
        Session::new(config, carrier, now)
    }

    /// A session opened on WebSocket `conn` at `now`. The first ping is due one full
    /// pingInterval later.
    pub fn websocket(config: impl Into<Arc<SessionConfig>>, conn: C, now: Instant) -> Self {
        Session::new(config, Carrier::WebSocket { conn }, now)
    }

    pub fn transport(&self) -> Transport {
        match self.carrier {
            Carrier::Polling { .. } => Transport::Polling,
            Carrier::WebSocket { .. } | Carrier::WebSocketGone => Transport::WebSocket,
        }
    }

    /// The WebSocket carrying the session, once on WebSocket (until it is lost).
    pub fn websocket_conn(&self) -> Option<&C> {
        match &self.carrier {
            Carrier::WebSocket { conn } => Some(conn),
            Carrier::Polling { .. } | Carrier::WebSocketGone => None,
        }
    }

    /// The WebSocket carrying the session went away: the session lets go of it (and of
    /// nothing else) and must be ended next. Returns it, if the session was on one.
    pub fn lose_websocket(&mut self) -> Option<C> {
        if !matches!(self.carrier, Carrier::WebSocket { .. }) {
            return None;
        }
        match std::mem::replace(&mut self.carrier, Carrier::WebSocketGone) {
            Carrier::WebSocket { conn } => Some(conn),
            _ => None,
        }
    }

    /// The WebSocket attached for an upgrade (probed or not).
    pub fn probe(&self) -> Option<&C> {
        match &self.carrier {
            Carrier::Polling {
                upgrade: Upgrade::Attached { conn, .. } | Upgrade::Probed { conn, .. },
                ..
            } => Some(conn),
            _ => None,
        }
    }

    /// The parked polling GET.
    pub fn parked_get(&self) -> Option<&G> {
        match &self.carrier {
            Carrier::Polling { get, .. } => get.as_ref(),
            Carrier::WebSocket { .. } | Carrier::WebSocketGone => None,
        }
    }

    /// Whether a WebSocket is attached for an upgrade (probed or not).
    pub fn is_upgrading(&self) -> bool {
        self.probe().is_some()
    }

    pub fn get_parked(&self) -> bool {
        self.parked_get().is_some()
    }

    fn probed(&self) -> bool {
        matches!(
            self.carrier,
            Carrier::Polling {
                upgrade: Upgrade::Probed { .. },
                ..
            }
        )
    }

    /// Bytes waiting in the outbound queue (for the slow-reader limit).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// A polling GET arrived; the session keeps `get` only when the outcome is
    /// [`GetOutcome::Hold`].
    pub fn on_polling_get(&mut self, get: G) -> GetOutcome {
        let probed = self.probed();
        let empty = self.queue.is_empty();
        let Carrier::Polling { get: parked, .. } = &mut self.carrier else {
            return GetOutcome::WrongTransport;
        };
        if parked.is_some() {
            return GetOutcome::Conflict;
        }
        if probed {
            return GetOutcome::Respond(vec![NOOP]);
        }
        if empty {
            *parked = Some(get);
            return GetOutcome::Hold;
        }
        GetOutcome::Respond(self.take_frames())
    }

    /// Let go of the parked GET (its connection closed, or the caller answers it).
    pub fn take_get(&mut self) -> Option<G> {
        match &mut self.carrier {
            Carrier::Polling { get, .. } => get.take(),
            Carrier::WebSocket { .. } | Carrier::WebSocketGone => None,
        }
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
        self.get_parked() && !self.queue.is_empty() && !self.probed()
    }

    /// When [`Session::can_flush_polling`]: the parked GET, let go of, and the frames to
    /// answer it with (at most maxPayload bytes, at least one frame). Otherwise `None`, and
    /// nothing changes.
    pub fn take_polling_payload(&mut self) -> Option<(G, Vec<Frame>)> {
        if !self.can_flush_polling() {
            return None;
        }
        let get = self.take_get()?;
        Some((get, self.take_frames()))
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
                    return Inbound::Pong;
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

    /// WebSocket `conn` with this session's sid was accepted; the session keeps it as its
    /// probe. `Err(conn)` when it must be refused: the session is already on WebSocket or
    /// another WebSocket is attached.
    pub fn begin_upgrade(&mut self, now: Instant, conn: C) -> Result<(), C> {
        let deadline = now + self.config.upgrade_timeout;
        match &mut self.carrier {
            Carrier::Polling { upgrade, .. } if matches!(upgrade, Upgrade::None) => {
                *upgrade = Upgrade::Attached { conn, deadline };
                Ok(())
            }
            _ => Err(conn),
        }
    }

    /// A packet on the WebSocket attached for the upgrade.
    pub fn on_probe_packet(&mut self, packet: &EioPacket) -> ProbeOutcome<C, G> {
        let Carrier::Polling { get, upgrade } = &mut self.carrier else {
            return ProbeOutcome::Nothing;
        };
        match (&*upgrade, packet) {
            (Upgrade::None, _) => ProbeOutcome::Nothing,
            (Upgrade::Attached { .. }, EioPacket::Ping(payload)) if payload == "probe" => {
                if let Upgrade::Attached { conn, deadline } =
                    std::mem::replace(upgrade, Upgrade::None)
                {
                    *upgrade = Upgrade::Probed { conn, deadline };
                }
                ProbeOutcome::SendProbeAnswer { get: get.take() }
            }
            (Upgrade::Probed { .. }, EioPacket::Upgrade) => {
                let get = get.take();
                match upgrade.take_conn() {
                    Some(conn) => {
                        self.carrier = Carrier::WebSocket { conn };
                        ProbeOutcome::Upgraded { get }
                    }
                    None => ProbeOutcome::Nothing,
                }
            }
            (Upgrade::Probed { .. }, EioPacket::Noop) => ProbeOutcome::Nothing,
            _ => match upgrade.take_conn() {
                Some(conn) => ProbeOutcome::AbortUpgrade(conn),
                None => ProbeOutcome::Nothing,
            },
        }
    }

    /// The WebSocket attached for the upgrade closed before `5`: stay on polling. Returns the
    /// probe's connection, if one was attached.
    pub fn cancel_upgrade(&mut self) -> Option<C> {
        match &mut self.carrier {
            Carrier::Polling { upgrade, .. } => upgrade.take_conn(),
            Carrier::WebSocket { .. } | Carrier::WebSocketGone => None,
        }
    }

    fn upgrade_deadline(&self) -> Option<Instant> {
        match &self.carrier {
            Carrier::Polling { upgrade, .. } => upgrade.deadline(),
            Carrier::WebSocket { .. } | Carrier::WebSocketGone => None,
        }
    }

    /// The earliest instant at which [`Session::on_timeout`] has something to do.
    pub fn next_deadline(&self) -> Instant {
        let heartbeat = match self.heartbeat {
            Heartbeat::PingAt(at) | Heartbeat::PongBy(at) => at,
        };
        match self.upgrade_deadline() {
            Some(deadline) => heartbeat.min(deadline),
            None => heartbeat,
        }
    }

    /// Time passed. Call when `now >= next_deadline()` (earlier calls are harmless).
    pub fn on_timeout(&mut self, now: Instant) -> TimeoutOutcome<C> {
        if self
            .upgrade_deadline()
            .is_some_and(|deadline| now >= deadline)
        {
            if let Some(conn) = self.cancel_upgrade() {
                return TimeoutOutcome::UpgradeExpired(conn);
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
                if self.transport() == Transport::Polling {
                    // During an upgrade the ping waits in the queue and goes out on the
                    // WebSocket once the upgrade completes (never over polling meanwhile).
                    self.enqueue(PING);
                }
                TimeoutOutcome::Ping
            }
            _ => TimeoutOutcome::Nothing,
        }
    }

    /// The session ends: every connection it still held, to answer or close.
    pub fn into_conns(self) -> Conns<C, G> {
        match self.carrier {
            Carrier::Polling { get, mut upgrade } => Conns {
                get,
                websocket: None,
                probe: upgrade.take_conn(),
            },
            Carrier::WebSocket { conn } => Conns {
                get: None,
                websocket: Some(conn),
                probe: None,
            },
            Carrier::WebSocketGone => Conns {
                get: None,
                websocket: None,
                probe: None,
            },
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

    /// Connections are numbered; a parked GET is its connection's number.
    type TestSession = Session<u32>;

    fn polling(now: Instant) -> TestSession {
        Session::polling(config(), now)
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
        assert_eq!(s.on_polling_get(1), GetOutcome::Respond(vec![PING]));
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
            Inbound::Pong
        );
        assert_eq!(s.next_deadline(), t2 + Duration::from_millis(300));
        assert_eq!(
            s.on_inbound(EioPacket::Pong(String::new()), t2),
            Inbound::Nothing,
            "a second pong answers no ping"
        );
    }

    #[test]
    fn get_is_held_until_a_frame_is_queued() {
        let mut s = polling(Instant::now());
        assert_eq!(s.on_polling_get(1), GetOutcome::Hold);
        assert_eq!(s.parked_get(), Some(&1));
        assert!(s.enqueue(Frame::message("hi")));
        assert_eq!(
            s.take_polling_payload(),
            Some((1, vec![Frame::message("hi")]))
        );
        assert!(!s.get_parked());
    }

    #[test]
    fn second_get_while_one_is_parked_is_a_conflict() {
        let mut s = polling(Instant::now());
        assert_eq!(s.on_polling_get(1), GetOutcome::Hold);
        assert_eq!(s.on_polling_get(2), GetOutcome::Conflict);
        assert_eq!(s.parked_get(), Some(&1), "the first GET stays parked");
    }

    #[test]
    fn polling_payload_respects_max_payload_but_sends_at_least_one_frame() {
        let mut s = polling(Instant::now());
        s.enqueue(Frame::message("0123456789"));
        s.enqueue(Frame::message("0123456789"));
        s.enqueue(Frame::message("0123456789abcdefghijklmnop"));
        assert_eq!(
            s.on_polling_get(1),
            GetOutcome::Respond(vec![Frame::message("0123456789")])
        );
        assert_eq!(s.on_polling_get(1).len_frames(), 1);
        assert_eq!(s.on_polling_get(1).len_frames(), 1);
        assert_eq!(s.queued_bytes(), 0);
    }

    #[test]
    fn polling_payload_holds_at_most_sixteen_packets() {
        let mut s: TestSession = Session::polling(
            SessionConfig {
                max_payload: 1_000_000,
                ..config()
            },
            Instant::now(),
        );
        for _ in 0..20 {
            s.enqueue(Frame::message("x"));
        }
        assert_eq!(s.on_polling_get(1).len_frames(), MAX_PACKETS_PER_POLL);
        assert_eq!(s.on_polling_get(1).len_frames(), 4);
    }

    #[test]
    fn upgrade_answers_gets_with_noop_and_switches_on_upgrade_packet() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.on_polling_get(1), GetOutcome::Hold);
        assert_eq!(s.begin_upgrade(t0, 2), Ok(()));
        assert_eq!(
            s.begin_upgrade(t0, 3),
            Err(3),
            "a second WebSocket is refused"
        );
        assert_eq!(s.probe(), Some(&2));
        assert_eq!(
            s.on_probe_packet(&EioPacket::Ping("probe".into())),
            ProbeOutcome::SendProbeAnswer { get: Some(1) }
        );
        assert_eq!(s.on_polling_get(4), GetOutcome::Respond(vec![NOOP]));
        assert!(!s.enqueue(Frame::message("queued")), "no flush to polling");
        assert_eq!(
            s.on_probe_packet(&EioPacket::Upgrade),
            ProbeOutcome::Upgraded { get: None }
        );
        assert_eq!(s.transport(), Transport::WebSocket);
        assert_eq!(s.websocket_conn(), Some(&2));
        assert_eq!(s.probe(), None);
        assert_eq!(s.drain_queue(), vec![Frame::message("queued")]);
        assert_eq!(s.on_polling_get(5), GetOutcome::WrongTransport);
        assert_eq!(
            s.into_conns(),
            Conns {
                get: None,
                websocket: Some(2),
                probe: None
            }
        );
    }

    #[test]
    fn no_ping_goes_over_polling_during_an_upgrade() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.begin_upgrade(t0, 2), Ok(()));
        s.on_probe_packet(&EioPacket::Ping("probe".into()));
        assert_eq!(s.on_polling_get(1), GetOutcome::Respond(vec![NOOP]));
        assert_eq!(
            s.on_timeout(t0 + Duration::from_millis(300)),
            TimeoutOutcome::Ping
        );
        assert!(!s.can_flush_polling());
        assert_eq!(
            s.on_probe_packet(&EioPacket::Upgrade),
            ProbeOutcome::Upgraded { get: None }
        );
        assert_eq!(s.drain_queue(), vec![PING]);
    }

    #[test]
    fn upgrade_expires_and_leaves_the_session_on_polling() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.begin_upgrade(t0, 2), Ok(()));
        assert_eq!(
            s.on_timeout(t0 + Duration::from_millis(1000)),
            TimeoutOutcome::UpgradeExpired(2)
        );
        assert!(!s.is_upgrading());
        assert_eq!(s.transport(), Transport::Polling);
    }

    #[test]
    fn probe_without_ping_probe_aborts_the_upgrade() {
        let t0 = Instant::now();
        let mut s = polling(t0);
        assert_eq!(s.begin_upgrade(t0, 2), Ok(()));
        assert_eq!(
            s.on_probe_packet(&EioPacket::Upgrade),
            ProbeOutcome::AbortUpgrade(2)
        );
        assert_eq!(s.begin_upgrade(t0, 3), Ok(()), "a new attempt may follow");
    }

    #[test]
    fn a_lost_websocket_is_let_go_of_and_nothing_goes_back_to_polling() {
        let t0 = Instant::now();
        let mut s: TestSession = Session::websocket(config(), 7, t0);
        assert_eq!(s.websocket_conn(), Some(&7));
        assert_eq!(s.lose_websocket(), Some(7));
        assert_eq!(s.lose_websocket(), None);
        assert_eq!(s.websocket_conn(), None);
        assert_eq!(s.transport(), Transport::WebSocket);
        assert_eq!(s.on_polling_get(1), GetOutcome::WrongTransport);
        assert_eq!(s.begin_upgrade(t0, 2), Err(2));
        let none = Conns {
            get: None,
            websocket: None,
            probe: None,
        };
        assert_eq!(s.into_conns(), none);
        let mut polling = polling(t0);
        assert_eq!(polling.lose_websocket(), None);
        assert_eq!(polling.transport(), Transport::Polling);
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
