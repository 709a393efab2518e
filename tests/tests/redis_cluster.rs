//! Issue 22, Redis Cluster: `REDIS_URL=redis+cluster://…` on a real cluster of three
//! masters and three replicas that the test starts. Cached reads hit, a write on one
//! instance invalidates what the other serves, live streams hear the other instance
//! through the cluster's pub/sub, and a master killed mid-test costs no answer: the
//! cluster fails over and the cache serves hits again. A binary of its own, so the
//! cache's metrics are this test's alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gymapi_tests::redis_cluster::RedisCluster;
use gymapi_tests::{Backend, Options, TestApp, TestDb, TestUser, hits, now, qr_of};
use reqwest::Method;
use serde_json::{Value, json};

async fn session(app: &TestApp, user: &TestUser, gym: i64, id: &Value) -> Value {
    let (status, body) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{id}"), user, gym).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Reads until the cache answers (a hit is counted), within 15 s.
async fn served_from_cache(app: &TestApp, user: &TestUser, gym: i64, id: &Value) -> Value {
    let start = Instant::now();
    loop {
        let before = hits(app).await;
        let body = session(app, user, gym, id).await;
        if hits(app).await > before {
            return body;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the cache never served the session again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for an event of `kind` on an open stream.
async fn heard(stream: &mut reqwest::Response, kind: &str, within: Duration) -> bool {
    let until = Instant::now() + within;
    let mut seen = String::new();
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(bytes))) => {
                seen.push_str(&String::from_utf8_lossy(&bytes));
                if seen.contains(&format!("event: {kind}")) {
                    return true;
                }
            }
            _ => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_caches_invalidates_across_instances_carries_streams_and_survives_a_master_killed() {
    let mut cluster = RedisCluster::start();
    let db = Arc::new(TestDb::create(Backend::Postgres).await);
    let opts = Options { redis_url: Some(cluster.url()), ..Options::default() };
    let (a, b) = (TestApp::spawn_on(db.clone(), opts.clone()).await, TestApp::spawn_on(db, opts).await);
    let (owner, gym) = a.gym().await;
    let desk = a.member(gym, &owner, "trainer").await;
    let member = a.member(gym, &owner, "member").await;
    let class = a.class(gym, &owner, 10).await;
    let s = a.session_at(gym, &owner, class, now() + time::Duration::minutes(5)).await;
    let id = s["id"].clone();

    // A read is cached on the cluster and served from it.
    assert_eq!(served_from_cache(&a, &member, gym, &id).await["registered_count"], 0);

    // A booking on the other instance makes that entry stale at once.
    let (status, booked) =
        b.send_as(Method::POST, &format!("/api/v1/schedule/sessions/{id}/register"), &member, gym).await;
    assert_eq!(status, 201, "{booked}");
    assert_eq!(session(&a, &member, gym, &id).await["registered_count"], 1, "a stale read after a booking");

    // A desk screen on one instance hears a check-in on the other, through the cluster.
    let mut screen =
        b.call(Method::GET, "/api/v1/attendance/stream", &desk.token, Some(gym)).send().await.expect("stream");
    assert_eq!(screen.status(), 200);
    let qr = qr_of(&a, gym, &member).await;
    let (status, body) =
        a.send_json(Method::POST, "/api/v1/attendance/check-in", &desk, gym, &json!({"qr_code": qr})).await;
    assert_eq!(status, 200, "{body}");
    assert!(heard(&mut screen, "checkin.succeeded", Duration::from_secs(3)).await, "the stream missed the check-in");

    // The master of the gym's keys dies: every request still answers, the cluster
    // promotes its replica, and the cache serves hits again.
    let tag = format!("{{{gym}}}");
    let dead = cluster.master_of(&tag);
    cluster.kill(dead);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let body = session(&b, &member, gym, &id).await;
        assert_eq!(body["registered_count"], 1, "{body}");
        let (status, list) = b.send_as(Method::GET, "/api/v1/schedule/classes", &member, gym).await;
        assert_eq!(status, 200, "{list}");
    }
    cluster.failed_over(&tag, dead);
    let (status, _) = b.send_as(Method::POST, &format!("/api/v1/schedule/sessions/{id}/cancel"), &owner, gym).await;
    assert!(status.is_success(), "cancel after the failover: {status}");
    assert_eq!(served_from_cache(&b, &member, gym, &id).await["status"], "cancelled");
    assert_eq!(served_from_cache(&a, &member, gym, &id).await["status"], "cancelled");
}
