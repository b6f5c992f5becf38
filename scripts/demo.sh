#!/usr/bin/env bash
# Starts a local storage cluster to play with:
#
#   scripts/demo.sh [start]   install deps, build, start Postgres 15 + storcon (--dev) + 3 pageservers,
#                             register them, create a demo tenant (4 shards, bootstrapped timeline)
#                             and import a small pgbench database into it as a second timeline,
#                             export that timeline (storconctl timelines export), start a vanilla
#                             Postgres on the export and compare a query with the source's
#   scripts/demo.sh start --s3  the same with the pageservers' remote storage on a local S3 server
#                             (s3rver behind the SigV4-verifying proxy of the tests, bucket "demo",
#                             development credentials; docs/remote-storage-s3.md)
#   scripts/demo.sh status    what runs, with addresses and logs
#   scripts/demo.sh stop      stop everything by the pids recorded in $DEMO_DIR/pids
#
# Everything lives in ${DEMO_DIR:-/tmp/storage-demo}: postgres/ (the cluster, kept between runs),
# pageserver_<id>/ (workdirs), remote_storage/ (shared file:// remote storage), *.log, and pids
# (one line per process: name pid address), pgbench_import/ (the imported data directory, kept
# between runs), export/ (the last export, replaced by the next start). `stop` removes nothing but
# the pids file.
# DEMO_SKIP_BUILD=1 skips the dependency check and the build (uses the existing build/).
# DEMO_SKIP_IMPORT=1 skips the pgbench import. DEMO_PAGESERVER_ARGS: extra pageserver flags
# (split on spaces, e.g. "--import-parallelism 2 --import-job-size 268435456").
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
ROOT=$(pwd)
DEMO_DIR=${DEMO_DIR:-/tmp/storage-demo}
PIDS="$DEMO_DIR/pids"
BIN=${STORAGE_BUILD_DIR:-$ROOT/build}/bin
PG_BIN=/usr/lib/postgresql/15/bin
PAGESERVERS=3
# The imported timeline's id: fixed, so a second start finds it instead of importing again.
DEMO_IMPORT_TIMELINE=de30000000000000000000000000beef
PYTHON=/usr/bin/python3

log() { echo "demo: $*"; }
die() {
  echo "demo: $*" >&2
  exit 1
}

# ---- pids file: "name pid address" per line ----

