#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what it needs, builds, then runs the
# Rust unit and integration tests, the upstream protocol suites, the socket.io-client tests in
# tests/js, the python-socketio and rust_socketio client tests, the reading-room page in
# chromium (tests/browser), and the format and lint checks.
# Usage: tools/test.sh   (from anywhere in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export READREALM_BIN_DIR="$target_dir/release"

echo "== build (release binaries used by the client tests)"
cargo build --release --bins --locked

echo "== format and lint"
cargo fmt --all -- --check
cargo clippy --release --all-targets --locked -- -D warnings
echo "== no import cycles between modules (tools/import-cycles.py)"
python3 tools/import-cycles.py

# Everything in the release profile: RocksDB's C++ is then compiled once, not twice.
echo "== Rust unit and integration tests"
cargo test --release --all-targets --locked

# Every cargo-fuzz target for a short while (installs cargo-fuzz on first use; builds the
# library without RocksDB into fuzz/target). Exits non-zero on any crash.
echo "== fuzz targets, ${FUZZ_SECONDS:-20} s each (tools/fuzz.sh)"
tools/fuzz.sh "${FUZZ_SECONDS:-20}"

# The independent upstream Engine.IO v4 and Socket.IO v5 suites against `conformance`
# (skipped with a message when they cannot be fetched; UPSTREAM_SUITES_DIR names a local copy).
echo "== upstream protocol suites (tools/upstream-suites.sh)"
tools/upstream-suites.sh

echo "== socket.io-client tests (tests/js)"
# REQUIRE_REDIS=1: the cluster tests (cluster.test.mjs) fail rather than skip without the
# redis-server that tools/setup.sh installed.
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error && REQUIRE_REDIS=1 npm test)

echo "== python-socketio client tests (tests/python)"
tests/python/run.sh

echo "== rust_socketio client tests (tests/rust_client)"
tests/rust_client/run.sh

echo "== reading-room page in Debian's chromium (tests/browser)"
if ! command -v chromium >/dev/null 2>&1; then
  echo "tools/test.sh: installing chromium" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq chromium >/dev/null
fi
(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error \
  && CHROMIUM="$(command -v chromium)" npm test)

echo "== load generator smoke (tools/loadgen against the release server)"
tools/loadgen/smoke.sh "$READREALM_BIN_DIR/readrealm-chat"
