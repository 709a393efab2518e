//! [`ReportRepository`] on SQL: class figures counted by the database, one statement
//! over the dates' sessions; a member's attendance times for their weeks.

use async_trait::async_trait;
use domain::reports::{ClassFigures, PlanFigures, ReportRepository};
use domain::{ClassId, GymId, Result, UserId};
use sea_orm::FromQueryResult;
use time::OffsetDateTime;

use super::{Db, all, one, timed, ts};

#[derive(FromQueryResult)]
struct FiguresRow {
    class_id: i64,
    name: String,
    sessions: i64,
    places: i64,
    taken: i64,
    attended: i64,
    no_shows: i64,
}

#[derive(FromQueryResult)]
struct PlanRow {
    plan_id: i64,
    name: String,
    passes_sold: i64,
    credits_granted: i64,
    credits_used: i64,
    credits_refunded: i64,
    credits_forfeited: i64,
    credits_expired: i64,
}

#[derive(FromQueryResult)]
struct MemberRow {
    timezone: String,
    role: Option<String>,
}

#[derive(FromQueryResult)]
struct TimeRow {
    t: OffsetDateTime,
}

#[async_trait]
impl ReportRepository for Db {
    async fn class_figures(
        &self,
        gym: GymId,
        from: OffsetDateTime,
        through: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Vec<ClassFigures>> {
        // The held sessions once, their participations counted per session, then both
        // summed per class (a join of the two before summing would count each
        // capacity once per participation).
        let sql = "WITH held AS (SELECT id, class_id, capacity FROM sessions \
                     WHERE gym_id = $1 AND status = 'scheduled' AND start_time >= $2 AND start_time <= $3 \
                       AND end_time <= $4), \
                   counted AS (SELECT p.session_id, \
                       SUM(CASE WHEN p.status IN ('registered', 'attended', 'no_show') THEN 1 ELSE 0 END) AS taken, \
                       SUM(CASE WHEN p.status = 'attended' THEN 1 ELSE 0 END) AS attended, \
                       SUM(CASE WHEN p.status = 'no_show' THEN 1 ELSE 0 END) AS no_shows \
                     FROM participations p JOIN held h ON h.id = p.session_id WHERE p.gym_id = $1 \
                     GROUP BY p.session_id) \
                   SELECT c.id AS class_id, c.name, COUNT(*) AS sessions, \
                     CAST(COALESCE(SUM(h.capacity), 0) AS BIGINT) AS places, \
                     CAST(COALESCE(SUM(n.taken), 0) AS BIGINT) AS taken, \
                     CAST(COALESCE(SUM(n.attended), 0) AS BIGINT) AS attended, \
                     CAST(COALESCE(SUM(n.no_shows), 0) AS BIGINT) AS no_shows \
                   FROM held h JOIN classes c ON c.gym_id = $1 AND c.id = h.class_id \
                   LEFT JOIN counted n ON n.session_id = h.id \
                   GROUP BY c.id, c.name ORDER BY c.id";
        let values = vec![gym.0.into(), ts(from), ts(through), ts(now)];
        let rows = self.lagging("report_classes", |c| Box::pin(all::<FiguresRow>(c, sql, values.clone()))).await?;
        Ok(rows
            .into_iter()
            .map(|r| ClassFigures {
                class_id: ClassId(r.class_id),
                name: r.name,
                sessions: r.sessions,
                places: r.places,
                taken: r.taken,
                attended: r.attended,
                no_shows: r.no_shows,
            })
            .collect())
    }

    async fn plan_figures(
        &self,
        gym: GymId,
        from: OffsetDateTime,
        through: OffsetDateTime,
    ) -> Result<Vec<PlanFigures>> {
        // Sales and movements summed per plan apart, then joined to the plans (a
        // join before summing would count each sale once per entry).
        let sql = "WITH sold AS (SELECT plan_id, COUNT(*) AS n FROM passes \
                     WHERE gym_id = $1 AND created_at >= $2 AND created_at <= $3 GROUP BY plan_id), \
                   moved AS (SELECT p.plan_id, \
                       SUM(CASE WHEN e.kind = 'grant' THEN e.credits ELSE 0 END) AS granted, \
                       SUM(CASE WHEN e.kind = 'use' THEN -e.credits ELSE 0 END) AS used, \
                       SUM(CASE WHEN e.kind = 'refund' THEN e.credits ELSE 0 END) AS refunded, \
                       SUM(CASE WHEN e.kind = 'forfeit' THEN 1 ELSE 0 END) AS forfeited, \
                       SUM(CASE WHEN e.kind = 'expire' THEN -e.credits ELSE 0 END) AS expired \
                     FROM credit_entries e JOIN passes p ON p.gym_id = e.gym_id AND p.id = e.pass_id \
                     WHERE e.gym_id = $1 AND e.at >= $2 AND e.at <= $3 GROUP BY p.plan_id) \
                   SELECT pl.id AS plan_id, pl.name, CAST(COALESCE(s.n, 0) AS BIGINT) AS passes_sold, \
                     CAST(COALESCE(m.granted, 0) AS BIGINT) AS credits_granted, \
                     CAST(COALESCE(m.used, 0) AS BIGINT) AS credits_used, \
                     CAST(COALESCE(m.refunded, 0) AS BIGINT) AS credits_refunded, \
                     CAST(COALESCE(m.forfeited, 0) AS BIGINT) AS credits_forfeited, \
                     CAST(COALESCE(m.expired, 0) AS BIGINT) AS credits_expired \
                   FROM plans pl LEFT JOIN sold s ON s.plan_id = pl.id LEFT JOIN moved m ON m.plan_id = pl.id \
                   WHERE pl.gym_id = $1 ORDER BY pl.id";
        let values = vec![gym.0.into(), ts(from), ts(through)];
        let rows = self.lagging("report_passes", |c| Box::pin(all::<PlanRow>(c, sql, values.clone()))).await?;
        Ok(rows
            .into_iter()
            .map(|r| PlanFigures {
                plan_id: r.plan_id,
                name: r.name,
                passes_sold: r.passes_sold,
                credits_granted: r.credits_granted,
                credits_used: r.credits_used,
                credits_refunded: r.credits_refunded,
                credits_forfeited: r.credits_forfeited,
                credits_expired: r.credits_expired,
            })
            .collect())
    }

    async fn member_of(&self, gym: GymId, user: UserId) -> Result<Option<(String, bool)>> {
        let sql = "SELECT g.timezone, m.role FROM gyms g \
                   LEFT JOIN memberships m ON m.gym_id = g.id AND m.user_id = $2 WHERE g.id = $1";
        let row = timed("report_member", one::<MemberRow>(&self.conn, sql, vec![gym.0.into(), user.0.into()])).await?;
        Ok(row.map(|r| (r.timezone, r.role.is_some())))
    }

    async fn attendance_times(&self, gym: GymId, user: UserId, limit: u64) -> Result<Vec<OffsetDateTime>> {
        let sql = "SELECT attendance_time AS t FROM participations \
                   WHERE gym_id = $1 AND member_id = $2 AND status = 'attended' AND attendance_time IS NOT NULL \
                   ORDER BY attendance_time DESC LIMIT $3";
        let values = vec![gym.0.into(), user.0.into(), i64::try_from(limit).unwrap_or(i64::MAX).into()];
        let rows = self.lagging("report_member_times", |c| Box::pin(all::<TimeRow>(c, sql, values.clone()))).await?;
        Ok(rows.into_iter().map(|r| r.t).collect())
    }
}
