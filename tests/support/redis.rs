//! A real `redis-server` for tests: started on a free loopback port with the cluster's
//! durability settings (`--appendonly yes --appendfsync always --save ""`) in its own
//! temporary directory, waited for until it answers PING, killed (SIGKILL) and its directory
//! removed at drop. `kill`/`restart` let a test take it down and bring it back on the same
//! port from the same AOF; `start_replica` starts another one as its replica (`--replicaof`)
//! and waits until the primary counts it online; `command` sends one command over a bare
//! socket (no client library). `start_tls` starts one that speaks only TLS on its port (no
//! plaintext port; `command` and the PING wait do not apply: it is waited for until its port
//! accepts connections). Include with `#[path = "support/redis.rs"] mod redis_server;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    /// Arguments beyond the common ones (`--replicaof host port` for a replica).
    extra: Vec<String>,
    /// TLS only (`--port 0 --tls-port <port>`, the certificate files in `dir`).
    tls: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Start one; panics (the test fails) if `redis-server` is missing or never answers.
    pub fn start() -> RedisServer {
        RedisServer::start_with(Vec::new())
    }

    /// Start one that speaks only TLS on its port, with the server certificate `cert_pem`,
    /// its key `key_pem` and the CA `ca_pem` that issued it (PEM); clients are not asked for
    /// certificates (`--tls-auth-clients no`).
    pub fn start_tls(ca_pem: &str, cert_pem: &str, key_pem: &str) -> RedisServer {
        let mut server = RedisServer::prepare(Vec::new());
        server.tls = true;
        for (name, pem) in [
            ("server.crt", cert_pem),
            ("server.key", key_pem),
            ("ca.crt", ca_pem),
        ] {
            std::fs::write(server.dir.join(name), pem).expect("write a TLS file");
        }
        server.spawn();
        server
    }

    /// `rediss://127.0.0.1:<port>`.
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// Start a replica of this server and wait (up to 10 s) until this server lists it as
    /// online with an acknowledged offset at its own (initial sync done, writes streaming),
    /// so a `WAIT` counts it at once.
    pub fn start_replica(&self) -> RedisServer {
        let replica = RedisServer::start_with(vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            self.port.to_string(),
        ]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let line_start = format!("ip=127.0.0.1,port={},state=online,", replica.port);
        // "Online" alone is not enough: the primary streams writes (and `WAIT`'s GETACK) to a
        // replica only after that replica's first acknowledgement, which may come a second
        // later. Ready is: online, then a write of our own acknowledged.
        let mut probed = false;
        while Instant::now() < deadline {
            let primary = self.command(&["INFO", "replication"]).unwrap_or_default();
            let acked = primary.lines().find_map(|line| {
                let (_, fields) = line.split_once(':')?;
                let rest = fields.strip_prefix(&line_start)?;
                rest.split(',')
                    .find_map(|field| field.strip_prefix("offset="))?
                    .parse::<u64>()
                    .ok()
            });
            match (acked, info_field(&primary, "master_repl_offset")) {
                (Some(_), _) if !probed => {
                    probed = self
                        .command(&["INCR", "readrealm-test:replica-probe"])
                        .is_some();
                }
                (Some(acked), Some(sent)) if acked >= sent => return replica,
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the replica on port {} never came online", replica.port);
    }

    /// Send one command (`args`) and return its answer as text: a bulk or simple string as
    /// is, an integer in decimal; `None` for an error, a nil, an array or no answer in 2 s.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer).into_owned();
            let (head, rest) = text.split_once("\r\n")?;
            match head.as_bytes().first()? {
                b'+' | b':' => return Some(head[1..].to_string()),
                b'$' => {
                    let len: i64 = head[1..].parse().ok()?;
                    if len < 0 {
                        return None;
                    }
                    if rest.len() >= len as usize + 2 {
                        return Some(rest[..len as usize].to_string());
                    }
                }
                _ => return None,
            }
        }
    }

    fn start_with(extra: Vec<String>) -> RedisServer {
        let mut server = RedisServer::prepare(extra);
        server.spawn();
        server
    }

    /// Its directory made and a free port chosen; not started.
    fn prepare(extra: Vec<String>) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "rr-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("redis test directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        RedisServer {
            port,
            dir,
            extra,
            tls: false,
            child: None,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id (for SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis running").id()
    }

    /// SIGKILL it and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port from the same directory (its AOF).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let ports = if self.tls {
            let file = |name: &str| self.dir.join(name).to_string_lossy().into_owned();
            vec![
                "--port".to_owned(),
                "0".to_owned(),
                "--tls-port".to_owned(),
                port,
                "--tls-cert-file".to_owned(),
                file("server.crt"),
                "--tls-key-file".to_owned(),
                file("server.key"),
                "--tls-ca-cert-file".to_owned(),
                file("ca.crt"),
                "--tls-auth-clients".to_owned(),
                "no".to_owned(),
            ]
        } else {
            vec!["--port".to_owned(), port]
        };
        let child = Command::new("redis-server")
            .args(&ports)
            .args(["--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--daemonize", "no", "--logfile", "redis.log"])
            // A replica's first sync starts at once, not after the default 5 s wait for more.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server on PATH (tools/setup.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let ready = if self.tls {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                ping(self.port)
            };
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} never answered", self.port);
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The number after `name:` on its own line of an `INFO` answer.
fn info_field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}
