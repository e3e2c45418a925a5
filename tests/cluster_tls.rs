//! TLS to Redis (`rediss://`, issue 13; `readrealm_chat::cluster::tls`) against a real
//! `redis-server` that speaks only TLS (tests/support/redis.rs `start_tls`), with a throwaway
//! CA and a server certificate for 127.0.0.1 made here (rcgen): with the operator's CA
//! (`--cluster-redis-ca`) a `Link` appends and reads over TLS; a server whose certificate
//! does not chain to the trusted roots (the system's, or another CA) or does not name the
//! host is refused with a clear error; a `redis://` URL to the TLS port fails (no plaintext
//! fallback); the binary reads the CA at start (a bad file exits 2 naming the setting, never
//! its content) and `--print-config` shows its path; a node started on `rediss://` with the
//! CA acknowledges a post that is then in Redis's log, and without the CA refuses to start
//! saying why. `tls_micro_bench` prints append rates
//! over TLS and plain TCP.

#[path = "support/redis.rs"]
mod redis_server;
mod support;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use readrealm_chat::book::BookId;
use readrealm_chat::cluster::tls::RedisCa;
use readrealm_chat::cluster::{Append, ClusterError, Entry, Link, Settings, StreamId};
use redis_server::RedisServer;
use serde_json::{json, Value};
use support::{ws_connect, ws_recv_skipping_pings, ws_send_text, Ws, WsEvent};

const PARTITIONS: u32 = 4;

