//! The shared cache: read-after-write across instances, and a Redis that is down.

use std::sync::Arc;

use gymapi_tests::{
    Backend, Options, TestApp, TestDb, assert_error, now, on_both_backends, redis_reachable, redis_url, send,
    session_url,
};
use reqwest::Method;
use serde_json::json;
use time::Duration;

async fn read_after_write_is_fresh_on_the_other_instance(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let member = a.member(gym, &owner, "member").await;
    let list = || b.call(Method::GET, "/api/v1/schedule/classes", &member.token, Some(gym));
    assert_eq!(send(list()).await.1, json!([]), "B caches the empty list");
    let class = a.class(gym, &owner, 2).await;
    let (_, after) = send(list()).await;
    assert_eq!(after.as_array().map(Vec::len), Some(1), "B sees A's new class: {after}");
    let _ = a
        .send_json(
            Method::PATCH,
            &format!("/api/v1/schedule/classes/{class}"),
            &owner,
            gym,
            &json!({"name": "Renamed"}),
        )
        .await;
    assert_eq!(send(list()).await.1[0]["name"], "Renamed");

    let s = a.session_at(gym, &owner, class, now() + Duration::hours(1)).await;
    let one = format!("/api/v1/schedule/sessions/{}", s["id"]);
    assert_eq!(b.send_as(Method::GET, &one, &member, gym).await.1["registered_count"], 0);
    let (status, _) = a.send_as(Method::POST, &format!("{one}/register"), &member, gym).await;
    assert_eq!(status, 201);
    assert_eq!(b.send_as(Method::GET, &one, &member, gym).await.1["registered_count"], 1);
    let _ = a.send_as(Method::POST, &format!("{one}/cancel"), &owner, gym).await;
    assert_eq!(b.send_as(Method::GET, &one, &member, gym).await.1["status"], "cancelled");

    // Membership changes reach the other instance's tenant check at once.
    let _ = b.send_as(Method::GET, "/api/v1/gyms/current", &member, gym).await;
    let _ = a.send_as(Method::DELETE, &format!("/api/v1/members/{}", member.id), &owner, gym).await;
    assert_error(&b.send_as(Method::GET, "/api/v1/gyms/current", &member, gym).await, 403, "not_a_member");
}

on_both_backends!(read_after_write_across_instances, read_after_write_is_fresh_on_the_other_instance);

async fn the_cached_session_list_follows_every_write_on_the_other_instance(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let member = a.member(gym, &owner, "member").await;
    let walk_in = a.member(gym, &owner, "member").await;
    let class = a.class(gym, &owner, 5).await;
    let list = async || {
        let (status, body) = b.send_as(Method::GET, "/api/v1/schedule/sessions", &member, gym).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    };
    assert!(list().await.is_empty(), "B caches the empty list");
    let s = a.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let listed = list().await;
    assert_eq!((listed.len(), &listed[0]["registered_count"]), (1, &json!(0)), "scheduled: {listed:?}");
    let one = format!("/api/v1/schedule/sessions/{}", s["id"]);
    assert_eq!(a.send_as(Method::POST, &format!("{one}/register"), &member, gym).await.0, 201);
    assert_eq!(list().await[0]["registered_count"], 1, "booked");
    let (_, qr) = a.send_as(Method::GET, "/api/v1/attendance/my-qr", &walk_in, gym).await;
    let scan = json!({"qr_code": qr["qr_code"]});
    assert_eq!(a.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &scan).await.0, 200);
    assert_eq!(list().await[0]["registered_count"], 2, "a walk-in took a place");
    assert_eq!(a.send_as(Method::DELETE, &format!("{one}/register"), &member, gym).await.0, 204);
    assert_eq!(list().await[0]["registered_count"], 1, "a booking given back");
    assert_eq!(a.send_as(Method::POST, &format!("{one}/register"), &member, gym).await.0, 201);
    assert_eq!(list().await[0]["registered_count"], 2, "booked again");
    assert_eq!(a.send_as(Method::DELETE, &format!("/api/v1/members/{}", member.id), &owner, gym).await.0, 204);
    let (_, after) = b.send_as(Method::GET, "/api/v1/schedule/sessions", &owner, gym).await;
    assert_eq!(after[0]["registered_count"], 1, "a member who left gave back the booked place: {after}");
    let _ = a.send_as(Method::POST, &format!("{one}/cancel"), &owner, gym).await;
    let (_, after) = b.send_as(Method::GET, "/api/v1/schedule/sessions", &owner, gym).await;
    assert_eq!(after[0]["status"], "cancelled", "{after}");
    // Not a member: refused before anything cached is served, bad query or not.
    let stranger = a.user("stranger").await;
    for path in ["/api/v1/schedule/sessions", "/api/v1/schedule/sessions?limit=0", "/api/v1/schedule/sessions/x"] {
        assert_error(&b.send_as(Method::GET, path, &stranger, gym).await, 403, "not_a_member");
    }
}

