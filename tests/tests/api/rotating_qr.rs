//! Issue 20: rotating QR codes. In a gym with `qr_mode: "rotating"` the 8 hex digits
//! are a code of the member's key and the 30-second step: the current and the
//! previous step's codes check in, once within their step; older ones, static codes
//! and screenshots do not. The clock is pinned.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, now};
use reqwest::Method;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

const CHECK_IN: &str = "/api/v1/attendance/check-in";

async fn my_qr(app: &TestApp, gym: i64, u: &TestUser) -> Value {
    let (status, body) = app.send_as(Method::GET, "/api/v1/attendance/my-qr", u, gym).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn scan(app: &TestApp, gym: i64, desk: &TestUser, code: &str, session: &Value) -> (reqwest::StatusCode, Value) {
    app.send_json(Method::POST, CHECK_IN, desk, gym, &json!({"qr_code": code, "session_id": session["id"]})).await
}

fn at_step_start(t: OffsetDateTime) -> OffsetDateTime {
    let s = t.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(s - s.rem_euclid(30)).expect("a time")
}

both_backends!(rotating_codes_check_in_once_within_a_minute_and_static_codes_stop, |app| {
    let (owner, gym) = app.gym().await;
    let t0 = at_step_start(now());
    app.clock.set(t0 + Duration::seconds(1));
    let class = app.class(gym, &owner, 10).await;
    let s1 = app.session_at(gym, &owner, class, t0 + Duration::minutes(5)).await;
    let s2 = app.session_at(gym, &owner, class, t0 + Duration::minutes(10)).await;
    let m = app.member(gym, &owner, "member").await;
    let printed = my_qr(&app, gym, &m).await;
    assert_eq!((&printed["mode"], &printed["expires_at"]), (&json!("static"), &Value::Null), "{printed}");

    for bad in [json!({"qr_mode": "weekly"}), json!({"qr_mode": null}), json!({"qr_mode": 1})] {
        assert_error(
            &app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &bad).await,
            422,
            "validation_error",
        );
    }
    let (status, g) =
        app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &json!({"qr_mode": "rotating"})).await;
    assert_eq!((status.as_u16(), &g["qr_mode"]), (200, &json!("rotating")), "{g}");
    let (_, current) = app.send_as(Method::GET, "/api/v1/gyms/current", &owner, gym).await;
    assert_eq!(current["qr_mode"], "rotating", "the cached gym followed");

    let qr = my_qr(&app, gym, &m).await;
    assert_eq!(qr["mode"], "rotating");
    assert_eq!(qr["expires_at"], gymapi_tests::rfc3339(t0 + Duration::seconds(30)));
    let code = qr["qr_code"].as_str().expect("code").to_owned();
    assert!(code.starts_with(&format!("U{}_", m.id)) && code.len() == format!("U{}_", m.id).len() + 8, "{code}");
    assert_ne!(code, printed["qr_code"].as_str().expect("code"));
    assert_error(&scan(&app, gym, &owner, printed["qr_code"].as_str().expect("c"), &s1).await, 400, "invalid_qr");

    // Once within its step: the screenshot of a used code checks nobody in again.
    let (status, body) = scan(&app, gym, &owner, &code, &s1).await;
    assert_eq!((status.as_u16(), &body["session"]["id"]), (200, &s1["id"]), "{body}");
    assert_error(&scan(&app, gym, &owner, &code, &s2).await, 400, "invalid_qr");
    // The next step's code works (for another session: the member is in s1 already).
    app.clock.set(t0 + Duration::seconds(31));
    let next = my_qr(&app, gym, &m).await["qr_code"].as_str().expect("code").to_owned();
    assert_ne!(next, code);
    assert_error(&scan(&app, gym, &owner, &code, &s2).await, 400, "invalid_qr");
    assert_eq!(scan(&app, gym, &owner, &next, &s2).await.0, 200);

    // A code shown just before the step turned is accepted one step more, not two.
    let late = app.member(gym, &owner, "member").await;
    let stale = app.member(gym, &owner, "member").await;
    let late_code = my_qr(&app, gym, &late).await["qr_code"].as_str().expect("code").to_owned();
    let stale_code = my_qr(&app, gym, &stale).await["qr_code"].as_str().expect("code").to_owned();
    app.clock.set(t0 + Duration::seconds(60 + 29));
    assert_eq!(scan(&app, gym, &owner, &late_code, &s1).await.0, 200);
    app.clock.set(t0 + Duration::seconds(90));
    assert_error(&scan(&app, gym, &owner, &stale_code, &s1).await, 400, "invalid_qr");

    // Rotating the secret ends every code of the old one.
    let (status, rotated) = app.send_as(Method::POST, "/api/v1/attendance/my-qr/rotate", &stale, gym).await;
    assert_eq!((status.as_u16(), &rotated["mode"]), (200, &json!("rotating")), "{rotated}");
    let old_now = my_qr(&app, gym, &stale).await;
    assert_eq!(old_now["qr_code"], rotated["qr_code"]);
    assert_eq!(scan(&app, gym, &owner, rotated["qr_code"].as_str().expect("c"), &s1).await.0, 200);

    // A user stored without a key (by an older release, during an upgrade) gets one
    // on first need, and checks in with it.
    let legacy = app.member(gym, &owner, "member").await;
    let conn = gymapi_tests::own_connection(&app.db.url).await;
    let sql = format!("UPDATE users SET qr_key = NULL WHERE id = {}", legacy.id);
    sea_orm::ConnectionTrait::execute_raw(
        &conn,
        sea_orm::Statement::from_string(sea_orm::ConnectionTrait::get_database_backend(&conn), sql),
    )
    .await
    .expect("forget the key");
    let first = my_qr(&app, gym, &legacy).await;
    assert_eq!(
        (&first["mode"], my_qr(&app, gym, &legacy).await["qr_code"].clone()),
        (&json!("rotating"), first["qr_code"].clone())
    );
    assert_eq!(scan(&app, gym, &owner, first["qr_code"].as_str().expect("c"), &s1).await.0, 200);

    // Back to static: the printed code works again.
    let (status, _) =
        app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &json!({"qr_mode": "static"})).await;
    assert_eq!(status, 200);
    let printed_again = my_qr(&app, gym, &late).await;
    assert_eq!((&printed_again["mode"], &printed_again["expires_at"]), (&json!("static"), &Value::Null));
    let (status, body) = scan(&app, gym, &owner, printed_again["qr_code"].as_str().expect("c"), &s2).await;
    assert_eq!(status, 200, "{body}");
});
