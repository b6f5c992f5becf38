#!/usr/bin/env bash
# bench_s3.sh: upload and download throughput of layer-sized files through the S3 remote storage
# backend (build/bin/bench_s3) against curl --aws-sigv4 putting and getting the same files to the
# same server (s3rver behind the SigV4-verifying proxy, started by tests/integration/fixtures/s3.py),
# in the same run. Prints MB/s for both and the ratio ours/curl per direction; asserts nothing.
#
# Usage: bash tests/bench/bench_s3.sh [files] [MiB-per-file]   (default 8 files of 32 MiB)
# Needs a default build (scripts/build.sh) and s3rver (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
root=$(pwd)
build=${STORAGE_BUILD_DIR:-$root/build}

if [ "${1:-}" != "--inner" ]; then
  n=${1:-8}
  mib=${2:-32}
  cd tests/integration
  exec /usr/bin/python3 -m fixtures.s3 -- bash "$root/tests/bench/bench_s3.sh" --inner "$n" "$mib"
fi

n=$2
mib=$3
url=$REMOTE_STORAGE_TEST_URL # s3://bucket?region=R&endpoint=E, set by fixtures/s3.py
bucket=${url#s3://}
bucket=${bucket%%\?*}
endpoint=${url##*endpoint=}
endpoint=${endpoint%%&*}
region=${url##*region=}
region=${region%%&*}
dir=$(mktemp -d /tmp/bench_s3.XXXXXX)
trap 'rm -rf "$dir"' EXIT

for i in $(seq 0 $((n - 1))); do
  head -c $((mib * 1024 * 1024)) /dev/urandom >"$dir/f$i"
done

now() { date +%s.%N; }
sigv4=(--aws-sigv4 "aws:amz:$region:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
  -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -H "Expect:" --fail -sS)

t0=$(now)
for i in $(seq 0 $((n - 1))); do
  curl "${sigv4[@]}" -T "$dir/f$i" "$endpoint/$bucket/curl/f$i" >/dev/null
done
t1=$(now)
for i in $(seq 0 $((n - 1))); do
  curl "${sigv4[@]}" -o "$dir/curlback$i" "$endpoint/$bucket/curl/f$i"
done
t2=$(now)
for i in $(seq 0 $((n - 1))); do
  cmp -s "$dir/f$i" "$dir/curlback$i" || { echo "bench_s3: curl download $i differs" >&2; exit 1; }
done

ours=$("$build/bin/bench_s3" "$url" "$dir" "$n")
for i in $(seq 0 $((n - 1))); do
  cmp -s "$dir/f$i" "$dir/back$i" || { echo "bench_s3: backend download $i differs" >&2; exit 1; }
done

bytes=$((n * mib * 1024 * 1024))
python3 - "$bytes" "$t0" "$t1" "$t2" "$ours" <<'PY'
import sys
total, t0, t1, t2, ours = int(sys.argv[1]), *map(float, sys.argv[2:5]), sys.argv[5]
mine = {l.split()[0]: float(l.split()[2]) for l in ours.splitlines()}
curl = {"put": t1 - t0, "get": t2 - t1}
print(f"{total // (1 << 20)} MiB in files, one request at a time, same server and files")
for op in ("put", "get"):
    a, b = total / mine[op] / 1e6, total / curl[op] / 1e6
    print(f"{op}: backend {a:8.1f} MB/s   curl {b:8.1f} MB/s   ratio {a / b:5.2f}x")
PY
