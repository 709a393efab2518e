//! Contract §4 (Events) and §7.

use gymapi_tests::{assert_error, both_backends, now, rfc3339, send};
use reqwest::Method;
use serde_json::json;
use time::Duration;

both_backends!(events_are_created_read_patched_listed_and_deleted, |app| {
    let (owner, gym) = app.gym().await;
    let trainer = app.member(gym, &owner, "trainer").await;
    let member = app.member(gym, &owner, "member").await;
    let start = time::macros::datetime!(2031-05-01 18:00 UTC);
    let end = start + Duration::hours(2);
    let body = json!({"title": "Open day", "start_time": rfc3339(start), "end_time": rfc3339(end), "location": "Hall"});
    assert_error(&app.create_event(gym, &member, &body).await, 403, "forbidden");
    let (status, ev) = app.create_event(gym, &trainer, &body).await;
    assert_eq!(status, 201, "{ev}");
    assert_eq!(
        (ev["title"].as_str(), ev["gym_id"].as_i64(), ev["location"].as_str()),
        (Some("Open day"), Some(gym), Some("Hall"))
    );
    assert!(ev["description"].is_null() && ev["max_participants"].is_null());
    let path = format!("/api/v1/events/{}", ev["id"]);
    let (_, got) = app.send_as(Method::GET, &path, &member, gym).await;
    assert_eq!(got, ev);
    let (status, patched) = app.send_json(Method::PATCH, &path, &trainer, gym, &json!({"max_participants": 30})).await;
    assert_eq!((status.as_u16(), patched["max_participants"].as_i64()), (200, Some(30)));
    let (_, list) = send(app.call(
        Method::GET,
        "/api/v1/events?start_date=2031-05-01&end_date=2031-05-01",
        &member.token,
        Some(gym),
    ))
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (_, other_day) =
        app.send_as(Method::GET, "/api/v1/events?start_date=2031-05-02&end_date=2031-05-03", &member, gym).await;
    assert_eq!(other_day, json!([]));
    assert_error(&app.send_as(Method::DELETE, &path, &trainer, gym).await, 403, "forbidden");
    assert_eq!(app.send_as(Method::DELETE, &path, &owner, gym).await.0, 204);
    assert_error(&app.send_as(Method::GET, &path, &member, gym).await, 404, "event_not_found");
});

both_backends!(an_event_must_end_after_it_starts, |app| {
    let (owner, gym) = app.gym().await;
    let t = now() + Duration::days(1);
    for end in [t, t - Duration::minutes(1)] {
        let body = json!({"title": "Bad", "start_time": rfc3339(t), "end_time": rfc3339(end)});
        let refused = app.create_event(gym, &owner, &body).await;
        assert_error(&refused, 422, "validation_error");
    }
    let got = send(app.call(
        Method::GET,
        "/api/v1/events?start_date=2031-01-01&end_date=2031-06-01",
        &owner.token,
        Some(gym),
    ))
    .await;
    assert_error(&got, 422, "validation_error");
});

both_backends!(another_gyms_event_is_event_not_found, |app| {
    let (owner_a, gym_a) = app.gym().await;
    let (owner_b, gym_b) = app.gym().await;
    let t = now() + Duration::days(1);
    let body = json!({"title": "Mine", "start_time": rfc3339(t), "end_time": rfc3339(t + Duration::hours(1))});
    let (_, ev) = app.create_event(gym_a, &owner_a, &body).await;
    let path = format!("/api/v1/events/{}", ev["id"]);
    assert_error(&send(app.call(Method::GET, &path, &owner_b.token, Some(gym_b))).await, 404, "event_not_found");
    let refused = app.send_json(Method::PATCH, &path, &owner_b, gym_b, &json!({"title": "x"})).await;
    assert_error(&refused, 404, "event_not_found");
    assert_error(&send(app.call(Method::DELETE, &path, &owner_b.token, Some(gym_b))).await, 404, "event_not_found");
});
