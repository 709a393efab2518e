//! Issue 18: concurrent check-ins of an instance go out together, one transaction
//! per batch. Every rule of contract §5 holds for every row of a batch, over two
//! instances; a batch that cannot commit answers 503 to each of its scans.

use std::time::{Duration as StdDuration, Instant};

use gymapi_tests::{
    Backend, TestApp, TestUser, assert_error, now, on_both_backends, own_connection, qr_of, send, session_url,
};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use time::Duration;

const CHECK_IN: &str = "/api/v1/attendance/check-in";

async fn scalar(conn: &DatabaseConnection, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}

/// Holds what check-ins into `session` must wait for (its row on PostgreSQL, the
/// database's write lock on SQLite) until [`release`], so the scans sent meanwhile
/// queue up and go out as one batch.
async fn hold(conn: &DatabaseConnection, backend: Backend, session: &Value) {
    match backend {
        Backend::Postgres => {
            conn.execute_unprepared("BEGIN").await.expect("begin");
            let lock = format!("SELECT id FROM sessions WHERE id = {} FOR UPDATE", session["id"]);
            conn.execute_unprepared(&lock).await.expect("lock the session's row");
        }
        Backend::Sqlite => {
            conn.execute_unprepared("BEGIN IMMEDIATE").await.expect("take the write lock");
        }
    }
}

async fn release(conn: &DatabaseConnection) {
    conn.execute_unprepared("ROLLBACK").await.expect("release");
}

/// `registered_count` of every session of the gym equals its `registered` and
/// `attended` rows; answers the sum.
async fn counts_equal_rows(app: &TestApp, gym: i64, staff: &TestUser, sessions: &[Value]) -> i64 {
    let mut total = 0;
    for s in sessions {
        let (_, parts) = app.send_as(Method::GET, &session_url(s, "participants"), staff, gym).await;
        let holding = parts
            .as_array()
            .expect("participants")
            .iter()
            .filter(|p| p["status"] == "registered" || p["status"] == "attended")
            .count() as i64;
        let (_, got) = app.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", s["id"]), staff, gym).await;
        assert_eq!(got["registered_count"].as_i64(), Some(holding), "session {}: {parts}", s["id"]);
        total += holding;
    }
    total
}

async fn two_scans_of_one_member_choosing_different_sessions_give_one_check_in(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 20).await;
    let t = now() + Duration::minutes(40);
    let sessions =
        [a.session_at(gym, &owner, class, t).await, a.session_at(gym, &owner, class, t + Duration::minutes(20)).await];
    // Each instance's clock makes it choose another session of the window (the
    // closest start): a the first, b the second; both are in both windows.
    a.clock.set(t - Duration::minutes(5));
    b.clock.set(t + Duration::minutes(25));
    for round in 0..3 {
        let member = a.member(gym, &owner, "member").await;
        let qr = qr_of(&a, gym, &member).await;
        let body = json!({"qr_code": qr});
        let results = futures_util::future::join_all((0..16).map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            let (owner, body) = (&owner, &body);
            async move { app.send_json(Method::POST, CHECK_IN, owner, gym, body).await }
        }))
        .await;
        let wins = results.iter().filter(|(s, b)| s.as_u16() == 200 && b["success"] == true).count();
        let refused = results.iter().filter(|(s, b)| s.as_u16() == 400 && b["code"] == "already_checked_in").count();
        assert_eq!((wins, refused), (1, 15), "round {round}: {:?}", results.iter().map(|r| &r.1).collect::<Vec<_>>());
    }
    assert_eq!(counts_equal_rows(&b, gym, &owner, &sessions).await, 3, "three members, one place each");
}

on_both_backends!(
    two_scans_of_one_member_choosing_different_sessions_give_one_check_in_on,
    two_scans_of_one_member_choosing_different_sessions_give_one_check_in
);

