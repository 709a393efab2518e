//! Issue 21, credits that move with bookings: a gym that requires passes books with
//! the member's best usable pass, takes its credit in the booking's transaction,
//! gives it back on a cancellation in time or a cancelled session, keeps it on a late
//! cancel, takes it from a promoted member or skips one without a pass, and makes a
//! walk-in at the door use one too. A gym that requires none books as before.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, own_connection, qr_of, two_instances};
use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use time::Duration;
use time::macros::datetime;

/// A Monday morning, so that a week's sessions fall in one ISO week.
const MONDAY: time::OffsetDateTime = datetime!(2027-01-04 08:00 UTC);

async fn requires_passes(app: &TestApp, owner: &TestUser, gym: i64, cutoff: i64) {
    let body = json!({"booking_requires_pass": true, "cancel_cutoff_minutes": cutoff});
    let (status, g) = app.send_json(Method::PATCH, "/api/v1/gyms/current", owner, gym, &body).await;
    assert_eq!(status, 200, "{g}");
    assert_eq!((&g["booking_requires_pass"], &g["cancel_cutoff_minutes"]), (&json!(true), &json!(cutoff)));
}

async fn plan(app: &TestApp, owner: &TestUser, gym: i64, body: Value) -> i64 {
    let (status, plan) = app.send_json(Method::POST, "/api/v1/plans", owner, gym, &body).await;
    assert_eq!(status, 201, "{plan}");
    plan["id"].as_i64().expect("plan id")
}

async fn sell(app: &TestApp, owner: &TestUser, gym: i64, member: &TestUser, plan: i64) -> Value {
    let path = format!("/api/v1/members/{}/passes", member.id);
    let (status, pass) = app.send_json(Method::POST, &path, owner, gym, &json!({"plan_id": plan})).await;
    assert_eq!(status, 201, "{pass}");
    pass
}

async fn credits_left(app: &TestApp, member: &TestUser, gym: i64, pass: &Value) -> Value {
    let (_, passes) = app.send_as(Method::GET, &format!("/api/v1/members/{}/passes", member.id), member, gym).await;
    passes.as_array().into_iter().flatten().find(|p| p["id"] == pass["id"]).expect("the pass")["credits_left"].clone()
}

async fn ledger_kinds(app: &TestApp, member: &TestUser, gym: i64) -> Vec<(String, i64)> {
    let (status, ledger) =
        app.send_as(Method::GET, &format!("/api/v1/members/{}/ledger", member.id), member, gym).await;
    assert_eq!(status, 200, "{ledger}");
    let mut got: Vec<(String, i64)> = ledger
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["kind"].as_str().unwrap_or("?").to_owned(), e["credits"].as_i64().unwrap_or(0)))
        .collect();
    got.reverse();
    got
}

async fn book(app: &TestApp, member: &TestUser, gym: i64, session: &Value) -> (reqwest::StatusCode, Value) {
    let path = format!("/api/v1/schedule/sessions/{}/register", session["id"]);
    app.send_as(Method::POST, &path, member, gym).await
}

async fn cancel(app: &TestApp, member: &TestUser, gym: i64, session: &Value) {
    let path = format!("/api/v1/schedule/sessions/{}/register", session["id"]);
    let (status, body) = app.send_as(Method::DELETE, &path, member, gym).await;
    assert_eq!(status, 204, "{body}");
}

async fn participant_status(app: &TestApp, staff: &TestUser, gym: i64, session: &Value, member: &TestUser) -> Value {
    let path = format!("/api/v1/schedule/sessions/{}/participants", session["id"]);
    let (_, list) = app.send_as(Method::GET, &path, staff, gym).await;
    list.as_array().into_iter().flatten().find(|p| p["member_id"] == member.id).expect("a row")["status"].clone()
}

