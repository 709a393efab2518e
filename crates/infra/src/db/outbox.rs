//! The unit of work and the transactional outbox on SQL.
//!
//! [`Database`] hands out [`Tx`]s wrapping a write transaction ([`SqlTx`]); the
//! repositories reach it with [`txn`]. A commit writes the facts recorded on the
//! `Tx` into `outbox` in the same transaction, then commits. [`Outbox`] is the
//! relay's side: claims with a lease (`claimed_until`, `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so two instances never claim one fact at once), delivery marks
//! (queued and written in batches, off the request path), per-gym sequence numbers
//! given after commit, and the purge.
//!
//! A fact is stored as its `type`, its gym (`0` for facts of a user alone) and a JSON
//! `payload` of its ids, readable by anything that reads the table later.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use domain::facts::{DomainEvent, Fact, FactId, Outbox, Sequenced};
use domain::tx::{Database, Tx};
use domain::{ClassId, DomainError, EventId, GymId, RecurrenceId, Result, SessionId, UserId};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, FromQueryResult, Statement};
use serde_json::{Value as Json, json};

use super::idempotency::{Hold, Parked};
use super::{Cell, Db, Writer, all, exec, rows_cte, timed, ts, unavailable_or_internal};

/// A write transaction of the SQL adapter, behind a [`Tx`].
pub(super) struct SqlTx {
    tx: DatabaseTransaction,
    /// Facts already written to the outbox (by a flush).
    written: Vec<Fact>,
    /// Dropped after `tx` (fields drop in order): a rollback is queued before the
    /// next writer's turn.
    writer: Writer,
    /// The request's idempotency keys, claimed by this transaction: its commit
    /// parks it there until the answers are kept beside the work.
    hold: Option<std::sync::Arc<Hold>>,
}

/// The SQL transaction behind a [`Tx`].
///
/// # Errors
/// [`DomainError::Internal`] when the `Tx` was not begun by this adapter.
pub(super) fn txn(tx: &mut Tx) -> Result<&DatabaseTransaction> {
    tx.handle::<SqlTx>().map(|s| &s.tx)
}

