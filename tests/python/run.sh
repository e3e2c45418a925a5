#!/usr/bin/env bash
# Runs the python-socketio interoperability suite against target/release/protocol-testserver
# (or $READREALM_BIN_DIR/protocol-testserver). Works from any directory; exits with pytest's code.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cd "$repo"
export PYTHONDONTWRITEBYTECODE=1
set +e
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python "$@"
exit $?
