//! [`ScheduleRepository`]: classes, sessions, the session lock with the member's
//! participation, the counter, the participation upsert — and places taken and given
//! back under contention, through the services that decide under those locks.

use domain::schedule::{ClassPatch, ParticipationStatus, SessionStatus};
use domain::{ClassId, DomainError, Page, SessionId, UserId};

use super::*;

fn page() -> Page {
    Page::new(0, 500).expect("page")
}

contract!(classes_are_stored_patched_and_scoped_to_their_gym, |db| {
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let a = class(&db, g.id, 20).await;
    let b = class(&db, g.id, 8).await;
    assert_eq!((a.max_capacity, a.duration_minutes, a.active), (20, 45, true));
    assert_eq!(db.class(g.id, a.id).await, Ok(Some(a.clone())));
    assert_eq!(db.class(other.id, a.id).await, Ok(None), "another gym's class is invisible");
    assert_eq!(db.active_classes(g.id, page()).await, Ok(vec![a.clone(), b.clone()]));
    let patch = ClassPatch {
        name: Some("Yoga".into()),
        max_capacity: Some(Capacity::new(12).expect("capacity")),
        ..ClassPatch::default()
    };
    let patched = in_tx!(db, |tx| db.update_class(tx, g.id, a.id, &patch)).expect("update").expect("present");
    assert_eq!((patched.name.as_str(), patched.max_capacity, patched.duration_minutes), ("Yoga", 12, 45));
    let off = ClassPatch { active: Some(false), ..ClassPatch::default() };
    in_tx!(db, |tx| db.update_class(tx, g.id, a.id, &off)).expect("update").expect("present");
    assert_eq!(db.active_classes(g.id, page()).await, Ok(vec![b.clone()]), "inactive classes are not listed");
    assert!(!db.class(g.id, a.id).await.expect("read").expect("still readable").active);
    assert_eq!(in_tx!(db, |tx| db.update_class(tx, other.id, b.id, &patch)), Ok(None), "nor changed from another gym");
    assert_eq!(in_tx!(db, |tx| db.update_class(tx, g.id, ClassId(i64::MAX), &patch)), Ok(None));
    assert_eq!(db.active_classes(g.id, Page::new(1, 1).expect("page")).await, Ok(vec![]));
});

contract!(an_instructor_or_trainer_must_be_a_member_of_the_gym, |db| {
    let (g, _) = gym(&db).await;
    let (_, stranger) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let patch = ClassPatch { instructor_id: Some(stranger.id), ..ClassPatch::default() };
    assert_eq!(in_tx!(db, |tx| db.update_class(tx, g.id, c.id, &patch)), Err(DomainError::UserNotFound));
    let start = now() + Duration::days(1);
    let draft = SessionDraft {
        class_id: c.id,
        start_time: ts(start),
        end_time: ts(start + Duration::hours(1)),
        trainer_id: Some(stranger.id),
        room: None,
        capacity: 10,
        recurrence: None,
    };
    assert_eq!(in_tx!(db, |tx| db.create_session(tx, g.id, &draft, now())), Err(DomainError::UserNotFound));
    assert_eq!(db.sessions_between(g.id, now(), start + Duration::days(1), page()).await, Ok(vec![]));
});

contract!(sessions_are_listed_by_start_in_an_inclusive_range_and_cancelled, |db| {
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let t = now() + Duration::days(2);
    let late = session(&db, g.id, &c, t + Duration::hours(3)).await;
    let early = session(&db, g.id, &c, t).await;
    let also_early = session(&db, g.id, &c, t).await;
    let got = db.sessions_between(g.id, t, t + Duration::hours(3) - Duration::seconds(1), page()).await.expect("list");
    assert_eq!(got, [early.clone(), also_early.clone()], "by start then id, a second before `late`");
    let got = db.sessions_between(g.id, t, t + Duration::hours(3), page()).await;
    assert_eq!(got.expect("list").len(), 3);
    assert_eq!(db.sessions_between(other.id, t, t + Duration::days(1), page()).await, Ok(vec![]));
    assert_eq!(db.session(g.id, late.id).await, Ok(Some(late.clone())));
    assert_eq!(db.session(other.id, late.id).await, Ok(None));
    let cancelled = in_tx!(db, |tx| db.cancel_session(tx, g.id, late.id)).expect("cancel").expect("present");
    assert_eq!(cancelled.status, SessionStatus::Cancelled);
    assert_eq!(in_tx!(db, |tx| db.cancel_session(tx, other.id, early.id)), Ok(None));
    assert_eq!(in_tx!(db, |tx| db.cancel_session(tx, g.id, SessionId(i64::MAX))), Ok(None));
    assert_eq!(db.session(g.id, early.id).await.expect("read").map(|s| s.status), Some(SessionStatus::Scheduled));
});

