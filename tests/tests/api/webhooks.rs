//! Issue 20: webhooks. Deliveries come from the outbox, signed, retried with backoff
//! in order per endpoint, once per attempt across two instances; a dead receiver
//! holds back its own endpoint alone; management routes refuse what they must.

use std::time::Duration;

use gymapi_tests::{Receiver, TestApp, TestUser, assert_error, now, python_verifies, qr_of, send, two_instances};
use reqwest::Method;
use serde_json::{Value, json};

async fn register(app: &TestApp, admin: &TestUser, gym: i64, url: &str, events: &[&str]) -> Value {
    let (status, hook) =
        app.send_json(Method::POST, "/api/v1/webhooks", admin, gym, &json!({"url": url, "events": events})).await;
    assert_eq!(status, 201, "{hook}");
    hook
}

/// A gym with a session starting in 5 minutes: `(owner, gym)`.
async fn open_gym(app: &TestApp) -> (TestUser, i64) {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 20).await;
    app.session_at(gym, &owner, class, now() + time::Duration::minutes(5)).await;
    (owner, gym)
}

async fn check_in(app: &TestApp, desk: &TestUser, gym: i64, member: &TestUser) {
    let qr = qr_of(app, gym, member).await;
    let (status, body) =
        app.send_json(Method::POST, "/api/v1/attendance/check-in", desk, gym, &json!({"qr_code": qr})).await;
    assert_eq!(status, 200, "{body}");
}

fn body(r: &gymapi_tests::Received) -> Value {
    serde_json::from_str(&r.body).expect("a JSON body")
}

