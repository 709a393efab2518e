//! Contract §4 (Schedule) and §7: classes, sessions, bookings, and capacity under load.

use gymapi_tests::{assert_error, both_backends, now, rfc3339, send, session_url};
use reqwest::Method;
use serde_json::json;
use time::Duration;

both_backends!(staff_create_classes_and_members_list_the_active_ones, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let body =
        json!({"name": "Yoga", "description": "Calm", "duration_minutes": 60, "max_capacity": 12, "category": "mind"});
    let (status, class) = app.send_json(Method::POST, "/api/v1/schedule/classes", &owner, gym, &body).await;
    assert_eq!(status, 201, "{class}");
    assert_eq!(class["gym_id"].as_i64(), Some(gym));
    assert_eq!((class["active"].as_bool(), class["instructor_id"].is_null()), (Some(true), true));
    let (status, list) = app.send_as(Method::GET, "/api/v1/schedule/classes", &member, gym).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([class]));
    let got = app.send_json(Method::POST, "/api/v1/schedule/classes", &member, gym, &body).await;
    assert_error(&got, 403, "forbidden");
});

both_backends!(class_numbers_out_of_range_are_422, |app| {
    let (owner, gym) = app.gym().await;
    for (d, c) in [(0, 10), (601, 10), (30, 0), (30, 1001)] {
        let body = json!({"name": "X", "duration_minutes": d, "max_capacity": c});
        let got = app.send_json(Method::POST, "/api/v1/schedule/classes", &owner, gym, &body).await;
        assert_error(&got, 422, "validation_error");
    }
});

both_backends!(a_class_is_patched_and_soft_deleted_and_the_list_follows, |app| {
    let (owner, gym) = app.gym().await;
    let trainer = app.member(gym, &owner, "trainer").await;
    let class = app.class(gym, &owner, 10).await;
    // Fill the cache, then write: the next read must see the write.
    let _ = send(app.call(Method::GET, "/api/v1/schedule/classes", &trainer.token, Some(gym))).await;
    let path = format!("/api/v1/schedule/classes/{class}");
    let (status, patched) =
        app.send_json(Method::PATCH, &path, &trainer, gym, &json!({"name": "Spin Pro", "max_capacity": 15})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((patched["name"].as_str(), patched["max_capacity"].as_i64()), (Some("Spin Pro"), Some(15)));
    let (_, list) = app.send_as(Method::GET, "/api/v1/schedule/classes", &trainer, gym).await;
    assert_eq!(list[0]["name"], "Spin Pro");
    assert_error(&app.send_as(Method::DELETE, &path, &trainer, gym).await, 403, "forbidden");
    assert_eq!(app.send_as(Method::DELETE, &path, &owner, gym).await.0, 204);
    let (_, list) = app.send_as(Method::GET, "/api/v1/schedule/classes", &trainer, gym).await;
    assert_eq!(list, json!([]));
    let (status, gone) = app.send_as(Method::GET, &path, &trainer, gym).await;
    assert_eq!((status.as_u16(), gone["active"].as_bool()), (200, Some(false)));
});

both_backends!(another_gyms_class_is_class_not_found, |app| {
    let (owner_a, gym_a) = app.gym().await;
    let (owner_b, gym_b) = app.gym().await;
    let class_a = app.class(gym_a, &owner_a, 10).await;
    let path = format!("/api/v1/schedule/classes/{class_a}");
    assert_error(&app.send_as(Method::GET, &path, &owner_b, gym_b).await, 404, "class_not_found");
    let refused = app.send_json(Method::PATCH, &path, &owner_b, gym_b, &json!({"name": "x"})).await;
    assert_error(&refused, 404, "class_not_found");
    let body = json!({"class_id": class_a, "start_time": rfc3339(now() + Duration::hours(1))});
    let refused = app.create_session(gym_b, &owner_b, &body).await;
    assert_error(&refused, 404, "class_not_found");
    let body = json!({"class_id": 999_999, "start_time": rfc3339(now() + Duration::hours(1))});
    let refused = app.create_session(gym_b, &owner_b, &body).await;
    assert_error(&refused, 404, "class_not_found");
});

both_backends!(sessions_default_their_end_and_capacity_from_the_class, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 7).await;
    let start = now() + Duration::hours(2);
    let s = app.session_at(gym, &owner, class, start).await;
    assert_eq!(s["start_time"], rfc3339(start));
    assert_eq!(s["end_time"], rfc3339(start + Duration::minutes(45)));
    assert_eq!(
        (s["capacity"].as_i64(), s["registered_count"].as_i64(), s["status"].as_str()),
        (Some(7), Some(0), Some("scheduled"))
    );
    let body =
        json!({"class_id": class, "start_time": rfc3339(start), "end_time": rfc3339(start - Duration::minutes(1))});
    let refused = app.create_session(gym, &owner, &body).await;
    assert_error(&refused, 422, "validation_error");
    let body = json!({"class_id": class, "start_time": "tomorrow"});
    let refused = app.create_session(gym, &owner, &body).await;
    assert_error(&refused, 422, "validation_error");
});

