#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz/, docs/fuzzing.md) in build-fuzz/ with clang and runs
# each for FUZZ_SECONDS (default 10) over a scratch copy of its seed corpus tests/fuzz/corpus/<name>/.
#
#   scripts/fuzz.sh                 every harness
#   scripts/fuzz.sh json tar        only fuzz_json and fuzz_tar
#
# One line per harness (executions, result), then "N passed, N failed". A crash, leak, UB report,
# timeout or out-of-memory fails the harness; its reproducer and log are kept under the scratch
# directory printed on that line (bin/fuzz_<name> <reproducer> replays it). Exit status non-zero
# if any failed. Environment: FUZZ_SECONDS, FUZZ_BUILD_DIR (default build-fuzz), BUILD_JOBS,
# FUZZ_SCRATCH (parent of the scratch directory; default /dev/shm when writable, else $TMPDIR or
# /tmp: the tar harness extracts archives there, which is ten times slower on a disk).
# Works from any directory.
set -uo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." || exit 1
root=$(pwd)
seconds=${FUZZ_SECONDS:-10}
build_dir=${FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${BUILD_JOBS:-$(nproc)}

if ! command -v clang >/dev/null; then
  echo "fuzz.sh: clang (with libFuzzer) is required" >&2
  exit 1
fi
CC=clang cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUZZ=ON >/dev/null || exit 1
cmake --build "$build_dir" -j"$jobs" --target fuzz_all >"$build_dir/fuzz-build.log" 2>&1 || {
  tail -n 40 "$build_dir/fuzz-build.log"
  echo "fuzz.sh: build failed (log: $build_dir/fuzz-build.log)"
  exit 1
}

if [ "$#" -gt 0 ]; then
  names=("$@")
else
  names=()
  for src in tests/fuzz/fuzz_*.c; do
    n=$(basename "$src" .c)
    names+=("${n#fuzz_}")
  done
fi

scratch_parent=${FUZZ_SCRATCH:-}
if [ -z "$scratch_parent" ]; then
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch_parent=/dev/shm; else scratch_parent=${TMPDIR:-/tmp}; fi
fi
scratch=$(mktemp -d "$scratch_parent/fuzz.XXXXXX") || exit 1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
passed=0
failed=0
for name in "${names[@]}"; do
  bin="$build_dir/bin/fuzz_$name"
  seeds="tests/fuzz/corpus/$name"
  dir="$scratch/$name"
  mkdir -p "$dir/corpus" "$dir/tmp"
  if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
    printf '%-18s %12s  FAIL (no harness %s or no corpus %s)\n' "$name" "-" "$bin" "$seeds"
    failed=$((failed + 1))
    continue
  fi
  cp -r "$seeds"/. "$dir/corpus/"
  # harnesses that need files (tar extraction, auth's key) make them under TMPDIR
  TMPDIR="$dir/tmp" "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  if [ "$rc" -eq 0 ]; then
    printf '%-18s %12s execs  ok\n' "$name" "${execs:-?}"
    passed=$((passed + 1))
  else
    what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)[^(]*|runtime error: .*|invariant failed: .*' "$dir/log")
    art=$(ls "$dir" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | head -n 1)
    printf '%-18s %12s execs  FAIL (rc %s: %s) reproducer %s, log %s\n' "$name" "${execs:-?}" \
      "$rc" "${what:-see log}" "${art:+$dir/$art}" "$dir/log"
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  echo "fuzz.sh: scratch kept in $scratch"
  exit 1
fi
rm -rf "$scratch"
