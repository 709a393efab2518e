//! Issue 22, read replicas: `DATABASE_READ_URL` on a real streaming replica that the
//! test makes with `pg_basebackup -R` on a private cluster. Lists go to the replica
//! while it is caught up; a caller's own write is read back at once, on either
//! instance; a replica that stops replaying or stops altogether loses its reads to
//! the primary with no error. A binary of its own: the metrics recorder is one per
//! process, so the counts of the server that answered are this test's alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gymapi_tests::replication::Replicated;
use gymapi_tests::{Options, TestApp, TestDb, TestUser, metric_with, redis_url};
use reqwest::Method;
use serde_json::json;

async fn replica_reads(app: &TestApp) -> f64 {
    metric_with(app, "gymapi_db_reads_total", "server=\"replica\"").await
}

/// Waits until the app's replica gauge reads `up`.
async fn replica_up(app: &TestApp, up: f64) {
    let start = Instant::now();
    while metric_with(app, "gymapi_db_replica_up", "").await != up {
        assert!(start.elapsed() < Duration::from_secs(20), "gymapi_db_replica_up never became {up}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn plan(app: &TestApp, owner: &TestUser, gym: i64, name: &str) -> i64 {
    let body = json!({"name": name, "kind": "pack", "credits": 5, "valid_days": 30});
    let (status, made) = app.send_json(Method::POST, "/api/v1/plans", owner, gym, &body).await;
    assert_eq!(status, 201, "{made}");
    made["id"].as_i64().expect("plan id")
}

async fn plan_ids(app: &TestApp, user: &TestUser, gym: i64) -> Vec<i64> {
    let (status, list) = app.send_as(Method::GET, "/api/v1/plans", user, gym).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().map(|a| a.iter().filter_map(|p| p["id"].as_i64()).collect()).unwrap_or_default()
}

/// Waits until a list of `user`'s is answered by the replica and holds `plans`
/// (each instance judges its replica by its own checks, a second or two apart).
async fn replica_answers(app: &TestApp, user: &TestUser, gym: i64, plans: &[i64]) {
    let start = Instant::now();
    loop {
        let before = replica_reads(app).await;
        let listed = plan_ids(app, user, gym).await;
        if replica_reads(app).await > before && listed == plans {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "the replica never answered {plans:?}; last {listed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_read_a_caught_up_replica_own_writes_the_primary_and_a_lagging_or_stopped_replica_nothing() {
    gymapi_tests::redis_reachable().await;
    let cluster = Replicated::start();
    let db = Arc::new(TestDb::empty_on(&cluster.primary_admin()).await);
    cluster.replicated(db.name()).await;
    let opts = Options {
        redis_url: Some(redis_url()),
        extra: vec![("DATABASE_READ_URL".into(), cluster.replica_url(db.name()))],
        ..Options::default()
    };
    let (a, b) = (TestApp::spawn_on(db.clone(), opts.clone()).await, TestApp::spawn_on(db, opts).await);
    let (owner, gym) = a.gym().await;
    let member = a.member(gym, &owner, "member").await;
    replica_up(&a, 1.0).await;
    replica_up(&b, 1.0).await;

    // Read your writes: the owner's list on the other instance, right after the
    // write, comes from the primary (no replica read is counted) and holds it.
    let first = plan(&a, &owner, gym, "Ten").await;
    let before = replica_reads(&b).await;
    assert_eq!(plan_ids(&b, &owner, gym).await, vec![first]);
    assert_eq!(replica_reads(&b).await, before, "the writer's own read went to the replica");

    // Another caller's list is the replica's, which soon holds the plan.
    replica_answers(&b, &member, gym, &[first]).await;

    // A replica that stops replaying is noticed within seconds; until it catches
    // up, every list is the primary's and current.
    cluster.on_replica("SELECT pg_wal_replay_pause()").await;
    let second = plan(&a, &owner, gym, "Twenty").await;
    assert_eq!(plan_ids(&a, &owner, gym).await, vec![first, second], "own write, same instance");
    // Within the lag the replica is allowed (a verdict is kept 2.5 s), the member's
    // lists are current, answered by the primary.
    let start = Instant::now();
    loop {
        let before = replica_reads(&b).await;
        let listed = plan_ids(&b, &member, gym).await;
        if listed == [first, second] && replica_reads(&b).await == before {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "a paused replica still answered: {listed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replica_up(&b, 0.0).await;
    assert!(metric_with(&b, "gymapi_db_replica_lag_bytes", "").await > 0.0, "the lag is shown");

    cluster.on_replica("SELECT pg_wal_replay_resume()").await;
    replica_answers(&b, &member, gym, &[first, second]).await;

    // A replica that crashes: every read still answers, from the primary.
    cluster.stop_replica();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let (status, list) = b.send_as(Method::GET, "/api/v1/plans", &member, gym).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
        for path in ["/api/v1/members", "/api/v1/changes?after=0", "/api/v1/attendance/me/history"] {
            let (status, body) = b.send_as(Method::GET, path, &owner, gym).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
    replica_up(&b, 0.0).await;

    cluster.start_replica();
    replica_answers(&b, &member, gym, &[first, second]).await;
}
