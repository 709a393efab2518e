//! Credits that move with bookings: which pass a booking uses, and the ledger
//! entries of using a credit, giving it back and forfeiting it, written in the
//! transaction of the booking, promotion, cancellation or check-in that causes them.
//!
//! A booking is a participation at one of its credit numbers: the row of a member's
//! place in a session is reused when they book again after cancelling, and each
//! booking that takes a pass counts one more (`credit_no`). The storage allows one
//! `use` and one return (`refund` or `forfeit`) per booking, so a booking takes at
//! most one credit and gives it back at most once whatever a writer does.
//!
//! Passes are locked after the session (lock order 4, see [`crate::tx`]), in
//! ascending `(gym, id)`, and read by the statement after the lock; every rule is
//! decided on that read.

use std::sync::Arc;

use time::{Date, Duration, OffsetDateTime, Time};

use crate::error::{DomainError, Result};
use crate::facts::DomainEvent;
use crate::passes::{BookingEntry, Cause, CreditAsk, EntryKind, NewEntry, Pass, PassRepository, PassStatus, Usable};
use crate::plans::PlanKind;
use crate::tx::Tx;
use crate::values::{self, GymId, SessionId, UserId};

/// The gym's settings for bookings that use passes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreditRules {
    requires_pass: bool,
    cancel_cutoff_minutes: i32,
    zone: String,
}

impl CreditRules {
    /// The longest cut-off: a week.
    pub const CANCEL_CUTOFF_MAX: i32 = 10_080;

    /// A gym's settings: whether a booking needs a pass, how many minutes before the
    /// start a cancellation becomes late, and the gym's IANA zone (its weeks).
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a cut-off out of range.
    pub fn new(requires_pass: bool, cancel_cutoff_minutes: i32, zone: impl Into<String>) -> Result<Self> {
        if !(0..=Self::CANCEL_CUTOFF_MAX).contains(&cancel_cutoff_minutes) {
            return Err(DomainError::validation(format!(
                "cancel_cutoff_minutes must be between 0 and {}",
                Self::CANCEL_CUTOFF_MAX
            )));
        }
        Ok(Self { requires_pass, cancel_cutoff_minutes, zone: zone.into() })
    }

    /// Whether a booking needs a usable pass.
    pub fn requires_pass(&self) -> bool {
        self.requires_pass
    }

    /// Minutes before the start from which a cancellation is late.
    pub fn cancel_cutoff_minutes(&self) -> i32 {
        self.cancel_cutoff_minutes
    }

    /// Whether giving back a place in a session starting at `start` is a late cancel
    /// at `now`: from the cut-off before the start on, when the gym set a cut-off or
    /// the booking used a pass. A gym that set neither gives places back as it
    /// always did, at any time.
    pub fn is_late(&self, start: OffsetDateTime, now: OffsetDateTime, used_pass: bool) -> bool {
        (self.cancel_cutoff_minutes > 0 || used_pass)
            && now >= start - Duration::minutes(i64::from(self.cancel_cutoff_minutes))
    }

    /// What a booking of `member` in `session` asks of their passes.
    ///
    /// # Errors
    /// [`DomainError::Validation`] for a zone the tz database does not know.
    pub fn ask(&self, gym: GymId, member: UserId, session: SessionId, start: OffsetDateTime) -> Result<CreditAsk> {
        let zone = values::gym_zone(&self.zone)?;
        // A session the contract accepts (UTC years to 9999) may fall on 10000-01-01
        // on the gym's clock: it counts in the calendar's last week.
        let day = match values::local_date(&zone, start) {
            Err(DomainError::Validation(_)) => Date::MAX,
            day => day?,
        };
        let monday = day
            .checked_sub(Duration::days(i64::from(day.weekday().number_days_from_monday())))
            .ok_or_else(|| DomainError::validation("a session in the calendar's first week"))?;
        // The calendar's last week ends with it (9999-12-31 has no next Monday).
        let end = match monday.checked_add(Duration::days(7)) {
            Some(next) => values::instant_in(&zone, next, Time::MIDNIGHT)?,
            None => time::PrimitiveDateTime::MAX.assume_utc(),
        };
        let week = (values::instant_in(&zone, monday, Time::MIDNIGHT)?, end);
        Ok(CreditAsk { gym, member, session, start, week })
    }
}

