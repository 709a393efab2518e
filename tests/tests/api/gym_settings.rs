//! Issue 19: the gym's settings (`PATCH /gyms/current`) and the booking window they
//! set.

use gymapi_tests::{assert_error, both_backends, now, rfc3339, send, session_url};
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

both_backends!(an_admin_changes_the_gyms_zone_address_and_booking_window, |app| {
    let (owner, gym) = app.gym().await;
    let admin = app.member(gym, &owner, "admin").await;
    let patch = json!({"timezone": "Europe/Madrid", "address": null, "booking_opens_hours": 48,
                       "booking_closes_minutes": 30, "name": "Iron Madrid"});
    let (status, changed) = app.send_json(Method::PATCH, "/api/v1/gyms/current", &admin, gym, &patch).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            &changed["timezone"],
            &changed["address"],
            &changed["booking_opens_hours"],
            &changed["booking_closes_minutes"]
        ),
        (&json!("Europe/Madrid"), &Value::Null, &json!(48), &json!(30))
    );
    assert_eq!(changed["name"], "Iron Madrid");
    let (_, current) = app.send_as(Method::GET, "/api/v1/gyms/current", &owner, gym).await;
    assert_eq!(current, changed, "stored as answered");
    let (_, mine) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await;
    assert_eq!(mine[0]["gym"], changed);
    // Null lifts the opening limit.
    let patch = json!({"timezone": "America/New_York", "booking_opens_hours": null});
    let (status, again) = app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &patch).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!((&again["timezone"], &again["booking_opens_hours"]), (&json!("America/New_York"), &Value::Null));
    assert_eq!((&again["booking_closes_minutes"], &again["name"]), (&json!(30), &json!("Iron Madrid")), "kept");
});

both_backends!(gym_changes_are_refused_with_the_contracts_errors_and_change_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let trainer = app.member(gym, &owner, "trainer").await;
    let (_, before) = app.send_as(Method::GET, "/api/v1/gyms/current", &owner, gym).await;
    let patch = |user: &gymapi_tests::TestUser, body: Value| {
        send(app.call(Method::PATCH, "/api/v1/gyms/current", &user.token, Some(gym)).json(&body))
    };
    assert_error(&patch(&trainer, json!({"name": "Mine"})).await, 403, "forbidden");
    assert_error(&patch(&trainer, json!({"timezone": 5})).await, 403, "forbidden");
    for bad in [
        json!({"timezone": "Mars/Olympus"}),
        json!({"timezone": "europe/madrid"}),
        json!({"timezone": ""}),
        json!({"timezone": "../../etc/passwd"}),
        json!({"timezone": null}),
        json!({"booking_opens_hours": 0}),
        json!({"booking_opens_hours": 8761}),
        json!({"booking_opens_hours": 1, "booking_closes_minutes": 60}),
        json!({"booking_closes_minutes": -1}),
        json!({"booking_closes_minutes": 10081}),
        json!({"booking_closes_minutes": null}),
        json!({"booking_opens_hours": "24"}),
        json!({"booking_opens_hours": 2147483648_i64}),
        json!({"name": "   "}),
        json!([]),
    ] {
        let got = patch(&owner, bad.clone()).await;
        assert_error(&got, 422, "validation_error");
    }
    let stranger = app.user("stranger").await;
    assert_error(&patch(&stranger, json!({"name": "Mine"})).await, 403, "not_a_member");
    let (_, after) = app.send_as(Method::GET, "/api/v1/gyms/current", &owner, gym).await;
    assert_eq!(after, before, "nothing changed");
    let (status, body) = send(
        app.call(Method::POST, "/api/v1/gyms", &stranger.token, None)
            .json(&json!({"name": "Nowhere", "timezone": "Mars/Olympus"})),
    )
    .await;
    assert_eq!((status.as_u16(), &body["code"]), (422, &json!("validation_error")), "{body}");
});