two_instances!(a_receiver_failing_twice_gets_each_event_on_its_third_attempt_signed_and_in_order, |a, b| {
    let (owner, gym) = open_gym(&a).await;
    let receiver = Receiver::start(vec![500, 503]).await;
    let hook = register(&a, &owner, gym, &receiver.url, &["checkin.succeeded"]).await;
    let secret = hook["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{hook}");
    let (ana, bea) = (a.member(gym, &owner, "member").await, a.member(gym, &owner, "member").await);
    // Check-ins through both instances; the engines of both run.
    check_in(&a, &owner, gym, &ana).await;
    check_in(&b, &owner, gym, &bea).await;

    // 500, 503, then 200 for the first; the second follows it, once.
    let got = receiver.wait_for(4, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_all = receiver.received();
    assert_eq!(got_all.len(), 4, "each attempt once, across two instances: {got_all:?}");
    let bodies: Vec<Value> = got.iter().map(body).collect();
    assert!(bodies[..3].iter().all(|b| *b == bodies[0]), "the same body, the same id, each attempt");
    assert_eq!((&bodies[0]["type"], &bodies[0]["gym_id"]), (&json!("checkin.succeeded"), &json!(gym)));
    assert_eq!((&bodies[0]["data"]["member"], &bodies[3]["data"]["member"]), (&json!(ana.id), &json!(bea.id)));
    assert!(bodies[3]["id"].as_i64() > bodies[0]["id"].as_i64(), "in commit order");
    for r in &got {
        let signature = r.header("x-gymapi-signature").expect("signed");
        assert!(python_verifies(&secret, signature, &r.body), "{signature}");
        assert!(!python_verifies("whsec_other", signature, &r.body));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    let path = format!("/api/v1/webhooks/{}/deliveries", hook["id"]);
    let (status, list) = b.send_as(Method::GET, &path, &owner, gym).await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().expect("deliveries").clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let first = &list[1];
    assert_eq!(
        (&first["status"], &first["attempts"], &first["last_status"]),
        (&json!("delivered"), &json!(3), &json!(200))
    );
    assert_eq!(first["event_id"], bodies[0]["id"]);
    assert_eq!(list[0]["attempts"], 1);

    // A replay sends the same body again, under the same id.
    let replay = format!("/api/v1/webhooks/{}/deliveries/{}/replay", hook["id"], first["id"]);
    let (status, replayed) = a.send_as(Method::POST, &replay, &owner, gym).await;
    assert_eq!((status.as_u16(), &replayed["status"]), (202, &json!("pending")), "{replayed}");
    let again = receiver.wait_for(5, Duration::from_secs(15)).await;
    assert_eq!(again[4].body, got[0].body);
});

two_instances!(
    a_rotated_secret_signs_beside_the_old_one_and_a_dead_receiver_holds_back_only_its_own_endpoint,
    |a, b| {
        let (owner, gym) = open_gym(&a).await;
        let dead = Receiver::hanging().await;
        let live = Receiver::start(vec![]).await;
        register(&a, &owner, gym, &dead.url, &["checkin.succeeded", "registration.created"]).await;
        let hook = register(&b, &owner, gym, &live.url, &["checkin.succeeded"]).await;
        let old = hook["secret"].as_str().expect("secret").to_owned();
        let (status, rotated) =
            a.send_as(Method::POST, &format!("/api/v1/webhooks/{}/rotate-secret", hook["id"]), &owner, gym).await;
        assert_eq!(status, 200, "{rotated}");
        let new = rotated["secret"].as_str().expect("secret").to_owned();
        assert_ne!(new, old);
        assert!(rotated["previous_secret_expires_at"].as_str().is_some(), "{rotated}");

        let ana = a.member(gym, &owner, "member").await;
        check_in(&a, &owner, gym, &ana).await;
        // The dead receiver holds its request for 10 s; the live one has its event long before.
        let got = live.wait_for(1, Duration::from_secs(8)).await;
        let signature = got[0].header("x-gymapi-signature").expect("signed");
        assert!(python_verifies(&new, signature, &got[0].body) && python_verifies(&old, signature, &got[0].body));
        assert_eq!(dead.wait_for(1, Duration::from_secs(5)).await.len(), 1, "the dead receiver was asked too");

        // Listing shows no secret; another gym sees none of these; members may not look.
        let (_, list) = b.send_as(Method::GET, "/api/v1/webhooks", &owner, gym).await;
        let list = list.as_array().expect("list").clone();
        assert_eq!(list.len(), 2);
        assert!(list.iter().all(|w| w.get("secret").is_none()), "{list:?}");
        let (other, other_gym) = a.gym().await;
        let (_, theirs) = a.send_as(Method::GET, "/api/v1/webhooks", &other, other_gym).await;
        assert_eq!(theirs, json!([]));
        let foreign = format!("/api/v1/webhooks/{}", hook["id"]);
        assert_error(&a.send_as(Method::DELETE, &foreign, &other, other_gym).await, 404, "webhook_not_found");
        let deliveries = format!("/api/v1/webhooks/{}/deliveries", hook["id"]);
        assert_error(&a.send_as(Method::GET, &deliveries, &other, other_gym).await, 404, "webhook_not_found");
        assert_error(&a.send_as(Method::GET, "/api/v1/webhooks", &ana, gym).await, 403, "forbidden");

        // Rotated again within the day: the original secret, which receivers may still
        // use, keeps signing to its end; the one in between stops at once.
        let (_, again) =
            a.send_as(Method::POST, &format!("/api/v1/webhooks/{}/rotate-secret", hook["id"]), &owner, gym).await;
        let newest = again["secret"].as_str().expect("secret").to_owned();
        assert_eq!(again["previous_secret_expires_at"], rotated["previous_secret_expires_at"]);
        let cid = a.member(gym, &owner, "member").await;
        check_in(&a, &owner, gym, &cid).await;
        let got = live.wait_for(2, Duration::from_secs(8)).await;
        let signature = got[1].header("x-gymapi-signature").expect("signed");
        assert!(python_verifies(&newest, signature, &got[1].body) && python_verifies(&old, signature, &got[1].body));
        assert!(!python_verifies(&new, signature, &got[1].body), "{signature}");

        // Removed: gone from the list, and nothing more is sent to it.
        let (status, _) = a.send_as(Method::DELETE, &foreign, &owner, gym).await;
        assert_eq!(status, 204);
        assert_error(&a.send_as(Method::DELETE, &foreign, &owner, gym).await, 404, "webhook_not_found");
        let bea = a.member(gym, &owner, "member").await;
        check_in(&a, &owner, gym, &bea).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(live.received().len(), 2, "nothing after its removal");
    }
);

gymapi_tests::both_backends!(registrations_refuse_bad_urls_types_and_shapes_and_change_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let post = |body: Value| {
        let (app, owner) = (&app, &owner);
        async move { app.send_json(Method::POST, "/api/v1/webhooks", owner, gym, &body).await }
    };
    for bad in [
        json!({"url": "ftp://example.com/x", "events": ["checkin.succeeded"]}),
        json!({"url": "http://user:pw@example.com/x", "events": ["checkin.succeeded"]}),
        json!({"url": "http://example.com/x", "events": []}),
        json!({"url": "http://example.com/x", "events": ["checked_in"]}),
        json!({"url": format!("https://example.com/{}", "x".repeat(3000)), "events": ["checkin.succeeded"]}),
        json!({"url": "http://example.com/\u{0}", "events": ["checkin.succeeded"]}),
        json!({"url": 5, "events": ["checkin.succeeded"]}),
        json!({"url": "http://example.com/x", "events": "checkin.succeeded"}),
        json!({"url": "http://example.com/x"}),
        json!([]),
    ] {
        assert_error(&post(bad.clone()).await, 422, "validation_error");
    }
    let (_, list) = app.send_as(Method::GET, "/api/v1/webhooks", &owner, gym).await;
    assert_eq!(list, json!([]), "nothing registered");
    for id in ["x", "99999999999999999999", "-1"] {
        let (status, _) = app.send_as(Method::DELETE, &format!("/api/v1/webhooks/{id}"), &owner, gym).await;
        assert!(status == 404 || status == 422, "{id}: {status}");
    }
    let hook = register(&app, &owner, gym, "http://127.0.0.1:9/x", &["session.cancelled"]).await;
    let replay = format!("/api/v1/webhooks/{}/deliveries/12345/replay", hook["id"]);
    assert_error(&app.send_as(Method::POST, &replay, &owner, gym).await, 404, "delivery_not_found");
    // A gym has at most 20.
    for _ in 1..20 {
        register(&app, &owner, gym, "http://127.0.0.1:9/x", &["checkin.refused"]).await;
    }
    assert_error(
        &post(json!({"url": "http://127.0.0.1:9/x", "events": ["checkin.refused"]})).await,
        422,
        "validation_error",
    );
    let trainer = app.member(gym, &owner, "trainer").await;
    let (status, _) = send(
        app.call(Method::POST, "/api/v1/webhooks", &trainer.token, Some(gym))
            .json(&json!({"url": "http://127.0.0.1:9/x", "events": ["checkin.refused"]})),
    )
    .await;
    assert_eq!(status, 403);
});

gymapi_tests::per_backend!(outside_development_webhooks_must_be_https_to_public_hosts, 2, |backend| {
    let db = std::sync::Arc::new(gymapi_tests::TestDb::create(backend).await);
    let opts = gymapi_tests::Options {
        extra: vec![("GYMAPI_ENV".into(), "production".into())],
        ..gymapi_tests::Options::default()
    };
    let app = TestApp::spawn_on(db, opts).await;
    let (owner, gym) = app.gym().await;
    for url in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/x",
        "https://10.0.0.8/x",
    ] {
        let got = app
            .send_json(
                Method::POST,
                "/api/v1/webhooks",
                &owner,
                gym,
                &json!({"url": url, "events": ["checkin.succeeded"]}),
            )
            .await;
        assert_error(&got, 422, "validation_error");
    }
    register(&app, &owner, gym, "https://hooks.example.com/x", &["checkin.succeeded"]).await;
});

