//! Expectation helpers over the `mockall` mocks of the ports, for this crate's unit
//! tests and for other services' (enable the `mocks` feature).
//!
//! Each `with_*` helper states one answer of a port for one set of arguments, so that
//! a test reads as the situation it sets up; a call with other arguments fails the
//! test, which is how a rule that asks the wrong question is caught. The unit-of-work
//! helpers ([`uow_to`], [`committing`], [`rolling_back`]) say whether the use case
//! must commit, and with which facts.

use std::sync::Arc;

use crate::attendance::CheckInContext;
pub use crate::attendance::MockAttendanceRepository;
pub use crate::cache::MockCache;
pub use crate::changes::MockChangeRepository;
use crate::events::Event;
pub use crate::events::MockEventRepository;
use crate::facts::{Delivery, Dispatcher, DomainEvent, Fact, FactId};
pub use crate::facts::{MockListener, MockOutbox};
pub use crate::gyms::MockGymRepository;
use crate::members::Membership;
pub use crate::members::MockMemberLock;
pub use crate::passes::MockPassRepository;
pub use crate::payments::MockPaymentRepository;
pub use crate::plans::MockPlanRepository;
pub use crate::refusals::MockRefusalRepository;
pub use crate::reports::MockReportRepository;
pub use crate::schedule::MockScheduleRepository;
use crate::schedule::{Class, Participation, ParticipationStatus, Session};
pub use crate::tx::MockDatabase;
use crate::tx::{Tx, UnitOfWork};
pub use crate::users::MockUserRepository;
use crate::users::User;
use crate::values::{GymId, ParticipationId, SessionId, UserId};
pub use crate::webhooks::{MockWebhookRepository, MockWebhookTransport};

/// The facts a mocked commit answers: what the transaction recorded, numbered from 1.
fn numbered(mut tx: Tx) -> Vec<Fact> {
    (1..)
        .zip(tx.take_facts())
        .map(|(id, event)| Fact { id: FactId { gym: event.gym().map_or(0, |g| g.0), id }, event })
        .collect()
}

/// A unit of work whose commits all succeed and whose facts go to `listener`: for
/// tests about what a service decides and which facts it yields.
pub fn uow_to(listener: MockListener) -> UnitOfWork {
    let mut db = MockDatabase::new();
    db.expect_begin().returning(|| Ok(Tx::detached()));
    db.expect_flush().returning(|_| Ok(()));
    db.expect_commit().returning(|tx| Ok(numbered(tx)));
    UnitOfWork::new(Arc::new(db), Dispatcher::new().with(Arc::new(listener)))
}

/// A unit of work that must begin once and commit once, with exactly these facts.
pub fn committing(facts: Vec<DomainEvent>) -> UnitOfWork {
    let mut db = MockDatabase::new();
    db.expect_begin().once().returning(|| Ok(Tx::detached()));
    db.expect_flush().returning(|_| Ok(()));
    db.expect_commit().withf(move |tx| tx.facts() == facts.as_slice()).once().returning(|tx| Ok(numbered(tx)));
    UnitOfWork::new(Arc::new(db), Dispatcher::new().with(Arc::new(quiet_listener())))
}

/// A unit of work that begins (once, or again for a retry) and must never commit:
/// the use case refuses and its transaction rolls back.
pub fn rolling_back() -> UnitOfWork {
    let mut db = MockDatabase::new();
    db.expect_begin().times(1..=3).returning(|| Ok(Tx::detached()));
    db.expect_flush().returning(|_| Ok(()));
    db.expect_commit().never();
    UnitOfWork::new(Arc::new(db), Dispatcher::new())
}

/// A unit of work that must not even begin: the use case refuses before any write.
pub fn untouched() -> UnitOfWork {
    UnitOfWork::new(Arc::new(MockDatabase::new()), Dispatcher::new())
}

/// `session(gym, id)` answers this session, for its own gym and id.
pub fn with_session(repo: &mut MockScheduleRepository, session: Session) {
    let (gym, id) = (session.gym_id, session.id);
    repo.expect_session().withf(move |g, i| *g == gym && *i == id).returning(move |_, _| Ok(Some(session.clone())));
}

/// `session(gym, id)` answers that there is no such session.
pub fn with_no_session(repo: &mut MockScheduleRepository, gym: GymId, id: SessionId) {
    repo.expect_session().withf(move |g, i| *g == gym && *i == id).returning(|_, _| Ok(None));
}

/// `class(gym, id)` answers this class, for its own gym and id.
pub fn with_class(repo: &mut MockScheduleRepository, class: Class) {
    let (gym, id) = (class.gym_id, class.id);
    repo.expect_class().withf(move |g, i| *g == gym && *i == id).returning(move |_, _| Ok(Some(class.clone())));
}

