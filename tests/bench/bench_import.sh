#!/usr/bin/env bash
# bench_import.sh: timeline import throughput and pageserver memory (docs/testing.md, Benchmarks).
#
#   tests/bench/bench_import.sh
#
# 1. A pgbench database of scale $BENCH_IMPORT_SCALE (default 70, about 1.1 GiB) made by a
#    throwaway Postgres 15 (initdb, `pgbench -i`, fast shutdown by pid: a clean shutdown; a small
#    max_wal_size keeps pg_wal small). With BENCH_IMPORT_CACHE=DIR it is kept in
#    DIR/pgbench-s<scale>/pgdata and reused by later runs; without it, it is removed at the end.
# 2. The baseline, over the same directory: `tar -cf - pgdata | zstd -1 -T2 > /dev/null`, timed
#    (after one untimed read, so both sides read from the page cache).
# 3. A throwaway cluster: scripts/demo.sh with its own DEMO_DIR (Postgres, storcon, 3 pageservers
#    with --import-parallelism $BENCH_IMPORT_PARALLELISM (default 2) and --import-job-size
#    $BENCH_IMPORT_JOB_SIZE (default 268435456)), without the demo's own pgbench import.
# 4. For an unsharded and a 4-shard tenant (created through storcon): `storconctl timelines import
#    --pgdata` (no --wait), then GET /control/v1/tenant/{t}/timeline/{tl}/import every 0.1 s until
#    it answers 404 (the import was finalised: every shard Done, activated, import_complete sent,
#    the row deleted), as `--wait` does. Timed from the command's start to the 404. Meanwhile
#    every pageserver's VmRSS is sampled every 0.1 s; the peak reported is the largest sample of
#    one pageserver process during that import. VmHWM (the process lifetime's peak, the
#    pageservers are not restarted between the imports) is printed before and after each import.
#
# Prints MiB/s for the baseline and each import, the ratio import/baseline and the peak RSS, next
# to the issue's targets (>= 0.8x the baseline's throughput, peak RSS < 256 MiB); nothing is
# asserted on time. Run as root (Postgres runs as the postgres user through runuser). Stops what
# it started by pid and removes its temporary directory. BENCH_IMPORT_KEEP=1 keeps that directory
# (the cluster's logs) for a look afterwards.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
ROOT=$(pwd)
BIN=${STORAGE_BUILD_DIR:-$ROOT/build}/bin
PG_BIN=/usr/lib/postgresql/15/bin
SCALE=${BENCH_IMPORT_SCALE:-70}
CACHE=${BENCH_IMPORT_CACHE:-}
PARALLELISM=${BENCH_IMPORT_PARALLELISM:-2}
JOB_SIZE=${BENCH_IMPORT_JOB_SIZE:-268435456}
PYTHON=/usr/bin/python3

