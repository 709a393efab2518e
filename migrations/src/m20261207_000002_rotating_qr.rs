//! Rotating QR codes (issue 20): a gym's `qr_mode`, each user's HMAC key of their
//! time-based codes, and the last step a member's rotating code checked them in
//! with, per gym (a code is good once within its step).
//!
//! The key is 256 random bits: the printed secret's 32 bits would let one seen code
//! give the secret away to an offline search. Existing users get theirs here, from
//! each database's strong random source.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbBackend, DbErr};

pub struct Migration;

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261207_000002_rotating_qr"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        let fill = if crate::backend(tx) == DbBackend::Postgres {
            "UPDATE users SET qr_key = replace(gen_random_uuid()::text, '-', '') \
             || replace(gen_random_uuid()::text, '-', '')"
        } else {
            "UPDATE users SET qr_key = lower(hex(randomblob(32)))"
        };
        crate::run(
            tx,
            &[
                "ALTER TABLE gyms ADD COLUMN qr_mode TEXT NOT NULL DEFAULT 'static' \
                 CONSTRAINT gyms_qr_mode_check CHECK (qr_mode IN ('static', 'rotating'))",
                "ALTER TABLE users ADD COLUMN qr_key TEXT",
                fill,
                "ALTER TABLE memberships ADD COLUMN qr_step_used BIGINT",
            ],
        )
        .await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(
            tx,
            &[
                "ALTER TABLE memberships DROP COLUMN qr_step_used",
                "ALTER TABLE users DROP COLUMN qr_key",
                "ALTER TABLE gyms DROP COLUMN qr_mode",
            ],
        )
        .await
    }
}
