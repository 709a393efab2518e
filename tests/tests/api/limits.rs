//! Issue 9, items 4, 5 and 11: limits on every route, the order of checks down to
//! the body, and the HTTP details schemathesis holds the server to.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, now, send};
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

use crate::http::post_chunked_with;

async fn qr_of(app: &TestApp, gym: i64, u: &TestUser) -> String {
    let (status, body) = app.send_as(Method::GET, "/api/v1/attendance/my-qr", u, gym).await;
    assert_eq!(status, 200, "{body}");
    body["qr_code"].as_str().expect("qr").to_owned()
}

both_backends!(a_body_over_64_kib_is_413_on_routes_that_take_no_body_and_changes_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let before = qr_of(&app, gym, &owner).await;
    let big = "x".repeat(70 * 1000);
    let got =
        send(app.call(Method::POST, "/api/v1/attendance/my-qr/rotate", &owner.token, Some(gym)).body(big.clone()))
            .await;
    assert_error(&got, 413, "payload_too_large");
    assert_eq!(qr_of(&app, gym, &owner).await, before, "the code was not rotated");
    let gym_header = format!("X-Gym-ID: {gym}\r\n");
    let line = post_chunked_with(
        &app.base,
        "/api/v1/attendance/my-qr/rotate",
        &owner.token,
        &gym_header,
        &[&[b'z'; 40 * 1024], &[b'z'; 40 * 1024]],
    )
    .await;
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");
    assert_eq!(qr_of(&app, gym, &owner).await, before, "a chunked body was refused too");
    for (method, path) in [
        (Method::GET, "/api/v1/users/me"),
        (Method::GET, "/health"),
        (Method::DELETE, "/api/v1/schedule/classes/1"),
        (Method::POST, "/api/v1/schedule/sessions/1/cancel"),
    ] {
        let got = send(app.call(method.clone(), path, &owner.token, Some(gym)).body(big.clone())).await;
        assert_error(&got, 413, "payload_too_large");
    }
    // Just under the limit is not refused for its size.
    let small = "y".repeat(60 * 1024);
    let (status, _) =
        send(app.call(Method::POST, "/api/v1/attendance/my-qr/rotate", &owner.token, Some(gym)).body(small)).await;
    assert_eq!(status, 200);
});

/// Every list route of the contract, with a path that has data once `seed` ran.
fn lists(session: &Value) -> Vec<String> {
    vec![
        "/api/v1/schedule/classes".into(),
        format!("/api/v1/schedule/sessions?start_date={}", (now() - Duration::days(1)).date()),
        format!("/api/v1/events?start_date={}", (now() - Duration::days(1)).date()),
        format!("/api/v1/schedule/sessions/{}/participants", session["id"]),
        "/api/v1/members".into(),
        "/api/v1/attendance/me/history".into(),
    ]
}

fn with(path: &str, q: &str) -> String {
    format!("{path}{}{q}", if path.contains('?') { '&' } else { '?' })
}