/// The stored form of a fact: its type and payload.
fn encode(event: &DomainEvent) -> (&'static str, Json) {
    use DomainEvent as E;
    match event {
        E::GymCreated { owner, .. } => ("gym_created", json!({"owner": owner.0})),
        E::GymChanged { .. } => ("gym_changed", json!({})),
        E::MembershipChanged { user, .. } => ("membership_changed", json!({"user": user.0})),
        E::MemberLeft { user, freed_sessions, .. } => (
            "member_left",
            json!({"user": user.0, "freed_sessions": freed_sessions.iter().map(|s| s.0).collect::<Vec<_>>()}),
        ),
        E::ProfileChanged { user } => ("profile_changed", json!({"user": user.0})),
        E::ClassChanged { class, .. } => ("class_changed", json!({"class": class.0})),
        E::SessionScheduled { session, .. } => ("session_scheduled", json!({"session": session.0})),
        E::SessionCancelled { session, members, .. } => (
            "session_cancelled",
            json!({"session": session.0, "members": members.iter().map(|m| m.0).collect::<Vec<_>>()}),
        ),
        E::Booked { session, member, .. } => ("booked", json!({"session": session.0, "member": member.0})),
        E::BookingCancelled { session, member, .. } => {
            ("booking_cancelled", json!({"session": session.0, "member": member.0}))
        }
        E::WaitlistJoined { session, member, .. } => {
            ("waitlist_joined", json!({"session": session.0, "member": member.0}))
        }
        E::WaitlistLeft { session, member, .. } => ("waitlist_left", json!({"session": session.0, "member": member.0})),
        E::WaitlistPromoted { session, member, .. } => {
            ("waitlist_promoted", json!({"session": session.0, "member": member.0}))
        }
        E::CheckedIn { session, member, walk_in, .. } => {
            ("checked_in", json!({"session": session.0, "member": member.0, "walk_in": walk_in}))
        }
        E::SeriesScheduled { recurrence, sessions, .. } => (
            "series_scheduled",
            json!({"recurrence": recurrence.0, "sessions": sessions.iter().map(|s| s.0).collect::<Vec<_>>()}),
        ),
        E::SeriesStopped { recurrence, removed, .. } => (
            "series_stopped",
            json!({"recurrence": recurrence.0, "removed": removed.iter().map(|s| s.0).collect::<Vec<_>>()}),
        ),
        E::EventChanged { event, .. } => ("event_changed", json!({"event": event.0})),
        E::QrRotated { user } => ("qr_rotated", json!({"user": user.0})),
        E::NoShows { session, members, .. } => {
            ("no_shows", json!({"session": session.0, "members": members.iter().map(|m| m.0).collect::<Vec<_>>()}))
        }
        E::PassGranted { pass, member, plan, credits, .. } => {
            ("pass_granted", json!({"pass": pass, "member": member.0, "plan": plan, "credits": credits}))
        }
        E::CreditUsed { pass, member, session, .. } => {
            ("credit_used", json!({"pass": pass, "member": member.0, "session": session.0}))
        }
        E::CreditRefunded { pass, member, session, .. } => {
            ("credit_refunded", json!({"pass": pass, "member": member.0, "session": session.0}))
        }
        E::PassExpired { pass, member, credits, .. } => {
            ("pass_expired", json!({"pass": pass, "member": member.0, "credits": credits}))
        }
        E::WaitlistSkipped { session, members, .. } => (
            "waitlist_skipped",
            json!({"session": session.0, "members": members.iter().map(|m| m.0).collect::<Vec<_>>()}),
        ),
        E::CheckInRefused { desk, member, session, code, .. } => (
            "checkin_refused",
            json!({"desk": desk.0, "member": member.map(|m| m.0), "session": session.map(|s| s.0), "code": code}),
        ),
    }
}

