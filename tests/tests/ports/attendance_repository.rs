//! [`AttendanceRepository`]: QR secrets, the check-in read, the member's lock read,
//! exactly-once check-in under 50 racers (the service deciding under the locks), and
//! the member's figures.

use domain::attendance::{AttendanceRepository, CheckInTarget, ContextAsk, QrCode, QrMode};
use domain::schedule::{ParticipationStatus, SessionStatus};
use domain::{DomainError, Page, UserId};

use super::*;

/// The user's QR secret as the gym's desk reads it.
async fn secret(db: &Db, gym: GymId, user: UserId) -> QrSecret {
    db.qr_of(gym, user).await.expect("read").expect("a secret").0
}

contract!(a_qr_secret_is_read_and_replaced, |db| {
    let (g, _) = gym(&db).await;
    let u = user(&db, "auth0|qr").await;
    let (first, mode) = db.qr_of(g.id, u.id).await.expect("read").expect("a secret from provisioning");
    assert_eq!(mode, QrMode::Static, "a new gym reads printed codes");
    assert_eq!(first.key().map(str::len), Some(64), "a key of rotating codes from provisioning");
    let next = QrSecret::random();
    in_tx!(db, |tx| db.set_qr_secret(tx, u.id, &next)).expect("rotate");
    let now_stored = secret(&db, g.id, u.id).await;
    assert_eq!((now_stored.as_str(), now_stored.key()), (next.as_str(), next.key()));
    assert_ne!(first.as_str(), next.as_str());
    assert_ne!(first.key(), next.key());
    assert!(db.qr_of(g.id, UserId(5)).await.expect("read").is_none());
    assert!(db.qr_of(GymId(5), u.id).await.expect("read").is_none());
});

contract!(rotating_steps_are_kept_per_member_and_never_go_back, |db| {
    let (g, _) = gym(&db).await;
    let m = member(&db, g.id, Role::Member).await;
    let read = |db: Arc<Db>| async move {
        let ask = ContextAsk { gym: g.id, user: m.id, target: CheckInTarget::Session(domain::SessionId(1)) };
        in_tx!(db, |tx| db.check_in_contexts(tx, &[ask])).expect("read")[0].clone().expect("ctx").qr_step_used
    };
    assert_eq!(read(db.clone()).await, None);
    in_tx!(db, |tx| db.use_qr_steps(tx, &[(g.id, m.id, 100)])).expect("use");
    assert_eq!(read(db.clone()).await, Some(100));
    in_tx!(db, |tx| db.use_qr_steps(tx, &[(g.id, m.id, 99)])).expect("use");
    assert_eq!(read(db.clone()).await, Some(100), "a step never goes back");
});