on_both_backends!(
    the_cached_session_list_follows_every_write_on_the_other_instance_on,
    the_cached_session_list_follows_every_write_on_the_other_instance
);

async fn a_dead_redis_changes_nothing_but_readiness(backend: Backend) {
    // Nothing listens on port 1: every cache call fails at once.
    let db = Arc::new(TestDb::create(backend).await);
    let app =
        TestApp::spawn_on(db, Options { redis_url: Some("redis://127.0.0.1:1/0".into()), ..Options::default() }).await;
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 3).await;
    let (status, list) = app.send_as(Method::GET, "/api/v1/schedule/classes", &owner, gym).await;
    assert_eq!((status.as_u16(), list[0]["id"].as_i64()), (200, Some(class)));
    let s = app.session_at(gym, &owner, class, now() + Duration::hours(1)).await;
    let (status, _) = app.send_as(Method::POST, &session_url(&s, "register"), &owner, gym).await;
    assert_eq!(status, 201);
    let (status, one) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", s["id"]), &owner, gym).await;
    assert_eq!((status.as_u16(), one["registered_count"].as_i64()), (200, Some(1)));
    let (status, ready) = send(app.req(Method::GET, "/ready")).await;
    assert_eq!(
        (status.as_u16(), ready["cache"].as_str(), ready["database"].as_str()),
        (200, Some("degraded"), Some("ok"))
    );
}

on_both_backends!(a_dead_redis_is_bypassed, a_dead_redis_changes_nothing_but_readiness);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_a_live_redis_as_ok() {
    redis_reachable().await;
    let db = Arc::new(TestDb::create(Backend::Sqlite).await);
    let app = TestApp::spawn_on(db, Options { redis_url: Some(redis_url()), ..Options::default() }).await;
    let (_, ready) = send(app.req(Method::GET, "/ready")).await;
    assert_eq!(ready["cache"], "ok");
}

async fn dashboard(app: &TestApp, gym: i64, u: &gymapi_tests::TestUser) -> serde_json::Value {
    let (status, d) = app.send_as(Method::GET, "/api/v1/users/me/dashboard-summary", u, gym).await;
    assert_eq!(status, 200, "{d}");
    d
}

async fn cancelling_a_session_refreshes_registered_members_dashboards_on(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 10).await;
    let s = a.session_at(gym, &owner, class, now() + Duration::hours(3)).await;
    let (first, second) = (a.member(gym, &owner, "member").await, a.member(gym, &owner, "member").await);
    let reg = format!("/api/v1/schedule/sessions/{}/register", s["id"]);
    assert_eq!(a.send_as(Method::POST, &reg, &first, gym).await.0, 201);
    // B caches the first member's dashboard: one upcoming session, one place taken.
    let d = dashboard(&b, gym, &first).await;
    assert_eq!(
        (d["upcoming_registrations"][0]["id"].clone(), d["upcoming_registrations"][0]["registered_count"].clone()),
        (s["id"].clone(), json!(1))
    );
    // Another member's booking changes the count that dashboard shows.
    assert_eq!(a.send_as(Method::POST, &reg, &second, gym).await.0, 201);
    assert_eq!(dashboard(&b, gym, &first).await["upcoming_registrations"][0]["registered_count"], 2);
    let _ = dashboard(&b, gym, &second).await;
    // Cancelled on A: gone from every registered member's dashboard on B at once.
    let (status, _) = a.send_as(Method::POST, &session_url(&s, "cancel"), &owner, gym).await;
    assert_eq!(status, 200);
    for m in [&first, &second] {
        assert_eq!(dashboard(&b, gym, m).await["upcoming_registrations"], json!([]), "member {}", m.id);
    }
}
on_both_backends!(
    cancelling_a_session_refreshes_registered_members_dashboards,
    cancelling_a_session_refreshes_registered_members_dashboards_on
);

async fn keys_with_prefix(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url().as_str()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    // Group keys start with a hash tag: `{prefix…}`.
    let escaped = prefix.replace('{', "\\{").replace('}', "\\}");
    let mut keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{escaped}*")).query_async(&mut conn).await.expect("KEYS");
    let tagged: Vec<String> =
        redis::cmd("KEYS").arg(format!("\\{{{escaped}*")).query_async(&mut conn).await.expect("KEYS");
    keys.extend(tagged);
    keys.sort();
    keys
}