/// A stored fact read back; `None` for a type or payload this version does not know.
fn decode(kind: &str, gym: i64, payload: &Json) -> Option<DomainEvent> {
    use DomainEvent as E;
    let id = |name: &str| payload.get(name).and_then(Json::as_i64);
    let ids = |name: &str| -> Option<Vec<SessionId>> {
        payload.get(name)?.as_array()?.iter().map(|s| s.as_i64().map(SessionId)).collect()
    };
    let gym = GymId(gym);
    Some(match kind {
        "gym_created" => E::GymCreated { gym, owner: UserId(id("owner")?) },
        "gym_changed" => E::GymChanged { gym },
        "membership_changed" => E::MembershipChanged { gym, user: UserId(id("user")?) },
        "member_left" => E::MemberLeft {
            gym,
            user: UserId(id("user")?),
            freed_sessions: payload
                .get("freed_sessions")?
                .as_array()?
                .iter()
                .map(|s| s.as_i64().map(SessionId))
                .collect::<Option<_>>()?,
        },
        "profile_changed" => E::ProfileChanged { user: UserId(id("user")?) },
        "class_changed" => E::ClassChanged { gym, class: ClassId(id("class")?) },
        "session_scheduled" => E::SessionScheduled { gym, session: SessionId(id("session")?) },
        "session_cancelled" => E::SessionCancelled {
            gym,
            session: SessionId(id("session")?),
            // Facts written before issue 19 name no members.
            members: match payload.get("members") {
                None => Vec::new(),
                Some(list) => list.as_array()?.iter().map(|m| m.as_i64().map(UserId)).collect::<Option<_>>()?,
            },
        },
        "booked" => E::Booked { gym, session: SessionId(id("session")?), member: UserId(id("member")?) },
        "booking_cancelled" => {
            E::BookingCancelled { gym, session: SessionId(id("session")?), member: UserId(id("member")?) }
        }
        "waitlist_joined" => {
            E::WaitlistJoined { gym, session: SessionId(id("session")?), member: UserId(id("member")?) }
        }
        "waitlist_left" => E::WaitlistLeft { gym, session: SessionId(id("session")?), member: UserId(id("member")?) },
        "waitlist_promoted" => {
            E::WaitlistPromoted { gym, session: SessionId(id("session")?), member: UserId(id("member")?) }
        }
        "checked_in" => E::CheckedIn {
            gym,
            session: SessionId(id("session")?),
            member: UserId(id("member")?),
            walk_in: payload.get("walk_in")?.as_bool()?,
        },
        "series_scheduled" => {
            E::SeriesScheduled { gym, recurrence: RecurrenceId(id("recurrence")?), sessions: ids("sessions")? }
        }
        "series_stopped" => {
            E::SeriesStopped { gym, recurrence: RecurrenceId(id("recurrence")?), removed: ids("removed")? }
        }
        "event_changed" => E::EventChanged { gym, event: EventId(id("event")?) },
        "qr_rotated" => E::QrRotated { user: UserId(id("user")?) },
        "pass_granted" => E::PassGranted {
            gym,
            pass: id("pass")?,
            member: UserId(id("member")?),
            plan: id("plan")?,
            credits: match payload.get("credits")? {
                Json::Null => None,
                n => Some(i32::try_from(n.as_i64()?).ok()?),
            },
        },
        "credit_used" => {
            E::CreditUsed { gym, pass: id("pass")?, member: UserId(id("member")?), session: SessionId(id("session")?) }
        }
        "credit_refunded" => E::CreditRefunded {
            gym,
            pass: id("pass")?,
            member: UserId(id("member")?),
            session: SessionId(id("session")?),
        },
        "pass_expired" => E::PassExpired {
            gym,
            pass: id("pass")?,
            member: UserId(id("member")?),
            credits: i32::try_from(payload.get("credits")?.as_i64()?).ok()?,
        },
        "waitlist_skipped" => E::WaitlistSkipped {
            gym,
            session: SessionId(id("session")?),
            members: payload
                .get("members")?
                .as_array()?
                .iter()
                .map(|m| m.as_i64().map(UserId))
                .collect::<Option<_>>()?,
        },
        "no_shows" => E::NoShows {
            gym,
            session: SessionId(id("session")?),
            members: payload
                .get("members")?
                .as_array()?
                .iter()
                .map(|m| m.as_i64().map(UserId))
                .collect::<Option<_>>()?,
        },
        "checkin_refused" => E::CheckInRefused {
            gym,
            desk: UserId(id("desk")?),
            member: id("member").map(UserId),
            session: id("session").map(SessionId),
            code: payload.get("code").and_then(Json::as_str)?.to_owned(),
        },
        _ => return None,
    })
}

#[derive(FromQueryResult)]
struct IdRow {
    id: i64,
}

