//! Passes granted by a payment system (issue 21): the gym's signing secret (with the
//! one it replaced, signing for a day more), and the event that paid for a pass,
//! unique per gym so a retried event grants one pass.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbBackend, DbErr};

pub struct Migration;

const SECRETS: &str = "CREATE TABLE payment_secrets (
    gym_id BIGINT NOT NULL CONSTRAINT payment_secrets_pkey PRIMARY KEY
        CONSTRAINT payment_secrets_gym_fkey REFERENCES gyms (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_until {TS},
    created_at {TS} NOT NULL
)";

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261208_000004_payments"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        let ts = if crate::backend(tx) == DbBackend::Postgres { "TIMESTAMPTZ" } else { "TEXT" };
        crate::run(
            tx,
            &[
                &SECRETS.replace("{TS}", ts),
                "ALTER TABLE passes ADD COLUMN payment_event_id TEXT",
                "CREATE UNIQUE INDEX passes_payment_event ON passes (gym_id, payment_event_id)",
            ],
        )
        .await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(
            tx,
            &[
                "DROP INDEX IF EXISTS passes_payment_event",
                "ALTER TABLE passes DROP COLUMN payment_event_id",
                "DROP TABLE IF EXISTS payment_secrets",
            ],
        )
        .await
    }
}
