//! Member calendar feeds (issue 19): one unguessable token per member and gym, the
//! key of a public `.ics` URL. Rotating replaces it (the old URL stops answering).
//! The URL names the gym beside the token (`{gym}-{token}.ics`), so the token is
//! looked up within its gym and unique there, as every key of a tenant table.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbBackend, DbErr};

pub struct Migration;

#[async_trait]
impl crate::Migration for Migration {
    fn name(&self) -> &'static str {
        "m20261206_000004_calendar_tokens"
    }

    async fn up(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        let ts = if crate::backend(tx) == DbBackend::Postgres { "TIMESTAMPTZ" } else { "TEXT" };
        let table = format!(
            "CREATE TABLE calendar_tokens (
                gym_id BIGINT NOT NULL,
                member_id BIGINT NOT NULL,
                token TEXT NOT NULL,
                created_at {ts} NOT NULL,
                CONSTRAINT calendar_tokens_pkey PRIMARY KEY (gym_id, member_id),
                CONSTRAINT calendar_tokens_token_key UNIQUE (gym_id, token),
                CONSTRAINT calendar_tokens_member_fkey FOREIGN KEY (gym_id, member_id)
                    REFERENCES memberships (gym_id, user_id) ON DELETE CASCADE
            )"
        );
        crate::run(tx, &[&table]).await
    }

    async fn down(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        crate::run(tx, &["DROP TABLE IF EXISTS calendar_tokens"]).await
    }
}
