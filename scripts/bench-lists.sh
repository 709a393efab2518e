#!/usr/bin/env bash
# make bench-lists: the large-data mode of the benchmark. Seeds 300,000 users and
# over 3,000,000 participations in SQL (scripts/bench-lists/seed.py), then times
# every list route on its first page and on a deep page, on PostgreSQL and on
# SQLite, against a release build. Needs PostgreSQL and Redis as `make test` does
# (scripts/test-services.sh brings them up).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/test-services.sh

PG_ADMIN="${BENCH_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_BASE="${PG_ADMIN%/*}"
TARGET="${CARGO_TARGET_DIR:-target}"
DB="gymapi_benchlists_$(date +%s)_$$"
WORK="$(mktemp -d)"
SECRET="bench-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cargo build -q --release -p api --bin gymapi
BIN="$TARGET/release/gymapi"

cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

run_on() { # LABEL DATABASE_URL BACKEND
  local label="$1" url="$2" backend="$3" port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  DATABASE_URL="$url" GYMAPI_ENV=test AUTH_JWT_SECRET="$SECRET" "$BIN" migrate >/dev/null
  local started=$SECONDS
  if [ "$backend" = postgres ]; then
    python3 scripts/bench-lists/seed.py postgres | psql -q -v ON_ERROR_STOP=1 "$PG_BASE/$DB" >/dev/null
  else
    python3 scripts/bench-lists/seed.py sqlite | sqlite3 -bail "$WORK/bench.db" >/dev/null
  fi
  echo "$label: seeded in $((SECONDS - started)) s"
  GYMAPI_ENV=test RUST_LOG=warn BIND_ADDR="127.0.0.1:$port" WORKERS=2 SHUTDOWN_GRACE_SECONDS=0 \
    DATABASE_URL="$url" AUTH_JWT_SECRET="$SECRET" "$BIN" serve >"$WORK/server-$backend.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
  local token
  token="$(AUTH_JWT_SECRET="$SECRET" GYMAPI_ENV=test DATABASE_URL="$url" "$BIN" token --sub 'bench|1')"
  python3 scripts/bench-lists/measure.py "http://127.0.0.1:$port" "$token" "$label"
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

echo "machine: $(nproc) cores; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
psql "$PG_ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
run_on "PostgreSQL" "$PG_BASE/$DB?sslmode=disable" postgres
run_on "SQLite" "sqlite://$WORK/bench.db?mode=rwc" sqlite