/// The gym's facts of a kind in the change feed, once `n` are numbered (the
/// sequencer numbers them within about a second of their commit).
async fn facts(app: &TestApp, owner: &TestUser, gym: i64, kind: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..50 {
        let (status, changes) = app.send_as(Method::GET, "/api/v1/changes?after=0&limit=500", owner, gym).await;
        assert_eq!(status, 200, "{changes}");
        got = changes["changes"].as_array().into_iter().flatten().filter(|c| c["type"] == kind).cloned().collect();
        if got.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    got
}

both_backends!(a_booking_uses_the_best_pass_gives_the_credit_back_in_time_and_forfeits_it_late, |app| {
    app.clock.set(MONDAY);
    let (owner, gym) = app.gym().await;
    requires_passes(&app, &owner, gym, 60).await;
    let class = app.class(gym, &owner, 5).await;
    let session = app.session_at(gym, &owner, class, MONDAY + Duration::days(1)).await;
    let ana = app.member(gym, &owner, "member").await;

    // No pass: refused, and a dry run says so without booking.
    assert_error(&book(&app, &ana, gym, &session).await, 409, "no_valid_pass");
    let dry = format!("/api/v1/schedule/sessions/{}/register?dry_run=true", session["id"]);
    let (status, said) = app.send_as(Method::POST, &dry, &ana, gym).await;
    assert_eq!((status.as_u16(), said), (200, json!({"ok": false, "code": "no_valid_pass", "pass_id": null})));

    // Two packs: the one that expires first is used.
    let long = plan(&app, &owner, gym, json!({"name": "Long", "kind": "pack", "credits": 3, "valid_days": 60})).await;
    let short = plan(&app, &owner, gym, json!({"name": "Short", "kind": "pack", "credits": 2, "valid_days": 10})).await;
    let long_pass = sell(&app, &owner, gym, &ana, long).await;
    let short_pass = sell(&app, &owner, gym, &ana, short).await;
    let (status, said) = app.send_as(Method::POST, &dry, &ana, gym).await;
    assert_eq!((status.as_u16(), said), (200, json!({"ok": true, "code": null, "pass_id": short_pass["id"]})));
    assert_eq!(credits_left(&app, &ana, gym, &short_pass).await, 2, "a dry run takes nothing");
    let (_, s) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", session["id"]), &ana, gym).await;
    assert_eq!(s["registered_count"], 0, "a dry run books nothing");

    let (status, booked) = book(&app, &ana, gym, &session).await;
    assert_eq!(status, 201, "{booked}");
    assert_eq!(booked["pass_id"], short_pass["id"]);
    assert_eq!(credits_left(&app, &ana, gym, &short_pass).await, 1);

    // In time (a day ahead, the cut-off is an hour): the credit goes back.
    cancel(&app, &ana, gym, &session).await;
    assert_eq!(credits_left(&app, &ana, gym, &short_pass).await, 2);
    assert_eq!(participant_status(&app, &owner, gym, &session, &ana).await, "cancelled");

    // Booked again, then cancelled 30 minutes before the start: late, the gym keeps it.
    assert_eq!(book(&app, &ana, gym, &session).await.0, 201);
    app.clock.set(MONDAY + Duration::days(1) - Duration::minutes(30));
    cancel(&app, &ana, gym, &session).await;
    assert_eq!(participant_status(&app, &owner, gym, &session, &ana).await, "late_cancelled");
    assert_eq!(credits_left(&app, &ana, gym, &short_pass).await, 1);
    assert_eq!(credits_left(&app, &ana, gym, &long_pass).await, 3, "the other pack untouched");
    assert_eq!(
        ledger_kinds(&app, &ana, gym).await,
        [
            ("grant".into(), 3),
            ("grant".into(), 2),
            ("use".into(), -1),
            ("refund".into(), 1),
            ("use".into(), -1),
            ("forfeit".into(), 0)
        ]
    );
    // Each booking's entries name its participation; the freed place is free again.
    let (_, s) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", session["id"]), &ana, gym).await;
    assert_eq!(s["registered_count"], 0);
    assert_eq!(facts(&app, &owner, gym, "credit_used", 2).await.len(), 2);
    assert_eq!(facts(&app, &owner, gym, "credit_refunded", 1).await.len(), 1);

    // An unlimited pass goes before any pack.
    let unlimited = plan(&app, &owner, gym, json!({"name": "Open", "kind": "unlimited", "valid_days": 30})).await;
    let open = sell(&app, &owner, gym, &ana, unlimited).await;
    let later = app.session_at(gym, &owner, class, MONDAY + Duration::days(2)).await;
    let (status, booked) = book(&app, &ana, gym, &later).await;
    assert_eq!((status.as_u16(), &booked["pass_id"]), (201, &open["id"]), "{booked}");
    assert_eq!(credits_left(&app, &ana, gym, &short_pass).await, 1);

    // The report counts every movement per plan, from the ledger.
    let (status, report) =
        app.send_as(Method::GET, "/api/v1/reports/passes?from=2027-01-04&to=2027-01-05", &owner, gym).await;
    assert_eq!(status, 200, "{report}");
    let row = |plan: i64| -> Vec<Value> {
        let r = report.as_array().into_iter().flatten().find(|r| r["plan_id"] == plan).expect("the plan's row");
        ["passes_sold", "credits_granted", "credits_used", "credits_refunded", "credits_forfeited", "credits_expired"]
            .iter()
            .map(|k| r[*k].clone())
            .collect()
    };
    assert_eq!(row(short), [json!(1), json!(2), json!(2), json!(1), json!(1), json!(0)]);
    assert_eq!(row(long), [json!(1), json!(3), json!(0), json!(0), json!(0), json!(0)]);
    assert_eq!(row(unlimited), [json!(1), json!(0), json!(0), json!(0), json!(0), json!(0)]);
    assert_error(&app.send_as(Method::GET, "/api/v1/reports/passes", &ana, gym).await, 403, "forbidden");
});

both_backends!(weekly_limits_categories_and_frozen_days_refuse_a_pass, |app| {
    app.clock.set(MONDAY);
    let (owner, gym) = app.gym().await;
    requires_passes(&app, &owner, gym, 0).await;
    let body = json!({"name": "Yoga", "duration_minutes": 60, "max_capacity": 10, "category": " YOGA "});
    let (_, yoga) = app.send_json(Method::POST, "/api/v1/schedule/classes", &owner, gym, &body).await;
    let yoga = yoga["id"].as_i64().expect("class");
    let spinning = app.class(gym, &owner, 10).await;
    let capped = plan(
        &app,
        &owner,
        gym,
        json!({"name": "Yoga twice", "kind": "unlimited", "valid_days": 30, "weekly_limit": 2, "categories": ["yoga"]}),
    )
    .await;
    let ana = app.member(gym, &owner, "member").await;
    let pass = sell(&app, &owner, gym, &ana, capped).await;
    let tue = app.session_at(gym, &owner, yoga, MONDAY + Duration::days(1)).await;
    let wed = app.session_at(gym, &owner, yoga, MONDAY + Duration::days(2)).await;
    let thu = app.session_at(gym, &owner, yoga, MONDAY + Duration::days(3)).await;
    let next_week = app.session_at(gym, &owner, yoga, MONDAY + Duration::days(7)).await;
    let spin = app.session_at(gym, &owner, spinning, MONDAY + Duration::days(1)).await;
    assert_eq!(book(&app, &ana, gym, &tue).await.0, 201);
    assert_eq!(book(&app, &ana, gym, &wed).await.0, 201);
    assert_error(&book(&app, &ana, gym, &thu).await, 409, "weekly_limit_reached");
    assert_eq!(book(&app, &ana, gym, &next_week).await.0, 201, "another ISO week");
    assert_error(&book(&app, &ana, gym, &spin).await, 409, "no_valid_pass");
    // A booking given back in time frees its week's use.
    cancel(&app, &ana, gym, &wed).await;
    assert_eq!(book(&app, &ana, gym, &thu).await.0, 201);

    // Frozen over the session's day: not usable that day.
    let path = format!("/api/v1/members/{}/passes/{}/freeze", ana.id, pass["id"]);
    let dates = json!({"from": (MONDAY + Duration::days(14)).date().to_string(), "until": (MONDAY + Duration::days(15)).date().to_string()});
    let (status, frozen) = app.send_json(Method::POST, &path, &owner, gym, &dates).await;
    assert_eq!(status, 200, "{frozen}");
    let in_freeze = app.session_at(gym, &owner, yoga, MONDAY + Duration::days(14) + Duration::hours(10)).await;
    assert_error(&book(&app, &ana, gym, &in_freeze).await, 409, "no_valid_pass");
});

both_backends!(a_gym_that_requires_no_pass_books_as_before_and_leaves_the_ledger_alone, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 5).await;
    let session = app.session_at(gym, &owner, class, gymapi_tests::now() + Duration::hours(3)).await;
    let ana = app.member(gym, &owner, "member").await;
    let five = plan(&app, &owner, gym, json!({"name": "Five", "kind": "pack", "credits": 5, "valid_days": 30})).await;
    let pass = sell(&app, &owner, gym, &ana, five).await;
    let (status, booked) = book(&app, &ana, gym, &session).await;
    assert_eq!((status.as_u16(), &booked["pass_id"]), (201, &json!(null)));
    cancel(&app, &ana, gym, &session).await;
    assert_eq!(credits_left(&app, &ana, gym, &pass).await, 5);
    assert_eq!(ledger_kinds(&app, &ana, gym).await, [("grant".into(), 5)]);
});

