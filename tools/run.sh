#!/usr/bin/env bash
# Start ReadRealm Chat on a fresh machine: installs the build dependencies, builds, and runs
# the server (0.0.0.0:3000, history in ./data). Flags are passed on, e.g.
#   tools/run.sh --listen 127.0.0.1:3000 --data-dir /var/lib/readrealm
set -euo pipefail
cd "$(dirname "$0")/.."
echo "tools/run.sh: checking build dependencies (tools/setup.sh)" >&2
tools/setup.sh

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target_dir/release/readrealm-chat"
if [ ! -x "$bin" ]; then
  echo "tools/run.sh: first build: compiling RocksDB's C++ and the server in release mode." >&2
  echo "tools/run.sh: this takes about 13 minutes on 2 cores; progress is printed every 30 s." >&2
fi
echo "tools/run.sh: building (cargo build --release --locked --bin readrealm-chat)" >&2

# A silent prompt for minutes looks like a hang: while cargo builds, say what it is doing.
start=$(date +%s)
(
  while sleep 30; do
    now=$(date +%s)
    busy=$(ps -eo comm= 2>/dev/null | grep -cE '^(cc1plus|cc1|rustc|clang)$' || true)
    printf 'tools/run.sh: still building, %d:%02d elapsed, %s compiler processes running\n' \
      $(((now - start) / 60)) $(((now - start) % 60)) "$busy" >&2
  done
) &
ticker=$!
trap 'kill "$ticker" 2>/dev/null || true' EXIT
cargo build --release --locked --bin readrealm-chat
kill "$ticker" 2>/dev/null || true
trap - EXIT
now=$(date +%s)
echo "tools/run.sh: built in $((now - start)) s; starting $bin $*" >&2
exec "$bin" "$@"
