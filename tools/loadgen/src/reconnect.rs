//! The `reconnect` scenario: Socket.IO connection state recovery under load. The fan-out of
//! `fanout` (R rooms × M members, the first S of each room sending at RATE), while readers (the
//! members that do not send) lose their connection at random: at most `--drops-per-s` per
//! second, a connected reader is dropped abruptly ([`Conn::kill`]: sockets closed, no close
//! frame, no Engine.IO or Socket.IO close) and reconnects after `--reconnect-delay` ms with
//! `40{"pid":…,"offset":…}` (plus its token under `--auth`), as socket.io-client 4.6+ does.
//!
//! The wire format (docs/API.md and the product contract, "Reconnecting without losing
//! messages"): the CONNECT answer carries `pid`; every `newMessage` carries its offset as its
//! last argument (`42["newMessage",{…},"<offset>"]`); a reader keeps the last offset it
//! *processed* (packets still in the dropped socket are lost with it, as in a browser). A
//! reconnection is *recovered* when the answer's `pid` equals the one sent and its `sid` is the
//! old one; the reader is then back in its room without joining again. A reconnection that is
//! not recovered joins again, and whatever it missed counts as lost.
//!
//! Measured and checked: recoveries attempted / recovered / not recovered (new pid, changed
//! sid, connect errors); recovery latency (drop → the CONNECT answer read, and connect start →
//! answer) as HDR histograms; per member, every message acknowledged to its sender must have
//! been seen exactly once (`lost`, `duplicated`, and how many readers had either), in each
//! sender's order (`reordered`); no `userJoined`/`userLeft` anywhere once the run is set up, no
//! `previousMessages` at a recovered reader, and an offset on every `newMessage`.

use crate::args::Args;
use crate::auth::{self, Minter};
use crate::fanout::{bit_get, bit_set};
use crate::net::{self, Target};
use crate::procfs::{self, ServerSample};
use crate::proto;
use crate::report::{self, ShardedHistogram};
use crate::setup::{self, JoinSlot, Spec};
use crate::transport::{self, Conn, Transport};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The scenario's parameters.
struct Params {
    rooms: usize,
    members: usize,
    senders: usize,
    rate: f64,
    drops_per_s: f64,
    delay_ms: u64,
    warmup: f64,
    duration: f64,
    drain: f64,
}

/// Run-wide counters and what a reconnection needs.
struct Shared {
    run: u32,
    senders: usize,
    target: Target,
    transport: Transport,
    src_ips: usize,
    auth: Option<Arc<Minter>>,
    /// Presence events count once the run is set up.
    counting: AtomicBool,
    presence_events: AtomicU64,
    previous_after_recovery: AtomicU64,
    without_offset: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    misrouted: AtomicU64,
    foreign: AtomicU64,
    delivered: AtomicU64,
    ack_errors: Mutex<BTreeMap<String, u64>>,
    attempted: AtomicU64,
    recovered: AtomicU64,
    new_pid: AtomicU64,
    sid_changed: AtomicU64,
    no_pid: AtomicU64,
    connect_errors: AtomicU64,
    gave_up: AtomicU64,
    /// Non-recoveries described on stderr so far.
    told: AtomicU64,
    /// Drop → recovered CONNECT answer read (µs).
    recovery_latency: ShardedHistogram,
    /// Reconnection's TCP connect started → recovered CONNECT answer read (µs).
    reconnect_latency: ShardedHistogram,
}

/// Everything about one member, behind one lock (one connection at a time uses it).
#[derive(Default)]
struct State {
    /// Bumped at each drop; packets from a connection of an older generation are ignored.
    generation: u64,
    conn: Option<Conn>,
    sid: String,
    pid: Option<String>,
    /// The offset of the last `newMessage` processed.
    offset: Option<String>,
    /// Recovered since its last join (a `previousMessages` now would be wrong).
    recovered: bool,
    /// When its current connection's CONNECT answer was read (ns since the epoch).
    connected_ns: u64,
    /// Per local sender of its room: a bit per sequence number seen, and the highest seen.
    seen: Vec<Vec<u64>>,
    last: Vec<Option<u32>>,
    /// Senders only: acknowledgement outcome per sequence number.
    acked: Vec<bool>,
    duplicated: u64,
    /// Reconnections of this member that were not recovered.
    not_recovered: u64,
}

struct Member {
    index: usize,
    room: usize,
    book: u64,
    user: String,
    sender: bool,
    slot: JoinSlot,
    state: Mutex<State>,
}

