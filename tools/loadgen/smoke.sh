#!/usr/bin/env bash
# CI smoke of the load generator: builds tools/loadgen, starts the release readrealm-chat on a
# fresh data directory, runs a 3-second fan-out and a short join burst with --check (exit 1 on
# any lost or duplicated delivery, failed client or send error), then stops the server; then
# the same fan-out against tools/nullserver (tools/compare's floor), after its unit tests, so
# the floor keeps speaking what loadgen asks.
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
"$server" --listen 127.0.0.1:0 --data-dir "$work/data" > "$work/out" 2> "$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
addr=""
for _ in $(seq 1 100); do
  addr="$(grep -o 'listening on [0-9.]*:[0-9]*' "$work/out" | sed 's/listening on //')" || true
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "smoke: server did not start" >&2
  cat "$work/err" >&2
  exit 1
fi
"$loadgen" fanout --url "http://$addr" --server-pid "$pid" --rooms 4 --members 25 --senders 3 \
  --rate 8 --warmup 1 --duration 3 --drain 2 --check
"$loadgen" joins --url "http://$addr" --server-pid "$pid" --rate 200 --warmup 0.5 --duration 2 --check
kill $pid 2>/dev/null || true
wait $pid 2>/dev/null || true

"$loadgen_target/release/nullserver" --listen 127.0.0.1:0 > "$work/null.out" 2>&1 &
pid=$!
addr=""
for _ in $(seq 1 100); do
  addr="$(grep -o 'listening on [0-9.]*:[0-9]*' "$work/null.out" | sed 's/listening on //')" || true
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "smoke: nullserver did not start" >&2; exit 1; }
"$loadgen" fanout --url "http://$addr" --server-pid "$pid" --rooms 4 --members 25 --senders 3 \
  --rate 8 --warmup 1 --duration 2 --drain 1 --check
echo "loadgen smoke: passed"
