//! The `joins` scenario: new connections arrive at a target rate; each connects, joins a room
//! that holds 50 messages (written by the tool beforehand) and waits for `previousMessages`.
//! Measures join → history latency and connect latency (HDR), the join rate achieved, and
//! the server's CPU over the counted window. Each client closes once it has its history.

use crate::args::Args;
use crate::auth::{self, Minter};
use crate::net::{self, Target};
use crate::procfs::{self, ServerSample};
use crate::proto;
use crate::report::{self, ShardedHistogram};
use crate::setup::{self, JoinSlot, Spec};
use crate::transport::{self, Transport};
use serde_json::json;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Writes `count` messages into each of `rooms` rooms from a few clients per room (each under
/// the burst limit), waiting for every acknowledgement. Returns the number acknowledged.
async fn prefill(
    target: &Target,
    transport: Transport,
    auth: Option<&Minter>,
    base: u64,
    rooms: usize,
    count: usize,
) -> usize {
    const PER_CLIENT: usize = 15;
    let writers = count.div_ceil(PER_CLIENT);
    let acked = Arc::new(AtomicUsize::new(0));
    let mut specs = Vec::new();
    for room in 0..rooms {
        for w in 0..writers {
            let acked = acked.clone();
            let slot: JoinSlot = Arc::new(Mutex::new(None));
            let s2 = slot.clone();
            specs.push(Spec {
                src_index: 0,
                book: base + room as u64,
                user: format!("filler{room}x{w}"),
                slot,
                handler: move |p: &str, _arrival: Option<u64>| {
                    if p.starts_with('3') && !setup::on_join_ack(p, &s2) {
                        if let Some((_, true)) = proto::parse_ack(p) {
                            acked.fetch_add(1, Relaxed);
                        }
                    }
                },
            });
        }
    }
    let conns = setup::bring_up(target, transport, 1, 50, auth, specs).await;
    for room in 0..rooms {
        for w in 0..writers {
            let Some(conn) = &conns[room * writers + w] else {
                continue;
            };
            let user = format!("filler{room}x{w}");
            let n = PER_CLIENT.min(count - w * PER_CLIENT);
            for i in 0..n {
                let content = format!("history message {} of room {}", w * PER_CLIENT + i, room);
                conn.send(proto::chat_message(
                    i as u64 + 1,
                    base + room as u64,
                    &user,
                    &user,
                    &content,
                ));
            }
        }
    }
    let until = Instant::now() + Duration::from_secs(15);
    while acked.load(Relaxed) < rooms * count && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in conns.iter().flatten() {
        c.close();
    }
    acked.load(Relaxed)
}

struct Counters {
    window_start: AtomicU64,
    window_end: AtomicU64,
    completed_window: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    short_history: AtomicU64,
    join_latency: ShardedHistogram,
    connect_latency: ShardedHistogram,
}

/// Where and how arriving clients connect.
#[derive(Clone)]
struct Dial {
    target: Target,
    transport: Transport,
    src_ips: usize,
    auth: Option<Arc<Minter>>,
}

/// One arriving client: connect, join, wait for the history, close.
async fn one_join(dial: Dial, book: u64, i: u64, c: Arc<Counters>, expect: usize) {
    let (tx, rx) = oneshot::channel::<(u64, usize)>();
    let mut tx = Some(tx);
    let handler = move |p: &str, _arrival: Option<u64>| {
        if proto::is_event(p, "previousMessages") {
            if let Some(tx) = tx.take() {
                let _ = tx.send((proto::now_ns(), proto::count_messages(p)));
            }
        }
    };
    let user = format!("j{i}");
    let payload = auth::connect_payload(dial.auth.as_deref(), &user, &[]);
    let t0 = proto::now_ns();
    let attempt = async {
        let conn = transport::connect(
            &dial.target,
            dial.transport,
            net::source_ip(i as usize, dial.src_ips),
            payload.ok()?.as_deref(),
            handler,
        )
        .await
        .ok()?;
        let t1 = proto::now_ns();
        conn.send(proto::join_room(0, book, &user, &user));
        let (t2, n) = rx.await.ok()?;
        conn.close();
        Some((t1, t2, n))
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Some((t1, t2, n))) => {
            c.completed.fetch_add(1, Relaxed);
            if n < expect {
                c.short_history.fetch_add(1, Relaxed);
            }
            let start = c.window_start.load(Relaxed);
            let end = c.window_end.load(Relaxed);
            if start != 0 && t0 >= start && (end == 0 || t0 <= end) {
                c.completed_window.fetch_add(1, Relaxed);
                c.join_latency.record(i as usize, (t2 - t1) / 1000);
                c.connect_latency.record(i as usize, (t1 - t0) / 1000);
            }
        }
        _ => {
            c.failed.fetch_add(1, Relaxed);
        }
    }
}

