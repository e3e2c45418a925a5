//! The `fanout` and `polling` scenarios: R rooms × M members, the first S members of each room
//! also sending at a fixed rate each (below the server's per-connection limit). Every content
//! carries its send time, so each receiver measures end-to-end latency; each receiver tracks
//! every sender's sequence numbers, so after a drain period a message acknowledged to its
//! sender but missing at a member counts as lost, and one seen twice as duplicated. The server's
//! CPU seconds and RSS are read over the counted window that follows the warm-up.
//!
//! Latency is measured twice for every delivery and ack: to the frame's *arrival* (the kernel's
//! receive timestamp of the read that completed it, see `tsstream`; WebSocket only), which is
//! the server's delay plus the loopback hop, and to when this process *read* and parsed it,
//! which adds however long the client took to get round to it (one process reading a hundred
//! copies of a message one after another stamps the last of them late).
//!
//! For each message it also keeps the first and the last arrival among the room's members,
//! which splits the arrival latency in two: send → first arrival (the probe's send, the
//! server's wake-up, read, store and first write) and first → last arrival (the time the
//! server took to write the fan-out).
//!
//! With `--urls A,B,C` (a cluster's nodes) member i connects to node i % 3, so every room has
//! members, and senders, on every node; a delivery to a member on another node than its
//! sender's is *cross-node*, and its latencies are also kept apart (`latency_arrival_cross_node`,
//! `latency_cross_node`). `--server-pid` then takes every process to count (`P1,P2,...`: the
//! nodes and Redis), whose CPU seconds and RSS are added up.

use crate::args::Args;
use crate::net::Target;
use crate::procfs::{self, ServerSample};
use crate::proto;
use crate::report::{self, ShardedHistogram};
use crate::setup::{self, JoinSlot, Spec};
use crate::transport::{Conn, Transport};
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
    warmup: f64,
    duration: f64,
    drain: f64,
}

/// Counters shared by every connection's handler.
struct Shared {
    run: u32,
    senders: usize,
    /// Members per room, and the servers they are spread over (1: one server).
    members: usize,
    nodes: usize,
    /// Counted window in CLOCK_REALTIME ns; 0 while not (yet) set.
    window_start: AtomicU64,
    window_end: AtomicU64,
    /// send → this process read the packet (µs).
    latency: ShardedHistogram,
    ack_latency: ShardedHistogram,
    /// send → kernel receive time of the frame (µs); empty over long-polling.
    arrival_latency: ShardedHistogram,
    ack_arrival_latency: ShardedHistogram,
    /// The same two latencies of the deliveries that crossed nodes (member on another node
    /// than the message's sender; empty with one server).
    cross_latency: ShardedHistogram,
    cross_arrival_latency: ShardedHistogram,
    /// Per sender (global sender id), per sequence number: (first, last) kernel arrival in ns.
    arrivals: Vec<Mutex<Vec<(u64, u64)>>>,
    delivered_window: AtomicU64,
    delivered_total: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    misrouted: AtomicU64,
    foreign: AtomicU64,
    ack_errors: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn in_window(&self, t: u64) -> bool {
        let start = self.window_start.load(Relaxed);
        let end = self.window_end.load(Relaxed);
        start != 0 && t >= start && (end == 0 || t <= end)
    }
}

/// What one member has received: per sender of its room, a bit per sequence number.
#[derive(Default)]
struct Received {
    seen: Vec<Vec<u64>>,
    last: Vec<Option<u32>>,
}

/// What one sender has sent: send times and acknowledgement outcomes by sequence number.
#[derive(Default)]
struct Sent {
    sent_at: Vec<u64>,
    acked: Vec<bool>,
}

struct Member {
    index: usize,
    room: usize,
    /// Which of the `--urls` it is connected to (index % their number).
    node: usize,
    received: Mutex<Received>,
    sent: Mutex<Sent>,
    slot: JoinSlot,
}