both_backends!(sessions_are_listed_by_utc_date_range_in_start_order_cancelled_included, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 5).await;
    let day = time::macros::datetime!(2031-03-10 00:00 UTC);
    let late = app.session_at(gym, &owner, class, day + Duration::hours(23) + Duration::minutes(59)).await;
    let early = app.session_at(gym, &owner, class, day + Duration::hours(8)).await;
    let next_day = app.session_at(gym, &owner, class, day + Duration::days(1)).await;
    let path = format!("/api/v1/schedule/sessions/{}/cancel", early["id"]);
    let (status, cancelled) = send(app.call(Method::POST, &path, &owner.token, Some(gym))).await;
    assert_eq!((status.as_u16(), cancelled["status"].as_str()), (200, Some("cancelled")));
    let (status, list) = app
        .send_as(Method::GET, "/api/v1/schedule/sessions?start_date=2031-03-10&end_date=2031-03-10", &owner, gym)
        .await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<_> = list.as_array().expect("list").iter().map(|s| s["id"].clone()).collect();
    assert_eq!(ids, vec![early["id"].clone(), late["id"].clone()]);
    assert_eq!(list[0]["status"], "cancelled");
    let (_, two_days) = app
        .send_as(Method::GET, "/api/v1/schedule/sessions?start_date=2031-03-10&end_date=2031-03-11", &owner, gym)
        .await;
    assert_eq!(two_days.as_array().map(Vec::len), Some(3));
    assert_eq!(two_days[2]["id"], next_day["id"]);
    for q in [
        "start_date=2031-01-01&end_date=2031-03-05",
        "start_date=2031-03-10&end_date=2031-03-09",
        "start_date=10/03/2031",
    ] {
        let got = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions?{q}"), &owner, gym).await;
        assert_error(&got, 422, "validation_error");
    }
    let (status, _) = app
        .send_as(Method::GET, "/api/v1/schedule/sessions?start_date=2031-01-01&end_date=2031-03-04", &owner, gym)
        .await;
    assert_eq!(status, 200, "62 days is allowed");
});

both_backends!(booking_rules_and_codes, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 1).await;
    let s = app.session_at(gym, &owner, class, now() + Duration::hours(1)).await;
    let reg = format!("/api/v1/schedule/sessions/{}/register", s["id"]);
    let (status, p) = app.send_as(Method::POST, &reg, &member, gym).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(
        (p["status"].as_str(), p["member_id"].as_i64(), p["session_id"].clone()),
        (Some("registered"), Some(member.id), s["id"].clone())
    );
    assert!(p["attendance_time"].is_null());
    assert_error(&app.send_as(Method::POST, &reg, &member, gym).await, 409, "already_registered");
    let other = app.member(gym, &owner, "member").await;
    assert_error(&app.send_as(Method::POST, &reg, &other, gym).await, 409, "session_full");
    // Cancelling frees the place for someone else.
    assert_eq!(app.send_as(Method::DELETE, &reg, &member, gym).await.0, 204);
    let (status, _) = app.send_as(Method::POST, &reg, &other, gym).await;
    assert_eq!(status, 201);
    let (_, session) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", s["id"]), &member, gym).await;
    assert_eq!(session["registered_count"], 1);
    let parts = format!("/api/v1/schedule/sessions/{}/participants", s["id"]);
    assert_error(&app.send_as(Method::GET, &parts, &member, gym).await, 403, "forbidden");
    let (_, list) = app.send_as(Method::GET, &parts, &owner, gym).await;
    let statuses: Vec<_> =
        list.as_array().expect("list").iter().map(|p| p["status"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(statuses, vec!["cancelled", "registered"], "cancelled participations are listed too");
});

