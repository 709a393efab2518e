//! Issue 9, item 1: every time or date a request brings in is storable and comes
//! back exactly, or the request is `422 validation_error` and changes nothing.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, now, rfc3339, send};
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

/// Times that are not instants of the years 1 to 9999 once converted to UTC.
const UNSTORABLE: &[&str] = &[
    "9999-12-31T23:30:00-01:00",
    "0001-01-01T00:30:00+01:00",
    "0000-06-01T00:00:00Z",
    "-0001-06-01T00:00:00Z",
    "+10000-01-01T00:00:00Z",
    "99999-01-01T00:00:00Z",
    "2026-02-30T10:00:00Z",
    "2026-01-01T10:00:00+24:00",
];

async fn sessions_of(app: &TestApp, gym: i64, u: &TestUser, from: &str, to: &str) -> Value {
    let path = format!("/api/v1/schedule/sessions?start_date={from}&end_date={to}");
    let (status, list) = app.send_as(Method::GET, &path, u, gym).await;
    assert_eq!(status, 200, "{list}");
    list
}

both_backends!(a_time_outside_years_1_to_9999_in_utc_is_422_and_stores_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 10).await;
    for t in UNSTORABLE {
        let got = app.create_session(gym, &owner, &json!({"class_id": class, "start_time": t})).await;
        assert_error(&got, 422, "validation_error");
        let got = app
            .create_session(
                gym,
                &owner,
                &json!({"class_id": class, "start_time": "2026-01-01T10:00:00Z", "end_time": t}),
            )
            .await;
        assert_error(&got, 422, "validation_error");
        let got = app
            .create_event(
                gym,
                &owner,
                &json!({"title": "Open day", "start_time": "2026-01-01T10:00:00Z", "end_time": t}),
            )
            .await;
        assert_error(&got, 422, "validation_error");
    }
    // A start whose default end (start + 45 minutes) would leave the calendar.
    let got = app.create_session(gym, &owner, &json!({"class_id": class, "start_time": "9999-12-31T23:50:00Z"})).await;
    assert_error(&got, 422, "validation_error");
    assert_eq!(sessions_of(&app, gym, &owner, "9999-11-01", "9999-12-30").await, json!([]));
    assert_eq!(sessions_of(&app, gym, &owner, "2025-12-01", "2026-01-31").await, json!([]));
});

both_backends!(the_last_storable_instants_are_stored_and_returned_exactly, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 10).await;
    let body =
        json!({"class_id": class, "start_time": "9999-12-30T22:00:00-01:00", "end_time": "9999-12-31T23:59:59Z"});
    let (status, s) = app.create_session(gym, &owner, &body).await;
    assert_eq!(status, 201, "{s}");
    assert_eq!(
        (s["start_time"].as_str(), s["end_time"].as_str()),
        (Some("9999-12-30T23:00:00Z"), Some("9999-12-31T23:59:59Z"))
    );
    let (status, got) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", s["id"]), &owner, gym).await;
    assert_eq!((status.as_u16(), &got), (200, &s));
    assert_eq!(sessions_of(&app, gym, &owner, "9999-12-30", "9999-12-30").await, json!([s]));
    let body = json!({"title": "Y10K", "start_time": "0001-01-01T00:00:00Z", "end_time": "0001-01-01T01:00:00+00:30"});
    let (status, e) = app.create_event(gym, &owner, &body).await;
    assert_eq!(status, 201, "{e}");
    assert_eq!(
        (e["start_time"].as_str(), e["end_time"].as_str()),
        (Some("0001-01-01T00:00:00Z"), Some("0001-01-01T00:30:00Z"))
    );
});

both_backends!(sub_second_times_are_truncated_before_end_after_start_is_checked, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 10).await;
    let start = now() + Duration::days(1);
    let (a, b) = (rfc3339(start).replace('Z', ".2Z"), rfc3339(start).replace('Z', ".7Z"));
    let got = app.create_session(gym, &owner, &json!({"class_id": class, "start_time": a, "end_time": b})).await;
    assert_error(&got, 422, "validation_error");
    let got = app.create_event(gym, &owner, &json!({"title": "Blink", "start_time": a, "end_time": b})).await;
    assert_error(&got, 422, "validation_error");
    let day = start.date().to_string();
    assert_eq!(sessions_of(&app, gym, &owner, &day, &day).await, json!([]));
    let later = rfc3339(start + Duration::hours(1)).replace('Z', ".999999Z");
    let (status, s) =
        app.create_session(gym, &owner, &json!({"class_id": class, "start_time": a, "end_time": later})).await;
    assert_eq!(status, 201, "{s}");
    assert_eq!(s["start_time"].as_str(), Some(rfc3339(start).as_str()), "kept to the second");
    assert_eq!(s["end_time"].as_str(), Some(rfc3339(start + Duration::hours(1)).as_str()));
});

both_backends!(list_ranges_outside_the_calendar_are_422, |app| {
    let (owner, gym) = app.gym().await;
    for (from, to) in [
        ("0000-01-01", "0000-01-02"),
        ("-0001-01-01", "-0001-01-02"),
        ("9999-12-01", "10000-01-01"),
        ("2026-13-01", "2026-13-02"),
        ("2026-1-1", "2026-1-2"),
    ] {
        for route in ["/api/v1/schedule/sessions", "/api/v1/events"] {
            let path = format!("{route}?start_date={from}&end_date={to}");
            assert_error(&send(app.call(Method::GET, &path, &owner.token, Some(gym))).await, 422, "validation_error");
        }
    }
});

both_backends!(a_time_without_its_offset_or_seconds_is_422, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 10).await;
    for t in ["2030-01-01T10:00:00", "2030-01-01T10:00Z", "2030-01-01 10:00:00Z", "2030-01-01t10:00:00z", ""] {
        let got = app.create_session(gym, &owner, &json!({"class_id": class, "start_time": t})).await;
        assert_error(&got, 422, "validation_error");
    }
    assert_eq!(sessions_of(&app, gym, &owner, "2030-01-01", "2030-01-01").await, json!([]));
});
