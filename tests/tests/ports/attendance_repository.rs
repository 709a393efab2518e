//! [`AttendanceRepository`]: QR secrets, the check-in read, exactly-once marking under
//! 50 racers, and the member's figures.

use domain::attendance::{AttendanceRepository, CheckInTarget, MarkOutcome};
use domain::schedule::{Booking, ParticipationStatus, SessionStatus};
use domain::{Page, SessionId, UserId};

use super::*;

contract!(a_qr_secret_is_read_and_replaced, |db| {
    let u = user(&db, "auth0|qr").await;
    let first = db.qr_secret(u.id).await.expect("read").expect("a secret from provisioning");
    let next = QrSecret::random();
    db.set_qr_secret(u.id, &next).await.expect("rotate");
    let now_stored = db.qr_secret(u.id).await.expect("read").expect("a secret");
    assert_eq!(now_stored.as_str(), next.as_str());
    assert_ne!(first.as_str(), next.as_str());
    assert!(db.qr_secret(UserId(5)).await.expect("read").is_none());
});

contract!(the_check_in_read_sees_membership_candidates_and_participation, |db| {
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let t = now() + Duration::minutes(10);
    let (a, b) = (session(&db, g.id, &c, t).await, session(&db, g.id, &c, t + Duration::minutes(20)).await);
    let far = session(&db, g.id, &c, t + Duration::hours(3)).await;
    let gone = session(&db, g.id, &c, t + Duration::minutes(5)).await;
    db.cancel_session(g.id, gone.id).await.expect("cancel");
    let m = member(&db, g.id, Role::Member).await;
    assert!(matches!(db.book(g.id, b.id, m.id, now()).await, Ok(Booking::Booked(_))));
    let window = CheckInTarget::Window { from: now(), until: t + Duration::hours(1) };
    let ctx = db.check_in_context(g.id, m.id, window).await.expect("read").expect("a known user");
    assert!(ctx.is_member);
    assert_eq!(ctx.qr_secret.as_str(), db.qr_secret(m.id).await.expect("read").expect("secret").as_str());
    let mut seen: Vec<_> = ctx.candidates.iter().map(|c| (c.id, c.participation)).collect();
    seen.sort_by_key(|(id, _)| *id);
    let mut want = vec![(a.id, None), (b.id, Some(ParticipationStatus::Registered))];
    want.sort_by_key(|(id, _)| *id);
    assert_eq!(seen, want, "scheduled sessions in the window only, with the member's participation");
    let named = db.check_in_context(g.id, m.id, CheckInTarget::Session(far.id)).await.expect("read").expect("user");
    assert_eq!(named.candidates.iter().map(|c| c.id).collect::<Vec<_>>(), [far.id]);
    let named = db.check_in_context(g.id, m.id, CheckInTarget::Session(gone.id)).await.expect("read").expect("user");
    assert_eq!(named.candidates.iter().map(|c| c.status).collect::<Vec<_>>(), [SessionStatus::Cancelled]);
    let foreign = db.check_in_context(other.id, m.id, CheckInTarget::Session(a.id)).await.expect("read");
    let foreign = foreign.expect("a known user");
    assert!(!foreign.is_member && foreign.candidates.is_empty(), "another gym sees neither");
    assert!(db.check_in_context(g.id, UserId(5), CheckInTarget::Session(a.id)).await.expect("read").is_none());
});

contract!(marking_keeps_a_booked_place_counts_a_walk_in_and_happens_once, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 1).await;
    let s = session(&db, g.id, &c, now() + Duration::minutes(10)).await;
    let (booked, walk_in) = (member(&db, g.id, Role::Member).await, member(&db, g.id, Role::Member).await);
    assert!(matches!(db.book(g.id, s.id, booked.id, now()).await, Ok(Booking::Booked(_))));
    let registered = Some(ParticipationStatus::Registered);
    let mark = |u: UserId, seen| db.mark_attended(g.id, s.id, u, seen, None, now());
    assert_eq!(mark(booked.id, registered).await, Ok(MarkOutcome::Marked { created: false }));
    assert_eq!(mark(booked.id, registered).await, Ok(MarkOutcome::AlreadyAttended), "a stale hint changes nothing");
    assert_eq!(mark(walk_in.id, None).await, Ok(MarkOutcome::Marked { created: true }));
    let after = db.session(g.id, s.id).await.expect("read").expect("session");
    assert_eq!(after.registered_count, 2, "the walk-in takes a place past capacity; the booked one is kept");
    let (_, stranger) = gym(&db).await;
    assert_eq!(mark(stranger.id, None).await, Ok(MarkOutcome::NotAMember), "a non-member is never walked in");
    // A member who left after the session started keeps the booking as history, and
    // is refused at the door even with the registered hint of an earlier read.
    let leaver = member(&db, g.id, Role::Member).await;
    let roomy = session(&db, g.id, &class(&db, g.id, 5).await, now() + Duration::minutes(10)).await;
    assert!(matches!(db.book(g.id, roomy.id, leaver.id, now()).await, Ok(Booking::Booked(_))));
    db.remove_member(g.id, leaver.id, roomy.start_time + Duration::minutes(1)).await.expect("leave");
    let left = db.mark_attended(g.id, roomy.id, leaver.id, registered, None, now()).await;
    assert_eq!(left, Ok(MarkOutcome::NotAMember));
    let rows = db.participants(g.id, roomy.id, Page::new(0, 10).expect("page")).await.expect("participants");
    assert_eq!(rows.iter().map(|p| p.status).collect::<Vec<_>>(), [ParticipationStatus::Registered]);
    db.cancel_session(g.id, s.id).await.expect("cancel");
    let late = member(&db, g.id, Role::Member).await;
    assert_eq!(mark(late.id, None).await, Ok(MarkOutcome::SessionGone));
    let gone = db.mark_attended(g.id, SessionId(i64::MAX), late.id, None, None, now()).await;
    assert_eq!(gone, Ok(MarkOutcome::SessionGone));
});

