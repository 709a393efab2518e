//! What happened: the facts every write of the domain's services yields, and their
//! dispatch to listeners.
//!
//! Services state *what* changed (a member checked in, a booking was taken or
//! freed, a session was cancelled, a role changed) and nothing of who cares.
//! Whatever must follow a change — dropping cached reads today; webhooks, live
//! occupancy or an audit trail later — is a [`Listener`], added with one line where
//! the app is wired ([`Dispatcher::with`]).
//!
//! Listeners run after the write has committed, in the request that made it; a
//! listener that must never lose a fact (a webhook outbox) records it from the
//! repository's write transaction instead, from the same [`DomainEvent`] values
//! (see `docs/architecture.md`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::values::{ClassId, EventId, GymId, SessionId, UserId};

/// One fact of the gym's life, with the ids that matter to whoever reacts to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    /// A gym was created; `owner` is its first member.
    GymCreated {
        /// The new gym.
        gym: GymId,
        /// Its owner.
        owner: UserId,
    },
    /// A user joined a gym or their role there changed.
    MembershipChanged {
        /// The gym.
        gym: GymId,
        /// The member.
        user: UserId,
    },
    /// A member left (or was removed from) a gym, giving back their places ahead.
    MemberLeft {
        /// The gym.
        gym: GymId,
        /// The former member.
        user: UserId,
        /// Sessions whose places were freed.
        freed_sessions: Vec<SessionId>,
    },
    /// A user's profile changed.
    ProfileChanged {
        /// The user.
        user: UserId,
    },
    /// A class was created, changed or deleted.
    ClassChanged {
        /// The gym.
        gym: GymId,
        /// The class.
        class: ClassId,
    },
    /// A session was scheduled.
    SessionScheduled {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
    },
    /// A session was cancelled.
    SessionCancelled {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
    },
    /// A member took a place in a session.
    Booked {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
        /// The member.
        member: UserId,
    },
    /// A member gave their place back.
    BookingCancelled {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
        /// The member.
        member: UserId,
    },
    /// A member was checked in at the front desk.
    CheckedIn {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
        /// The member.
        member: UserId,
        /// A walk-in: the participation was created (and took a place).
        walk_in: bool,
    },
    /// A gym event was created, changed or deleted.
    EventChanged {
        /// The gym.
        gym: GymId,
        /// The event.
        event: EventId,
    },
    /// A user's QR code was replaced.
    QrRotated {
        /// The user.
        user: UserId,
    },
}

/// Reacts to facts. Listeners must not fail the write that is already done: they
/// log and count their own failures.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Listener: Send + Sync {
    /// Called once per fact, after the write committed.
    async fn on(&self, event: &DomainEvent);
}

/// Hands every fact to every listener, in the order they were added.
#[derive(Clone, Default)]
pub struct Dispatcher {
    listeners: Vec<Arc<dyn Listener>>,
}

impl Dispatcher {
    /// A dispatcher with no listener (facts go nowhere).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a listener.
    #[must_use]
    pub fn with(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Tells every listener.
    pub async fn publish(&self, event: DomainEvent) {
        for listener in &self.listeners {
            listener.on(&event).await;
        }
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("listeners", &self.listeners.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_hears_every_fact_in_order() {
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Tape(Arc<std::sync::Mutex<Vec<(u8, DomainEvent)>>>, u8);
        #[async_trait]
        impl Listener for Tape {
            async fn on(&self, event: &DomainEvent) {
                if let Ok(mut h) = self.0.lock() {
                    h.push((self.1, event.clone()));
                }
            }
        }
        let d = Dispatcher::new().with(Arc::new(Tape(heard.clone(), 1))).with(Arc::new(Tape(heard.clone(), 2)));
        let e = DomainEvent::QrRotated { user: UserId(7) };
        d.publish(e.clone()).await;
        assert_eq!(*heard.lock().expect("lock"), vec![(1, e.clone()), (2, e)]);
    }
}