/// The offset at the end of a `2["newMessage",{…},"<offset>"]` packet, if it has one: the
/// string after the message object's closing brace. Offsets are opaque; one holding `},"`
/// would be cut (ReadRealm's are `<bookId>:<seq>`).
pub fn offset_of(packet: &str) -> Option<String> {
    let tail = packet.strip_suffix(']')?;
    let at = tail.rfind("},\"")?;
    serde_json::from_str::<String>(&tail[at + 2..]).ok()
}

/// Handles one packet arriving on `member`'s connection of generation `generation`.
fn on_packet(shared: &Shared, member: &Member, generation: u64, packet: &str) {
    let Ok(mut st) = member.state.lock() else {
        return;
    };
    if st.generation != generation {
        return;
    }
    if let Some(stamp) = proto::parse_new_message(packet) {
        match offset_of(packet) {
            Some(o) => st.offset = Some(o),
            None => {
                shared.without_offset.fetch_add(1, Relaxed);
            }
        }
        if stamp.run != shared.run {
            shared.foreign.fetch_add(1, Relaxed);
            return;
        }
        let s = stamp.sender as usize;
        if s / shared.senders != member.room {
            shared.misrouted.fetch_add(1, Relaxed);
            return;
        }
        let local = s % shared.senders;
        if st.seen.len() < shared.senders {
            st.seen.resize(shared.senders, Vec::new());
            st.last.resize(shared.senders, None);
        }
        if bit_set(&mut st.seen[local], stamp.seq) {
            st.duplicated += 1;
            shared.duplicated.fetch_add(1, Relaxed);
            return;
        }
        if st.last[local].is_some_and(|l| stamp.seq < l) {
            shared.reordered.fetch_add(1, Relaxed);
        }
        st.last[local] = Some(stamp.seq.max(st.last[local].unwrap_or(0)));
        shared.delivered.fetch_add(1, Relaxed);
    } else if packet.starts_with('3') {
        if setup::on_join_ack(packet, &member.slot) {
            return;
        }
        let Some((id, ok)) = proto::parse_ack(packet) else {
            return;
        };
        if ok {
            if let Some(a) = st.acked.get_mut(id.saturating_sub(1) as usize) {
                *a = true;
            }
        } else if let Ok(mut e) = shared.ack_errors.lock() {
            *e.entry(proto::ack_error_code(packet).to_string())
                .or_insert(0) += 1;
        }
    } else if proto::is_event(packet, "userJoined") || proto::is_event(packet, "userLeft") {
        if shared.counting.load(Relaxed) {
            shared.presence_events.fetch_add(1, Relaxed);
        }
    } else if proto::is_event(packet, "previousMessages") && st.recovered {
        shared.previous_after_recovery.fetch_add(1, Relaxed);
    }
}

/// The handler for `member`'s connection of generation `generation`.
fn handler(
    shared: &Arc<Shared>,
    member: &Arc<Member>,
    generation: u64,
) -> impl FnMut(&str, Option<u64>) + Send + 'static {
    let (sh, m) = (shared.clone(), member.clone());
    move |p: &str, _arrival: Option<u64>| on_packet(&sh, &m, generation, p)
}

/// Drops `member`'s connection if it is connected and recoverable (it holds a pid and an
/// offset); returns what its reconnection presents.
fn drop_one(member: &Member) -> Option<Presented> {
    let mut st = member.state.lock().ok()?;
    let (Some(pid), Some(offset)) = (st.pid.clone(), st.offset.clone()) else {
        return None;
    };
    let conn = st.conn.take()?;
    st.generation += 1;
    let dropped = proto::now_ns();
    conn.kill();
    Some(Presented {
        pid,
        offset,
        sid: st.sid.clone(),
        dropped,
        connected_for_ns: dropped.saturating_sub(st.connected_ns),
    })
}

/// What a dropped reader presents when it reconnects, and when it was dropped.
struct Presented {
    pid: String,
    offset: String,
    sid: String,
    /// Drop time (ns since the epoch).
    dropped: u64,
    /// How long the dropped connection had been up (since its CONNECT answer).
    connected_for_ns: u64,
}