record() { echo "$1 $2 $3" >>"$PIDS"; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# any_alive: true when a process recorded in the pids file still runs.
any_alive() {
  [ -f "$PIDS" ] || return 1
  local name pid addr
  while read -r name pid addr; do
    if alive "$pid"; then return 0; fi
  done <"$PIDS"
  return 1
}

# ---- ports ----

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pick_port PREFERRED: PREFERRED if nothing listens there, else a free port from the kernel.
pick_port() {
  if [ -n "${1:-}" ] && port_free "$1"; then
    echo "$1"
  else
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  fi
}

# wait_http URL SECONDS PID: until URL answers 200, failing early if PID dies.
wait_http() {
  local url=$1 secs=$2 pid=$3 i
  for ((i = 0; i < secs * 10; i++)); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    alive "$pid" || return 1
    sleep 0.1
  done
  return 1
}

# ---- components ----

# The pageservers' remote storage: the shared directory, or (--s3) the local S3 server.
REMOTE_URL="file://$DEMO_DIR/remote_storage"
USE_S3=0
S3_ACCESS_KEY=demo-access-key
S3_SECRET_KEY=demo-secret-key

# start_s3: s3rver (data in $DEMO_DIR/s3rver-data, kept between runs) behind the SigV4-verifying
# proxy, a "demo" bucket, and the pageservers' URL and credentials.
start_s3() {
  local js="$ROOT/build/s3rver/node_modules/s3rver/bin/s3rver.js" port proxy pid i
  [ -f "$js" ] || die "s3rver missing: run scripts/install-deps.sh"
  port=$(pick_port 9010)
  mkdir -p "$DEMO_DIR/s3rver-data"
  setsid node --openssl-legacy-provider "$js" -d "$DEMO_DIR/s3rver-data" -a 127.0.0.1 -p "$port" \
    --silent --allow-mismatched-signatures --no-vhost-buckets </dev/null >>"$DEMO_DIR/s3rver.log" 2>&1 &
  pid=$!
  record s3rver "$pid" "http://127.0.0.1:$port"
  proxy=$(pick_port 9011)
  setsid "$PYTHON" "$ROOT/tests/integration/fixtures/s3_proxy.py" --listen "$proxy" \
    --upstream "127.0.0.1:$port" --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
    </dev/null >>"$DEMO_DIR/s3_proxy.log" 2>&1 &
  pid=$!
  record s3_proxy "$pid" "http://127.0.0.1:$proxy"
  # create the bucket once both answer (409: it exists from an earlier run)
  local code=""
  for ((i = 0; i < 300; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
      --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
      "http://127.0.0.1:$proxy/demo" 2>/dev/null) || true
    if [ "$code" = 200 ] || [ "$code" = 409 ]; then break; fi
    sleep 0.1
  done
  [ "$code" = 200 ] || [ "$code" = 409 ] ||
    die "cannot create the S3 bucket (HTTP $code); see $DEMO_DIR/s3rver.log and $DEMO_DIR/s3_proxy.log"
  export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
  REMOTE_URL="s3://demo?region=us-east-1&endpoint=http://127.0.0.1:$proxy"
  log "s3         pid $pid  http://127.0.0.1:$proxy (bucket demo; s3rver on port $port)"
}

start_postgres() {
  local data="$DEMO_DIR/postgres" sock="$DEMO_DIR/postgres-sock" port pid
  mkdir -p "$sock"
  chown postgres:postgres "$sock"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    chown postgres:postgres "$data"
    chmod 700 "$data"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$data" --auth=trust -U postgres -E UTF8 \
      --locale=C >"$DEMO_DIR/initdb.log" 2>&1 || die "initdb failed, see $DEMO_DIR/initdb.log"
  fi
  port=$(pick_port 55432)
  touch "$DEMO_DIR/postgres.log"
  chown postgres:postgres "$DEMO_DIR/postgres.log"
  # pg_ctl detaches the postmaster; its own pid is the first line of postmaster.pid.
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -l "$DEMO_DIR/postgres.log" -w -t 60 \
    -o "-p $port -k $sock -c listen_addresses=127.0.0.1" start >/dev/null ||
    die "postgres did not start, see $DEMO_DIR/postgres.log"
  pid=$(head -n 1 "$data/postmaster.pid")
  PG_URL="postgresql://postgres@127.0.0.1:$port"
  record postgres "$pid" "$PG_URL/storcon"
  if ! runuser -u postgres -- "$PG_BIN/psql" -h "$sock" -p "$port" -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'storcon'" postgres | grep -q 1; then
    runuser -u postgres -- "$PG_BIN/createdb" -h "$sock" -p "$port" storcon
  fi
  log "postgres   pid $pid  $PG_URL/storcon"
}

start_storcon() {
  local port pid
  port=$(pick_port 1234)
  STORCON_URL="http://127.0.0.1:$port"
  setsid "$BIN/storcon" --dev --listen "127.0.0.1:$port" --database-url "$PG_URL/storcon" \
    --log-file "$DEMO_DIR/storcon.log" </dev/null >>"$DEMO_DIR/storcon.out" 2>&1 &
  pid=$!
  record storcon "$pid" "$STORCON_URL"
  wait_http "$STORCON_URL/ready" 60 "$pid" ||
    die "storcon not ready; see $DEMO_DIR/storcon.log and $DEMO_DIR/storcon.out"
  log "storcon    pid $pid  $STORCON_URL"
}

start_pageservers() {
  local id http pg pid workdir extra=()
  read -r -a extra <<<"${DEMO_PAGESERVER_ARGS:-}"
  [ "$USE_S3" = 1 ] || mkdir -p "$DEMO_DIR/remote_storage"
  PAGESERVER_URLS=()
  for ((id = 1; id <= PAGESERVERS; id++)); do
    http=$(pick_port $((9897 + id)))
    pg=$(pick_port $((6399 + id)))
    workdir="$DEMO_DIR/pageserver_$id"
    mkdir -p "$workdir"
    setsid "$BIN/pageserver" --workdir "$workdir" --id "$id" \
      --listen-http "127.0.0.1:$http" --listen-pg "127.0.0.1:$pg" \
      --remote-storage "$REMOTE_URL" --pg-bin-dir "$PG_BIN" \
      --availability-zone "az-$(((id - 1) % 2 + 1))" \
      --control-plane-api "$STORCON_URL/upcall/v1/" "${extra[@]}" \
      --log-file "$DEMO_DIR/pageserver_$id.log" </dev/null >>"$DEMO_DIR/pageserver_$id.out" 2>&1 &
    pid=$!
    record "pageserver_$id" "$pid" "http://127.0.0.1:$http pg=127.0.0.1:$pg"
    PAGESERVER_URLS+=("http://127.0.0.1:$http")
  done
  for ((id = 1; id <= PAGESERVERS; id++)); do
    pid=$(awk -v n="pageserver_$id" '$1 == n { print $2 }' "$PIDS" | tail -n 1)
    wait_http "${PAGESERVER_URLS[$((id - 1))]}/v1/status" 60 "$pid" ||
      die "pageserver $id not up; see $DEMO_DIR/pageserver_$id.log"
    log "pageserver $id pid $pid  ${PAGESERVER_URLS[$((id - 1))]}"
  done
}

ctl() { "$BIN/storconctl" --api "$STORCON_URL" "$@"; }

# register_pageservers: register each node with storcon (idempotent: the pageservers also register
# themselves through re-attach at startup), then wait until every node answered a heartbeat.
register_pageservers() {
  local id http pg
  for ((id = 1; id <= PAGESERVERS; id++)); do
    http=${PAGESERVER_URLS[$((id - 1))]#http://}
    pg=$(awk -v n="pageserver_$id" '$1 == n { sub("pg=", "", $4); print $4 }' "$PIDS" | tail -n 1)
    ctl nodes register --id "$id" --http "$http" --pg "$pg" --az "az-$(((id - 1) % 2 + 1))" >/dev/null ||
      die "registering pageserver $id failed"
  done
  local i active=0
  for ((i = 0; i < 120; i++)); do
    active=$(ctl --json nodes list | /usr/bin/python3 -c \
      'import json,sys; print(sum(1 for n in json.load(sys.stdin) if n.get("availability") == "Active"))' 2>/dev/null || echo 0)
    [ "$active" -ge "$PAGESERVERS" ] && break
    sleep 0.5
  done
  [ "$active" -ge "$PAGESERVERS" ] || die "pageservers did not become Active in storcon; see $DEMO_DIR/storcon.log"
  log "registered $PAGESERVERS pageservers with storcon"
  ctl nodes list
}

# create_demo_tenant: a tenant of 4 shards with a bootstrapped timeline (initdb on every shard).
create_demo_tenant() {
  local out
  out=$(ctl --json tenants create --shard-count 4 --stripe-size 2048) || die "creating the demo tenant failed"
  DEMO_TENANT=$(printf '%s' "$out" | /usr/bin/python3 -c \
    'import json,sys; d=json.load(sys.stdin); print(d["shards"][0]["shard_id"][:32])')
  [ -n "$DEMO_TENANT" ] || die "no tenant id in: $out"
  echo "$DEMO_TENANT" >"$DEMO_DIR/demo_tenant"
  out=$(ctl --json timelines create "$DEMO_TENANT") || die "creating the demo timeline failed"
  DEMO_TIMELINE=$(printf '%s' "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["timeline_id"])')
  log "demo tenant $DEMO_TENANT (4 shards), timeline $DEMO_TIMELINE bootstrapped"
  ctl tenants locate "$DEMO_TENANT"
}

# ---- the pgbench import ----

# A throwaway Postgres that makes the pgbench database; stopped (fast shutdown, a clean one) by its
# pid, also when a step fails (cmd_start's trap).
THROWAWAY_PID=""

stop_throwaway() {
  if [ -n "$THROWAWAY_PID" ]; then stop_pid "pgbench postgres" "$THROWAWAY_PID" INT; fi
  THROWAWAY_PID=""
}

# clean_shutdown DIR: the data directory exists, no postmaster runs on it and it was shut down.
clean_shutdown() {
  [ -f "$1/PG_VERSION" ] && [ ! -f "$1/postmaster.pid" ] &&
    "$PG_BIN/pg_controldata" "$1" 2>/dev/null | grep -q '^Database cluster state: *shut down$'
}

# make_pgbench_pgdata: $DEMO_DIR/pgbench_import/pgdata, a cleanly shut down `pgbench -i -s 1`
# database (made once, reused by later starts).
make_pgbench_pgdata() {
  local dir="$DEMO_DIR/pgbench_import" port
  IMPORT_PGDATA="$dir/pgdata"
  if clean_shutdown "$IMPORT_PGDATA"; then
    log "pgbench data directory $IMPORT_PGDATA exists (made by an earlier start)"
    return 0
  fi
  rm -rf "$dir"
  mkdir -p "$dir/sock"
  chown postgres:postgres "$dir" "$dir/sock"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$IMPORT_PGDATA" --auth=trust -U postgres -E UTF8 \
    --locale=C >"$dir/initdb.log" 2>&1 || die "initdb (pgbench) failed, see $dir/initdb.log"
  port=$(pick_port 55433)
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$IMPORT_PGDATA" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir/sock -c listen_addresses=" start >/dev/null ||
    die "the pgbench postgres did not start, see $dir/postgres.log"
  THROWAWAY_PID=$(head -n 1 "$IMPORT_PGDATA/postmaster.pid")
  runuser -u postgres -- "$PG_BIN/pgbench" -i -s 1 -h "$dir/sock" -p "$port" postgres \
    >"$dir/pgbench.log" 2>&1 || die "pgbench -i failed, see $dir/pgbench.log"
  stop_throwaway
  clean_shutdown "$IMPORT_PGDATA" || die "$IMPORT_PGDATA was not shut down cleanly"
  log "pgbench -i -s 1 database made in $IMPORT_PGDATA ($(du -sh "$IMPORT_PGDATA" | cut -f1))"
}

# import_pgbench: import the pgbench database into the demo tenant as timeline
# $DEMO_IMPORT_TIMELINE, unless the tenant has that timeline already, and show it.
import_pgbench() {
  local tl=$DEMO_IMPORT_TIMELINE info
  make_pgbench_pgdata
  if curl -fsS -o /dev/null --max-time 10 "$STORCON_URL/v1/tenant/$DEMO_TENANT/timeline/$tl" 2>/dev/null; then
    log "timeline $tl of tenant $DEMO_TENANT exists: not importing again"
  else
    log "importing $IMPORT_PGDATA into tenant $DEMO_TENANT as timeline $tl"
    ctl timelines import "$DEMO_TENANT" --pgdata "$IMPORT_PGDATA" --timeline "$tl" --wait |
      sed 's/^/  /' || die "the import failed; see $DEMO_DIR/storcon.log and $DEMO_DIR/pageserver_*.log"
  fi
  info=$(curl -fsS --max-time 10 "$STORCON_URL/v1/tenant/$DEMO_TENANT/timeline/$tl") ||
    die "the imported timeline $tl is not readable"
  IMPORT_LSN=$(printf '%s' "$info" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["last_record_lsn"])')
  IMPORT_STATE=$(printf '%s' "$info" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  # storcon finalises the import (activation, import_complete, the row deleted) before --wait ends;
  # the demo runs without a control plane, so storcon logs the finalisation instead of telling one.
  if grep -q "import of tenant $DEMO_TENANT timeline $tl finalised" "$DEMO_DIR/storcon.log"; then
    IMPORT_SEEN="import_complete seen (storcon.log: import of tenant $DEMO_TENANT timeline $tl finalised)"
  else
    IMPORT_SEEN="import_complete not seen in storcon.log"
  fi
  log "imported timeline $tl: state $IMPORT_STATE, last_record_lsn $IMPORT_LSN; $IMPORT_SEEN"
}

# ---- the export ----

EXPORT_QUERY='SELECT count(*), sum(abalance) FROM pgbench_accounts'

# query_datadir DIR LABEL: start a throwaway Postgres 15 on DIR (owned by postgres; a free port,
# its own socket directory), print EXPORT_QUERY's result, stop it by its pid (a fast shutdown).
query_datadir() {
  local dir=$1 label=$2 sock port out pid
  sock=$(dirname "$dir")/sock-$(basename "$dir")
  mkdir -p "$sock"
  chown postgres:postgres "$sock"
  port=$(pick_port 55434)
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir" -l "$dir.log" -w -t 60 \
    -o "-p $port -k $sock -c listen_addresses=" start >/dev/null ||
    die "postgres on the $label did not start, see $dir.log"
  pid=$(head -n 1 "$dir/postmaster.pid")
  out=$(runuser -u postgres -- "$PG_BIN/psql" -h "$sock" -p "$port" -U postgres -d postgres -tAc \
    "$EXPORT_QUERY") || {
    stop_pid "postgres on the $label" "$pid" INT >&2
    die "the query on the $label failed, see $dir.log"
  }
  stop_pid "postgres on the $label" "$pid" INT >&2 # stdout is the answer
  rmdir "$sock" 2>/dev/null || true
  printf '%s' "$out"
}

# export_pgbench: export the imported timeline with storconctl (every shard's pages), start a
# vanilla Postgres on the export and compare EXPORT_QUERY with the source's (queried on a copy of
# the imported data directory, which stays as imported). Fails when they differ.
export_pgbench() {
  local tl=$DEMO_IMPORT_TIMELINE dir="$DEMO_DIR/export" src_copy
  rm -rf "$dir"
  mkdir -p "$dir"
  chown postgres:postgres "$dir"
  log "exporting timeline $tl of tenant $DEMO_TENANT to $dir/pgdata"
  ctl timelines export "$DEMO_TENANT" "$tl" --output "$dir/pgdata" | sed 's/^/  /' ||
    die "the export failed; see $DEMO_DIR/pageserver_*.log"
  chown -R postgres:postgres "$dir/pgdata"
  chmod 700 "$dir/pgdata"
  src_copy="$dir/source"
  cp -a "$IMPORT_PGDATA" "$src_copy"
  EXPORT_SOURCE=$(query_datadir "$src_copy" "source copy")
  rm -rf "$src_copy"
  EXPORT_RESULT=$(query_datadir "$dir/pgdata" "export")
  log "$EXPORT_QUERY"
  log "  source: $EXPORT_SOURCE"
  log "  export: $EXPORT_RESULT"
  [ -n "$EXPORT_SOURCE" ] && [ "$EXPORT_SOURCE" = "$EXPORT_RESULT" ] ||
    die "the export's answer differs from the source's"
  log "the export answers like the source"
}

print_summary() {
  cat <<EOF

Storage demo cluster is running (directory $DEMO_DIR).
  storcon API     $STORCON_URL        (e.g. curl $STORCON_URL/status)
$(for ((i = 0; i < ${#PAGESERVER_URLS[@]}; i++)); do
    printf '  pageserver %d    %s  (curl %s/v1/status)\n' $((i + 1)) "${PAGESERVER_URLS[$i]}" "${PAGESERVER_URLS[$i]}"
  done)
  postgres        $PG_URL/storcon
  remote storage  $REMOTE_URL
  demo tenant     $DEMO_TENANT (4 shards)  timeline $DEMO_TIMELINE
$(if [ -n "${IMPORT_LSN:-}" ]; then
    printf '                  imported timeline %s (pgbench -i -s 1, last_record_lsn %s, %s)\n' \
      "$DEMO_IMPORT_TIMELINE" "$IMPORT_LSN" "$IMPORT_STATE"
  fi)
$(if [ -n "${EXPORT_RESULT:-}" ]; then
    printf '                  exported to %s (count, sum(abalance): %s, as the source)\n' \
      "$DEMO_DIR/export/pgdata" "$EXPORT_RESULT"
  fi)
                  (where the shards live: $BIN/storconctl --api $STORCON_URL tenants locate $DEMO_TENANT)
  logs            $DEMO_DIR/storcon.log, $DEMO_DIR/pageserver_<id>.log, $DEMO_DIR/postgres.log
                  (startup errors: $DEMO_DIR/*.out)
Status: scripts/demo.sh status      Stop: scripts/demo.sh stop
EOF
}

# ---- commands ----

cmd_start() {
  if any_alive; then
    log "already running:"
    cmd_status
    return 0
  fi
  mkdir -p "$DEMO_DIR"
  chmod 755 "$DEMO_DIR" # the postgres user must reach postgres/ inside it
  rm -f "$PIDS"         # stale: nothing in it runs
  if [ "${DEMO_SKIP_BUILD:-0}" != 1 ]; then
    bash scripts/install-deps.sh
    log "building (log: $DEMO_DIR/build.log)"
    bash scripts/build.sh --skip-deps >"$DEMO_DIR/build.log" 2>&1 ||
      die "build failed, see $DEMO_DIR/build.log"
  fi
  for b in storcon pageserver storconctl; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: build first (scripts/build.sh)"
  done
  # If a step fails, stop what already started so a retry starts clean.
  trap 'echo "demo: start failed; stopping what started" >&2; stop_throwaway >&2; cmd_stop >&2' EXIT
  start_postgres
  start_storcon
  if [ "$USE_S3" = 1 ]; then start_s3; fi
  start_pageservers
  register_pageservers
  create_demo_tenant
  if [ "${DEMO_SKIP_IMPORT:-0}" != 1 ]; then
    import_pgbench
    export_pgbench
  fi
  trap - EXIT
  print_summary
}

cmd_status() {
  if [ ! -f "$PIDS" ]; then
    log "not running (no $PIDS)"
    return 1
  fi
  local name pid addr state rc=0
  while read -r name pid addr; do
    if alive "$pid"; then state=running; else
      state=DEAD
      rc=1
    fi
    printf '  %-13s pid %-7s %-8s %s\n' "$name" "$pid" "$state" "$addr"
  done <"$PIDS"
  echo "  logs in $DEMO_DIR"
  return $rc
}

# stop_pid NAME PID SIGNAL: signal one recorded process and wait for it (SIGKILL after 20 s).
stop_pid() {
  local name=$1 pid=$2 sig=$3 i
  alive "$pid" || return 0
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    alive "$pid" || {
      log "stopped $name (pid $pid)"
      return 0
    }
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIG$sig; killing"
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
  if [ ! -f "$PIDS" ]; then
    log "not running (no $PIDS)"
    return 0
  fi
  local name pid addr pg_pid=""
  # Daemons first, newest first; Postgres last (SIGINT = fast shutdown).
  while read -r name pid addr; do
    if [ "$name" = postgres ]; then pg_pid=$pid; else stop_pid "$name" "$pid" TERM; fi
  done < <(tac "$PIDS")
  if [ -n "$pg_pid" ]; then stop_pid postgres "$pg_pid" INT; fi
  rm -f "$PIDS"
}

cmd=${1:-start}
if [ "$cmd" = --s3 ]; then cmd=start; fi
for arg in "$@"; do
  if [ "$arg" = --s3 ]; then USE_S3=1; fi
done
case "$cmd" in
  start) cmd_start ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  *)
    echo "usage: scripts/demo.sh [start [--s3]|status|stop]" >&2
    exit 64
    ;;
esac