both_backends!(a_cancelled_session_refunds_every_credit_and_a_promotion_takes_one_or_skips, |app| {
    app.clock.set(MONDAY);
    let (owner, gym) = app.gym().await;
    requires_passes(&app, &owner, gym, 0).await;
    let one = app.class(gym, &owner, 1).await;
    let two = app.class(gym, &owner, 2).await;
    let pack = plan(&app, &owner, gym, json!({"name": "Three", "kind": "pack", "credits": 3, "valid_days": 30})).await;
    let (ana, bob, cid) = (
        app.member(gym, &owner, "member").await,
        app.member(gym, &owner, "member").await,
        app.member(gym, &owner, "member").await,
    );
    let (ana_pass, cid_pass) = (sell(&app, &owner, gym, &ana, pack).await, sell(&app, &owner, gym, &cid, pack).await);

    // Capacity 1: Ana books; Bob (no pass) and Cid (a pack) queue, taking nothing.
    let small = app.session_at(gym, &owner, one, MONDAY + Duration::days(1)).await;
    assert_eq!(book(&app, &ana, gym, &small).await.0, 201);
    let queue = format!("/api/v1/schedule/sessions/{}/register", small["id"]);
    for m in [&bob, &cid] {
        let (status, body) = app.send_json(Method::POST, &queue, m, gym, &json!({"waitlist": true})).await;
        assert_eq!((status.as_u16(), &body["status"]), (201, &json!("waitlisted")), "{body}");
    }
    assert_eq!(credits_left(&app, &cid, gym, &cid_pass).await, 3, "a queue takes nothing");
    // Ana gives her place back: Bob has no pass and leaves the queue; Cid is promoted
    // and pays with his credit, in the same transaction.
    cancel(&app, &ana, gym, &small).await;
    assert_eq!(credits_left(&app, &ana, gym, &ana_pass).await, 3);
    assert_eq!(participant_status(&app, &owner, gym, &small, &bob).await, "cancelled");
    assert_eq!(participant_status(&app, &owner, gym, &small, &cid).await, "registered");
    assert_eq!(credits_left(&app, &cid, gym, &cid_pass).await, 2);
    let skipped = facts(&app, &owner, gym, "waitlist_skipped", 1).await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["data"]["members"], json!([bob.id]), "{skipped:?}");
    // Ana queues for the place she gave back: a place in the queue holds no pass, and
    // leaving the queue gives nothing back (her credit came back with her cancel).
    let (status, queued) = app.send_json(Method::POST, &queue, &ana, gym, &json!({"waitlist": true})).await;
    assert_eq!((status.as_u16(), &queued["status"], &queued["pass_id"]), (201, &json!("waitlisted"), &json!(null)));
    cancel(&app, &ana, gym, &small).await;
    assert_eq!(credits_left(&app, &ana, gym, &ana_pass).await, 3);
    assert_eq!(
        ledger_kinds(&app, &ana, gym).await,
        vec![("grant".into(), 3), ("use".into(), -1), ("refund".into(), 1)]
    );

    // The gym cancels a session: every credit used for it goes back.
    let big = app.session_at(gym, &owner, two, MONDAY + Duration::days(2)).await;
    assert_eq!(book(&app, &ana, gym, &big).await.0, 201);
    assert_eq!(book(&app, &cid, gym, &big).await.0, 201);
    assert_eq!(
        (credits_left(&app, &ana, gym, &ana_pass).await, credits_left(&app, &cid, gym, &cid_pass).await),
        (json!(2), json!(1))
    );
    let path = format!("/api/v1/schedule/sessions/{}/cancel", big["id"]);
    let (status, body) = app.send_as(Method::POST, &path, &owner, gym).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (credits_left(&app, &ana, gym, &ana_pass).await, credits_left(&app, &cid, gym, &cid_pass).await),
        (json!(3), json!(2))
    );
    // Cancelling it again gives nothing back twice.
    assert_eq!(app.send_as(Method::POST, &path, &owner, gym).await.0, 200);
    assert_eq!(credits_left(&app, &ana, gym, &ana_pass).await, 3);
});