pub(crate) fn bit_set(bits: &mut Vec<u64>, i: u32) -> bool {
    let (w, b) = ((i / 64) as usize, i % 64);
    if bits.len() <= w {
        bits.resize(w + 1, 0);
    }
    let was = bits[w] >> b & 1 == 1;
    bits[w] |= 1 << b;
    was
}

pub(crate) fn bit_get(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
}

/// Handles one packet arriving at `member`; `arrival` is its kernel receive time, if known.
fn on_packet(shared: &Shared, member: &Member, packet: &str, arrival: Option<u64>) {
    if let Some(st) = proto::parse_new_message(packet) {
        let now = proto::now_ns();
        if st.run != shared.run {
            shared.foreign.fetch_add(1, Relaxed);
            return;
        }
        let s = st.sender as usize;
        if s / shared.senders != member.room {
            shared.misrouted.fetch_add(1, Relaxed);
            return;
        }
        let local = s % shared.senders;
        let Ok(mut r) = member.received.lock() else {
            return;
        };
        if r.seen.len() < shared.senders {
            r.seen.resize(shared.senders, Vec::new());
            r.last.resize(shared.senders, None);
        }
        if bit_set(&mut r.seen[local], st.seq) {
            shared.duplicated.fetch_add(1, Relaxed);
            return;
        }
        if r.last[local].is_some_and(|l| st.seq < l) {
            shared.reordered.fetch_add(1, Relaxed);
        }
        r.last[local] = Some(st.seq.max(r.last[local].unwrap_or(0)));
        drop(r);
        shared.delivered_total.fetch_add(1, Relaxed);
        if shared.in_window(now) {
            shared.delivered_window.fetch_add(1, Relaxed);
            // The sender is member `local` of this room; its node, like every member's, is
            // its index modulo the servers.
            let cross = shared.nodes > 1
                && (member.room * shared.members + local) % shared.nodes != member.node;
            let read_us = now.saturating_sub(st.t_ns) / 1000;
            shared.latency.record(member.index, read_us);
            if cross {
                shared.cross_latency.record(member.index, read_us);
            }
            if let Some(a) = arrival {
                let arrival_us = a.saturating_sub(st.t_ns) / 1000;
                shared.arrival_latency.record(member.index, arrival_us);
                if cross {
                    shared
                        .cross_arrival_latency
                        .record(member.index, arrival_us);
                }
                if let Some(Ok(mut v)) = shared.arrivals.get(s).map(|m| m.lock()) {
                    let seq = st.seq as usize;
                    if v.len() <= seq {
                        v.resize(seq + 1, (0, 0));
                    }
                    let (first, last) = &mut v[seq];
                    if *first == 0 || a < *first {
                        *first = a;
                    }
                    *last = (*last).max(a);
                }
            }
        }
    } else if packet.starts_with('3') && !setup::on_join_ack(packet, &member.slot) {
        let Some((id, ok)) = proto::parse_ack(packet) else {
            return;
        };
        let now = proto::now_ns();
        let seq = id.saturating_sub(1) as usize;
        let Ok(mut s) = member.sent.lock() else {
            return;
        };
        if ok {
            if let Some(a) = s.acked.get_mut(seq) {
                *a = true;
            }
            if let Some(&t) = s.sent_at.get(seq) {
                if shared.in_window(now) {
                    shared
                        .ack_latency
                        .record(member.index, now.saturating_sub(t) / 1000);
                    if let Some(a) = arrival {
                        shared
                            .ack_arrival_latency
                            .record(member.index, a.saturating_sub(t) / 1000);
                    }
                }
            }
        } else if let Ok(mut e) = shared.ack_errors.lock() {
            *e.entry(proto::ack_error_code(packet).to_string())
                .or_insert(0) += 1;
        }
    }
}

/// What one sender sends: to which book, under which sender id, how fast, from which phase
/// (a fraction of one period).
struct Plan {
    book: u64,
    sender_id: u32,
    rate: f64,
    phase: f64,
}

