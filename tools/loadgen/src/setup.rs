//! Bringing up many clients at once: connecting with a bounded number in flight, joining
//! each to its room with an acknowledged `joinRoom`, and the run-wide identifiers (a run id
//! and a fresh range of book ids) that keep one run's rooms and messages apart from the
//! history earlier runs left on the server.

use crate::args::Args;
use crate::auth::{self, Minter};
use crate::net::{self, Target};
use crate::proto;
use crate::transport::{self, Conn, Handler, Transport};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// Where and how a scenario connects: `--url` (default `http://127.0.0.1:3000`),
/// `--transport` (default `websocket`) and `--auth` (a token minter, when given). The error
/// names the bad setting.
pub fn connect_args(args: &Args) -> Result<(Target, Transport, Option<Arc<Minter>>), String> {
    let target = Target::parse(args.str("url").unwrap_or("http://127.0.0.1:3000"))?;
    let transport = Transport::parse(args.str("transport").unwrap_or("websocket"))?;
    let auth = Minter::from_args(args)?;
    Ok((target, transport, auth))
}

/// A run id and the first book id of this run's rooms, both derived from the clock.
pub fn run_ids() -> (u32, u64) {
    let now = proto::now_ns();
    let run = ((now / 1_000_000) % 1_000_000_000) as u32;
    // Book ids well inside 1..2^53, a fresh block of 100,000 per millisecond-ish run id.
    let base = 1_000_000 + (run as u64 % 10_000_000) * 100_000;
    (run, base)
}

/// Where a connection's join acknowledgement is reported: id 0 is reserved for `joinRoom`.
pub type JoinSlot = Arc<Mutex<Option<oneshot::Sender<bool>>>>;

/// Handles a `30[...]` join ack if `packet` is one; true when it was.
pub fn on_join_ack(packet: &str, slot: &JoinSlot) -> bool {
    match proto::parse_ack(packet) {
        Some((0, ok)) => {
            if let Some(tx) = slot.lock().ok().and_then(|mut s| s.take()) {
                let _ = tx.send(ok);
            }
            true
        }
        _ => false,
    }
}

/// One client to bring up: where from, which book, and its packet handler.
pub struct Spec<H> {
    pub src_index: usize,
    pub book: u64,
    pub user: String,
    pub slot: JoinSlot,
    pub handler: H,
}

/// Connects and joins every client in `specs` with at most `concurrency` in flight, each
/// presenting a token for its `user` when `auth` is given; the result keeps each client's
/// position (`None` for one that failed to connect or join).
pub async fn bring_up<H: Handler>(
    target: &Target,
    transport: Transport,
    src_ips: usize,
    concurrency: usize,
    auth: Option<&Minter>,
    specs: Vec<Spec<H>>,
) -> Vec<Option<Conn>> {
    bring_up_spread(
        std::slice::from_ref(target),
        transport,
        src_ips,
        concurrency,
        auth,
        specs,
    )
    .await
}

/// [`bring_up`] over several servers (the nodes of a cluster): the client of `src_index` i
/// connects to `targets[i % targets.len()]`, round-robin. `targets` must not be empty (an
/// empty slice connects nobody: every position is `None`).
pub async fn bring_up_spread<H: Handler>(
    targets: &[Target],
    transport: Transport,
    src_ips: usize,
    concurrency: usize,
    auth: Option<&Minter>,
    specs: Vec<Spec<H>>,
) -> Vec<Option<Conn>> {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(specs.len());
    for spec in specs {
        let gate = gate.clone();
        let Some(target) = targets.get(spec.src_index % targets.len().max(1)).cloned() else {
            tasks.push(tokio::spawn(async { None }));
            continue;
        };
        let payload = match auth::connect_payload(auth, &spec.user, &[]) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("loadgen: client {}: {e}", spec.user);
                tasks.push(tokio::spawn(async { None }));
                continue;
            }
        };
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            join_one(&target, transport, src_ips, payload.as_deref(), spec).await
        }));
    }
    let mut conns = Vec::with_capacity(tasks.len());
    for t in tasks {
        conns.push(t.await.ok().flatten());
    }
    conns
}

async fn join_one<H: Handler>(
    target: &Target,
    transport: Transport,
    src_ips: usize,
    payload: Option<&str>,
    spec: Spec<H>,
) -> Option<Conn> {
    let (tx, rx) = oneshot::channel();
    if let Ok(mut s) = spec.slot.lock() {
        *s = Some(tx);
    }
    let src = net::source_ip(spec.src_index, src_ips);
    let attempt = async {
        let conn = match transport::connect(target, transport, src, payload, spec.handler).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("loadgen: client {}: {e}", spec.user);
                return None;
            }
        };
        conn.send(proto::join_room(0, spec.book, &spec.user, &spec.user));
        match rx.await {
            Ok(true) => Some(conn),
            _ => None,
        }
    };
    match tokio::time::timeout(Duration::from_secs(30), attempt).await {
        Ok(Some(conn)) => Some(conn),
        Ok(None) => {
            eprintln!("loadgen: client {} failed to connect or join", spec.user);
            None
        }
        Err(_) => {
            eprintln!(
                "loadgen: client {} timed out connecting or joining",
                spec.user
            );
            None
        }
    }
}
