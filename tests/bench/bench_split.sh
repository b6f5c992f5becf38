#!/usr/bin/env bash
# bench_split.sh: the time of a 1 -> 8 shard split of an imported pgbench tenant and the longest
# read window under a continuous reader (docs/testing.md, Benchmarks; docs/split.md).
#
#   tests/bench/bench_split.sh
#
# 1. A pgbench database of scale $BENCH_SPLIT_SCALE (default 20, about 300 MiB), made by a
#    throwaway Postgres 15 (tests/bench/lib_pgbench.sh); BENCH_SPLIT_CACHE=DIR keeps it in
#    DIR/pgbench-s<scale>/pgdata for later runs (the same layout as BENCH_IMPORT_CACHE).
# 2. A throwaway cluster (scripts/demo.sh with its own DEMO_DIR: Postgres, storcon, 3
#    pageservers), an unsharded tenant, and the database imported into it (storconctl timelines
#    import --wait; not timed).
# 3. The baseline: `cp -r` of the tenant's remote-storage prefix (tenants/<tenant_id>, its layer
#    files and index), after one untimed read so both sides work from the page cache.
# 4. A continuous reader (bench_split_reader.py: GetPage round robin over pgbench_accounts through
#    the attached pageserver's page service, which picks the owning shard by key) runs while
#    `PUT /control/v1/tenant/<tenant>/shard_split {"new_shard_count": 8}` is timed (one curl; it
#    answers once the split is committed and the children are in memory); then the reader reports
#    its reads, errors, wrong pages and the longest gap between two successful reads around the
#    split, and `storconctl tenants describe` shows the new placement.
#
# Prints the split time, the copy time and their ratio, and the longest read window, next to the
# issue's expectations (the split moves no layer data, so it should take a small fraction of the
# copy and keep the read window under 1 s); nothing is asserted on time. Run as root (Postgres
# runs as the postgres user through runuser). Stops what it started by pid and removes its
# temporary directory (BENCH_SPLIT_KEEP=1 keeps it).
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
ROOT=$(pwd)
BIN=${STORAGE_BUILD_DIR:-$ROOT/build}/bin
PG_BIN=/usr/lib/postgresql/15/bin
SCALE=${BENCH_SPLIT_SCALE:-20}
CACHE=${BENCH_SPLIT_CACHE:-}
PYTHON=/usr/bin/python3

