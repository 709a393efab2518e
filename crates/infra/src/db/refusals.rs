//! [`RefusalRepository`] on SQL: refused scans in batches, and the list with each
//! refusal's neighbours counted (in Rust, over the refusals within the window of
//! the page: time arithmetic differs between the two databases, counting does not).

use async_trait::async_trait;
use domain::refusals::{RefusalDraft, RefusalRepository, StoredRefusal};
use domain::tx::Tx;
use domain::{GymId, Page, Result, SessionId, UserId};
use sea_orm::FromQueryResult;
use time::{Duration, OffsetDateTime};

use super::outbox::txn;
use super::{Cell, Db, PageValues, all, exec, rows_cte, timed, ts};

#[derive(FromQueryResult)]
struct RefusalRow {
    id: i64,
    desk_id: i64,
    qr_code: String,
    qr_user_id: Option<i64>,
    session_id: Option<i64>,
    code: String,
    at: OffsetDateTime,
}

#[derive(FromQueryResult)]
struct NearRow {
    desk_id: i64,
    qr_user_id: Option<i64>,
    at: OffsetDateTime,
}

#[async_trait]
impl RefusalRepository for Db {
    async fn record_refusals(&self, tx: &mut Tx, refusals: &[RefusalDraft]) -> Result<()> {
        if refusals.is_empty() {
            return Ok(());
        }
        let rows = refusals
            .iter()
            .map(|r| {
                vec![
                    Cell::Int(Some(r.gym.0)),
                    Cell::Int(Some(r.desk.0)),
                    Cell::Str(Some(r.qr_code.clone())),
                    Cell::Int(r.qr_user.map(|u| u.0)),
                    Cell::Int(r.session.map(|s| s.0)),
                    Cell::Str(Some(r.code.clone())),
                    Cell::Time(Some(r.at)),
                ]
            })
            .collect();
        let columns = [
            ("g", "BIGINT"),
            ("d", "BIGINT"),
            ("q", "TEXT"),
            ("u", "BIGINT"),
            ("s", "BIGINT"),
            ("c", "TEXT"),
            ("t", "TIMESTAMPTZ"),
        ];
        let (cte, values) = rows_cte(self.backend(), "r", &columns, rows, 1);
        let sql = format!(
            "WITH {cte} INSERT INTO checkin_refusals (gym_id, desk_id, qr_code, qr_user_id, session_id, code, at) \
             SELECT g, d, q, u, s, c, t FROM r"
        );
        timed("refusals_record", exec(txn(tx)?, &sql, values)).await?;
        Ok(())
    }

    async fn refusals(
        &self,
        gym: GymId,
        from: OffsetDateTime,
        through: OffsetDateTime,
        window: Duration,
        page: Page,
    ) -> Result<Vec<StoredRefusal>> {
        let sql = "SELECT id, desk_id, qr_code, qr_user_id, session_id, code, at FROM checkin_refusals \
                   WHERE gym_id = $1 AND at >= $2 AND at <= $3 ORDER BY at DESC, id DESC LIMIT $4 OFFSET $5";
        let values = vec![gym.0.into(), ts(from), ts(through), page.limit_value(), page.skip_value()];
        let rows = self.lagging("refusals_list", |c| Box::pin(all::<RefusalRow>(c, sql, values.clone()))).await?;
        let (Some(newest), Some(oldest)) = (rows.first().map(|r| r.at), rows.last().map(|r| r.at)) else {
            return Ok(Vec::new());
        };
        let near_sql =
            "SELECT desk_id, qr_user_id, at FROM checkin_refusals WHERE gym_id = $1 AND at >= $2 AND at <= $3";
        let values = vec![gym.0.into(), ts(oldest - window), ts(newest + window)];
        let near = self.lagging("refusals_near", |c| Box::pin(all::<NearRow>(c, near_sql, values.clone()))).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let close = |n: &&NearRow| (n.at - r.at).abs() <= window;
                let member_nearby = match r.qr_user_id {
                    Some(u) => near.iter().filter(close).filter(|n| n.qr_user_id == Some(u)).count(),
                    None => 0,
                };
                let desk_nearby = near.iter().filter(close).filter(|n| n.desk_id == r.desk_id).count();
                StoredRefusal {
                    id: r.id,
                    draft: RefusalDraft {
                        gym,
                        desk: UserId(r.desk_id),
                        qr_code: r.qr_code,
                        qr_user: r.qr_user_id.map(UserId),
                        session: r.session_id.map(SessionId),
                        code: r.code,
                        at: r.at,
                    },
                    member_nearby: i64::try_from(member_nearby).unwrap_or(i64::MAX),
                    desk_nearby: i64::try_from(desk_nearby).unwrap_or(i64::MAX),
                }
            })
            .collect())
    }
}
