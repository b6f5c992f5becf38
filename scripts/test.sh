#!/usr/bin/env bash
# Runs every check the project has, in the order CI runs them:
#
#   1. deps           scripts/install-deps.sh
#   2. layers         scripts/check-layers.sh (--self-test, then the tree): include layering
#   3. build-asan     scripts/build.sh --sanitize   (build-asan/, RelWithDebInfo, ASan + UBSan)
#   4. build          scripts/build.sh              (build/, RelWithDebInfo: the default)
#   5. build-release  scripts/build.sh --release    (build-release/, Release -O3, gcc)
#   6. build-clang    scripts/build.sh --clang      (build-clang/, Debug, clang)
#   7. unit-asan      ctest --test-dir build-asan -L unit          (unit tests under the sanitizers)
#   8. unit           ctest --test-dir build -LE integration       (everything but the integration suite)
#   9. unit-release   ctest --test-dir build-release -L unit
#  10. unit-clang     ctest --test-dir build-clang -L unit
#  11. integration    ctest --test-dir build -L integration -V     (pytest against the real daemons)
#  12. integration-asan ctest --test-dir build-asan -L integration  (the same suite, daemons under ASan)
#  13. integration-s3 ctest --test-dir build -L integration-s3     (pageserver suites on S3: s3rver)
#  14. fuzz           scripts/fuzz.sh                 (every libFuzzer harness briefly, build-fuzz/)
#
# Warnings are errors in every build. Every stage runs even when an earlier one failed (unless it
# needs a build that failed); the output of each goes to the terminal and to
# $TEST_LOG_DIR/<stage>.log (default build/test-logs). A summary closes the run (with ctest's and
# pytest's closing lines); the exit status is non-zero if any stage failed. Works from any
# directory. Under CI=true a unit test whose external program (Postgres, initdb, GNU tar) is
# missing fails instead of skipping (tests/unit/dep_util.h).
set -uo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." || exit 1
root=$(pwd)
log_dir=${TEST_LOG_DIR:-$root/build/test-logs}
jobs=$(nproc)
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}

declare -a names=() results=() seconds=() notes=()
failed=0

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
    integration*)
      # pytest -q's closing line, e.g. "1: 25 passed, 1 skipped in 41.20s" (ctest prefixes "1: ")
      grep -E '[0-9]+ (passed|failed|error|errors|skipped|deselected)' "$2" | grep -E ' in [0-9.]+s' |
        tail -n 1 | sed -E 's/^[0-9]+: //; s/^=+ //; s/ =+$//'
      ;;
    fuzz) grep -E '^[0-9]+ passed, [0-9]+ failed' "$2" | tail -n 1 ;;
    *) : ;;
  esac
}

stage deps bash scripts/install-deps.sh
stage layers bash -c 'bash scripts/check-layers.sh --self-test && bash scripts/check-layers.sh'

# build-<variant> then unit-<variant> for each extra build type; the default build also runs the
# integration suite.
declare -A built=()
for variant in asan default release clang; do
  case "$variant" in
    asan) flag=--sanitize dir=build-asan name=asan ;;
    default) flag= dir=build name= ;;
    release) flag=--release dir=build-release name=release ;;
    clang) flag=--clang dir=build-clang name=clang ;;
  esac
  stage "build${name:+-$name}" bash scripts/build.sh $flag --skip-deps && built[$variant]=1
done

for variant in asan default release clang; do
  case "$variant" in
    asan) dir=build-asan name=unit-asan labels=(-L unit) ;;
    default) dir=build name=unit labels=(-LE integration) ;;
    release) dir=build-release name=unit-release labels=(-L unit) ;;
    clang) dir=build-clang name=unit-clang labels=(-L unit) ;;
  esac
  if [ "${built[$variant]:-0}" = 1 ]; then
    stage "$name" ctest --test-dir "$dir" "${labels[@]}" --output-on-failure -j "$jobs"
  else
    skip "$name" "$dir build failed"
  fi
done

if [ "${built[default]:-0}" = 1 ]; then
  stage integration ctest --test-dir build -L '^integration$' --output-on-failure -V
else
  skip integration "build failed"
fi
if [ "${built[asan]:-0}" = 1 ]; then
  stage integration-asan ctest --test-dir build-asan -L '^integration$' --output-on-failure -V
else
  skip integration-asan "build-asan failed"
fi
if [ "${built[default]:-0}" = 1 ]; then
  stage integration-s3 ctest --test-dir build -L integration-s3 --output-on-failure -V
else
  skip integration-s3 "build failed"
fi

stage fuzz bash scripts/fuzz.sh

echo
echo "======== summary ========"
for i in "${!names[@]}"; do
  printf '%-16s %-9s %5ss  %s\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}" "${notes[$i]}"
done
echo "logs: $log_dir"
if [ "$failed" -ne 0 ]; then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all stages passed"
