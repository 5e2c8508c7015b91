#!/usr/bin/env bash
# Fuzzes every decoder of Osprey that reads untrusted bytes (fuzz/: request frames, produced
# record batches, partition directories, metadata snapshots) with cargo-fuzz and libFuzzer.
#
#   bash scripts/fuzz.sh smoke             # every target briefly, after replaying the committed
#                                          # corpus (the test command runs this)
#   bash scripts/fuzz.sh campaign SECONDS  # every target for SECONDS with AddressSanitizer;
#                                          # prints executions and coverage per target
#   bash scripts/fuzz.sh run TARGET [libFuzzer args...]
#
# The machine has the stable toolchain only; cargo-fuzz passes the sanitizer and coverage
# flags that need nightly, so RUSTC_BOOTSTRAP=1 lets the stable compiler accept them.
# New inputs go to a temporary directory, never into the committed corpus: to keep one, copy
# it to fuzz/corpus/TARGET (and a crash's input to fuzz/regressions/TARGET, which
# `cargo test --manifest-path fuzz/Cargo.toml` replays).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1

mode=${1:-smoke}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
targets=$(cargo fuzz list)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One target for `seconds`; libFuzzer first runs every committed input (seeds and
# regressions), then mutates. A crash leaves its input in $work and fails the run.
fuzz_one() {
  local target=$1 seconds=$2 sanitizer=$3
  shift 3
  mkdir -p "$work/$target"
  local dirs=("$work/$target" "fuzz/corpus/$target")
  [ -d "fuzz/regressions/$target" ] && dirs+=("fuzz/regressions/$target")
  if ! cargo fuzz run --sanitizer "$sanitizer" -O --debug-assertions "$target" "${dirs[@]}" -- \
      -max_total_time="$seconds" -rss_limit_mb=4096 -malloc_limit_mb=2048 -timeout=20 \
      -print_final_stats=1 -artifact_prefix="$work/$target-" "$@" \
      >"$work/$target.log" 2>&1; then
    tail -n 40 "$work/$target.log" >&2
    local crash
    crash=$(ls "$work/$target"-* 2>/dev/null | head -n 1 || true)
    if [ -n "$crash" ]; then
      mkdir -p fuzz/regressions/"$target"
      cp "$crash" fuzz/regressions/"$target"/
      echo "fuzz: $target failed; its input is now fuzz/regressions/$target/$(basename "$crash")" >&2
    fi
    return 1
  fi
  local execs cov
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$work/$target.log" | tail -n 1 | cut -d' ' -f2)
  printf '%-20s %12s executions  %6s edges covered  %3ss  0 crashes\n' \
    "$target" "${execs:-?}" "${cov:-?}" "$seconds"
}

failed=0
case "$mode" in
  smoke)
    # No sanitizer: Osprey's own code is safe Rust, and the smoke run is about replaying the
    # corpus and a short exploration inside the test command's time budget.
    for t in $targets; do fuzz_one "$t" "${FUZZ_SMOKE_SECONDS:-15}" none || failed=1; done
    ;;
  campaign)
    seconds=${2:?usage: scripts/fuzz.sh campaign SECONDS}
    for t in $targets; do fuzz_one "$t" "$seconds" address || failed=1; done
    ;;
  run)
    target=${2:?usage: scripts/fuzz.sh run TARGET [libFuzzer args...]}
    shift 2
    fuzz_one "$target" "${FUZZ_SECONDS:-60}" address "$@"
    ;;
  *)
    echo "usage: scripts/fuzz.sh smoke | campaign SECONDS | run TARGET [args...]" >&2
    exit 2
    ;;
esac
exit $failed