both_backends!(cancelled_and_started_sessions_are_not_open, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 5).await;
    let started = app.session_at(gym, &owner, class, now() - Duration::minutes(5)).await;
    let got = app.send_as(Method::POST, &session_url(&started, "register"), &member, gym).await;
    assert_error(&got, 400, "session_not_open");
    let later = app.session_at(gym, &owner, class, now() + Duration::hours(3)).await;
    let _ = app.send_as(Method::POST, &session_url(&later, "cancel"), &owner, gym).await;
    let got = app.send_as(Method::POST, &session_url(&later, "register"), &member, gym).await;
    assert_error(&got, 400, "session_not_open");
});

both_backends!(another_gyms_session_is_session_not_found, |app| {
    let (owner_a, gym_a) = app.gym().await;
    let (owner_b, gym_b) = app.gym().await;
    let class = app.class(gym_a, &owner_a, 5).await;
    let s = app.session_at(gym_a, &owner_a, class, now() + Duration::hours(1)).await;
    for (m, p) in [
        (Method::GET, format!("/api/v1/schedule/sessions/{}", s["id"])),
        (Method::POST, format!("/api/v1/schedule/sessions/{}/register", s["id"])),
        (Method::POST, format!("/api/v1/schedule/sessions/{}/cancel", s["id"])),
        (Method::GET, format!("/api/v1/schedule/sessions/{}/participants", s["id"])),
    ] {
        assert_error(&send(app.call(m, &p, &owner_b.token, Some(gym_b))).await, 404, "session_not_found");
    }
});

both_backends!(fifty_members_racing_for_ten_places_get_exactly_ten, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 10).await;
    let s = app.session_at(gym, &owner, class, now() + Duration::hours(1)).await;
    let mut members = Vec::new();
    for _ in 0..50 {
        members.push(app.member(gym, &owner, "member").await);
    }
    let reg = format!("/api/v1/schedule/sessions/{}/register", s["id"]);
    let results =
        futures_util::future::join_all(members.iter().map(|m| send(app.call(Method::POST, &reg, &m.token, Some(gym)))))
            .await;
    let created = results.iter().filter(|(st, _)| st.as_u16() == 201).count();
    let full = results.iter().filter(|(st, b)| st.as_u16() == 409 && b["code"] == "session_full").count();
    assert_eq!((created, full), (10, 40), "{:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
    let (_, session) =
        send(app.call(Method::GET, &format!("/api/v1/schedule/sessions/{}", s["id"]), &owner.token, Some(gym))).await;
    assert_eq!(session["registered_count"], 10);
    let (_, parts) = app.send_as(Method::GET, &session_url(&s, "participants"), &owner, gym).await;
    let registered = parts.as_array().expect("list").iter().filter(|p| p["status"] == "registered").count();
    assert_eq!(registered, 10);
});

both_backends!(an_unknown_instructor_or_trainer_is_user_not_found_not_a_500, |app| {
    let (owner, gym) = app.gym().await;
    let body = json!({"name": "Ghost", "duration_minutes": 30, "max_capacity": 5, "instructor_id": 987_654});
    let refused = app.send_json(Method::POST, "/api/v1/schedule/classes", &owner, gym, &body).await;
    assert_error(&refused, 404, "user_not_found");
    let class = app.class(gym, &owner, 5).await;
    let patch = app.call(Method::PATCH, &format!("/api/v1/schedule/classes/{class}"), &owner.token, Some(gym));
    assert_error(&send(patch.json(&json!({"instructor_id": 987_654}))).await, 404, "user_not_found");
    let body = json!({"class_id": class, "start_time": rfc3339(now() + Duration::hours(1)), "trainer_id": 987_654});
    let refused = app.create_session(gym, &owner, &body).await;
    assert_error(&refused, 404, "user_not_found");
});

