#!/usr/bin/env bash
# make api-fuzz: the OpenAPI document held against the server by the tools client
# developers use. Starts gymapi on a fresh SQLite database, seeds a gym that every
# route can reach, then
#   1. validates /openapi.json (openapi-spec-validator, OpenAPI 3.1);
#   2. runs schemathesis with --checks all (scripts/api-fuzz/schemathesis.toml);
#   3. generates a Python client with openapi-python-client and drives a booking
#      and a check-in through it.
# Python tools live in a virtualenv under ~/.cache (pinned, installed from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${GYMAPI_FUZZ_VENV:-$HOME/.cache/gymapi-fuzz-venv}"
EXAMPLES="${FUZZ_MAX_EXAMPLES:-25}"
TARGET="${CARGO_TARGET_DIR:-target}"
say() { echo "api-fuzz: $*" >&2; }

if ! "$VENV/bin/python" -c 'import schemathesis, openapi_spec_validator' 2>/dev/null \
   || [ ! -x "$VENV/bin/openapi-python-client" ]; then
  say "installing schemathesis, openapi-spec-validator and openapi-python-client into $VENV"
  python3 -m venv "$VENV" || { say "python3 -m venv failed: install Python 3 with venv (Debian: apt-get install python3-venv)"; exit 1; }
  "$VENV/bin/pip" install -q "schemathesis==4.32.*" "openapi-spec-validator==0.9.*" "openapi-python-client==0.29.*"
fi

cargo build -q -p api --bin gymapi
BIN="$TARGET/debug/gymapi"
WORK="$(mktemp -d)"
PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
export GYMAPI_ENV=test AUTH_JWT_SECRET="api-fuzz-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export DATABASE_URL="sqlite://$WORK/fuzz.db?mode=rwc" BIND_ADDR="127.0.0.1:$PORT" SHUTDOWN_GRACE_SECONDS=0 RUST_LOG=warn

cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done
curl -sf "$BASE/health" >/dev/null || { say "the server did not start:"; cat "$WORK/server.log"; exit 1; }

# Seed: an owner and their gym, a member, a class, a session soon (check-in) and one
# later (booking), an event.
eval "$("$VENV/bin/python" scripts/api-fuzz/seed.py "$BASE" "$BIN")"
export FUZZ_GYM FUZZ_CLASS FUZZ_SESSION FUZZ_EVENT FUZZ_MEMBER

say "validating the document"
curl -sf "$BASE/openapi.json" >"$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

say "schemathesis --checks all, $EXAMPLES examples per operation"
(cd scripts/api-fuzz && "$VENV/bin/st" run "$BASE/openapi.json" --checks all --max-examples "$EXAMPLES" \
  --header "Authorization: Bearer $FUZZ_OWNER_TOKEN" --seed "${FUZZ_SEED:-1}" --no-color --workers 2 --suppress-health-check all)

say "generating a Python client and driving a booking and a check-in through it"
"$VENV/bin/openapi-python-client" generate --path "$WORK/openapi.json" --output-path "$WORK/client" --meta none \
  --config scripts/api-fuzz/client-config.yaml
PYTHONPATH="$WORK" "$VENV/bin/python" scripts/api-fuzz/client_flow.py "$BASE" "$BIN"
say "ok"
