#!/usr/bin/env bash
# bench_pagestream.sh: page service GetPage throughput and latency (docs/testing.md, Benchmarks).
#
#   tests/bench/bench_pagestream.sh [seconds-per-case]
#
# 1. A throwaway cluster: scripts/demo.sh with its own DEMO_DIR (Postgres, storcon, 3 pageservers;
#    the demo makes a `pgbench -i -s 1` data directory and imports it into its 4-shard tenant).
# 2. An unsharded tenant created through storcon, the same data directory imported into it
#    (`storconctl timelines import --wait`), so every page is on one pageserver.
# 3. build/bin/bench_pagestream against that pageserver's page service, reading the largest
#    relation of the data directory (pgbench_accounts) at the timeline's last_record_lsn, after
#    one untimed pass over it (a warm timeline: its layers local and in the page cache). The bench
#    prints, for 1 and 8 connections x depth 1 and 32, GetPage/s and p50/p99 latency next to its
#    own fixed-page baseline server, and their ratio. Nothing is asserted on time.
#
# Run as root (Postgres runs as the postgres user through runuser). Stops what it started by pid
# and removes its temporary directory; BENCH_PAGESTREAM_KEEP=1 keeps it (the cluster's logs).
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
ROOT=$(pwd)
BIN=${STORAGE_BUILD_DIR:-$ROOT/build}/bin
SECONDS_PER_CASE=${1:-3}
PYTHON=/usr/bin/python3

log() { echo "bench_pagestream: $*" >&2; }
die() {
  log "$*"
  exit 1
}

for b in storcon pageserver storconctl bench_pagestream; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing: build first (SKIP_DEPS=1 bash scripts/build.sh)"
done

WORK=$(mktemp -d /tmp/bench-pagestream.XXXXXX)
chmod 755 "$WORK" # the postgres user must reach the cluster's directories
CLUSTER="$WORK/cluster"

# cleanup: stop the cluster by the pids demo.sh recorded, then remove (or keep) the directory.
cleanup() {
  local rc=$?
  [ ! -f "$CLUSTER/pids" ] || DEMO_DIR="$CLUSTER" bash scripts/demo.sh stop >"$WORK/stop.log" 2>&1 ||
    cat "$WORK/stop.log" >&2
  case "${BENCH_PAGESTREAM_KEEP:-0}" in
    1) log "kept $WORK" ;;
    *) rm -rf "$WORK" ;;
  esac
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. the cluster (with the demo's pgbench data directory) ----

log "starting a throwaway cluster in $CLUSTER"
DEMO_DIR="$CLUSTER" DEMO_SKIP_BUILD=1 bash scripts/demo.sh start >"$WORK/demo.log" 2>&1 || {
  cat "$WORK/demo.log" >&2
  die "the cluster did not start"
}
STORCON_URL=$(awk '$1 == "storcon" { print $3 }' "$CLUSTER/pids" | tail -n 1)
[ -n "$STORCON_URL" ] || die "no storcon in $CLUSTER/pids"
PGDATA_DIR="$CLUSTER/pgbench_import/pgdata"
[ -f "$PGDATA_DIR/PG_VERSION" ] || die "the demo made no pgbench data directory"
ctl() { "$BIN/storconctl" --api "$STORCON_URL" "$@"; }

# ---- 2. an unsharded tenant with the import ----

out=$(ctl --json tenants create) || die "creating the tenant failed"
TENANT=$(printf '%s' "$out" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["shards"][0]["shard_id"][:32])')
TIMELINE=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
log "importing $PGDATA_DIR into tenant $TENANT as timeline $TIMELINE"
ctl timelines import "$TENANT" --pgdata "$PGDATA_DIR" --timeline "$TIMELINE" --wait \
  >"$WORK/import.log" 2>&1 || {
  cat "$WORK/import.log" >&2
  die "the import failed"
}
info=$(curl -fsS --max-time 10 "$STORCON_URL/v1/tenant/$TENANT/timeline/$TIMELINE") ||
  die "timeline $TIMELINE not readable"
LSN=$(printf '%s' "$info" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["last_record_lsn"])')
ADDR=$(ctl --json tenants locate "$TENANT" | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)["shards"][0]
print("%s:%s" % (s["listen_pg_addr"], s["listen_pg_port"]))')
# the largest relation file of a database (pgbench_accounts): base/<db>/<relfilenode>
REL=$(cd "$PGDATA_DIR" && find base -regextype posix-extended -regex 'base/[0-9]+/[0-9]+' \
  -printf '%s %p\n' | sort -n | tail -n 1 | awk '{ split($2, p, "/"); print "1663/" p[2] "/" p[3] }')
log "tenant $TENANT timeline $TIMELINE at $LSN on $ADDR; relation $REL"

# ---- 3. the bench (one untimed warm-up pass first) ----

"$BIN/bench_pagestream" --addr "$ADDR" --tenant "$TENANT" --timeline "$TIMELINE" --rel "$REL" \
  --lsn "$LSN" --seconds 1 >/dev/null || die "the warm-up pass failed"
"$BIN/bench_pagestream" --addr "$ADDR" --tenant "$TENANT" --timeline "$TIMELINE" --rel "$REL" \
  --lsn "$LSN" --seconds "$SECONDS_PER_CASE"
# where the pageserver read the batches: on the connection threads (read views) or on its loop
PS_HTTP=$(awk -v pg="pg=$ADDR" '$1 ~ /^pageserver/ && $4 == pg { print $3 }' "$CLUSTER/pids")
if [ -n "$PS_HTTP" ]; then
  curl -fsS --max-time 10 "$PS_HTTP/metrics" |
    awk '/^pageserver_page_service_batches_total/ { sub(/.*path="/, ""); sub(/"}/, ""); b[$1] = $2 }
         END { printf "pageserver read batches: %d on the connection threads, %d through its loop\n", b["thread"], b["loop"] }'
fi
echo "pageserver: default flags (--worker-threads 4, --page-service-threads 0: the online CPUs up to"
echo "4); $(nproc) cores shared by the bench, the baseline server and the pageserver"
