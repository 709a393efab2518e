//! What the HTTP layer caches, and the one place that says what each fact of the
//! domain invalidates. The domain publishes facts ([`domain::facts`]); this
//! listener turns them into versioned-group invalidations (see [`domain::cache`]).
//!
//! Every key carries its gym (or, for a user's own entries, its user) in braces: a
//! Redis Cluster hash tag, so that one gym's keys share a slot and what one fact
//! invalidates in a gym is one pipeline on one node.

use std::sync::Arc;

use async_trait::async_trait;
use domain::cache::Cache;
use domain::facts::{Delivery, DomainEvent, Listener};
use domain::{GymId, SessionId, UserId};

/// Active classes of a gym (one field per page).
pub fn classes(gym: GymId) -> String {
    format!("gym:{{{}}}:classes", gym.0)
}
/// Sessions of a gym (one field per date range and page): a list shows each
/// session's status and `registered_count`.
pub fn sessions(gym: GymId) -> String {
    format!("gym:{{{}}}:sessions", gym.0)
}
/// One session of a gym.
pub fn session(gym: GymId, session_id: SessionId) -> String {
    format!("gym:{{{}}}:session:{session_id}", gym.0)
}
/// A member's last attendance in a gym.
pub fn last_attendance(user: UserId, gym: GymId) -> String {
    format!("gym:{{{}}}:last_attendance:{}", gym.0, user.0)
}
/// Every member's dashboard summary in a gym (one field per member): a dashboard
/// shows sessions with their status and `registered_count`, so any booking,
/// cancellation or check-in in the gym invalidates the whole group at once.
pub fn dashboards(gym: GymId) -> String {
    format!("gym:{{{}}}:dashboards", gym.0)
}
/// The field of one member's summary in [`dashboards`].
pub fn dashboard_field(user: UserId) -> String {
    user.0.to_string()
}
/// A user's profile.
pub fn user(user: UserId) -> String {
    format!("user:{{{}}}", user.0)
}
/// A gym's events (one field per date range and page).
pub fn events(gym: GymId) -> String {
    format!("gym:{{{}}}:events", gym.0)
}
/// Every membership of a user (gym and role), in one plain entry: a user has a
/// handful of gyms, and a made-up `X-Gym-ID` is answered from it without a key.
pub fn memberships(user: UserId) -> String {
    format!("auth:memberships:{{{}}}", user.0)
}

/// What a fact makes stale: versioned groups of cached reads, and plain entries.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stale {
    /// Groups to move to a new version.
    pub groups: Vec<String>,
    /// Plain entries to delete.
    pub entries: Vec<String>,
}

/// The one mapping from facts to cached reads. A new cached read adds its key here,
/// under every fact that changes what it shows.
pub fn stale(event: &DomainEvent) -> Stale {
    use DomainEvent as E;
    let groups = |g: Vec<String>| Stale { groups: g, entries: vec![] };
    match event {
        E::GymCreated { owner: user, .. } | E::MembershipChanged { user, .. } => {
            Stale { groups: vec![], entries: vec![memberships(*user)] }
        }
        E::MemberLeft { gym, user, freed_sessions } => {
            let mut g: Vec<String> = freed_sessions.iter().map(|s| session(*gym, *s)).collect();
            if !freed_sessions.is_empty() {
                g.push(dashboards(*gym));
                g.push(sessions(*gym));
            }
            Stale { groups: g, entries: vec![memberships(*user)] }
        }
        E::ProfileChanged { user: u } => groups(vec![user(*u)]),
        E::ClassChanged { gym, .. } => groups(vec![classes(*gym)]),
        E::SessionScheduled { gym, .. } | E::SeriesScheduled { gym, .. } => groups(vec![sessions(*gym)]),
        E::SeriesStopped { gym, removed, .. } => {
            let mut g: Vec<String> = removed.iter().map(|s| session(*gym, *s)).collect();
            g.push(sessions(*gym));
            groups(g)
        }
        // The lists read with `tz=gym` follow the gym's zone.
        E::GymChanged { gym } => groups(vec![sessions(*gym), events(*gym)]),
        // Nothing cached shows a waitlist (a queue changes no count, and a dashboard
        // lists registrations).
        // A refusal changes nothing anybody reads from the cache.
        // Passes are read from the database, never from the cache.
        E::QrRotated { .. }
        | E::WaitlistJoined { .. }
        | E::WaitlistLeft { .. }
        | E::CheckInRefused { .. }
        | E::WaitlistSkipped { .. }
        | E::PassGranted { .. }
        | E::PassExpired { .. }
        | E::CreditUsed { .. }
        | E::CreditRefunded { .. } => Stale::default(),
        E::SessionCancelled { gym, session: s, .. }
        | E::WaitlistPromoted { gym, session: s, .. }
        | E::Booked { gym, session: s, .. }
        | E::BookingCancelled { gym, session: s, .. } => {
            groups(vec![session(*gym, *s), dashboards(*gym), sessions(*gym)])
        }
        E::CheckedIn { gym, session: s, member, .. } => {
            groups(vec![last_attendance(*member, *gym), dashboards(*gym), session(*gym, *s), sessions(*gym)])
        }
        E::EventChanged { gym, .. } => groups(vec![events(*gym)]),
        // The session's participants show the new status; no count or dashboard
        // changes (the session is over, its places were taken).
        E::NoShows { gym, session: s, .. } => groups(vec![session(*gym, *s)]),
    }
}

