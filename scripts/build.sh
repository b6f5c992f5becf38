#!/usr/bin/env bash
# Builds the project: installs the Debian packages it needs (scripts/install-deps.sh), then
# configures and builds with CMake.
#
#   scripts/build.sh              -> build/       (RelWithDebInfo)
#   scripts/build.sh --sanitize   -> build-asan/  (RelWithDebInfo, -DSANITIZE=ON: ASan + UBSan)
#
# Options: --skip-deps (or SKIP_DEPS=1) skips the package check; BUILD_JOBS overrides -j.
# Works from any directory: it changes to the repository root first.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

sanitize=0
skip_deps=${SKIP_DEPS:-0}
for arg in "$@"; do
  case "$arg" in
    --sanitize) sanitize=1 ;;
    --skip-deps) skip_deps=1 ;;
    -h | --help)
      sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build.sh: unknown argument: $arg" >&2
      exit 64
      ;;
  esac
done

if [ "$skip_deps" != 1 ]; then
  bash scripts/install-deps.sh
fi

jobs=${BUILD_JOBS:-$(nproc)}
if [ "$sanitize" = 1 ]; then
  dir=build-asan
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=ON
else
  dir=build
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=OFF
fi
cmake --build "$dir" -j"$jobs"
echo "build.sh: built $(pwd)/$dir (binaries in $dir/bin)"
