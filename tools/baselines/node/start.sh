#!/usr/bin/env bash
# Starts the socket.io 4.8 baseline: `start.sh --listen ADDR [chat flags]`; prints
# `listening on ADDR` on stdout once it accepts connections. Installs its node_modules
# (npm ci, from package-lock.json) the first time.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/socket.io ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
exec node server.mjs "$@"
