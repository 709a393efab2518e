//! The unit of work: write transactions the services own.
//!
//! A service begins a [`Tx`] from the [`Database`], hands it to every repository
//! method of its use case, records the facts the change yields
//! ([`Tx::record`]), and commits ([`Database::commit`]): the change and its facts
//! are one atomic write (the facts go to the outbox, see [`crate::facts`]). A `Tx`
//! dropped without a commit rolls back, so every `?` on the way is a rollback.
//!
//! Repository methods that lock rows say so in their port's docs. Locks are taken in
//! one global order, so no two transactions ever wait on each other in a circle:
//!
//! 0. the caller's idempotency keys (a request that sent one: the adapter claims
//!    them as the transaction's first statement, several in ascending order);
//! 1. the gym row (changes of membership: the last-owner rule; a change of the gym's
//!    settings; a webhook's registration: the gym's limit of endpoints);
//! 2. members' membership rows (booking, cancelling, check-in, removal), several at
//!    once by ascending `(gym, user)` (a batch of check-ins);
//! 3. session rows, by ascending `(gym, id)`;
//! 4. pass rows (an adjustment, a freeze, an end or an expiry of a pass; the
//!    credits of a booking, a promotion, a walk-in, a refund or a forfeit, after the
//!    sessions'), by ascending `(gym, id)`, every pass a step needs taken by one
//!    statement (`PassRepository::lock_usable`, `lock_passes`): a freed place locks
//!    the passes of its whole waitlist with the one given back, a batch of check-ins
//!    those of all its walk-ins, a session's cancellation those of all its places;
//! 5. participation rows (a session's cancellation, and a promotion from its
//!    waitlist, change participations under the session's lock alone, taking no
//!    member's: a check-in marks a participation only while it is in the status the
//!    check-in was decided on, so the two agree in either order);
//! 6. the gym's outbox head (the relay's sequencer, last of all).
//!
//! The webhook engine's transactions take one lock alone: the endpoint's row, while
//! it turns facts into deliveries.
//!
//! On SQLite the database's one writer orders every write transaction instead.

use std::any::Any;

use async_trait::async_trait;

use crate::error::{DomainError, Result};
use crate::facts::{DomainEvent, Fact};

/// An open write transaction: the adapter's own transaction behind the port, and the
/// facts recorded so far. Dropped without [`Database::commit`], it rolls back.
pub struct Tx {
    handle: Box<dyn Any + Send>,
    facts: Vec<DomainEvent>,
}

impl Tx {
    /// Wraps an adapter's transaction (what [`Database::begin`] implementations do).
    pub fn new(handle: Box<dyn Any + Send>) -> Self {
        Self { handle, facts: Vec::new() }
    }

    /// A transaction with no adapter behind it, for tests of the services over mocks.
    pub fn detached() -> Self {
        Self::new(Box::new(()))
    }

    /// Records a fact of this change, written to the outbox by the commit, in the
    /// same transaction as the change.
    pub fn record(&mut self, fact: DomainEvent) {
        self.facts.push(fact);
    }

    /// The facts recorded and not yet written, in order.
    pub fn facts(&self) -> &[DomainEvent] {
        &self.facts
    }

    /// Takes the facts recorded so far, to write them (what flushes and commits do).
    pub fn take_facts(&mut self) -> Vec<DomainEvent> {
        std::mem::take(&mut self.facts)
    }

    /// The adapter's transaction, for the adapter that began it.
    ///
    /// # Errors
    /// [`DomainError::Internal`] when the transaction is another adapter's (a wiring
    /// mistake, never a client's).
    pub fn handle<T: Any>(&mut self) -> Result<&mut T> {
        self.handle
            .downcast_mut::<T>()
            .ok_or_else(|| DomainError::internal("a transaction was handed to an adapter that did not begin it"))
    }

    /// The adapter's transaction and the recorded facts (what commits take apart).
    pub fn into_parts(self) -> (Box<dyn Any + Send>, Vec<DomainEvent>) {
        (self.handle, self.facts)
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("facts", &self.facts).finish_non_exhaustive()
    }
}

/// Where write transactions come from, and where they are committed.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Database: Send + Sync {
    /// Begins a write transaction.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when no connection can be had in time.
    async fn begin(&self) -> Result<Tx>;

    /// Writes the transaction's facts to the outbox and commits everything at once;
    /// answers the facts with their outbox ids, to be dispatched now
    /// ([`crate::facts::Dispatcher::deliver`]).
    ///
    /// An adapter may hold the transaction open past this call instead, to write the
    /// request's idempotency record beside the work (the SQL adapter does, for a
    /// request that sent an `Idempotency-Key`): it then answers no facts, and
    /// whoever commits it later delivers them. Either way the change and its
    /// facts commit together or not at all.
    ///
    /// # Errors
    /// [`DomainError::Unavailable`] when the database is gone (nothing was committed,
    /// or the outcome is unknown and the client must retry); storage failures.
    async fn commit(&self, tx: Tx) -> Result<Vec<Fact>>;

    /// Writes the facts recorded so far to the outbox now, inside the transaction
    /// (the commit writes the rest): a use case that is about to take a contended
    /// lock writes its facts first, so the lock is held for less.
    ///
    /// # Errors
    /// Storage failures.
    async fn flush(&self, tx: &mut Tx) -> Result<()>;
}

/// What every writing service holds: where transactions come from, and who hears
/// the facts once they are committed.
#[derive(Clone)]
pub struct UnitOfWork {
    db: std::sync::Arc<dyn Database>,
    dispatcher: crate::facts::Dispatcher,
}

impl UnitOfWork {
    /// Transactions from `db`; committed facts go to `dispatcher`.
    pub fn new(db: std::sync::Arc<dyn Database>, dispatcher: crate::facts::Dispatcher) -> Self {
        Self { db, dispatcher }
    }

    /// Begins a write transaction.
    ///
    /// # Errors
    /// As [`Database::begin`].
    pub async fn begin(&self) -> Result<Tx> {
        self.db.begin().await
    }

    /// Writes the facts recorded so far (see [`Database::flush`]).
    ///
    /// # Errors
    /// As [`Database::flush`].
    pub async fn flush(&self, tx: &mut Tx) -> Result<()> {
        self.db.flush(tx).await
    }

    /// Commits the change with its facts, then delivers the facts at once, in the
    /// request: the client's next read, on any instance, sees the write. What is not
    /// delivered now is the relay's (see [`crate::facts::Relay`]).
    ///
    /// # Errors
    /// As [`Database::commit`]; once it has committed, nothing fails.
    pub async fn commit(&self, tx: Tx) -> Result<()> {
        let facts = self.db.commit(tx).await?;
        self.dispatcher.deliver(facts).await;
        Ok(())
    }
}

impl std::fmt::Debug for UnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitOfWork").field("dispatcher", &self.dispatcher).finish_non_exhaustive()
    }
}
