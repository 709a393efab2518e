//! Round trips of the hot paths, counted by the server's own metrics. A binary of
//! its own: the metrics recorder is one per process, so no other test's requests
//! are counted here.

use gymapi_tests::{Backend, Options, TestApp, TestDb, hits, metric, now, redis_url};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_read_is_one_redis_round_trip_and_a_lone_check_in_two() {
    gymapi_tests::redis_reachable().await;
    let db = std::sync::Arc::new(TestDb::create(Backend::Postgres).await);
    let app = TestApp::spawn_on(db, Options { redis_url: Some(redis_url()), ..Options::default() }).await;
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 20).await;
    let session = app.session_at(gym, &owner, class, now() + time::Duration::minutes(5)).await;
    let reads = [
        "/api/v1/schedule/classes".to_owned(),
        "/api/v1/schedule/sessions".to_owned(),
        format!("/api/v1/schedule/sessions/{}", session["id"]),
        "/api/v1/events".to_owned(),
        "/api/v1/attendance/me/last".to_owned(),
        "/api/v1/users/me/dashboard-summary".to_owned(),
    ];
    for path in &reads {
        assert_eq!(app.send_as(Method::GET, path, &member, gym).await.0, 200, "{path}");
    }
    let (trips, hits_before) = (metric(&app, "gymapi_cache_round_trips_total").await, hits(&app).await);
    for path in &reads {
        assert_eq!(app.send_as(Method::GET, path, &member, gym).await.0, 200, "{path}");
    }
    let trips_reads = metric(&app, "gymapi_cache_round_trips_total").await - trips;
    assert_eq!(trips_reads, reads.len() as f64, "one round trip per cached read (role and value together)");
    assert_eq!(hits(&app).await - hits_before, 2.0 * reads.len() as f64, "each a hit of the role and of the value");

    let (_, qr) = app.send_as(Method::GET, "/api/v1/attendance/my-qr", &member, gym).await;
    let trips = metric(&app, "gymapi_cache_round_trips_total").await;
    let (status, body) = app
        .send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &json!({"qr_code": qr["qr_code"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let trips_check_in = metric(&app, "gymapi_cache_round_trips_total").await - trips;
    assert_eq!(trips_check_in, 2.0, "the desk's role, then the invalidations in one pipeline");
}
