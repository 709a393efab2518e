//! Issue 19: `Idempotency-Key` on every POST. A retry with the same key, caller and
//! request replays the first answer without doing the work again, through any
//! instance and after a restart; the same key for another request is
//! `422 idempotency_key_reused`; concurrent requests with one key do the work once;
//! a front desk that retries a check-in never sees `already_checked_in` for its own
//! first success.

use gymapi_tests::{
    Backend, Options, TestApp, TestUser, assert_error, both_backends, now, on_both_backends, own_connection, qr_of,
    send, session_url,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use time::Duration;

const CHECK_IN: &str = "/api/v1/attendance/check-in";

/// What an answer said: status, JSON body, and whether it was a replay.
async fn keyed(rb: RequestBuilder, key: &str) -> (StatusCode, Value, bool) {
    let res = rb.header("Idempotency-Key", key).send().await.expect("request");
    let status = res.status();
    let replayed = match res.headers().get("Idempotent-Replayed") {
        None => false,
        Some(v) => {
            assert_eq!(v, "true", "the header's only value");
            true
        }
    };
    let bytes = res.bytes().await.expect("body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") };
    (status, body, replayed)
}

fn post(app: &TestApp, path: &str, u: &TestUser, gym: i64, body: &Value) -> RequestBuilder {
    app.call(Method::POST, path, &u.token, Some(gym)).json(body)
}

async fn rows(app: &TestApp, sql: &str) -> i64 {
    let conn = own_connection(&app.db.url).await;
    let row = conn.query_one_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).await;
    let n = row.expect("count").expect("a row").try_get_by_index::<i64>(0).expect("an integer");
    let _ = conn.close().await;
    n
}

both_backends!(a_retry_replays_the_first_answer_without_working_again, |app| {
    let (owner, gym) = app.gym().await;
    let class = json!({"name": "Spin", "duration_minutes": 45, "max_capacity": 1});
    let first = keyed(post(&app, "/api/v1/schedule/classes", &owner, gym, &class), "class-1").await;
    assert_eq!((first.0.as_u16(), first.2), (201, false), "{}", first.1);
    let again = keyed(post(&app, "/api/v1/schedule/classes", &owner, gym, &class), "class-1").await;
    assert_eq!((again.0.as_u16(), &again.1, again.2), (201, &first.1, true), "the same status and body, replayed");
    let quoted = keyed(post(&app, "/api/v1/schedule/classes", &owner, gym, &class), "\"class-1\"").await;
    assert_eq!((quoted.0.as_u16(), quoted.2), (201, true), "a structured-field string is the same key");
    let (_, list) = app.send_as(Method::GET, "/api/v1/schedule/classes", &owner, gym).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "one class: {list}");

    // The same key for anything else is refused, and changes nothing.
    let other = json!({"name": "Yoga", "duration_minutes": 45, "max_capacity": 1});
    let reused = keyed(post(&app, "/api/v1/schedule/classes", &owner, gym, &other), "class-1").await;
    assert_error(&(reused.0, reused.1), 422, "idempotency_key_reused");
    let (_, other_gym) = {
        let (o2, g2) = app.gym().await;
        let added = app
            .send_json(Method::POST, "/api/v1/members", &o2, g2, &json!({"user_id": owner.id, "role": "admin"}))
            .await;
        assert_eq!(added.0, 201, "{}", added.1);
        (o2, g2)
    };
    let elsewhere = keyed(post(&app, "/api/v1/schedule/classes", &owner, other_gym, &class), "class-1").await;
    assert_error(&(elsewhere.0, elsewhere.1), 422, "idempotency_key_reused");
    let es = app
        .call(Method::POST, "/api/v1/events", &owner.token, Some(gym))
        .header("Accept-Language", "es")
        .json(&json!({"title": "x", "start_time": gymapi_tests::rfc3339(now() + Duration::days(1)),
                      "end_time": gymapi_tests::rfc3339(now() + Duration::days(1) + Duration::hours(1))}));
    let es = keyed(es, "class-1").await;
    assert_error(&(es.0, es.1.clone()), 422, "idempotency_key_reused");
    assert!(es.1["detail"].as_str().is_some_and(|d| d.contains("Idempotency-Key ya se usó")), "{}", es.1);
    let (_, list) = app.send_as(Method::GET, "/api/v1/schedule/classes", &owner, gym).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "still one class: {list}");

    // Keys are the caller's: another user's "class-1" is theirs.
    let admin = app.member(gym, &owner, "admin").await;
    let theirs = keyed(post(&app, "/api/v1/schedule/classes", &admin, gym, &class), "class-1").await;
    assert_eq!((theirs.0.as_u16(), theirs.2), (201, false), "{}", theirs.1);
    assert_ne!(theirs.1["id"], first.1["id"]);

    // A booking retried is the booking, not `already_registered`.
    let class_id = first.1["id"].as_i64().expect("id");
    let s = app.session_at(gym, &owner, class_id, now() + Duration::hours(3)).await;
    let m = app.member(gym, &owner, "member").await;
    let booked = keyed(post(&app, &session_url(&s, "register"), &m, gym, &json!({})), "book").await;
    assert_eq!((booked.0.as_u16(), booked.2), (201, false), "{}", booked.1);
    let retried = keyed(post(&app, &session_url(&s, "register"), &m, gym, &json!({})), "book").await;
    assert_eq!((retried.0.as_u16(), &retried.1, retried.2), (201, &booked.1, true));

    // A refusal keeps nothing: nothing was done, so the retry is decided again.
    let late = app.member(gym, &owner, "member").await;
    let full = keyed(post(&app, &session_url(&s, "register"), &late, gym, &json!({})), "late").await;
    assert_error(&(full.0, full.1), 409, "session_full");
    assert_eq!(app.send_as(Method::DELETE, &session_url(&s, "register"), &m, gym).await.0, 204);
    let now_room = keyed(post(&app, &session_url(&s, "register"), &late, gym, &json!({})), "late").await;
    assert_eq!((now_room.0.as_u16(), now_room.2), (201, false), "{}", now_room.1);

    // A success that changed nothing is kept too.
    let cancel = |key: &'static str| keyed(post(&app, &session_url(&s, "cancel"), &owner, gym, &json!({})), key);
    let c1 = cancel("cancel-1").await;
    assert_eq!((c1.0.as_u16(), c1.2), (200, false), "{}", c1.1);
    let c2 = cancel("cancel-2").await;
    assert_eq!((c2.0.as_u16(), c2.2), (200, false), "a repeated cancellation changes nothing: {}", c2.1);
    let c2 = cancel("cancel-2").await;
    assert_eq!((c2.0.as_u16(), c2.2), (200, true));

    // Keys are only for POST; on a GET the header is ignored.
    let got = keyed(app.call(Method::GET, "/api/v1/schedule/classes", &owner.token, Some(gym)), "class-1").await;
    assert_eq!((got.0.as_u16(), got.2), (200, false));
});