/// A throwaway CA: its certificate (PEM) and the issuer that signs server certificates.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> TestCa {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    TestCa {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for `names` (an IP address becomes an IP SAN) signed by `ca`, and
/// its key, both PEM.
fn server_cert(ca: &TestCa, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "readrealm test redis");
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn temp_dir(tag: &str) -> PathBuf {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "readrealm-tls-{tag}-{:016x}",
        u64::from_le_bytes(bytes)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `pem` written to `dir/name` and read as the binary reads `--cluster-redis-ca`.
fn ca_file(dir: &Path, name: &str, pem: &str) -> RedisCa {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    RedisCa::load(&path).expect("a good CA bundle")
}

fn settings(url: String, ca: Option<RedisCa>) -> Settings {
    Settings {
        url,
        ca,
        partitions: PARTITIONS,
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(2),
        min_replicas: 0,
    }
}

fn message(book: u64, body: &str) -> Append {
    Append::Message {
        book: BookId(book),
        body: body.as_bytes().to_vec(),
        origin: String::new(),
    }
}

/// A Redis speaking only TLS with a certificate for 127.0.0.1 from `ca`.
fn tls_redis(ca: &TestCa) -> RedisServer {
    let (cert, key) = server_cert(ca, &["127.0.0.1"]);
    RedisServer::start_tls(&ca.pem, &cert, &key)
}

#[test]
fn a_link_appends_and_reads_over_tls_trusting_the_operators_ca() {
    let ca = new_ca("readrealm test CA");
    let redis = tls_redis(&ca);
    let dir = temp_dir("ok");
    let trusted = ca_file(&dir, "ca.pem", &ca.pem);
    let url = redis.tls_url();
    assert!(url.starts_with("rediss://127.0.0.1:"), "{url}");

    let mut link = Link::connect(settings(url.clone(), Some(trusted.clone()))).unwrap();
    let bodies = ["over tls 1", "over tls 2", "over tls 3"];
    let appended = link
        .append(&bodies.iter().map(|b| message(7, b)).collect::<Vec<_>>())
        .unwrap();
    let seqs: Vec<Option<u64>> = appended.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, vec![Some(1), Some(2), Some(3)]);

    // Another link (a second connection, as another node) reads them back in order.
    let mut reader = Link::connect(settings(url, Some(trusted))).unwrap();
    let positions: Vec<(u32, StreamId)> = (0..PARTITIONS).map(|p| (p, StreamId::ZERO)).collect();
    let read: Vec<(u64, String)> = reader
        .read(&positions, 100)
        .unwrap()
        .into_iter()
        .map(|entry| match entry.entry {
            Entry::Message { seq, body, .. } => (seq, String::from_utf8(body).unwrap()),
            other => panic!("only messages were appended: {other:?}"),
        })
        .collect();
    let expected: Vec<(u64, String)> = (1..).zip(bodies.iter().map(|b| b.to_string())).collect();
    assert_eq!(read, expected);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The error of connecting with `settings`, which must fail within `bound`.
fn refused(settings: Settings, bound: Duration) -> ClusterError {
    let started = Instant::now();
    let err = match Link::connect(settings) {
        Ok(_) => panic!("the connection must be refused"),
        Err(e) => e,
    };
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    err
}

#[test]
fn a_server_the_trusted_roots_do_not_vouch_for_is_refused() {
    let ca = new_ca("readrealm test CA");
    let redis = tls_redis(&ca);
    let dir = temp_dir("refused");
    let bound = Duration::from_secs(5);

    // The system roots (no --cluster-redis-ca) do not hold the throwaway CA.
    let err = refused(settings(redis.tls_url(), None), bound);
    let text = err.to_string();
    assert!(
        text.contains("certificate")
            && text.contains("UnknownIssuer")
            && text.contains("--cluster-redis-ca"),
        "system roots: {text}"
    );

    // Another CA than the one that issued the server's certificate.
    let other = new_ca("another CA");
    let err = refused(
        settings(
            redis.tls_url(),
            Some(ca_file(&dir, "other.pem", &other.pem)),
        ),
        bound,
    );
    let text = err.to_string();
    assert!(
        text.contains("certificate") && text.contains("UnknownIssuer"),
        "another CA: {text}"
    );

    // The right CA, but a certificate that names another host than the one connected to.
    let (cert, key) = server_cert(&ca, &["redis.internal"]);
    let misnamed = RedisServer::start_tls(&ca.pem, &cert, &key);
    let err = refused(
        settings(misnamed.tls_url(), Some(ca_file(&dir, "ca.pem", &ca.pem))),
        bound,
    );
    let text = err.to_string();
    assert!(
        text.contains("certificate not valid for name"),
        "wrong name: {text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_plaintext_url_to_the_tls_port_fails_and_a_ca_never_goes_with_plaintext() {
    let ca = new_ca("readrealm test CA");
    let redis = tls_redis(&ca);
    let dir = temp_dir("plain");
    // redis:// to the TLS port: the server never answers plaintext, within the timeouts.
    let err = refused(settings(redis.url(), None), Duration::from_secs(6));
    assert!(
        matches!(err, ClusterError::Connection(_)),
        "a connection error: {err}"
    );
    // A CA given with a redis:// URL: refused before connecting (never plaintext in place of
    // the TLS the operator asked for).
    let err = refused(
        settings(redis.url(), Some(ca_file(&dir, "ca.pem", &ca.pem))),
        Duration::from_secs(1),
    );
    let text = err.to_string();
    assert!(
        text.contains("--cluster-redis-ca") && text.contains("rediss://"),
        "{text}"
    );
    // The same server over rediss:// with its CA works: the failures above are TLS's.
    Link::connect(settings(
        redis.tls_url(),
        Some(ca_file(&dir, "ca.pem", &ca.pem)),
    ))
    .expect("rediss:// with the CA connects");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_readrealm-chat"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("READREALM_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn the_binary_reads_the_ca_at_start_and_print_config_shows_its_path() {
    let dir = temp_dir("bin");
    let ca = new_ca("readrealm test CA");
    let good = dir.join("ca.pem");
    std::fs::write(&good, &ca.pem).unwrap();

    // From the TOML [cluster] table, and from the environment over it.
    let file = dir.join("chat.toml");
    std::fs::write(
        &file,
        format!(
            "[cluster]\nredis = \"rediss://redis.internal:6380\"\nredis-ca = {:?}\n",
            good.display().to_string()
        ),
    )
    .unwrap();
    let output = binary()
        .args(["--print-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    let table: toml::Table = stdout.parse().unwrap();
    assert_eq!(
        table["cluster"]["redis-ca"].as_str(),
        Some(good.to_str().unwrap())
    );
    assert!(!stdout.contains("BEGIN CERTIFICATE"), "{stdout}");
    let second = dir.join("ca2.pem");
    std::fs::write(&second, new_ca("second").pem).unwrap();
    let output = binary()
        .args(["--print-config", "--config"])
        .arg(&file)
        .env("READREALM_CLUSTER_REDIS_CA", &second)
        .output()
        .unwrap();
    let table: toml::Table = String::from_utf8_lossy(&output.stdout).parse().unwrap();
    assert_eq!(
        table["cluster"]["redis-ca"].as_str(),
        Some(second.to_str().unwrap())
    );

    // A bad file: exit 2, naming the setting and the file, never what it holds.
    let bad = dir.join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\nleaked-line\n",
    )
    .unwrap();
    for path in [bad.clone(), dir.join("missing.pem")] {
        let output = binary()
            .args(["--cluster-redis", "rediss://127.0.0.1:1"])
            .arg("--cluster-redis-ca")
            .arg(&path)
            .args(["--data-dir"])
            .arg(dir.join("data"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--cluster-redis-ca")
                && stderr.contains("READREALM_CLUSTER_REDIS_CA")
                && stderr.contains(path.to_str().unwrap()),
            "{stderr}"
        );
        assert!(
            !stderr.contains("c2VjcmV0") && !stderr.contains("leaked-line"),
            "{stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A cluster node (the real binary) on `url` with `ca`; killed on drop.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    fn command(url: &str, ca: Option<&Path>, data_dir: &Path) -> Command {
        let mut command = binary();
        command
            .args(["--listen", "127.0.0.1:0", "--shards", "1", "--log", "warn"])
            .args(["--cluster-redis", url])
            .args(["--cluster-partitions", &PARTITIONS.to_string()])
            .args(["--cluster-timeout", "2000"])
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(ca) = ca {
            command.arg("--cluster-redis-ca").arg(ca);
        }
        command
    }

    fn start(url: &str, ca: &Path, data_dir: &Path) -> Node {
        let mut child = Node::command(url, Some(ca), data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("readrealm-chat starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("a line on stdout");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        Node { child, addr }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next text frame within 10 s (pings answered by the helper).
fn text_frame(ws: &mut Ws) -> String {
    match ws_recv_skipping_pings(ws, Duration::from_secs(10)) {
        WsEvent::Text(text) => text,
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Emit `event` with ack `id` and return the ack's first argument (other frames skipped).
fn call(ws: &mut Ws, id: u64, event: &str, payload: Value) -> Value {
    ws_send_text(ws, &format!("42{id}{}", json!([event, payload])));
    let deadline = Instant::now() + Duration::from_secs(10);
    let prefix = format!("43{id}");
    loop {
        assert!(Instant::now() < deadline, "no ack {id} for {event}");
        let text = text_frame(ws);
        if let Some(args) = text.strip_prefix(&prefix) {
            let args: Value = serde_json::from_str(args).expect("ack JSON");
            return args[0].clone();
        }
    }
}

#[test]
fn a_node_on_rediss_posts_through_tls_and_without_the_ca_refuses_to_start() {
    let ca = new_ca("readrealm test CA");
    let redis = tls_redis(&ca);
    let dir = temp_dir("node");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();

    // Without the CA (the system roots): the node does not start, and says why.
    let output = Node::command(&redis.tls_url(), None, &dir.join("refused"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("UnknownIssuer") && stderr.contains("--cluster-redis-ca"),
        "{stderr}"
    );

    // With it: a post is acknowledged, and it is in Redis's log (read back over TLS here).
    let node = Node::start(&redis.tls_url(), &ca_path, &dir.join("node"));
    let mut ws = ws_connect(node.addr, "/socket.io/?EIO=4&transport=websocket").unwrap();
    assert!(text_frame(&mut ws).starts_with('0'));
    ws_send_text(&mut ws, "40");
    assert!(text_frame(&mut ws).starts_with("40"));
    let book = 2701;
    let who = json!({ "bookId": book, "userId": "u1", "username": "ada" });
    let ack = call(&mut ws, 0, "joinRoom", who.clone());
    assert_eq!(ack["ok"], true, "{ack}");
    let content = "sent to Redis over TLS";
    let mut post = who;
    post["content"] = json!(content);
    let ack = call(&mut ws, 1, "chatMessage", post);
    assert_eq!(ack["ok"], true, "{ack}");

    let mut reader = Link::connect(settings(
        redis.tls_url(),
        Some(RedisCa::load(&ca_path).unwrap()),
    ))
    .unwrap();
    let positions: Vec<(u32, StreamId)> = (0..PARTITIONS).map(|p| (p, StreamId::ZERO)).collect();
    let logged: Vec<(u64, u64, String)> = reader
        .read(&positions, 100)
        .unwrap()
        .into_iter()
        .filter_map(|entry| match entry.entry {
            Entry::Message {
                book, seq, body, ..
            } => Some((book.0, seq, String::from_utf8_lossy(&body).into_owned())),
            _ => None,
        })
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!((logged[0].0, logged[0].1), (book, 1));
    assert!(logged[0].2.contains(content), "{logged:?}");
    drop(node);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Appends `batches` × 64 messages (120-byte bodies) through `link`: entries per second.
fn append_rate(link: &mut Link, batches: u64) -> f64 {
    let body = "x".repeat(120);
    let started = Instant::now();
    for batch in 0..batches {
        let entries: Vec<Append> = (0..64u64)
            .map(|i| message(1 + (batch * 64 + i) % 500, &body))
            .collect();
        link.append(&entries).unwrap();
    }
    (batches * 64) as f64 / started.elapsed().as_secs_f64()
}

#[test]
fn tls_micro_bench() {
    let ca = new_ca("readrealm test CA");
    let tls = tls_redis(&ca);
    let plain = RedisServer::start();
    let dir = temp_dir("bench");
    let trusted = ca_file(&dir, "ca.pem", &ca.pem);
    let mut over_tls = Link::connect(settings(tls.tls_url(), Some(trusted))).unwrap();
    let mut over_tcp = Link::connect(settings(plain.url(), None)).unwrap();
    // One warm-up batch each (scripts cached, connections open), then the same work.
    append_rate(&mut over_tls, 1);
    append_rate(&mut over_tcp, 1);
    // Rounds alternate, and each side's best round counts (the machine is shared: the
    // best is the least disturbed).
    let (batches, rounds) = (200, 3);
    let (mut tcp_rate, mut tls_rate) = (0f64, 0f64);
    for _ in 0..rounds {
        tcp_rate = tcp_rate.max(append_rate(&mut over_tcp, batches));
        tls_rate = tls_rate.max(append_rate(&mut over_tls, batches));
    }
    println!(
        "cluster log TLS micro-bench: appended {} entries (120-byte bodies, batches of 64), \
         best of {rounds} alternating rounds: {tcp_rate:.0}/s over plain TCP and {tls_rate:.0}/s \
         over TLS ({:.2}x)",
        batches * 64,
        tls_rate / tcp_rate
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
