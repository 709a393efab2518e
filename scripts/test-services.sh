#!/usr/bin/env bash
# Brings up what `make test` needs: PostgreSQL on 127.0.0.1:5432 (user postgres,
# trust auth), Redis on 127.0.0.1:6379, promtool and pgbouncer. Starts them when installed but down;
# on Debian or Ubuntu as root installs them first; elsewhere says the one command
# to run. Servers pointed elsewhere (TEST_DATABASE_URL, TEST_REDIS_URL) are left alone.
set -euo pipefail

say() { echo "test-services: $*" >&2; }

if [ -n "${TEST_DATABASE_URL:-}" ] || [ -n "${TEST_REDIS_URL:-}" ]; then
  say "TEST_DATABASE_URL/TEST_REDIS_URL set: using those servers as they are"
  exit 0
fi

need=()
installed_pg=no
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# promtool (Debian's prometheus package) checks deploy/prometheus and a real scrape.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# pgbouncer: the PgBouncer test runs two instances through one it starts itself.
command -v pgbouncer >/dev/null 2>&1 || need+=(pgbouncer)
if [ ${#need[@]} -gt 0 ]; then
  if [ -r /etc/debian_version ] && [ "$(id -u)" = 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    installed_pg=$([[ " ${need[*]} " == *" postgresql "* ]] && echo yes || echo no)
  elif [ -r /etc/debian_version ]; then
    say "missing ${need[*]}: run  sudo apt-get install -y ${need[*]}"
    exit 1
  else
    say "missing ${need[*]}: install PostgreSQL, Redis and promtool with your package manager" \
      "(macOS: brew install postgresql redis prometheus), then run make test again"
    exit 1
  fi
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
  if [ -z "$version" ]; then
    say "no PostgreSQL cluster under /etc/postgresql: run  pg_createcluster 15 main --start"
    exit 1
  fi
  if [ "$installed_pg" = yes ]; then
    # The cluster this script just created: the tests connect as postgres over
    # TCP without a password, as on the developers' machines.
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  redis-server --daemonize yes --port 6379 --save "" --appendonly no >/dev/null
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
  sleep 1
done
if ! psql -h 127.0.0.1 -U postgres -tAc 'select 1' >/dev/null 2>&1; then
  say "PostgreSQL on 127.0.0.1:5432 refuses user postgres without a password: allow trust auth for" \
    "127.0.0.1 in pg_hba.conf, or set TEST_DATABASE_URL to an admin URL"
  exit 1
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { say "Redis does not answer on 127.0.0.1:6379"; exit 1; }
