//! The `history` scenario: one room holding many messages (up to millions), readers paging
//! back through it with `loadHistory {bookId, before, limit}` (docs/API.md, "loadHistory"),
//! and the page ack's latency (HDR: p50, p99, p99.9, max) against the goal p99 ≤ 1 ms.
//!
//! 1. **Seed** (`--seed N`, skipped with 0): `--writers` connections join the room and post N
//!    short messages between them, each keeping `--window` `chatMessage`s in flight (the next
//!    goes out when an ack comes back). The server's per-connection rate limit must be raised
//!    for this (`--message-rate 1000000 --message-burst 1000000`); a `rate_limited` ack stops
//!    the run with that hint. `--book B` seeds (or, with `--seed 0`, reuses) room B instead of
//!    a fresh one, so a big room is written once and paged many times.
//! 2. **Survey**: one connection pages the whole room from the newest message down with
//!    `limit` 100 until `hasMore` is false, checking that the `_id`s strictly decrease across
//!    pages (each message once) and keeping every page's last `_id`: the readers' start points,
//!    one per 100 messages over the whole depth of the room. Not timed.
//! 3. **Readers**: `--readers` connections join the room; each picks a random start point and
//!    reads `--walk` pages down from it (each page's last `_id` is the next `before`), then
//!    jumps to another, at `--rate` pages per second (0: each sends the next page as soon as the
//!    last one is answered). Every page is checked: `ok`, `_id`s strictly decreasing and below
//!    `before`, `limit` messages unless `hasMore` is false. Latency is send → the ack's read
//!    by this process and send → its kernel arrival (as in `fanout`), over the counted window
//!    after `--warmup`.

use crate::args::Args;
use crate::auth::Minter;
use crate::net::Target;
use crate::procfs::{self, ServerSample};
use crate::proto;
use crate::report::{self, ShardedHistogram};
use crate::setup::{self, JoinSlot, Spec};
use crate::transport::{Conn, Transport};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// An ack as the handler saw it: the packet, when this process read it, its kernel arrival.
struct Ack {
    packet: String,
    read_ns: u64,
    arrival_ns: Option<u64>,
}

/// A connection whose acks (other than the join's) are handed to a channel.
struct Pager {
    conn: Conn,
    acks: mpsc::UnboundedReceiver<Ack>,
}

/// Brings up `users.len()` clients joined to `book`; each one's non-join acks go to its
/// channel. Clients that failed are left out (their count is the second value).
async fn pagers(
    target: &Target,
    transport: Transport,
    auth: Option<&Minter>,
    book: u64,
    users: &[String],
) -> (Vec<Pager>, usize) {
    let mut receivers = Vec::new();
    let mut specs = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        receivers.push(rx);
        let slot: JoinSlot = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        specs.push(Spec {
            src_index: i,
            book,
            user: user.clone(),
            slot,
            handler: move |p: &str, arrival: Option<u64>| {
                if p.starts_with('3') && !setup::on_join_ack(p, &s2) {
                    let _ = tx.send(Ack {
                        packet: p.to_string(),
                        read_ns: proto::now_ns(),
                        arrival_ns: arrival,
                    });
                }
            },
        });
    }
    let conns = setup::bring_up(target, transport, 4, 50, auth, specs).await;
    let mut out = Vec::new();
    let mut failed = 0;
    for (conn, acks) in conns.into_iter().zip(receivers) {
        match conn {
            Some(conn) => out.push(Pager { conn, acks }),
            None => failed += 1,
        }
    }
    (out, failed)
}