contract!(the_check_in_read_sees_membership_candidates_and_participation, |db| {
    let (g, _) = gym(&db).await;
    let (other, _) = gym(&db).await;
    let c = class(&db, g.id, 10).await;
    let t = now() + Duration::minutes(10);
    let (a, b) = (session(&db, g.id, &c, t).await, session(&db, g.id, &c, t + Duration::minutes(20)).await);
    let far = session(&db, g.id, &c, t + Duration::hours(3)).await;
    let gone = session(&db, g.id, &c, t + Duration::minutes(5)).await;
    in_tx!(db, |tx| db.cancel_session(tx, g.id, gone.id)).expect("cancel");
    let m = member(&db, g.id, Role::Member).await;
    services(&db).schedule.register(&actor(m.id, g.id, Role::Member), b.id, Default::default()).await.expect("book");
    let window = CheckInTarget::Window { from: now(), until: t + Duration::hours(1) };
    // Every kind of ask in one read, answered in the order asked.
    let ask = |gym: GymId, user: UserId, target: CheckInTarget| ContextAsk { gym, user, target };
    let asks = [
        ask(g.id, m.id, window),
        ask(g.id, m.id, CheckInTarget::Session(far.id)),
        ask(g.id, m.id, CheckInTarget::Session(gone.id)),
        ask(other.id, m.id, CheckInTarget::Session(a.id)),
        ask(g.id, UserId(5), CheckInTarget::Session(a.id)),
    ];
    let read = in_tx!(db, |tx| db.check_in_contexts(tx, &asks)).expect("read");
    assert_eq!(read.len(), asks.len());
    let ctx = read[0].clone().expect("a known user");
    assert!(ctx.is_member);
    assert_eq!(ctx.qr_secret.as_str(), secret(&db, g.id, m.id).await.as_str());
    assert_eq!((ctx.qr_mode, ctx.qr_step_used), (QrMode::Static, None));
    let mut seen: Vec<_> = ctx.candidates.iter().map(|c| (c.id, c.participation)).collect();
    seen.sort_by_key(|(id, _)| *id);
    let mut want = vec![(a.id, None), (b.id, Some(ParticipationStatus::Registered))];
    want.sort_by_key(|(id, _)| *id);
    assert_eq!(seen, want, "scheduled sessions in the window only, with the member's participation");
    let named = read[1].clone().expect("user");
    assert_eq!(named.candidates.iter().map(|c| c.id).collect::<Vec<_>>(), [far.id]);
    let named = read[2].clone().expect("user");
    assert_eq!(named.candidates.iter().map(|c| c.status).collect::<Vec<_>>(), [SessionStatus::Cancelled]);
    let foreign = read[3].clone().expect("a known user");
    assert!(!foreign.is_member && foreign.candidates.is_empty(), "another gym sees neither");
    assert!(read[4].is_none(), "an unknown user");
});

contract!(a_check_in_keeps_a_booked_place_counts_a_walk_in_and_refuses_a_leaver, |db| {
    let (g, owner) = gym(&db).await;
    let c = class(&db, g.id, 1).await;
    let s = session(&db, g.id, &c, now() + Duration::minutes(10)).await;
    let (booked, walk_in) = (member(&db, g.id, Role::Member).await, member(&db, g.id, Role::Member).await);
    let svc = services(&db);
    svc.schedule.register(&actor(booked.id, g.id, Role::Member), s.id, Default::default()).await.expect("book");
    let desk = actor(owner.id, g.id, Role::Owner);
    let qr = |u: UserId| {
        let db = db.clone();
        async move { QrCode::format(u, &secret(&db, g.id, u).await) }
    };
    let code = qr(booked.id).await;
    let first = svc.attendance.check_in(&desk, &code, None).await.expect("checked in");
    assert!(!first.new_participation);
    assert_eq!(svc.attendance.check_in(&desk, &code, None).await, Err(DomainError::AlreadyCheckedIn));
    let walked = svc.attendance.check_in(&desk, &qr(walk_in.id).await, Some(s.id)).await.expect("walk-in");
    assert!(walked.new_participation);
    let after = db.session(g.id, s.id).await.expect("read").expect("session");
    assert_eq!(after.registered_count, 2, "the walk-in takes a place past capacity; the booked one is kept");
    let leaver = member(&db, g.id, Role::Member).await;
    let leaver_code = qr(leaver.id).await;
    svc.gyms.remove_member(&actor(leaver.id, g.id, Role::Member), leaver.id).await.expect("leave");
    assert_eq!(svc.attendance.check_in(&desk, &leaver_code, None).await, Err(DomainError::NotAMember));
});

