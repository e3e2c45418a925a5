#!/usr/bin/env bash
# Start ReadRealm Chat on a fresh machine: installs the build dependencies, builds, and runs
# the server (0.0.0.0:3000, history in ./data). Flags are passed on, e.g.
#   tools/run.sh --listen 127.0.0.1:3000 --data-dir /var/lib/readrealm
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
exec cargo run --release --locked --bin readrealm-chat -- "$@"
