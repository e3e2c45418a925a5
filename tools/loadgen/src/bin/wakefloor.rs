//! `wakefloor`: what one small message costs in time between two idle threads on separate
//! CPUs over loopback TCP, with nothing else to do — the part of a chat server's latency that
//! belongs to the machine (its scheduler, its idle states, a virtual machine's vCPU wake-ups)
//! and not to the server. A prober thread (on `--client-cpu`) sends a 64-byte message every
//! `--gap-ms`, sleeping in between, to a responder thread (on `--server-cpu`) blocked in
//! `recvmsg`, which answers at once. With `SO_TIMESTAMPNS` on both sockets it measures:
//!
//! - *hop*: send → the kernel's receive timestamp at the responder (the loopback path);
//! - *wake*: that timestamp → the responder's `recvmsg` returned (waking an idle thread);
//! - *round trip*: send → the prober read the answer (both wake-ups, both hops).
//!
//! Prints one JSON line (stdout) and a readable summary (stderr).

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use std::io::{self, IoSliceMut, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Pins the calling thread to `cpu` (no-op for None).
fn pin(cpu: Option<usize>) -> io::Result<()> {
    let Some(cpu) = cpu else { return Ok(()) };
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(io::Error::from)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(io::Error::from)
}

/// Blocking read of exactly `buf.len()` bytes; the kernel timestamp of the last read.
fn read_stamped(stream: &TcpStream, buf: &mut [u8]) -> io::Result<u64> {
    let mut got = 0;
    let mut stamp = 0;
    while got < buf.len() {
        let mut iov = [IoSliceMut::new(&mut buf[got..])];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let msg = recvmsg::<SockaddrStorage>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )?;
        if msg.bytes == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += msg.bytes;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                stamp = ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64;
            }
        }
    }
    Ok(stamp)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64 / 1e6
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help") {
        eprintln!("usage: wakefloor [--count 300] [--gap-ms 20] [--server-cpu N] [--client-cpu M]");
        return Ok(());
    }
    let count: usize = arg(&args, "--count", 300);
    let gap = Duration::from_secs_f64(arg(&args, "--gap-ms", 20.0) / 1000.0);
    let server_cpu: Option<usize> = args
        .iter()
        .position(|a| a == "--server-cpu")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let client_cpu: Option<usize> = args
        .iter()
        .position(|a| a == "--client-cpu")
        .and_then(|i| args.get(i + 1)?.parse().ok());

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
        setsockopt(&s.as_fd(), sockopt::ReceiveTimestampns, &true)?;
    }
    // Receive timestamping is switched on by deferred kernel work after the first request.
    std::thread::sleep(Duration::from_millis(50));

    let responder = std::thread::spawn(move || -> io::Result<Vec<(u64, u64, u64)>> {
        pin(server_cpu)?;
        let mut server = server;
        let mut out = Vec::with_capacity(count);
        let mut buf = [0u8; 64];
        for _ in 0..count {
            let arrived = read_stamped(&server, &mut buf)?;
            let woke = now_ns();
            let sent = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
            server.write_all(&buf)?;
            out.push((sent, arrived, woke));
        }
        Ok(out)
    });

    pin(client_cpu)?;
    let mut client = client;
    let mut rtt = Vec::with_capacity(count);
    let mut buf = [0u8; 64];
    for _ in 0..count {
        std::thread::sleep(gap);
        let sent = now_ns();
        buf[..8].copy_from_slice(&sent.to_le_bytes());
        client.write_all(&buf)?;
        read_stamped(&client, &mut buf)?;
        rtt.push(now_ns().saturating_sub(sent));
    }
    let samples = responder
        .join()
        .map_err(|_| io::Error::other("responder panicked"))??;
    let mut hop: Vec<u64> = samples
        .iter()
        .map(|&(s, a, _)| a.saturating_sub(s))
        .collect();
    let mut wake: Vec<u64> = samples
        .iter()
        .map(|&(_, a, w)| w.saturating_sub(a))
        .collect();
    hop.sort_unstable();
    wake.sort_unstable();
    rtt.sort_unstable();
    let summary = |v: &[u64]| {
        serde_json::json!({
            "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99), "max_ms": pct(v, 1.0)
        })
    };
    let result = serde_json::json!({
        "count": count,
        "gap_ms": gap.as_secs_f64() * 1000.0,
        "server_cpu": server_cpu, "client_cpu": client_cpu,
        "hop": summary(&hop), "wake": summary(&wake), "round_trip": summary(&rtt),
    });
    for (name, v) in [("hop", &hop), ("wake", &wake), ("round trip", &rtt)] {
        eprintln!(
            "wakefloor {name}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (n={count}, gap {} ms)",
            pct(v, 0.5),
            pct(v, 0.99),
            pct(v, 1.0),
            gap.as_millis()
        );
    }
    println!("{result}");
    Ok(())
}
