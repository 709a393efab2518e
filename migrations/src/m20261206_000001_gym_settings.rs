//! A gym's booking window (issue 19's gym settings): `booking_opens_hours` (how long
//! before a session's start booking opens; NULL: as soon as it is scheduled) and
//! `booking_closes_minutes` (how long before the start it closes; 0: at the start).
//! The CHECKs repeat the domain's ranges, so no writer can store a window the rules
//! cannot read.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbErr};

pub struct Migration;

const UP: &[&str] = &[
    "ALTER TABLE gyms ADD COLUMN booking_opens_hours INTEGER \
     CHECK (booking_opens_hours IS NULL OR booking_opens_hours BETWEEN 1 AND 8760)",
    "ALTER TABLE gyms ADD COLUMN booking_closes_minutes INTEGER NOT NULL DEFAULT 0 \
     CHECK (booking_closes_minutes BETWEEN 0 AND 10080)",
];

const DOWN: &[&str] =
    &["ALTER TABLE gyms DROP COLUMN booking_closes_minutes", "ALTER TABLE gyms DROP COLUMN booking_opens_hours"];

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261206_000001_gym_settings"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, UP).await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, DOWN).await
    }
}
