//! Issue 22, PgBouncer: two instances with `DATABASE_PGBOUNCER=true` through a real
//! PgBouncer in transaction-pooling mode (three server connections for twenty
//! clients), started by the test. The rules that hold under concurrency hold
//! through it: exactly-once check-in, capacity under 50 racers, credits under
//! racers, and the last-owner rule; the outbox relay marks every fact through it,
//! and the no-show and expiry jobs, raced over two pools through it, move each row once.

use std::sync::Arc;

use domain::attendance::AttendanceService;
use domain::clock::FixedClock;
use domain::facts::Dispatcher;
use domain::passes::PassService;
use domain::tx::UnitOfWork;
use gymapi_tests::pgbouncer::PgBouncer;
use gymapi_tests::{Backend, Options, TestApp, TestDb, TestUser, now, own_connection, qr_of, redis_url};
use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

async fn count(url: &str, sql: &str) -> i64 {
    let conn = own_connection(url).await;
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await.expect("count");
    row.and_then(|r| r.try_get_by_index::<i64>(0).ok()).expect("a count")
}

/// A second and a third instance's pool through the bouncer, for the jobs.
async fn pool_through(url: &str) -> Arc<infra::db::Db> {
    let vars =
        [("DATABASE_URL", url), ("DATABASE_PGBOUNCER", "true"), ("GYMAPI_ENV", "test"), ("AUTH_JWT_SECRET", "x")];
    let settings = infra::Settings::load_from(std::path::Path::new("/nonexistent"), |k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    })
    .expect("settings");
    Arc::new(infra::db::connect(&settings).await.expect("a pool through the bouncer"))
}

fn jobs(db: &Arc<infra::db::Db>, at: time::OffsetDateTime) -> (AttendanceService, PassService) {
    let clock: Arc<dyn domain::clock::Clock> = Arc::new(FixedClock(at));
    let uow = UnitOfWork::new(db.clone(), Dispatcher::new().with_outbox(db.clone()));
    let credits = domain::credits::Credits::new(db.clone());
    let attendance = AttendanceService::new(
        db.clone(),
        db.clone(),
        db.clone(),
        credits,
        uow.clone(),
        clock.clone(),
        time::Duration::minutes(30),
    );
    (attendance, PassService::new(db.clone(), db.clone(), uow, clock))
}