both_backends!(booking_outside_the_gyms_window_is_refused_saying_when, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let window = json!({"booking_opens_hours": 24, "booking_closes_minutes": 60});
    assert_eq!(app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &window).await.0, 200);
    let class = app.class(gym, &owner, 5).await;
    let t0 = now();
    let later = app.session_at(gym, &owner, class, t0 + Duration::hours(48)).await;
    let soon = app.session_at(gym, &owner, class, t0 + Duration::minutes(30)).await;
    let ok = app.session_at(gym, &owner, class, t0 + Duration::hours(5)).await;
    app.clock.set(t0);
    let register = |s: &Value, lang: &'static str| {
        app.call(Method::POST, &session_url(s, "register"), &member.token, Some(gym)).header("Accept-Language", lang)
    };
    let opens_at = rfc3339(t0 + Duration::hours(24));
    let got = send(register(&later, "en")).await;
    assert_error(&got, 400, "booking_not_open");
    assert!(got.1["detail"].as_str().is_some_and(|d| d.contains(&opens_at)), "{} names {opens_at}", got.1);
    let es = send(register(&later, "es")).await;
    assert!(es.1["detail"].as_str().is_some_and(|d| d.starts_with("Las inscripciones") && d.contains(&opens_at)));
    let closed_at = rfc3339(t0 - Duration::minutes(30));
    let got = send(register(&soon, "en")).await;
    assert_error(&got, 400, "session_not_open");
    assert!(got.1["detail"].as_str().is_some_and(|d| d.contains(&closed_at)), "{} names {closed_at}", got.1);
    assert_eq!(send(register(&ok, "en")).await.0, 201);
    // The refusals took nothing.
    for s in [&later, &soon] {
        let (_, got) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", s["id"]), &owner, gym).await;
        assert_eq!(got["registered_count"], 0, "{got}");
    }
    // The window opens at its first instant.
    app.clock.set(t0 + Duration::hours(24));
    assert_eq!(send(register(&later, "en")).await.0, 201);
});

both_backends!(lists_read_their_dates_on_the_gyms_wall_clock_with_tz_gym, |app| {
    app.clock.set(time::macros::datetime!(2026-01-01 00:00 UTC));
    let (owner, gym) = app.gym().await;
    let zone = json!({"timezone": "America/New_York"});
    assert_eq!(app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &zone).await.0, 200);
    let class = app.class(gym, &owner, 5).await;
    // 03:00 UTC on 10 January is 22:00 on the 9th in New York (EST, UTC-5).
    let late = app.session_at(gym, &owner, class, time::macros::datetime!(2026-01-10 03:00 UTC)).await;
    let event = json!({"title": "Late show", "start_time": "2026-01-10T03:00:00Z", "end_time": "2026-01-10T04:00:00Z"});
    assert_eq!(app.create_event(gym, &owner, &event).await.0, 201);
    let ids =
        |v: &Value| v.as_array().map(|a| a.iter().map(|x| x["id"].clone()).collect::<Vec<_>>()).unwrap_or_default();
    for list in ["/api/v1/schedule/sessions", "/api/v1/events"] {
        let get = |q: &str| send(app.call(Method::GET, &format!("{list}?{q}"), &owner.token, Some(gym)));
        let (_, utc9) = get("start_date=2026-01-09&end_date=2026-01-09").await;
        let (_, gym9) = get("start_date=2026-01-09&end_date=2026-01-09&tz=gym").await;
        let (_, utc10) = get("start_date=2026-01-10&end_date=2026-01-10&tz=utc").await;
        let (_, gym10) = get("start_date=2026-01-10&end_date=2026-01-10&tz=gym").await;
        assert_eq!((ids(&utc9).len(), ids(&gym9).len(), ids(&utc10).len(), ids(&gym10).len()), (0, 1, 1, 0), "{list}");
        if list.ends_with("sessions") {
            assert_eq!(ids(&gym9), [late["id"].clone()]);
        }
        assert_error(&get("tz=Europe/Madrid").await, 422, "validation_error");
        assert_error(&get("tz=").await, 422, "validation_error");
    }
    // The gym moves to UTC: the cached tz=gym lists follow at once.
    assert_eq!(
        app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &json!({"timezone": "UTC"})).await.0,
        200
    );
    let (_, moved) = app
        .send_as(Method::GET, "/api/v1/schedule/sessions?start_date=2026-01-09&end_date=2026-01-09&tz=gym", &owner, gym)
        .await;
    assert_eq!(moved, json!([]), "{moved}");
});
