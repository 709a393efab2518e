//! Contract §4 (Attendance), §5 and §7: QR codes, the check-in and attendance reads.

use gymapi_tests::{
    Backend, TestApp, TestUser, assert_error, both_backends, now, on_both_backends, qr_of, send, session_url,
};
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

async fn check_in(app: &TestApp, gym: i64, staff: &TestUser, body: Value) -> (reqwest::StatusCode, Value) {
    app.send_json(Method::POST, "/api/v1/attendance/check-in", staff, gym, &body).await
}

/// A gym with an owner (staff at the desk), a member and a class of 20 places.
async fn desk(app: &TestApp) -> (TestUser, TestUser, i64, i64) {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 20).await;
    (owner, member, gym, class)
}

both_backends!(the_qr_code_is_stable_until_rotated_and_then_the_old_one_is_dead, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    let qr = qr_of(&app, gym, &member).await;
    let prefix = format!("U{}_", member.id);
    assert!(qr.starts_with(&prefix) && qr.len() == prefix.len() + 8, "{qr}");
    assert!(qr[prefix.len()..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{qr}");
    assert_eq!(qr_of(&app, gym, &member).await, qr, "stable");
    let (status, rotated) =
        send(app.call(Method::POST, "/api/v1/attendance/my-qr/rotate", &member.token, Some(gym))).await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["user_id"].as_i64(), Some(member.id));
    let new = rotated["qr_code"].as_str().expect("qr").to_owned();
    assert_ne!(new, qr);
    assert_eq!(qr_of(&app, gym, &member).await, new);
    app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    assert_error(&check_in(&app, gym, &owner, json!({"qr_code": qr})).await, 400, "invalid_qr");
    let (status, ok) = check_in(&app, gym, &owner, json!({"qr_code": new})).await;
    assert_eq!(status, 200, "{ok}");
});

both_backends!(malformed_forged_and_unknown_codes_are_invalid_qr, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let qr = qr_of(&app, gym, &member).await;
    let hash = &qr[qr.len() - 8..];
    let forged_hash = if hash == "00000000" { "11111111" } else { "00000000" };
    let mut bad = vec![
        String::new(),
        qr.replacen('U', "u", 1),
        qr[..qr.len() - 1].to_owned(),
        format!("{qr}0"),
        format!("U{}_{forged_hash}", member.id),
        format!("U99999999999999999999_{hash}"),
        format!("U{}_{hash}", member.id + 10_000),
        "INVALID_QR".to_owned(),
    ];
    if hash.bytes().any(|b| b.is_ascii_alphabetic()) {
        bad.push(format!("U{}_{}", member.id, hash.to_uppercase()));
    }
    for code in bad {
        assert_error(&check_in(&app, gym, &owner, json!({"qr_code": code})).await, 400, "invalid_qr");
    }
    let got = check_in(&app, gym, &owner, json!({"qr_code": 12})).await;
    assert_error(&got, 422, "validation_error");
});

both_backends!(a_walk_in_is_checked_in_with_a_new_participation, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    let s = app.session_at(gym, &owner, class, now() + Duration::minutes(10)).await;
    let qr = qr_of(&app, gym, &member).await;
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["user_id"].as_i64(), Some(member.id));
    assert_eq!(body["new_participation"], true);
    assert_eq!(body["session"], json!({"id": s["id"], "start_time": s["start_time"], "end_time": s["end_time"]}));
    assert!(body["message"].is_string());
});

both_backends!(a_registered_member_is_checked_in_into_their_session, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    let close = app.session_at(gym, &owner, class, now() + Duration::minutes(1)).await;
    let booked = app.session_at(gym, &owner, class, now() + Duration::minutes(25)).await;
    let (status, _) = app.send_as(Method::POST, &session_url(&booked, "register"), &member, gym).await;
    assert_eq!(status, 201);
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr_of(&app, gym, &member).await})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["id"], booked["id"], "the registered session wins over the closer {}", close["id"]);
    assert_eq!(body["new_participation"], false);
    let (_, parts) = app.send_as(Method::GET, &session_url(&booked, "participants"), &owner, gym).await;
    assert_eq!(parts.as_array().map(Vec::len), Some(1));
    assert_eq!(parts[0]["status"], "attended");
    assert!(parts[0]["attendance_time"].is_string());
});

both_backends!(no_session_in_the_window_is_no_session_in_window, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    app.session_at(gym, &owner, class, now() + Duration::minutes(45)).await;
    let got = check_in(&app, gym, &owner, json!({"qr_code": qr_of(&app, gym, &member).await})).await;
    assert_error(&got, 400, "no_session_in_window");
});