both_backends!(every_list_takes_skip_and_limit_within_bounds, |app| {
    let (owner, gym) = app.gym().await;
    let mut last = Value::Null;
    for i in 0..3 {
        let class = app.class(gym, &owner, 10).await;
        last = app.session_at(gym, &owner, class, now() + Duration::minutes(5 + i)).await;
        let (start, end) = (now() + Duration::hours(i + 1), now() + Duration::hours(i + 2));
        let event = json!({"title": format!("E{i}"), "start_time": gymapi_tests::rfc3339(start),
            "end_time": gymapi_tests::rfc3339(end)});
        assert_eq!(app.create_event(gym, &owner, &event).await.0, 201);
    }
    for _ in 0..2 {
        app.member(gym, &owner, "member").await;
    }
    // Three participations in the last session, three attendances of the owner.
    let reg = format!("/api/v1/schedule/sessions/{}/register", last["id"]);
    for u in 0..3 {
        let m = app.member(gym, &owner, "member").await;
        assert_eq!(send(app.call(Method::POST, &reg, &m.token, Some(gym))).await.0, 201, "member {u}");
    }
    let (status, _) = app
        .send_json(
            Method::POST,
            "/api/v1/attendance/check-in",
            &owner,
            gym,
            &json!({"qr_code": qr_of(&app, gym, &owner).await}),
        )
        .await;
    assert_eq!(status, 200);
    for path in lists(&last) {
        let (status, all) = app.send_as(Method::GET, &path, &owner, gym).await;
        assert_eq!(status, 200, "{path}: {all}");
        let all = all.as_array().expect("list").clone();
        assert!(!all.is_empty(), "{path} has data");
        let (_, first) = app.send_as(Method::GET, &with(&path, "limit=1"), &owner, gym).await;
        assert_eq!(first.as_array().map(Vec::len), Some(1), "{path}: limit=1 gives one row: {first}");
        assert_eq!(first[0], all[0], "{path}");
        let (_, rest) = app.send_as(Method::GET, &with(&path, "skip=1&limit=500"), &owner, gym).await;
        assert_eq!(rest.as_array().map(Vec::as_slice), Some(&all[1..]), "{path}: skip=1");
        let (_, none) = app.send_as(Method::GET, &with(&path, "skip=100000"), &owner, gym).await;
        assert_eq!(none, json!([]), "{path}");
        for bad in ["limit=0", "limit=501", "skip=-1", "limit=abc", "skip=1.5", "limit=99999999999999999999"] {
            let got = app.send_as(Method::GET, &with(&path, bad), &owner, gym).await;
            assert_error(&got, 422, "validation_error");
        }
    }
});

both_backends!(invented_http_methods_share_one_metric_label, |app| {
    for m in ["FROB", "XYZZY", "BREW"] {
        let method = Method::from_bytes(m.as_bytes()).expect("method");
        let _ = send(app.req(method, "/health")).await;
    }
    let metrics = app.req(Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text");
    assert!(!metrics.contains("FROB") && !metrics.contains("XYZZY") && !metrics.contains("BREW"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l.starts_with("gymapi_http_requests_total{") && l.contains("method=\"OTHER\"")),
        "{metrics}"
    );
});

both_backends!(a_member_sending_a_malformed_body_to_a_staff_route_is_forbidden, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 10).await;
    let event = json!({"title": "E", "start_time": gymapi_tests::rfc3339(now() + Duration::hours(1)),
        "end_time": gymapi_tests::rfc3339(now() + Duration::hours(2))});
    let (_, e) = app.create_event(gym, &owner, &event).await;
    let routes = [
        (Method::POST, "/api/v1/schedule/classes".to_owned()),
        (Method::PATCH, format!("/api/v1/schedule/classes/{class}")),
        (Method::POST, "/api/v1/schedule/sessions".to_owned()),
        (Method::POST, "/api/v1/events".to_owned()),
        (Method::PATCH, format!("/api/v1/events/{}", e["id"])),
        (Method::POST, "/api/v1/members".to_owned()),
        (Method::PATCH, format!("/api/v1/members/{}", owner.id)),
        (Method::POST, "/api/v1/attendance/check-in".to_owned()),
    ];
    for (method, path) in &routes {
        for body in ["{not json", "[1, 2]", "\"text\"", "", "{\"name\": 42, \"role\": []}"] {
            let got = send(
                app.call(method.clone(), path, &member.token, Some(gym))
                    .header("Content-Type", "application/json")
                    .body(body),
            )
            .await;
            assert_error(&got, 403, "forbidden");
        }
    }
    // Staff sending the same get the body's error.
    let got = send(
        app.call(Method::POST, "/api/v1/schedule/classes", &owner.token, Some(gym))
            .header("Content-Type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_error(&got, 422, "validation_error");
});

both_backends!(a_json_body_of_the_wrong_shape_is_422_and_changes_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let (_, before) = send(app.call(Method::GET, "/api/v1/users/me", &owner.token, None)).await;
    for body in [json!([null, null]), json!(["Ana", "+34"]), json!("Ana"), json!(7), json!(null)] {
        let got = send(app.call(Method::PATCH, "/api/v1/users/me", &owner.token, None).json(&body)).await;
        assert_error(&got, 422, "validation_error");
        let got = send(app.call(Method::POST, "/api/v1/gyms", &owner.token, None).json(&body)).await;
        assert_error(&got, 422, "validation_error");
        let got = app.send_json(Method::POST, "/api/v1/schedule/classes", &owner, gym, &json!([body])).await;
        assert_error(&got, 422, "validation_error");
    }
    let (_, after) = send(app.call(Method::GET, "/api/v1/users/me", &owner.token, None)).await;
    assert_eq!(after, before);
    let (_, gyms) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await;
    assert_eq!(gyms.as_array().map(Vec::len), Some(1), "no gym was created: {gyms}");
});