/// The pass a booking uses among those read for it: usable at the session's start
/// (active, started, not frozen that day), its category allowed, a credit left, its
/// weekly limit not reached; an unlimited pass first, else the pack that expires
/// first (then the oldest).
///
/// # Errors
/// [`DomainError::WeeklyLimitReached`] when only weekly limits stand in the way;
/// [`DomainError::NoValidPass`] otherwise.
pub fn choose<'a>(read: impl IntoIterator<Item = &'a Usable>, start: OffsetDateTime) -> Result<&'a Pass> {
    let mut limited = false;
    let mut best: Option<&Pass> = None;
    for u in read {
        let p = &u.pass;
        let allowed = match (&p.categories, &u.category) {
            (None, _) => true,
            (Some(cats), Some(c)) => {
                let c = c.trim().to_lowercase();
                cats.iter().any(|k| k.trim().to_lowercase() == c)
            }
            (Some(_), None) => false,
        };
        if p.starts_at > start || p.status(start) != PassStatus::Active || !allowed || p.credits_left == Some(0) {
            continue;
        }
        if p.weekly_limit.is_some_and(|limit| u.week_uses >= i64::from(limit)) {
            limited = true;
            continue;
        }
        let rank = |q: &Pass| (q.kind != PlanKind::Unlimited, q.expires_at, q.id);
        if best.is_none_or(|b| rank(p) < rank(b)) {
            best = Some(p);
        }
    }
    best.ok_or(if limited { DomainError::WeeklyLimitReached } else { DomainError::NoValidPass })
}

/// The credit moves of bookings, over the pass storage.
#[derive(Clone)]
pub struct Credits {
    passes: Arc<dyn PassRepository>,
}

impl std::fmt::Debug for Credits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credits").finish_non_exhaustive()
    }
}

impl Credits {
    /// Over the pass storage.
    pub fn new(passes: Arc<dyn PassRepository>) -> Self {
        Self { passes }
    }

    /// The pass the member's booking of `session` would use, chosen under the
    /// member's passes' locks (lock order 4: called with the session locked).
    ///
    /// # Errors
    /// As [`choose`]; storage failures.
    pub async fn pass_for(
        &self,
        tx: &mut Tx,
        rules: &CreditRules,
        (gym, session, start): (GymId, SessionId, OffsetDateTime),
        member: UserId,
    ) -> Result<Pass> {
        let ask = rules.ask(gym, member, session, start)?;
        let read = self.passes.lock_usable(tx, std::slice::from_ref(&ask), &[]).await?;
        choose(&read, start).cloned()
    }

    /// The usable passes of several bookings at once (a batch of check-ins, a
    /// waitlist), locked in one go with the passes `also` (lock order 4, ascending).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn read(&self, tx: &mut Tx, asks: &[CreditAsk], also: &[(GymId, i64)]) -> Result<Vec<Usable>> {
        if asks.is_empty() {
            return Ok(Vec::new());
        }
        self.passes.lock_usable(tx, asks, also).await
    }

    /// The passes the session's places were booked with, and their members (called
    /// with the session locked).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn used_in(&self, tx: &mut Tx, gym: GymId, session: SessionId) -> Result<Vec<(i64, UserId)>> {
        self.passes.passes_used_in(tx, gym, session).await
    }

    /// Takes each booking's credit from its pass (a pack's `use` entry; an unlimited
    /// pass keeps no ledger), for the member's current booking of the session, with
    /// the user who caused it, and records `credit_used`. The participations must
    /// already name the passes; the passes are locked by the caller.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn take(
        &self,
        tx: &mut Tx,
        uses: &[(Pass, SessionId, Option<UserId>)],
        cause: Cause,
        now: OffsetDateTime,
    ) -> Result<()> {
        let rows: Vec<BookingEntry> = uses
            .iter()
            .filter(|(p, _, _)| p.kind == PlanKind::Pack)
            .map(|(p, session, actor)| BookingEntry {
                gym: p.gym_id,
                pass: p.id,
                session: *session,
                member: p.member_id,
                entry: entry(EntryKind::Use, -1, cause, *actor, now),
            })
            .collect();
        if !rows.is_empty() {
            // Every pack has a chain and every booking its row: an entry missing is a
            // credit not taken, never to be committed.
            let appended = self.passes.append_for_bookings(tx, &rows).await?;
            if appended.len() != rows.len() {
                return Err(DomainError::internal(format!(
                    "{} of {} bookings' credits were not taken",
                    rows.len() - appended.len(),
                    rows.len()
                )));
            }
        }
        for (p, session, _) in uses {
            tx.record(DomainEvent::CreditUsed { gym: p.gym_id, pass: p.id, member: p.member_id, session: *session });
        }
        Ok(())
    }

    /// Settles the credits of bookings given up, each `(gym, pass, session, member)`,
    /// one per pass (a session's bookings: one member each), each `(gym, pass, session, member)`,
    /// one per pass (a session's bookings: one member each): a refund, or a forfeit
    /// (a late cancel: the gym keeps it). Takes the passes' locks (order 4). A
    /// booking of an unlimited pass moves nothing.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn settle(
        &self,
        tx: &mut Tx,
        bookings: &[(GymId, i64, SessionId, UserId)],
        kind: EntryKind,
        cause: Cause,
        actor: Option<UserId>,
        now: OffsetDateTime,
    ) -> Result<()> {
        if bookings.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<(GymId, i64)> = bookings.iter().map(|(g, p, _, _)| (*g, *p)).collect();
        keys.sort_unstable();
        keys.dedup();
        self.passes.lock_passes(tx, &keys).await?;
        let credits = if kind == EntryKind::Refund { 1 } else { 0 };
        let rows: Vec<BookingEntry> = bookings
            .iter()
            .map(|(gym, pass, session, member)| BookingEntry {
                gym: *gym,
                pass: *pass,
                session: *session,
                member: *member,
                entry: entry(kind, credits, cause, actor, now),
            })
            .collect();
        // Unlimited passes keep no ledger: only packs get an entry.
        let appended = self.passes.append_for_bookings(tx, &rows).await?;
        if kind == EntryKind::Refund {
            for row in rows.iter().filter(|r| appended.contains(&(r.gym, r.pass))) {
                tx.record(DomainEvent::CreditRefunded {
                    gym: row.gym,
                    pass: row.pass,
                    member: row.member,
                    session: row.session,
                });
            }
        }
        Ok(())
    }
}

