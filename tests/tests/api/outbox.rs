//! The outbox and its relay, through HTTP: a write whose cache invalidation was lost
//! (Redis unreachable from the instance that made it) reaches every instance's reads
//! within seconds, delivered by another instance's relay, not after the cache TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gymapi_tests::{Options, TestApp, TestDb, redis_reachable, redis_url, send};
use reqwest::Method;
use serde_json::json;

use crate::outage::Proxy;

/// The names of the gym's classes as an instance serves them (a cached read).
async fn class_names(app: &TestApp, token: &str, gym: i64) -> Vec<String> {
    let (status, body) = send(app.call(Method::GET, "/api/v1/schedule/classes", token, Some(gym))).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .map(|l| l.iter().filter_map(|c| c["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

gymapi_tests::per_backend!(
    a_write_whose_invalidation_was_lost_reaches_other_instances_through_the_relay,
    2,
    |backend| {
        redis_reachable().await;
        let db = Arc::new(TestDb::create(backend).await);
        let upstream = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
        let mut proxy = Proxy::start(upstream).await;
        let through_proxy =
            Options { redis_url: Some(format!("redis://127.0.0.1:{}", proxy.port)), ..Options::default() };
        let a = TestApp::spawn_on(db.clone(), through_proxy).await;
        let b = TestApp::spawn_on(db, Options { redis_url: Some(redis_url()), ..Options::default() }).await;
        let (owner, gym) = a.gym().await;
        let class = a.class(gym, &owner, 10).await;
        // B caches the list (the second read is a hit).
        assert_eq!(class_names(&b, &owner.token, gym).await, ["Spinning"]);
        assert_eq!(class_names(&b, &owner.token, gym).await, ["Spinning"]);
        // A loses Redis and renames the class: committed, its invalidation undelivered.
        proxy.cut().await;
        let rename = a.call(Method::PATCH, &format!("/api/v1/schedule/classes/{class}"), &owner.token, Some(gym));
        let (status, body) = send(rename.json(&json!({"name": "Renamed"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(class_names(&b, &owner.token, gym).await, ["Spinning"], "the invalidation was lost: B is stale");
        drop(a);
        // B's relay delivers the fact A could not (A's own relay cannot reach Redis).
        let started = Instant::now();
        let mut names: Vec<String> = Vec::new();
        while started.elapsed() < Duration::from_secs(15) {
            names = class_names(&b, &owner.token, gym).await;
            if names == ["Renamed"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(names, ["Renamed"], "the relay delivered the lost invalidation");
        assert!(started.elapsed() < Duration::from_secs(10), "within seconds, not the TTL: {:?}", started.elapsed());
    }
);