both_backends!(times_at_the_edge_of_the_calendar_are_refused_not_a_panic, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 5).await;
    let body = json!({"class_id": class, "start_time": "9999-12-31T23:59:00Z"});
    let refused = app.create_session(gym, &owner, &body).await;
    assert_error(&refused, 422, "validation_error");
    let got = send(app.call(
        Method::GET,
        "/api/v1/schedule/sessions?start_date=9999-12-31&end_date=9999-12-31",
        &owner.token,
        Some(gym),
    ))
    .await;
    assert_eq!((got.0.as_u16(), got.1), (200, json!([])), "the calendar's last day is a range like any other");
    // A default end_date past the calendar is clamped to its last day.
    let got = app.send_as(Method::GET, "/api/v1/events?start_date=9999-12-30", &owner, gym).await;
    assert_eq!((got.0.as_u16(), got.1), (200, json!([])));
    assert_eq!(send(app.req(Method::GET, "/health")).await.0, 200, "the server is still up");
});

both_backends!(trainers_and_instructors_of_another_gym_are_user_not_found, |app| {
    let (owner, gym) = app.gym().await;
    let (other_owner, other_gym) = app.gym().await;
    let outsider = app.member(other_gym, &other_owner, "trainer").await;
    let stranger = app.user("a-user-of-no-gym").await;
    for id in [outsider.id, stranger.id, other_owner.id] {
        let body = json!({"name": "Yoga", "duration_minutes": 60, "max_capacity": 10, "instructor_id": id});
        let got = app.send_json(Method::POST, "/api/v1/schedule/classes", &owner, gym, &body).await;
        assert_error(&got, 404, "user_not_found");
    }
    let class = app.class(gym, &owner, 10).await;
    let path = format!("/api/v1/schedule/classes/{class}");
    let got = app.send_json(Method::PATCH, &path, &owner, gym, &json!({"instructor_id": outsider.id})).await;
    assert_error(&got, 404, "user_not_found");
    let (_, unchanged) = send(app.call(Method::GET, &path, &owner.token, Some(gym))).await;
    assert!(unchanged["instructor_id"].is_null(), "{unchanged}");
    let got = app
        .send_json(Method::PATCH, "/api/v1/schedule/classes/999999", &owner, gym, &json!({"instructor_id": owner.id}))
        .await;
    assert_error(&got, 404, "class_not_found");
    let start = rfc3339(now() + Duration::days(1));
    let got = app
        .create_session(gym, &owner, &json!({"class_id": class, "start_time": start, "trainer_id": outsider.id}))
        .await;
    assert_error(&got, 404, "user_not_found");
    // Members of the gym are accepted.
    let trainer = app.member(gym, &owner, "trainer").await;
    let (status, s) = app
        .create_session(gym, &owner, &json!({"class_id": class, "start_time": start, "trainer_id": trainer.id}))
        .await;
    assert_eq!((status.as_u16(), s["trainer_id"].as_i64()), (201, Some(trainer.id)), "{s}");
    let (status, c) = app.send_json(Method::PATCH, &path, &owner, gym, &json!({"instructor_id": trainer.id})).await;
    assert_eq!((status.as_u16(), c["instructor_id"].as_i64()), (200, Some(trainer.id)), "{c}");
});

both_backends!(a_deleted_class_gets_no_new_sessions, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 10).await;
    let path = format!("/api/v1/schedule/classes/{class}");
    assert_eq!(app.send_as(Method::DELETE, &path, &owner, gym).await.0, 204);
    let got = app
        .create_session(gym, &owner, &json!({"class_id": class, "start_time": rfc3339(now() + Duration::days(1))}))
        .await;
    assert_error(&got, 404, "class_not_found");
});
