# GymAPI — the two commands of a fresh machine are `make run` and `make test`.
.PHONY: run test lint fmt demo bench bench-lists build release api-fuzz soak

CARGO ?= cargo

## Serve on 127.0.0.1:8000 (SQLite and the in-process cache unless DATABASE_URL / REDIS_URL say otherwise).
run:
	$(CARGO) run -p api --bin gymapi -- serve

## The whole suite: domain unit tests (mocks), adapters and HTTP tests on real PostgreSQL, SQLite and Redis.
test:
	./scripts/test-services.sh
	$(CARGO) test

## Format and lint checks, as CI runs them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p api --bin gymapi

## Load test (goose) against a release build on PostgreSQL and Redis; prints the figures table.
bench:
	./scripts/bench.sh

## The OpenAPI document against the server: openapi-spec-validator, schemathesis --checks all,
## and a booking and a check-in through a generated Python client (tools from PyPI, in ~/.cache).
api-fuzz:
	./scripts/api-fuzz.sh

## Fault drills (minutes): Redis killed, PostgreSQL cut and restarted, pool exhausted, SIGTERM
## under load, two instances with one restarted; each under load, with counts. SOAK_RUNS=3 repeats.
soak:
	./scripts/soak.sh

## Large-data mode of the benchmark: 300,000 users and 3,000,000 participations seeded in SQL;
## every list route timed on its first page and on a deep page, on PostgreSQL and on SQLite.
bench-lists:
	./scripts/bench-lists.sh

## A server on SQLite with demo data, and how to try a check-in with curl.
demo:
	rm -f demo.db demo.db-shm demo.db-wal
	DATABASE_URL='sqlite://demo.db?mode=rwc' $(CARGO) run -q -p api --bin gymapi -- seed-demo
	@echo "Starting the server on http://127.0.0.1:8000 (Ctrl-C to stop); run the curl above in another shell."
	DATABASE_URL='sqlite://demo.db?mode=rwc' $(CARGO) run -q -p api --bin gymapi -- serve