/// `(name, nice)` of every thread of this process (Linux: `/proc/self/task/*/stat`,
/// the nice value being the 19th field, the 17th after the name's closing bracket).
fn threads_and_nice() -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task (Linux)").flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let nice = stat[close + 1..].split_whitespace().nth(16).and_then(|n| n.parse().ok());
        if let Some(nice) = nice {
            out.push((stat[open + 1..close].to_owned(), nice));
        }
    }
    out
}

gymapi_tests::both_backends!(the_engine_thread_yields_to_requests_and_opens_no_connection_at_its_priority, |app| {
    let (owner, gym) = open_gym(&app).await;
    let receiver = Receiver::start(vec![]).await;
    register(&app, &owner, gym, &receiver.url, &["checkin.succeeded"]).await;
    let member = app.member(gym, &owner, "member").await;
    check_in(&app, &owner, gym, &member).await;
    receiver.wait_for(1, Duration::from_secs(30)).await;

    let threads = threads_and_nice();
    let engines: Vec<i64> = threads.iter().filter(|(n, _)| n == "gymapi-webhooks").map(|(_, v)| *v).collect();
    assert!(!engines.is_empty(), "an engine thread runs: {threads:?}");
    assert!(engines.iter().all(|v| *v == 10), "the engine runs at nice 10: {threads:?}");
    // Its storage calls ran on the main runtime: every SQLite connection's worker
    // thread (started by the thread that opened it) answers requests at their priority.
    let workers: Vec<&(String, i64)> = threads.iter().filter(|(n, _)| n.starts_with("sqlx-sqlite")).collect();
    assert!(workers.iter().all(|(_, v)| *v == 0), "{workers:?}");
});
