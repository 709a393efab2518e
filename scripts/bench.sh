#!/usr/bin/env bash
# make bench: a release gymapi on a fresh PostgreSQL database and Redis, loaded by
# the goose scenarios of loadtest/. Needs PostgreSQL (127.0.0.1:5432, user postgres)
# and Redis (127.0.0.1:6379) up, as for `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_ADMIN="${BENCH_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}"
PORT="${BENCH_PORT:-18080}"
DB="gymapi_bench_$(date +%s)_$$"
SECRET="bench-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TARGET="${CARGO_TARGET_DIR:-target}"

cargo build --release -p api -p loadtest --bins
psql "$PG_ADMIN" -qc "CREATE DATABASE $DB" >/dev/null

cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

# sslmode=disable: TLS over loopback would cost real time and measure nothing of ours.
GYMAPI_ENV=production LOG_FORMAT=json RUST_LOG=warn \
  BIND_ADDR="127.0.0.1:$PORT" WORKERS="${BENCH_WORKERS:-2}" \
  DATABASE_URL="$PG_BASE/$DB?sslmode=disable" DATABASE_MAX_CONNECTIONS="${BENCH_DB_CONNECTIONS:-20}" \
  REDIS_URL="$REDIS" CACHE_KEY_PREFIX="$DB:" AUTH_JWT_SECRET="$SECRET" \
  "$TARGET/release/gymapi" serve >/tmp/gymapi-bench-server.log 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "server: release, WORKERS=${BENCH_WORKERS:-2}, PostgreSQL pool ${BENCH_DB_CONNECTIONS:-20} (sslmode=disable), Redis $REDIS"
if [ -n "${BENCH_PROFILE:-}" ]; then
  # perf samples the server for the whole run (cpu-clock: hardware counters are not available everywhere).
  perf record -e cpu-clock -g -o "$BENCH_PROFILE" -p "$SERVER_PID" >/dev/null 2>&1 &
  PERF_PID=$!
fi
BENCH_URL="http://127.0.0.1:$PORT" BENCH_PID="$SERVER_PID" BENCH_SECRET="$SECRET" \
  "$TARGET/release/loadtest"
if [ -n "${PERF_PID:-}" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
