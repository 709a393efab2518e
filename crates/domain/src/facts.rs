//! What happened: the facts every write of the domain's services yields, kept in an
//! outbox and delivered to listeners.
//!
//! Services state *what* changed (a member checked in, a booking was taken or
//! freed, a session was cancelled, a role changed) and nothing of who cares.
//! Whatever must follow a change — dropping cached reads today; webhooks, live
//! occupancy or an audit trail later — is a [`Listener`], added with one line where
//! the app is wired ([`Dispatcher::with`]).
//!
//! A fact is recorded in the write's own transaction
//! ([`crate::tx::Transaction::record`]) and committed with it to the outbox, so a
//! committed change always has its facts. Right after the commit the service hands
//! them to [`Dispatcher::deliver`], in the request, so the client's next read on
//! any instance sees its write. A fact that was not delivered then (the process
//! died, Redis was unreachable, a listener failed) is delivered by the [`Relay`]
//! that runs in every instance: delivery is at least once, and listeners are
//! idempotent.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::clock::Clock;
use crate::error::Result;
use crate::values::{ClassId, EventId, GymId, RecurrenceId, SessionId, UserId};

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
    /// A gym's name, time zone, address or settings changed.
    GymChanged {
        /// The gym.
        gym: GymId,
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
    /// A session was cancelled, and with it every booking that held a place.
    SessionCancelled {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
        /// The members whose bookings were cancelled with it, by id (whom a later
        /// listener tells).
        members: Vec<UserId>,
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
    /// A member joined a session's waitlist.
    WaitlistJoined {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
        /// The member.
        member: UserId,
    },
    /// A member left a session's waitlist.
    WaitlistLeft {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
        /// The member.
        member: UserId,
    },
    /// The head of a session's waitlist took a freed place.
    WaitlistPromoted {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
        /// The member now registered.
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
    /// A series of sessions was started, with the sessions it made.
    SeriesScheduled {
        /// The gym.
        gym: GymId,
        /// The series.
        recurrence: RecurrenceId,
        /// Its sessions.
        sessions: Vec<SessionId>,
    },
    /// A series was stopped, and its future sessions nobody booked removed.
    SeriesStopped {
        /// The gym.
        gym: GymId,
        /// The series.
        recurrence: RecurrenceId,
        /// The sessions removed.
        removed: Vec<SessionId>,
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
    /// A session ended with members still registered: their places became no-shows.
    NoShows {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
        /// The members who did not come.
        members: Vec<UserId>,
    },
    /// A member was granted a pass (a sale by staff, or a payment event).
    PassGranted {
        /// The gym.
        gym: GymId,
        /// The pass.
        pass: i64,
        /// Its holder.
        member: UserId,
        /// The plan it was sold from.
        plan: i64,
        /// A pack's credits; `None` for an unlimited pass.
        credits: Option<i32>,
    },
    /// A booking took a credit, or the use of an unlimited pass.
    CreditUsed {
        /// The gym.
        gym: GymId,
        /// The pass.
        pass: i64,
        /// Its holder.
        member: UserId,
        /// The session booked.
        session: SessionId,
    },
    /// A booking's credit went back to its pack (a cancellation in time, the
    /// session's cancellation, the member's removal).
    CreditRefunded {
        /// The gym.
        gym: GymId,
        /// The pass.
        pass: i64,
        /// Its holder.
        member: UserId,
        /// The session.
        session: SessionId,
    },
    /// A pack expired with credits left: they are gone.
    PassExpired {
        /// The gym.
        gym: GymId,
        /// The pass.
        pass: i64,
        /// Its holder.
        member: UserId,
        /// The credits it still had.
        credits: i32,
    },
    /// Members at the head of a session's waitlist had no usable pass when a place
    /// was freed: they left the queue, and the place went on to the next.
    WaitlistSkipped {
        /// The gym.
        gym: GymId,
        /// The session.
        session: SessionId,
        /// The members skipped, in queue order.
        members: Vec<UserId>,
    },
    /// A front desk's scan was refused (recorded in the refusal audit).
    CheckInRefused {
        /// The gym.
        gym: GymId,
        /// The desk's user.
        desk: UserId,
        /// The user the scanned code names, when it parsed.
        member: Option<UserId>,
        /// The session the desk named.
        session: Option<SessionId>,
        /// The refusal's code.
        code: String,
    },
}

impl DomainEvent {
    /// The gym the fact belongs to; `None` for facts of a user alone (profile, QR
    /// code), which the outbox keeps under no gym.
    pub fn gym(&self) -> Option<GymId> {
        use DomainEvent as E;
        match self {
            E::ProfileChanged { .. } | E::QrRotated { .. } => None,
            E::GymCreated { gym, .. }
            | E::GymChanged { gym }
            | E::MembershipChanged { gym, .. }
            | E::MemberLeft { gym, .. }
            | E::ClassChanged { gym, .. }
            | E::SessionScheduled { gym, .. }
            | E::SessionCancelled { gym, .. }
            | E::Booked { gym, .. }
            | E::BookingCancelled { gym, .. }
            | E::WaitlistJoined { gym, .. }
            | E::WaitlistLeft { gym, .. }
            | E::WaitlistPromoted { gym, .. }
            | E::CheckedIn { gym, .. }
            | E::SeriesScheduled { gym, .. }
            | E::SeriesStopped { gym, .. }
            | E::EventChanged { gym, .. }
            | E::CheckInRefused { gym, .. }
            | E::PassGranted { gym, .. }
            | E::CreditUsed { gym, .. }
            | E::CreditRefunded { gym, .. }
            | E::PassExpired { gym, .. }
            | E::WaitlistSkipped { gym, .. }
            | E::NoShows { gym, .. } => Some(*gym),
        }
    }
}

/// The stable id of a fact in the outbox: its gym (0 for the facts of a user alone)
/// and its number, unique across gyms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FactId {
    /// The gym the fact is kept under.
    pub gym: i64,
    /// Its number.
    pub id: i64,
}

/// A committed fact: its outbox id and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// Stable id (also the order of facts of one gym: see the outbox's `gym_seq`).
    pub id: FactId,
    /// What happened.
    pub event: DomainEvent,
}

/// What a listener made of a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Handled (or nothing to do).
    Done,
    /// Not handled now (a server it needs is unreachable): the relay delivers the
    /// fact again later.
    Retry,
}

