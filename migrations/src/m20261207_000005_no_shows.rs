//! The no-show job (issue 20): the registered places still open, found without
//! reading every participation ever made. Only `registered` rows are in the index:
//! future bookings and the ended sessions' bookings the job has not marked yet.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbErr};

pub struct Migration;

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261207_000005_no_shows"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(
            tx,
            &["CREATE INDEX participations_registered ON participations (gym_id, session_id) \
               WHERE status = 'registered'"],
        )
        .await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, &["DROP INDEX IF EXISTS participations_registered"]).await
    }
}
