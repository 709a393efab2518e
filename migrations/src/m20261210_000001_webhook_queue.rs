//! An endpoint's queue indexes its pending deliveries alone (webhooks, issue 20).
//!
//! Almost every delivery succeeds at its first attempt and is written `delivered`:
//! an index over every row cost each of those a write it never serves, since only
//! pending rows are read as a queue (the list reads `webhook_deliveries_list`).

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbErr};

pub struct Migration;

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261210_000001_webhook_queue"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(
            tx,
            &[
                "DROP INDEX IF EXISTS webhook_deliveries_queue",
                "CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, id) WHERE status = 'pending'",
            ],
        )
        .await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(
            tx,
            &[
                "DROP INDEX IF EXISTS webhook_deliveries_queue",
                "CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, status, id)",
            ],
        )
        .await
    }
}