/// Reacts to facts. A listener never fails the write, which is committed already:
/// it answers [`Delivery::Retry`] and the fact is delivered again. It may hear a
/// fact more than once, so its reaction must be idempotent.
#[async_trait]
pub trait Listener: Send + Sync {
    /// Called for each fact after its write committed (again after a [`Delivery::Retry`]).
    async fn on(&self, event: &DomainEvent) -> Delivery;

    /// Called with the facts of one commit (or of one claim of the relay), in order:
    /// a listener that can act on many at once (one Redis pipeline for a batch of
    /// check-ins) overrides it. [`Delivery::Retry`] leaves all of them for the relay.
    async fn on_many(&self, events: &[DomainEvent]) -> Delivery {
        let mut all = Delivery::Done;
        for event in events {
            if self.on(event).await == Delivery::Retry {
                all = Delivery::Retry;
            }
        }
        all
    }
}

#[cfg(any(test, feature = "mocks"))]
mockall::mock! {
    /// A listener whose [`Listener::on`] is mocked; [`Listener::on_many`] keeps its
    /// default, so expectations name each fact.
    pub Listener {}
    #[async_trait]
    impl Listener for Listener {
        async fn on(&self, event: &DomainEvent) -> Delivery;
    }
}

/// The outbox's bookkeeping of delivery (the facts are written by
/// [`crate::tx::Transaction::commit`]).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims, at `now`, up to `limit` facts committed before `committed_before` and
    /// not yet delivered, oldest first, for this relay alone until `lease_until`:
    /// relays of other instances skip them meanwhile, and take them over after the
    /// lease if this one died.
    ///
    /// # Errors
    /// Storage failures.
    async fn claim(
        &self,
        now: OffsetDateTime,
        committed_before: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Fact>>;

    /// Marks facts delivered. Adapters may record this a moment later and in
    /// batches: a mark that is lost only means the relay delivers the fact again.
    ///
    /// # Errors
    /// Storage failures.
    async fn delivered(&self, ids: &[FactId]) -> Result<()>;

    /// Gives up to `limit` committed facts that have none their number in their
    /// gym's order (`gym_seq`), in the order of their ids. Numbers are given after
    /// the commit, one sequencer at a time, so a reader that follows a gym's numbers
    /// never misses a fact that committed late.
    ///
    /// # Errors
    /// Storage failures.
    async fn sequence(&self, limit: u32) -> Result<Sequenced>;

    /// Deletes facts delivered before `delivered_before`; answers how many.
    ///
    /// # Errors
    /// Storage failures.
    async fn purge(&self, delivered_before: OffsetDateTime) -> Result<u64>;
}

