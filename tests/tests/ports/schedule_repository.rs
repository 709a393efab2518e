//! [`ScheduleRepository`]: classes, sessions, and places taken and given back under
//! contention.

use domain::schedule::{Booking, ClassPatch, ParticipationStatus, SessionStatus, refusal};
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
    let patched = db.update_class(g.id, a.id, &patch).await.expect("update").expect("present");
    assert_eq!((patched.name.as_str(), patched.max_capacity, patched.duration_minutes), ("Yoga", 12, 45));
    let off = ClassPatch { active: Some(false), ..ClassPatch::default() };
    db.update_class(g.id, a.id, &off).await.expect("update").expect("present");
    assert_eq!(db.active_classes(g.id, page()).await, Ok(vec![b.clone()]), "inactive classes are not listed");
    assert!(!db.class(g.id, a.id).await.expect("read").expect("still readable").active);
    assert_eq!(db.update_class(other.id, b.id, &patch).await, Ok(None), "nor changed from another gym");
    assert_eq!(db.update_class(g.id, ClassId(i64::MAX), &patch).await, Ok(None));
    assert_eq!(db.active_classes(g.id, Page::new(1, 1).expect("page")).await, Ok(vec![]));
});

contract!(an_instructor_or_trainer_must_be_a_member_of_the_gym, |db| {
    let (g, _) = gym(&db).await;
    let (_, stranger) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let patch = ClassPatch { instructor_id: Some(stranger.id), ..ClassPatch::default() };
    assert_eq!(db.update_class(g.id, c.id, &patch).await, Err(DomainError::UserNotFound));
    let start = now() + Duration::days(1);
    let draft = SessionDraft {
        class_id: c.id,
        start_time: ts(start),
        end_time: ts(start + Duration::hours(1)),
        trainer_id: Some(stranger.id),
        room: None,
        capacity: 10,
    };
    assert_eq!(db.create_session(g.id, &draft, now()).await, Err(DomainError::UserNotFound));
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
    let cancelled = db.cancel_session(g.id, late.id).await.expect("cancel").expect("present");
    assert_eq!(cancelled.status, SessionStatus::Cancelled);
    assert_eq!(db.cancel_session(other.id, early.id).await, Ok(None));
    assert_eq!(db.cancel_session(g.id, SessionId(i64::MAX)).await, Ok(None));
    assert_eq!(db.session(g.id, early.id).await.expect("read").map(|s| s.status), Some(SessionStatus::Scheduled));
});

contract!(a_refused_booking_reports_what_the_transaction_saw, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 1).await;
    let open = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let (a, b) = (member(&db, g.id, Role::Member).await, member(&db, g.id, Role::Member).await);
    let Ok(Booking::Booked(p)) = db.book(g.id, open.id, a.id, now()).await else { panic!("a place was free") };
    assert_eq!((p.session_id, p.member_id, p.status), (open.id, a.id, ParticipationStatus::Registered));
    let code_at = |b: Booking, at: OffsetDateTime| match b {
        Booking::Refused { holds_place, session } => refusal(holds_place, session.as_ref(), at),
        other => panic!("not a refusal: {other:?}"),
    };
    let code = |b: Booking| code_at(b, now());
    let again = db.book(g.id, open.id, a.id, now()).await.expect("book");
    assert_eq!(code(again), DomainError::AlreadyRegistered);
    let full = db.book(g.id, open.id, b.id, now()).await.expect("book");
    assert!(matches!(&full, Booking::Refused { holds_place: false, session: Some(s) } if s.registered_count == 1));
    assert_eq!(code(full), DomainError::SessionFull);
    let started = db.book(g.id, open.id, b.id, open.start_time).await.expect("book");
    assert_eq!(code_at(started, open.start_time), DomainError::SessionNotOpen, "a session starting now is not open");
    let missing = db.book(g.id, SessionId(i64::MAX), b.id, now()).await.expect("book");
    assert!(matches!(missing, Booking::Refused { holds_place: false, session: None }));
    let (other, _) = gym(&db).await;
    let outsider = member(&db, other.id, Role::Member).await;
    let foreign = db.book(other.id, open.id, outsider.id, now()).await.expect("book");
    assert!(matches!(foreign, Booking::Refused { session: None, .. }), "another gym's session is missing");
    let stranger = db.book(g.id, open.id, outsider.id, now()).await.expect("book");
    assert!(matches!(stranger, Booking::NotAMember), "only a member of the gym books: {stranger:?}");
    db.cancel_session(g.id, open.id).await.expect("cancel");
    assert!(db.cancel_booking(g.id, open.id, a.id).await.expect("unbook"), "a place can be given back");
    let cancelled = db.book(g.id, open.id, b.id, now()).await.expect("book");
    assert_eq!(code(cancelled), DomainError::SessionNotOpen);
    let s = db.session(g.id, open.id).await.expect("read").expect("present");
    assert_eq!(s.registered_count, 0, "refusals took no place");
});

