//! `rawfloor`: what the kernel charges a writer to deliver one chat frame over loopback TCP —
//! the floor a chat server's deliveries per CPU-second are compared with. It opens N loopback
//! connections, drains their client ends on a reader thread (epoll), and on the writer thread
//! writes a pre-encoded ~190-byte WebSocket text frame holding a `newMessage` to each of the
//! N sockets, round after round: first one frame per write, then 4 frames per write. The
//! writer's own thread CPU time (CLOCK_THREAD_CPUTIME_ID) divided by the frames written is
//! the cost per frame. Prints one JSON line (stdout) and a readable summary (stderr).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// This thread's CPU time in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills a stack timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// A server-to-client WebSocket text frame (FIN, opcode 1, unmasked) carrying a
/// `42["newMessage",{…}]` packet with every field of a Message, its content padded so the
/// whole frame is `size` bytes (or the smallest such frame, if `size` is below it).
fn frame(size: usize) -> Vec<u8> {
    let packet = |content: &str| {
        format!(
            r#"42["newMessage",{{"_id":"6743f0c2a1b2c3d4e5f60718","bookId":2701,"userId":"u17","username":"u17","content":"{content}","createdAt":"2026-11-24T12:00:00.000Z","updatedAt":"2026-11-24T12:00:00.000Z"}}]"#
        )
    };
    let mut content = String::from("t=1");
    let header = |len: usize| if len < 126 { 2 } else { 4 };
    while header(packet(&content).len()) + packet(&content).len() < size {
        content.push('.');
    }
    let payload = packet(&content).into_bytes();
    let mut f = vec![0x81];
    if payload.len() < 126 {
        f.push(payload.len() as u8);
    } else {
        f.push(126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&payload);
    f
}

/// Drains every client socket until `stop`; returns the bytes read.
fn drain(clients: Vec<TcpStream>, stop: Arc<AtomicBool>) -> io::Result<u64> {
    // SAFETY: epoll_create1 with no flags.
    let ep = unsafe { libc::epoll_create1(0) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    for (i, c) in clients.iter().enumerate() {
        c.set_nonblocking(true)?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: valid epoll and socket descriptors, a stack event.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, c.as_raw_fd(), &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 65536];
    let mut total = 0u64;
    let mut clients = clients;
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `events` has room for 256 entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), 256, 50) };
        for ev in events.iter().take(n.max(0) as usize) {
            let Some(c) = clients.get_mut(ev.u64 as usize) else {
                continue;
            };
            loop {
                match c.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => total += k as u64,
                    Err(_) => break,
                }
            }
        }
    }
    // SAFETY: closing our own epoll descriptor.
    unsafe { libc::close(ep) };
    Ok(total)
}

/// How the writer paces itself: unpaced (as fast as it can) or `rate` frames per second in
/// rounds of `round` sockets, sleeping between rounds as a server between broadcasts does.
#[derive(Clone, Copy)]
struct Pace {
    rate: f64,
    round: usize,
}

/// Writes `batch` frames per write to the sockets in turn for `secs`, paced by `pace`.
/// Returns (frames, writes, writer CPU seconds, wall seconds).
fn write_rounds(
    socks: &mut [TcpStream],
    frame: &[u8],
    batch: usize,
    secs: f64,
    pace: Pace,
) -> io::Result<(u64, u64, f64, f64)> {
    let buf: Vec<u8> = frame.repeat(batch);
    let (mut frames, mut writes) = (0u64, 0u64);
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let round = pace.round.clamp(1, socks.len().max(1));
    let gap =
        (pace.rate > 0.0).then(|| Duration::from_secs_f64((round * batch) as f64 / pace.rate));
    let mut next = t0;
    let mut at = 0;
    while t0.elapsed() < limit {
        for _ in 0..round {
            socks[at].write_all(&buf)?;
            at = (at + 1) % socks.len();
            writes += 1;
            frames += batch as u64;
        }
        if let Some(gap) = gap {
            next += gap;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
    }
    Ok((
        frames,
        writes,
        thread_cpu() - cpu0,
        t0.elapsed().as_secs_f64(),
    ))
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help") {
        eprintln!(
            "usage: rawfloor [--conns 2000] [--duration 3] [--batch 4] [--frame-bytes 190] \\
             [--rate FRAMES_PER_S (0 = unpaced)] [--round 100]"
        );
        return Ok(());
    }
    let conns: usize = arg(&args, "--conns", 2000);
    let secs: f64 = arg(&args, "--duration", 3.0);
    let batch: usize = arg(&args, "--batch", 4);
    let frame_bytes: usize = arg(&args, "--frame-bytes", 190);
    let frame = frame(frame_bytes);
    let pace = Pace {
        rate: arg(&args, "--rate", 0.0),
        round: arg(&args, "--round", 100),
    };

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut clients = Vec::with_capacity(conns);
    let mut servers = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(TcpStream::connect(addr)?);
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        servers.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reader_stop = stop.clone();
    let reader = std::thread::spawn(move || drain(clients, reader_stop));

    // A short untimed warm-up, then the two timed variants.
    write_rounds(&mut servers, &frame, 1, 0.3, pace)?;
    let single = write_rounds(&mut servers, &frame, 1, secs, pace)?;
    let batched = write_rounds(&mut servers, &frame, batch, secs, pace)?;
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let read = reader
        .join()
        .map_err(|_| io::Error::other("reader panicked"))??;

    let figures = |(frames, writes, cpu, wall): (u64, u64, f64, f64)| {
        let us = cpu * 1e6 / frames.max(1) as f64;
        let per_cpu = frames as f64 / cpu.max(1e-9);
        (us, per_cpu, frames, writes, cpu, wall)
    };
    let s = figures(single);
    let b = figures(batched);
    let json = format!(
        concat!(
            r#"{{"tool":"rawfloor","conns":{},"frame_bytes":{},"batch":{},"rate":{},"round":{},"#,
            r#""single":{{"us_per_frame":{:.3},"frames_per_cpu_s":{:.0},"frames":{},"writes":{},"writer_cpu_s":{:.3},"wall_s":{:.3}}},"#,
            r#""batched":{{"us_per_frame":{:.3},"frames_per_cpu_s":{:.0},"frames":{},"writes":{},"writer_cpu_s":{:.3},"wall_s":{:.3}}},"#,
            r#""bytes_read":{}}}"#
        ),
        conns,
        frame.len(),
        batch,
        pace.rate,
        pace.round,
        s.0,
        s.1,
        s.2,
        s.3,
        s.4,
        s.5,
        b.0,
        b.1,
        b.2,
        b.3,
        b.4,
        b.5,
        read
    );
    eprintln!(
        "rawfloor: {conns} loopback connections, {}-byte frame",
        frame.len()
    );
    eprintln!(
        "  1 frame per write:  {:.3} µs per frame = {:.0} frames per writer CPU-second",
        s.0, s.1
    );
    eprintln!(
        "  {batch} frames per write: {:.3} µs per frame = {:.0} frames per writer CPU-second",
        b.0, b.1
    );
    println!("{json}");
    Ok(())
}