/// What one call of [`Outbox::sequence`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sequenced {
    /// How many facts were numbered.
    pub facts: usize,
    /// Each gym numbered and its last number now (`0` is the gym of facts of a user alone).
    pub heads: Vec<(GymId, i64)>,
    /// Another instance's sequencer held the turn: facts may be waiting still.
    pub busy: bool,
}

/// Told the gyms whose feeds grew, as soon as their facts are numbered: live
/// streams on every instance then read what is new (an adapter publishes it across
/// instances). A lost announcement only delays a reader until it looks again.
#[async_trait]
pub trait Announcer: Send + Sync {
    /// The gyms numbered and their last number.
    async fn announce(&self, heads: &[(GymId, i64)]);
}

/// Hands committed facts to every listener, in the order they were added, and marks
/// in the outbox those every listener handled.
#[derive(Clone, Default)]
pub struct Dispatcher {
    listeners: Vec<Arc<dyn Listener>>,
    outbox: Option<Arc<dyn Outbox>>,
}

impl Dispatcher {
    /// A dispatcher with no listener and no outbox (facts go nowhere).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a listener.
    #[must_use]
    pub fn with(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Marks delivered facts in this outbox.
    #[must_use]
    pub fn with_outbox(mut self, outbox: Arc<dyn Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Delivers committed facts, in order, to each listener at once
    /// ([`Listener::on_many`]); answers how many were delivered: all of them, or none
    /// when a listener left them for a retry (the relay delivers them again, in order).
    pub async fn deliver(&self, facts: Vec<Fact>) -> usize {
        if facts.is_empty() {
            return 0;
        }
        let events: Vec<DomainEvent> = facts.iter().map(|f| f.event.clone()).collect();
        let mut handled = true;
        for listener in &self.listeners {
            handled &= listener.on_many(&events).await == Delivery::Done;
        }
        if !handled {
            return 0;
        }
        if let Some(outbox) = &self.outbox {
            let done: Vec<FactId> = facts.iter().map(|f| f.id).collect();
            // A lost mark costs one more delivery, never a lost fact.
            let _ = outbox.delivered(&done).await;
        }
        facts.len()
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("listeners", &self.listeners.len()).finish()
    }
}

/// Delivers what was committed but not delivered: after a crash between a commit
/// and its dispatch, while Redis was unreachable, or after a listener failed. One
/// runs in every instance ([`Relay::tick`] every second or so); the outbox's leases
/// keep two relays from delivering one fact at the same moment.
#[derive(Clone)]
pub struct Relay {
    outbox: Arc<dyn Outbox>,
    dispatcher: Dispatcher,
    clock: Arc<dyn Clock>,
    announcer: Option<Arc<dyn Announcer>>,
    /// A fact younger than this may still be on its way in the request that wrote it.
    pub grace: Duration,
    /// How long a claim keeps other relays off.
    pub lease: Duration,
    /// How long delivered facts are kept (for later readers of the outbox).
    pub retention: Duration,
}

impl Relay {
    /// Facts claimed (and numbered) per batch.
    pub const BATCH: u32 = 200;
    /// Most batches numbered per tick (40,000 facts a second at one tick a second).
    pub const SEQUENCE_ROUNDS: usize = 200;

    /// A relay over an outbox, delivering to the dispatcher's listeners.
    pub fn new(outbox: Arc<dyn Outbox>, dispatcher: Dispatcher, clock: Arc<dyn Clock>, retention: Duration) -> Self {
        Self {
            outbox,
            dispatcher,
            clock,
            announcer: None,
            grace: Duration::seconds(2),
            lease: Duration::seconds(30),
            retention,
        }
    }

    /// Announces the gyms it numbers to `announcer`.
    #[must_use]
    pub fn with_announcer(mut self, announcer: Arc<dyn Announcer>) -> Self {
        self.announcer = Some(announcer);
        self
    }

    /// Numbers what committed since the last call, batches until one comes back
    /// short (so numbering keeps up with any rate of writes), and announces the gyms
    /// numbered. Answers whether another instance's sequencer held the turn (the
    /// caller tries again shortly: facts of this instance may be waiting).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn sequence(&self) -> Result<bool> {
        let mut heads: Vec<(GymId, i64)> = Vec::new();
        let mut busy = false;
        for _ in 0..Self::SEQUENCE_ROUNDS {
            let run = self.outbox.sequence(Self::BATCH).await?;
            busy = run.busy;
            for (gym, last) in run.heads {
                match heads.iter_mut().find(|(g, _)| *g == gym) {
                    Some(h) => h.1 = h.1.max(last),
                    None => heads.push((gym, last)),
                }
            }
            if run.busy || run.facts < Self::BATCH as usize {
                break;
            }
        }
        if let Some(announcer) = &self.announcer
            && !heads.is_empty()
        {
            announcer.announce(&heads).await;
        }
        Ok(busy)
    }

    /// Numbers what is waiting ([`Relay::sequence`]), then claims and delivers one
    /// batch; answers how many facts were delivered.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn tick(&self) -> Result<usize> {
        self.sequence().await?;
        self.deliver_pending().await
    }

