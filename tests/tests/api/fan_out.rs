//! Each kind of write (each domain event) is seen by the very next read on another
//! instance sharing the database and Redis, whatever that instance had cached.

use gymapi_tests::{TestApp, TestUser, assert_error, now, send, two_instances};
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

async fn get(app: &TestApp, path: &str, u: &TestUser, gym: Option<i64>) -> Value {
    let (status, body) = send(app.call(Method::GET, path, &u.token, gym)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// A gym with a member and a session of a class of five places starting `in` from
/// now; `one` is the session's path.
struct Scene {
    owner: TestUser,
    member: TestUser,
    gym: i64,
    s: Value,
    one: String,
}

async fn scene(a: &TestApp, r#in: Duration) -> Scene {
    let (owner, gym) = a.gym().await;
    let member = a.member(gym, &owner, "member").await;
    let class = a.class(gym, &owner, 5).await;
    let s = a.session_at(gym, &owner, class, now() + r#in).await;
    let one = format!("/api/v1/schedule/sessions/{}", s["id"]);
    Scene { owner, member, gym, s, one }
}

two_instances!(gym_created_is_usable_on_the_other_instance_at_once, |a, b| {
    let owner = a.user("fan-owner").await;
    // B caches the owner's memberships (none), then A creates a gym.
    assert_eq!(get(&b, "/api/v1/users/me/gyms", &owner, None).await, json!([]));
    let (status, gym) =
        send(a.call(Method::POST, "/api/v1/gyms", &owner.token, None).json(&json!({"name": "New"}))).await;
    assert_eq!(status, 201);
    let current = get(&b, "/api/v1/gyms/current", &owner, gym["id"].as_i64()).await;
    assert_eq!(current["id"], gym["id"]);
});

two_instances!(profile_changed_shows_on_the_other_instance_at_once, |a, b| {
    let u = a.user("fan-profile").await;
    assert!(get(&b, "/api/v1/users/me", &u, None).await["name"].is_null());
    let (status, _) =
        send(a.call(Method::PATCH, "/api/v1/users/me", &u.token, None).json(&json!({"name": "Ana"}))).await;
    assert_eq!(status, 200);
    assert_eq!(get(&b, "/api/v1/users/me", &u, None).await["name"], "Ana");
});

two_instances!(membership_changed_applies_on_the_other_instance_at_once, |a, b| {
    let (owner, gym) = a.gym().await;
    let trainer = a.member(gym, &owner, "trainer").await;
    assert_eq!(send(b.call(Method::GET, "/api/v1/members", &trainer.token, Some(gym))).await.0, 200);
    let path = format!("/api/v1/members/{}", trainer.id);
    let (status, _) = a.send_json(Method::PATCH, &path, &owner, gym, &json!({"role": "member"})).await;
    assert_eq!(status, 200);
    assert_error(&send(b.call(Method::GET, "/api/v1/members", &trainer.token, Some(gym))).await, 403, "forbidden");
});

two_instances!(class_changed_shows_in_the_other_instances_list_at_once, |a, b| {
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 5).await;
    assert_eq!(get(&b, "/api/v1/schedule/classes", &owner, Some(gym)).await[0]["max_capacity"], 5);
    let path = format!("/api/v1/schedule/classes/{class}");
    let (status, _) = a.send_json(Method::PATCH, &path, &owner, gym, &json!({"max_capacity": 9})).await;
    assert_eq!(status, 200);
    assert_eq!(get(&b, "/api/v1/schedule/classes", &owner, Some(gym)).await[0]["max_capacity"], 9);
    assert_eq!(send(a.call(Method::DELETE, &path, &owner.token, Some(gym))).await.0, 204);
    assert_eq!(get(&b, "/api/v1/schedule/classes", &owner, Some(gym)).await, json!([]));
});

two_instances!(booked_and_booking_cancelled_show_on_the_other_instance_at_once, |a, b| {
    let Scene { member, gym, s, one, .. } = scene(&a, Duration::days(1)).await;
    assert_eq!(get(&b, &one, &member, Some(gym)).await["registered_count"], 0);
    assert_eq!(
        get(&b, "/api/v1/users/me/dashboard-summary", &member, Some(gym)).await["upcoming_registrations"],
        json!([])
    );
    assert_eq!(a.send_as(Method::POST, &format!("{one}/register"), &member, gym).await.0, 201);
    assert_eq!(get(&b, &one, &member, Some(gym)).await["registered_count"], 1);
    let d = get(&b, "/api/v1/users/me/dashboard-summary", &member, Some(gym)).await;
    assert_eq!(d["upcoming_registrations"][0]["id"], s["id"]);
    assert_eq!(a.send_as(Method::DELETE, &format!("{one}/register"), &member, gym).await.0, 204);
    assert_eq!(get(&b, &one, &member, Some(gym)).await["registered_count"], 0);
    assert_eq!(
        get(&b, "/api/v1/users/me/dashboard-summary", &member, Some(gym)).await["upcoming_registrations"],
        json!([])
    );
});

two_instances!(session_cancelled_shows_on_the_other_instance_at_once, |a, b| {
    let Scene { owner, gym, one, .. } = scene(&a, Duration::days(1)).await;
    assert_eq!(get(&b, &one, &owner, Some(gym)).await["status"], "scheduled");
    assert_eq!(a.send_as(Method::POST, &format!("{one}/cancel"), &owner, gym).await.0, 200);
    assert_eq!(get(&b, &one, &owner, Some(gym)).await["status"], "cancelled");
});

two_instances!(checked_in_shows_on_the_other_instance_at_once, |a, b| {
    let Scene { owner, member, gym, one, .. } = scene(&a, Duration::minutes(5)).await;
    assert!(get(&b, "/api/v1/attendance/me/last", &member, Some(gym)).await["last_attendance"].is_null());
    assert_eq!(get(&b, "/api/v1/users/me/dashboard-summary", &member, Some(gym)).await["total_attendances"], 0);
    assert_eq!(get(&b, &one, &member, Some(gym)).await["registered_count"], 0);
    let qr = get(&a, "/api/v1/attendance/my-qr", &member, Some(gym)).await["qr_code"].clone();
    let (status, _) =
        a.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &json!({"qr_code": qr})).await;
    assert_eq!(status, 200);
    assert!(get(&b, "/api/v1/attendance/me/last", &member, Some(gym)).await["last_attendance"].is_string());
    assert_eq!(get(&b, "/api/v1/users/me/dashboard-summary", &member, Some(gym)).await["total_attendances"], 1);
    assert_eq!(get(&b, &one, &member, Some(gym)).await["registered_count"], 1, "the walk-in's place");
});

two_instances!(event_changed_shows_in_the_other_instances_list_at_once, |a, b| {
    let (owner, gym) = a.gym().await;
    let list = "/api/v1/events";
    assert_eq!(get(&b, list, &owner, Some(gym)).await, json!([]));
    let body = json!({"title": "Open day", "start_time": gymapi_tests::rfc3339(now() + Duration::hours(2)),
        "end_time": gymapi_tests::rfc3339(now() + Duration::hours(3))});
    let (status, e) = a.send_json(Method::POST, list, &owner, gym, &body).await;
    assert_eq!(status, 201);
    assert_eq!(get(&b, list, &owner, Some(gym)).await[0]["title"], "Open day");
    let one = format!("/api/v1/events/{}", e["id"]);
    let (status, _) = a.send_json(Method::PATCH, &one, &owner, gym, &json!({"title": "Fair"})).await;
    assert_eq!(status, 200);
    assert_eq!(get(&b, list, &owner, Some(gym)).await[0]["title"], "Fair");
    assert_eq!(a.send_as(Method::DELETE, &one, &owner, gym).await.0, 204);
    assert_eq!(get(&b, list, &owner, Some(gym)).await, json!([]));
});

two_instances!(qr_rotated_applies_on_the_other_instance_at_once, |a, b| {
    let (owner, gym) = a.gym().await;
    let old = get(&b, "/api/v1/attendance/my-qr", &owner, Some(gym)).await["qr_code"].clone();
    let (status, new) = a.send_as(Method::POST, "/api/v1/attendance/my-qr/rotate", &owner, gym).await;
    assert_eq!(status, 200);
    assert_ne!(new["qr_code"], old);
    assert_eq!(get(&b, "/api/v1/attendance/my-qr", &owner, Some(gym)).await["qr_code"], new["qr_code"]);
});

two_instances!(places_freed_by_a_leaving_member_show_on_the_other_instance_at_once, |a, b| {
    let Scene { owner, member, gym, one, .. } = scene(&a, Duration::days(1)).await;
    assert_eq!(a.send_as(Method::POST, &format!("{one}/register"), &member, gym).await.0, 201);
    assert_eq!(get(&b, &one, &owner, Some(gym)).await["registered_count"], 1);
    let leave = format!("/api/v1/members/{}", member.id);
    assert_eq!(a.send_as(Method::DELETE, &leave, &member, gym).await.0, 204);
    assert_eq!(get(&b, &one, &owner, Some(gym)).await["registered_count"], 0);
    assert_error(&b.send_as(Method::GET, "/api/v1/gyms/current", &member, gym).await, 403, "not_a_member");
});
