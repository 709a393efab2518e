//! Issue 20: reports. Class figures over hand-built sessions (held, cancelled, not
//! yet over), and a member's streak and weeks.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, now, own_connection, qr_of, session_url};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use time::Duration;

async fn book(app: &TestApp, gym: i64, m: &TestUser, s: &Value) {
    assert_eq!(app.send_as(Method::POST, &session_url(s, "register"), m, gym).await.0, 201);
}

async fn scan(app: &TestApp, gym: i64, desk: &TestUser, m: &TestUser, s: &Value) {
    let body = json!({"qr_code": qr_of(app, gym, m).await, "session_id": s["id"]});
    let got = app.send_json(Method::POST, "/api/v1/attendance/check-in", desk, gym, &body).await;
    assert_eq!(got.0, 200, "{}", got.1);
}

both_backends!(class_figures_and_member_weeks_match_hand_built_data, |app| {
    let (owner, gym) = app.gym().await;
    let t = now();
    app.clock.set(t);
    let a = app.class(gym, &owner, 4).await;
    let b = app.class(gym, &owner, 2).await;
    let a1 = app.session_at(gym, &owner, a, t + Duration::minutes(5)).await;
    let a2 = app.session_at(gym, &owner, a, t + Duration::minutes(10)).await;
    let b1 = app.session_at(gym, &owner, b, t + Duration::minutes(15)).await;
    let a3 = app.session_at(gym, &owner, a, t + Duration::minutes(20)).await;
    let a4 = app.session_at(gym, &owner, a, t + Duration::hours(3)).await;
    let m: Vec<TestUser> = futures_util::future::join_all((0..4).map(|_| app.member(gym, &owner, "member"))).await;
    for (who, s) in [(&m[0], &a1), (&m[1], &a1), (&m[2], &a1), (&m[0], &a2), (&m[1], &b1), (&m[2], &a3), (&m[2], &a4)] {
        book(&app, gym, who, s).await;
    }
    assert_eq!(app.send_as(Method::POST, &session_url(&a3, "cancel"), &owner, gym).await.0, 200);
    app.clock.set(t + Duration::minutes(5));
    scan(&app, gym, &owner, &m[0], &a1).await;
    scan(&app, gym, &owner, &m[3], &a1).await; // a walk-in takes a place
    scan(&app, gym, &owner, &m[1], &b1).await;
    // As the no-show job would mark it.
    let conn = own_connection(&app.db.url).await;
    let sql = format!(
        "UPDATE participations SET status = 'no_show' WHERE gym_id = {gym} AND session_id = {} AND member_id = {}",
        a1["id"], m[2].id
    );
    conn.execute_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).await.expect("mark");
    app.clock.set(t + Duration::hours(2));

    let (status, report) = app.send_as(Method::GET, "/api/v1/reports/classes", &owner, gym).await;
    assert_eq!(status, 200, "{report}");
    let by_class = |id: i64| report.as_array().and_then(|r| r.iter().find(|c| c["class_id"] == id)).cloned();
    // Class a: a1 and a2 held (a3 cancelled, a4 not over): 8 places; taken: a1's four
    // (two attended, one registered, one no-show) and a2's one registered.
    let ra = by_class(a).expect("class a");
    assert_eq!(
        (&ra["sessions"], &ra["places"], &ra["taken"], &ra["attended"], &ra["no_shows"]),
        (&json!(2), &json!(8), &json!(5), &json!(2), &json!(1)),
        "{ra}"
    );
    assert_eq!(
        (&ra["fill_rate"], &ra["attendance_rate"], &ra["no_show_rate"]),
        (&json!(0.625), &json!(0.4), &json!(0.2))
    );
    let rb = by_class(b).expect("class b");
    assert_eq!(
        (&rb["sessions"], &rb["places"], &rb["taken"], &rb["fill_rate"]),
        (&json!(1), &json!(2), &json!(1), &json!(0.5))
    );
    assert_eq!((&rb["attendance_rate"], &rb["no_show_rate"]), (&json!(1.0), &json!(0.0)));
    let yesterday = (t - Duration::days(1)).date();
    let (_, before) = app.send_as(Method::GET, &format!("/api/v1/reports/classes?to={yesterday}"), &owner, gym).await;
    assert_eq!(before, json!([]), "nothing held before today");

    // A member's weeks.
    let (status, r0) = app.send_as(Method::GET, &format!("/api/v1/reports/members/{}", m[0].id), &owner, gym).await;
    assert_eq!(status, 200, "{r0}");
    let weeks = r0["weeks"].as_array().expect("weeks");
    assert_eq!(weeks.len(), 12);
    assert_eq!(weeks.iter().map(|w| w["attended"].as_i64().expect("n")).sum::<i64>(), 1);
    assert_eq!((&r0["member_id"], &r0["streak_weeks"]), (&json!(m[0].id), &json!(1)));
    let (_, r2) = app.send_as(Method::GET, &format!("/api/v1/reports/members/{}", m[2].id), &owner, gym).await;
    assert_eq!(r2["streak_weeks"], 0, "a no-show is no attendance");

    // Roles, tenancy, bad input.
    let trainer = app.member(gym, &owner, "trainer").await;
    assert_eq!(app.send_as(Method::GET, &format!("/api/v1/reports/members/{}", m[0].id), &trainer, gym).await.0, 200);
    assert_error(&app.send_as(Method::GET, "/api/v1/reports/classes", &trainer, gym).await, 403, "forbidden");
    assert_error(
        &app.send_as(Method::GET, &format!("/api/v1/reports/members/{}", m[1].id), &m[0], gym).await,
        403,
        "forbidden",
    );
    let (other_owner, other_gym) = app.gym().await;
    let stranger = format!("/api/v1/reports/members/{}", m[0].id);
    assert_error(&app.send_as(Method::GET, &stranger, &other_owner, other_gym).await, 404, "user_not_found");
    for bad in ["from=2026-13-01", "from=2026-02-01&to=2026-01-01", "from=2026-01-01&to=2026-06-01"] {
        let got = app.send_as(Method::GET, &format!("/api/v1/reports/classes?{bad}"), &owner, gym).await;
        assert_error(&got, 422, "validation_error");
    }
});
