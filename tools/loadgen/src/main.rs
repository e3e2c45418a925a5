//! `loadgen`: drives any server that implements ReadRealm's docs/API.md over Socket.IO v5 /
//! Engine.IO v4 (WebSocket or HTTP long-polling) and measures it. Scenarios: `fanout`,
//! `polling` (fan-out over long-polling), `joins`, `history`, `reconnect`,
//! `idle`. Each prints one JSON line on stdout
//! and a readable summary on stderr. `--check` makes the exit status report lost, duplicated
//! or failed work (the CI smoke).

mod args;
mod auth;
mod fanout;
mod history;
mod idle;
mod joins;
mod net;
mod polling;
mod procfs;
mod proto;
mod reconnect;
mod report;
mod setup;
mod transport;
mod tsstream;
mod ws;

use transport::Transport;

const USAGE: &str = "\
usage: loadgen SCENARIO [--name value ...]

scenarios:
  fanout   R rooms × M members, S senders per room at RATE msg/s each; latency send → kernel
           arrival (SO_TIMESTAMPNS) and send → read by the client,
           deliveries/s, lost/duplicated, deliveries per server CPU-second
           --rooms 20 --members 100 --senders 4 --rate 8 --warmup 3 --duration 10 --drain 3
  polling  fanout with clients on HTTP long-polling (same options)
  joins    connect + joinRoom into rooms holding 50 messages at RATE/s; join → history latency
           --rate 1000 --rooms 10 --history 50 --warmup 2 --duration 10 --max-in-flight 2000
  history  a room seeded with --seed messages (the server's --message-rate/--message-burst
           raised), then readers paging it with loadHistory; page ack latency (goal p99 ≤ 1 ms)
           --seed 100000 --book B --writers 2 --window 256 --readers 8 --rate 100 --limit 50
           --walk 20 --warmup 2 --duration 10   (--book B --seed 0: page an existing room)
  reconnect
           fanout where readers drop abruptly (at most --drops-per-s) and reconnect with
           {pid, offset} (connection state recovery); recoveries, lost/duplicated messages per
           reader, drop → recovered CONNECT answer latency
           --rooms 10 --members 50 --senders 2 --rate 8 --drops-per-s 20 --reconnect-delay 0
           --warmup 2 --duration 10 --drain 5
  idle     N joined, heartbeating connections held T seconds; server RSS per connection
           --conns 19000 --procs K --per-proc 15000 --members 10 --hold 30 --settle 2

common:
  --url http://127.0.0.1:3000   server address (path /socket.io/)
  --urls URL,URL,...            fanout/polling: a cluster's nodes instead of --url; member i
                                connects to node i % N (every room has members and senders
                                on every node); cross-node latencies reported apart
  --transport websocket|polling
  --server-pid PID              read the server's CPU and RSS from /proc (fanout/polling:
                                PID,PID,... adds up several, e.g. the nodes and Redis)
  --src-ips N                   spread clients over 127.0.0.1 .. 127.0.0.N (default: 500
                                clients per address, at least 4; servers may cap clients per IP)
  --connect-concurrency 100     connections being set up at once
  --auth SECRET_FILE            present an HS256 JWT per client in the CONNECT ({token}; sub
                                and name = the client's userId, exp = now + --auth-ttl 600 s),
                                for a server run with --auth-jwt-secret-file SECRET_FILE
  --check                       exit 1 on lost/duplicated deliveries or failed clients
  --quiet                       only the JSON line
";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(scenario) = argv.first().cloned() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    let args = match args::Args::parse(&argv[1..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if args.flag("help") || scenario == "help" || scenario == "--help" {
        print!("{USAGE}");
        return;
    }
    let threads: usize = args.get("threads", 2);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let ok = runtime.block_on(async {
        match scenario.as_str() {
            "fanout" => fanout::run(&args, Transport::WebSocket).await,
            "polling" => fanout::run(&args, Transport::Polling).await,
            "joins" => joins::run(&args).await,
            "history" => history::run(&args).await,
            "reconnect" => reconnect::run(&args).await,
            "idle" => idle::run(&args).await,
            other => {
                eprintln!("loadgen: unknown scenario {other:?}\n{USAGE}");
                false
            }
        }
    });
    // Connections still open are simply dropped with the process.
    std::process::exit(if ok { 0 } else { 1 });
}
