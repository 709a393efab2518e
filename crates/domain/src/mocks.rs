//! Expectation helpers over the `mockall` mocks of the ports, for this crate's unit
//! tests and for other services' (enable the `mocks` feature).
//!
//! Each `with_*` helper states one answer of a port for one set of arguments, so that
//! a test reads as the situation it sets up; a call with other arguments fails the
//! test, which is how a rule that asks the wrong question is caught.

use std::sync::Arc;

pub use crate::attendance::MockAttendanceRepository;
use crate::attendance::{CheckInContext, MarkOutcome};
pub use crate::cache::MockCache;
use crate::events::Event;
pub use crate::events::MockEventRepository;
pub use crate::facts::MockListener;
use crate::facts::{Dispatcher, DomainEvent};
use crate::gyms::Membership;
pub use crate::gyms::MockGymRepository;
pub use crate::schedule::MockScheduleRepository;
use crate::schedule::{Booking, Class, Session};
pub use crate::users::MockUserRepository;
use crate::users::User;
use crate::values::{GymId, SessionId, UserId};

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

/// `book(gym, session, member, _)` is called once and answers `outcome`.
pub fn with_booking(
    repo: &mut MockScheduleRepository,
    gym: GymId,
    session: SessionId,
    member: UserId,
    outcome: Booking,
) {
    repo.expect_book()
        .withf(move |g, s, m, _| *g == gym && *s == session && *m == member)
        .once()
        .returning(move |_, _, _, _| Ok(outcome.clone()));
}

/// `check_in_context(gym, user, _)` answers `context` (`None`: an unknown user).
pub fn with_check_in_context(
    repo: &mut MockAttendanceRepository,
    gym: GymId,
    user: UserId,
    context: Option<CheckInContext>,
) {
    repo.expect_check_in_context()
        .withf(move |g, u, _| *g == gym && *u == user)
        .returning(move |_, _, _| Ok(context.clone()));
}

/// `mark_attended(gym, session, user, ..)` is called once and answers `outcome`.
pub fn with_mark_attended(
    repo: &mut MockAttendanceRepository,
    gym: GymId,
    session: SessionId,
    user: UserId,
    outcome: MarkOutcome,
) {
    repo.expect_mark_attended()
        .withf(move |g, s, u, _, _, _| *g == gym && *s == session && *u == user)
        .once()
        .returning(move |_, _, _, _, _, _| Ok(outcome));
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
        listener.expect_on().withf(move |e| *e == fact).once().return_const(());
    }
    listener
}

/// A listener that accepts any fact (for tests about something else).
pub fn quiet_listener() -> MockListener {
    let mut listener = MockListener::new();
    listener.expect_on().return_const(());
    listener
}

/// A dispatcher delivering to one mock listener.
pub fn dispatcher_to(listener: MockListener) -> Dispatcher {
    Dispatcher::new().with(Arc::new(listener))
}