async fn plan(app: &TestApp, owner: &TestUser, gym: i64, credits: i64) -> i64 {
    let body = json!({"name": format!("Pack {credits}"), "kind": "pack", "credits": credits, "valid_days": 30});
    let (status, plan) = app.send_json(Method::POST, "/api/v1/plans", owner, gym, &body).await;
    assert_eq!(status, 201, "{plan}");
    plan["id"].as_i64().expect("plan id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_transaction_pooling_pgbouncer_every_rule_holds_under_racers() {
    gymapi_tests::redis_reachable().await;
    let bouncer = PgBouncer::start(3);
    let db = TestDb::create(Backend::Postgres).await;
    let direct = db.url.clone();
    let db_name = db.name().to_owned();
    let db_name = db_name.as_str();
    let through = bouncer.url(db_name);
    let bounced = Arc::new(db.reached_at(through));
    let opts = Options {
        redis_url: Some(redis_url()),
        extra: vec![("DATABASE_PGBOUNCER".into(), "true".into())],
        ..Options::default()
    };
    let (a, b) = (TestApp::spawn_on(bounced.clone(), opts.clone()).await, TestApp::spawn_on(bounced, opts).await);
    let (owner, gym) = a.gym().await;

    // Capacity: 50 members racing over both instances for 10 places.
    let class = a.class(gym, &owner, 10).await;
    let s = a.session_at(gym, &owner, class, now() + time::Duration::minutes(10)).await;
    let mut members = Vec::new();
    for _ in 0..50 {
        members.push(a.member(gym, &owner, "member").await);
    }
    let reg = format!("/api/v1/schedule/sessions/{}/register", s["id"]);
    let racers = members.iter().enumerate().map(|(i, m)| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.send_as(Method::POST, &reg, m, gym)
    });
    let answers = futures_util::future::join_all(racers).await;
    let created = answers.iter().filter(|(st, _)| st.as_u16() == 201).count();
    let full = answers.iter().filter(|(st, b)| st.as_u16() == 409 && b["code"] == "session_full").count();
    assert_eq!((created, full), (10, 40), "{:?}", answers.iter().map(|r| r.0).collect::<Vec<_>>());
    let taken = format!("SELECT COUNT(*) FROM participations WHERE session_id = {} AND status = 'registered'", s["id"]);
    assert_eq!(count(&direct, &taken).await, 10);

    // Exactly once at the door: a booked member's code scanned 20 times at once.
    let booked = answers.iter().position(|(st, _)| st.as_u16() == 201).expect("a booking");
    let qr = qr_of(&a, gym, &members[booked]).await;
    let scan = json!({"qr_code": qr});
    let scans = (0..20).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &scan)
    });
    let scanned = futures_util::future::join_all(scans).await;
    let ok = scanned.iter().filter(|(st, _)| st.as_u16() == 200).count();
    let again = scanned.iter().filter(|(st, b)| st.as_u16() == 400 && b["code"] == "already_checked_in").count();
    assert_eq!((ok, again), (1, 19), "{:?}", scanned.iter().map(|r| r.0).collect::<Vec<_>>());
    let attended =
        format!("SELECT COUNT(*) FROM participations WHERE member_id = {} AND status = 'attended'", members[booked].id);
    assert_eq!(count(&direct, &attended).await, 1);

    // Credits: a gym that requires passes; members with packs of 1–3 credits race
    // to book six sessions each; nobody books past their pack, and every balance is
    // its ledger.
    let (owner2, gym2) = a.gym().await;
    let body = json!({"booking_requires_pass": true});
    assert_eq!(a.send_json(Method::PATCH, "/api/v1/gyms/current", &owner2, gym2, &body).await.0, 200);
    let class2 = a.class(gym2, &owner2, 50).await;
    let mut sessions: Vec<Value> = Vec::new();
    for i in 0..6 {
        sessions.push(a.session_at(gym2, &owner2, class2, now() + time::Duration::hours(2 + i)).await);
    }
    let mut holders = Vec::new();
    for i in 0..6_i64 {
        let m = a.member(gym2, &owner2, "member").await;
        let credits = 1 + i % 3;
        let p = plan(&a, &owner2, gym2, credits).await;
        let path = format!("/api/v1/members/{}/passes", m.id);
        assert_eq!(a.send_json(Method::POST, &path, &owner2, gym2, &json!({"plan_id": p})).await.0, 201);
        holders.push((m, credits));
    }
    let bookings = holders
        .iter()
        .enumerate()
        .flat_map(|(i, (m, _))| sessions.iter().enumerate().map(move |(j, s)| (i + j, m, s["id"].clone())));
    let racers = bookings.map(|(n, m, id)| {
        let app = if n % 2 == 0 { &a } else { &b };
        async move { app.send_as(Method::POST, &format!("/api/v1/schedule/sessions/{id}/register"), m, gym2).await }
    });
    let answers = futures_util::future::join_all(racers).await;
    for (status, body) in &answers {
        assert!(
            status.as_u16() == 201 || (status.as_u16() == 409 && body["code"] == "no_valid_pass"),
            "{status} {body}"
        );
    }
    let booked = answers.iter().filter(|(st, _)| st.as_u16() == 201).count();
    let credits: i64 = holders.iter().map(|(_, c)| c).sum();
    assert_eq!(i64::try_from(booked).ok(), Some(credits), "every credit used once, none twice");
    let broken = format!(
        "SELECT COUNT(*) FROM passes p WHERE p.gym_id = {gym2} AND \
         ((SELECT COALESCE(SUM(e.credits), 0) FROM credit_entries e WHERE e.gym_id = p.gym_id AND e.pass_id = p.id) <> \
          (SELECT e.balance FROM credit_entries e WHERE e.gym_id = p.gym_id AND e.pass_id = p.id ORDER BY e.seq DESC LIMIT 1) \
          OR (SELECT MIN(e.balance) FROM credit_entries e WHERE e.gym_id = p.gym_id AND e.pass_id = p.id) < 0)"
    );
    assert_eq!(count(&direct, &broken).await, 0, "a balance off its ledger or below zero");

    // The last owner: two owners demote each other at once; one stays.
    let second = a.member(gym, &owner, "owner").await;
    let demote = |app: &'static str, by: &TestUser, whom: &TestUser| {
        let app = if app == "a" { &a } else { &b };
        let path = format!("/api/v1/members/{}", whom.id);
        let body = json!({"role": "member"});
        let by = by.clone();
        async move { app.send_json(Method::PATCH, &path, &by, gym, &body).await }
    };
    let (one, two) = tokio::join!(demote("a", &owner, &second), demote("b", &second, &owner));
    let statuses = [one.0.as_u16(), two.0.as_u16()];
    assert!(statuses.contains(&200) && statuses.iter().all(|s| [200, 403, 409].contains(s)), "{statuses:?}");
    let owners = format!("SELECT COUNT(*) FROM memberships WHERE gym_id = {gym} AND role = 'owner'");
    assert_eq!(count(&direct, &owners).await, 1, "exactly one owner is left");
    // The jobs through the bouncer, two pools racing, forty days on: every place
    // still booked becomes a no-show once, and the one pack nobody used expires once.
    let idle = a.member(gym2, &owner2, "member").await;
    let five = plan(&a, &owner2, gym2, 5).await;
    let path = format!("/api/v1/members/{}/passes", idle.id);
    assert_eq!(a.send_json(Method::POST, &path, &owner2, gym2, &json!({"plan_id": five})).await.0, 201);
    let later = now() + time::Duration::days(40);
    let (one, two) = (pool_through(&bouncer.url(db_name)).await, pool_through(&bouncer.url(db_name)).await);
    let ((na, pa), (nb, pb)) = (jobs(&one, later), jobs(&two, later));
    let booked = count(&direct, "SELECT COUNT(*) FROM participations WHERE status = 'registered'").await;
    assert!(booked > 0);
    let (x, y, z, w) = tokio::join!(na.mark_no_shows(), nb.mark_no_shows(), pa.expire_passes(), pb.expire_passes());
    let marked = x.expect("no-show job") + y.expect("no-show job");
    assert_eq!(i64::try_from(marked).ok(), Some(booked), "each booked place marked once");
    assert_eq!(z.expect("expiry job") + w.expect("expiry job"), 1, "the unused pack expired once");
    assert_eq!(count(&direct, "SELECT COUNT(*) FROM participations WHERE status = 'no_show'").await, booked);

    // The outbox relay and the delivery marks go through the bouncer too: every fact
    // of the run is marked delivered.
    let start = std::time::Instant::now();
    while count(&direct, "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").await > 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(15), "facts left undelivered");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!bouncer.log().contains("prepared statement"), "{}", bouncer.log());
}
