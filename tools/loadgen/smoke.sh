#!/usr/bin/env bash
# CI smoke of the load generator: builds tools/loadgen, starts the release readrealm-chat on a
# fresh data directory (message rate raised, so `history` can seed its room), runs a 3-second
# fan-out, a short join burst, a short history run (5,000 messages seeded, 2 s of paging) and a
# short reconnect run (readers dropped and recovered) with --check (exit 1 on any lost or duplicated delivery, bad page, failed client or send
# error), then stops the server; then a join burst with --auth against the server started with
# a token secret; then the same fan-out against tools/nullserver (tools/compare's floor), after
# its unit tests, so the floor keeps speaking what loadgen asks; then, if redis-server is
# installed, the fan-out spread over two cluster nodes sharing a Redis (--urls).
# Usage: tools/loadgen/smoke.sh [SERVER_BINARY]   (default: $CARGO_TARGET_DIR or target, release)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
server="${1:-${CARGO_TARGET_DIR:-$root/target}/release/readrealm-chat}"
loadgen_target="${LOADGEN_TARGET_DIR:-/var/tmp/readrealm-loadgen-target}"
(cd "$root/tools/loadgen" && CARGO_TARGET_DIR="$loadgen_target" cargo build --release --locked)
(cd "$root/tools/nullserver" && CARGO_TARGET_DIR="$loadgen_target" cargo test --release --locked -q \
  && CARGO_TARGET_DIR="$loadgen_target" cargo build --release --locked)
loadgen="$loadgen_target/release/loadgen"

work="$(mktemp -d /var/tmp/readrealm-smoke.XXXXXX)"
pid=""
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT

# start NAME COMMAND...: starts a server that prints `listening on ADDR`; sets $pid and $addr.
start() {
  local name="$1"
  shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" &
  pid=$!
  addr=""
  for _ in $(seq 1 100); do
    addr="$(grep -o 'listening on [0-9.]*:[0-9]*' "$work/$name.out" | sed 's/listening on //')" || true
    [ -n "$addr" ] && break
    sleep 0.1
  done
  if [ -z "$addr" ]; then
    echo "smoke: $name did not start" >&2
    cat "$work/$name.err" >&2
    exit 1
  fi
}
stop() {
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}

start server "$server" --listen 127.0.0.1:0 --data-dir "$work/data" \
  --message-rate 1000000 --message-burst 1000000
"$loadgen" fanout --url "http://$addr" --server-pid "$pid" --rooms 4 --members 25 --senders 3 \
  --rate 8 --warmup 1 --duration 3 --drain 2 --check
"$loadgen" joins --url "http://$addr" --server-pid "$pid" --rate 200 --warmup 0.5 --duration 2 --check
"$loadgen" history --url "http://$addr" --server-pid "$pid" --seed 5000 --readers 2 --rate 50 \
  --warmup 0.5 --duration 2 --check
# Readers dropped abruptly come back with {pid, offset}: all recovered, nothing lost or twice.
# They wait 200 ms before reconnecting (socket.io-client waits 500-1500 ms): a reconnection
# handled before the server has handled the dropped socket's close finds no kept session (a
# fresh pid, which --check counts as a failure; see README, reconnect).
"$loadgen" reconnect --url "http://$addr" --server-pid "$pid" --rooms 2 --members 10 \
  --drops-per-s 10 --reconnect-delay 200 --warmup 0.5 --duration 3 --drain 2 --check
stop

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/secret"
start auth-server "$server" --listen 127.0.0.1:0 --data-dir "$work/auth-data" \
  --auth-jwt-secret-file "$work/secret"
"$loadgen" joins --url "http://$addr" --server-pid "$pid" --rate 100 --warmup 0.5 --duration 1 \
  --auth "$work/secret" --check
stop

start nullserver "$loadgen_target/release/nullserver" --listen 127.0.0.1:0
"$loadgen" fanout --url "http://$addr" --server-pid "$pid" --rooms 4 --members 25 --senders 3 \
  --rate 8 --warmup 1 --duration 2 --drain 1 --check
stop

# The cluster fan-out (tools/compare's cluster case): a Redis and two nodes, members spread over
# both with --urls, every delivery checked; skipped where redis-server is not installed.
if command -v redis-server >/dev/null; then
  redis_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  mkdir -p "$work/redis"
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" --appendonly yes \
    --appendfsync everysec --save '' > "$work/redis.log" 2>&1 &
  redis_pid=$!
  trap 'kill $pid $node1 $redis_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  start node1 "$server" --listen 127.0.0.1:0 --data-dir "$work/node1" --shards 1 \
    --cluster-redis "redis://127.0.0.1:$redis_port"
  node1=$pid addr1=$addr
  start node2 "$server" --listen 127.0.0.1:0 --data-dir "$work/node2" --shards 1 \
    --cluster-redis "redis://127.0.0.1:$redis_port"
  "$loadgen" fanout --urls "http://$addr1,http://$addr" --server-pid "$node1,$pid,$redis_pid" \
    --rooms 4 --members 25 --senders 3 --rate 8 --warmup 1 --duration 2 --drain 2 --check
  stop
  kill "$node1" "$redis_pid" 2>/dev/null || true
  wait "$node1" "$redis_pid" 2>/dev/null || true
else
  echo "loadgen smoke: no redis-server, the cluster fan-out skipped"
fi
echo "loadgen smoke: passed"
