//! Issue 19: recurring classes at a local wall-clock time in the gym's zone, across
//! daylight-saving changes, and stopping a series.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, session_url};
use reqwest::Method;
use serde_json::{Value, json};
use time::macros::datetime;

async fn zoned_gym(app: &TestApp, tz: &str) -> (TestUser, i64, i64) {
    // Pinned before every date below, so each session of a series is ahead.
    app.clock.set(datetime!(2026-01-01 00:00 UTC));
    let (owner, gym) = app.gym().await;
    let (status, g) = app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &json!({"timezone": tz})).await;
    assert_eq!(status, 200, "{g}");
    let class = app.class(gym, &owner, 10).await;
    (owner, gym, class)
}

async fn series(app: &TestApp, gym: i64, staff: &TestUser, class: i64, body: &Value) -> (reqwest::StatusCode, Value) {
    app.send_json(Method::POST, &format!("/api/v1/schedule/classes/{class}/recurrences"), staff, gym, body).await
}

/// The start times of a series' sessions, in order.
async fn starts(app: &TestApp, gym: i64, staff: &TestUser, made: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for id in made["session_ids"].as_array().expect("ids") {
        let (status, s) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{id}"), staff, gym).await;
        assert_eq!(status, 200, "{s}");
        out.push(s["start_time"].as_str().expect("start").to_owned());
    }
    out
}

both_backends!(a_madrid_class_keeps_its_local_time_across_both_changes, |app| {
    let (owner, gym, class) = zoned_gym(&app, "Europe/Madrid").await;
    let spring = json!({"weekdays": [1], "local_start_time": "09:00", "starts_on": "2026-03-16", "until": "2026-04-06",
                        "room": "Sala 1"});
    let (status, made) = series(&app, gym, &owner, class, &spring).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        (&made["timezone"], &made["weekdays"], &made["local_start_time"]),
        (&json!("Europe/Madrid"), &json!([1]), &json!("09:00"))
    );
    assert_eq!(
        starts(&app, gym, &owner, &made).await,
        ["2026-03-16T08:00:00Z", "2026-03-23T08:00:00Z", "2026-03-30T07:00:00Z", "2026-04-06T07:00:00Z"]
    );
    let autumn =
        json!({"weekdays": [1], "local_start_time": "09:00", "starts_on": "2026-10-19", "until": "2026-11-02"});
    let (_, made) = series(&app, gym, &owner, class, &autumn).await;
    assert_eq!(
        starts(&app, gym, &owner, &made).await,
        ["2026-10-19T07:00:00Z", "2026-10-26T08:00:00Z", "2026-11-02T08:00:00Z"]
    );
    // The skipped 02:30 of 29 March is 03:30 CEST; the repeated 02:30 of 25 October is the first.
    let gap = json!({"weekdays": [7], "local_start_time": "02:30", "starts_on": "2026-03-29", "until": "2026-03-29"});
    let (_, made) = series(&app, gym, &owner, class, &gap).await;
    assert_eq!(starts(&app, gym, &owner, &made).await, ["2026-03-29T01:30:00Z"]);
    let fold = json!({"weekdays": [7], "local_start_time": "02:30", "starts_on": "2026-10-25", "until": "2026-10-25"});
    let (_, made) = series(&app, gym, &owner, class, &fold).await;
    assert_eq!(starts(&app, gym, &owner, &made).await, ["2026-10-25T00:30:00Z"]);
});

both_backends!(a_new_york_class_keeps_its_local_time_across_both_changes, |app| {
    let (owner, gym, class) = zoned_gym(&app, "America/New_York").await;
    let spring =
        json!({"weekdays": [7], "local_start_time": "18:30", "starts_on": "2026-03-01", "until": "2026-03-15"});
    let (status, made) = series(&app, gym, &owner, class, &spring).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(
        starts(&app, gym, &owner, &made).await,
        ["2026-03-01T23:30:00Z", "2026-03-08T22:30:00Z", "2026-03-15T22:30:00Z"]
    );
    let autumn =
        json!({"weekdays": [7], "local_start_time": "18:30", "starts_on": "2026-10-25", "until": "2026-11-08"});
    let (_, made) = series(&app, gym, &owner, class, &autumn).await;
    assert_eq!(
        starts(&app, gym, &owner, &made).await,
        ["2026-10-25T22:30:00Z", "2026-11-01T23:30:00Z", "2026-11-08T23:30:00Z"]
    );
    let fold = json!({"weekdays": [7], "local_start_time": "01:30", "starts_on": "2026-11-01", "until": "2026-11-01"});
    let (_, made) = series(&app, gym, &owner, class, &fold).await;
    assert_eq!(starts(&app, gym, &owner, &made).await, ["2026-11-01T05:30:00Z"], "the first 01:30, EDT");
});