contract!(fifty_racing_check_ins_of_one_member_in_one_session_mark_once, |db| {
    let (g, owner) = gym(&db).await;
    let c = class(&db, g.id, 5).await;
    let s = session(&db, g.id, &c, now() + Duration::minutes(10)).await;
    let m = member(&db, g.id, Role::Member).await;
    let code = QrCode::format(m.id, &secret(&db, g.id, m.id).await);
    let svc = services(&db);
    let results = race(50, |_| {
        let (attendance, code, desk) = (svc.attendance.clone(), code.clone(), actor(owner.id, g.id, Role::Owner));
        async move { attendance.check_in(&desk, &code, Some(s.id)).await }
    })
    .await;
    let marked = results.iter().filter(|r| r.is_ok()).count();
    let already = results.iter().filter(|r| **r == Err(DomainError::AlreadyCheckedIn)).count();
    assert_eq!((marked, already), (1, 49), "{results:?}");
    assert_eq!(db.session(g.id, s.id).await.expect("read").map(|s| s.registered_count), Some(1));
});

contract!(fifty_racing_check_ins_across_a_window_mark_one_session, |db| {
    let (g, owner) = gym(&db).await;
    let c = class(&db, g.id, 5).await;
    let t = now() + Duration::minutes(10);
    let sessions = [session(&db, g.id, &c, t).await.id, session(&db, g.id, &c, t + Duration::minutes(5)).await.id];
    let m = member(&db, g.id, Role::Member).await;
    let code = QrCode::format(m.id, &secret(&db, g.id, m.id).await);
    let svc = services(&db);
    let results = race(50, |i| {
        let (attendance, code, desk) = (svc.attendance.clone(), code.clone(), actor(owner.id, g.id, Role::Owner));
        // Half name a session (the desk's explicit choice), half let the rule choose.
        let named = (i % 2 == 0).then_some(sessions[i % 4 / 2]);
        async move { (named, attendance.check_in(&desk, &code, named).await) }
    })
    .await;
    let chosen: Vec<_> = results.iter().filter(|(named, r)| named.is_none() && r.is_ok()).collect();
    assert!(chosen.len() <= 1, "a chosen session checks a member in once per window: {results:?}");
    assert!(results.iter().all(|(_, r)| r.is_ok() || *r == Err(DomainError::AlreadyCheckedIn)), "{results:?}");
    let mut total = 0;
    for id in sessions {
        let s = db.session(g.id, id).await.expect("read").expect("session");
        let rows = db.participants(g.id, id, Page::new(0, 10).expect("page")).await.expect("rows");
        assert_eq!(i64::from(s.registered_count), rows.len() as i64, "the count is the rows");
        total += rows.len();
    }
    assert!((1..=2).contains(&total), "{total} attendances");
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
    for (s, t) in [(&old, t_old), (&recent, t_recent)] {
        let attended = ParticipationStatus::Attended;
        in_tx!(db, |tx| db.set_participation(tx, g.id, s.id, m.id, attended, Some(t), t)).expect("attended");
    }
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
    let (svc, me) = (services(&db), actor(m.id, g.id, Role::Member));
    let mut ahead = Vec::new();
    for days in [3, 1, 2] {
        let s = session(&db, g.id, &c, now() + Duration::days(days)).await;
        svc.schedule.register(&me, s.id, Default::default()).await.expect("book");
        ahead.push((s.start_time, s.id));
    }
    ahead.sort();
    let cancelled = session(&db, g.id, &c, now() + Duration::hours(5)).await;
    svc.schedule.register(&me, cancelled.id, Default::default()).await.expect("book");
    in_tx!(db, |tx| db.cancel_session(tx, g.id, cancelled.id)).expect("cancel");
    let given_back = session(&db, g.id, &c, now() + Duration::hours(6)).await;
    svc.schedule.register(&me, given_back.id, Default::default()).await.expect("book");
    svc.schedule.unregister(&me, given_back.id).await.expect("unbook");
    let got = db.upcoming_registrations(g.id, m.id, now(), 5).await.expect("upcoming");
    assert_eq!(got.iter().map(|s| s.id).collect::<Vec<_>>(), ahead.iter().map(|(_, id)| *id).collect::<Vec<_>>());
    let first = db.upcoming_registrations(g.id, m.id, now(), 1).await.expect("upcoming");
    assert_eq!(first.iter().map(|s| s.id).collect::<Vec<_>>(), [ahead[0].1]);
    let later = db.upcoming_registrations(g.id, m.id, now() + Duration::days(4), 5).await;
    assert_eq!(later, Ok(vec![]), "nothing ahead of then");
});

