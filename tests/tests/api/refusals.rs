//! Issue 20: the refusal audit. Every refused check-in is recorded off the scan's
//! path — code, the user it names, desk, time, refusal code, named session — and
//! admins list them, runs of refusals flagged; a refusal is a fact in the outbox.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, now, own_connection, qr_of};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use time::Duration;

const CHECK_IN: &str = "/api/v1/attendance/check-in";

/// The gym's refusals once `n` of them are recorded (the writer is off the path).
async fn refusals(app: &TestApp, gym: i64, admin: &TestUser, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (status, list) = app.send_as(Method::GET, "/api/v1/attendance/refusals", admin, gym).await;
        assert_eq!(status, 200, "{list}");
        let list = list.as_array().cloned().unwrap_or_default();
        if list.len() >= n {
            return list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} refusals recorded");
}

both_backends!(every_refused_scan_is_recorded_and_runs_are_flagged, |app| {
    let (owner, gym) = app.gym().await;
    let desk = app.member(gym, &owner, "trainer").await;
    let class = app.class(gym, &owner, 10).await;
    let s = app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let m = app.member(gym, &owner, "member").await;
    let (other_owner, other_gym) = app.gym().await;
    let outsider = app.member(other_gym, &other_owner, "member").await;
    let outsider_qr = qr_of(&app, other_gym, &outsider).await;
    let wrong = format!("U{}_00000000", m.id);
    let scans = [
        (json!({"qr_code": "junk\u{0}"}), "invalid_qr"),
        (json!({"qr_code": wrong}), "invalid_qr"),
        (json!({"qr_code": wrong}), "invalid_qr"),
        (json!({"qr_code": wrong, "session_id": s["id"]}), "invalid_qr"),
        (json!({"qr_code": outsider_qr}), "not_a_member"),
        (json!({"qr_code": qr_of(&app, gym, &m).await, "session_id": 987_654}), "session_not_found"),
    ];
    for (body, code) in &scans {
        assert_error(&app.send_json(Method::POST, CHECK_IN, &desk, gym, body).await, 400, code);
    }
    // A success and a malformed request are no refusals.
    let ok = app.send_json(Method::POST, CHECK_IN, &desk, gym, &json!({"qr_code": qr_of(&app, gym, &m).await})).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_error(&app.send_json(Method::POST, CHECK_IN, &desk, gym, &json!({"qr": 1})).await, 422, "validation_error");

    let list = refusals(&app, gym, &owner, scans.len()).await;
    assert_eq!(list.len(), scans.len(), "{list:#?}");
    // Newest first: the last scan heads the list.
    let codes: Vec<&str> = list.iter().rev().map(|r| r["code"].as_str().expect("code")).collect();
    assert_eq!(codes, scans.iter().map(|(_, c)| *c).collect::<Vec<_>>());
    let first = &list[list.len() - 1];
    assert_eq!((&first["qr_code"], &first["qr_user_id"]), (&json!("junk\u{fffd}"), &Value::Null), "{first}");
    assert_eq!(first["desk_user_id"], desk.id);
    let named = &list[list.len() - 4];
    assert_eq!((&named["qr_user_id"], &named["session_id"]), (&json!(m.id), &s["id"]), "{named}");
    let of_m: Vec<&Value> = list.iter().filter(|r| r["qr_user_id"] == m.id && r["code"] == "invalid_qr").collect();
    assert_eq!(of_m.len(), 3);
    assert!(of_m.iter().all(|r| r["repeated_member"] == true), "three of one code in minutes: {of_m:#?}");
    assert!(list.iter().all(|r| r["repeated_desk"] == true), "six at one desk in minutes");
    assert!(list.iter().filter(|r| r["qr_user_id"] != m.id).all(|r| r["repeated_member"] == false));

    // A refusal is a fact of the gym, in the outbox.
    let conn = own_connection(&app.db.url).await;
    let sql = format!("SELECT COUNT(*) FROM outbox WHERE gym_id = {gym} AND type = 'checkin_refused'");
    let row = conn.query_one_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).await;
    let facts = row.expect("count").expect("row").try_get_by_index::<i64>(0).expect("n");
    assert_eq!(facts, i64::try_from(scans.len()).expect("n"));

    // Admins only; another gym sees none of them; the dates are checked.
    assert_error(&app.send_as(Method::GET, "/api/v1/attendance/refusals", &desk, gym).await, 403, "forbidden");
    let (_, theirs) = app.send_as(Method::GET, "/api/v1/attendance/refusals", &other_owner, other_gym).await;
    assert_eq!(theirs, json!([]));
    for bad in ["from=2026-13-01", "to=x", "from=2026-01-10&to=2026-01-01", "from=2026-01-01&to=2026-06-01", "limit=0"]
    {
        let got = app.send_as(Method::GET, &format!("/api/v1/attendance/refusals?{bad}"), &owner, gym).await;
        assert_error(&got, 422, "validation_error");
    }
    let yesterday = (now() - Duration::days(1)).date();
    let (_, old) = app.send_as(Method::GET, &format!("/api/v1/attendance/refusals?to={yesterday}"), &owner, gym).await;
    assert_eq!(old, json!([]), "none before today");
});