both_backends!(a_series_is_refused_with_the_contracts_errors_and_makes_nothing, |app| {
    let (owner, gym, class) = zoned_gym(&app, "Europe/Madrid").await;
    let member = app.member(gym, &owner, "member").await;
    let ok = json!({"weekdays": [1, 3], "local_start_time": "07:00", "starts_on": "2026-02-02", "until": "2026-02-28"});
    assert_error(&series(&app, gym, &member, class, &ok).await, 403, "forbidden");
    assert_error(&series(&app, gym, &member, class, &json!({"weekdays": "x"})).await, 403, "forbidden");
    let with = |field: &str, v: Value| {
        let mut b = ok.clone();
        b[field] = v;
        b
    };
    for bad in [
        with("weekdays", json!([])),
        with("weekdays", json!([0])),
        with("weekdays", json!([8])),
        with("weekdays", json!([-1])),
        with("weekdays", json!(["1"])),
        with("local_start_time", json!("24:00")),
        with("local_start_time", json!("9:00")),
        with("local_start_time", json!("09:00:00")),
        with("starts_on", json!("2026-02-30")),
        with("until", json!("2026-01-31")),
        with("until", json!("2027-02-04")),
        with("starts_on", json!("2025-01-01")).tap_until("2025-12-31"),
        json!({}),
    ] {
        assert_error(&series(&app, gym, &owner, class, &bad).await, 422, "validation_error");
    }
    assert_error(&series(&app, gym, &owner, 999_999, &ok).await, 404, "class_not_found");
    let stranger = app.user("outsider").await;
    assert_error(
        &series(&app, gym, &owner, class, &with("trainer_id", json!(stranger.id))).await,
        404,
        "user_not_found",
    );
    let (status, list) =
        app.send_as(Method::GET, &format!("/api/v1/schedule/classes/{class}/recurrences"), &owner, gym).await;
    assert_eq!((status.as_u16(), &list), (200, &json!([])), "nothing was made");
    let (_, sessions) = app
        .send_as(Method::GET, "/api/v1/schedule/sessions?start_date=2026-02-01&end_date=2026-03-01", &owner, gym)
        .await;
    assert_eq!(sessions, json!([]));
});

both_backends!(stopping_a_series_removes_its_unbooked_future_sessions_and_keeps_the_booked, |app| {
    let (owner, gym, class) = zoned_gym(&app, "UTC").await;
    let member = app.member(gym, &owner, "member").await;
    let body = json!({"weekdays": [1], "local_start_time": "10:00", "starts_on": "2026-02-02", "until": "2026-02-23"});
    let (_, made) = series(&app, gym, &owner, class, &body).await;
    let ids: Vec<i64> = made["session_ids"].as_array().expect("ids").iter().filter_map(Value::as_i64).collect();
    assert_eq!(ids.len(), 4, "{made}");
    let booked = json!({"id": ids[2]});
    assert_eq!(app.send_as(Method::POST, &session_url(&booked, "register"), &member, gym).await.0, 201);
    // A generated session is cancelled alone.
    let alone = json!({"id": ids[3]});
    let (status, c) = app.send_as(Method::POST, &session_url(&alone, "cancel"), &owner, gym).await;
    assert_eq!((status.as_u16(), &c["status"]), (200, &json!("cancelled")));
    let url = format!("/api/v1/schedule/classes/{class}/recurrences/{}", made["id"]);
    assert_eq!(app.send_as(Method::DELETE, &url, &member, gym).await.0, 403);
    assert_eq!(app.send_as(Method::DELETE, &url, &owner, gym).await.0, 204);
    let (_, list) =
        app.send_as(Method::GET, &format!("/api/v1/schedule/classes/{class}/recurrences"), &owner, gym).await;
    assert_eq!(list[0]["session_ids"], json!([ids[2]]), "the booked one stays: {list}");
    assert!(list[0]["stopped_at"].is_string(), "{list}");
    for gone in [ids[0], ids[1], ids[3]] {
        assert_error(
            &app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{gone}"), &owner, gym).await,
            404,
            "session_not_found",
        );
    }
    assert_eq!(app.send_as(Method::DELETE, &url, &owner, gym).await.0, 204, "again: nothing changes");
    let (_, again) =
        app.send_as(Method::GET, &format!("/api/v1/schedule/classes/{class}/recurrences"), &owner, gym).await;
    assert_eq!(again, list);
    let other = format!("/api/v1/schedule/classes/{class}/recurrences/999999");
    assert_error(&app.send_as(Method::DELETE, &other, &owner, gym).await, 404, "recurrence_not_found");
    let junk = format!("/api/v1/schedule/classes/{class}/recurrences/x");
    assert_error(&app.send_as(Method::DELETE, &junk, &owner, gym).await, 422, "validation_error");
});

trait TapUntil {
    fn tap_until(self, until: &str) -> Self;
}

impl TapUntil for Value {
    fn tap_until(mut self, until: &str) -> Self {
        self["until"] = json!(until);
        self
    }
}

both_backends!(a_series_whose_last_session_would_end_past_the_calendar_is_refused, |app| {
    let (owner, gym, class) = zoned_gym(&app, "America/Los_Angeles").await;
    let (status, c) = app.send_as(Method::GET, &format!("/api/v1/schedule/classes/{class}"), &owner, gym).await;
    assert_eq!(status, 200, "{c}");
    // 9999-12-31 is a Friday; 15:30 in Los Angeles is 23:30 UTC, and the class lasts
    // long enough that its end would be past 9999-12-31T23:59:59Z.
    assert!(c["duration_minutes"].as_i64().expect("minutes") >= 30, "{c}");
    let body = json!({"weekdays": [5], "local_start_time": "15:30", "starts_on": "9999-12-25", "until": "9999-12-31"});
    assert_error(&series(&app, gym, &owner, class, &body).await, 422, "validation_error");
    // Past the calendar in UTC already at the start (16:30 is 00:30 on 10000-01-01).
    let body = json!({"weekdays": [5], "local_start_time": "16:30", "starts_on": "9999-12-25", "until": "9999-12-31"});
    assert_error(&series(&app, gym, &owner, class, &body).await, 422, "validation_error");
    let (_, list) =
        app.send_as(Method::GET, &format!("/api/v1/schedule/classes/{class}/recurrences"), &owner, gym).await;
    assert_eq!(list, json!([]), "nothing was made");
});
