//! The `idle` scenario: N connected, joined, heartbeating clients held for T seconds; the
//! server's RSS growth divided by N is its memory per idle connection. One process may hold
//! only so many descriptors, so the clients are spread over `--procs` child processes of this
//! same binary (`--child`), each with its own descriptor limit and share of the clients, and
//! over several loopback source addresses, so the tool scales past 100,000 where limits allow.
//! A child reports `READY ok failed` once its clients are joined, holds them until its stdin
//! closes, then reports `DONE alive`.

use crate::args::Args;
use crate::net::{self, Target};
use crate::procfs::{self, ServerSample};
use crate::report;
use crate::setup::{self, Spec};
use crate::transport::Transport;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The child side: connect and join this share, report, hold until stdin closes.
async fn child(args: &Args, target: Target, transport: Transport) -> bool {
    let conns: usize = args.get("conns", 1000);
    let offset: usize = args.get("offset", 0);
    let base: u64 = args.get("book-base", 1_000_000);
    let members: usize = args.get("members", 10);
    let src_ips: usize = args.get("src-ips", 8);
    let concurrency: usize = args.get("connect-concurrency", 100);
    let auth = match crate::auth::Minter::from_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return false;
        }
    };
    net::raise_fd_limit();
    let specs = (offset..offset + conns)
        .map(|g| {
            let slot = Arc::new(Mutex::new(None));
            let s2 = slot.clone();
            Spec {
                src_index: g,
                book: base + (g / members.max(1)) as u64,
                user: format!("i{g}"),
                slot,
                // Idle clients ignore everything but their join ack; pings are answered below.
                handler: move |p: &str, _arrival: Option<u64>| {
                    if p.starts_with('3') {
                        setup::on_join_ack(p, &s2);
                    }
                },
            }
        })
        .collect();
    let all = setup::bring_up(
        &target,
        transport,
        src_ips,
        concurrency,
        auth.as_deref(),
        specs,
    )
    .await;
    let ok = all.iter().filter(|c| c.is_some()).count();
    println!("READY {ok} {}", conns - ok);
    let _ = std::io::stdout().flush();
    // Hold until the parent closes our stdin.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await;
    let alive = all.iter().flatten().filter(|c| !c.is_closed()).count();
    println!("DONE {alive}");
    let _ = std::io::stdout().flush();
    true
}