    /// Claims and delivers one batch of facts left undelivered; answers how many.
    ///
    /// # Errors
    /// Storage failures of the claim.
    pub async fn deliver_pending(&self) -> Result<usize> {
        let now = self.clock.now();
        let facts = self.outbox.claim(now, now - self.grace, now + self.lease, Self::BATCH).await?;
        if facts.is_empty() {
            return Ok(0);
        }
        Ok(self.dispatcher.deliver(facts).await)
    }

    /// The time before which delivered facts are no longer kept.
    pub fn retention_cutoff(&self) -> OffsetDateTime {
        self.clock.now() - self.retention
    }

    /// Deletes facts delivered longer ago than the retention; answers how many.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn purge(&self) -> Result<u64> {
        self.outbox.purge(self.clock.now() - self.retention).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;

    fn fact(id: i64, event: DomainEvent) -> Fact {
        Fact { id: FactId { gym: event.gym().map_or(0, |g| g.0), id }, event }
    }

    fn ids(gym: i64, ids: &[i64]) -> Vec<FactId> {
        ids.iter().map(|&id| FactId { gym, id }).collect()
    }

    #[tokio::test]
    async fn every_listener_hears_every_fact_in_order_and_handled_facts_are_marked() {
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Tape(Arc<std::sync::Mutex<Vec<(u8, DomainEvent)>>>, u8);
        #[async_trait]
        impl Listener for Tape {
            async fn on(&self, event: &DomainEvent) -> Delivery {
                if let Ok(mut h) = self.0.lock() {
                    h.push((self.1, event.clone()));
                }
                Delivery::Done
            }
        }
        let mut outbox = MockOutbox::new();
        outbox.expect_delivered().withf(|got| got == ids(0, &[1, 2])).once().returning(|_| Ok(()));
        let d = Dispatcher::new()
            .with(Arc::new(Tape(heard.clone(), 1)))
            .with(Arc::new(Tape(heard.clone(), 2)))
            .with_outbox(Arc::new(outbox));
        let (a, b) = (DomainEvent::QrRotated { user: UserId(7) }, DomainEvent::ProfileChanged { user: UserId(7) });
        assert_eq!(d.deliver(vec![fact(1, a.clone()), fact(2, b.clone())]).await, 2);
        let tape = heard.lock().expect("lock").clone();
        assert_eq!(
            tape,
            vec![(1, a.clone()), (1, b.clone()), (2, a), (2, b)],
            "each listener hears the commit's facts in order"
        );
    }

