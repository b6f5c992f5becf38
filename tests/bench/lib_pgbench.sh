# lib_pgbench.sh: sourced by the benchmarks that need a pgbench data directory and a few shell
# helpers (bench_import.sh, bench_split.sh). Needs BIN, PG_BIN, PYTHON, log and die from the sourcing
# script; bench_workdir sets up its work directory and its cleanup.

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# bench_require TOOL...: the daemons in $BIN (storcon, pageserver, storconctl) and every TOOL
# (a command on the PATH or a path), else die.
bench_require() {
  local b t
  for b in storcon pageserver storconctl; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: build first (SKIP_DEPS=1 bash scripts/build.sh)"
  done
  for t in "$@"; do
    command -v "$t" >/dev/null || die "$t missing"
  done
}

# bench_workdir NAME KEEP: WORK (a new /tmp/bench-NAME.XXXXXX the postgres user can reach, for
# the cluster's and the source's directories) and CLUSTER (WORK/cluster, for scripts/demo.sh),
# and the traps: on exit, bench_cleanup stops what the script started (its own bench_stop_extra
# hook if it defines one, the throwaway Postgres, the cluster by its pids file) and removes WORK
# unless KEEP is 1.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/bench-$1.XXXXXX")
  chmod 755 "$WORK"
  CLUSTER="$WORK/cluster"
  BENCH_KEEP=$2
  THROWAWAY_PID=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local rc=$?
  if declare -F bench_stop_extra >/dev/null; then bench_stop_extra; fi
  if [ -n "$THROWAWAY_PID" ]; then stop_by_pid "$THROWAWAY_PID" INT; fi
  if [ -f "$CLUSTER/pids" ]; then
    DEMO_DIR="$CLUSTER" bash scripts/demo.sh stop >"$WORK/stop.log" 2>&1 || cat "$WORK/stop.log" >&2
  fi
  if [ "$BENCH_KEEP" = 1 ]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}

# stop_by_pid PID SIGNAL: signal one process we started and wait for it (SIGKILL after 30 s).
stop_by_pid() {
  local pid=$1 sig=$2 i
  alive "$pid" || return 0
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  log "pid $pid ignored SIG$sig; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

now() { date +%s.%N; }
# secs T0 T1, mib BYTES, rate BYTES SECS (MiB/s), ratio A B: printf helpers.
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# clean_shutdown DIR: DIR is a Postgres data directory that was shut down cleanly.
clean_shutdown() {
  [ -f "$1/PG_VERSION" ] && [ ! -f "$1/postmaster.pid" ] &&
    "$PG_BIN/pg_controldata" "$1" 2>/dev/null | grep -q '^Database cluster state: *shut down$'
}

# make_pgbench_pgdata SRC SCALE: a cleanly shut down `pgbench -i -s SCALE` data directory in
# SRC/pgdata, made by a throwaway Postgres 15 (initdb, pgbench -i, fast shutdown by pid: a clean
# shutdown; a small max_wal_size keeps pg_wal small), unless SRC/pgdata already is one (reused).
make_pgbench_pgdata() {
  local src=$1 scale=$2 pgdata="$1/pgdata" t0 port
  if clean_shutdown "$pgdata"; then
    log "reusing $pgdata (cached)"
    return 0
  fi
  rm -rf "$src"
  mkdir -p "$src/sock"
  chown postgres:postgres "$src" "$src/sock"
  chmod 755 "$src"
  log "making a pgbench -i -s $scale database in $pgdata"
  t0=$(now)
  runuser -u postgres -- "$PG_BIN/initdb" -D "$pgdata" --auth=trust -U postgres -E UTF8 \
    --locale=C >"$src/initdb.log" 2>&1 || die "initdb failed, see $src/initdb.log"
  port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pgdata" -l "$src/postgres.log" -w -t 60 \
    -o "-p $port -k $src/sock -c listen_addresses= -c max_wal_size=64MB -c min_wal_size=32MB" \
    start >/dev/null || die "postgres did not start, see $src/postgres.log"
  THROWAWAY_PID=$(head -n 1 "$pgdata/postmaster.pid")
  runuser -u postgres -- "$PG_BIN/pgbench" -i -s "$scale" -h "$src/sock" -p "$port" postgres \
    >"$src/pgbench.log" 2>&1 || die "pgbench -i failed, see $src/pgbench.log"
  stop_by_pid "$THROWAWAY_PID" INT # fast shutdown: a clean one, with a shutdown checkpoint
  THROWAWAY_PID=""
  clean_shutdown "$pgdata" || die "$pgdata was not shut down cleanly"
  log "made in $(secs "$t0" "$(now)") s"
}
