//! Issue 19: waitlists. A full session queues the members who ask; a freed place
//! goes to the head of the queue in the transaction that freed it, outside the
//! gym's cut-off; the queue is first come, first served across instances.

use gymapi_tests::{
    Backend, TestApp, TestUser, assert_error, both_backends, now, on_both_backends, own_connection, send, session_url,
};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use time::Duration;

async fn join(app: &TestApp, gym: i64, m: &TestUser, s: &Value) -> (reqwest::StatusCode, Value) {
    app.send_json(Method::POST, &session_url(s, "register"), m, gym, &json!({"waitlist": true})).await
}

async fn status_of(app: &TestApp, gym: i64, staff: &TestUser, s: &Value, m: &TestUser) -> String {
    let (_, list) = app.send_as(Method::GET, &session_url(s, "participants?limit=500"), staff, gym).await;
    let row = list.as_array().and_then(|l| l.iter().find(|p| p["member_id"].as_i64() == Some(m.id)).cloned());
    row.map_or_else(|| "none".to_owned(), |p| p["status"].as_str().unwrap_or("?").to_owned())
}

async fn queue(app: &TestApp, gym: i64, staff: &TestUser, s: &Value) -> Vec<(i64, i64)> {
    let (status, list) = app.send_as(Method::GET, &session_url(s, "waitlist"), staff, gym).await;
    assert_eq!(status, 200, "{list}");
    let rows = list.as_array().expect("a list");
    assert!(rows.iter().all(|p| p["status"] == "waitlisted"), "{list}");
    rows.iter().map(|p| (p["member_id"].as_i64().expect("id"), p["waitlist_position"].as_i64().expect("pos"))).collect()
}

async fn count(app: &TestApp, gym: i64, staff: &TestUser, s: &Value) -> i64 {
    let (_, got) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", s["id"]), staff, gym).await;
    got["registered_count"].as_i64().expect("count")
}

both_backends!(a_full_session_queues_who_asks_and_a_freed_place_goes_to_the_head, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 2).await;
    let s = app.session_at(gym, &owner, class, now() + Duration::hours(2)).await;
    let mut m = Vec::new();
    for _ in 0..4 {
        m.push(app.member(gym, &owner, "member").await);
    }
    for x in &m[..2] {
        assert_eq!(app.send_as(Method::POST, &session_url(&s, "register"), x, gym).await.0, 201);
    }
    assert_error(&app.send_as(Method::POST, &session_url(&s, "register"), &m[2], gym).await, 409, "session_full");
    let no = app.send_json(Method::POST, &session_url(&s, "register"), &m[2], gym, &json!({"waitlist": false})).await;
    assert_error(&no, 409, "session_full");
    let (status, c) = join(&app, gym, &m[2], &s).await;
    assert_eq!((status.as_u16(), &c["status"], &c["waitlist_position"]), (201, &json!("waitlisted"), &json!(1)), "{c}");
    let (_, d) = join(&app, gym, &m[3], &s).await;
    assert_eq!(d["waitlist_position"], 2, "{d}");
    assert_error(&join(&app, gym, &m[2], &s).await, 409, "already_waitlisted");
    assert_error(&join(&app, gym, &m[0], &s).await, 409, "already_registered");
    assert_eq!(queue(&app, gym, &owner, &s).await, [(m[2].id, 1), (m[3].id, 2)]);
    assert_error(&app.send_as(Method::GET, &session_url(&s, "waitlist"), &m[0], gym).await, 403, "forbidden");
    assert_eq!(count(&app, gym, &owner, &s).await, 2, "the queue takes no place");
    // Junk in the body is refused and changes nothing.
    for bad in [json!({"waitlist": "yes"}), json!([]), json!({"waitlist": null})] {
        let got = app.send_json(Method::POST, &session_url(&s, "register"), &m[3], gym, &bad).await;
        assert_error(&got, 422, "validation_error");
    }

    // A freed place goes to the head, in the same transaction.
    let (_, dash) = app.send_as(Method::GET, "/api/v1/users/me/dashboard-summary", &m[2], gym).await;
    assert_eq!(dash["upcoming_registrations"], json!([]));
    assert_eq!(app.send_as(Method::DELETE, &session_url(&s, "register"), &m[0], gym).await.0, 204);
    assert_eq!(status_of(&app, gym, &owner, &s, &m[2]).await, "registered");
    assert_eq!(count(&app, gym, &owner, &s).await, 2);
    assert_eq!(queue(&app, gym, &owner, &s).await, [(m[3].id, 1)]);
    let (_, dash) = app.send_as(Method::GET, "/api/v1/users/me/dashboard-summary", &m[2], gym).await;
    assert_eq!(dash["upcoming_registrations"][0]["id"], s["id"], "the promoted member's dashboard followed");
    // Leaving the queue.
    assert_eq!(app.send_as(Method::DELETE, &session_url(&s, "register"), &m[3], gym).await.0, 204);
    assert_eq!(status_of(&app, gym, &owner, &s, &m[3]).await, "cancelled");
    assert_eq!(queue(&app, gym, &owner, &s).await, []);
    assert_error(&app.send_as(Method::DELETE, &session_url(&s, "register"), &m[3], gym).await, 404, "not_registered");
    // With room, the flag books a place.
    let roomy = app.session_at(gym, &owner, class, now() + Duration::hours(3)).await;
    let (status, got) = join(&app, gym, &m[3], &roomy).await;
    assert_eq!((status.as_u16(), &got["status"]), (201, &json!("registered")), "{got}");
    assert!(got.get("waitlist_position").is_none(), "{got}");
});