/// Reconnects `member` after a drop, presenting `pid` and `offset` (and a fresh token); up to
/// three tries when the connection itself fails.
async fn reconnect(
    shared: Arc<Shared>,
    member: Arc<Member>,
    presented: Presented,
    delay: Duration,
) {
    let Presented {
        pid,
        offset,
        sid,
        dropped,
        connected_for_ns,
    } = presented;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    shared.attempted.fetch_add(1, Relaxed);
    for attempt in 0..3 {
        let generation = match member.state.lock() {
            Ok(st) => st.generation,
            Err(_) => return,
        };
        let payload = match auth::connect_payload(
            shared.auth.as_deref(),
            &member.user,
            &[("pid", &pid), ("offset", &offset)],
        ) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("loadgen: {e}");
                shared.gave_up.fetch_add(1, Relaxed);
                return;
            }
        };
        let started = proto::now_ns();
        let connecting = transport::connect(
            &shared.target,
            shared.transport,
            net::source_ip(member.index, shared.src_ips),
            payload.as_deref(),
            handler(&shared, &member, generation),
        );
        let conn = match tokio::time::timeout(Duration::from_secs(10), connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                if shared.connect_errors.fetch_add(1, Relaxed) < 5 {
                    eprintln!("loadgen: reconnection of {} failed: {e}", member.user);
                }
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                continue;
            }
            Err(_) => {
                shared.connect_errors.fetch_add(1, Relaxed);
                continue;
            }
        };
        let answer = conn.answer().clone();
        let Ok(mut st) = member.state.lock() else {
            return;
        };
        st.conn = Some(conn.clone());
        st.connected_ns = answer.read_ns;
        if answer.pid.as_deref() == Some(pid.as_str()) && answer.sid == sid {
            shared.recovered.fetch_add(1, Relaxed);
            st.recovered = true;
            shared
                .recovery_latency
                .record(member.index, answer.read_ns.saturating_sub(dropped) / 1000);
            shared
                .reconnect_latency
                .record(member.index, answer.read_ns.saturating_sub(started) / 1000);
        } else {
            match &answer.pid {
                None => shared.no_pid.fetch_add(1, Relaxed),
                Some(p) if *p == pid => shared.sid_changed.fetch_add(1, Relaxed),
                Some(_) => shared.new_pid.fetch_add(1, Relaxed),
            };
            // The first few are told in full: what was sent, what came back, and when.
            if shared.told.fetch_add(1, Relaxed) < 5 {
                eprintln!(
                    "reconnect: {} not recovered: sent pid {pid} offset {offset} sid {sid}, answer {:?}; \
                     its dropped connection had been up {:.1} ms, the answer came {:.1} ms after the drop",
                    member.user,
                    answer,
                    connected_for_ns as f64 / 1e6,
                    answer.read_ns.saturating_sub(dropped) as f64 / 1e6
                );
            }
            // Not recovered: a new session, in no room. Join again to go on reading.
            st.recovered = false;
            st.not_recovered += 1;
            st.sid = answer.sid.clone();
            st.pid = answer.pid.clone();
            conn.send(proto::join_room(0, member.book, &member.user, &member.user));
        }
        return;
    }
    shared.gave_up.fetch_add(1, Relaxed);
}

/// Sends at `rate` per second from sender `member` (global sender id `sender_id`) until `stop`.
async fn send_loop(
    conn: Conn,
    member: Arc<Member>,
    shared: Arc<Shared>,
    sender_id: u32,
    rate: f64,
    stop: Arc<AtomicBool>,
) {
    let period = Duration::from_secs_f64(1.0 / rate);
    let phase = (proto::now_ns() ^ (sender_id as u64 * 7919)) % 1000;
    tokio::time::sleep(period.mul_f64(phase as f64 / 1000.0)).await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u32 = 0;
    loop {
        tick.tick().await;
        if stop.load(Relaxed) {
            break;
        }
        let content = proto::stamp(proto::now_ns(), seq, sender_id, shared.run);
        if let Ok(mut st) = member.state.lock() {
            st.acked.push(false);
        }
        let packet = proto::chat_message(
            seq as u64 + 1,
            member.book,
            &member.user,
            &member.user,
            &content,
        );
        if !conn.send(packet) {
            break;
        }
        seq += 1;
    }
}

/// Drops a random recoverable reader at most `rate` times per second until `stop`.
async fn drop_loop(
    shared: Arc<Shared>,
    members: Vec<Arc<Member>>,
    rate: f64,
    delay: Duration,
    stop: Arc<AtomicBool>,
) {
    let readers: Vec<Arc<Member>> = members.into_iter().filter(|m| !m.sender).collect();
    if readers.is_empty() || rate <= 0.0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rng = proto::now_ns() | 1;
    while !stop.load(Relaxed) {
        tick.tick().await;
        // A few picks to find a connected reader holding a pid and an offset.
        for _ in 0..8 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let m = &readers[(rng % readers.len() as u64) as usize];
            if let Some(presented) = drop_one(m) {
                tokio::spawn(reconnect(shared.clone(), m.clone(), presented, delay));
                break;
            }
        }
    }
}

