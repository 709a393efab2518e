//! A member's calendar feed: their sessions of a gym, published at a URL that only
//! an unguessable token names, for calendar apps to poll.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::Result;
use crate::schedule::Session;
use crate::tx::{Tx, UnitOfWork};
use crate::values::{Actor, GymId, UserId};

/// Bytes of randomness in a token (its hex text is twice as long).
pub const TOKEN_BYTES: usize = 32;

/// One session of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// The session.
    pub session: Session,
    /// Its class's name (the event's summary).
    pub class_name: String,
    /// When the member's booking of it last changed (the event's stamp).
    pub changed_at: OffsetDateTime,
}

/// A member's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// The gym.
    pub gym_id: GymId,
    /// Its name (the calendar's).
    pub gym_name: String,
    /// Its IANA zone, the events' wall clock.
    pub timezone: String,
    /// The member's sessions: those they hold a place in that end after the feed's
    /// cut-off, and those of them the gym cancelled.
    pub entries: Vec<FeedEntry>,
}

/// Storage of feed tokens and the feed's read.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait CalendarRepository: Send + Sync {
    /// The member's token in the gym: the one stored, or `fresh` stored now if there
    /// was none. Two first uses at once store one token and both answer it.
    ///
    /// # Errors
    /// Storage failures; [`crate::DomainError::NotAMember`] for a member no more.
    async fn claim_token(
        &self,
        tx: &mut Tx,
        gym: GymId,
        member: UserId,
        fresh: &str,
        now: OffsetDateTime,
    ) -> Result<String>;
    /// Stores `token` as the member's, replacing any other (the old one stops working).
    ///
    /// # Errors
    /// Storage failures.
    async fn set_token(&self, tx: &mut Tx, gym: GymId, member: UserId, token: &str, now: OffsetDateTime) -> Result<()>;
    /// The feed a token of the gym names: the member's sessions ending after `after`
    /// that they are `registered` or `attended` in, and those the gym cancelled with
    /// their booking; `Ok(None)` for a token nobody there holds.
    ///
    /// # Errors
    /// Storage failures.
    async fn feed(&self, gym: GymId, token: &str, after: OffsetDateTime) -> Result<Option<Feed>>;
}

/// Use cases of the feed.
#[derive(Clone)]
pub struct CalendarService {
    repo: Arc<dyn CalendarRepository>,
    uow: UnitOfWork,
    clock: Arc<dyn Clock>,
}

/// A fresh token: [`TOKEN_BYTES`] from the thread's CSPRNG, as lowercase hex.
fn fresh_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl CalendarService {
    /// Wires the service to its ports.
    pub fn new(repo: Arc<dyn CalendarRepository>, uow: UnitOfWork, clock: Arc<dyn Clock>) -> Self {
        Self { repo, uow, clock }
    }

    /// The actor's token in their gym (`{gym}-{64 hex}`), made on first use.
    ///
    /// # Errors
    /// Storage failures; [`crate::DomainError::NotAMember`] if the membership went meanwhile.
    pub async fn token(&self, actor: &Actor) -> Result<String> {
        let mut tx = self.uow.begin().await?;
        let token =
            self.repo.claim_token(&mut tx, actor.gym_id, actor.user_id, &fresh_token(), self.clock.now()).await?;
        self.uow.commit(tx).await?;
        Ok(format!("{}-{token}", actor.gym_id))
    }

    /// Replaces the actor's token: the old URL stops answering.
    ///
    /// # Errors
    /// Storage failures; [`crate::DomainError::NotAMember`] if the membership went meanwhile.
    pub async fn rotate(&self, actor: &Actor) -> Result<String> {
        let mut tx = self.uow.begin().await?;
        let token = fresh_token();
        self.repo.set_token(&mut tx, actor.gym_id, actor.user_id, &token, self.clock.now()).await?;
        self.uow.commit(tx).await?;
        Ok(format!("{}-{token}", actor.gym_id))
    }

    /// The feed a token names, from a day ago on (an app polling in the evening
    /// still shows the morning's class); `Ok(None)` for a token nobody holds or not
    /// of the token's shape.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn feed(&self, token: &str) -> Result<Option<Feed>> {
        let Some((gym, secret)) = token.split_once('-') else { return Ok(None) };
        let gym = match gym.parse::<i64>() {
            Ok(id) if id > 0 && !gym.starts_with(['0', '+']) => GymId(id),
            _ => return Ok(None),
        };
        let shaped =
            secret.len() == TOKEN_BYTES * 2 && secret.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !shaped {
            return Ok(None);
        }
        self.repo.feed(gym, secret, self.clock.now() - time::Duration::days(1)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::mocks::untouched;
    use crate::values::Actor;
    use time::macros::datetime;

    fn svc(repo: MockCalendarRepository) -> CalendarService {
        CalendarService::new(Arc::new(repo), untouched(), Arc::new(FixedClock(datetime!(2026-01-02 00:00 UTC))))
    }

    fn member() -> Actor {
        Actor { user_id: UserId(5), gym_id: GymId(3), role: crate::values::Role::Member }
    }

    #[tokio::test]
    async fn a_token_is_claimed_once_and_named_with_its_gym() {
        let mut repo = MockCalendarRepository::new();
        // The one stored before wins over the fresh one offered.
        repo.expect_claim_token()
            .withf(|_, g, m, fresh, _| *g == GymId(3) && *m == UserId(5) && fresh.len() == TOKEN_BYTES * 2)
            .once()
            .returning(|_, _, _, _, _| Ok("ab".repeat(TOKEN_BYTES)));
        repo.expect_set_token().never();
        let uow = crate::mocks::committing(vec![]);
        let svc = CalendarService::new(Arc::new(repo), uow, Arc::new(FixedClock(datetime!(2026-01-02 00:00 UTC))));
        assert_eq!(svc.token(&member()).await, Ok(format!("3-{}", "ab".repeat(TOKEN_BYTES))));
    }

    #[tokio::test]
    async fn a_token_out_of_shape_never_reaches_storage() {
        let secret = "a".repeat(TOKEN_BYTES * 2);
        for junk in [
            String::new(),
            secret.clone(),
            format!("3{secret}"),
            format!("0-{secret}"),
            format!("03-{secret}"),
            format!("+3-{secret}"),
            format!("-3-{secret}"),
            format!("3-{}", secret.to_uppercase()),
            format!("3-{}", &secret[1..]),
            format!("3-{secret}a"),
            format!("99999999999999999999-{secret}"),
        ] {
            assert_eq!(svc(MockCalendarRepository::new()).feed(&junk).await, Ok(None), "{junk:?}");
        }
    }

    #[tokio::test]
    async fn a_token_is_looked_up_in_its_gym_from_a_day_ago() {
        let secret = "0123456789abcdef".repeat(4);
        let mut repo = MockCalendarRepository::new();
        let expected = secret.clone();
        repo.expect_feed()
            .withf(move |g, t, after| *g == GymId(3) && t == expected && *after == datetime!(2026-01-01 00:00 UTC))
            .once()
            .returning(|_, _, _| Ok(None));
        assert_eq!(svc(repo).feed(&format!("3-{secret}")).await, Ok(None));
        assert_eq!(fresh_token().len(), TOKEN_BYTES * 2);
        assert_ne!(fresh_token(), fresh_token());
    }
}
