//! A member's place in a gym, and the member's lock: the one lock every write to a
//! member's places takes (a booking, a cancellation, a check-in) and so does their
//! removal. Its own module, below both the gyms and the schedule, which both need it.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::Result;
use crate::tx::Tx;
use crate::values::{GymId, Role, UserId};

/// A user's place in a gym.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// The member.
    pub user_id: UserId,
    /// The gym.
    pub gym_id: GymId,
    /// Their role there.
    pub role: Role,
    /// When they joined.
    pub joined_at: OffsetDateTime,
}

/// The member's lock.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait MemberLock: Send + Sync {
    /// Locks the user's membership row for the rest of the transaction (lock order
    /// 2, see [`crate::tx`]) and reads it; `Ok(None)` when not a member. Every write
    /// to a member's places holds this lock, and so does the removal of the member
    /// (which deletes the row): a booking or check-in lands wholly before a removal,
    /// or finds no membership after it.
    ///
    /// # Errors
    /// Storage failures.
    async fn lock_member(&self, tx: &mut Tx, gym: GymId, user: UserId) -> Result<Option<Membership>>;

    /// [`MemberLock::lock_member`] for many members at once, in the order of `keys`
    /// (sorted by the caller, so two batches never wait on each other in a circle),
    /// in one round trip where the adapter can; answers the memberships that exist.
    ///
    /// # Errors
    /// Storage failures.
    async fn lock_members(&self, tx: &mut Tx, keys: &[(GymId, UserId)]) -> Result<Vec<Membership>>;
}