both_backends!(checking_in_twice_is_already_checked_in, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    app.session_at(gym, &owner, class, now() - Duration::minutes(10)).await;
    let qr = qr_of(&app, gym, &member).await;
    assert_eq!(check_in(&app, gym, &owner, json!({"qr_code": qr})).await.0, 200);
    let got = check_in(&app, gym, &owner, json!({"qr_code": qr})).await;
    assert_error(&got, 400, "already_checked_in");
    let es = send(
        app.call(Method::POST, "/api/v1/attendance/check-in", &owner.token, Some(gym))
            .header("Accept-Language", "es")
            .json(&json!({"qr_code": qr})),
    )
    .await;
    assert_eq!(es.1["detail"], "Ya has hecho check-in en esta clase");
});

both_backends!(a_named_session_is_checked_against_gym_status_and_window, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    let qr = qr_of(&app, gym, &member).await;
    let far = app.session_at(gym, &owner, class, now() + Duration::hours(2)).await;
    let refused = check_in(&app, gym, &owner, json!({"qr_code": qr, "session_id": far["id"]})).await;
    assert_error(&refused, 400, "session_outside_window");
    let cancelled = app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let _ = app.send_as(Method::POST, &session_url(&cancelled, "cancel"), &owner, gym).await;
    let refused = check_in(&app, gym, &owner, json!({"qr_code": qr, "session_id": cancelled["id"]})).await;
    assert_error(&refused, 400, "session_not_found");
    let (other_owner, other_gym) = app.gym().await;
    let other_class = app.class(other_gym, &other_owner, 5).await;
    let foreign = app.session_at(other_gym, &other_owner, other_class, now() + Duration::minutes(5)).await;
    let refused = check_in(&app, gym, &owner, json!({"qr_code": qr, "session_id": foreign["id"]})).await;
    assert_error(&refused, 400, "session_not_found");
    let good = app.session_at(gym, &owner, class, now() + Duration::minutes(20)).await;
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr, "session_id": good["id"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session"]["id"], good["id"]);
});

both_backends!(only_staff_check_in_and_only_members_of_the_gym, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let qr = qr_of(&app, gym, &member).await;
    assert_error(&check_in(&app, gym, &member, json!({"qr_code": qr})).await, 403, "forbidden");
    let (other_owner, other_gym) = app.gym().await;
    let other_class = app.class(other_gym, &other_owner, 5).await;
    app.session_at(other_gym, &other_owner, other_class, now() + Duration::minutes(5)).await;
    assert_error(&check_in(&app, other_gym, &other_owner, json!({"qr_code": qr})).await, 400, "not_a_member");
});

both_backends!(a_check_in_shows_in_the_members_reads_at_once, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    let s = app.session_at(gym, &owner, class, now() + Duration::minutes(3)).await;
    let later = app.session_at(gym, &owner, class, now() + Duration::days(2)).await;
    let _ = app.send_as(Method::POST, &session_url(&later, "register"), &member, gym).await;
    let get = |p: &str| app.call(Method::GET, p, &member.token, Some(gym));
    // Prime the caches.
    let (_, last) = send(get("/api/v1/attendance/me/last")).await;
    assert_eq!(last, json!({"last_attendance": null}));
    let (_, before) = send(get("/api/v1/users/me/dashboard-summary")).await;
    assert_eq!((before["total_attendances"].as_i64(), before["attendances_last_30_days"].as_i64()), (Some(0), Some(0)));
    assert_eq!(before["upcoming_registrations"][0]["id"], later["id"]);

    let (status, _) = check_in(&app, gym, &owner, json!({"qr_code": qr_of(&app, gym, &member).await})).await;
    assert_eq!(status, 200);
    let (_, last) = send(get("/api/v1/attendance/me/last")).await;
    assert!(last["last_attendance"].as_str().is_some_and(|t| t.ends_with('Z')), "{last}");
    let (_, after) = send(get("/api/v1/users/me/dashboard-summary")).await;
    assert_eq!((after["total_attendances"].as_i64(), after["attendances_last_30_days"].as_i64()), (Some(1), Some(1)));
    assert_eq!(after["last_attendance"], last["last_attendance"]);
    let (_, history) = send(get("/api/v1/attendance/me/history")).await;
    assert_eq!(history.as_array().map(Vec::len), Some(1));
    assert_eq!(history[0]["session"]["id"], s["id"]);
    assert_eq!(history[0]["attendance_time"], last["last_attendance"]);
    assert_error(&send(get("/api/v1/attendance/me/history?limit=0")).await, 422, "validation_error");
});