/// A booking's movement (its participation is the storage's to fill in).
fn entry(kind: EntryKind, credits: i32, cause: Cause, actor: Option<UserId>, at: OffsetDateTime) -> NewEntry {
    NewEntry { kind, credits, participation_id: None, reason: None, actor_id: actor, cause, at }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const START: OffsetDateTime = datetime!(2026-03-12 18:00 UTC);

    fn pass(id: i64, kind: PlanKind, left: Option<i32>, expires: OffsetDateTime) -> Pass {
        Pass {
            id,
            gym_id: GymId(1),
            member_id: UserId(7),
            plan_id: 1,
            kind,
            credits_total: left,
            credits_left: left,
            starts_at: datetime!(2026-03-01 0:00 UTC),
            expires_at: expires,
            cancelled_at: None,
            frozen: None,
            created_at: datetime!(2026-03-01 0:00 UTC),
            weekly_limit: None,
            categories: None,
        }
    }

    fn usable(p: Pass) -> Usable {
        Usable { ask: 0, pass: p, week_uses: 0, category: Some("Yoga".into()) }
    }

    #[test]
    fn an_unlimited_pass_goes_first_then_the_pack_that_expires_first() {
        let late = pass(1, PlanKind::Pack, Some(3), datetime!(2026-05-01 0:00 UTC));
        let soon = pass(2, PlanKind::Pack, Some(1), datetime!(2026-04-01 0:00 UTC));
        let unlimited = pass(3, PlanKind::Unlimited, None, datetime!(2026-06-01 0:00 UTC));
        let read = vec![usable(late.clone()), usable(soon.clone())];
        assert_eq!(choose(&read, START).map(|p| p.id), Ok(2));
        let read = vec![usable(late), usable(soon), usable(unlimited)];
        assert_eq!(choose(&read, START).map(|p| p.id), Ok(3));
    }

    #[test]
    fn an_empty_frozen_expired_or_unstarted_pass_or_another_category_is_no_valid_pass() {
        let base = || pass(1, PlanKind::Pack, Some(2), datetime!(2026-04-01 0:00 UTC));
        let empty = Pass { credits_left: Some(0), ..base() };
        let frozen = Pass { frozen: Some((datetime!(2026-03-12 0:00 UTC), datetime!(2026-03-13 0:00 UTC))), ..base() };
        let expired = Pass { expires_at: START, ..base() };
        let unstarted = Pass { starts_at: datetime!(2026-03-13 0:00 UTC), ..base() };
        let cancelled = Pass { cancelled_at: Some(datetime!(2026-03-02 0:00 UTC)), ..base() };
        let boxing = Pass { categories: Some(vec!["boxing".into()]), ..base() };
        for p in [empty, frozen, expired, unstarted, cancelled, boxing] {
            assert_eq!(choose(&[usable(p.clone())], START), Err(DomainError::NoValidPass), "{p:?}");
        }
        assert_eq!(choose(&[], START), Err(DomainError::NoValidPass));
        let yoga = Pass { categories: Some(vec![" yoga ".into()]), ..base() };
        assert_eq!(choose(&[usable(yoga)], START).map(|p| p.id), Ok(1), "categories match ignoring case");
        let swim = Pass { categories: Some(vec!["Natación".into()]), ..base() };
        let shouted = Usable { category: Some("NATACIÓN".into()), ..usable(swim) };
        assert_eq!(choose(&[shouted], START).map(|p| p.id), Ok(1), "beyond ASCII too");
        let uncategorised =
            Usable { category: None, ..usable(Pass { categories: Some(vec!["yoga".into()]), ..base() }) };
        assert_eq!(choose(&[uncategorised], START), Err(DomainError::NoValidPass));
    }

    #[test]
    fn a_weekly_limit_reached_is_its_own_refusal_unless_another_pass_serves() {
        let capped =
            Pass { weekly_limit: Some(2), ..pass(1, PlanKind::Unlimited, None, datetime!(2026-04-01 0:00 UTC)) };
        let at = |uses| Usable { week_uses: uses, ..usable(capped.clone()) };
        assert_eq!(choose(&[at(1)], START).map(|p| p.id), Ok(1));
        assert_eq!(choose(&[at(2)], START), Err(DomainError::WeeklyLimitReached));
        let pack = pass(2, PlanKind::Pack, Some(1), datetime!(2026-04-01 0:00 UTC));
        assert_eq!(choose(&[at(2), usable(pack)], START).map(|p| p.id), Ok(2));
    }

    #[test]
    fn a_week_runs_monday_to_monday_on_the_gyms_clock() {
        let rules = CreditRules::new(true, 0, "America/New_York").expect("rules");
        // Sunday 23:00 in New York is Monday 04:00 UTC: still the week before.
        let ask = rules.ask(GymId(1), UserId(1), SessionId(1), datetime!(2026-03-16 03:00 UTC)).expect("ask");
        assert_eq!(ask.week, (datetime!(2026-03-09 4:00 UTC), datetime!(2026-03-16 4:00 UTC)));
    }

    #[test]
    fn the_calendars_last_week_ends_with_it_in_any_zone() {
        for zone in ["UTC", "America/Los_Angeles", "Pacific/Kiritimati"] {
            let rules = CreditRules::new(true, 0, zone).expect("rules");
            for start in [datetime!(9999-12-28 10:00 UTC), datetime!(9999-12-31 20:00 UTC)] {
                let ask = rules.ask(GymId(1), UserId(1), SessionId(1), start);
                // Kiritimati (+14) is already in year 10000 at 9999-12-31 20:00 UTC: the last week still.
                let ask = ask.expect("a week");
                assert!(ask.week.0 <= start && start < ask.week.1, "{zone} {start}: {:?}", ask.week);
            }
        }
        let utc = CreditRules::new(true, 0, "UTC").expect("rules");
        let ask = utc.ask(GymId(1), UserId(1), SessionId(1), datetime!(9999-12-31 23:00 UTC)).expect("ask");
        assert_eq!(ask.week.0, datetime!(9999-12-27 0:00 UTC));
    }

    #[test]
    fn a_cancel_is_late_from_the_cutoff_or_from_the_start_for_a_booking_that_used_a_pass() {
        let none = CreditRules::new(false, 0, "UTC").expect("rules");
        assert!(!none.is_late(START, START + Duration::hours(1), false), "a gym that set nothing: never late");
        assert!(none.is_late(START, START, true));
        assert!(!none.is_late(START, START - Duration::seconds(1), true));
        let cutoff = CreditRules::new(false, 60, "UTC").expect("rules");
        assert!(cutoff.is_late(START, START - Duration::minutes(60), false));
        assert!(!cutoff.is_late(START, START - Duration::minutes(61), true));
        assert!(CreditRules::new(true, 10_081, "UTC").is_err());
        assert!(CreditRules::new(true, -1, "UTC").is_err());
    }
}
