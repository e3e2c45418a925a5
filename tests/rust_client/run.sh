#!/usr/bin/env bash
# The chat contract's core with the rust_socketio client (tests/rust_client/tests/chat.rs)
# against the release `readrealm-chat`, on each transport. Builds the server if missing.
# Usage: tests/rust_client/run.sh   (READREALM_BIN_DIR or CARGO_TARGET_DIR as in tools/test.sh)
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
export READREALM_BIN_DIR="${READREALM_BIN_DIR:-$target_dir/release}"
if [ ! -x "$READREALM_BIN_DIR/readrealm-chat" ]; then
  (cd "$root" && cargo build --release --locked --bin readrealm-chat)
fi
# Its own target directory: the client's dependencies never mix with the server's build.
CARGO_TARGET_DIR="$target_dir/rust_client" cargo test --release --locked