async fn fifty_concurrent_check_ins_over_two_instances(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, member, gym, class) = desk(&a).await;
    let s = a.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let qr = qr_of(&a, gym, &member).await;
    let body = json!({"qr_code": qr});
    let results = futures_util::future::join_all((0..50).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &body)
    }))
    .await;
    let wins = results.iter().filter(|(st, b)| st.as_u16() == 200 && b["success"] == true).count();
    let already = results.iter().filter(|(st, b)| st.as_u16() == 400 && b["code"] == "already_checked_in").count();
    assert_eq!((wins, already), (1, 49), "{:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
    let (_, parts) = send(a.call(Method::GET, &session_url(&s, "participants"), &owner.token, Some(gym))).await;
    assert_eq!(parts.as_array().map(Vec::len), Some(1), "{parts}");
    assert_eq!(parts[0]["status"], "attended");
    let (_, after) = b.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", s["id"]), &owner, gym).await;
    assert_eq!(after["registered_count"], 1, "the walk-in took exactly one place: {after}");
}

on_both_backends!(fifty_concurrent_check_ins_over_two_instances_on, fifty_concurrent_check_ins_over_two_instances);

async fn session_of(app: &TestApp, gym: i64, u: &TestUser, id: &Value) -> Value {
    let (status, s) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{id}"), u, gym).await;
    assert_eq!(status, 200, "{s}");
    s
}

/// `registered_count` must equal the session's `registered` + `attended` rows.
async fn assert_count_matches_rows(app: &TestApp, gym: i64, staff: &TestUser, id: &Value, expected: i64) {
    let (_, parts) =
        app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{id}/participants"), staff, gym).await;
    let holding = parts
        .as_array()
        .expect("participants")
        .iter()
        .filter(|p| p["status"] == "registered" || p["status"] == "attended")
        .count();
    let count = session_of(app, gym, staff, id).await["registered_count"].as_i64().expect("count");
    assert_eq!((count, holding as i64), (expected, expected), "count vs rows: {parts}");
}

both_backends!(a_second_scan_in_the_window_is_already_checked_in_not_a_check_in_elsewhere, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    let first = app.session_at(gym, &owner, class, now() + Duration::minutes(2)).await;
    let second = app.session_at(gym, &owner, class, now() + Duration::minutes(20)).await;
    let qr = qr_of(&app, gym, &member).await;
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr})).await;
    assert_eq!((status.as_u16(), &body["session"]["id"]), (200, &first["id"]), "{body}");
    assert_error(&check_in(&app, gym, &owner, json!({"qr_code": qr})).await, 400, "already_checked_in");
    // Also when the member is checked into the farther session of the window.
    let other = app.member(gym, &owner, "member").await;
    let qr_other = qr_of(&app, gym, &other).await;
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr_other, "session_id": second["id"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_error(&check_in(&app, gym, &owner, json!({"qr_code": qr_other})).await, 400, "already_checked_in");
    let (_, parts) = app.send_as(Method::GET, &session_url(&second, "participants"), &owner, gym).await;
    assert_eq!(parts.as_array().map(Vec::len), Some(1), "nobody was checked into a second session: {parts}");
});