both_backends!(a_walk_in_uses_a_credit_and_is_refused_without_one_after_already_checked_in, |app| {
    let (owner, gym) = app.gym().await;
    requires_passes(&app, &owner, gym, 0).await;
    let class = app.class(gym, &owner, 10).await;
    let session = app.session_at(gym, &owner, class, gymapi_tests::now() + Duration::minutes(5)).await;
    let (ana, bob) = (app.member(gym, &owner, "member").await, app.member(gym, &owner, "member").await);
    let checkin = |u: String| json!({"qr_code": u, "session_id": session["id"]});
    let (ana_qr, bob_qr) = (qr_of(&app, gym, &ana).await, qr_of(&app, gym, &bob).await);
    let scan = |body: Value| {
        let (app, owner) = (&app, &owner);
        async move { app.send_json(Method::POST, "/api/v1/attendance/check-in", owner, gym, &body).await }
    };
    assert_error(&scan(checkin(ana_qr.clone())).await, 400, "no_valid_pass");
    let (_, s) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", session["id"]), &owner, gym).await;
    assert_eq!(s["registered_count"], 0, "a refused walk-in takes no place");

    let pack = plan(&app, &owner, gym, json!({"name": "Two", "kind": "pack", "credits": 2, "valid_days": 30})).await;
    let pass = sell(&app, &owner, gym, &ana, pack).await;
    let (status, body) = scan(checkin(ana_qr.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(credits_left(&app, &ana, gym, &pass).await, 1);
    // Checked in already comes before the pass: the second scan takes nothing.
    assert_error(&scan(checkin(ana_qr.clone())).await, 400, "already_checked_in");
    assert_eq!(credits_left(&app, &ana, gym, &pass).await, 1);

    // Scans at once go out in one batch, which keeps the rule per row: Bob (no pass)
    // is refused, Cid (a pack) is checked in beside him.
    let cid = app.member(gym, &owner, "member").await;
    let cid_pass = sell(&app, &owner, gym, &cid, pack).await;
    let cid_qr = qr_of(&app, gym, &cid).await;
    let (bob_got, cid_got) = tokio::join!(scan(checkin(bob_qr)), scan(checkin(cid_qr)));
    assert_error(&bob_got, 400, "no_valid_pass");
    assert_eq!(cid_got.0, 200, "{}", cid_got.1);
    assert_eq!(credits_left(&app, &cid, gym, &cid_pass).await, 1);
    let (_, s) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", session["id"]), &owner, gym).await;
    assert_eq!(s["registered_count"], 2, "two walk-ins in, one refused");
});

two_instances!(racing_bookings_cancellations_waitlists_and_check_ins_keep_every_credit, |a, b| {
    let (owner, gym) = a.gym().await;
    requires_passes(&a, &owner, gym, 0).await;
    let class = a.class(gym, &owner, 3).await;
    let start = gymapi_tests::now() + Duration::minutes(10);
    let sessions = [
        a.session_at(gym, &owner, class, start).await,
        a.session_at(gym, &owner, class, start + Duration::minutes(1)).await,
        a.session_at(gym, &owner, class, gymapi_tests::now() + Duration::hours(5)).await,
    ];
    let mut members = Vec::new();
    for i in 0..10 {
        let m = a.member(gym, &owner, "member").await;
        let credits = 1 + i % 3;
        let p = plan(
            &a,
            &owner,
            gym,
            json!({"name": format!("P{i}"), "kind": "pack", "credits": credits, "valid_days": 30}),
        )
        .await;
        sell(&a, &owner, gym, &m, p).await;
        let qr = qr_of(&a, gym, &m).await;
        members.push((m, qr));
    }
    // 100 racers over both instances: book (or queue), give back, scan at the door.
    let racers = (0..100).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let (m, qr) = &members[i % members.len()];
        let s = &sessions[(i / 10) % sessions.len()];
        let owner = &owner;
        async move {
            let path = format!("/api/v1/schedule/sessions/{}/register", s["id"]);
            match i % 4 {
                0 => app.send_as(Method::POST, &path, m, gym).await,
                1 => app.send_json(Method::POST, &path, m, gym, &json!({"waitlist": true})).await,
                2 => app.send_as(Method::DELETE, &path, m, gym).await,
                _ => {
                    let body = json!({"qr_code": qr, "session_id": s["id"]});
                    app.send_json(Method::POST, "/api/v1/attendance/check-in", owner, gym, &body).await
                }
            }
        }
    });
    let answers = futures_util::future::join_all(racers).await;
    for (status, body) in &answers {
        assert!(status.as_u16() < 500, "no racer fails the server: {status} {body}");
    }
    let answered = |code: u16| answers.iter().filter(|(s, _)| s.as_u16() == code).count();
    // Which racer wins is the scheduler's: a cancel may always come before its booking.
    // Something must have taken credits for the checks below to mean anything.
    let counts = [201, 200, 204, 404, 409, 400].map(|c| (c, answered(c)));
    assert!(answered(201) + answered(200) > 0, "no booking or check-in went through: {counts:?}");

    // In SQL, after the run: every pass's balance is its grant plus its entries and
    // not below zero; each booking took at most one credit and got it back at most
    // once; every place holding a pack's credit has exactly one unreturned use.
    let conn = own_connection(&a.db.url).await;
    let q = |sql: String| {
        let conn = &conn;
        async move { conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql)).await.expect("query") }
    };
    let broken = q(format!(
        "SELECT p.id FROM passes p WHERE p.gym_id = {gym} AND p.kind = 'pack' AND \
         (SELECT COALESCE(SUM(e.credits), 0) FROM credit_entries e WHERE e.gym_id = p.gym_id AND e.pass_id = p.id) <> \
         (SELECT e.balance FROM credit_entries e WHERE e.gym_id = p.gym_id AND e.pass_id = p.id ORDER BY e.seq DESC LIMIT 1) \
         OR (SELECT MIN(e.balance) FROM credit_entries e WHERE e.gym_id = p.gym_id AND e.pass_id = p.id) < 0"
    ))
    .await;
    assert!(broken.is_empty(), "every balance is its ledger's sum, never below zero");
    let twice = q(format!(
        "SELECT participation_id, credit_no, kind FROM credit_entries WHERE gym_id = {gym} \
         AND participation_id IS NOT NULL GROUP BY participation_id, credit_no, kind HAVING COUNT(*) > 1"
    ))
    .await;
    assert!(twice.is_empty(), "no booking used or got back a credit twice");
    let unpaid = q(format!(
        "SELECT q.id FROM participations q JOIN passes p ON p.gym_id = q.gym_id AND p.id = q.pass_id \
         WHERE q.gym_id = {gym} AND p.kind = 'pack' AND q.status IN ('registered', 'attended') AND \
         ((SELECT COUNT(*) FROM credit_entries e WHERE e.gym_id = q.gym_id AND e.participation_id = q.id \
            AND e.credit_no = q.credit_no AND e.kind = 'use') <> 1 \
         OR EXISTS (SELECT 1 FROM credit_entries e WHERE e.gym_id = q.gym_id AND e.participation_id = q.id \
            AND e.credit_no = q.credit_no AND e.kind IN ('refund', 'forfeit')))"
    ))
    .await;
    assert!(unpaid.is_empty(), "every place holding a pack's credit paid exactly once: {} rows", unpaid.len());
    let unreturned = q(format!(
        "SELECT e.participation_id FROM credit_entries e JOIN participations q ON q.gym_id = e.gym_id \
         AND q.id = e.participation_id WHERE e.gym_id = {gym} AND e.kind = 'use' \
         AND q.status IN ('cancelled', 'waitlisted') \
         AND NOT EXISTS (SELECT 1 FROM credit_entries r WHERE r.gym_id = e.gym_id \
            AND r.participation_id = e.participation_id AND r.credit_no = e.credit_no AND r.kind = 'refund')"
    ))
    .await;
    assert!(unreturned.is_empty(), "a booking given back in time got its credit back");
    let counts = q(format!(
        "SELECT s.id FROM sessions s WHERE s.gym_id = {gym} AND s.registered_count <> \
         (SELECT COUNT(*) FROM participations q WHERE q.gym_id = s.gym_id AND q.session_id = s.id \
          AND q.status IN ('registered', 'attended'))"
    ))
    .await;
    assert!(counts.is_empty(), "every count is its places");
});

