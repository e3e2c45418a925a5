#!/usr/bin/env bash
# Run the independent upstream protocol test suites against the conformance server:
#   socketio/engine.io-protocol  test-suite/  against `conformance engineio`
#   socketio/socket.io-protocol  test-suite/  against `conformance socketio`
# Fails (exit 1) on any failing test. When a suite or its npm dependencies cannot be had
# (no network and no local copy), it SKIPS with a message and exits 0.
#
# Where the suites come from, first match wins, for each NAME (engine.io-protocol,
# socket.io-protocol):
#   1. $UPSTREAM_SUITES_DIR/NAME, $UPSTREAM_SUITES_DIR/socketio+NAME or .../socketio+NAME/repo:
#      a checkout holding test-suite/, or a git directory (bare or not; its pinned commit
#      if it has it, else its HEAD);
#   2. `git clone https://github.com/socketio/NAME`, at the pinned commit below.
# The suites' code is copied to a temporary directory and never into this repository; only
# their URL's port is rewritten (they hard-code localhost:3000) so that a busy port 3000
# does not matter.
#
# Environment: UPSTREAM_SUITES_DIR (above); UPSTREAM_PORT (default: a free port);
# READREALM_BIN_DIR or CARGO_TARGET_DIR (where the release `conformance` binary is; built
# with cargo if missing). Usage: tools/upstream-suites.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The commits last checked (the newest commits touching test-suite/ when this was written).
declare -A PINNED=(
  [engine.io-protocol]=f21de7b00ed09b3bbad2807db718ea5d6bc36aba
  [socket.io-protocol]=4f633dd6a4445492d57af3b27ddd2d336014f1f1
)

skip() {
  echo "tools/upstream-suites.sh: SKIPPED: $*" >&2
  exit 0
}

work="$(mktemp -d "${TMPDIR:-/tmp}/upstream-suites.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Copy NAME's test-suite/ into $work/NAME; returns non-zero when it cannot be had.
obtain() {
  local name="$1" pin="${PINNED[$1]}" candidate commit
  if [ -n "${UPSTREAM_SUITES_DIR:-}" ]; then
    for candidate in "$UPSTREAM_SUITES_DIR/$name" "$UPSTREAM_SUITES_DIR/socketio+$name" \
      "$UPSTREAM_SUITES_DIR/socketio+$name/repo"; do
      if [ -f "$candidate/test-suite/test-suite.js" ]; then
        mkdir -p "$work/$name"
        cp -R "$candidate/test-suite" "$work/$name/"
        echo "$name: from $candidate"
        return 0
      fi
      if git --git-dir="$candidate" rev-parse --verify -q HEAD >/dev/null 2>&1; then
        commit="$pin"
        git --git-dir="$candidate" cat-file -e "$pin^{commit}" 2>/dev/null || commit=HEAD
        mkdir -p "$work/$name"
        git --git-dir="$candidate" archive "$commit" test-suite | tar -x -C "$work/$name"
        echo "$name: from $candidate at $(git --git-dir="$candidate" rev-parse --short "$commit")"
        return 0
      fi
    done
  fi
  if git clone -q "https://github.com/socketio/$name" "$work/$name.git" 2>/dev/null \
    && git -C "$work/$name.git" checkout -q "$pin" 2>/dev/null; then
    mkdir -p "$work/$name"
    mv "$work/$name.git/test-suite" "$work/$name/"
    echo "$name: cloned from GitHub at ${pin:0:7}"
    return 0
  fi
  return 1
}

for name in engine.io-protocol socket.io-protocol; do
  obtain "$name" || skip "cannot get socketio/$name (no UPSTREAM_SUITES_DIR copy, git clone failed)"
done

port="${UPSTREAM_PORT:-$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}"

for name in engine.io-protocol socket.io-protocol; do
  suite="$work/$name/test-suite"
  grep -q 'http://localhost:3000' "$suite/test-suite.js" \
    || { echo "$name: test-suite.js no longer names http://localhost:3000; update this script" >&2; exit 1; }
  sed -i "s#http://localhost:3000#http://localhost:$port#" "$suite/test-suite.js"
  (cd "$suite" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) \
    || skip "npm ci failed for $name's test suite (no network?)"
done

bin_dir="${READREALM_BIN_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/release}"
if [ ! -x "$bin_dir/conformance" ]; then
  echo "building the conformance server (cargo build --release --bin conformance)"
  cargo build --release --locked --bin conformance
fi

# Start `conformance MODE`, run NAME's suite against it, stop it. Returns mocha's status.
run_suite() {
  local mode="$1" name="$2" status=0
  CONFORMANCE_LISTEN="127.0.0.1:$port" "$bin_dir/conformance" "$mode" 2>"$work/$mode.log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  echo "== $name suite against \`conformance $mode\` on port $port"
  (cd "$work/$name/test-suite" && timeout 300 npx mocha --reporter dot test-suite.js) || status=$?
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  return "$status"
}

failed=0
run_suite engineio engine.io-protocol || failed=1
run_suite socketio socket.io-protocol || failed=1
if [ "$failed" -ne 0 ]; then
  echo "tools/upstream-suites.sh: an upstream suite FAILED" >&2
  exit 1
fi
echo "tools/upstream-suites.sh: both upstream suites passed"