async fn made_up_gym_ids_create_no_cache_entry_on(backend: Backend) {
    let (a, _b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    assert_eq!(a.send_as(Method::GET, "/api/v1/gyms/current", &owner, gym).await.0, 200);
    let before = keys_with_prefix(&a.db.cache_prefix).await;
    for made_up in [gym + 1, gym + 1000, 987_654_321, i64::MAX] {
        let got = a.send_as(Method::GET, "/api/v1/gyms/current", &owner, made_up).await;
        assert_error(&got, 403, "not_a_member");
    }
    assert_eq!(keys_with_prefix(&a.db.cache_prefix).await, before, "no key per made-up gym id");
    assert!(before.iter().filter(|k| k.contains("auth:")).count() == 1, "one authorization entry per user: {before:?}");
}
on_both_backends!(made_up_gym_ids_create_no_cache_entry, made_up_gym_ids_create_no_cache_entry_on);

async fn a_role_change_takes_effect_at_once_on_another_instance_on(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let admin = a.member(gym, &owner, "admin").await;
    let members = || b.call(Method::GET, "/api/v1/members", &admin.token, Some(gym));
    assert_eq!(send(members()).await.0, 200, "B caches the admin's role");
    let path = format!("/api/v1/members/{}", admin.id);
    let (status, _) = a.send_json(Method::PATCH, &path, &owner, gym, &json!({"role": "member"})).await;
    assert_eq!(status, 200);
    assert_error(&send(members()).await, 403, "forbidden");
    assert_eq!(send(a.call(Method::DELETE, &path, &owner.token, Some(gym))).await.0, 204);
    assert_error(&send(members()).await, 403, "not_a_member");
}
on_both_backends!(
    a_role_change_takes_effect_at_once_on_another_instance,
    a_role_change_takes_effect_at_once_on_another_instance_on
);

async fn a_lost_invalidation_leaves_a_role_stale_for_seconds_at_most_on(backend: Backend) {
    redis_reachable().await;
    // A reaches Redis, C does not: C's invalidation of a demotion is lost.
    let db = Arc::new(TestDb::create(backend).await);
    let a = TestApp::spawn_on(db.clone(), Options { redis_url: Some(redis_url()), ..Options::default() }).await;
    let c =
        TestApp::spawn_on(db, Options { redis_url: Some("redis://127.0.0.1:1/0".into()), ..Options::default() }).await;
    let (owner, gym) = a.gym().await;
    let admin = a.member(gym, &owner, "admin").await;
    let members = || a.call(Method::GET, "/api/v1/members", &admin.token, Some(gym));
    assert_eq!(send(members()).await.0, 200);
    let path = format!("/api/v1/members/{}", admin.id);
    let (status, _) = c.send_json(Method::PATCH, &path, &owner, gym, &json!({"role": "member"})).await;
    assert_eq!(status, 200);
    let demoted = std::time::Instant::now();
    loop {
        let (status, _) = send(members()).await;
        if status == 403 {
            break;
        }
        assert!(
            demoted.elapsed() <= api::identity::AUTH_ENTRY_TTL + std::time::Duration::from_secs(1),
            "still admin {:?} after the demotion",
            demoted.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
on_both_backends!(
    a_lost_invalidation_leaves_a_role_stale_for_seconds_at_most,
    a_lost_invalidation_leaves_a_role_stale_for_seconds_at_most_on
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_list_keeps_a_bounded_number_of_pages_in_redis() {
    let (a, _b) = TestApp::pair(Backend::Sqlite).await;
    let (owner, gym) = a.gym().await;
    a.class(gym, &owner, 5).await;
    for skip in 0..(domain::cache::MAX_FIELDS + 20) {
        let path = format!("/api/v1/schedule/classes?skip={skip}&limit=7");
        assert_eq!(send(a.call(Method::GET, &path, &owner.token, Some(gym))).await.0, 200);
    }
    let client = redis::Client::open(redis_url().as_str()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    // The class list's current version is the one data key of its group.
    let data = keys_with_prefix(&format!("{}gym:{{{gym}}}:classes:d", a.db.cache_prefix)).await;
    assert_eq!(data.len(), 1, "{data:?}");
    let fields: usize = redis::cmd("HLEN").arg(&data[0]).query_async(&mut conn).await.expect("HLEN");
    assert_eq!(fields, domain::cache::MAX_FIELDS, "pages past the bound are served uncached");
    // And they are still served right.
    let (_, last) = a.send_as(Method::GET, "/api/v1/schedule/classes?skip=0&limit=100", &owner, gym).await;
    assert_eq!(last.as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_fill_of_a_read_that_began_before_an_invalidation_is_never_served() {
    use domain::cache::Cache;
    redis_reachable().await;
    let prefix = format!("race-{}:", rand::random::<u64>());
    let cache =
        infra::cache::RedisCache::new(&redis_url(), 1, &prefix, std::time::Duration::from_secs(60)).expect("redis");
    let ttl = std::time::Duration::from_secs(60);
    let before = cache.read("gym:1:dashboards", "7").await;
    assert_eq!(before.value, None);
    // A write commits and invalidates while that read loads from the database.
    cache.invalidate(&["gym:1:dashboards".to_owned()]).await;
    let after = cache.read("gym:1:dashboards", "7").await;
    assert_ne!(after.version, before.version);
    cache.fill("gym:1:dashboards", before.version, "7", b"stale", ttl, 32).await;
    assert_eq!(cache.read("gym:1:dashboards", "7").await.value, None, "the stale fill is never served");
    cache.fill("gym:1:dashboards", after.version, "7", b"fresh", ttl, 32).await;
    assert_eq!(cache.read("gym:1:dashboards", "7").await.value.as_deref(), Some(&b"fresh"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_lost_version_key_never_brings_back_an_old_value() {
    use domain::cache::Cache;
    redis_reachable().await;
    let prefix = format!("versions-{}:", rand::random::<u64>());
    let ttl = std::time::Duration::from_secs(60);
    let cache = infra::cache::RedisCache::new(&redis_url(), 1, &prefix, ttl).expect("redis");
    let group = "gym:1:session:7";
    cache.invalidate(&[group.to_owned()]).await;
    let read = cache.read(group, "").await;
    cache.fill(group, read.version, "", b"count=1", ttl, 1).await;
    assert_eq!(cache.read(group, "").await.value.as_deref(), Some(&b"count=1"[..]));
    // The version key expires or is evicted; the data key of its version lives on.
    let client = redis::Client::open(redis_url().as_str()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let _: () = redis::cmd("DEL").arg(format!("{{{prefix}{group}}}:v")).query_async(&mut conn).await.expect("DEL");
    assert_eq!(cache.read(group, "").await.value, None, "a fresh version, not the old one");
    cache.invalidate(&[group.to_owned()]).await;
    let after = cache.read(group, "").await;
    assert_ne!(after.version, read.version);
    assert_eq!(after.value, None, "a write after the loss never returns to the old version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_scripts_lost_by_the_server_are_loaded_again_and_nothing_is_missed() {
    use domain::cache::Cache;
    redis_reachable().await;
    let prefix = format!("scripts-{}:", rand::random::<u64>());
    let ttl = std::time::Duration::from_secs(60);
    let cache = infra::cache::RedisCache::new(&redis_url(), 1, &prefix, ttl).expect("redis");
    let group = "gym:1:classes";
    let read = cache.read(group, "0/50").await;
    cache.fill(group, read.version, "0/50", b"[1]", ttl, 32).await;
    let client = redis::Client::open(redis_url().as_str()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let flush = async |conn: &mut redis::aio::MultiplexedConnection| {
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(conn).await.expect("SCRIPT FLUSH");
    };
    // What a Redis restart or failover does to the scripts: each call after it
    // answers as before.
    flush(&mut conn).await;
    assert_eq!(cache.read(group, "0/50").await.value.as_deref(), Some(&b"[1]"[..]), "read after the loss");
    flush(&mut conn).await;
    assert!(cache.invalidate(&[group.to_owned()]).await, "invalidation after the loss");
    flush(&mut conn).await;
    let _: () = redis::cmd("SET").arg(format!("{prefix}plain")).arg("roles").query_async(&mut conn).await.expect("SET");
    let (plain, read) = cache.get_and_read("plain", group, "0/50").await;
    assert_eq!((plain.as_deref(), read.value), (Some(&b"roles"[..]), None), "the invalidation took");
    flush(&mut conn).await;
    cache.fill(group, read.version, "0/50", b"[2]", ttl, 32).await;
    assert_eq!(cache.read(group, "0/50").await.value.as_deref(), Some(&b"[2]"[..]), "fill after the loss");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_nodes_do_not_answer_is_not_dialled_at_every_call() {
    use domain::cache::Cache;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A "node" that takes connections and never answers them.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dialled = Arc::new(AtomicUsize::new(0));
    let counter = dialled.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    let url = format!("redis+cluster://127.0.0.1:{port}");
    let cache =
        infra::cache::RedisCache::new(&url, 1, "t:", std::time::Duration::from_secs(60)).expect("a cluster URL");
    assert_eq!(cache.get("k").await, None, "no cluster: a miss");
    let first = dialled.load(Ordering::SeqCst);
    assert!(first > 0, "the first call dials the node");
    for _ in 0..20 {
        assert_eq!(cache.get("k").await, None);
    }
    assert_eq!(dialled.load(Ordering::SeqCst), first, "calls right after a failed dial do not dial again");
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(cache.get("k").await, None);
    assert!(dialled.load(Ordering::SeqCst) > first, "a second later it tries again");
}