impl Db {
    /// Writes facts to the outbox inside `tx`, in one statement; answers them with
    /// their ids. Ids are given in the order of the rows (PostgreSQL's identity, and
    /// SQLite's `AUTOINCREMENT` under its one writer), though `RETURNING` may list them
    /// in any order: sorted, they pair with the facts.
    async fn write_facts(&self, tx: &DatabaseTransaction, events: Vec<DomainEvent>) -> Result<Vec<Fact>, DbErr> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let rows = events
            .iter()
            .enumerate()
            .map(|(n, e)| {
                let (kind, body) = encode(e);
                vec![
                    Cell::Int(i64::try_from(n).ok()),
                    Cell::Int(Some(e.gym().map_or(0, |g| g.0))),
                    Cell::Text(kind),
                    Cell::Json(body),
                ]
            })
            .collect();
        let payload = if self.backend() == DbBackend::Postgres { "JSONB" } else { "TEXT" };
        let columns = [("n", "BIGINT"), ("g", "BIGINT"), ("k", "TEXT"), ("p", payload)];
        let (cte, mut values) = rows_cte(self.backend(), "r", &columns, rows, 1);
        // ORDER BY n: the ids are given in the order of the facts.
        let sql = format!(
            "WITH {cte} INSERT INTO outbox (gym_id, type, payload, created_at) \
             SELECT g, k, p, ${} FROM r ORDER BY n RETURNING id",
            values.len() + 1
        );
        values.push(ts(self.clock.now()));
        let mut ids: Vec<i64> = all::<IdRow>(tx, &sql, values).await?.into_iter().map(|r| r.id).collect();
        ids.sort_unstable();
        if ids.len() != events.len() {
            return Err(DbErr::RecordNotInserted);
        }
        Ok(events
            .into_iter()
            .zip(ids)
            .map(|(event, id)| Fact { id: FactId { gym: event.gym().map_or(0, |g| g.0), id }, event })
            .collect())
    }
}

#[async_trait]
impl Database for Db {
    async fn begin(&self) -> Result<Tx> {
        let hold = Hold::current();
        if hold.as_ref().is_some_and(|h| h.is_parked()) {
            // The parked transaction holds SQLite's writer: waiting for it would
            // wait for this request's own answer.
            return Err(DomainError::internal("a request with an idempotency key began a second transaction"));
        }
        let (tx, writer) = self.write_tx().await?;
        if let Some(hold) = &hold
            && let Err(e) = self.claim(&tx, hold).await
        {
            // The rollback is queued before the writer's turn passes on, as `SqlTx` does.
            drop(tx);
            drop(writer);
            return Err(e);
        }
        Ok(Tx::new(Box::new(SqlTx { tx, written: Vec::new(), writer, hold })))
    }

    async fn flush(&self, tx: &mut Tx) -> Result<()> {
        let events = tx.take_facts();
        let handle = tx.handle::<SqlTx>()?;
        let written = timed("outbox_write", self.write_facts(&handle.tx, events)).await?;
        handle.written.extend(written);
        Ok(())
    }

    async fn commit(&self, mut tx: Tx) -> Result<Vec<Fact>> {
        self.flush(&mut tx).await?;
        let (handle, _) = tx.into_parts();
        let SqlTx { tx, written, writer, hold } = *handle
            .downcast::<SqlTx>()
            .map_err(|_| DomainError::internal("a transaction was handed to an adapter that did not begin it"))?;
        if let Some(hold) = hold {
            // Committed with the answers by `Db::settle`, which hands the facts on.
            hold.park(Parked { tx, written, writer })?;
            return Ok(Vec::new());
        }
        timed("commit", tx.commit()).await?;
        drop(writer);
        Ok(written)
    }
}

#[derive(FromQueryResult)]
struct StoredFact {
    gym_id: i64,
    id: i64,
    kind: String,
    payload: String,
}

#[derive(FromQueryResult)]
struct Pending {
    gym_id: i64,
    id: i64,
}

#[derive(FromQueryResult)]
struct GymHead {
    gym_id: i64,
    last_seq: i64,
}

/// Delivery marks waiting to be written, in one batch, by [`Db::flush_marks`].
#[derive(Default)]
pub(super) struct Marks {
    ids: Mutex<Vec<FactId>>,
    wake: tokio::sync::Notify,
}

/// Longest a delivery mark waits before its batch is written.
const MARK_EVERY: Duration = Duration::from_millis(200);