pub async fn run(args: &Args) -> bool {
    let (target, transport, auth) = match setup::connect_args(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return false;
        }
    };
    let rate: f64 = args.get("rate", 1000.0);
    let rooms: usize = args.get("rooms", 10);
    let history: usize = args.get("history", 50);
    let warmup: f64 = args.get("warmup", 2.0);
    let duration: f64 = args.get("duration", 10.0);
    let src_ips: usize = args.get("src-ips", 8);
    let max_in_flight: usize = args.get("max-in-flight", 2000);
    let pid: Option<u32> = args.str("server-pid").and_then(|s| s.parse().ok());
    net::raise_fd_limit();
    let (_, base) = setup::run_ids();
    let filled = prefill(&target, transport, auth.as_deref(), base, rooms, history).await;
    eprintln!(
        "joins: {filled} of {} history messages written",
        rooms * history
    );

    let c = Arc::new(Counters {
        window_start: AtomicU64::new(0),
        window_end: AtomicU64::new(0),
        completed_window: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        short_history: AtomicU64::new(0),
        join_latency: ShardedHistogram::new(16),
        connect_latency: ShardedHistogram::new(16),
    });
    let dial = Dial {
        target: target.clone(),
        transport,
        src_ips,
        auth,
    };
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut skipped = 0u64;
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let begin = Instant::now();
    let (mut before, mut own_before, mut started) = (ServerSample::default(), 0.0, None);
    let mut machine_before = None;
    let mut i: u64 = 0;
    loop {
        tick.tick().await;
        let elapsed = begin.elapsed().as_secs_f64();
        if started.is_none() && elapsed >= warmup {
            before = ServerSample::take(pid);
            own_before = procfs::own_cpu_seconds();
            machine_before = procfs::machine_busy_seconds();
            started = Some(Instant::now());
            c.window_start.store(proto::now_ns(), Relaxed);
        }
        if elapsed >= warmup + duration {
            c.window_end.store(proto::now_ns(), Relaxed);
            break;
        }
        if in_flight.load(Relaxed) >= max_in_flight {
            skipped += 1;
            continue;
        }
        in_flight.fetch_add(1, Relaxed);
        let (d, c2, f) = (dial.clone(), c.clone(), in_flight.clone());
        let book = base + (i % rooms as u64);
        tokio::spawn(async move {
            one_join(d, book, i, c2, history).await;
            f.fetch_sub(1, Relaxed);
        });
        i += 1;
    }
    let window = started
        .map(|s| s.elapsed().as_secs_f64())
        .unwrap_or(duration);
    let after = ServerSample::take(pid);
    let own_cpu = procfs::own_cpu_seconds() - own_before;
    let machine_busy = match (machine_before, procfs::machine_busy_seconds()) {
        (Some(a), Some(b)) => Some(report::round((b - a) / window, 3)),
        _ => None,
    };
    let until = Instant::now() + Duration::from_secs(10);
    while in_flight.load(Relaxed) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let joins = c.join_latency.merged();
    let connects = c.connect_latency.merged();
    let done = c.completed_window.load(Relaxed);
    let cpu = match (before.cpu, after.cpu) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let failed = c.failed.load(Relaxed);
    let short = c.short_history.load(Relaxed);
    let result = json!({
        "scenario": "joins", "transport": transport.name(),
        "target_rate": rate, "rooms": rooms, "history": history, "history_written": filled,
        "window_s": report::round(window, 3),
        "started": i, "completed_window": done, "completed": c.completed.load(Relaxed),
        "joins_per_s": report::round(done as f64 / window, 1),
        "failed": failed, "short_history": short, "skipped_over_in_flight_cap": skipped,
        "join_to_history": report::summary(&joins),
        "connect": report::summary(&connects),
        "server_pid": pid,
        "server_cpu_s": cpu.map(|x| report::round(x, 3)),
        "server_cpu_util": cpu.map(|x| report::round(x / window, 3)),
        "server_cpu_us_per_join": cpu.filter(|_| done > 0).map(|x| report::round(x * 1e6 / done as f64, 1)),
        "server_rss_bytes": after.rss,
        "loadgen_cpu_s": report::round(own_cpu, 3),
        "machine_busy_cores": machine_busy,
    });
    let readable = vec![
        format!("joins: target {rate}/s into {rooms} rooms with {history} messages each ({filled} written)"),
        format!("  completed {done} in {window:.2} s = {:.0}/s; failed {failed}, short history {short}, skipped {skipped}", done as f64 / window),
        format!("  join → previousMessages: {}", report::brief(&joins)),
        format!("  connect (TCP + WS + Socket.IO CONNECT): {}", report::brief(&connects)),
        format!("  server CPU {:?} s, RSS {:?} bytes; loadgen CPU {own_cpu:.2} s", cpu.map(|x| report::round(x, 3)), after.rss),
    ];
    report::emit(&result, &readable, args.flag("quiet"));
    !args.flag("check") || (failed == 0 && short == 0 && done > 0 && filled == rooms * history)
}