both_backends!(the_gyms_waitlist_limit_and_cutoff_and_a_cancelled_session, |app| {
    let (owner, gym) = app.gym().await;
    let settings = json!({"max_waitlists_per_member": 1, "waitlist_cutoff_minutes": 60});
    let (status, g) = app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &settings).await;
    assert_eq!(
        (status.as_u16(), &g["max_waitlists_per_member"], &g["waitlist_cutoff_minutes"]),
        (200, &json!(1), &json!(60))
    );
    for bad in [
        json!({"max_waitlists_per_member": -1}),
        json!({"waitlist_cutoff_minutes": 10081}),
        json!({"max_waitlists_per_member": null}),
    ] {
        assert_error(
            &app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &bad).await,
            422,
            "validation_error",
        );
    }
    let class = app.class(gym, &owner, 1).await;
    let (a, c, e) = (
        app.member(gym, &owner, "member").await,
        app.member(gym, &owner, "member").await,
        app.member(gym, &owner, "member").await,
    );
    let later = app.session_at(gym, &owner, class, now() + Duration::hours(5)).await;
    let other = app.session_at(gym, &owner, class, now() + Duration::hours(6)).await;
    let soon = app.session_at(gym, &owner, class, now() + Duration::minutes(30)).await;
    for s in [&later, &other, &soon] {
        assert_eq!(app.send_as(Method::POST, &session_url(s, "register"), &a, gym).await.0, 201);
    }
    assert_eq!(join(&app, gym, &c, &later).await.0, 201);
    assert_error(&join(&app, gym, &c, &other).await, 409, "waitlist_limit");
    // Leaving one queue makes room for another.
    assert_eq!(app.send_as(Method::DELETE, &session_url(&later, "register"), &c, gym).await.0, 204);
    assert_eq!(join(&app, gym, &c, &soon).await.0, 201);
    // Inside the cut-off a freed place stays free for anyone, the queue as it was.
    assert_eq!(app.send_as(Method::DELETE, &session_url(&soon, "register"), &a, gym).await.0, 204);
    assert_eq!(status_of(&app, gym, &owner, &soon, &c).await, "waitlisted");
    assert_eq!(count(&app, gym, &owner, &soon).await, 0);
    assert_eq!(app.send_as(Method::POST, &session_url(&soon, "register"), &e, gym).await.0, 201, "anyone books it");
    // A cancelled session cancels its queue too, and names who was in it.
    let (status, _) = app.send_as(Method::POST, &session_url(&soon, "cancel"), &owner, gym).await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&app, gym, &owner, &soon, &c).await, "cancelled");
    assert_eq!(queue(&app, gym, &owner, &soon).await, []);
    let (_, resp) = send(app.call(Method::GET, &session_url(&soon, "waitlist?limit=0"), &owner.token, Some(gym))).await;
    assert_eq!(resp["code"], "validation_error");
});

