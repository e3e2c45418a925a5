//! What the server process costs, read from /proc: CPU seconds (utime + stime of all its
//! threads, /proc/PID/stat fields 14 and 15) and resident memory (VmRSS in /proc/PID/status).
//! Also this process's own CPU time, to show the load generator was not the bottleneck.

use std::fs;

/// CPU seconds (user + system) the process `pid` has used so far, all threads included.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: start after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / tck)
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds this process (all threads, children excluded) has used so far.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills a zeroed struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU seconds all processes on the machine have spent busy so far (the `cpu` line of
/// /proc/stat less idle and iowait): with the server's and our own, it shows how much of the
/// machine something else used during a run.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((total - idle) / tck)
}

/// A sample of the server's counters at one instant (all `None` without `--server-pid`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerSample {
    pub cpu: Option<f64>,
    pub rss: Option<u64>,
}

impl ServerSample {
    pub fn take(pid: Option<u32>) -> ServerSample {
        match pid {
            None => ServerSample::default(),
            Some(p) => ServerSample {
                cpu: cpu_seconds(p),
                rss: rss_bytes(p),
            },
        }
    }

    /// The sum over several processes (a cluster's nodes and its Redis): CPU seconds and RSS
    /// added up; `None` when `pids` is empty or any of them cannot be read (a partial sum
    /// would pass for the whole).
    pub fn take_all(pids: &[u32]) -> ServerSample {
        if pids.is_empty() {
            return ServerSample::default();
        }
        let mut sum = ServerSample {
            cpu: Some(0.0),
            rss: Some(0),
        };
        for &p in pids {
            let one = ServerSample::take(Some(p));
            sum.cpu = sum.cpu.zip(one.cpu).map(|(a, b)| a + b);
            sum.rss = sum.rss.zip(one.rss).map(|(a, b)| a + b);
        }
        sum
    }
}

/// `--server-pid`'s value as a list: `PID` or `PID,PID,...` (every process counted). The
/// error names the bad item.
pub fn parse_pids(text: &str) -> Result<Vec<u32>, String> {
    text.split(',')
        .map(|p| {
            p.trim()
                .parse::<u32>()
                .map_err(|_| format!("--server-pid {text:?}: {p:?} is not a process id"))
        })
        .collect()
}
