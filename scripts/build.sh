#!/usr/bin/env bash
# Builds the project: installs the Debian packages it needs (scripts/install-deps.sh), then
# configures and builds with CMake. One build type per directory:
#
#   scripts/build.sh              -> build/          RelWithDebInfo, gcc (the default)
#   scripts/build.sh --sanitize   -> build-asan/     RelWithDebInfo, gcc, ASan + UBSan
#   scripts/build.sh --release    -> build-release/  Release (-O3), gcc
#   scripts/build.sh --clang      -> build-clang/    Debug, clang
#
# Warnings are errors in every build type. Options: --skip-deps (or SKIP_DEPS=1) skips the package
# check; BUILD_JOBS overrides -j. Works from any directory: it changes to the repository root first.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

variant=default
skip_deps=${SKIP_DEPS:-0}
for arg in "$@"; do
  case "$arg" in
    --sanitize) variant=asan ;;
    --release) variant=release ;;
    --clang) variant=clang ;;
    --skip-deps) skip_deps=1 ;;
    -h | --help)
      sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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

# each variant: its directory, compiler and CMake arguments
case "$variant" in
  default) dir=build cc=gcc args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=OFF) ;;
  asan) dir=build-asan cc=gcc args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=ON) ;;
  release) dir=build-release cc=gcc args=(-DCMAKE_BUILD_TYPE=Release -DSANITIZE=OFF) ;;
  clang) dir=build-clang cc=clang args=(-DCMAKE_BUILD_TYPE=Debug -DSANITIZE=OFF) ;;
esac
if ! command -v "$cc" >/dev/null; then
  echo "build.sh: compiler $cc not found (scripts/install-deps.sh installs it)" >&2
  exit 69
fi
# CMake fixes the compiler when a directory is first configured: a directory configured with
# another compiler is configured afresh.
if [ -f "$dir/CMakeCache.txt" ] && ! grep -q "^CMAKE_C_COMPILER:[A-Z]*=.*$cc" "$dir/CMakeCache.txt"; then
  rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
fi

jobs=${BUILD_JOBS:-$(nproc)}
CC=$cc cmake -S . -B "$dir" "${args[@]}"
cmake --build "$dir" -j"$jobs"
echo "build.sh: built $(pwd)/$dir (binaries in $dir/bin)"