both_backends!(a_wrong_method_is_405_with_an_allow_header, |app| {
    let (owner, gym) = app.gym().await;
    for (method, path, allowed) in [
        (Method::PUT, "/api/v1/users/me", vec!["GET", "PATCH"]),
        (Method::DELETE, "/api/v1/schedule/classes", vec!["GET", "POST"]),
        (Method::POST, "/health", vec!["GET"]),
        (Method::GET, "/api/v1/attendance/check-in", vec!["POST"]),
    ] {
        let res = app.call(method.clone(), path, &owner.token, Some(gym)).send().await.expect("send");
        assert_eq!(res.status(), 405, "{method} {path}");
        let allow = res.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let mut got: Vec<&str> = allow.split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
        got.sort_unstable();
        assert_eq!(got, allowed, "{method} {path}: Allow: {allow:?}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["code"], "method_not_allowed");
    }
});

both_backends!(text_with_a_nul_character_is_422_on_both_databases_and_stores_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 10).await;
    let nul = "a\u{0}b";
    let start = gymapi_tests::rfc3339(now() + Duration::days(2));
    let end = gymapi_tests::rfc3339(now() + Duration::days(2) + Duration::hours(1));
    let cases = [
        (Method::PATCH, "/api/v1/users/me".to_owned(), json!({"name": nul})),
        (Method::PATCH, "/api/v1/users/me".to_owned(), json!({"phone": nul})),
        (Method::POST, "/api/v1/gyms".to_owned(), json!({"name": nul})),
        (Method::POST, "/api/v1/gyms".to_owned(), json!({"name": "G", "address": nul})),
        (
            Method::POST,
            "/api/v1/schedule/classes".to_owned(),
            json!({"name": nul, "duration_minutes": 5, "max_capacity": 5}),
        ),
        (Method::PATCH, format!("/api/v1/schedule/classes/{class}"), json!({"category": nul})),
        (
            Method::POST,
            "/api/v1/schedule/sessions".to_owned(),
            json!({"class_id": class, "start_time": start, "room": nul}),
        ),
        (Method::POST, "/api/v1/events".to_owned(), json!({"title": nul, "start_time": start, "end_time": end})),
    ];
    for (method, path, body) in cases {
        let got = send(app.call(method.clone(), &path, &owner.token, Some(gym)).json(&body)).await;
        assert_error(&got, 422, "validation_error");
    }
    let (_, me) = send(app.call(Method::GET, "/api/v1/users/me", &owner.token, None)).await;
    assert!(me["name"].is_null() && me["phone"].is_null(), "{me}");
    let (_, gyms) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await;
    assert_eq!(gyms.as_array().map(Vec::len), Some(1));
    let nul_claims = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "nul-mail", "exp": (now() + Duration::hours(1)).unix_timestamp(), "email": "a\u{0}@x.io"}),
        &jsonwebtoken::EncodingKey::from_secret(gymapi_tests::SECRET.as_bytes()),
    )
    .expect("sign");
    assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &nul_claims, None)).await, 401, "invalid_token");
});

both_backends!(routing_comes_before_the_body_limit, |app| {
    let big = "x".repeat(70 * 1000);
    let got = send(app.req(Method::POST, "/api/v1/nowhere").body(big.clone())).await;
    assert_error(&got, 404, "not_found");
    let got = send(app.req(Method::GET, "/nowhere/else").body(big)).await;
    assert_error(&got, 404, "not_found");
});

both_backends!(a_percent_encoded_path_is_held_to_the_body_limit_too, |app| {
    let (owner, gym) = app.gym().await;
    let before = qr_of(&app, gym, &owner).await;
    let big = "x".repeat(70 * 1000);
    let got =
        send(app.call(Method::POST, "/api/v1/attendance/my-qr/rotat%65", &owner.token, Some(gym)).body(big)).await;
    assert_error(&got, 413, "payload_too_large");
    assert_eq!(qr_of(&app, gym, &owner).await, before, "not rotated");
});
