#!/usr/bin/env bash
# make bench: a release gymapi, seeded in SQL (loadtest seed-sql), loaded by the goose
# scenarios of loadtest/: on PostgreSQL + Redis, then on SQLite with the in-process
# cache, BENCH_RUNS times (default 3) on fresh databases; prints each run's table and
# the medians. Needs PostgreSQL (127.0.0.1:5432, user postgres), Redis
# (127.0.0.1:6379) and the sqlite3 shell, as `make test` brings up.
#
# BENCH_BACKENDS=postgres,sqlite (default both), BENCH_SECONDS per scenario (15),
# BENCH_ONLY (a subset of scenarios, see loadtest/src/main.rs), BENCH_PROFILE=FILE
# (perf record of the server during the first run of the first backend), BENCH_WEBHOOK=1 (every
# gym has a webhook for checkin.succeeded, posted to `loadtest receiver` on loopback;
# the server then runs as GYMAPI_ENV=test, which differs from production only in its
# secret rules and in allowing a receiver on loopback; the receiver's CPU is not counted, and it
# runs at nice BENCH_RECEIVER_NICE, default 19, so that it stands in for another machine),
# BENCH_PASSES=1 (every gym requires passes and every member holds a pack of 1,000 credits:
# bookings and walk-ins take a credit, cancellations give it back), BENCH_PGBOUNCER=1 (the
# PostgreSQL runs through a transaction-pooling PgBouncer with DATABASE_PGBOUNCER=true),
# BENCH_INSTANCES=N (PostgreSQL: N servers on one database and Redis, the load spread over them).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-services.sh >/dev/null

PG_ADMIN="${BENCH_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}"
RUNS="${BENCH_RUNS:-3}"
BACKENDS="${BENCH_BACKENDS:-postgres,sqlite}"
TARGET="${CARGO_TARGET_DIR:-target}"
WORK="$(mktemp -d)"
SECRET="bench-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then COMMIT="$COMMIT+changes"; fi
COMMIT="${BENCH_COMMIT:-$COMMIT}"
SERVER_ENV=production
if [ "${BENCH_WEBHOOK:-0}" = 1 ]; then COMMIT="$COMMIT+webhook"; SERVER_ENV=test; fi
if [ "${BENCH_PASSES:-0}" = 1 ]; then COMMIT="$COMMIT+passes"; fi
if [ "${BENCH_PGBOUNCER:-0}" = 1 ]; then COMMIT="$COMMIT+pgbouncer"; fi
if [ "${BENCH_INSTANCES:-1}" != 1 ]; then COMMIT="$COMMIT+${BENCH_INSTANCES}instances"; fi

command -v sqlite3 >/dev/null || { echo "make bench needs the sqlite3 shell (apt-get install sqlite3)" >&2; exit 1; }
cargo build -q --release -p api -p loadtest --bins
# BENCH_GYMAPI: another server binary to measure with this load generator (an A/B).
BIN="${BENCH_GYMAPI:-$TARGET/release/gymapi}"
LOAD="$TARGET/release/loadtest"