/// Over every member and every message acknowledged to a sender of its room.
#[derive(Clone, Copy, Default)]
struct Tally {
    /// Acknowledged but never seen.
    lost: u64,
    /// Members missing at least one.
    lossy: u64,
    /// Of `lost`, those at members whose every reconnection was recovered.
    lost_at_recovered: u64,
    /// Seen though never acknowledged (the sender stopped before its ack).
    unacked: u64,
    /// Acknowledged messages in all.
    acked: u64,
}

fn tally(members: &[Arc<Member>], p: &Params) -> Tally {
    let mut t = Tally::default();
    for room in 0..p.rooms {
        let first = room * p.members;
        let acks: Vec<Vec<bool>> = (0..p.senders)
            .map(|s| {
                members[first + s]
                    .state
                    .lock()
                    .map(|x| x.acked.clone())
                    .unwrap_or_default()
            })
            .collect();
        t.acked += acks.iter().flatten().filter(|a| **a).count() as u64;
        for m in &members[first..first + p.members] {
            let Ok(st) = m.state.lock() else { continue };
            let mut missing = 0;
            for (s, a) in acks.iter().enumerate() {
                let seen = st.seen.get(s).map(Vec::as_slice).unwrap_or(&[]);
                for (seq, &ok) in a.iter().enumerate() {
                    let got = bit_get(seen, seq);
                    if ok && !got {
                        missing += 1;
                    } else if !ok && got {
                        t.unacked += 1;
                    }
                }
            }
            t.lost += missing;
            t.lossy += u64::from(missing > 0);
            if st.not_recovered == 0 {
                t.lost_at_recovered += missing;
            }
        }
    }
    t
}