impl Db {
    /// Writes the queued delivery marks (one statement per batch of gyms' facts).
    pub(super) async fn flush_marks(&self) {
        let ids = self.marks.ids.lock().map(|mut m| std::mem::take(&mut *m)).unwrap_or_default();
        let backend = self.backend();
        for chunk in ids.chunks(500) {
            let rows = chunk.iter().map(|f| vec![Cell::Int(Some(f.gym)), Cell::Int(Some(f.id))]).collect();
            let (cte, mut values) = rows_cte(backend, "k", &[("g", "BIGINT"), ("i", "BIGINT")], rows, 1);
            // The time after the rows: SQLite numbers `?` in the order they appear.
            let at = if backend == DbBackend::Postgres { "$2" } else { "?" };
            let sql = format!(
                "WITH {cte} UPDATE outbox SET delivered_at = {at} \
                 WHERE delivered_at IS NULL AND (gym_id, id) IN (SELECT g, i FROM k)"
            );
            values.push(ts(self.clock.now()));
            let written = match self.writer().await {
                Ok(_writer) => exec(&self.writes, &sql, values).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = written {
                // Not written: the relay delivers these facts again (listeners are idempotent).
                tracing::warn!(error = %e, facts = chunk.len(), "outbox delivery marks not written");
            }
        }
    }

    /// Writes delivery marks in the background, every [`MARK_EVERY`] at most, for as
    /// long as the pool is open.
    pub(super) fn spawn_mark_writer(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let db = self.clone();
        rt.spawn(async move {
            loop {
                let _ = tokio::time::timeout(MARK_EVERY, db.marks.wake.notified()).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                if db.conn.get_database_backend() == DbBackend::Postgres
                    && db.conn.get_postgres_connection_pool().is_closed()
                    || db.conn.get_database_backend() == DbBackend::Sqlite
                        && db.conn.get_sqlite_connection_pool().is_closed()
                {
                    return;
                }
                db.flush_marks().await;
            }
        });
    }
}

#[async_trait]
impl Outbox for Db {
    async fn claim(
        &self,
        now: time::OffsetDateTime,
        committed_before: time::OffsetDateTime,
        lease_until: time::OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Fact>> {
        let (skip_locked, payload) = match self.backend() {
            DbBackend::Postgres => ("FOR UPDATE SKIP LOCKED", "payload::text"),
            _ => ("", "payload"),
        };
        let sql = format!(
            "UPDATE outbox SET claimed_until = $1 WHERE (gym_id, id) IN (\
               SELECT gym_id, id FROM outbox WHERE delivered_at IS NULL AND created_at < $2 \
               AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY id LIMIT $4 {skip_locked}) \
             RETURNING gym_id, id, type AS kind, {payload} AS payload"
        );
        let values = vec![ts(lease_until), ts(committed_before), ts(now), i64::from(limit).into()];
        let writer = self.writer().await?;
        let mut rows = timed("outbox_claim", all::<StoredFact>(&self.writes, &sql, values)).await?;
        drop(writer);
        rows.sort_by_key(|r| r.id);
        let mut facts = Vec::with_capacity(rows.len());
        for r in rows {
            let event = serde_json::from_str::<Json>(&r.payload).ok().and_then(|p| decode(&r.kind, r.gym_id, &p));
            match event {
                Some(event) => facts.push(Fact { id: FactId { gym: r.gym_id, id: r.id }, event }),
                None => {
                    // Written by a newer version: leave it for that version's relays.
                    tracing::warn!(gym = r.gym_id, id = r.id, kind = %r.kind, "outbox fact of an unknown kind");
                }
            }
        }
        Ok(facts)
    }

    async fn delivered(&self, ids: &[FactId]) -> Result<()> {
        if let Ok(mut m) = self.marks.ids.lock() {
            m.extend_from_slice(ids);
        }
        self.marks.wake.notify_one();
        Ok(())
    }

    async fn sequence(&self, limit: u32) -> Result<Sequenced> {
        // Most ticks find nothing: a read costs less than a write transaction.
        // ORDER BY id: SQLite then takes the partial index of the unsequenced instead of
        // scanning the whole (gym_id, gym_seq) key.
        let waiting = "SELECT id FROM outbox WHERE gym_seq IS NULL ORDER BY id LIMIT 1";
        if timed("outbox_unsequenced", all::<IdRow>(&self.conn, waiting, vec![])).await?.is_empty() {
            return Ok(Sequenced::default());
        }
        let (tx, _writer) = self.write_tx().await?;
        let done = timed("outbox_sequence", async {
            if self.backend() == DbBackend::Postgres {
                // One sequencer at a time across instances; the others skip this tick.
                let sql = "SELECT pg_try_advisory_xact_lock(103121109097112106) AS locked";
                let row = tx.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
                if !row.map(|r| r.try_get::<bool>("", "locked")).transpose()?.unwrap_or(false) {
                    return Ok(Sequenced { busy: true, ..Sequenced::default() });
                }
            }
            let pending = all::<Pending>(
                &tx,
                "SELECT gym_id, id FROM outbox WHERE gym_seq IS NULL ORDER BY id LIMIT $1",
                vec![i64::from(limit).into()],
            )
            .await?;
            if pending.is_empty() {
                return Ok(Sequenced::default());
            }
            // Three statements whatever the number of gyms: the pending facts (above),
            // every gym's head moved at once (in ascending gym order, the heads' one
            // lock order), and every number written by one UPDATE.
            let mut gyms: Vec<(i64, i64)> = Vec::new();
            for p in &pending {
                match gyms.iter_mut().find(|(g, _)| *g == p.gym_id) {
                    Some((_, n)) => *n += 1,
                    None => gyms.push((p.gym_id, 1)),
                }
            }
            gyms.sort_unstable();
            // Rows as one parameter on PostgreSQL (`rows_cte`): the statements' text is
            // the same whatever the number of gyms or facts, so each is prepared once
            // per connection instead of parsed and planned anew on every call.
            let backend = self.backend();
            let (cte, values) = rows_cte(
                backend,
                "h",
                &[("g", "BIGINT"), ("n", "BIGINT")],
                gyms.iter().map(|(g, n)| vec![Cell::Int(Some(*g)), Cell::Int(Some(*n))]).collect(),
                1,
            );
            // `WHERE true`: SQLite reads an upsert's SELECT without one as a join's `ON`.
            let heads = all::<GymHead>(
                &tx,
                &format!(
                    "WITH {cte} INSERT INTO outbox_heads (gym_id, last_seq) SELECT g, n FROM h WHERE true ORDER BY g \
                     ON CONFLICT (gym_id) DO UPDATE SET last_seq = outbox_heads.last_seq + excluded.last_seq \
                     RETURNING gym_id, last_seq"
                ),
                values,
            )
            .await?;
            // The next number of each gym: its new head less what this call adds, plus one.
            let mut next: Vec<(i64, i64)> = Vec::with_capacity(gyms.len());
            for (gym, n) in &gyms {
                let head = heads.iter().find(|h| h.gym_id == *gym).ok_or(DbErr::RecordNotInserted)?;
                next.push((*gym, head.last_seq - n + 1));
            }
            let mut numbered: Vec<Vec<Cell>> = Vec::with_capacity(pending.len());
            for p in &pending {
                let Some((_, seq)) = next.iter_mut().find(|(g, _)| *g == p.gym_id) else { continue };
                numbered.push(vec![Cell::Int(Some(p.gym_id)), Cell::Int(Some(p.id)), Cell::Int(Some(*seq))]);
                *seq += 1;
            }
            let (cte, values) =
                rows_cte(backend, "v", &[("g", "BIGINT"), ("i", "BIGINT"), ("q", "BIGINT")], numbered, 1);
            let sql = format!(
                "WITH {cte} UPDATE outbox SET gym_seq = v.q FROM v WHERE outbox.gym_id = v.g AND outbox.id = v.i"
            );
            exec(&tx, &sql, values).await?;
            Ok(Sequenced {
                facts: pending.len(),
                heads: heads.iter().map(|h| (GymId(h.gym_id), h.last_seq)).collect(),
                busy: false,
            })
        })
        .await?;
        tx.commit().await.map_err(unavailable_or_internal)?;
        Ok(done)
    }

    async fn purge(&self, delivered_before: time::OffsetDateTime) -> Result<u64> {
        // A fact a webhook of its gym has not taken yet stays until it has: an endpoint's
        // queue never loses a fact to the retention.
        let sql = "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1 AND NOT EXISTS (\
                   SELECT 1 FROM webhooks w WHERE w.gym_id = outbox.gym_id \
                   AND (outbox.gym_seq IS NULL OR w.cursor < outbox.gym_seq))";
        let _writer = self.writer().await?;
        timed("outbox_purge", exec(&self.writes, sql, vec![ts(delivered_before)])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_reads_back_as_written() {
        let (g, u, s) = (GymId(3), UserId(9), SessionId(5));
        let facts = [
            DomainEvent::GymCreated { gym: g, owner: u },
            DomainEvent::GymChanged { gym: g },
            DomainEvent::MembershipChanged { gym: g, user: u },
            DomainEvent::MemberLeft { gym: g, user: u, freed_sessions: vec![s, SessionId(6)] },
            DomainEvent::ProfileChanged { user: u },
            DomainEvent::ClassChanged { gym: g, class: ClassId(2) },
            DomainEvent::SessionScheduled { gym: g, session: s },
            DomainEvent::SessionCancelled { gym: g, session: s, members: vec![u, UserId(10)] },
            DomainEvent::SessionCancelled { gym: g, session: s, members: vec![] },
            DomainEvent::Booked { gym: g, session: s, member: u },
            DomainEvent::BookingCancelled { gym: g, session: s, member: u },
            DomainEvent::WaitlistJoined { gym: g, session: s, member: u },
            DomainEvent::WaitlistLeft { gym: g, session: s, member: u },
            DomainEvent::WaitlistPromoted { gym: g, session: s, member: u },
            DomainEvent::PassGranted { gym: g, pass: 4, member: u, plan: 2, credits: Some(10) },
            DomainEvent::PassGranted { gym: g, pass: 5, member: u, plan: 3, credits: None },
            DomainEvent::CreditUsed { gym: g, pass: 4, member: u, session: s },
            DomainEvent::CreditRefunded { gym: g, pass: 4, member: u, session: s },
            DomainEvent::PassExpired { gym: g, pass: 4, member: u, credits: 3 },
            DomainEvent::WaitlistSkipped { gym: g, session: s, members: vec![u, UserId(9)] },
            DomainEvent::CheckedIn { gym: g, session: s, member: u, walk_in: true },
            DomainEvent::SeriesScheduled { gym: g, recurrence: RecurrenceId(8), sessions: vec![s, SessionId(6)] },
            DomainEvent::SeriesStopped { gym: g, recurrence: RecurrenceId(8), removed: vec![] },
            DomainEvent::EventChanged { gym: g, event: EventId(4) },
            DomainEvent::QrRotated { user: u },
            DomainEvent::NoShows { gym: g, session: SessionId(5), members: vec![u, UserId(9)] },
            DomainEvent::CheckInRefused {
                gym: g,
                desk: u,
                member: Some(UserId(9)),
                session: None,
                code: "invalid_qr".into(),
            },
        ];
        for fact in facts {
            let (kind, payload) = encode(&fact);
            let gym = fact.gym().map_or(0, |g| g.0);
            assert_eq!(decode(kind, gym, &payload), Some(fact.clone()), "{kind}");
        }
        assert_eq!(
            decode("session_cancelled", 3, &json!({"session": 5})),
            Some(DomainEvent::SessionCancelled { gym: GymId(3), session: s, members: vec![] }),
            "a fact of the version before"
        );
        assert_eq!(decode("from_the_future", 3, &json!({})), None);
        assert_eq!(decode("booked", 3, &json!({"session": "x"})), None);
    }
}
