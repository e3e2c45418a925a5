#!/usr/bin/env bash
# Run every cargo-fuzz target of this crate for a while, on stable Rust.
#
#   tools/fuzz.sh [SECONDS]      # SECONDS per target, default 60
#
# Installs cargo-fuzz if it is missing, builds all targets, then runs each one for SECONDS
# with a scratch corpus fuzz/corpus/<target>/ (gitignored; seeded from fuzz/seeds/<target>/
# and fuzz/regressions/<target>/, kept between runs), and prints per target the number of
# executions (libFuzzer's
# stat::number_of_executed_units) and whether it found a crash. Exits 1 if any target found a
# crash (or a timeout / out-of-memory input), 2 if the build failed.
#
# Environment:
#   FUZZ_TARGETS="a b"      only these targets (default: all, from `cargo fuzz list`)
#   FUZZ_SANITIZER=address  build with ASan instead of no sanitizer; -Zsanitizer needs nightly,
#                           so this sets RUSTC_BOOTSTRAP=1 (default: none, plain stable)
#   FUZZ_FRESH=1            empty each scratch corpus before seeding it
#   FUZZ_CMIN=1             after a clean run, minimize the scratch corpus into the committed
#                           seeds fuzz/seeds/<target>/: the seeds there stay, and the fewest
#                           corpus inputs that cover the edges they miss are added (libFuzzer
#                           -set_cover_merge with -use_counters=0, so tens of files, not the
#                           hundreds a feature-level `cargo fuzz cmin` keeps)
#
# Failing inputs land in fuzz/artifacts/<target>/ (gitignored) and each target's full log in
# fuzz/target/fuzz-logs/<target>.log. A crash is reproduced with
#   cargo fuzz run -s none -a <target> <artifact>
# and minimized with
#   cargo fuzz tmin -s none -a <target> <artifact>
# (with CARGO_TARGET_DIR=fuzz/target to reuse this script's build).
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="$root/fuzz/target"

sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$sanitizer" != none ]; then
    # cargo-fuzz passes -Zsanitizer=...; this lets the stable compiler accept it.
    export RUSTC_BOOTSTRAP=1
fi
# Release build with debug assertions and overflow checks.
fuzz_flags=(--sanitizer "$sanitizer" --debug-assertions)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets found" >&2
    exit 2
fi

echo "== building ${targets[*]} (sanitizer: $sanitizer)"
for t in "${targets[@]}"; do
    if ! cargo fuzz build "${fuzz_flags[@]}" "$t"; then
        echo "build of fuzz target $t failed" >&2
        exit 2
    fi
done

logs="$CARGO_TARGET_DIR/fuzz-logs"
mkdir -p "$logs"
failed=0
summary=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    if [ "${FUZZ_FRESH:-0}" = 1 ]; then
        rm -rf "$corpus"
    fi
    mkdir -p "$corpus" "$artifacts"
    for dir in "fuzz/seeds/$t" "fuzz/regressions/$t"; do
        if [ -d "$dir" ]; then
            cp -f "$dir"/* "$corpus"/ 2>/dev/null || true
        fi
    done
    # The HTTP targets need inputs longer than a whole request head (16 KiB) to reach the
    # head size limit; libFuzzer's default cap for new inputs is 4 KiB.
    case "$t" in
    http_*) max_len=20000 ;;
    *) max_len=4096 ;;
    esac
    # Artifacts written by this run only (older ones may be there from earlier runs).
    marker="$(mktemp)"
    log="$logs/$t.log"
    echo "== fuzzing $t for ${seconds}s (corpus $corpus, log $log)"
    rc=0
    cargo fuzz run "${fuzz_flags[@]}" "$t" "$corpus" -- \
        -max_total_time="$seconds" -max_len="$max_len" -print_final_stats=1 -timeout=20 \
        -rss_limit_mb=4096 \
        >"$log" 2>&1 || rc=$?
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)"
    found="$(find "$artifacts" -maxdepth 1 -type f -newer "$marker" \
        \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)"
    rm -f "$marker"
    if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
        result="no crash"
    else
        failed=1
        if [ -n "$found" ]; then
            result="CRASH: $(echo "$found" | tr '\n' ' ')"
        else
            result="FAILED (exit $rc, no artifact; see $log)"
        fi
        # Show what went wrong.
        grep -m 1 -A 1 "panicked at" "$log" || true
        grep -m 3 -E "ERROR: libFuzzer|SUMMARY|==[0-9]+== ?ERROR" "$log" || true
    fi
    if [ "${FUZZ_CMIN:-0}" = 1 ] && [ "$result" = "no crash" ]; then
        host="$(rustc -vV | sed -n 's/^host: //p')"
        mkdir -p "fuzz/seeds/$t"
        "$CARGO_TARGET_DIR/$host/release/$t" -set_cover_merge=1 -use_counters=0 \
            "fuzz/seeds/$t" "$corpus" >>"$log" 2>&1
        echo "$t: $(find "fuzz/seeds/$t" -type f | wc -l) seeds after minimizing"
    fi
    line="$(printf '%-14s executions: %-10s %s' "$t" "${execs:-?}" "$result")"
    echo "$line"
    summary+=("$line")
done

echo
echo "== summary (${seconds}s per target, sanitizer: $sanitizer)"
printf '%s\n' "${summary[@]}"
exit "$failed"