/// Sends at `plan.rate` per second from `member` until `stop`, starting after a random phase.
async fn send_loop(
    conn: Conn,
    member: Arc<Member>,
    shared: Arc<Shared>,
    plan: Plan,
    stop: Arc<AtomicBool>,
) {
    let Plan {
        book,
        sender_id,
        rate,
        phase,
    } = plan;
    let period = Duration::from_secs_f64(1.0 / rate);
    tokio::time::sleep(period.mul_f64(phase)).await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let user = format!("u{}", member.index);
    let mut seq: u32 = 0;
    loop {
        tick.tick().await;
        if stop.load(Relaxed) {
            break;
        }
        let t = proto::now_ns();
        let content = proto::stamp(t, seq, sender_id, shared.run);
        if let Ok(mut s) = member.sent.lock() {
            s.sent_at.push(t);
            s.acked.push(false);
        }
        if !conn.send(proto::chat_message(
            seq as u64 + 1,
            book,
            &user,
            &user,
            &content,
        )) {
            break;
        }
        seq += 1;
    }
}

/// Runs the scenario and prints its result; returns false when `--check` found a problem.
pub async fn run(args: &Args, default_transport: Transport) -> bool {
    let targets = match parse_targets(args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return false;
        }
    };
    let transport = match args.str("transport").map(Transport::parse) {
        None => default_transport,
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            eprintln!("loadgen: {e}");
            return false;
        }
    };
    let p = Params {
        rooms: args.get("rooms", 20),
        members: args.get("members", 100),
        senders: args.get("senders", 4),
        rate: args.get("rate", 8.0),
        warmup: args.get("warmup", 3.0),
        duration: args.get("duration", 10.0),
        drain: args.get("drain", 3.0),
    };
    if p.senders == 0 || p.senders > p.members || p.rate <= 0.0 || p.rooms == 0 {
        eprintln!("loadgen: need 1 ≤ senders ≤ members, rooms ≥ 1 and rate > 0");
        return false;
    }
    let pids = match args.str("server-pid").map(procfs::parse_pids) {
        None => Vec::new(),
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("loadgen: {e}");
            return false;
        }
    };
    let src_ips: usize = args.get("src-ips", total_clients(args).div_ceil(500).max(4));
    let concurrency: usize = args.get("connect-concurrency", 100);
    let auth = match crate::auth::Minter::from_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return false;
        }
    };
    crate::net::raise_fd_limit();
    let (run, base) = setup::run_ids();
    let shared = Arc::new(Shared {
        run,
        senders: p.senders,
        members: p.members,
        nodes: targets.len(),
        window_start: AtomicU64::new(0),
        window_end: AtomicU64::new(0),
        latency: ShardedHistogram::new(16),
        ack_latency: ShardedHistogram::new(16),
        arrival_latency: ShardedHistogram::new(16),
        arrivals: (0..p.rooms * p.senders)
            .map(|_| Mutex::new(Vec::new()))
            .collect(),
        ack_arrival_latency: ShardedHistogram::new(16),
        cross_latency: ShardedHistogram::new(16),
        cross_arrival_latency: ShardedHistogram::new(16),
        delivered_window: AtomicU64::new(0),
        delivered_total: AtomicU64::new(0),
        duplicated: AtomicU64::new(0),
        reordered: AtomicU64::new(0),
        misrouted: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        ack_errors: Mutex::new(BTreeMap::new()),
    });
    // Member i is in room i / members; the first `senders` of each room send.
    let total = p.rooms * p.members;
    let members: Vec<Arc<Member>> = (0..total)
        .map(|i| {
            Arc::new(Member {
                index: i,
                room: i / p.members,
                node: i % targets.len(),
                received: Mutex::new(Received::default()),
                sent: Mutex::new(Sent::default()),
                slot: Arc::new(Mutex::new(None)),
            })
        })
        .collect();
    let specs = members
        .iter()
        .map(|m| {
            let (sh, mm) = (shared.clone(), m.clone());
            Spec {
                src_index: m.index,
                book: base + m.room as u64,
                user: format!("u{}", m.index),
                slot: m.slot.clone(),
                handler: move |p: &str, arrival: Option<u64>| on_packet(&sh, &mm, p, arrival),
            }
        })
        .collect();
    let setup_started = Instant::now();
    let conns = setup::bring_up_spread(
        &targets,
        transport,
        src_ips,
        concurrency,
        auth.as_deref(),
        specs,
    )
    .await;
    let failures = conns.iter().filter(|c| c.is_none()).count();
    let setup_s = setup_started.elapsed().as_secs_f64();
    eprintln!(
        "fanout: {} of {total} clients joined over {} in {setup_s:.1} s",
        total - failures,
        transport.name()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Senders start with random phases so sends spread over each period.
    let stop = Arc::new(AtomicBool::new(false));
    let mut rng = run as u64 | 1;
    for m in &members {
        if m.index % p.members >= p.senders {
            continue;
        }
        let Some(conn) = conns[m.index].clone() else {
            continue;
        };
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let phase = (rng % 10_000) as f64 / 10_000.0;
        tokio::spawn(send_loop(
            conn,
            m.clone(),
            shared.clone(),
            Plan {
                book: base + m.room as u64,
                sender_id: (m.room * p.senders + m.index % p.members) as u32,
                rate: p.rate,
                phase,
            },
            stop.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs_f64(p.warmup)).await;
    let before = ServerSample::take_all(&pids);
    let each_before: Vec<Option<f64>> = pids.iter().map(|&p| procfs::cpu_seconds(p)).collect();
    let own_before = procfs::own_cpu_seconds();
    let machine_before = procfs::machine_busy_seconds();
    let started = Instant::now();
    shared.window_start.store(proto::now_ns(), Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(p.duration)).await;
    shared.window_end.store(proto::now_ns(), Relaxed);
    let window = started.elapsed().as_secs_f64();
    let after = ServerSample::take_all(&pids);
    // Each process's share (with several: which of a cluster's nodes and its Redis spent what).
    let each_cpu: Vec<Option<f64>> = pids
        .iter()
        .zip(&each_before)
        .map(|(&p, b)| {
            b.zip(procfs::cpu_seconds(p))
                .map(|(b, a)| report::round(a - b, 3))
        })
        .collect();
    let own_cpu = procfs::own_cpu_seconds() - own_before;
    let machine_busy = match (machine_before, procfs::machine_busy_seconds()) {
        (Some(a), Some(b)) => Some((b - a) / window),
        _ => None,
    };
    stop.store(true, Relaxed);

    // Drain: wait until every acknowledged message reached every member, or the drain time.
    let drain_until = Instant::now() + Duration::from_secs_f64(p.drain);
    let (mut lost, mut acked, mut sent, mut unacked_delivered);
    loop {
        (lost, acked, sent, unacked_delivered) = tally(&members, &p);
        if (lost == 0 && Instant::now() > started + Duration::from_secs_f64(window + 0.3))
            || Instant::now() >= drain_until
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let disconnected = conns.iter().flatten().filter(|c| c.is_closed()).count();
    for c in conns.iter().flatten() {
        c.close();
    }

    let latency = shared.latency.merged();
    let ack_latency = shared.ack_latency.merged();
    let arrival_latency = shared.arrival_latency.merged();
    let ack_arrival_latency = shared.ack_arrival_latency.merged();
    let (first_arrival, fanout_spread) = spread(&members, &shared, &p);
    let arrival_summary = |h: &hdrhistogram::Histogram<u64>| {
        if h.is_empty() {
            serde_json::Value::Null
        } else {
            report::summary(h)
        }
    };
    let delivered = shared.delivered_window.load(Relaxed);
    let duplicated = shared.duplicated.load(Relaxed);
    let cpu = match (before.cpu, after.cpu) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let per_cpu = cpu.filter(|c| *c > 0.0).map(|c| delivered as f64 / c);
    let offered = (p.rooms * p.senders) as f64 * p.rate * p.members as f64;
    let errors = shared
        .ack_errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    let scenario = if transport == Transport::Polling {
        "polling"
    } else {
        "fanout"
    };
    let mut result = json!({
        "scenario": scenario,
        "transport": transport.name(),
        "rooms": p.rooms, "members": p.members, "senders_per_room": p.senders, "rate_per_sender": p.rate,
        "connections": total, "connect_failures": failures, "setup_s": report::round(setup_s, 2),
        "warmup_s": p.warmup, "window_s": report::round(window, 3),
        "offered_deliveries_per_s": offered,
        "sent": sent, "acked": acked, "ack_errors": errors,
        "deliveries_window": delivered,
        "deliveries_per_s": report::round(delivered as f64 / window, 1),
        "deliveries_total": shared.delivered_total.load(Relaxed),
        "lost": lost, "duplicated": duplicated, "reordered": shared.reordered.load(Relaxed),
        "misrouted": shared.misrouted.load(Relaxed), "unacked_delivered": unacked_delivered,
        "foreign": shared.foreign.load(Relaxed), "disconnected": disconnected,
        "latency": report::summary(&latency),
        "ack_latency": report::summary(&ack_latency),
        "latency_arrival": arrival_summary(&arrival_latency),
        "ack_latency_arrival": arrival_summary(&ack_arrival_latency),
        "first_arrival": arrival_summary(&first_arrival),
        "fanout_spread": arrival_summary(&fanout_spread),
        "server_pid": match pids.as_slice() {
            [] => serde_json::Value::Null,
            [one] => json!(one),
            many => json!(many),
        },
        "server_cpu_s": cpu.map(|c| report::round(c, 3)),
        "server_cpu_util": cpu.map(|c| report::round(c / window, 3)),
        "deliveries_per_server_cpu_s": per_cpu.map(|x| report::round(x, 0)),
        "server_rss_bytes": after.rss,
        "loadgen_cpu_s": report::round(own_cpu, 3),
        "machine_busy_cores": machine_busy.map(|x| report::round(x, 3)),
    });
    let mut readable = vec![
        format!(
            "{scenario}: {} rooms × {} members, {} senders/room at {}/s over {} ({} clients, {failures} failed)",
            p.rooms, p.members, p.senders, p.rate, transport.name(), total
        ),
        format!(
            "  deliveries: {delivered} in {window:.2} s = {:.0}/s (offered {offered:.0}/s); sent {sent}, acked {acked}, errors {errors:?}",
            delivered as f64 / window
        ),
        format!("  latency send→arrival: {}", report::brief(&arrival_latency)),
        format!("  latency send→read:    {}", report::brief(&latency)),
        format!("    send→first arrival: {}", report::brief(&first_arrival)),
        format!("    first→last arrival: {}", report::brief(&fanout_spread)),
        format!("  ack send→arrival:     {}", report::brief(&ack_arrival_latency)),
        format!("  ack send→read:        {}", report::brief(&ack_latency)),
        format!(
            "  lost {lost}, duplicated {duplicated}, reordered {}, unacked-but-delivered {unacked_delivered}, disconnected {disconnected}",
            shared.reordered.load(Relaxed)
        ),
    ];
    if let Some(c) = cpu {
        readable.push(format!(
            "  server CPU {c:.2} s ({:.0}% of one core) → {} deliveries per server CPU-second; RSS {} MiB",
            c / window * 100.0,
            per_cpu.map(|x| format!("{x:.0}")).unwrap_or("-".into()),
            after.rss.unwrap_or(0) / (1 << 20)
        ));
    }
    readable.push(format!(
        "  loadgen CPU {own_cpu:.2} s; whole machine busy {} cores",
        machine_busy
            .map(|x| format!("{x:.2}"))
            .unwrap_or("-".into())
    ));
    if targets.len() > 1 {
        let cross_latency = shared.cross_latency.merged();
        let cross_arrival = shared.cross_arrival_latency.merged();
        readable.push(format!(
            "  over {} servers; cross-node deliveries send→arrival: {}",
            targets.len(),
            report::brief(&cross_arrival)
        ));
        readable.push(format!(
            "  cross-node deliveries send→read:    {}",
            report::brief(&cross_latency)
        ));
        if let Some(o) = result.as_object_mut() {
            o.insert("nodes".into(), json!(targets.len()));
            o.insert("server_cpu_s_each".into(), json!(each_cpu));
            o.insert(
                "urls".into(),
                json!(targets.iter().map(|t| t.host.clone()).collect::<Vec<_>>()),
            );
            o.insert("latency_cross_node".into(), report::summary(&cross_latency));
            o.insert(
                "latency_arrival_cross_node".into(),
                arrival_summary(&cross_arrival),
            );
        }
    }
    report::emit(&result, &readable, args.flag("quiet"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ok = failures == 0
        && lost == 0
        && duplicated == 0
        && delivered > 0
        && errors.is_empty()
        && shared.misrouted.load(Relaxed) == 0;
    !args.flag("check") || ok
}

/// The servers to drive: `--urls A,B,...` (a cluster's nodes, clients spread round-robin) or
/// the one `--url` (default `http://127.0.0.1:3000`); both at once is an error.
fn parse_targets(args: &Args) -> Result<Vec<Target>, String> {
    match (args.str("urls"), args.str("url")) {
        (Some(_), Some(_)) => Err("give --url or --urls, not both".into()),
        (Some(list), None) => {
            let targets = list
                .split(',')
                .filter(|u| !u.trim().is_empty())
                .map(|u| Target::parse(u.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            if targets.is_empty() {
                return Err(format!("--urls {list:?} names no server"));
            }
            Ok(targets)
        }
        (None, url) => Ok(vec![Target::parse(url.unwrap_or("http://127.0.0.1:3000"))?]),
    }
}

/// The number of clients `--rooms` × `--members` asks for.
fn total_clients(args: &Args) -> usize {
    args.get::<usize>("rooms", 20) * args.get::<usize>("members", 100)
}

/// Per message sent in the counted window: send → first arrival at a member of its room, and
/// first → last arrival (µs histograms; empty without kernel timestamps).
fn spread(
    members: &[Arc<Member>],
    shared: &Shared,
    p: &Params,
) -> (hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>) {
    let (mut first_h, mut spread_h) = (report::new_histogram(), report::new_histogram());
    for room in 0..p.rooms {
        for local in 0..p.senders {
            let sent_at = members[room * p.members + local]
                .sent
                .lock()
                .map(|s| s.sent_at.clone())
                .unwrap_or_default();
            let Some(Ok(arrivals)) = shared
                .arrivals
                .get(room * p.senders + local)
                .map(|m| m.lock())
            else {
                continue;
            };
            for (&(first, last), &t) in arrivals.iter().zip(&sent_at) {
                if first != 0 && shared.in_window(t) {
                    first_h.saturating_record((first.saturating_sub(t) / 1000).max(1));
                    spread_h.saturating_record((last.saturating_sub(first) / 1000).max(1));
                }
            }
        }
    }
    (first_h, spread_h)
}

/// (lost, acked, sent, unacked-but-delivered) over all members, from the senders' records.
fn tally(members: &[Arc<Member>], p: &Params) -> (u64, u64, u64, u64) {
    let (mut lost, mut acked_total, mut sent_total, mut unacked) = (0, 0, 0, 0);
    for room in 0..p.rooms {
        let first = room * p.members;
        let acks: Vec<Vec<bool>> = (0..p.senders)
            .map(|s| {
                members[first + s]
                    .sent
                    .lock()
                    .map(|x| x.acked.clone())
                    .unwrap_or_default()
            })
            .collect();
        for a in &acks {
            acked_total += a.iter().filter(|x| **x).count() as u64;
            sent_total += a.len() as u64;
        }
        for m in &members[first..first + p.members] {
            let Ok(r) = m.received.lock() else { continue };
            for (s, a) in acks.iter().enumerate() {
                let seen = r.seen.get(s).map(Vec::as_slice).unwrap_or(&[]);
                for (seq, &ok) in a.iter().enumerate() {
                    let got = bit_get(seen, seq);
                    if ok && !got {
                        lost += 1;
                    } else if !ok && got {
                        unacked += 1;
                    }
                }
            }
        }
    }
    (lost, acked_total, sent_total, unacked)
}