contract!(a_locked_session_is_read_with_the_members_participation, |db| {
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let c = class(&db, g.id, 1).await;
    let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let m = member(&db, g.id, Role::Member).await;
    let seen = in_tx!(db, |tx| db.lock_session(tx, g.id, s.id, m.id)).expect("lock");
    assert_eq!(seen, Some((s.clone(), None)));
    assert_eq!(in_tx!(db, |tx| db.lock_session(tx, other.id, s.id, m.id)), Ok(None), "another gym's is missing");
    assert_eq!(in_tx!(db, |tx| db.lock_session(tx, g.id, SessionId(i64::MAX), m.id)), Ok(None));
    let p = in_tx!(db, |tx| db.set_participation(tx, g.id, s.id, m.id, ParticipationStatus::Registered, None, now()))
        .expect("set");
    assert_eq!((p.session_id, p.member_id, p.gym_id, p.status), (s.id, m.id, g.id, ParticipationStatus::Registered));
    let seen = in_tx!(db, |tx| db.lock_session(tx, g.id, s.id, m.id)).expect("lock").map(|(_, p)| p);
    assert_eq!(seen, Some(Some(ParticipationStatus::Registered)));
    let at = now();
    let again =
        in_tx!(db, |tx| db.set_participation(tx, g.id, s.id, m.id, ParticipationStatus::Attended, Some(at), at))
            .expect("set");
    assert_eq!((again.id, again.status, again.attendance_time), (p.id, ParticipationStatus::Attended, Some(at)));
    let rows = db.participants(g.id, s.id, page()).await.expect("participants");
    assert_eq!(rows.len(), 1, "one row per member and session");
});

contract!(the_count_moves_by_what_it_is_told_and_a_place_is_taken_only_while_scheduled, |db| {
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let c = class(&db, g.id, 1).await;
    let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
    in_tx!(db, |tx| db.move_count(tx, g.id, s.id, 2)).expect("move");
    in_tx!(db, |tx| db.move_count(tx, g.id, s.id, -1)).expect("move");
    in_tx!(db, |tx| db.move_count(tx, other.id, s.id, 5)).expect("another gym's: nothing");
    assert_eq!(db.session(g.id, s.id).await.expect("read").map(|s| s.registered_count), Some(1));
    let second = session(&db, g.id, &c, now() + Duration::days(2)).await;
    let places = [(g.id, s.id, 1), (g.id, second.id, 3), (other.id, s.id, 7)];
    let taken = in_tx!(db, |tx| db.take_places(tx, &places)).expect("take");
    let mut taken_sorted = taken.clone();
    taken_sorted.sort();
    assert_eq!(taken_sorted, [s.id, second.id], "past capacity: the desk admits; not from another gym");
    assert_eq!(db.session(g.id, second.id).await.expect("read").map(|s| s.registered_count), Some(3));
    in_tx!(db, |tx| db.cancel_session(tx, g.id, s.id)).expect("cancel");
    let none = in_tx!(db, |tx| db.take_places(tx, &[(g.id, s.id, 1)]));
    assert_eq!(none, Ok(vec![]), "a cancelled session admits nobody");
    assert_eq!(db.session(g.id, s.id).await.expect("read").map(|s| s.registered_count), Some(2));
    let below_zero = in_tx!(db, |tx| db.move_count(tx, g.id, s.id, -3));
    assert!(below_zero.is_err(), "the count never goes below zero (its CHECK): {below_zero:?}");
});

contract!(refusals_of_a_booking_are_decided_on_what_the_locks_hold, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 1).await;
    let open = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let (a, b) = (member(&db, g.id, Role::Member).await, member(&db, g.id, Role::Member).await);
    let svc = services(&db);
    let book = |u: UserId, s: SessionId| {
        let schedule = svc.schedule.clone();
        async move { schedule.register(&actor(u, g.id, Role::Member), s, Default::default()).await.map(|b| b.participation) }
    };
    let p = book(a.id, open.id).await.expect("a place was free");
    assert_eq!((p.session_id, p.member_id, p.status), (open.id, a.id, ParticipationStatus::Registered));
    assert_eq!(book(a.id, open.id).await, Err(DomainError::AlreadyRegistered));
    assert_eq!(book(b.id, open.id).await, Err(DomainError::SessionFull));
    assert_eq!(book(b.id, SessionId(i64::MAX)).await, Err(DomainError::SessionNotFound));
    let (other, _) = gym(&db).await;
    let outsider = member(&db, other.id, Role::Member).await;
    let foreign = svc.schedule.register(&actor(outsider.id, other.id, Role::Member), open.id, Default::default()).await;
    assert_eq!(foreign, Err(DomainError::SessionNotFound), "another gym's session is missing");
    assert_eq!(book(outsider.id, open.id).await, Err(DomainError::NotAMember), "only a member of the gym books");
    in_tx!(db, |tx| db.cancel_session(tx, g.id, open.id)).expect("cancel");
    assert_eq!(book(b.id, open.id).await, Err(DomainError::SessionNotOpen));
    let s = db.session(g.id, open.id).await.expect("read").expect("present");
    assert_eq!(s.registered_count, 1, "refusals took no place");
});