/// 100 bookings, cancellations and waitlist joins spread over two instances: places
/// never exceed capacity and equal the rows holding them; no place stays free while
/// someone waits; every promotion went to someone who joined before everyone still
/// waiting; the queue positions answered are distinct.
async fn waitlist_race(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let capacity = 5;
    let class = a.class(gym, &owner, capacity).await;
    let s = a.session_at(gym, &owner, class, now() + Duration::hours(4)).await;
    let mut members = Vec::new();
    for _ in 0..60 {
        members.push(a.member(gym, &owner, "member").await);
    }
    let app = |i: usize| if i.is_multiple_of(2) { &a } else { &b };
    // 40 join at once.
    let first =
        futures_util::future::join_all(members[..40].iter().enumerate().map(|(i, m)| join(app(i), gym, m, &s))).await;
    let registered = first.iter().filter(|(st, v)| st.as_u16() == 201 && v["status"] == "registered").count();
    let mut positions: Vec<i64> = first.iter().filter_map(|(_, v)| v["waitlist_position"].as_i64()).collect();
    positions.sort_unstable();
    assert_eq!(registered, 5, "{first:?}");
    assert_eq!(positions, (1..=35).collect::<Vec<_>>(), "each joiner its own place in the queue");
    // 60 more at once: the registered give places back, some of the queue leaves,
    // newcomers join.
    let registered_ids: Vec<i64> = first
        .iter()
        .filter(|(_, v)| v["status"] == "registered")
        .filter_map(|(_, v)| v["member_id"].as_i64())
        .collect();
    let mut ops = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let leaves = registered_ids.contains(&m.id) || (i < 40 && i % 3 == 0);
        if leaves {
            ops.push((i, m, true));
        } else if i >= 40 {
            ops.push((i, m, false));
        }
    }
    let s = &s;
    let second = futures_util::future::join_all(ops.iter().map(|(i, m, leave)| async move {
        if *leave {
            app(*i).send_as(Method::DELETE, &session_url(s, "register"), m, gym).await
        } else {
            join(app(*i), gym, m, s).await
        }
    }))
    .await;
    assert!(second.iter().all(|(st, _)| matches!(st.as_u16(), 201 | 204 | 404)), "{second:?}");
    let total_ops = first.len() + second.len();
    assert!(total_ops >= 70, "{total_ops}");

    let conn = own_connection(&a.db.url).await;
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            format!(
                "SELECT member_id, status, COALESCE(waitlist_seq, 0) FROM participations \
                 WHERE gym_id = {gym} AND session_id = {} ORDER BY member_id",
                s["id"]
            ),
        ))
        .await
        .expect("rows");
    let rows: Vec<(i64, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index::<i64>(0).expect("member"),
                r.try_get_by_index::<String>(1).expect("status"),
                r.try_get_by_index::<i64>(2).expect("seq"),
            )
        })
        .collect();
    let holding = rows.iter().filter(|r| r.1 == "registered" || r.1 == "attended").count();
    let waiting: Vec<i64> = rows.iter().filter(|r| r.1 == "waitlisted").map(|r| r.2).collect();
    assert!(holding <= 5, "{rows:?}");
    assert_eq!(count(&a, gym, &owner, s).await, i64::try_from(holding).expect("small"), "{rows:?}");
    if !waiting.is_empty() {
        assert_eq!(holding, 5, "no place free while someone waits: {rows:?}");
    }
    let first_waiting = waiting.iter().min().copied().unwrap_or(i64::MAX);
    for (m, status, seq) in &rows {
        if status == "registered" && *seq > 0 {
            assert!(
                *seq < first_waiting,
                "member {m} (seq {seq}) promoted past the queue's head ({first_waiting}): {rows:?}"
            );
        }
    }
    let mut seqs = waiting.clone();
    seqs.dedup();
    assert_eq!(seqs.len(), waiting.len(), "distinct places in the queue");
    let listed = queue(&b, gym, &owner, s).await;
    assert_eq!(listed.len(), waiting.len());
    assert_eq!(
        listed.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
        (1..=i64::try_from(waiting.len()).expect("small")).collect::<Vec<_>>()
    );
}

on_both_backends!(waitlist_race_on, waitlist_race);

/// The desk scans the queue of a session at the door (walk-ins, each taking a place)
/// on one instance while a booking is given back on the other, promoting the head:
/// whichever lands first, the head holds one place, never two, and the count is
/// the rows holding places.
async fn promotion_racing_the_door(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 1).await;
    for round in 0..3 {
        let s = a.session_at(gym, &owner, class, now() + Duration::minutes(5 + round)).await;
        let holder = a.member(gym, &owner, "member").await;
        assert_eq!(a.send_as(Method::POST, &session_url(&s, "register"), &holder, gym).await.0, 201);
        let mut queued = Vec::new();
        for _ in 0..6 {
            let m = a.member(gym, &owner, "member").await;
            assert_eq!(join(&a, gym, &m, &s).await.0, 201);
            queued.push(json!({"qr_code": gymapi_tests::qr_of(&a, gym, &m).await, "session_id": s["id"]}));
        }
        let scans = futures_util::future::join_all(
            queued.iter().map(|q| b.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, q)),
        );
        let url = session_url(&s, "register");
        let give_back = a.send_as(Method::DELETE, &url, &holder, gym);
        let (scans, given) = tokio::join!(scans, give_back);
        assert_eq!(given.0, 204);
        assert!(scans.iter().all(|(st, _)| st.as_u16() == 200), "{scans:?}");
        let (_, list) = a.send_as(Method::GET, &session_url(&s, "participants?limit=500"), &owner, gym).await;
        let holding = list
            .as_array()
            .expect("a list")
            .iter()
            .filter(|p| p["status"] == "registered" || p["status"] == "attended")
            .count();
        assert_eq!(holding, 6, "every scanned member attended: {list}");
        assert_eq!(count(&b, gym, &owner, &s).await, 6, "one place each, the promoted head included: {list}");
    }
}

on_both_backends!(promotion_racing_the_door_on, promotion_racing_the_door);
