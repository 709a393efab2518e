//! Contract §6: a database that goes away makes requests answer
//! `503 database_unavailable` quickly and `/ready` 503; the service recovers alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gymapi_tests::{Backend, Options, TestApp, TestDb, assert_error, send, token};
use reqwest::Method;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy (to PostgreSQL or Redis) that can be cut and restored on the same port.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    pub(crate) async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut p = Self { port, upstream, task: None };
        p.serve(listener);
        p
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Drops the listener and every proxied connection.
    pub(crate) async fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    pub(crate) async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("rebind");
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_answers_503_fast_and_the_service_recovers() {
    // The test database itself is created directly; the app reaches it through the proxy.
    let mut db = TestDb::create(Backend::Postgres).await;
    let (base, name) = db.url.rsplit_once('/').map(|(b, n)| (b.to_owned(), n.to_owned())).expect("url");
    let (user, upstream) = base.rsplit_once('@').map(|(u, h)| (u.to_owned(), h.to_owned())).expect("user@host:port");
    let mut proxy = Proxy::start(upstream).await;
    db.url = format!("{user}@127.0.0.1:{}/{name}", proxy.port);
    let opts = Options { extra: vec![("DATABASE_ACQUIRE_TIMEOUT_SECONDS".into(), "1".into())], ..Options::default() };
    let app = TestApp::spawn_on(Arc::new(db), opts).await;
    let t = token("outage-1", "resource:read resource:write");
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me", &t, None)).await.0, 200);

    proxy.cut().await;
    let started = Instant::now();
    let fresh = token("outage-2", "resource:read resource:write");
    let got = send(app.call(Method::GET, "/api/v1/users/me", &fresh, None)).await;
    assert_error(&got, 503, "database_unavailable");
    assert!(started.elapsed() < Duration::from_secs(15), "answered within the acquire timeout, not hung");
    let (status, ready) = send(app.req(Method::GET, "/ready")).await;
    assert_eq!(status, 503, "{ready}");

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = send(app.call(Method::GET, "/api/v1/users/me", &fresh, None)).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: last status {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(send(app.req(Method::GET, "/ready")).await.0, 200);
}

/// Runs SQL on a test database from a connection of its own.
async fn admin_exec(url: &str, sql: &str) {
    use sea_orm::ConnectionTrait;
    let conn = sea_orm::Database::connect(url).await.expect("connect");
    conn.execute_unprepared(sql).await.expect("exec");
    let _ = conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_answer_503_never_500_and_the_service_recovers_alone() {
    // What a PostgreSQL restart does to the pool: every connection is terminated
    // by the server (57P01), under a steady stream of requests.
    let db = Arc::new(TestDb::create(Backend::Postgres).await);
    let app = TestApp::spawn_on(db.clone(), Options::default()).await;
    let (owner, gym) = app.gym().await;
    let name = db.url.rsplit_once('/').map(|(_, n)| n.to_owned()).expect("db name");
    let admin =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..5 {
        // Fill the pool, then terminate every backend of this database.
        let burst = futures_util::future::join_all(
            (0..8).map(|_| send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None))),
        )
        .await;
        for (s, _) in &burst {
            *statuses.entry(s.as_u16()).or_default() += 1;
        }
        admin_exec(
            &admin,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ),
        )
        .await;
        for path in ["/api/v1/users/me/gyms", "/api/v1/gyms/current", "/api/v1/schedule/classes"] {
            let (s, body) = send(app.call(Method::GET, path, &owner.token, Some(gym))).await;
            assert!(s == 200 || s == 503, "round {round} {path}: {s} {body}");
            if s == 503 {
                assert_eq!(body["code"], "database_unavailable", "{body}");
            }
            *statuses.entry(s.as_u16()).or_default() += 1;
        }
    }
    assert!(!statuses.contains_key(&500), "{statuses:?}");
    // And it recovers by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An app whose statements may run one second.
async fn one_second_statements(backend: Backend) -> (Arc<TestDb>, TestApp) {
    let db = Arc::new(TestDb::create(backend).await);
    let opts = Options { extra: vec![("DATABASE_STATEMENT_TIMEOUT_SECONDS".into(), "1".into())], ..Options::default() };
    (db.clone(), TestApp::spawn_on(db, opts).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_stuck_past_the_timeout_answers_503_on_postgres() {
    let (db, app) = one_second_statements(Backend::Postgres).await;
    let owner = app.user("stuck").await;
    // Another session holds an exclusive lock on memberships for 4 s.
    let url = db.url.clone();
    let locker = tokio::spawn(async move {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let conn = sea_orm::Database::connect(url.as_str()).await.expect("connect");
        let tx = conn.begin().await.expect("begin");
        tx.execute_unprepared("LOCK TABLE memberships IN ACCESS EXCLUSIVE MODE").await.expect("lock");
        tokio::time::sleep(Duration::from_secs(4)).await;
        tx.rollback().await.expect("rollback");
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let got = send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await;
    assert_error(&got, 503, "database_unavailable");
    assert!(started.elapsed() < Duration::from_secs(3), "cancelled at the timeout: {:?}", started.elapsed());
    locker.await.expect("locker");
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_still_busy_after_its_timeout_answers_503() {
    let (db, app) = one_second_statements(Backend::Sqlite).await;
    let owner = app.user("busy").await;
    let url = db.url.clone();
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let locker = tokio::spawn(async move {
        use sea_orm::ConnectionTrait;
        let conn = sea_orm::Database::connect(url.as_str()).await.expect("connect");
        // One connection of its own holds the write lock for 4 s.
        conn.execute_unprepared("BEGIN EXCLUSIVE").await.expect("begin exclusive");
        let _ = locked_tx.send(());
        tokio::time::sleep(Duration::from_secs(4)).await;
        conn.execute_unprepared("ROLLBACK").await.expect("rollback");
    });
    locked_rx.await.expect("locked");
    let started = Instant::now();
    let got =
        send(app.call(Method::POST, "/api/v1/gyms", &owner.token, None).json(&serde_json::json!({"name": "Busy"})))
            .await;
    assert_error(&got, 503, "database_unavailable");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    locker.await.expect("locker");
    let (s, gyms) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await;
    assert_eq!((s.as_u16(), gyms), (200, serde_json::json!([])), "the refused write changed nothing");
    let (s, _) =
        send(app.call(Method::POST, "/api/v1/gyms", &owner.token, None).json(&serde_json::json!({"name": "Free"})))
            .await;
    assert_eq!(s, 201);
}