pub async fn run(args: &Args) -> bool {
    let url = args
        .str("url")
        .unwrap_or("http://127.0.0.1:3000")
        .to_string();
    let target = match Target::parse(&url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return false;
        }
    };
    let transport = match Transport::parse(args.str("transport").unwrap_or("websocket")) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return false;
        }
    };
    if args.flag("child") {
        return child(args, target, transport).await;
    }
    let n: usize = args.get("conns", 19_000);
    let per_proc_max: usize = args.get("per-proc", 15_000);
    let procs: usize = args.get("procs", n.div_ceil(per_proc_max).max(1));
    let members: usize = args.get("members", 10);
    let hold: f64 = args.get("hold", 30.0);
    let settle: f64 = args.get("settle", 2.0);
    // Servers may cap connections per client address (readrealm-chat: 1,024 by default), as
    // many clients behind few addresses is not what a real audience looks like: at most 500
    // clients per loopback source address by default.
    let src_ips: usize = args.get("src-ips", n.div_ceil(500).max(4));
    let concurrency: usize = args.get("connect-concurrency", 100);
    let pid: Option<u32> = args.str("server-pid").and_then(|s| s.parse().ok());
    let (_, base) = setup::run_ids();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("loadgen: cannot find own executable: {e}");
            return false;
        }
    };
    let before = ServerSample::take(pid);
    let began = Instant::now();
    let mut children = Vec::new();
    let mut offset = 0;
    for k in 0..procs {
        let share = n / procs + usize::from(k < n % procs);
        let mut command = Command::new(&exe);
        command.arg("idle");
        // The children mint their own clients' tokens from the same secret.
        for name in ["auth", "auth-ttl"] {
            if let Some(v) = args.str(name) {
                command.args([format!("--{name}"), v.to_string()]);
            }
        }
        let spawned = command
            .args(["--child", "--url", &url, "--transport", transport.name()])
            .args([
                "--conns",
                &share.to_string(),
                "--offset",
                &offset.to_string(),
            ])
            .args([
                "--book-base",
                &base.to_string(),
                "--members",
                &members.to_string(),
            ])
            .args(["--src-ips", &src_ips.to_string()])
            .args(["--connect-concurrency", &concurrency.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        match spawned {
            Ok(c) => children.push(c),
            Err(e) => {
                eprintln!("loadgen: cannot start child {k}: {e}");
                return false;
            }
        }
        offset += share;
    }
    // Each child's READY line, read on the blocking pool.
    let mut readers = Vec::new();
    let mut stdins = Vec::new();
    for c in &mut children {
        stdins.push(c.stdin.take());
        readers.push(c.stdout.take().map(BufReader::new));
    }
    let (ready, readers) = tokio::task::spawn_blocking(move || {
        let mut counts = Vec::new();
        let mut kept = Vec::new();
        for r in readers {
            let mut r = match r {
                Some(r) => r,
                None => continue,
            };
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let nums: Vec<usize> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            counts.push((
                nums.first().copied().unwrap_or(0),
                nums.get(1).copied().unwrap_or(0),
            ));
            kept.push(r);
        }
        (counts, kept)
    })
    .await
    .unwrap_or_default();
    let connected: usize = ready.iter().map(|r| r.0).sum();
    let failed: usize = ready.iter().map(|r| r.1).sum::<usize>()
        + n.saturating_sub(connected + ready.iter().map(|r| r.1).sum::<usize>());
    let ramp = began.elapsed().as_secs_f64();
    eprintln!("idle: {connected} of {n} joined in {ramp:.1} s over {procs} processes");
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let after = ServerSample::take(pid);
    let own_before = procfs::own_cpu_seconds();
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    let end = ServerSample::take(pid);
    drop(stdins);
    let alive: usize = tokio::task::spawn_blocking(move || {
        readers
            .into_iter()
            .map(|mut r| {
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                line.split_whitespace()
                    .nth(1)
                    .and_then(|x| x.parse::<usize>().ok())
                    .unwrap_or(0)
            })
            .sum()
    })
    .await
    .unwrap_or(0);
    for mut c in children {
        let _ = c.wait();
    }
    let own_cpu = procfs::own_cpu_seconds() - own_before;
    let per_conn = |rss: Option<u64>| match (before.rss, rss) {
        (Some(b), Some(a)) if connected > 0 => Some((a as f64 - b as f64) / connected as f64),
        _ => None,
    };
    let hold_cpu = match (after.cpu, end.cpu) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let result = json!({
        "scenario": "idle", "transport": transport.name(),
        "target_conns": n, "connected": connected, "failed": failed, "alive_at_end": alive,
        "procs": procs, "src_ips": src_ips, "members_per_room": members,
        "ramp_s": report::round(ramp, 2), "hold_s": hold,
        "server_pid": pid,
        "server_rss_before_bytes": before.rss, "server_rss_after_bytes": after.rss,
        "server_rss_end_bytes": end.rss,
        "rss_per_conn_bytes": per_conn(after.rss).map(|x| report::round(x, 0)),
        "rss_per_conn_end_bytes": per_conn(end.rss).map(|x| report::round(x, 0)),
        "server_cpu_hold_s": hold_cpu.map(|x| report::round(x, 3)),
        "loadgen_parent_cpu_s": report::round(own_cpu, 3),
    });
    let kib = |x: Option<f64>| {
        x.map(|v| format!("{:.2} KiB", v / 1024.0))
            .unwrap_or("-".into())
    };
    let readable = vec![
        format!("idle: {connected} of {n} connected and joined ({failed} failed) over {procs} processes in {ramp:.1} s; {alive} alive after {hold} s"),
        format!(
            "  server RSS {:?} → {:?} → {:?} bytes: {} per connection after joining, {} at the end of the hold",
            before.rss, after.rss, end.rss, kib(per_conn(after.rss)), kib(per_conn(end.rss))
        ),
        format!("  server CPU during the hold {:?} s", hold_cpu.map(|x| report::round(x, 3))),
    ];
    report::emit(&result, &readable, args.flag("quiet"));
    !args.flag("check") || (failed == 0 && alive == connected && connected == n)
}