/// `lock_session(_, gym, id, member)` answers this session (`None`: not in the gym)
/// with the member's participation in it.
pub fn with_locked_session(
    repo: &mut MockScheduleRepository,
    gym: GymId,
    id: SessionId,
    member: UserId,
    found: Option<(Session, Option<ParticipationStatus>)>,
) {
    repo.expect_lock_session()
        .withf(move |_, g, i, m| *g == gym && *i == id && *m == member)
        .returning(move |_, _, _, _| Ok(found.clone()));
}

/// `lock_member(_, gym, user)` answers this membership (`None`: not a member), and
/// so does `lock_members` asked for that one member.
pub fn with_locked_member(repo: &mut MockMemberLock, gym: GymId, user: UserId, found: Option<Membership>) {
    repo.expect_lock_member().withf(move |_, g, u| *g == gym && *u == user).returning(move |_, _, _| Ok(found));
    repo.expect_lock_members()
        .withf(move |_, keys| keys == [(gym, user)])
        .returning(move |_, _| Ok(found.into_iter().collect()));
}

/// `check_in_contexts(_, [one ask of gym and user])` answers `context` (`None`: an
/// unknown user): a check-in of one scan.
pub fn with_check_in_context(
    repo: &mut MockAttendanceRepository,
    gym: GymId,
    user: UserId,
    context: Option<CheckInContext>,
) {
    repo.expect_check_in_contexts()
        .withf(move |_, asks| matches!(asks, [a] if a.gym == gym && a.user == user))
        .returning(move |_, _| Ok(vec![context.clone()]));
}

/// `membership(user, gym)` answers this membership, for its own user and gym.
pub fn with_membership(repo: &mut MockGymRepository, membership: Membership) {
    let (user, gym) = (membership.user_id, membership.gym_id);
    repo.expect_membership().withf(move |u, g| *u == user && *g == gym).returning(move |_, _| Ok(Some(membership)));
}

/// `member_of(gym, id)` answers `user` (`None`: not a member of that gym).
pub fn with_member_of(repo: &mut MockUserRepository, gym: GymId, id: UserId, user: Option<User>) {
    repo.expect_member_of().withf(move |g, i| *g == gym && *i == id).returning(move |_, _| Ok(user.clone()));
}

/// `get(gym, id)` answers this event, for its own gym and id.
pub fn with_event(repo: &mut MockEventRepository, event: Event) {
    let (gym, id) = (event.gym_id, event.id);
    repo.expect_get().withf(move |g, i| *g == gym && *i == id).returning(move |_, _| Ok(Some(event.clone())));
}

/// A listener that must hear exactly these facts, each once, and no other.
pub fn with_facts(facts: Vec<DomainEvent>) -> MockListener {
    let mut listener = MockListener::new();
    for fact in facts {
        listener.expect_on().withf(move |e| *e == fact).once().return_const(Delivery::Done);
    }
    listener
}

/// A listener that accepts any fact (for tests about something else).
pub fn quiet_listener() -> MockListener {
    let mut listener = MockListener::new();
    listener.expect_on().return_const(Delivery::Done);
    listener
}

/// What `set_participation` stores, as the adapter answers it (id 1): for its
/// mocked `returning(|_, g, s, m, st, t, now| Ok(stored(g, s, m, st, t, now)))`.
pub fn stored(
    gym: GymId,
    session: SessionId,
    member: UserId,
    status: ParticipationStatus,
    attendance_time: Option<time::OffsetDateTime>,
    created_at: time::OffsetDateTime,
) -> Participation {
    Participation {
        id: ParticipationId(1),
        session_id: session,
        member_id: member,
        gym_id: gym,
        status,
        attendance_time,
        created_at,
        pass_id: None,
    }
}

/// What `set_booking` stores, as the adapter answers it (id 1): for its mocked
/// `returning(|_, g, s, m, pass, now| Ok(booked(g, s, m, pass, now)))`.
pub fn booked(
    gym: GymId,
    session: SessionId,
    member: UserId,
    pass: Option<i64>,
    created_at: time::OffsetDateTime,
) -> Participation {
    Participation { pass_id: pass, ..stored(gym, session, member, ParticipationStatus::Registered, None, created_at) }
}

/// Credits of a gym where no booking used a pass: a session's places name none,
/// and nothing else may be asked.
pub fn no_credits() -> crate::credits::Credits {
    let mut passes = MockPassRepository::new();
    passes.expect_passes_used_in().returning(|_, _, _| Ok(vec![]));
    crate::credits::Credits::new(Arc::new(passes))
}