/// The listener that keeps cached reads fresh.
pub struct CacheInvalidation {
    cache: Arc<dyn Cache>,
}

impl CacheInvalidation {
    /// Invalidates in this cache.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache }
    }
}

#[async_trait]
impl Listener for CacheInvalidation {
    async fn on(&self, event: &DomainEvent) -> Delivery {
        self.on_many(std::slice::from_ref(event)).await
    }

    /// What all the facts make stale, each group and entry once, in one pipeline each.
    async fn on_many(&self, events: &[DomainEvent]) -> Delivery {
        let mut groups: Vec<String> = Vec::new();
        let mut entries: Vec<String> = Vec::new();
        for event in events {
            let stale = stale(event);
            for g in stale.groups {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
            for e in stale.entries {
                if !entries.contains(&e) {
                    entries.push(e);
                }
            }
        }
        let invalidated = groups.is_empty() || self.cache.invalidate(&groups).await;
        let deleted = entries.is_empty() || self.cache.delete(&entries).await;
        // Not both done (Redis unreachable): the relay delivers the facts again, so a
        // value cached before the write is never served until the TTL.
        if invalidated && deleted { Delivery::Done } else { Delivery::Retry }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: GymId = GymId(3);
    const U: UserId = UserId(9);
    const S: SessionId = SessionId(5);

    #[test]
    fn each_fact_invalidates_what_shows_it() {
        use DomainEvent as E;
        let booked = E::Booked { gym: G, session: S, member: U };
        assert_eq!(stale(&booked).groups, [session(G, S), dashboards(G), sessions(G)]);
        let cancelled = E::SessionCancelled { gym: G, session: S, members: vec![U] };
        assert!(stale(&cancelled).groups.contains(&dashboards(G)), "cancelled sessions leave dashboards");
        let checked = E::CheckedIn { gym: G, session: S, member: U, walk_in: true };
        assert_eq!(stale(&checked).groups, [last_attendance(U, G), dashboards(G), session(G, S), sessions(G)]);
        assert_eq!(stale(&E::SessionScheduled { gym: G, session: S }).groups, [sessions(G)], "a new session is listed");
        assert_eq!(stale(&E::MembershipChanged { gym: G, user: U }).entries, [memberships(U)]);
        assert_eq!(stale(&E::GymCreated { gym: G, owner: U }).entries, [memberships(U)]);
        let left = E::MemberLeft { gym: G, user: U, freed_sessions: vec![S] };
        let freed = vec![session(G, S), dashboards(G), sessions(G)];
        assert_eq!(stale(&left), Stale { groups: freed, entries: vec![memberships(U)] });
        assert_eq!(stale(&E::ProfileChanged { user: U }).groups, [user(U)]);
        assert_eq!(stale(&E::ClassChanged { gym: G, class: domain::ClassId(1) }).groups, [classes(G)]);
        assert_eq!(stale(&E::EventChanged { gym: G, event: domain::EventId(1) }).groups, [events(G)]);
        assert_eq!(stale(&E::QrRotated { user: U }), Stale::default(), "QR codes are not cached");
    }
}
