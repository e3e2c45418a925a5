#!/usr/bin/env bash
# Runs the project's chat tests (tests/js/chat.test.mjs, chat-restart.test.mjs) against each
# baseline in turn, through CHAT_SERVER_START (see tests/js/chat-helpers.mjs). Not part of CI:
# the socketioxide baseline takes minutes to build the first time.
# Usage: tools/baselines/test.sh [node|socketioxide]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/../.."

baselines=("$@")
[ ${#baselines[@]} -gt 0 ] || baselines=(node socketioxide)

(cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
(cd tools/baselines/node && npm ci --no-audit --no-fund --loglevel=error)
if [[ " ${baselines[*]} " == *" socketioxide "* ]]; then
  (cd tools/baselines/socketioxide && cargo build --release --locked)
fi

failed=()
for b in "${baselines[@]}"; do
  echo "== chat tests against tools/baselines/$b"
  if ! (cd tests/js && CHAT_SERVER_START="tools/baselines/$b/start.sh" \
        node --test --test-concurrency=1 chat.test.mjs chat-restart.test.mjs); then
    failed+=("$b")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "chat tests failed against: ${failed[*]}" >&2
  exit 1
fi
echo "chat tests passed against: ${baselines[*]}"