contract!(fifty_racers_for_ten_places_get_exactly_ten, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let mut members = Vec::new();
    for _ in 0..50 {
        members.push(member(&db, g.id, Role::Member).await.id);
    }
    let results = race(50, |i| {
        let (db, member, session, gym) = (db.clone(), members[i], s.id, g.id);
        async move { db.book(gym, session, member, now()).await }
    })
    .await;
    let booked = results.iter().filter(|r| matches!(r, Ok(Booking::Booked(_)))).count();
    let full = results
        .iter()
        .filter(
            |r| matches!(r, Ok(Booking::Refused { holds_place: false, session: Some(s) }) if s.registered_count == 10),
        )
        .count();
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
    let results = race(50, |_| {
        let (db, member, session, gym) = (db.clone(), m.id, s.id, g.id);
        async move { db.book(gym, session, member, now()).await }
    })
    .await;
    let booked = results.iter().filter(|r| matches!(r, Ok(Booking::Booked(_)))).count();
    let holding = results.iter().filter(|r| matches!(r, Ok(Booking::Refused { holds_place: true, .. }))).count();
    assert_eq!((booked, holding), (1, 49), "{results:?}");
    assert_eq!(db.session(g.id, s.id).await.expect("read").map(|s| s.registered_count), Some(1));
});

contract!(a_place_given_back_is_freed_once_and_can_be_taken_again, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 3).await;
    let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let m = member(&db, g.id, Role::Member).await;
    assert!(!db.cancel_booking(g.id, s.id, m.id).await.expect("unbook"), "no place held yet");
    assert!(matches!(db.book(g.id, s.id, m.id, now()).await, Ok(Booking::Booked(_))));
    let results = race(10, |_| {
        let (db, member, session, gym) = (db.clone(), m.id, s.id, g.id);
        async move { db.cancel_booking(gym, session, member).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| **r == Ok(true)).count(), 1, "{results:?}");
    assert_eq!(db.session(g.id, s.id).await.expect("read").map(|s| s.registered_count), Some(0));
    let rows = db.participants(g.id, s.id, page()).await.expect("participants");
    assert_eq!(rows.iter().map(|p| p.status).collect::<Vec<_>>(), [ParticipationStatus::Cancelled]);
    let Ok(Booking::Booked(again)) = db.book(g.id, s.id, m.id, now()).await else { panic!("rebooked") };
    assert_eq!(again.id, rows[0].id, "rebooking reuses the row");
    assert_eq!(db.cancel_booking(g.id, s.id, UserId(5)).await, Ok(false));
});

contract!(participants_are_every_row_of_a_session_by_id_and_paged, |db| {
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let s = session(&db, g.id, &c, now() + Duration::days(1)).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let m = member(&db, g.id, Role::Member).await;
        let Ok(Booking::Booked(p)) = db.book(g.id, s.id, m.id, now()).await else { panic!("booked") };
        ids.push(p.id);
    }
    let all = db.participants(g.id, s.id, page()).await.expect("participants");
    assert_eq!(all.iter().map(|p| p.id).collect::<Vec<_>>(), ids);
    let second = db.participants(g.id, s.id, Page::new(1, 2).expect("page")).await.expect("participants");
    assert_eq!(second.iter().map(|p| p.id).collect::<Vec<_>>(), ids[1..3]);
    assert_eq!(db.participants(other.id, s.id, page()).await, Ok(vec![]), "not from another gym");
});
