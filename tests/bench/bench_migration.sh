#!/usr/bin/env bash
# bench_migration.sh: live migration of N tenant shards (docs/secondaries.md "Live migration").
#
#   tests/bench/bench_migration.sh            # N = 8 and 64
#   BENCH_MIGRATION_COUNTS=8 tests/bench/bench_migration.sh
#   tests/bench/bench_migration.sh -k pgbench   # only the imported pgbench tenant (BENCH_MIGRATION_SCALE, default 20)
#
# For each N, a throwaway cluster of the integration fixtures (storcon, 3 pageservers, Postgres,
# the fake control plane; all stopped by pid afterwards):
#   1. a tenant of N shards with placement {"Attached": 1} and a bootstrapped timeline, every
#      secondary warmed (heatmap_upload, secondary/download); a reader thread reads shard 0's pages
#      over HTTP getpage in a loop from the node of the newest compute notification, comparing each
#      page with the initdb source; the N migrate PUTs (each shard onto its secondary) are sent at
#      once and timed until every shard is AttachedSingle on its destination and no reconcile runs;
#   2. the baseline in the same run: a tenant of N shards with {"Attached": 0} moved to nodes that
#      hold nothing of it (the destination becomes a secondary and downloads everything during the
#      migration's warm-up: a cold move).
# Prints the time to settle, per shard, the longest gap between two successful reads, failed
# reads, layers downloaded from remote storage during the moves, and the warm/cold ratio.
# Then (test_bench_migration_pgbench) an unsharded {"Attached": 1} tenant holding an imported
# `pgbench -i -s $BENCH_MIGRATION_SCALE` database (default 20), its secondary warmed: one migrate
# onto the warm secondary under the reader, then the same-run baseline, a migrate onto the third
# node which holds nothing of it; for each the time from the migrate call to the cut-over, the
# longest read window and the bytes read from remote storage (on-demand and secondary downloads).
# Nothing is asserted on time (a wrong page fails the run). Not run in CI.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
ROOT=$(pwd)
export STORAGE_BUILD_DIR=${STORAGE_BUILD_DIR:-$ROOT/build}
[ -x "$STORAGE_BUILD_DIR/bin/storcon" ] || {
  echo "bench_migration: build first (bash scripts/build.sh --skip-deps)" >&2
  exit 1
}
cd tests/integration
PYTHONPATH="$ROOT/tests/integration" exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider \
  -c "$ROOT/tests/integration/pytest.ini" -p conftest --rootdir "$ROOT/tests/integration" "$ROOT/tests/bench/bench_migration.py" "$@"