log() { echo "bench_split: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# shellcheck source=tests/bench/lib_pgbench.sh
. "$ROOT/tests/bench/lib_pgbench.sh"
bench_require "$PG_BIN/initdb" "$PG_BIN/pgbench" curl

bench_workdir split "${BENCH_SPLIT_KEEP:-0}"
READER_PID=""
bench_stop_extra() { if [ -n "$READER_PID" ]; then stop_by_pid "$READER_PID" TERM; fi; }

mono() { "$PYTHON" -c 'import time; print(time.monotonic())'; }
json_get() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- 1. the source ----

if [ -n "$CACHE" ]; then
  mkdir -p "$CACHE"
  SRC="$(readlink -f "$CACHE")/pgbench-s$SCALE"
else
  SRC="$WORK/src"
fi
PGDATA_DIR="$SRC/pgdata"
make_pgbench_pgdata "$SRC" "$SCALE"

# ---- 2. the cluster and the imported tenant ----

log "starting a throwaway cluster in $CLUSTER"
DEMO_DIR="$CLUSTER" DEMO_SKIP_BUILD=1 DEMO_SKIP_IMPORT=1 \
  bash scripts/demo.sh start >"$WORK/demo.log" 2>&1 || {
  cat "$WORK/demo.log" >&2
  die "the cluster did not start"
}
STORCON_URL=$(awk '$1 == "storcon" { print $3 }' "$CLUSTER/pids" | tail -n 1)
[ -n "$STORCON_URL" ] || die "no storcon in $CLUSTER/pids"
ctl() { "$BIN/storconctl" --api "$STORCON_URL" "$@"; }

TENANT=$(ctl --json tenants create | json_get 'd["shards"][0]["shard_id"][:32]') ||
  die "creating the tenant failed"
TL=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
log "importing the pgbench database into tenant $TENANT timeline $TL"
t0=$(now)
ctl timelines import "$TENANT" --pgdata "$PGDATA_DIR" --timeline "$TL" --wait \
  >"$WORK/import.log" 2>&1 || {
  cat "$WORK/import.log" >&2
  die "the import failed"
}
log "imported in $(secs "$t0" "$(now)") s"
NODE=$(ctl --json tenants describe "$TENANT" | json_get 'd["shards"][0]["node_attached"]')
PS_LINE=$(awk -v n="pageserver_$NODE" '$1 == n { print $3, $4 }' "$CLUSTER/pids" | tail -n 1)
PS_HTTP=${PS_LINE%% *}
PS_PG=${PS_LINE##*pg=}
# the largest relation (pgbench_accounts) and its size
read -r SPC DB REL NBLOCKS < <(curl -fsS --max-time 30 "$PS_HTTP/v1/tenant/$TENANT/timeline/$TL/relations" |
  json_get '" ".join(str(x) for x in (lambda r: (r["spcnode"], r["dbnode"], r["relnode"], r["nblocks"]))(max((r for r in d["relations"] if r["forknum"] == 0), key=lambda r: r["nblocks"])))')
log "reader: relation $SPC/$DB/$REL ($NBLOCKS blocks) through $PS_PG"

# ---- 3. the baseline ----

PREFIX="$CLUSTER/remote_storage/tenants/$TENANT"
[ -d "$PREFIX" ] || die "no $PREFIX"
PREFIX_BYTES=$(du -sb "$PREFIX" | cut -f1)
tar -cf - -C "$(dirname "$PREFIX")" "$TENANT" | cat >/dev/null # warm the page cache
t0=$(now)
cp -r "$PREFIX" "$WORK/copy"
sync -f "$WORK/copy" 2>/dev/null || true
COPY_SECS=$(secs "$t0" "$(now)")
rm -rf "$WORK/copy"

# ---- 4. the split under the reader ----

: >"$WORK/window"
"$PYTHON" "$ROOT/tests/bench/bench_split_reader.py" "$PS_PG" "$TENANT" "$TL" "$SPC" "$DB" \
  "$REL" "$NBLOCKS" "$WORK/window" >"$WORK/reader.json" 2>"$WORK/reader.log" &
READER_PID=$!
sleep 2 # the reader settles in
w0=$(mono)
t0=$(now)
code=$(curl -sS -o "$WORK/split.json" -w '%{http_code}' --max-time 300 -X PUT \
  -H 'Content-Type: application/json' -d '{"new_shard_count": 8}' \
  "$STORCON_URL/control/v1/tenant/$TENANT/shard_split") || code=000
SPLIT_SECS=$(secs "$t0" "$(now)")
[ "$code" = 200 ] || die "the split answered $code: $(cat "$WORK/split.json" 2>/dev/null)"
w1=$(mono)
sleep 2 # reads on the children
echo "$w0 $w1" >"$WORK/window"
stop_by_pid "$READER_PID" TERM
READER_PID=""
READER=$(cat "$WORK/reader.json")
[ -n "$READER" ] || die "the reader printed nothing: $(cat "$WORK/reader.log")"
GAP=$(printf '%s' "$READER" | json_get 'd["longest_gap_s"]')

cat <<EOF

bench_split: pgbench -i -s $SCALE imported into an unsharded tenant ($(mib "$(du -sb "$PGDATA_DIR" | cut -f1)") MiB data directory)
remote prefix tenants/$TENANT: $(mib "$PREFIX_BYTES") MiB; $(nproc) cores
baseline cp -r of the prefix: $COPY_SECS s
split 1 -> 8 (PUT shard_split, until committed): $SPLIT_SECS s  ratio split/copy $(ratio "$SPLIT_SECS" "$COPY_SECS")
continuous reader (relation $REL, $NBLOCKS blocks): $READER
longest read window around the split: $GAP s
$(ctl tenants describe "$TENANT" 2>&1 | head -n 12)
expectations (the issue; not asserted): the split a small fraction of the copy, the read window under 1 s
EOF