/// `42<ack>["loadHistory",{"bookId":B,"before":"…","limit":L}]` (`before` left out for the
/// newest page).
fn load_history(ack: u64, book: u64, before: Option<&str>, limit: usize) -> String {
    let mut payload = json!({ "bookId": book, "limit": limit });
    if let Some(b) = before {
        payload["before"] = Value::String(b.to_string());
    }
    format!(r#"42{ack}["loadHistory",{payload}]"#)
}

/// A page answer read out of `3<id>[{"ok":true,"messages":[…],"hasMore":…}]`.
#[derive(Debug, PartialEq)]
struct Page {
    ids: Vec<String>,
    has_more: bool,
}

/// Why a page answer is not a good page.
#[derive(Debug, PartialEq)]
enum PageError {
    /// `ok: false`: the error code.
    Refused(String),
    /// The answer does not have the documented shape.
    Malformed,
}

/// Parses a page ack (the Engine.IO `4` already stripped), checking its shape.
fn parse_page(packet: &str) -> Result<Page, PageError> {
    let body = packet.trim_start_matches(|c: char| c == '3' || c.is_ascii_digit());
    let v: Value = serde_json::from_str(body).map_err(|_| PageError::Malformed)?;
    let answer = v.get(0).ok_or(PageError::Malformed)?;
    if answer.get("ok") != Some(&Value::Bool(true)) {
        let code = answer
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        return Err(PageError::Refused(code.to_string()));
    }
    let messages = answer
        .get("messages")
        .and_then(Value::as_array)
        .ok_or(PageError::Malformed)?;
    let ids = messages
        .iter()
        .map(|m| m.get("_id").and_then(Value::as_str).map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or(PageError::Malformed)?;
    let has_more = answer
        .get("hasMore")
        .and_then(Value::as_bool)
        .ok_or(PageError::Malformed)?;
    Ok(Page { ids, has_more })
}

/// True when `page` is a correct answer to "`limit` messages before `before`": ids strictly
/// decreasing (docs/API.md: 24 lowercase hex characters, so text order is id order), all
/// below `before`, and a full page unless the room has no more.
fn page_is_good(page: &Page, before: Option<&str>, limit: usize) -> bool {
    let ordered = page.ids.windows(2).all(|w| w[0] > w[1]);
    let below = match (before, page.ids.first()) {
        (Some(b), Some(first)) => first.as_str() < b,
        _ => true,
    };
    let full = page.ids.len() == limit || (!page.has_more && page.ids.len() <= limit);
    ordered && below && full && !(page.has_more && page.ids.is_empty())
}

/// Sends one `loadHistory` on `pager` and waits (up to 10 s) for its ack.
async fn request(
    pager: &mut Pager,
    ack: u64,
    book: u64,
    before: Option<&str>,
    limit: usize,
) -> Option<Ack> {
    if !pager.conn.send(load_history(ack, book, before, limit)) {
        return None;
    }
    let wait = async {
        while let Some(a) = pager.acks.recv().await {
            if proto::parse_ack(&a.packet).is_some_and(|(id, _)| id == ack) {
                return Some(a);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .ok()
        .flatten()
}

/// What seeding did.
struct Seeded {
    acked: u64,
    errors: BTreeMap<String, u64>,
    seconds: f64,
}

/// Posts `count` messages into `book` from `writers`, each with `window` in flight.
async fn seed(writers: Vec<Pager>, book: u64, count: u64, window: usize) -> Seeded {
    let started = Instant::now();
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let n = writers.len().max(1) as u64;
    let mut tasks = Vec::new();
    for (w, mut pager) in writers.into_iter().enumerate() {
        let share = count / n + u64::from((w as u64) < count % n);
        let (acked, errors, stop) = (acked.clone(), errors.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let gate = Arc::new(Semaphore::new(window.max(1)));
            let user = format!("w{w}");
            // Acks come back on the pager's channel; a task returns their permits.
            let (g2, a2, e2, s2) = (gate.clone(), acked.clone(), errors.clone(), stop.clone());
            let mut acks = std::mem::replace(&mut pager.acks, mpsc::unbounded_channel().1);
            let returner = tokio::spawn(async move {
                let mut seen = 0;
                while seen < share {
                    let Ok(Some(a)) =
                        tokio::time::timeout(Duration::from_secs(10), acks.recv()).await
                    else {
                        break;
                    };
                    let Some((_, ok)) = proto::parse_ack(&a.packet) else {
                        continue;
                    };
                    seen += 1;
                    if ok {
                        a2.fetch_add(1, Relaxed);
                    } else {
                        let code = proto::ack_error_code(&a.packet).to_string();
                        if let Ok(mut e) = e2.lock() {
                            *e.entry(code).or_insert(0) += 1;
                        }
                        s2.store(true, Relaxed);
                    }
                    g2.add_permits(1);
                }
            });
            for i in 0..share {
                if stop.load(Relaxed) {
                    break;
                }
                let Ok(permit) = gate.acquire().await else {
                    break;
                };
                permit.forget();
                let content = format!("history {w}-{i}");
                if !pager
                    .conn
                    .send(proto::chat_message(i + 1, book, &user, &user, &content))
                {
                    break;
                }
            }
            let _ = returner.await;
            pager.conn.close();
        }));
    }
    let progress = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let now = acked.load(Relaxed);
                eprintln!(
                    "history: seeded {now} of {count} ({:.0}/s)",
                    (now - last) as f64 / 5.0
                );
                last = now;
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    progress.abort();
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    Seeded {
        acked: acked.load(Relaxed),
        errors,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// What the survey found: the room's message count, every page's last id (start points),
/// and whether the ids strictly decreased all the way down.
struct Survey {
    messages: u64,
    starts: Vec<String>,
    ordered: bool,
    error: Option<String>,
}

async fn survey(pager: &mut Pager, book: u64) -> Survey {
    let mut s = Survey {
        messages: 0,
        starts: Vec::new(),
        ordered: true,
        error: None,
    };
    let mut before: Option<String> = None;
    let mut ack = 1;
    loop {
        let Some(a) = request(pager, ack, book, before.as_deref(), 100).await else {
            s.error = Some("no answer to a survey page".into());
            return s;
        };
        ack += 1;
        let page = match parse_page(&a.packet) {
            Ok(p) => p,
            Err(e) => {
                s.error = Some(format!("survey page: {e:?}"));
                return s;
            }
        };
        s.ordered &= page_is_good(&page, before.as_deref(), 100);
        s.messages += page.ids.len() as u64;
        let Some(last) = page.ids.last() else {
            return s;
        };
        s.starts.push(last.clone());
        if !page.has_more {
            return s;
        }
        before = Some(last.clone());
    }
}

/// Counters and histograms shared by the readers.
struct Counters {
    window_start: AtomicU64,
    window_end: AtomicU64,
    pages: AtomicU64,
    pages_window: AtomicU64,
    messages_window: AtomicU64,
    bad_pages: AtomicU64,
    timeouts: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    latency: ShardedHistogram,
    arrival: ShardedHistogram,
}

/// What one reader does: its index, how fast, how deep each walk goes.
struct ReaderPlan {
    index: usize,
    book: u64,
    limit: usize,
    walk: usize,
    rate: f64,
}

/// One reader: random start point, `walk` pages down, again, until `stop`.
async fn read_loop(
    mut pager: Pager,
    plan: ReaderPlan,
    starts: Arc<Vec<String>>,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = (proto::now_ns() ^ (plan.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    let mut tick = (plan.rate > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut ack = 1;
    while !stop.load(Relaxed) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Start point 0 is the newest page (no `before`); k > 0 is below survey page k-1.
        let k = (rng % (starts.len() as u64 + 1)) as usize;
        let mut before = k.checked_sub(1).and_then(|i| starts.get(i)).cloned();
        for _ in 0..plan.walk {
            if let Some(t) = tick.as_mut() {
                t.tick().await;
            }
            if stop.load(Relaxed) {
                return;
            }
            let sent = proto::now_ns();
            let answer = request(&mut pager, ack, plan.book, before.as_deref(), plan.limit).await;
            ack += 1;
            let Some(a) = answer else {
                c.timeouts.fetch_add(1, Relaxed);
                if pager.conn.is_closed() {
                    return;
                }
                continue;
            };
            c.pages.fetch_add(1, Relaxed);
            let start = c.window_start.load(Relaxed);
            let end = c.window_end.load(Relaxed);
            let in_window = start != 0 && sent >= start && (end == 0 || sent <= end);
            if in_window {
                c.pages_window.fetch_add(1, Relaxed);
                c.latency
                    .record(plan.index, a.read_ns.saturating_sub(sent) / 1000);
                if let Some(t) = a.arrival_ns {
                    c.arrival.record(plan.index, t.saturating_sub(sent) / 1000);
                }
            }
            match parse_page(&a.packet) {
                Ok(page) => {
                    if in_window {
                        c.messages_window.fetch_add(page.ids.len() as u64, Relaxed);
                    }
                    if !page_is_good(&page, before.as_deref(), plan.limit) {
                        c.bad_pages.fetch_add(1, Relaxed);
                    }
                    match page.ids.last() {
                        Some(last) if page.has_more => before = Some(last.clone()),
                        _ => break,
                    }
                }
                Err(e) => {
                    let code = match e {
                        PageError::Refused(code) => code,
                        PageError::Malformed => "malformed".to_string(),
                    };
                    if let Ok(mut m) = c.errors.lock() {
                        *m.entry(code).or_insert(0) += 1;
                    }
                    break;
                }
            }
        }
    }
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
    let seed_count: u64 = args.get("seed", 100_000);
    let writers: usize = args.get("writers", 2);
    let window: usize = args.get("window", 256);
    let readers: usize = args.get("readers", 8);
    let rate: f64 = args.get("rate", 100.0);
    let limit: usize = args.get("limit", 50);
    let walk: usize = args.get("walk", 20);
    let warmup: f64 = args.get("warmup", 2.0);
    let duration: f64 = args.get("duration", 10.0);
    let pid: Option<u32> = args.str("server-pid").and_then(|s| s.parse().ok());
    if readers == 0 || writers == 0 || walk == 0 || !(1..=100).contains(&limit) || rate < 0.0 {
        eprintln!("loadgen: need readers ≥ 1, writers ≥ 1, walk ≥ 1, 1 ≤ limit ≤ 100, rate ≥ 0");
        return false;
    }
    crate::net::raise_fd_limit();
    let (run, base) = setup::run_ids();
    let fresh = args.str("book").is_none();
    let book: u64 = args.get("book", base);

    // 1. Seed.
    let seeded = if seed_count > 0 {
        let users: Vec<String> = (0..writers).map(|w| format!("w{w}")).collect();
        let (ws, failed) = pagers(&target, transport, auth.as_deref(), book, &users).await;
        if failed > 0 {
            eprintln!("loadgen: {failed} of {writers} writers failed to connect or join");
            return false;
        }
        eprintln!("history: seeding {seed_count} messages into book {book} from {writers} writers, {window} in flight each");
        let s = seed(ws, book, seed_count, window).await;
        if s.errors.contains_key("rate_limited") {
            eprintln!(
                "loadgen: the server rate-limited the seeding; start it with \
                 --message-rate 1000000 --message-burst 1000000 for this scenario"
            );
        }
        eprintln!(
            "history: {} of {seed_count} seeded in {:.1} s ({:.0}/s), errors {:?}",
            s.acked,
            s.seconds,
            s.acked as f64 / s.seconds.max(1e-9),
            s.errors
        );
        s
    } else {
        Seeded {
            acked: 0,
            errors: BTreeMap::new(),
            seconds: 0.0,
        }
    };

    // 2. Survey, 3. readers.
    let users: Vec<String> = (0..=readers).map(|r| format!("r{run}x{r}")).collect();
    let (mut ps, failed) = pagers(&target, transport, auth.as_deref(), book, &users).await;
    if ps.is_empty() {
        eprintln!("loadgen: no reader could connect and join");
        return false;
    }
    let mut surveyor = ps.remove(0);
    let surveyed_at = Instant::now();
    let sv = survey(&mut surveyor, book).await;
    surveyor.conn.close();
    eprintln!(
        "history: room holds {} messages ({} start points, surveyed in {:.1} s)",
        sv.messages,
        sv.starts.len(),
        surveyed_at.elapsed().as_secs_f64()
    );
    let starts = Arc::new(sv.starts.clone());
    let c = Arc::new(Counters {
        window_start: AtomicU64::new(0),
        window_end: AtomicU64::new(0),
        pages: AtomicU64::new(0),
        pages_window: AtomicU64::new(0),
        messages_window: AtomicU64::new(0),
        bad_pages: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
        latency: ShardedHistogram::new(16),
        arrival: ShardedHistogram::new(16),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let reading = ps.len();
    let mut tasks = Vec::new();
    for (index, pager) in ps.into_iter().enumerate() {
        let conn = pager.conn.clone();
        let plan = ReaderPlan {
            index,
            book,
            limit,
            walk,
            rate,
        };
        tasks.push((
            conn,
            tokio::spawn(read_loop(
                pager,
                plan,
                starts.clone(),
                c.clone(),
                stop.clone(),
            )),
        ));
    }
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    let before = ServerSample::take(pid);
    let own_before = procfs::own_cpu_seconds();
    let machine_before = procfs::machine_busy_seconds();
    let started = Instant::now();
    c.window_start.store(proto::now_ns(), Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(duration)).await;
    c.window_end.store(proto::now_ns(), Relaxed);
    let window_s = started.elapsed().as_secs_f64();
    let after = ServerSample::take(pid);
    let own_cpu = procfs::own_cpu_seconds() - own_before;
    let machine_busy = match (machine_before, procfs::machine_busy_seconds()) {
        (Some(a), Some(b)) => Some(report::round((b - a) / window_s, 3)),
        _ => None,
    };
    stop.store(true, Relaxed);
    for (conn, task) in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(11), task).await;
        conn.close();
    }

    let latency = c.latency.merged();
    let arrival = c.arrival.merged();
    let pages = c.pages_window.load(Relaxed);
    let bad = c.bad_pages.load(Relaxed);
    let timeouts = c.timeouts.load(Relaxed);
    let errors = c.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let cpu = match (before.cpu, after.cpu) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let p99_ms = latency.value_at_quantile(0.99) as f64 / 1000.0;
    // No page answered is no evidence for the goal.
    let goal_met = pages > 0 && p99_ms <= 1.0;
    let arrival_summary = if arrival.is_empty() {
        Value::Null
    } else {
        report::summary(&arrival)
    };
    // A fresh room must hold exactly what was seeded; a reused one at least that.
    let survey_ok = sv.error.is_none()
        && sv.ordered
        && if fresh {
            sv.messages == seeded.acked
        } else {
            sv.messages >= seeded.acked
        };
    let result = json!({
        "scenario": "history", "transport": transport.name(), "book": book,
        "seed_requested": seed_count, "seeded": seeded.acked,
        "seed_s": report::round(seeded.seconds, 3),
        "seed_per_s": report::round(seeded.acked as f64 / seeded.seconds.max(1e-9), 1),
        "seed_errors": seeded.errors,
        "writers": writers, "seed_window": window,
        "room_messages": sv.messages, "survey_ordered": sv.ordered, "survey_error": sv.error,
        "readers": reading, "reader_failures": failed, "rate_per_reader": rate,
        "limit": limit, "walk": walk,
        "window_s": report::round(window_s, 3),
        "pages_window": pages, "pages_total": c.pages.load(Relaxed),
        "pages_per_s": report::round(pages as f64 / window_s, 1),
        "messages_per_s": report::round(c.messages_window.load(Relaxed) as f64 / window_s, 1),
        "bad_pages": bad, "timeouts": timeouts, "errors": errors,
        "page_latency": report::summary(&latency),
        "page_latency_arrival": arrival_summary,
        "goal_p99_ms": 1.0, "goal_met": goal_met,
        "server_pid": pid,
        "server_cpu_s": cpu.map(|x| report::round(x, 3)),
        "server_cpu_us_per_page": cpu.filter(|_| pages > 0).map(|x| report::round(x * 1e6 / pages as f64, 1)),
        "server_rss_bytes": after.rss,
        "loadgen_cpu_s": report::round(own_cpu, 3),
        "machine_busy_cores": machine_busy,
    });
    let readable = vec![
        format!(
            "history: book {book}, {} messages; {reading} readers at {} pages/s each, limit {limit}, walks of {walk}",
            sv.messages,
            if rate > 0.0 { rate.to_string() } else { "max".into() }
        ),
        format!(
            "  {pages} pages in {window_s:.2} s = {:.0}/s; bad {bad}, timeouts {timeouts}, errors {errors:?}",
            pages as f64 / window_s
        ),
        format!("  page send→read:    {}", report::brief(&latency)),
        format!("  page send→arrival: {}", report::brief(&arrival)),
        format!(
            "  goal p99 ≤ 1 ms: {}",
            if goal_met { "met" } else { "NOT met" }
        ),
        format!(
            "  server CPU {:?} s, RSS {:?} bytes; loadgen CPU {own_cpu:.2} s; machine busy {machine_busy:?} cores",
            cpu.map(|x| report::round(x, 3)),
            after.rss
        ),
    ];
    report::emit(&result, &readable, args.flag("quiet"));
    let ok = survey_ok
        && failed == 0
        && bad == 0
        && timeouts == 0
        && errors.is_empty()
        && pages > 0
        && seeded.errors.is_empty()
        && seeded.acked == seed_count;
    !args.flag("check") || ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_history_requests_leave_before_out_for_the_newest_page() {
        assert_eq!(
            load_history(7, 12, None, 50),
            r#"427["loadHistory",{"bookId":12,"limit":50}]"#
        );
        assert_eq!(
            load_history(8, 12, Some("00000000000000000000000a"), 50),
            r#"428["loadHistory",{"before":"00000000000000000000000a","bookId":12,"limit":50}]"#
        );
    }

    #[test]
    fn pages_are_parsed_and_checked() {
        let page =
            parse_page(r#"312[{"ok":true,"messages":[{"_id":"c"},{"_id":"b"}],"hasMore":true}]"#)
                .unwrap();
        assert_eq!(page.ids, vec!["c", "b"]);
        assert!(page.has_more);
        assert!(page_is_good(&page, Some("d"), 2));
        // Not full although more remain; not below `before`; not in order.
        assert!(!page_is_good(&page, Some("d"), 3));
        assert!(!page_is_good(&page, Some("c"), 2));
        let unordered = Page {
            ids: vec!["b".into(), "c".into()],
            has_more: false,
        };
        assert!(!page_is_good(&unordered, None, 50));
        let last = Page {
            ids: vec!["a".into()],
            has_more: false,
        };
        assert!(page_is_good(&last, Some("b"), 50));
        assert_eq!(
            parse_page(r#"31[{"ok":false,"error":{"code":"not_in_room","message":"x"}}]"#),
            Err(PageError::Refused("not_in_room".into()))
        );
        assert_eq!(parse_page(r#"31[{"ok":true}]"#), Err(PageError::Malformed));
        assert_eq!(parse_page("31[oops"), Err(PageError::Malformed));
    }
}
