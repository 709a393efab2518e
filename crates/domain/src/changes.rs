//! The replayable change feed: a gym's facts in commit order, each numbered by the
//! outbox's per-gym sequence, so an integrator that was away resumes from the last
//! number it saw instead of reconciling by hand.
//!
//! Numbers are given after commit (the relay's sequencer, within about a second), in
//! the order facts are found committed, so a number handed out is never followed by
//! a smaller one: a reader that saw number `n` misses nothing by asking for what
//! comes after `n`. Delivered facts are purged after `OUTBOX_RETENTION_HOURS`; a
//! cursor whose next fact is gone is refused ([`DomainError::CursorExpired`]) rather
//! than silently skipped.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::{DomainError, Result};
use crate::values::{Actor, GymId, Page};

/// One fact of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its number in the gym's feed (1, 2, 3, … with no gaps).
    pub seq: i64,
    /// Its id in the outbox: stable, and the id webhooks deliver it under.
    pub id: i64,
    /// Its type (`booked`, `checked_in`, …).
    pub kind: String,
    /// Its payload, a JSON object of ids.
    pub data: String,
    /// When it was committed.
    pub created_at: OffsetDateTime,
}

/// A page of the feed and the cursor to ask with next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePage {
    /// The facts after the cursor, in order.
    pub changes: Vec<Change>,
    /// The number of the last fact given (the cursor asked with, when none).
    pub next: i64,
}

/// Which copy of the feed a read may use.
#[derive(Debug, Clone, Copy)]
enum Copy {
    /// The latest commit: a live stream checks its reads against the gym's head.
    Latest,
    /// One that may lag a little: a cursor's pull.
    Recent,
}

/// The outbox as a feed.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ChangeRepository: Send + Sync {
    /// The gym's numbered facts after `after`, in order, at most `limit`.
    ///
    /// # Errors
    /// Storage failures.
    async fn changes(&self, gym: GymId, after: i64, limit: u64) -> Result<Vec<Change>>;

    /// As [`ChangeRepository::changes`], from a copy that may lag the latest commit
    /// by a few seconds (a read replica): for pulls that resume from a cursor, which
    /// a lagging copy only makes return less. A live stream compares what it reads
    /// with the gym's head and reads [`ChangeRepository::changes`].
    ///
    /// # Errors
    /// Storage failures.
    async fn recent_changes(&self, gym: GymId, after: i64, limit: u64) -> Result<Vec<Change>>;

    /// The number of the gym's last numbered fact (`0` before any).
    ///
    /// # Errors
    /// Storage failures.
    async fn head(&self, gym: GymId) -> Result<i64>;
}

/// The public name of a fact's type, as live streams and webhooks deliver it; `None`
/// for facts kept for the change feed alone.
pub fn public_type(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "checked_in" => "checkin.succeeded",
        "checkin_refused" => "checkin.refused",
        "booked" => "registration.created",
        "booking_cancelled" => "registration.cancelled",
        "waitlist_promoted" => "waitlist.promoted",
        "session_cancelled" => "session.cancelled",
        "pass_granted" => "pass.granted",
        "pass_expired" => "pass.expired",
        "credit_used" => "credit.used",
        "credit_refunded" => "credit.refunded",
        _ => return None,
    })
}

/// The types the live attendance stream carries.
pub const ATTENDANCE_TYPES: [&str; 2] = ["checkin.succeeded", "checkin.refused"];

/// The change feed.
#[derive(Clone)]
pub struct ChangeFeed {
    repo: Arc<dyn ChangeRepository>,
}

impl ChangeFeed {
    /// Wires the feed.
    pub fn new(repo: Arc<dyn ChangeRepository>) -> Self {
        Self { repo }
    }