gymapi_tests::per_backend!(two_instances_running_the_no_show_job_at_once_mark_each_place_once, 4, |backend| {
    let (store, db) = open(backend).await;
    let (g, _) = gym(&db).await;
    let c = class(&db, g.id, 60).await;
    let ended = session(&db, g.id, &c, now() + Duration::minutes(2)).await;
    let ahead = session(&db, g.id, &c, now() + Duration::hours(5)).await;
    let svc = services(&db);
    let mut members = Vec::new();
    for _ in 0..24 {
        let m = member(&db, g.id, Role::Member).await;
        svc.schedule.register(&actor(m.id, g.id, Role::Member), ended.id, Default::default()).await.expect("book");
        members.push(m.id);
    }
    let keeps = member(&db, g.id, Role::Member).await;
    svc.schedule.register(&actor(keeps.id, g.id, Role::Member), ahead.id, Default::default()).await.expect("book");
    // A second instance: a pool of its own on the same database. Both clocks are two
    // hours on: the first session is over and its check-in window closed.
    let other = Arc::new(store.another_instance().await);
    let later: Arc<dyn domain::clock::Clock> = Arc::new(domain::clock::FixedClock(now() + Duration::hours(2)));
    let job = |db: &Arc<Db>| {
        let uow = UnitOfWork::new(db.clone(), Dispatcher::new().with_outbox(db.clone()));
        let credits = domain::credits::Credits::new(db.clone());
        AttendanceService::new(db.clone(), db.clone(), db.clone(), credits, uow, later.clone(), Duration::minutes(30))
    };
    let (a, b) = (job(&db), job(&other));
    let marked = race(8, |i| {
        let svc = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { svc.mark_no_shows().await.expect("the job") }
    })
    .await;
    assert_eq!(marked.iter().sum::<usize>(), members.len(), "each place once: {marked:?}");
    assert_eq!(a.mark_no_shows().await.expect("again"), 0, "nothing left: the job is idempotent");
    let statuses = |s: domain::SessionId| {
        let db = db.clone();
        async move {
            let list = db.participants(g.id, s, Page::default()).await.expect("read");
            list.into_iter().map(|p| p.status).collect::<Vec<_>>()
        }
    };
    assert!(statuses(ended.id).await.iter().all(|s| *s == ParticipationStatus::NoShow));
    assert_eq!(statuses(ahead.id).await, [ParticipationStatus::Registered], "a session ahead keeps its bookings");
    // Each member is in exactly one fact of the session.
    let conn = sea_orm::Database::connect(store.file.url.as_str()).await.expect("connect");
    let sql = format!("SELECT CAST(payload AS TEXT) AS p FROM outbox WHERE gym_id = {} AND type = 'no_shows'", g.id.0);
    let rows = sea_orm::ConnectionTrait::query_all_raw(
        &conn,
        sea_orm::Statement::from_string(sea_orm::ConnectionTrait::get_database_backend(&conn), sql),
    )
    .await
    .expect("facts");
    let mut in_facts: Vec<i64> = rows
        .iter()
        .flat_map(|r| {
            let p: serde_json::Value =
                serde_json::from_str(&r.try_get::<String>("", "p").expect("payload")).expect("json");
            assert_eq!(p["session"], ended.id.0);
            p["members"].as_array().expect("members").iter().map(|m| m.as_i64().expect("id")).collect::<Vec<_>>()
        })
        .collect();
    in_facts.sort_unstable();
    let mut want: Vec<i64> = members.iter().map(|m| m.0).collect();
    want.sort_unstable();
    assert_eq!(in_facts, want);
    let _ = conn.close().await;
});