contract!(fifty_racing_marks_of_one_member_in_one_session_mark_once, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 5).await;
    let s = session(&db, g.id, &c, now() + Duration::minutes(10)).await;
    let m = member(&db, g.id, Role::Member).await;
    let results = race(50, |_| {
        let (db, gym, session, member) = (db.clone(), g.id, s.id, m.id);
        async move { db.mark_attended(gym, session, member, None, None, now()).await }
    })
    .await;
    let marked = results.iter().filter(|r| matches!(r, Ok(MarkOutcome::Marked { .. }))).count();
    let already = results.iter().filter(|r| **r == Ok(MarkOutcome::AlreadyAttended)).count();
    assert_eq!((marked, already), (1, 49), "{results:?}");
    assert_eq!(db.session(g.id, s.id).await.expect("read").map(|s| s.registered_count), Some(1));
});

contract!(fifty_racing_marks_across_a_window_mark_one_session, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 5).await;
    let t = now() + Duration::minutes(10);
    let sessions = [session(&db, g.id, &c, t).await.id, session(&db, g.id, &c, t + Duration::minutes(5)).await.id];
    let m = member(&db, g.id, Role::Member).await;
    let window = Some((now(), t + Duration::minutes(30)));
    let results = race(50, |i| {
        let (db, gym, session, member) = (db.clone(), g.id, sessions[i % 2], m.id);
        async move { db.mark_attended(gym, session, member, None, window, now()).await }
    })
    .await;
    let marked = results.iter().filter(|r| matches!(r, Ok(MarkOutcome::Marked { .. }))).count();
    assert_eq!(marked, 1, "one check-in per member per window: {results:?}");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let mut counts = Vec::new();
    for id in sessions {
        counts.push(db.session(g.id, id).await.expect("read").expect("session").registered_count);
    }
    counts.sort_unstable();
    assert_eq!(counts, [0, 1]);
});

contract!(the_members_figures_follow_their_attendances, |db| {
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let m = member(&db, g.id, Role::Member).await;
    assert_eq!(db.last_attendance(g.id, m.id).await, Ok(None));
    assert_eq!(db.attendance_counts(g.id, m.id, now()).await, Ok((0, 0, None)));
    let old = session(&db, g.id, &c, now() - Duration::days(40)).await;
    let recent = session(&db, g.id, &c, now() - Duration::days(2)).await;
    let (t_old, t_recent) = (old.start_time + Duration::minutes(1), recent.start_time + Duration::minutes(1));
    assert!(matches!(db.mark_attended(g.id, old.id, m.id, None, None, t_old).await, Ok(MarkOutcome::Marked { .. })));
    let marked = db.mark_attended(g.id, recent.id, m.id, None, None, t_recent).await;
    assert!(matches!(marked, Ok(MarkOutcome::Marked { .. })));
    assert_eq!(db.last_attendance(g.id, m.id).await, Ok(Some(t_recent)));
    assert_eq!(db.last_attendance(other.id, m.id).await, Ok(None), "figures are per gym");
    let since = now() - Duration::days(30);
    assert_eq!(db.attendance_counts(g.id, m.id, since).await, Ok((2, 1, Some(t_recent))), "(in all, since, last)");
    let history = db.history(g.id, m.id, Page::new(0, 10).expect("page")).await.expect("history");
    assert_eq!(history.iter().map(|(s, t)| (s.id, *t)).collect::<Vec<_>>(), [(recent.id, t_recent), (old.id, t_old)]);
    let paged = db.history(g.id, m.id, Page::new(1, 10).expect("page")).await.expect("history");
    assert_eq!(paged.iter().map(|(s, _)| s.id).collect::<Vec<_>>(), [old.id]);
});

contract!(upcoming_registrations_are_the_booked_places_ahead_soonest_first, |db| {
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let m = member(&db, g.id, Role::Member).await;
    let mut ahead = Vec::new();
    for days in [3, 1, 2] {
        let s = session(&db, g.id, &c, now() + Duration::days(days)).await;
        assert!(matches!(db.book(g.id, s.id, m.id, now()).await, Ok(Booking::Booked(_))));
        ahead.push((s.start_time, s.id));
    }
    ahead.sort();
    let cancelled = session(&db, g.id, &c, now() + Duration::hours(5)).await;
    assert!(matches!(db.book(g.id, cancelled.id, m.id, now()).await, Ok(Booking::Booked(_))));
    db.cancel_session(g.id, cancelled.id).await.expect("cancel");
    let given_back = session(&db, g.id, &c, now() + Duration::hours(6)).await;
    assert!(matches!(db.book(g.id, given_back.id, m.id, now()).await, Ok(Booking::Booked(_))));
    assert!(db.cancel_booking(g.id, given_back.id, m.id).await.expect("unbook"));
    let got = db.upcoming_registrations(g.id, m.id, now(), 5).await.expect("upcoming");
    assert_eq!(got.iter().map(|s| s.id).collect::<Vec<_>>(), ahead.iter().map(|(_, id)| *id).collect::<Vec<_>>());
    let first = db.upcoming_registrations(g.id, m.id, now(), 1).await.expect("upcoming");
    assert_eq!(first.iter().map(|s| s.id).collect::<Vec<_>>(), [ahead[0].1]);
    let later = db.upcoming_registrations(g.id, m.id, now() + Duration::days(4), 5).await;
    assert_eq!(later, Ok(vec![]), "nothing ahead of then");
});
