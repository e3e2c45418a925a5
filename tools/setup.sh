#!/usr/bin/env bash
# Install what building and testing ReadRealm Chat needs, once per machine:
# a C/C++ toolchain and libclang (RocksDB builds its C++ from source, bindgen needs libclang),
# redis-server (the cluster log's tests start their own: tests/support/redis.rs),
# and the socket.io-client bundle the reading-room page loads (npm ci in static/).
# Safe to run again: it only installs what is missing. Sourced or run by run.sh and test.sh.
set -euo pipefail

have_libclang() {
  ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*/libclang*.so* >/dev/null 2>&1
}

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v clang >/dev/null 2>&1 || missing+=(clang)
have_libclang || missing+=(libclang-dev)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)

if [ ${#missing[@]} -gt 0 ]; then
  echo "tools/setup.sh: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for tool in cargo node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "tools/setup.sh: $tool is needed on PATH (Rust toolchain; Node 20 with npm)" >&2
    exit 1
  fi
done

# The socket.io-client browser bundle the reading-room page loads from the server
# (/socket.io/socket.io.min.js): installed from the pinned npm package, not committed.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$root/static/node_modules/socket.io-client/dist/socket.io.min.js" ] \
   || [ "$root/static/package-lock.json" -nt "$root/static/node_modules/.package-lock.json" ]; then
  echo "tools/setup.sh: installing the socket.io-client bundle (npm ci in static/)" >&2
  (cd "$root/static" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