    /// The gym's facts after the cursor (admin); `0` starts from the oldest kept.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below admin; [`DomainError::Validation`] for a
    /// negative cursor; [`DomainError::CursorExpired`] when the fact after the cursor
    /// was purged; storage failures.
    pub async fn after(&self, actor: &Actor, after: i64, page: Page) -> Result<ChangePage> {
        actor.require(crate::policy::READ_CHANGES)?;
        let mut read = self.page(actor.gym_id, after, page.limit, Copy::Recent).await?;
        // A number the feed never gave: `next` goes back to the gym's last fact, so a
        // client that keeps it skips nothing (the head is the primary's, which a
        // replica's copy never passes: a cursor the feed gave is never moved).
        if read.changes.is_empty() && after > 0 {
            let head = self.repo.head(actor.gym_id).await?;
            read.next = read.next.min(head);
        }
        Ok(read)
    }

    /// Where a live stream of the gym starts (staff): after `last_seen` (a
    /// reconnecting screen's `Last-Event-ID`), checked like a cursor of the feed, or
    /// after the gym's last fact.
    ///
    /// # Errors
    /// [`DomainError::Forbidden`] below staff; as [`ChangeFeed::after`] for the cursor.
    pub async fn live_from(&self, actor: &Actor, last_seen: Option<i64>) -> Result<i64> {
        actor.require(crate::policy::WATCH_ATTENDANCE)?;
        let head = self.repo.head(actor.gym_id).await?;
        match last_seen {
            None => Ok(head),
            // A number the feed never gave would hide every fact up to it.
            Some(after) if after > head => Err(DomainError::validation("Last-Event-ID is past the gym's last fact")),
            // The fact after it must still be kept: one page of a single fact tells
            // (nothing at all after a cursor behind the head: purged too).
            Some(after) => match self.page(actor.gym_id, after, 1, Copy::Latest).await? {
                page if page.changes.is_empty() && after < head && after > 0 => Err(DomainError::CursorExpired),
                _ => Ok(after),
            },
        }
    }

    /// The next facts of a live stream after `after`, of the types it carries, and
    /// the cursor past everything read (also past facts it does not carry). The
    /// stream's start was checked by [`ChangeFeed::live_from`].
    ///
    /// # Errors
    /// As [`ChangeFeed::after`].
    pub async fn live(&self, gym: GymId, after: i64, limit: u64) -> Result<ChangePage> {
        let mut page = self.page(gym, after, limit, Copy::Latest).await?;
        page.changes.retain(|c| public_type(&c.kind).is_some_and(|t| ATTENDANCE_TYPES.contains(&t)));
        Ok(page)
    }

    async fn page(&self, gym: GymId, after: i64, limit: u64, copy: Copy) -> Result<ChangePage> {
        if after < 0 {
            return Err(DomainError::validation("after must be 0 or a number the feed gave"));
        }
        let rows = match copy {
            Copy::Latest => self.repo.changes(gym, after, limit).await?,
            Copy::Recent => self.repo.recent_changes(gym, after, limit).await?,
        };
        let mut changes = Vec::with_capacity(rows.len());
        let mut last = after;
        for change in rows {
            // A number missing after the cursor was purged: never skipped in silence.
            // From 0 the feed starts at whatever is kept.
            let first_from_start = after == 0 && changes.is_empty();
            if change.seq != last + 1 && !first_from_start {
                if changes.is_empty() {
                    return Err(DomainError::CursorExpired);
                }
                break;
            }
            last = change.seq;
            changes.push(change);
        }
        Ok(ChangePage { changes, next: last })
    }
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::{Role, UserId};
    use time::macros::datetime;

    fn change(seq: i64) -> Change {
        Change {
            seq,
            id: seq * 10,
            kind: "booked".into(),
            data: "{}".into(),
            created_at: datetime!(2026-01-10 10:00 UTC),
        }
    }

    fn feed(rows: Vec<i64>) -> ChangeFeed {
        let mut repo = MockChangeRepository::new();
        repo.expect_recent_changes().returning(move |_, _, _| Ok(rows.iter().copied().map(change).collect()));
        // The gym's last fact is number 9.
        repo.expect_head().returning(|_| Ok(9));
        ChangeFeed::new(Arc::new(repo))
    }

    fn admin(role: Role) -> Actor {
        Actor { user_id: UserId(1), gym_id: GymId(2), role }
    }