cleanup() {
  [ -n "${PERF_PID:-}" ] && kill -INT "$PERF_PID" 2>/dev/null || true
  # shellcheck disable=SC2086 # one pid per instance
  [ -n "${SERVER_PID:-}" ] && kill -TERM $SERVER_PID 2>/dev/null && wait $SERVER_PID 2>/dev/null || true
  [ -n "${RECEIVER_PID:-}" ] && kill "$RECEIVER_PID" 2>/dev/null || true
  [ -n "${PGB_PID:-}" ] && kill "$PGB_PID" 2>/dev/null || true
  [ -n "${DB:-}" ] && psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# BENCH_PGBOUNCER=1: the PostgreSQL runs go through a PgBouncer in transaction pooling
# (20 server connections, what docs/scaling.md asks of an operator), the server with
# DATABASE_PGBOUNCER=true.
start_pgbouncer() {
  local dir="$WORK/pgbouncer"
  mkdir -p "$dir" && chmod 0777 "$WORK" "$dir"
  PGB_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432 user=postgres connect_query='SET statement_timeout = 10000'
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 20
max_client_conn = 500
server_reset_query = DEALLOCATE ALL
server_reset_query_always = 1
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
INI
  chmod 0666 "$dir/pgbouncer.ini"
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- pgbouncer "$dir/pgbouncer.ini" >/dev/null 2>&1 &
  else pgbouncer "$dir/pgbouncer.ini" >/dev/null 2>&1 & fi
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PGB_PORT") 2>/dev/null && break; sleep 0.1; done
  PGB_PID="$(pgrep -f "pgbouncer $dir/pgbouncer.ini" | tail -n1)"
}

one_run() { # RUN BACKEND
  local run="$1" backend="$2" port url cache=()
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  if [ "$backend" = postgres ]; then
    DB="gymapi_bench_$(date +%s)_$$"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
    # sslmode=disable: TLS over loopback would cost real time and measure nothing of ours.
    url="$PG_BASE/$DB?sslmode=disable"
    cache=(REDIS_URL="$REDIS" CACHE_KEY_PREFIX="$DB:")
  else
    rm -f "$WORK"/bench.db*
    url="sqlite://$WORK/bench.db?mode=rwc"
  fi
  DATABASE_URL="$url" GYMAPI_ENV=test AUTH_JWT_SECRET="$SECRET" "$BIN" migrate >/dev/null
  local started=$SECONDS serve_url="$url" bounced=()
  if [ "${BENCH_PGBOUNCER:-0}" = 1 ] && [ "$backend" = postgres ]; then
    start_pgbouncer
    serve_url="postgres://postgres@127.0.0.1:$PGB_PORT/$DB?sslmode=disable"
    bounced=(DATABASE_PGBOUNCER=true)
  fi
  if [ "$backend" = postgres ]; then
    "$LOAD" seed-sql postgres | psql -q -v ON_ERROR_STOP=1 "$PG_BASE/$DB" >/dev/null
  else
    "$LOAD" seed-sql sqlite | sqlite3 -bail "$WORK/bench.db" >/dev/null
  fi
  if [ "${BENCH_PASSES:-0}" = 1 ]; then
    local t0 t1 passes
    if [ "$backend" = postgres ]; then t0="now() - interval '1 day'"; t1="now() + interval '29 days'"; else
      t0="strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-1 day')"; t1="strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+29 days')"; fi
    passes="BEGIN; UPDATE gyms SET booking_requires_pass = TRUE; \
      INSERT INTO plans (gym_id, name, kind, credits, valid_days, active, created_at) \
        SELECT id, 'Bench pack', 'pack', 1000, 30, TRUE, $t0 FROM gyms; \
      INSERT INTO passes (gym_id, member_id, plan_id, kind, credits_total, starts_at, expires_at, created_at) \
        SELECT m.gym_id, m.user_id, p.id, 'pack', 1000, $t0, $t1, $t0 FROM memberships m JOIN plans p ON p.gym_id = m.gym_id; \
      INSERT INTO credit_entries (gym_id, pass_id, seq, kind, credits, balance, cause, at) \
        SELECT gym_id, id, 1, 'grant', 1000, 1000, 'staff', created_at FROM passes; COMMIT; ANALYZE;"
    if [ "$backend" = postgres ]; then psql -q -v ON_ERROR_STOP=1 "$PG_BASE/$DB" -c "$passes" >/dev/null; else
      sqlite3 -bail "$WORK/bench.db" "$passes" >/dev/null; fi
  fi
  if [ "${BENCH_WEBHOOK:-0}" = 1 ]; then
    local rport hooks
    rport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # The receiver stands in for another machine: at nice BENCH_RECEIVER_NICE (19) it
    # takes only the CPU the server and the generator leave, as a remote one takes none.
    nice -n "${BENCH_RECEIVER_NICE:-19}" "$LOAD" receiver "$rport" &
    RECEIVER_PID=$!
    hooks="INSERT INTO webhooks (gym_id, url, events, secret, cursor, created_at) SELECT id, \
      'http://127.0.0.1:$rport/hook', 'checkin.succeeded', 'whsec_bench', 0, '2026-01-01T00:00:00Z' FROM gyms;"
    if [ "$backend" = postgres ]; then psql -q "$PG_BASE/$DB" -c "$hooks" >/dev/null; else sqlite3 "$WORK/bench.db" "$hooks"; fi
  fi
  echo "run $run, $backend: seeded in $((SECONDS - started)) s" >&2
  local urls=() pids=() i p
  # BENCH_INSTANCES=N (PostgreSQL): N servers on the one database and Redis, the
  # generator's users spread over them as behind a load balancer.
  local instances="${BENCH_INSTANCES:-1}"
  [ "$backend" = postgres ] || instances=1
  for i in $(seq 1 "$instances"); do
    p="$port"
    [ "$i" = 1 ] || p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    env GYMAPI_ENV="$SERVER_ENV" LOG_FORMAT=json RUST_LOG=warn BIND_ADDR="127.0.0.1:$p" \
      WORKERS="${BENCH_WORKERS:-2}" SHUTDOWN_GRACE_SECONDS=0 \
      DATABASE_URL="$serve_url" DATABASE_MAX_CONNECTIONS="${BENCH_DB_CONNECTIONS:-20}" \
      AUTH_JWT_SECRET="$SECRET" "${cache[@]}" "${bounced[@]}" \
      "$BIN" serve >"/tmp/gymapi-bench-server-$backend-$run-$i.log" 2>&1 &
    pids+=("$!")
    urls+=("http://127.0.0.1:$p")
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$p/health" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  SERVER_PID="${pids[*]}"
  if [ -n "${BENCH_PROFILE:-}" ] && [ "$run" = 1 ] && [ "$backend" = "${BACKENDS%%,*}" ]; then
    # cpu-clock: hardware counters are not available on every machine.
    perf record -e cpu-clock -g -o "$BENCH_PROFILE" -p "${pids[0]}" >/dev/null 2>&1 &
    PERF_PID=$!
  fi
  BENCH_URL="$(IFS=,; echo "${urls[*]}")" BENCH_PID="$(IFS=,; echo "${pids[*]}")" BENCH_SECRET="$SECRET" \
    BENCH_BACKEND="$backend" \
    BENCH_COMMIT="$COMMIT" "$LOAD" | tee -a "$WORK/rows"
  if [ -n "${PERF_PID:-}" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=; fi
  # Per-statement times and counts of the run, for reading where the time went.
  curl -fs "http://127.0.0.1:$port/metrics" >"/tmp/gymapi-bench-metrics-$backend-$run.txt" 2>/dev/null || true
  # shellcheck disable=SC2086 # one pid per instance
  kill -TERM $SERVER_PID; wait $SERVER_PID 2>/dev/null || true
  SERVER_PID=
  if [ -n "${PGB_PID:-}" ]; then
    # The bouncer's own CPU over the run (user + system ticks), beside the table's figures.
    echo "run $run: pgbouncer CPU $(awk '{print ($14 + $15) / 100}' "/proc/$PGB_PID/stat") s" >&2
    kill "$PGB_PID" 2>/dev/null; PGB_PID=
  fi
  if [ -n "${RECEIVER_PID:-}" ]; then kill "$RECEIVER_PID" 2>/dev/null; wait "$RECEIVER_PID" 2>/dev/null || true; RECEIVER_PID=; fi
  if [ "$backend" = postgres ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null; DB=; fi
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; commit $COMMIT"
echo "server: release, WORKERS=${BENCH_WORKERS:-2}, pool ${BENCH_DB_CONNECTIONS:-20}; PostgreSQL (sslmode=disable) + Redis $REDIS, or SQLite + in-process cache"
for run in $(seq 1 "$RUNS"); do
  for backend in ${BACKENDS//,/ }; do one_run "$run" "$backend"; done
done
python3 scripts/bench-medians.py "$RUNS" <"$WORK/rows"
