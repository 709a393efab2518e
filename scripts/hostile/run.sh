#!/usr/bin/env bash
# The hostile pass against the release binary, as an attacker meets it: once on
# PostgreSQL + Redis, once on SQLite with the in-process cache. Runs fuzz.py (junk in
# every field, header and parameter of every route) and round3.py (framing, content
# encodings, repeated headers, claims at their limits, writes raced against a
# removal) and passes.py (plans, passes, the ledger and payment events with real ids),
# and fails on any 5xx, dropped connection, off-contract answer, broken
# invariant or ERROR line in the server's log.
#
# Usage: scripts/hostile/run.sh [CASES]   (needs `make release` first)
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/release/gymapi"
CASES="${1:-3000}"
[ -x "$BIN" ] || { echo "hostile: build the release binary first: make release" >&2; exit 1; }
WORK="$(mktemp -d)"
PG_ADMIN="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PG_DB="gymapi_hostile_$(date +%s)_$$"
export GYMAPI_ENV=test AUTH_JWT_SECRET="hostile-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export SHUTDOWN_GRACE_SECONDS=0 RUST_LOG=info WORKERS=2

cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

seed() { # BASE -> OWNER_TOKEN GYM OTHER_GYM OTHER_SESSION
  python3 - "$1" "$BIN" <<'PY'
import json, subprocess, sys, time, urllib.request
base, binary = sys.argv[1:3]
def tok(sub):
    return subprocess.check_output([binary, "token", "--sub", sub, "--scope", "resource:read resource:write"]).decode().strip()
def call(method, path, t, gym=None, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None)
    req.add_header("Authorization", "Bearer " + t)
    req.add_header("Content-Type", "application/json")
    if gym:
        req.add_header("X-Gym-ID", str(gym))
    return json.load(urllib.request.urlopen(req))
run = str(time.time())
owner, other = tok("hostile-owner-" + run), tok("hostile-other-" + run)
gym = call("POST", "/api/v1/gyms", owner, body={"name": "Hostile"})["id"]
other_gym = call("POST", "/api/v1/gyms", other, body={"name": "Other"})["id"]
klass = call("POST", "/api/v1/schedule/classes", other, other_gym, {"name": "C", "duration_minutes": 30, "max_capacity": 5})["id"]
start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
session = call("POST", "/api/v1/schedule/sessions", other, other_gym, {"class_id": klass, "start_time": start})["id"]
print(owner, gym, other_gym, session)
PY
}

pass_on() { # LABEL DATABASE_URL [REDIS_URL]
  local label="$1" port base
  export DATABASE_URL="$2" REDIS_URL="${3:-}" CACHE_KEY_PREFIX="$PG_DB:"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  base="http://127.0.0.1:$port"
  BIND_ADDR="127.0.0.1:$port" "$BIN" serve >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done
  read -r owner gym other_gym other_session < <(seed "$base")
  echo "hostile: $label"
  python3 scripts/hostile/fuzz.py "$base" "$owner" "$gym" "$other_gym" "$other_session" 1 "$CASES"
  python3 scripts/hostile/round3.py "$base" "$AUTH_JWT_SECRET" 20
  python3 scripts/hostile/passes.py "$base" "$AUTH_JWT_SECRET"
  if grep -E " ERROR |\"level\":\"ERROR\"" "$WORK/server.log" | grep -v "actix_http::h1" | head -5 | grep .; then
    echo "hostile: $label: the server logged errors (above)" >&2; exit 1
  fi
  kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" >/dev/null
pass_on "PostgreSQL + Redis" "${PG_ADMIN%/*}/$PG_DB" "${TEST_REDIS_URL:-redis://127.0.0.1:6379}/0"
pass_on "SQLite" "sqlite://$WORK/hostile.db?mode=rwc"
echo "hostile: ok"
