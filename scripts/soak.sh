#!/usr/bin/env bash
# make soak: the six fault drills of loadtest/src/bin/soak.rs against a release
# gymapi. Brings up the shared PostgreSQL and Redis as `make test` does; the drills
# that kill or restart a server start a private one of their own (redis-server on
# another port, an initdb cluster), so the shared ones are never disturbed.
# SOAK_MINUTES sets the two-instance drill's length (default 3), SOAK_ONLY picks
# drills (e.g. SOAK_ONLY=1,5), SOAK_RUNS repeats the whole set (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/test-services.sh
# Servers pointed elsewhere for the tests are the soak's too.
export SOAK_PG_ADMIN="${SOAK_PG_ADMIN:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
export SOAK_REDIS_URL="${SOAK_REDIS_URL:-${TEST_REDIS_URL:-redis://127.0.0.1:6379}}"
cargo build --release -p api --bin gymapi -p loadtest --bin soak
TARGET="${CARGO_TARGET_DIR:-target}"
for run in $(seq 1 "${SOAK_RUNS:-1}"); do
  echo "== soak run $run of ${SOAK_RUNS:-1} ($(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  SOAK_BIN="$TARGET/release/gymapi" "$TARGET/release/soak"
done
