//! Issue 20: live occupancy. Members checked in within the gym's
//! `occupancy_window_minutes` are in the gym, once each, and per session.

use gymapi_tests::{assert_error, both_backends, now, qr_of};
use reqwest::Method;
use serde_json::json;
use time::Duration;

const CHECK_IN: &str = "/api/v1/attendance/check-in";
const OCCUPANCY: &str = "/api/v1/gyms/current/occupancy";

both_backends!(who_checked_in_within_the_window_is_in_the_gym_once, |app| {
    let (owner, gym) = app.gym().await;
    let t = now();
    app.clock.set(t);
    for bad in [
        json!({"occupancy_window_minutes": 0}),
        json!({"occupancy_window_minutes": 1441}),
        json!({"occupancy_window_minutes": null}),
    ] {
        assert_error(
            &app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &bad).await,
            422,
            "validation_error",
        );
    }
    let (status, g) = app
        .send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &json!({"occupancy_window_minutes": 30}))
        .await;
    assert_eq!((status.as_u16(), &g["occupancy_window_minutes"]), (200, &json!(30)), "{g}");
    let class = app.class(gym, &owner, 10).await;
    let s1 = app.session_at(gym, &owner, class, t + Duration::minutes(5)).await;
    let s2 = app.session_at(gym, &owner, class, t + Duration::minutes(10)).await;
    let trainer = app.member(gym, &owner, "trainer").await;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(app.member(gym, &owner, "member").await);
    }
    let (_, empty) = app.send_as(Method::GET, OCCUPANCY, &trainer, gym).await;
    assert_eq!(empty, json!({"total": 0, "window_minutes": 30, "sessions": []}));
    for (m, s) in [(&members[0], &s1), (&members[1], &s1), (&members[2], &s2), (&members[0], &s2)] {
        let body = json!({"qr_code": qr_of(&app, gym, m).await, "session_id": s["id"]});
        let got = app.send_json(Method::POST, CHECK_IN, &trainer, gym, &body).await;
        assert_eq!(got.0, 200, "{}", got.1);
    }
    let (status, now_in) = app.send_as(Method::GET, OCCUPANCY, &trainer, gym).await;
    assert_eq!(status, 200, "{now_in}");
    let mut want =
        vec![json!({"session_id": s1["id"], "checked_in": 2}), json!({"session_id": s2["id"], "checked_in": 2})];
    want.sort_by_key(|v| v["session_id"].as_i64());
    assert_eq!(now_in, json!({"total": 3, "window_minutes": 30, "sessions": want}), "a member in two sessions is one");
    app.clock.set(t + Duration::minutes(30));
    assert_eq!(app.send_as(Method::GET, OCCUPANCY, &owner, gym).await.1["total"], 3, "the window's edge is in");
    app.clock.set(t + Duration::minutes(31));
    assert_eq!(app.send_as(Method::GET, OCCUPANCY, &owner, gym).await.1["total"], 0);
    assert_error(&app.send_as(Method::GET, OCCUPANCY, &members[0], gym).await, 403, "forbidden");
    let (other_owner, other_gym) = app.gym().await;
    let (_, theirs) = app.send_as(Method::GET, OCCUPANCY, &other_owner, other_gym).await;
    assert_eq!(theirs["total"], 0);
    assert_eq!(theirs["window_minutes"], 90, "the default window");
});