both_backends!(a_key_out_of_shape_is_refused_and_changes_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let class = json!({"name": "Spin", "duration_minutes": 45, "max_capacity": 5});
    let too_long = "k".repeat(256);
    for bad in ["", "\"\"", "   ", too_long.as_str(), "caf\u{e9}"] {
        let rb = post(&app, "/api/v1/schedule/classes", &owner, gym, &class);
        let rb = match reqwest::header::HeaderValue::from_bytes(bad.as_bytes()) {
            Ok(v) => rb.header("Idempotency-Key", v),
            Err(_) => continue,
        };
        assert_error(&send(rb).await, 422, "validation_error");
    }
    let twice = post(&app, "/api/v1/schedule/classes", &owner, gym, &class)
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b");
    assert_error(&send(twice).await, 422, "validation_error");
    let (_, list) = app.send_as(Method::GET, "/api/v1/schedule/classes", &owner, gym).await;
    assert_eq!(list, json!([]), "nothing was created");
    // Without a token the route's own answer comes first.
    let anonymous = app.req(Method::POST, "/api/v1/schedule/classes").header("Idempotency-Key", "");
    assert_error(&send(anonymous).await, 401, "missing_token");
});

async fn concurrent_requests_with_one_key_do_the_work_once(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let class_id = a.class(gym, &owner, 100).await;
    let s = a.session_at(gym, &owner, class_id, now() + Duration::hours(2)).await;
    let m = a.member(gym, &owner, "member").await;
    let class = json!({"name": "Once", "duration_minutes": 30, "max_capacity": 3});
    for (path, body, who, key) in [
        ("/api/v1/schedule/classes".to_owned(), class, &owner, "race-class"),
        (session_url(&s, "register"), json!({}), &m, "race-book"),
    ] {
        let answers = futures_util::future::join_all((0..20).map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            keyed(post(app, &path, who, gym, &body), key)
        }))
        .await;
        let done: Vec<&(StatusCode, Value, bool)> = answers.iter().filter(|r| r.0 == 201).collect();
        let busy = answers.iter().filter(|r| r.0 == 409 && r.1["code"] == "idempotency_key_in_progress").count();
        assert_eq!(done.len() + busy, 20, "{path}: {answers:?}");
        assert!(!done.is_empty(), "{path}: somebody did it");
        assert_eq!(done.iter().filter(|r| !r.2).count(), 1, "{path}: one did the work, the rest replayed it");
        assert!(done.iter().all(|r| r.1 == done[0].1), "{path}: one answer for all");
    }
    let classes = rows(&a, &format!("SELECT COUNT(*) FROM classes WHERE gym_id = {gym} AND name = 'Once'")).await;
    assert_eq!(classes, 1);
    let places = rows(&a, &format!("SELECT COUNT(*) FROM participations WHERE member_id = {}", m.id)).await;
    assert_eq!(places, 1);
}

