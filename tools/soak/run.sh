#!/usr/bin/env bash
# Soak run (issue 4, item 6; not run by CI): start the release server on a temp data dir,
# drive MINUTES of mixed load (tools/soak/load.mjs: a few hundred socket.io-client readers
# joining, leaving, posting and dropping), sample the server's RSS and open descriptors every
# SAMPLE seconds into a CSV, and at the end report start (after warm-up), peak and end and
# whether they stayed flat.
#
# usage: tools/soak/run.sh [MINUTES]          (default 30)
# environment: SOAK_CLIENTS (300), SOAK_BOOKS (20), SOAK_SAMPLE (10 s), SOAK_WRITERS (0.5),
#              SOAK_WARMUP (seconds; default: a fifth of the run, at most 300),
#              SOAK_OUT (directory for soak.csv, server.log, load.log; default: a temp dir),
#              SOAK_SHARDS (2), SOAK_SERVER_ARGS (more server flags, e.g. "--max-connections-per-ip 0")
# Exits 0 when memory and descriptors stayed flat and the load saw no errors, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

minutes="${1:-30}"
clients="${SOAK_CLIENTS:-300}"
books="${SOAK_BOOKS:-20}"
writers="${SOAK_WRITERS:-0.5}"
sample="${SOAK_SAMPLE:-10}"
shards="${SOAK_SHARDS:-2}"
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
warmup="${SOAK_WARMUP:-$(( seconds / 5 < 300 ? seconds / 5 : 300 ))}"
out="${SOAK_OUT:-$(mktemp -d /tmp/readrealm-soak.XXXXXX)}"
mkdir -p "$out"
data="$(mktemp -d /tmp/readrealm-soak-data.XXXXXX)"

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target_dir/release/readrealm-chat"
if [[ ! -x "$bin" || -n "${SOAK_BUILD:-}" ]]; then
  echo "== building the release server"
  cargo build --release --bin readrealm-chat --locked
fi
if [[ ! -d tools/soak/node_modules/socket.io-client ]]; then
  echo "== installing socket.io-client for the load"
  (cd tools/soak && npm ci --no-audit --no-fund --loglevel=error)
fi

server_pid=""
load_pid=""
cleanup() {
  [[ -n "$load_pid" ]] && kill "$load_pid" 2>/dev/null || true
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

echo "== server: $bin (shards $shards, data in $data)"
"$bin" --listen 127.0.0.1:0 --data-dir "$data" --shards "$shards" \
  ${SOAK_SERVER_ARGS:-} >"$out/server.out" 2>"$out/server.log" &
server_pid=$!
addr=""
for _ in $(seq 100); do
  addr="$(sed -n 's/^listening on //p' "$out/server.out" | head -1)"
  [[ -n "$addr" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log"; exit 1; }
  sleep 0.1
done
[[ -n "$addr" ]] || { echo "server did not start"; cat "$out/server.log"; exit 1; }
echo "== listening on $addr; $minutes min, $clients clients over $books books, sample every ${sample}s, warm-up ${warmup}s"
echo "== output in $out"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status"; }
fd_count() { ls "/proc/$server_pid/fd" | wc -l; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$server_pid/status"; }
# RocksDB's write-ahead log since the last memtable flush: about what the memtable holds, so
# RSS growth that tracks it is stored messages, not a leak.
wal_kib() { find "$data" -maxdepth 1 -name '*.log' -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s / 1024 }'; }
sample_line() { echo "$(( $(date +%s) - start )),$1,$(rss_kib),$(fd_count),$(threads),$(wal_kib)"; }

csv="$out/soak.csv"
echo "seconds,phase,rss_kib,fds,threads,wal_kib" >"$csv"
start=$(date +%s)
sample_line idle >>"$csv"

nice -n 5 node tools/soak/load.mjs "http://$addr" "$seconds" "$clients" "$books" "$writers" \
  >"$out/load.log" 2>&1 &
load_pid=$!

while true; do
  sleep "$sample"
  kill -0 "$server_pid" 2>/dev/null || { echo "the server died"; cat "$out/server.log"; exit 1; }
  kill -0 "$load_pid" 2>/dev/null || break
  line="$(sample_line load)"
  echo "$line" >>"$csv"
  echo "sample $line"
done
load_status=0
wait "$load_pid" || load_status=$?
load_pid=""
# Once every client is gone: what the idle server holds.
sleep "$sample"
sample_line idle >>"$csv"
grep -v '^\[' "$out/load.log" | head -60

echo "== summary (CSV: $csv)"
flat=0
awk -F, -v warmup="$warmup" '
  NR == 1 { next }
  $2 == "load" { rows++; t[rows] = $1; rss[rows] = $3; fds[rows] = $4; wal[rows] = $6 }
  $2 == "idle" && NR > 2 { idle_rss = $3; idle_fds = $4 }
  END {
    # Start: the first sample under load at or after the warm-up. End: the last sample
    # under load. Peak: the highest in between.
    s = 0
    for (i = 1; i <= rows; i++) if (t[i] >= warmup) { s = i; break }
    if (s == 0 || rows - s < 2) { print "too few samples after the warm-up"; exit 1 }
    e = rows
    prss = 0; pfd = 0
    for (i = s; i <= e; i++) { if (rss[i] > prss) prss = rss[i]; if (fds[i] > pfd) pfd = fds[i] }
    printf "RSS  KiB: start %d (t=%ds)  peak %d  end %d (t=%ds)  idle after the load %d\n", rss[s], t[s], prss, rss[e], t[e], idle_rss
    printf "fds     : start %d  peak %d  end %d  idle after the load %d\n", fds[s], pfd, fds[e], idle_fds
    growth = rss[e] - rss[s]
    wal_growth = wal[e] - wal[s]; if (wal_growth < 0) wal_growth = 0
    printf "RSS growth %d KiB; RocksDB WAL (≈ memtable) growth %d KiB in the same time\n", growth, wal_growth
    rss_flat = (rss[e] <= rss[s] * 1.10)
    net_flat = (rss[e] - wal_growth <= rss[s] * 1.10)
    # Descriptors follow the number of clients connected at that moment, so allow 10% or 30.
    fd_slack = fds[s] * 0.10; if (fd_slack < 30) fd_slack = 30
    fd_flat = (fds[e] <= fds[s] + fd_slack)
    printf "RSS %s (end within 10%% of start)\n", rss_flat ? "FLAT" : "NOT FLAT"
    printf "RSS less memtable growth %s (end less WAL growth within 10%% of start)\n", net_flat ? "FLAT" : "NOT FLAT"
    printf "fds %s (end within 10%% or 30 of start)\n", fd_flat ? "FLAT" : "NOT FLAT"
    exit (net_flat && fd_flat) ? 0 : 1
  }' "$csv" || flat=1
if [[ $load_status -ne 0 ]]; then
  echo "the load reported errors (exit $load_status): see $out/load.log"
fi
if [[ $flat -ne 0 || $load_status -ne 0 ]]; then
  exit 1
fi
echo "soak OK"
