//! Idempotency keys of POST requests (issue 19): what a request with an
//! `Idempotency-Key` did, stored in the transaction of its work, so a retry through
//! any instance, or after a restart, replays the answer instead of working again.
//!
//! Keys are the caller's (`user_id`), not a gym's: `POST /gyms` names no gym, and one
//! key sent to two gyms is one key reused. The row of a request at work holds its
//! claim (`status` NULL) only inside that request's uncommitted transaction; the
//! commit writes the answer beside it. Rows older than a day are purged by
//! `created_at`.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbBackend, DbErr};

pub struct Migration;

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261207_000001_idempotency_keys"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        let ts = if crate::backend(tx) == DbBackend::Postgres { "TIMESTAMPTZ" } else { "TEXT" };
        let table = format!(
            "CREATE TABLE idempotency_keys (
                user_id BIGINT NOT NULL,
                request_key TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                status INTEGER,
                content_type TEXT,
                body TEXT,
                created_at {ts} NOT NULL,
                CONSTRAINT idempotency_keys_pkey PRIMARY KEY (user_id, request_key),
                CONSTRAINT idempotency_keys_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
            )"
        );
        crate::run(tx, &[&table, "CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at)"]).await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, &["DROP TABLE IF EXISTS idempotency_keys"]).await
    }
}
