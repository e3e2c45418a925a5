#!/usr/bin/env bash
# Starts the socketioxide baseline: `start.sh --listen ADDR [chat flags]`; prints
# `listening on ADDR` on stdout once it accepts connections. Builds it first (release, into
# /var/tmp/readrealm-baseline-target, see .cargo/config.toml) when the binary is missing or
# older than its sources; the build's output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")"
bin=/var/tmp/readrealm-baseline-target/release/readrealm-baseline-socketioxide
if [ ! -x "$bin" ] || [ -n "$(find src Cargo.toml Cargo.lock -newer "$bin" 2>/dev/null)" ]; then
  cargo build --release --locked >&2
fi
exec "$bin" "$@"