    #[tokio::test]
    async fn facts_a_listener_left_for_a_retry_are_not_marked_delivered() {
        let failing = DomainEvent::ClassChanged { gym: GymId(1), class: ClassId(1) };
        let other = DomainEvent::ClassChanged { gym: GymId(2), class: ClassId(2) };
        let mut listener = MockListener::new();
        let f = failing.clone();
        listener.expect_on().withf(move |e| *e == f).once().return_const(Delivery::Retry);
        let o = other.clone();
        listener.expect_on().withf(move |e| *e == o).once().return_const(Delivery::Done);
        let mut outbox = MockOutbox::new();
        outbox.expect_delivered().never();
        let d = Dispatcher::new().with(Arc::new(listener)).with_outbox(Arc::new(outbox));
        assert_eq!(d.deliver(vec![fact(1, failing), fact(3, other)]).await, 0, "the relay delivers both again");
    }

    #[tokio::test]
    async fn the_relay_numbers_facts_until_a_batch_comes_back_short() {
        let mut outbox = MockOutbox::new();
        let mut seq = mockall::Sequence::new();
        let full = |gym: i64, last: i64| Sequenced {
            facts: Relay::BATCH as usize,
            heads: vec![(GymId(gym), last)],
            busy: false,
        };
        outbox.expect_sequence().once().in_sequence(&mut seq).returning(move |_| Ok(full(1, 150)));
        outbox.expect_sequence().once().in_sequence(&mut seq).returning(move |_| Ok(full(2, 200)));
        outbox
            .expect_sequence()
            .once()
            .in_sequence(&mut seq)
            .returning(|_| Ok(Sequenced { facts: 7, heads: vec![(GymId(1), 157)], busy: false }));
        outbox.expect_claim().once().returning(|_, _, _, _| Ok(vec![]));
        let outbox: Arc<dyn Outbox> = Arc::new(outbox);
        let now = time::macros::datetime!(2026-12-04 12:00 UTC);
        let told = Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Tell(Arc<std::sync::Mutex<Vec<(GymId, i64)>>>);
        #[async_trait]
        impl Announcer for Tell {
            async fn announce(&self, heads: &[(GymId, i64)]) {
                if let Ok(mut t) = self.0.lock() {
                    t.extend_from_slice(heads);
                }
            }
        }
        let relay = Relay::new(outbox, Dispatcher::new(), Arc::new(FixedClock(now)), Duration::days(7))
            .with_announcer(Arc::new(Tell(told.clone())));
        assert_eq!(relay.tick().await, Ok(0));
        assert_eq!(
            *told.lock().expect("lock"),
            vec![(GymId(1), 157), (GymId(2), 200)],
            "each gym numbered is announced once, with its last number"
        );
    }

    #[tokio::test]
    async fn a_sequencer_that_finds_the_turn_taken_says_so_and_stops() {
        let mut outbox = MockOutbox::new();
        outbox.expect_sequence().once().returning(|_| Ok(Sequenced { busy: true, ..Sequenced::default() }));
        let now = time::macros::datetime!(2026-12-04 12:00 UTC);
        let relay = Relay::new(Arc::new(outbox), Dispatcher::new(), Arc::new(FixedClock(now)), Duration::days(7));
        assert_eq!(relay.sequence().await, Ok(true));
    }

    #[tokio::test]
    async fn the_relay_claims_what_is_older_than_its_grace_and_delivers_it() {
        let now = time::macros::datetime!(2026-12-04 12:00 UTC);
        let event = DomainEvent::Booked { gym: GymId(1), session: SessionId(2), member: UserId(3) };
        let mut outbox = MockOutbox::new();
        let e = event.clone();
        outbox
            .expect_claim()
            .withf(move |at, before, lease, _| {
                *at == now && *before == now - Duration::seconds(2) && *lease == now + Duration::seconds(30)
            })
            .once()
            .returning(move |_, _, _, _| Ok(vec![fact(41, e.clone())]));
        outbox.expect_delivered().withf(|got| got == ids(1, &[41])).once().returning(|_| Ok(()));
        outbox.expect_sequence().once().returning(|_| Ok(Sequenced::default()));
        let outbox: Arc<dyn Outbox> = Arc::new(outbox);
        let mut listener = MockListener::new();
        listener.expect_on().withf(move |e| *e == event).once().return_const(Delivery::Done);
        let dispatcher = Dispatcher::new().with(Arc::new(listener)).with_outbox(outbox.clone());
        let relay = Relay::new(outbox, dispatcher, Arc::new(FixedClock(now)), Duration::days(7));
        assert_eq!(relay.tick().await, Ok(1));
    }
}
