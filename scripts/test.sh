#!/usr/bin/env bash
# Runs every check the project has, in the order CI runs them:
#
#   1. deps         scripts/install-deps.sh
#   2. build-asan   scripts/build.sh --sanitize        (build-asan/, ASan + UBSan)
#   3. build        scripts/build.sh                   (build/)
#   4. unit-asan    ctest --test-dir build-asan -L unit       (unit tests under the sanitizers)
#   5. unit         ctest --test-dir build -LE integration    (everything but the integration suite)
#   6. integration  ctest --test-dir build -L integration -V  (pytest against the real daemons)
#
# Every stage runs even when an earlier one failed (unless it needs a build that failed); the
# output of each goes to the terminal and to $TEST_LOG_DIR/<stage>.log (default build/test-logs).
# A summary closes the run (with ctest's and pytest's closing lines); the exit status is non-zero
# if any stage failed. Works from any directory.
set -uo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." || exit 1
root=$(pwd)
log_dir=${TEST_LOG_DIR:-$root/build/test-logs}
jobs=$(nproc)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}

declare -a names=() results=() seconds=() notes=()
failed=0
asan_built=0
built=0

# stage NAME CMD...: run a command, tee its output to the stage log, record the result.
stage() {
  local name=$1
  shift
  local log="$log_dir/$name.log"
  mkdir -p "$log_dir"
  echo
  echo "======== $name: $* ========"
  local t0=$SECONDS rc
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  names+=("$name")
  seconds+=($((SECONDS - t0)))
  if [ "$rc" -eq 0 ]; then results+=("PASS"); else results+=("FAIL($rc)"); failed=1; fi
  notes+=("$(summary_line "$name" "$log")")
  return "$rc"
}

skip() {
  names+=("$1")
  results+=("SKIP")
  seconds+=(0)
  notes+=("$2")
  failed=1
}

# summary_line NAME LOG: the closing line worth showing for a stage.
summary_line() {
  case "$1" in
    unit*) grep -E 'tests passed|tests failed|No tests were found' "$2" | tail -n 1 ;;
    integration)
      # pytest -q's closing line, e.g. "1: 25 passed, 1 skipped in 41.20s" (ctest prefixes "1: ")
      grep -E '[0-9]+ (passed|failed|error|errors|skipped|deselected)' "$2" | grep -E ' in [0-9.]+s' |
        tail -n 1 | sed -E 's/^[0-9]+: //; s/^=+ //; s/ =+$//'
      ;;
    *) : ;;
  esac
}

stage deps bash scripts/install-deps.sh

stage build-asan bash scripts/build.sh --sanitize --skip-deps && asan_built=1
stage build bash scripts/build.sh --skip-deps && built=1

if [ "$asan_built" = 1 ]; then
  stage unit-asan ctest --test-dir build-asan -L unit --output-on-failure -j "$jobs"
else
  skip unit-asan "sanitizer build failed"
fi

if [ "$built" = 1 ]; then
  stage unit ctest --test-dir build -LE integration --output-on-failure -j "$jobs"
  stage integration ctest --test-dir build -L integration --output-on-failure -V
else
  skip unit "build failed"
  skip integration "build failed"
fi

echo
echo "======== summary ========"
for i in "${!names[@]}"; do
  printf '%-12s %-9s %5ss  %s\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}" "${notes[$i]}"
done
echo "logs: $log_dir"
if [ "$failed" -ne 0 ]; then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all stages passed"
