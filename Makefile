# GymAPI — the two commands of a fresh machine are `make run` and `make test`.
.PHONY: run test lint fmt demo bench build release

CARGO ?= cargo

## Serve on 127.0.0.1:8000 (SQLite and the in-process cache unless DATABASE_URL / REDIS_URL say otherwise).
run:
	$(CARGO) run -p api --bin gymapi -- serve

## The whole suite: domain unit tests (mocks), adapters and HTTP tests on real PostgreSQL, SQLite and Redis.
test:
	$(CARGO) test --workspace

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