    #[tokio::test]
    async fn a_page_follows_the_cursor_and_stops_at_a_gap() {
        let got = feed(vec![4, 5, 7]).after(&admin(Role::Admin), 3, Page::default()).await.expect("page");
        assert_eq!((got.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), got.next), (vec![4, 5], 5));
        let got = feed(vec![]).after(&admin(Role::Admin), 9, Page::default()).await.expect("page");
        assert_eq!((got.changes.len(), got.next), (0, 9), "nothing new: the same cursor");
        let past = feed(vec![]).after(&admin(Role::Admin), 12, Page::default()).await.expect("page");
        assert_eq!((past.changes.len(), past.next), (0, 9), "a number the feed never gave: back to the last fact");
    }

    #[tokio::test]
    async fn a_cursor_whose_next_fact_was_purged_is_refused_but_zero_starts_at_the_oldest() {
        assert_eq!(
            feed(vec![7, 8]).after(&admin(Role::Owner), 3, Page::default()).await,
            Err(DomainError::CursorExpired)
        );
        let got = feed(vec![7, 8]).after(&admin(Role::Owner), 0, Page::default()).await.expect("page");
        assert_eq!(got.next, 8);
    }

    #[tokio::test]
    async fn only_admins_read_the_feed_and_cursors_are_not_negative() {
        let none = ChangeFeed::new(Arc::new(MockChangeRepository::new()));
        assert_eq!(none.after(&admin(Role::Trainer), 0, Page::default()).await, Err(DomainError::Forbidden));
        assert!(matches!(none.after(&admin(Role::Admin), -1, Page::default()).await, Err(DomainError::Validation(_))));
    }

    #[tokio::test]
    async fn a_live_stream_starts_at_the_head_or_at_a_kept_cursor_and_carries_attendance_alone() {
        let mut repo = MockChangeRepository::new();
        repo.expect_head().returning(|_| Ok(41));
        repo.expect_changes().returning(|_, after, _| {
            let kinds = ["booked", "checked_in", "gym_changed", "checkin_refused"];
            Ok((after + 1..=after + 4).zip(kinds).map(|(seq, k)| Change { kind: k.into(), ..change(seq) }).collect())
        });
        let feed = ChangeFeed::new(Arc::new(repo));
        assert_eq!(feed.live_from(&admin(Role::Trainer), None).await, Ok(41));
        assert_eq!(feed.live_from(&admin(Role::Trainer), Some(7)).await, Ok(7));
        assert_eq!(feed.live_from(&admin(Role::Member), None).await, Err(DomainError::Forbidden));
        let page = feed.live(GymId(2), 7, 100).await.expect("page");
        assert_eq!(
            (page.changes.iter().map(|c| (c.seq, c.kind.as_str())).collect::<Vec<_>>(), page.next),
            (vec![(9, "checked_in"), (11, "checkin_refused")], 11),
            "other facts are passed over, never read again"
        );
    }

    #[tokio::test]
    async fn a_live_stream_resumed_from_a_purged_cursor_is_refused() {
        let mut repo = MockChangeRepository::new();
        repo.expect_head().returning(|_| Ok(9));
        repo.expect_changes().returning(|_, _, _| Ok(vec![change(9)]));
        let feed = ChangeFeed::new(Arc::new(repo));
        assert_eq!(feed.live_from(&admin(Role::Trainer), Some(3)).await, Err(DomainError::CursorExpired));
        assert!(
            matches!(feed.live_from(&admin(Role::Trainer), Some(10)).await, Err(DomainError::Validation(_))),
            "past the head"
        );
        let mut repo = MockChangeRepository::new();
        repo.expect_head().returning(|_| Ok(9));
        repo.expect_changes().returning(|_, _, _| Ok(vec![]));
        let all_gone = ChangeFeed::new(Arc::new(repo));
        assert_eq!(
            all_gone.live_from(&admin(Role::Trainer), Some(3)).await,
            Err(DomainError::CursorExpired),
            "everything after it purged"
        );
        assert_eq!(all_gone.live_from(&admin(Role::Trainer), Some(9)).await, Ok(9), "at the head: nothing missed");
    }
}
