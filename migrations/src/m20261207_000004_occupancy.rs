//! Live occupancy (issue 20): a gym's `occupancy_window_minutes` (members checked in
//! within it count as in the gym), and the index that finds a gym's recent
//! attendances without reading its history.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbErr};

pub struct Migration;

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261207_000004_occupancy"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(
            tx,
            &[
                "ALTER TABLE gyms ADD COLUMN occupancy_window_minutes INTEGER NOT NULL DEFAULT 90 \
                 CONSTRAINT gyms_occupancy_window_check CHECK (occupancy_window_minutes BETWEEN 1 AND 1440)",
                "CREATE INDEX participations_gym_attended ON participations (gym_id, attendance_time) \
                 WHERE attendance_time IS NOT NULL",
            ],
        )
        .await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(
            tx,
            &[
                "DROP INDEX IF EXISTS participations_gym_attended",
                "ALTER TABLE gyms DROP COLUMN occupancy_window_minutes",
            ],
        )
        .await
    }
}
