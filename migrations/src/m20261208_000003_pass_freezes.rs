//! A pass's freeze (issue 21): the first instant of its first day and the first
//! instant after its last, on the gym's wall clock. The expiry moved out by as
//! many days when the freeze was made; one freeze at a time.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbBackend, DbErr};

pub struct Migration;

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261208_000003_pass_freezes"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        let ts = if crate::backend(tx) == DbBackend::Postgres { "TIMESTAMPTZ" } else { "TEXT" };
        crate::run(
            tx,
            &[
                &format!("ALTER TABLE passes ADD COLUMN frozen_from {ts}"),
                &format!("ALTER TABLE passes ADD COLUMN frozen_until {ts}"),
            ],
        )
        .await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, &["ALTER TABLE passes DROP COLUMN frozen_until", "ALTER TABLE passes DROP COLUMN frozen_from"])
            .await
    }
}
