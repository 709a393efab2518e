//! Issue 19: a session cancelled by the gym cancels its bookings in the same
//! transaction, frees their places and names the members in its fact; cancelling
//! it again changes nothing.

use gymapi_tests::{
    Backend, TestApp, TestUser, assert_error, both_backends, now, on_both_backends, own_connection, qr_of, session_url,
};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use time::Duration;

async fn rows(conn: &DatabaseConnection, sql: &str) -> Vec<String> {
    let got = conn.query_all_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).await;
    got.expect("query").iter().map(|r| r.try_get_by_index::<String>(0).expect("text")).collect()
}

async fn participants(app: &TestApp, gym: i64, staff: &TestUser, session: &Value) -> Vec<(i64, String)> {
    let (status, list) = app.send_as(Method::GET, &session_url(session, "participants?limit=500"), staff, gym).await;
    assert_eq!(status, 200, "{list}");
    let mut out: Vec<(i64, String)> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| (p["member_id"].as_i64().expect("id"), p["status"].as_str().expect("status").to_owned()))
        .collect();
    out.sort();
    out
}

both_backends!(a_cancelled_session_cancels_its_bookings_and_cancelling_again_changes_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 5).await;
    let session = app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let (m1, m2, m3) = (
        app.member(gym, &owner, "member").await,
        app.member(gym, &owner, "member").await,
        app.member(gym, &owner, "member").await,
    );
    for m in [&m1, &m2, &m3] {
        assert_eq!(app.send_as(Method::POST, &session_url(&session, "register"), m, gym).await.0, 201);
    }
    let scan = json!({"qr_code": qr_of(&app, gym, &m3).await, "session_id": session["id"]});
    assert_eq!(app.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &scan).await.0, 200);
    let (_, dash) = app.send_as(Method::GET, "/api/v1/users/me/dashboard-summary", &m1, gym).await;
    assert_eq!(dash["upcoming_registrations"].as_array().map(Vec::len), Some(1), "{dash}");

    let (status, cancelled) = app.send_as(Method::POST, &session_url(&session, "cancel"), &owner, gym).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!((&cancelled["status"], &cancelled["registered_count"]), (&json!("cancelled"), &json!(1)), "{cancelled}");
    let mut expected =
        vec![(m1.id, "cancelled".to_owned()), (m2.id, "cancelled".to_owned()), (m3.id, "attended".to_owned())];
    expected.sort();
    assert_eq!(participants(&app, gym, &owner, &session).await, expected);
    let (_, dash) = app.send_as(Method::GET, "/api/v1/users/me/dashboard-summary", &m1, gym).await;
    assert_eq!(dash["upcoming_registrations"], json!([]), "the cached dashboard followed: {dash}");
    assert_error(
        &app.send_as(Method::POST, &session_url(&session, "register"), &m1, gym).await,
        400,
        "session_not_open",
    );

    let conn = own_connection(&app.db.url).await;
    let facts = "SELECT CAST(payload AS TEXT) FROM outbox WHERE type = 'session_cancelled'";
    let payloads = rows(&conn, facts).await;
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    let payload: Value = serde_json::from_str(&payloads[0]).expect("json");
    let mut named = vec![m1.id, m2.id];
    named.sort_unstable();
    assert_eq!(payload["members"], json!(named), "the fact names the members whose bookings went");

    let (status, again) = app.send_as(Method::POST, &session_url(&session, "cancel"), &owner, gym).await;
    assert_eq!((status.as_u16(), &again), (200, &cancelled), "the same answer");
    assert_eq!(rows(&conn, facts).await.len(), 1, "and no second fact");
    assert_eq!(participants(&app, gym, &owner, &session).await, expected);
});

/// Scans of registered members on one instance race the session's cancellation on
/// the other: each scan is checked in (its row `attended`, counted) or refused
/// (`session_not_found`, its booking `cancelled`), never a success on a cancelled
/// booking, and `registered_count` equals the rows holding a place.
async fn cancellation_racing_check_ins(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 40).await;
    let session = a.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let mut scans = Vec::new();
    for _ in 0..30 {
        let m = a.member(gym, &owner, "member").await;
        assert_eq!(a.send_as(Method::POST, &session_url(&session, "register"), &m, gym).await.0, 201);
        scans.push((m.id, json!({"qr_code": qr_of(&a, gym, &m).await, "session_id": session["id"]})));
    }
    // Scans go out a millisecond apart, the cancellation among them.
    let check_ins = futures_util::future::join_all(scans.iter().enumerate().map(|(i, (_, body))| {
        let (b, owner) = (&b, &owner);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(i as u64)).await;
            b.send_json(Method::POST, "/api/v1/attendance/check-in", owner, gym, body).await
        }
    }));
    let cancel = async {
        tokio::time::sleep(std::time::Duration::from_millis(12)).await;
        a.send_as(Method::POST, &session_url(&session, "cancel"), &owner, gym).await
    };
    let (answers, cancelled) = tokio::join!(check_ins, cancel);
    assert_eq!(cancelled.0, 200, "{}", cancelled.1);
    let parts = participants(&a, gym, &owner, &session).await;
    for ((member, _), (status, body)) in scans.iter().zip(&answers) {
        let row = parts.iter().find(|(m, _)| m == member).map(|(_, s)| s.as_str());
        match status.as_u16() {
            200 => assert_eq!(row, Some("attended"), "{body}"),
            400 => {
                assert_eq!(body["code"], "session_not_found", "{body}");
                assert_eq!(row, Some("cancelled"));
            }
            other => panic!("{other}: {body}"),
        }
    }
    let attended = parts.iter().filter(|(_, s)| s == "attended").count();
    assert_eq!(parts.len(), 30, "no row lost or added");
    assert_eq!(attended + parts.iter().filter(|(_, s)| s == "cancelled").count(), 30, "{parts:?}");
    let (_, after) = b.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", session["id"]), &owner, gym).await;
    assert_eq!(after["registered_count"], json!(attended), "the count is the rows holding a place: {after}");
    assert_eq!(after["status"], "cancelled");
}

on_both_backends!(cancellation_racing_check_ins_on, cancellation_racing_check_ins);