on_both_backends!(
    concurrent_requests_with_one_key_do_the_work_once_on,
    concurrent_requests_with_one_key_do_the_work_once
);

async fn a_front_desk_retry_never_sees_already_checked_in(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 100).await;
    let _s = a.session_at(gym, &owner, class, now() + Duration::minutes(10)).await;
    // One scan retried through the other instance.
    let m = a.member(gym, &owner, "member").await;
    let scan = json!({"qr_code": qr_of(&a, gym, &m).await});
    let first = keyed(post(&a, CHECK_IN, &owner, gym, &scan), "scan-1").await;
    assert_eq!((first.0.as_u16(), first.2), (200, false), "{}", first.1);
    let retry = keyed(post(&b, CHECK_IN, &owner, gym, &scan), "scan-1").await;
    assert_eq!((retry.0.as_u16(), &retry.1, retry.2), (200, &first.1, true));
    let fresh = keyed(post(&b, CHECK_IN, &owner, gym, &scan), "scan-2").await;
    assert_error(&(fresh.0, fresh.1), 400, "already_checked_in");

    // Many members scanned at once, each scan sent three times at once (a desk
    // retrying on a bad network) over both instances, in the same batches.
    let mut members = Vec::new();
    for _ in 0..8 {
        let m = a.member(gym, &owner, "member").await;
        members.push((json!({"qr_code": qr_of(&a, gym, &m).await}), m.id));
    }
    let answers = futures_util::future::join_all(members.iter().enumerate().flat_map(|(n, (scan, _))| {
        let (a, b, owner) = (&a, &b, &owner);
        (0..3).map(move |i| async move {
            let app = if (n + i) % 2 == 0 { a } else { b };
            (n, keyed(post(app, CHECK_IN, owner, gym, scan), &format!("desk-{n}")).await)
        })
    }))
    .await;
    for (n, (_, id)) in members.iter().enumerate() {
        let mine: Vec<&(StatusCode, Value, bool)> = answers.iter().filter(|(k, _)| *k == n).map(|(_, r)| r).collect();
        assert!(mine.iter().all(|r| r.0 == 200 && r.1["success"] == true), "member {n}: {mine:?}");
        assert!(mine.iter().all(|r| r.1 == mine[0].1), "member {n}: one answer");
        assert_eq!(mine.iter().filter(|r| !r.2).count(), 1, "member {n}: checked in once");
        let attended = rows(&a, &format!("SELECT COUNT(*) FROM participations WHERE member_id = {id}")).await;
        assert_eq!(attended, 1);
    }
    // A refused scan keeps nothing: once the code is right, the same key checks in.
    let late = a.member(gym, &owner, "member").await;
    let stale = json!({"qr_code": format!("U{}_00000000", late.id)});
    let refused = keyed(post(&a, CHECK_IN, &owner, gym, &stale), "late").await;
    assert_error(&(refused.0, refused.1), 400, "invalid_qr");
    let good = json!({"qr_code": qr_of(&a, gym, &late).await});
    let reused = keyed(post(&a, CHECK_IN, &owner, gym, &good), "late").await;
    assert_eq!((reused.0.as_u16(), reused.2), (200, false), "{}", reused.1);
}

on_both_backends!(
    a_front_desk_retry_never_sees_already_checked_in_on,
    a_front_desk_retry_never_sees_already_checked_in
);

async fn keys_outlive_a_restart_and_expire_after_a_day(backend: Backend) {
    let db = std::sync::Arc::new(gymapi_tests::TestDb::create(backend).await);
    let first_app = TestApp::spawn_on(db.clone(), Options::default()).await;
    let (owner, gym) = first_app.gym().await;
    let class = json!({"name": "Spin", "duration_minutes": 45, "max_capacity": 5});
    let first = keyed(post(&first_app, "/api/v1/schedule/classes", &owner, gym, &class), "k").await;
    assert_eq!(first.0, 201);
    drop(first_app);
    let app = TestApp::spawn_on(db, Options::default()).await;
    let again = keyed(post(&app, "/api/v1/schedule/classes", &owner, gym, &class), "k").await;
    assert_eq!((again.0.as_u16(), &again.1, again.2), (201, &first.1, true), "recognised by the new process");
    // A day later the key is free again.
    app.clock.set(now() + Duration::hours(24) + Duration::minutes(1));
    let other = json!({"name": "Yoga", "duration_minutes": 45, "max_capacity": 5});
    let later = keyed(post(&app, "/api/v1/schedule/classes", &owner, gym, &other), "k").await;
    assert_eq!((later.0.as_u16(), later.2), (201, false), "{}", later.1);
    assert_ne!(later.1["id"], first.1["id"]);
    let kept = rows(&app, &format!("SELECT COUNT(*) FROM idempotency_keys WHERE user_id = {}", owner.id)).await;
    assert_eq!(kept, 1, "the expired key was taken over, not added");
}

on_both_backends!(keys_outlive_a_restart_and_expire_after_a_day_on, keys_outlive_a_restart_and_expire_after_a_day);