async fn a_batch_answers_each_of_its_scans(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 50).await;
    let session = a.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let (other_owner, other_gym) = a.gym().await;
    let mut scans: Vec<(String, &str)> = Vec::new();
    for _ in 0..4 {
        let valid = a.member(gym, &owner, "member").await;
        scans.push((qr_of(&a, gym, &valid).await, "checked in"));
        let outsider = a.member(other_gym, &other_owner, "member").await;
        scans.push((qr_of(&a, other_gym, &outsider).await, "not_a_member"));
        let rotated = a.member(gym, &owner, "member").await;
        let stale = qr_of(&a, gym, &rotated).await;
        let (st, _) = send(a.call(Method::POST, "/api/v1/attendance/my-qr/rotate", &rotated.token, Some(gym))).await;
        assert_eq!(st, 200);
        scans.push((stale, "invalid_qr"));
    }
    let conn = own_connection(&a.db.url).await;
    // A first scan takes the runner and waits on the held lock; the next ones queue
    // behind it and go out together when the lock is let go.
    let opener = a.member(gym, &owner, "member").await;
    let opener_qr = qr_of(&a, gym, &opener).await;
    hold(&conn, backend, &session).await;
    let first = tokio::spawn({
        let (client, url, token) = (a.client.clone(), format!("{}{CHECK_IN}", a.base), owner.token.clone());
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("X-Gym-ID", gym.to_string())
                .json(&json!({"qr_code": opener_qr}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    let sent = futures_util::future::join_all(scans.iter().map(|(qr, _)| {
        let body = json!({"qr_code": qr});
        let owner = &owner;
        let a = &a;
        async move { a.send_json(Method::POST, CHECK_IN, owner, gym, &body).await }
    }));
    let (results, ()) = tokio::join!(sent, async {
        tokio::time::sleep(StdDuration::from_millis(500)).await;
        release(&conn).await;
    });
    assert_eq!(first.await.expect("join").expect("first scan"), 200);
    for ((_, expected), got) in scans.iter().zip(&results) {
        if *expected == "checked in" {
            assert_eq!(got.0, 200, "{}", got.1);
            assert_eq!(got.1["session"]["id"], session["id"], "{}", got.1);
        } else {
            assert_error(got, 400, expected);
        }
    }
    assert_eq!(counts_equal_rows(&b, gym, &owner, std::slice::from_ref(&session)).await, 5, "the opener and four");
}

on_both_backends!(a_batch_answers_each_of_its_scans_on, a_batch_answers_each_of_its_scans);

async fn a_mixed_run_leaves_every_count_equal_to_its_rows(backend: Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 6).await;
    let mut sessions = Vec::new();
    for minutes in [3, 9, 15] {
        sessions.push(a.session_at(gym, &owner, class, now() + Duration::minutes(minutes)).await);
    }
    let mut members = Vec::new();
    for _ in 0..12 {
        let m = a.member(gym, &owner, "member").await;
        let qr = qr_of(&a, gym, &m).await;
        members.push((m, qr));
    }
    // Each member, at once and over both instances: books a session, cancels it,
    // books again, and is scanned twice (named and not), while others walk in.
    let runs = futures_util::future::join_all(members.iter().enumerate().map(|(i, (m, qr))| {
        let (app, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let s = &sessions[i % sessions.len()];
        let reg = format!("/api/v1/schedule/sessions/{}/register", s["id"]);
        let owner = &owner;
        async move {
            let mut statuses = Vec::new();
            if i % 3 != 0 {
                statuses.push(app.send_as(Method::POST, &reg, m, gym).await.0.as_u16());
                if i % 4 == 1 {
                    statuses.push(other.send_as(Method::DELETE, &reg, m, gym).await.0.as_u16());
                }
            }
            // Two scans choosing, over both instances; a member who holds a booking
            // is also scanned naming it (the session a choosing scan picks too).
            let chosen = json!({"qr_code": qr});
            let booked = i % 3 != 0 && i % 4 != 1;
            let named = json!({"qr_code": qr, "session_id": s["id"]});
            let (x, y, z) = tokio::join!(
                app.send_json(Method::POST, CHECK_IN, owner, gym, &chosen),
                other.send_json(Method::POST, CHECK_IN, owner, gym, &chosen),
                async {
                    if booked { Some(app.send_json(Method::POST, CHECK_IN, owner, gym, &named).await) } else { None }
                },
            );
            let scans: Vec<&(reqwest::StatusCode, Value)> =
                [Some(&x), Some(&y), z.as_ref()].into_iter().flatten().collect();
            for r in &scans {
                assert!(
                    r.0.as_u16() == 200 || (r.0.as_u16() == 400 && r.1["code"] == "already_checked_in"),
                    "member {i}: {}",
                    r.1
                );
            }
            let wins = scans.iter().filter(|r| r.0.as_u16() == 200).count();
            statuses.push(u16::try_from(wins).unwrap_or(u16::MAX));
            statuses
        }
    }))
    .await;
    for (i, statuses) in runs.iter().enumerate() {
        assert_eq!(statuses.last(), Some(&1), "member {i}: one check-in in the window ({statuses:?})");
    }
    let held = counts_equal_rows(&a, gym, &owner, &sessions).await;
    assert_eq!(held, 12, "every member holds one place: checked in once");
}

on_both_backends!(
    a_mixed_run_leaves_every_count_equal_to_its_rows_on,
    a_mixed_run_leaves_every_count_equal_to_its_rows
);

/// Waits until the app answers reads again after its connections were cut.
async fn recovered(app: &TestApp, gym: i64, staff: &TestUser) {
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while app.send_as(Method::GET, "/api/v1/schedule/classes", staff, gym).await.0 != 200 {
        assert!(Instant::now() < deadline, "the app did not recover after the cut");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

/// Terminates the app's connections to its database (all but `keep`); answers how many.
async fn terminate_all_but(admin: &DatabaseConnection, name: &str, keep: i64) -> i64 {
    scalar(
        admin,
        &format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> {keep} AND pid <> pg_backend_pid()"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_in_the_middle_of_a_batch_answers_503_to_its_scans_and_applies_none() {
    let (a, b) = TestApp::pair(Backend::Postgres).await;
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 50).await;
    let session = a.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let mut qrs = Vec::new();
    for _ in 0..12 {
        let m = a.member(gym, &owner, "member").await;
        qrs.push(qr_of(&a, gym, &m).await);
    }
    let holder = own_connection(&a.db.url).await;
    let holder_pid = scalar(&holder, "SELECT CAST(pg_backend_pid() AS BIGINT)").await;
    let admin = own_connection(&a.db.url).await;
    let name = a.db.url.rsplit_once('/').map(|(_, n)| n.to_owned()).expect("database name");
    hold(&holder, Backend::Postgres, &session).await;
    let scans = futures_util::future::join_all(qrs.iter().map(|qr| {
        let body = json!({"qr_code": qr});
        let (a, owner) = (&a, &owner);
        async move { a.send_json(Method::POST, CHECK_IN, owner, gym, &body).await }
    }));
    let cut = async {
        // Wait until a batch is inside its transaction, blocked on the session's row
        // after its locks and its first writes; then cut every connection of the app.
        let deadline = Instant::now() + StdDuration::from_secs(10);
        let waiting =
            format!("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{name}' AND wait_event_type = 'Lock'");
        while scalar(&admin, &waiting).await == 0 {
            assert!(Instant::now() < deadline, "no batch came to wait on the held row");
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
        let cut = terminate_all_but(&admin, &name, holder_pid).await;
        assert!(cut > 0, "the app's connections were cut");
        release(&holder).await;
    };
    let (results, ()) = tokio::join!(scans, cut);
    let ok = results.iter().filter(|r| r.0.as_u16() == 200).count() as i64;
    let unavailable = results.iter().filter(|r| r.0.as_u16() == 503).count();
    for r in &results {
        if r.0.as_u16() == 503 {
            assert_error(r, 503, "database_unavailable");
        } else {
            assert_eq!(r.0, 200, "only a success or 503: {}", r.1);
        }
    }
    assert!(
        unavailable > 0,
        "the batch that was cut answered 503: {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    for app in [&a, &b] {
        recovered(app, gym, &owner).await;
    }
    // Nothing of the cut batch stayed: the rows, the count and the facts are those of
    // the successes alone.
    let attended = scalar(
        &admin,
        &format!("SELECT COUNT(*) FROM participations WHERE session_id = {} AND status = 'attended'", session["id"]),
    )
    .await;
    let facts = scalar(&admin, "SELECT COUNT(*) FROM outbox WHERE type = 'checked_in'").await;
    assert_eq!((attended, facts), (ok, ok), "rows and facts of the successes only");
    assert_eq!(counts_equal_rows(&b, gym, &owner, std::slice::from_ref(&session)).await, ok);
    // And the service goes on: the scans that failed go through now.
    for (qr, r) in qrs.iter().zip(&results) {
        if r.0.as_u16() == 503 {
            let (status, body) = b.send_json(Method::POST, CHECK_IN, &owner, gym, &json!({"qr_code": qr})).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    assert_eq!(counts_equal_rows(&a, gym, &owner, std::slice::from_ref(&session)).await, 12);
}