contract!(fifty_racers_for_ten_places_get_exactly_ten, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let mut members = Vec::new();
    for _ in 0..50 {
        members.push(member(&db, g.id, Role::Member).await.id);
    }
    let svc = services(&db);
    let results = race(50, |i| {
        let (schedule, member, session, gym) = (svc.schedule.clone(), members[i], s.id, g.id);
        async move { schedule.register(&actor(member, gym, Role::Member), session, Default::default()).await }
    })
    .await;
    let booked = results.iter().filter(|r| r.is_ok()).count();
    let full = results.iter().filter(|r| **r == Err(DomainError::SessionFull)).count();
    assert_eq!((booked, full), (10, 40), "{results:?}");
    assert_eq!(db.session(g.id, s.id).await.expect("read").map(|s| s.registered_count), Some(10));
    let rows = db.participants(g.id, s.id, page()).await.expect("participants");
    assert_eq!(rows.iter().filter(|p| p.status == ParticipationStatus::Registered).count(), 10);
});

contract!(fifty_racing_bookings_of_one_member_take_one_place, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 100).await;
    let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let m = member(&db, g.id, Role::Member).await;
    let svc = services(&db);
    let results = race(50, |_| {
        let (schedule, member, session, gym) = (svc.schedule.clone(), m.id, s.id, g.id);
        async move { schedule.register(&actor(member, gym, Role::Member), session, Default::default()).await }
    })
    .await;
    let booked = results.iter().filter(|r| r.is_ok()).count();
    let holding = results.iter().filter(|r| **r == Err(DomainError::AlreadyRegistered)).count();
    assert_eq!((booked, holding), (1, 49), "{results:?}");
    assert_eq!(db.session(g.id, s.id).await.expect("read").map(|s| s.registered_count), Some(1));
});

contract!(a_place_given_back_is_freed_once_and_can_be_taken_again, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 3).await;
    let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let m = member(&db, g.id, Role::Member).await;
    let svc = services(&db);
    let me = actor(m.id, g.id, Role::Member);
    assert_eq!(svc.schedule.unregister(&me, s.id).await, Err(DomainError::NotRegistered), "no place held yet");
    svc.schedule.register(&me, s.id, Default::default()).await.expect("book");
    let results = race(10, |_| {
        let schedule = svc.schedule.clone();
        async move { schedule.unregister(&me, s.id).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok() || *r == Err(DomainError::NotRegistered)), "{results:?}");
    assert_eq!(db.session(g.id, s.id).await.expect("read").map(|s| s.registered_count), Some(0));
    let rows = db.participants(g.id, s.id, page()).await.expect("participants");
    assert_eq!(rows.iter().map(|p| p.status).collect::<Vec<_>>(), [ParticipationStatus::Cancelled]);
    let again = svc.schedule.register(&me, s.id, Default::default()).await.expect("rebooked");
    assert_eq!(again.participation.id, rows[0].id, "rebooking reuses the row");
});

contract!(participants_are_every_row_of_a_session_by_id_and_paged, |db| {
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let svc = services(&db);
    let mut ids = Vec::new();
    for _ in 0..4 {
        let m = member(&db, g.id, Role::Member).await;
        ids.push(
            svc.schedule
                .register(&actor(m.id, g.id, Role::Member), s.id, Default::default())
                .await
                .expect("booked")
                .participation
                .id,
        );
    }
    let all = db.participants(g.id, s.id, page()).await.expect("participants");
    assert_eq!(all.iter().map(|p| p.id).collect::<Vec<_>>(), ids);
    let second = db.participants(g.id, s.id, Page::new(1, 2).expect("page")).await.expect("participants");
    assert_eq!(second.iter().map(|p| p.id).collect::<Vec<_>>(), ids[1..3]);
    assert_eq!(db.participants(other.id, s.id, page()).await, Ok(vec![]), "not from another gym");
});