both_backends!(registered_count_equals_the_rows_after_every_kind_of_write, |app| {
    let (owner, member, gym, class) = desk(&app).await;
    let s = app.session_at(gym, &owner, class, now() + Duration::minutes(10)).await;
    let id = s["id"].clone();
    let reg = format!("/api/v1/schedule/sessions/{id}/register");
    assert_count_matches_rows(&app, gym, &owner, &id, 0).await;
    assert_eq!(app.send_as(Method::POST, &reg, &member, gym).await.0, 201, "book");
    assert_count_matches_rows(&app, gym, &owner, &id, 1).await;
    assert_error(&app.send_as(Method::POST, &reg, &member, gym).await, 409, "already_registered");
    assert_count_matches_rows(&app, gym, &owner, &id, 1).await;
    assert_eq!(app.send_as(Method::DELETE, &reg, &member, gym).await.0, 204, "cancel");
    assert_count_matches_rows(&app, gym, &owner, &id, 0).await;
    assert_error(&app.send_as(Method::DELETE, &reg, &member, gym).await, 404, "not_registered");
    assert_count_matches_rows(&app, gym, &owner, &id, 0).await;
    assert_eq!(app.send_as(Method::POST, &reg, &member, gym).await.0, 201, "re-book");
    assert_count_matches_rows(&app, gym, &owner, &id, 1).await;
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr_of(&app, gym, &member).await})).await;
    assert_eq!((status.as_u16(), body["new_participation"].as_bool()), (200, Some(false)), "{body}");
    assert_count_matches_rows(&app, gym, &owner, &id, 1).await;
    assert_error(&app.send_as(Method::DELETE, &reg, &member, gym).await, 404, "not_registered");
    assert_count_matches_rows(&app, gym, &owner, &id, 1).await;
    // A walk-in takes a place.
    let walk_in = app.member(gym, &owner, "member").await;
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr_of(&app, gym, &walk_in).await})).await;
    assert_eq!((status.as_u16(), body["new_participation"].as_bool()), (200, Some(true)), "{body}");
    assert_count_matches_rows(&app, gym, &owner, &id, 2).await;
    // Booked, cancelled, then checked in at the door: the place is taken again.
    let late = app.member(gym, &owner, "member").await;
    assert_eq!(app.send_as(Method::POST, &reg, &late, gym).await.0, 201);
    assert_eq!(app.send_as(Method::DELETE, &reg, &late, gym).await.0, 204);
    assert_count_matches_rows(&app, gym, &owner, &id, 2).await;
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr_of(&app, gym, &late).await})).await;
    assert_eq!((status.as_u16(), body["new_participation"].as_bool()), (200, Some(false)), "{body}");
    assert_count_matches_rows(&app, gym, &owner, &id, 3).await;
    assert_error(&app.send_as(Method::POST, &reg, &late, gym).await, 409, "already_registered");
    assert_count_matches_rows(&app, gym, &owner, &id, 3).await;
});

both_backends!(a_walk_in_into_a_full_session_is_checked_in_and_counted, |app| {
    // The desk admits whoever is at the door (§5 has no capacity refusal); the walk-in
    // is counted, so registered_count still equals the rows, and bookings stay closed.
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 1).await;
    let s = app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let booked = app.member(gym, &owner, "member").await;
    let reg = format!("/api/v1/schedule/sessions/{}/register", s["id"]);
    assert_eq!(app.send_as(Method::POST, &reg, &booked, gym).await.0, 201);
    let walk_in = app.member(gym, &owner, "member").await;
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr_of(&app, gym, &walk_in).await})).await;
    assert_eq!((status.as_u16(), body["new_participation"].as_bool()), (200, Some(true)), "{body}");
    assert_count_matches_rows(&app, gym, &owner, &s["id"], 2).await;
    let late = app.member(gym, &owner, "member").await;
    assert_error(&app.send_as(Method::POST, &reg, &late, gym).await, 409, "session_full");
    let (status, body) = check_in(&app, gym, &owner, json!({"qr_code": qr_of(&app, gym, &booked).await})).await;
    assert_eq!(status, 200, "{body}");
    assert_count_matches_rows(&app, gym, &owner, &s["id"], 2).await;
});

async fn concurrent_window_scans_over_two_instances_leave_one_attendance(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, member, gym, class) = desk(&a).await;
    let first = a.session_at(gym, &owner, class, now() + Duration::minutes(2)).await;
    let second = a.session_at(gym, &owner, class, now() + Duration::minutes(3)).await;
    let qr = qr_of(&a, gym, &member).await;
    // Thirty scans over two instances, the server choosing the session: one check-in.
    // (They all choose the same session here; the boundary case where two scans choose
    // different ones is what the membership lock of the check-in transaction serializes.)
    let body = json!({"qr_code": qr});
    let results = futures_util::future::join_all((0..30).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &body)
    }))
    .await;
    let wins = results.iter().filter(|(st, _)| st.as_u16() == 200).count();
    assert_eq!(wins, 1, "{:?}", results.iter().map(|r| (r.0, r.1["code"].clone())).collect::<Vec<_>>());
    assert!(results.iter().all(|(st, b)| st.as_u16() == 200 || b["code"] == "already_checked_in"));
    let mut attended = 0;
    for s in [&first, &second] {
        let (_, parts) = send(a.call(Method::GET, &session_url(s, "participants"), &owner.token, Some(gym))).await;
        attended += parts.as_array().map_or(0, |p| p.iter().filter(|p| p["status"] == "attended").count());
    }
    assert_eq!(attended, 1, "one attendance in the whole window");
}

on_both_backends!(
    concurrent_window_scans_over_two_instances_leave_one_attendance_on,
    concurrent_window_scans_over_two_instances_leave_one_attendance
);
