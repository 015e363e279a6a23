# Shared set-up of the benchmarks (sourced, not run): builds the release
# binary, starts the private PostgreSQL in .taskflow/pg-bench with a fresh
# database, starts `taskflow serve` with the extra environment given to
# bench_start ("NAME=value" words), creates a tenant and exports its key as
# TASKFLOW_BENCH_TOKEN.  Everything is stopped and dropped on exit.
# Sets: url (database), port (TaskFlow), sql(), median(), field().

bench_start() {
  scripts/deps
  scripts/build release >/dev/null
  export TASKFLOW_PG_DIR=$PWD/.taskflow/pg-bench
  export TASKFLOW_PG_PORT=${TASKFLOW_BENCH_PG_PORT:-54389}
  scripts/pg start >/dev/null
  local base
  base=$(scripts/pg url)
  bench_db=bench_$$
  scripts/pg psql -q -c "CREATE DATABASE $bench_db" >/dev/null
  url=${base%/*}/$bench_db
  port=${TASKFLOW_BENCH_PORT:-18181}
  bench_admin=bench-admin-$$
  bench_log=$(mktemp)
  env TASKFLOW_DATABASE_URL="$url" TASKFLOW_ADMIN_TOKEN="$bench_admin" TASKFLOW_PORT="$port" \
    TASKFLOW_LOG_LEVEL=warn "$@" build/taskflow serve >"$bench_log" 2>&1 &
  bench_server=$!
  trap bench_stop EXIT
  for _ in $(seq 50); do curl -sf "localhost:$port/readyz" >/dev/null && break; sleep 0.2; done
  local tenant
  tenant=$(curl -sf -H "Authorization: Bearer $bench_admin" -H 'Content-Type: application/json' \
    -d '{"name":"bench"}' "localhost:$port/v1/admin/tenants" | bench_json id)
  TASKFLOW_BENCH_TOKEN=$(curl -sf -H "Authorization: Bearer $bench_admin" \
    -H 'Content-Type: application/json' -d '{}' \
    "localhost:$port/v1/admin/tenants/$tenant/keys" | bench_json token)
  export TASKFLOW_BENCH_TOKEN
  echo "# $(nproc) cores, PostgreSQL $(sql 'SHOW server_version'), fsync=$(sql 'SHOW fsync'),"\
       "synchronous_commit=$(sql 'SHOW synchronous_commit')"
}

bench_stop() {
  kill -INT "$bench_server" 2>/dev/null || true
  wait "$bench_server" 2>/dev/null || true
  scripts/pg psql -q -c "DROP DATABASE IF EXISTS $bench_db WITH (FORCE)" >/dev/null 2>&1 || true
  scripts/pg stop >/dev/null 2>&1 || true
  rm -f "$bench_log"
}

bench_json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
sql() { psql -X -tA "$url" -c "$1"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
