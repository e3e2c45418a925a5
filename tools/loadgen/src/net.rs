//! TCP sockets for many client connections: each bound to a chosen loopback source address
//! (127.0.0.1, 127.0.0.2, …) with IP_BIND_ADDRESS_NO_PORT, so the kernel picks the port at
//! connect time per destination and one process can hold far more connections than one
//! source address has ephemeral ports. Also raises the descriptor limit to its hard maximum.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use tokio::net::{TcpSocket, TcpStream};

/// The server to drive: host and port from `--url http://HOST:PORT` (path is `/socket.io/`).
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

impl Target {
    /// Parses `http://127.0.0.1:3000`, `ws://…` or a bare `HOST:PORT`.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .unwrap_or(url);
        let host = rest.split('/').next().unwrap_or(rest).to_string();
        let addr = host
            .parse::<SocketAddr>()
            .map_err(|e| format!("--url {url:?}: {e} (use http://IP:PORT)"))?;
        Ok(Target { addr, host })
    }
}

/// The `index`-th of `count` loopback source addresses: 127.0.0.1 + index % count.
pub fn source_ip(index: usize, count: usize) -> Ipv4Addr {
    let n = (index % count.max(1)) as u32;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 1)) + n)
}

/// Connects to `target` from `src` (port chosen by the kernel at connect), TCP_NODELAY on.
pub async fn connect(target: &Target, src: Ipv4Addr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if src != Ipv4Addr::new(127, 0, 0, 1) || target.addr.ip().is_loopback() {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket.bind(SocketAddr::V4(SocketAddrV4::new(src, 0)))?;
    }
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a stack struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}