/// Runs the scenario and prints its result; returns false when `--check` found a problem.
pub async fn run(args: &Args) -> bool {
    let (target, transport, auth) = match setup::connect_args(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return false;
        }
    };
    let p = Params {
        rooms: args.get("rooms", 10),
        members: args.get("members", 50),
        senders: args.get("senders", 2),
        rate: args.get("rate", 8.0),
        drops_per_s: args.get("drops-per-s", 20.0),
        delay_ms: args.get("reconnect-delay", 0),
        warmup: args.get("warmup", 2.0),
        duration: args.get("duration", 10.0),
        drain: args.get("drain", 5.0),
    };
    if p.senders == 0 || p.senders >= p.members || p.rate <= 0.0 || p.rooms == 0 {
        eprintln!("loadgen: need 1 ≤ senders < members, rooms ≥ 1 and rate > 0");
        return false;
    }
    let pid: Option<u32> = args.str("server-pid").and_then(|s| s.parse().ok());
    let total = p.rooms * p.members;
    let src_ips: usize = args.get("src-ips", total.div_ceil(500).max(4));
    let concurrency: usize = args.get("connect-concurrency", 100);
    net::raise_fd_limit();
    let (run, base) = setup::run_ids();
    let shared = Arc::new(Shared {
        run,
        senders: p.senders,
        target: target.clone(),
        transport,
        src_ips,
        auth: auth.clone(),
        counting: AtomicBool::new(false),
        presence_events: AtomicU64::new(0),
        previous_after_recovery: AtomicU64::new(0),
        without_offset: AtomicU64::new(0),
        duplicated: AtomicU64::new(0),
        reordered: AtomicU64::new(0),
        misrouted: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        ack_errors: Mutex::new(BTreeMap::new()),
        attempted: AtomicU64::new(0),
        recovered: AtomicU64::new(0),
        new_pid: AtomicU64::new(0),
        sid_changed: AtomicU64::new(0),
        no_pid: AtomicU64::new(0),
        connect_errors: AtomicU64::new(0),
        gave_up: AtomicU64::new(0),
        told: AtomicU64::new(0),
        recovery_latency: ShardedHistogram::new(8),
        reconnect_latency: ShardedHistogram::new(8),
    });
    let members: Vec<Arc<Member>> = (0..total)
        .map(|i| {
            Arc::new(Member {
                index: i,
                room: i / p.members,
                book: base + (i / p.members) as u64,
                user: format!("u{run}x{i}"),
                sender: i % p.members < p.senders,
                slot: Arc::new(Mutex::new(None)),
                state: Mutex::new(State::default()),
            })
        })
        .collect();
    let specs = members
        .iter()
        .map(|m| Spec {
            src_index: m.index,
            book: m.book,
            user: m.user.clone(),
            slot: m.slot.clone(),
            handler: handler(&shared, m, 0),
        })
        .collect();
    let setup_started = Instant::now();
    let conns = setup::bring_up(
        &target,
        transport,
        src_ips,
        concurrency,
        auth.as_deref(),
        specs,
    )
    .await;
    let failures = conns.iter().filter(|c| c.is_none()).count();
    let mut with_pid = 0;
    for (m, c) in members.iter().zip(&conns) {
        if let (Some(c), Ok(mut st)) = (c, m.state.lock()) {
            st.sid = c.answer().sid.clone();
            st.pid = c.answer().pid.clone();
            st.connected_ns = c.answer().read_ns;
            with_pid += usize::from(st.pid.is_some());
            st.conn = Some(c.clone());
        }
    }
    eprintln!(
        "reconnect: {} of {total} clients joined in {:.1} s; {with_pid} CONNECT answers carried a pid",
        total - failures,
        setup_started.elapsed().as_secs_f64()
    );
    if with_pid == 0 {
        eprintln!("reconnect: the server offers no recovery (no pid): no reader can be recovered");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.counting.store(true, Relaxed);

    let stop_senders = Arc::new(AtomicBool::new(false));
    for (m, c) in members.iter().zip(&conns) {
        if let (true, Some(conn)) = (m.sender, c) {
            let sender_id = (m.room * p.senders + m.index % p.members) as u32;
            tokio::spawn(send_loop(
                conn.clone(),
                m.clone(),
                shared.clone(),
                sender_id,
                p.rate,
                stop_senders.clone(),
            ));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(p.warmup)).await;
    let before = ServerSample::take(pid);
    let own_before = procfs::own_cpu_seconds();
    let machine_before = procfs::machine_busy_seconds();
    let stop_drops = Arc::new(AtomicBool::new(false));
    let dropper = tokio::spawn(drop_loop(
        shared.clone(),
        members.clone(),
        p.drops_per_s,
        Duration::from_millis(p.delay_ms),
        stop_drops.clone(),
    ));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(p.duration)).await;
    stop_drops.store(true, Relaxed);
    let _ = dropper.await;
    let window = started.elapsed().as_secs_f64();
    let after = ServerSample::take(pid);
    let own_cpu = procfs::own_cpu_seconds() - own_before;
    let machine_busy = match (machine_before, procfs::machine_busy_seconds()) {
        (Some(a), Some(b)) => Some(report::round((b - a) / window, 3)),
        _ => None,
    };
    stop_senders.store(true, Relaxed);

    // Drain: until every reconnection has ended and every acknowledged message arrived.
    let drain_until = Instant::now() + Duration::from_secs_f64(p.drain);
    let mut t;
    loop {
        t = tally(&members, &p);
        let settled = shared.attempted.load(Relaxed)
            == shared.recovered.load(Relaxed)
                + shared.new_pid.load(Relaxed)
                + shared.sid_changed.load(Relaxed)
                + shared.no_pid.load(Relaxed)
                + shared.gave_up.load(Relaxed);
        if (settled
            && t.lost == 0
            && Instant::now() > started + Duration::from_secs_f64(window + 0.5))
            || Instant::now() >= drain_until
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Tally {
        lost,
        lossy,
        lost_at_recovered,
        unacked,
        acked,
    } = t;
    let dup_readers = members
        .iter()
        .filter(|m| m.state.lock().is_ok_and(|s| s.duplicated > 0))
        .count();
    for m in &members {
        if let Some(c) = m.state.lock().ok().and_then(|s| s.conn.clone()) {
            c.close();
        }
    }

    let n = |a: &AtomicU64| a.load(Relaxed);
    let recovery = shared.recovery_latency.merged();
    let reconnect = shared.reconnect_latency.merged();
    let errors = shared
        .ack_errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    let cpu = match (before.cpu, after.cpu) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let result = json!({
        "scenario": "reconnect", "transport": transport.name(),
        "rooms": p.rooms, "members": p.members, "senders_per_room": p.senders, "rate_per_sender": p.rate,
        "connections": total, "connect_failures": failures, "with_pid": with_pid,
        "drops_per_s": p.drops_per_s, "reconnect_delay_ms": p.delay_ms,
        "window_s": report::round(window, 3),
        "recoveries_attempted": n(&shared.attempted), "recovered": n(&shared.recovered),
        "not_recovered_new_pid": n(&shared.new_pid), "not_recovered_sid_changed": n(&shared.sid_changed),
        "not_recovered_no_pid": n(&shared.no_pid),
        "reconnect_errors": n(&shared.connect_errors), "reconnect_gave_up": n(&shared.gave_up),
        "recovery_latency": report::summary(&recovery),
        "reconnect_latency": report::summary(&reconnect),
        "acked": acked, "delivered": n(&shared.delivered),
        "lost": lost, "readers_with_loss": lossy, "lost_at_always_recovered_readers": lost_at_recovered,
        "duplicated": n(&shared.duplicated), "readers_with_duplicates": dup_readers,
        "reordered": n(&shared.reordered), "misrouted": n(&shared.misrouted),
        "foreign": n(&shared.foreign), "unacked_delivered": unacked, "ack_errors": errors,
        "presence_events": n(&shared.presence_events),
        "previous_messages_after_recovery": n(&shared.previous_after_recovery),
        "new_messages_without_offset": n(&shared.without_offset),
        "server_pid": pid,
        "server_cpu_s": cpu.map(|c| report::round(c, 3)),
        "server_rss_bytes": after.rss,
        "loadgen_cpu_s": report::round(own_cpu, 3),
        "machine_busy_cores": machine_busy,
    });
    let readable = vec![
        format!(
            "reconnect: {} rooms × {} members ({} senders at {}/s), {} drops/s, reconnect delay {} ms, {window:.1} s",
            p.rooms, p.members, p.senders, p.rate, p.drops_per_s, p.delay_ms
        ),
        format!(
            "  recoveries: attempted {}, recovered {}, new pid {}, sid changed {}, no pid {}, reconnect errors {}, gave up {}",
            n(&shared.attempted), n(&shared.recovered), n(&shared.new_pid),
            n(&shared.sid_changed), n(&shared.no_pid), n(&shared.connect_errors), n(&shared.gave_up)
        ),
        format!("  drop → recovered answer:    {}", report::brief(&recovery)),
        format!("  connect → recovered answer: {}", report::brief(&reconnect)),
        format!(
            "  {acked} acked messages: lost {lost} (at {lossy} members; {lost_at_recovered} at members always recovered), duplicated {} (at {dup_readers}), reordered {}, misrouted {}",
            n(&shared.duplicated), n(&shared.reordered), n(&shared.misrouted)
        ),
        format!(
            "  presence events {}, previousMessages after recovery {}, newMessage without offset {}, ack errors {errors:?}",
            n(&shared.presence_events), n(&shared.previous_after_recovery), n(&shared.without_offset)
        ),
        format!(
            "  server CPU {:?} s; loadgen CPU {own_cpu:.2} s; machine busy {machine_busy:?} cores",
            cpu.map(|c| report::round(c, 3))
        ),
    ];
    report::emit(&result, &readable, args.flag("quiet"));
    let attempted = n(&shared.attempted);
    let ok = failures == 0
        && attempted > 0
        && n(&shared.recovered) == attempted
        && lost == 0
        && n(&shared.duplicated) == 0
        && n(&shared.reordered) == 0
        && n(&shared.misrouted) == 0
        && n(&shared.presence_events) == 0
        && n(&shared.previous_after_recovery) == 0
        && n(&shared.without_offset) == 0
        && errors.is_empty()
        && acked > 0;
    !args.flag("check") || ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_is_the_last_argument_of_a_new_message() {
        let with = r#"2["newMessage",{"_id":"a","content":"t=1 q=2 s=3 r=4"},"2701:17"]"#;
        assert_eq!(offset_of(with), Some("2701:17".to_string()));
        let without = r#"2["newMessage",{"_id":"a","content":"x"}]"#;
        assert_eq!(offset_of(without), None);
        // A content that looks like an offset is inside the object, not after it.
        let tricky = r#"2["newMessage",{"_id":"a","content":"},\"9:9\"]"}]"#;
        assert_eq!(offset_of(tricky), None);
        assert_eq!(
            offset_of(r#"2["newMessage",{},"esc\"aped"]"#),
            Some("esc\"aped".into())
        );
    }
}