both_backends!(bad_pass_settings_and_dry_run_values_change_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let ana = app.member(gym, &owner, "member").await;
    for bad in [
        json!({"cancel_cutoff_minutes": 10_081}),
        json!({"cancel_cutoff_minutes": -1}),
        json!({"cancel_cutoff_minutes": null}),
        json!({"cancel_cutoff_minutes": 1.5}),
        json!({"cancel_cutoff_minutes": 4_294_967_296_i64}),
        json!({"booking_requires_pass": null}),
        json!({"booking_requires_pass": "yes"}),
        json!({"booking_requires_pass": 1}),
    ] {
        let got = app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &bad).await;
        assert_error(&got, 422, "validation_error");
    }
    let (_, g) = app.send_as(Method::GET, "/api/v1/gyms/current", &owner, gym).await;
    assert_eq!((&g["booking_requires_pass"], &g["cancel_cutoff_minutes"]), (&json!(false), &json!(0)), "{g}");
    // Only an admin changes them.
    let member_tries = json!({"booking_requires_pass": true});
    assert_error(
        &app.send_json(Method::PATCH, "/api/v1/gyms/current", &ana, gym, &member_tries).await,
        403,
        "forbidden",
    );

    let class = app.class(gym, &owner, 5).await;
    let session = app.session_at(gym, &owner, class, gymapi_tests::now() + Duration::hours(2)).await;
    for bad in ["yes", "1", "", "true&dry_run=false"] {
        let path = format!("/api/v1/schedule/sessions/{}/register?dry_run={bad}", session["id"]);
        assert_error(&app.send_as(Method::POST, &path, &ana, gym).await, 422, "validation_error");
    }
    let path = format!("/api/v1/schedule/sessions/{}/register?dry_run=false", session["id"]);
    assert_eq!(app.send_as(Method::POST, &path, &ana, gym).await.0, 201, "dry_run=false books");
    // A dry run of a booking already made answers its refusal; an unknown session is 404.
    let path = format!("/api/v1/schedule/sessions/{}/register?dry_run=true", session["id"]);
    let (status, said) = app.send_as(Method::POST, &path, &ana, gym).await;
    assert_eq!((status.as_u16(), said), (200, json!({"ok": false, "code": "already_registered", "pass_id": null})));
    let unknown = "/api/v1/schedule/sessions/999999/register?dry_run=true";
    assert_error(&app.send_as(Method::POST, unknown, &ana, gym).await, 404, "session_not_found");
    // Another gym's session is as unknown.
    let (other_owner, other_gym) = app.gym().await;
    let theirs = app.class(other_gym, &other_owner, 5).await;
    let theirs = app.session_at(other_gym, &other_owner, theirs, gymapi_tests::now() + Duration::hours(2)).await;
    let path = format!("/api/v1/schedule/sessions/{}/register?dry_run=true", theirs["id"]);
    assert_error(&app.send_as(Method::POST, &path, &ana, gym).await, 404, "session_not_found");
});
