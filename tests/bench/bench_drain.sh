#!/usr/bin/env bash
# bench_drain.sh: drain and fill of a node holding 64 attached shards with warm secondaries, and
# the longest read window a continuous reader sees (docs/testing.md, Benchmarks). Not run by CI.
#
#   tests/bench/bench_drain.sh            (BENCH_DRAIN_TENANTS=32 tenants x 4 shards on 2 nodes)
#
# Runs tests/bench/bench_drain.py with the integration suite's fixtures (a throwaway Postgres,
# storcon, 2 pageservers, every process stopped by its pid at the end); what is measured is
# described there. Build first (bash scripts/build.sh); STORAGE_BUILD_DIR picks another build.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
export PYTHONPATH="$PWD/tests/integration${PYTHONPATH:+:$PYTHONPATH}"
export STORAGE_TEST_TIMEOUT=${STORAGE_TEST_TIMEOUT:-900}
exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider -p conftest \
  -c tests/integration/pytest.ini tests/bench/bench_drain.py "$@"
