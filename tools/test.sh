#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what it needs, builds, then runs the
# Rust unit and integration tests, the socket.io-client tests in tests/js, and the format and
# lint checks. Usage: tools/test.sh   (from anywhere in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cargo || ! need node || ! need npm; then
  echo "tools/test.sh needs cargo, node and npm on PATH" >&2
  exit 1
fi
# A C compiler for crates with build scripts (already present on most machines).
if ! need cc && need apt-get; then
  apt-get update -qq && apt-get install -y -qq build-essential
fi

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export READREALM_BIN_DIR="$target_dir/release"

echo "== build (release binaries used by the client tests)"
cargo build --release --bins --locked

echo "== format and lint"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "== Rust unit and integration tests"
cargo test --all-targets --locked

echo "== socket.io-client tests (tests/js)"
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error && npm test)