log() { echo "bench_import: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# shellcheck source=tests/bench/lib_pgbench.sh
. "$ROOT/tests/bench/lib_pgbench.sh"
bench_require "$PG_BIN/initdb" "$PG_BIN/pgbench" zstd tar curl

bench_workdir import "${BENCH_IMPORT_KEEP:-0}"
SAMPLER_PID=""
bench_stop_extra() { if [ -n "$SAMPLER_PID" ]; then stop_by_pid "$SAMPLER_PID" TERM; fi; }

# ---- 1. the source ----

if [ -n "$CACHE" ]; then
  mkdir -p "$CACHE"
  SRC="$(readlink -f "$CACHE")/pgbench-s$SCALE"
else
  SRC="$WORK/src"
fi
PGDATA_DIR="$SRC/pgdata"
make_pgbench_pgdata "$SRC" "$SCALE"
BYTES=$(du -sb "$PGDATA_DIR" | cut -f1)
WAL_BYTES=$(du -sb "$PGDATA_DIR/pg_wal" | cut -f1)

# ---- 2. the baseline ----

tar -cf - -C "$SRC" pgdata | cat >/dev/null # warm the page cache (tar skips reads into /dev/null)
TIMEFORMAT='%U %S'
t0=$(now)
BASE_CPU=$({ time tar -cf - -C "$SRC" pgdata | zstd -1 -T2 -q >/dev/null; } 2>&1 | awk '{ printf "%.2f", $1 + $2 }')
BASE_SECS=$(secs "$t0" "$(now)")
BASE_RATE=$(rate "$BYTES" "$BASE_SECS")

# ---- 3. the cluster ----

log "starting a throwaway cluster in $CLUSTER"
DEMO_DIR="$CLUSTER" DEMO_SKIP_BUILD=1 DEMO_SKIP_IMPORT=1 \
  DEMO_PAGESERVER_ARGS="--import-parallelism $PARALLELISM --import-job-size $JOB_SIZE" \
  bash scripts/demo.sh start >"$WORK/demo.log" 2>&1 || {
  cat "$WORK/demo.log" >&2
  die "the cluster did not start"
}
STORCON_URL=$(awk '$1 == "storcon" { print $3 }' "$CLUSTER/pids" | tail -n 1)
mapfile -t PS_PIDS < <(awk '$1 ~ /^pageserver_/ { print $2 }' "$CLUSTER/pids")
{ [ -n "$STORCON_URL" ] && [ "${#PS_PIDS[@]}" -gt 0 ]; } || die "no storcon or pageservers in $CLUSTER/pids"
ctl() { "$BIN/storconctl" --api "$STORCON_URL" "$@"; }

# status_kib PID FIELD: a /proc/PID/status field in KiB (0 when gone); builtins only, no fork.
status_kib() {
  local k v _ out=0
  if [ -r "/proc/$1/status" ]; then
    while read -r k v _; do
      if [ "$k" = "$2:" ]; then
        out=$v
        break
      fi
    done <"/proc/$1/status"
  fi
  echo "$out"
}
# cpu_all: user + system CPU seconds used so far by all the pageservers (from /proc/PID/stat).
cpu_all() {
  local pid ticks=0 f
  for pid in "${PS_PIDS[@]}"; do
    if [ -r "/proc/$pid/stat" ]; then
      read -r -a f <"/proc/$pid/stat"
      ticks=$((ticks + f[13] + f[14]))
    fi
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}
hwm_all() {
  local pid out=""
  for pid in "${PS_PIDS[@]}"; do out+="$(mib "$(($(status_kib "$pid" VmHWM) * 1024))") "; done
  echo "${out% }"
}

# sampler FILE: every 0.1 s one line "pid VmRSS-KiB" per pageserver, until killed.
sampler() {
  local pid
  while :; do
    for pid in "${PS_PIDS[@]}"; do echo "$pid $(status_kib "$pid" VmRSS)"; done
    sleep 0.1
  done >"$1"
}

# ---- 4. the imports ----

RESULTS=()
bench_one() {
  local shards=$1 out tenant tl t0 t1 code failed=0 hwm0 hwm1 peak per info lsn cpu0 cpu
  out=$(ctl --json tenants create --shard-count "$shards") || die "creating a $shards-shard tenant failed"
  tenant=$(printf '%s' "$out" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["shards"][0]["shard_id"][:32])')
  tl=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  hwm0=$(hwm_all)
  sampler "$WORK/rss-$shards" &
  SAMPLER_PID=$!
  cpu0=$(cpu_all)
  t0=$(now)
  ctl timelines import "$tenant" --pgdata "$PGDATA_DIR" --timeline "$tl" >"$WORK/import-$shards.log" 2>&1 || {
    cat "$WORK/import-$shards.log" >&2
    die "storconctl timelines import failed"
  }
  # Poll lightly (one curl, no parsing: the machine has 2 cores); the last view seen tells failure.
  rm -f "$WORK/view"
  for ((;;)); do
    code=$(curl -sS -o "$WORK/view.tmp" -w '%{http_code}' --max-time 10 \
      "$STORCON_URL/control/v1/tenant/$tenant/timeline/$tl/import") || code=000
    if [ "$code" = 404 ]; then break; fi
    if [ "$code" = 200 ]; then mv -f "$WORK/view.tmp" "$WORK/view"; fi
    if [ $(($(date +%s) - ${t0%.*})) -gt 3600 ]; then die "the import did not finish within an hour"; fi
    sleep 0.1
  done
  t1=$(now)
  cpu=$(awk -v a="$cpu0" -v b="$(cpu_all)" 'BEGIN { printf "%.2f", b - a }')
  stop_by_pid "$SAMPLER_PID" TERM
  SAMPLER_PID=""
  if [ -f "$WORK/view" ]; then
    failed=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("failed", 0))' "$WORK/view")
  fi
  [ "$failed" = 0 ] || die "the $shards-shard import failed: $(cat "$WORK/view")"
  hwm1=$(hwm_all)
  info=$(curl -fsS --max-time 10 "$STORCON_URL/v1/tenant/$tenant/timeline/$tl") || die "timeline $tl not readable"
  lsn=$(printf '%s' "$info" | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(d["last_record_lsn"], d["state"])')
  peak=$(awk '{ if ($2 > m[$1]) m[$1] = $2 } END { x = 0; for (p in m) if (m[p] > x) x = m[p]; printf "%.0f", x / 1024 }' "$WORK/rss-$shards")
  per=$(awk -v order="${PS_PIDS[*]}" '{ if ($2 > m[$1]) m[$1] = $2 }
    END { n = split(order, o, " "); for (i = 1; i <= n; i++) printf "%s:%.0f ", o[i], m[o[i]] / 1024 }' \
    "$WORK/rss-$shards")
  local s rt
  s=$(secs "$t0" "$t1")
  rt=$(rate "$BYTES" "$s")
  RESULTS+=("$(printf 'import %d shard%s: %s MiB in %s s = %s MiB/s  ratio %s  peak RSS %s MiB' \
    "$shards" "$([ "$shards" = 1 ] || echo s)" "$(mib "$BYTES")" "$s" "$rt" \
    "$(ratio "$rt" "$BASE_RATE")" "$peak")")
  RESULTS+=("    CPU of the pageservers: $cpu s (baseline $BASE_CPU s): CPU ratio $(ratio "$BASE_CPU" "$cpu")")
  RESULTS+=("    tenant $tenant timeline $tl: last_record_lsn/state $lsn")
  RESULTS+=("    sampled VmRSS peak per pageserver pid (MiB): ${per% }")
  RESULTS+=("    VmHWM per pageserver (MiB, process lifetime): before ${hwm0// /\/}  after ${hwm1// /\/}")
  log "${RESULTS[-5]}"
  log "${RESULTS[-4]}"
}

bench_one 1
bench_one 4

cat <<EOF

bench_import: pgbench -i -s $SCALE data directory $PGDATA_DIR: $(mib "$BYTES") MiB ($(mib "$WAL_BYTES") MiB of it pg_wal)
pageservers: 3, --import-parallelism $PARALLELISM --import-job-size $JOB_SIZE (other flags default); $(nproc) cores
baseline tar|zstd -1 -T2: $(mib "$BYTES") MiB in $BASE_SECS s = $BASE_RATE MiB/s, $BASE_CPU s of CPU
$(printf '%s\n' "${RESULTS[@]}")
imports timed from storconctl's create to the import route's 404 (finalised), polled every 0.1 s;
peak RSS = the largest VmRSS sample (every 0.1 s) of one pageserver during that import; VmHWM covers
each pageserver's lifetime (not restarted between the imports), listed in pid order of the pids file.
targets (the issue; not asserted): import >= 0.8x baseline throughput, peak RSS < 256 MiB
EOF
