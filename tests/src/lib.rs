//! Black-box test support: each test spawns the real app on port 0 with its own
//! database — a uniquely named PostgreSQL database or a fresh SQLite file — and
//! drops it afterwards, so test runs never see each other's data.
//!
//! Servers come from `TEST_DATABASE_URL` (an admin URL of PostgreSQL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`). A server that cannot be reached fails the test with
//! a message saying which one and how to start it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use api::auth::{TokenClaims, sign_hs256};
use reqwest::{Method, RequestBuilder, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;

pub mod pgbouncer;
pub mod redis_cluster;
pub mod replication;

/// The HS256 secret of test apps.
pub const SECRET: &str = "gymapi-test-secret-0123456789abcdef0123456789";

/// Which database a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL from `TEST_DATABASE_URL`.
    Postgres,
    /// An SQLite file in a temporary directory.
    Sqlite,
}

/// Declares one test per backend, `mod name { postgres(), sqlite() }`, each running
/// `body` with `$backend` bound to its [`Backend`] on a runtime of `$workers` threads.
/// The other test macros are this one with their set-up.
#[macro_export]
macro_rules! per_backend {
    ($(#[$meta:meta])* $name:ident, $workers:literal, |$backend:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = $workers)]
            async fn postgres() {
                let $backend = $crate::Backend::Postgres;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = $workers)]
            async fn sqlite() {
                let $backend = $crate::Backend::Sqlite;
                $body
            }
        }
    };
}

/// One test per backend, each given `$app`, an app on a fresh database.
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* $name:ident, |$app:ident| $body:block) => {
        $crate::per_backend!($(#[$meta])* $name, 2, |backend| {
            let $app = $crate::TestApp::spawn(backend).await;
            $body
        });
    };
}

/// One test per backend of an async fn taking the backend:
/// `on_both_backends!(name, body_fn)` declares `mod name { postgres(), sqlite() }`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:ident) => {
        $crate::per_backend!($name, 2, |backend| {
            $body(backend).await;
        });
    };
}

/// One test per backend, each given two apps (`$a`, `$b`) on one fresh database
/// sharing the real Redis: two instances behind a load balancer.
#[macro_export]
macro_rules! two_instances {
    ($(#[$meta:meta])* $name:ident, |$a:ident, $b:ident| $body:block) => {
        $crate::per_backend!($(#[$meta])* $name, 2, |backend| {
            let ($a, $b) = $crate::TestApp::pair(backend).await;
            $body
        });
    };
}

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis of the tests.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Fails, saying how to start it, when the Redis of the tests does not answer.
///
/// # Panics
/// When Redis is unreachable.
pub async fn redis_reachable() {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let ok = tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection()).await;
    assert!(
        matches!(ok, Ok(Ok(_))),
        "Redis is unreachable at {url}. Start it with \
         `redis-server --daemonize yes --port 6379 --save \"\" --appendonly no`, \
         or point TEST_REDIS_URL at a running server."
    );
}

fn unique_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("gymapi_test_{}_{}_{:08x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), rand::random::<u32>())
}

/// A database made for one test, removed when dropped.
pub struct TestDb {
    /// The URL the app uses.
    pub url: String,
    /// A prefix for shared-cache keys, unique to this database.
    pub cache_prefix: String,
    drop: DropWith,
}

enum DropWith {
    Postgres { admin: String, name: String },
    Sqlite { dir: PathBuf },
}

impl TestDb {
    /// A database of its own on the backend, already migrated: a copy of this test
    /// run's template (migrated once per process, see [`template`]), so a test
    /// costs a file copy or a `CREATE DATABASE … TEMPLATE`, not every migration.
    ///
    /// # Panics
    /// When the server cannot be reached, saying how to start it.
    pub async fn create(backend: Backend) -> Self {
        let template = template(backend).await;
        let name = unique_name();
        match backend {
            Backend::Postgres => {
                let admin = admin_url();
                let conn = Database::connect(admin.as_str()).await.unwrap_or_else(|e| unreachable_pg(&admin, &e));
                // Clones of one template are serialized by PostgreSQL; a clone that
                // meets another's lock is told "being accessed by other users": retry.
                let sql = format!("CREATE DATABASE {name} TEMPLATE {template}");
                let mut tries = 0;
                while let Err(e) = conn.execute_unprepared(&sql).await {
                    tries += 1;
                    assert!(tries < 50 && e.to_string().contains("other users"), "create test database: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let _ = conn.close().await;
                Self::postgres(admin, name)
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("create temp dir");
                std::fs::copy(&template, dir.join("gymapi.db")).expect("copy the template database");
                Self::sqlite(dir, name)
            }
        }
    }

    /// An empty database on the backend (for tests of the migrations themselves).
    ///
    /// # Panics
    /// When the server cannot be reached, saying how to start it.
    pub async fn empty(backend: Backend) -> Self {
        let name = unique_name();
        match backend {
            Backend::Postgres => {
                let admin = admin_url();
                let conn = Database::connect(admin.as_str()).await.unwrap_or_else(|e| unreachable_pg(&admin, &e));
                conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
                let _ = conn.close().await;
                Self::postgres(admin, name)
            }
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("create temp dir");
                Self::sqlite(dir, name)
            }
        }
    }

    /// An empty database on the PostgreSQL server of `admin` (a server a test
    /// started itself), dropped with it.
    ///
    /// # Panics
    /// When the server refuses.
    pub async fn empty_on(admin: &str) -> Self {
        let name = unique_name();
        let conn = Database::connect(admin).await.unwrap_or_else(|e| unreachable_pg(admin, &e));
        conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        let _ = conn.close().await;
        Self::postgres(admin.to_owned(), name)
    }

    /// The same database, reached at `url` (through a pooler): dropped as before.
    #[must_use]
    pub fn reached_at(mut self, url: String) -> Self {
        self.url = url;
        self
    }

    /// The database's name (its last path segment).
    pub fn name(&self) -> &str {
        self.url.rsplit('/').next().unwrap_or_default()
    }

    fn postgres(admin: String, name: String) -> Self {
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
        Self {
            url: format!("{base}/{name}"),
            cache_prefix: format!("{name}:"),
            drop: DropWith::Postgres { admin, name },
        }
    }

    fn sqlite(dir: PathBuf, name: String) -> Self {
        let url = format!("sqlite://{}?mode=rwc", dir.join("gymapi.db").display());
        Self { url, cache_prefix: format!("{name}:"), drop: DropWith::Sqlite { dir } }
    }
}

fn unreachable_pg(admin: &str, e: &sea_orm::DbErr) -> ! {
    panic!(
        "PostgreSQL is unreachable at {admin} ({e}). Start it with \
         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
         or point TEST_DATABASE_URL at a server where user postgres may create databases."
    )
}

/// This process's migrated template for a backend, made on first use: a PostgreSQL
/// database `gymapi_tpl_{pid}` (templates of test processes that are gone are
/// dropped on the way) or an SQLite file. Answers its name or path.
async fn template(backend: Backend) -> String {
    static PG: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    static SQLITE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    match backend {
        Backend::Postgres => PG.get_or_init(pg_template).await.clone(),
        Backend::Sqlite => SQLITE.get_or_init(sqlite_template).await.clone(),
    }
}

async fn pg_template() -> String {
    let admin = admin_url();
    let conn = Database::connect(admin.as_str()).await.unwrap_or_else(|e| unreachable_pg(&admin, &e));
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'gymapi\\_tpl\\_%'",
        ))
        .await
        .unwrap_or_default();
    for row in rows {
        let Ok(stale) = row.try_get_by_index::<String>(0) else { continue };
        let pid = stale.rsplit('_').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| p != std::process::id() && !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            let _ = conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {stale} WITH (FORCE)")).await;
        }
    }
    let name = format!("gymapi_tpl_{}", std::process::id());
    let _ = conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create the template database");
    let _ = conn.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_owned();
    let tpl = Database::connect(format!("{base}/{name}")).await.expect("connect to the template");
    migration::up(&tpl).await.expect("migrate the template");
    let _ = tpl.close().await;
    name
}

async fn sqlite_template() -> String {
    let dir = std::env::temp_dir().join(format!("gymapi_tpl_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the template's directory");
    let path = dir.join("gymapi.db");
    let tpl = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await.expect("open the template");
    migration::up(&tpl).await.expect("migrate the template");
    // Everything in the main file, so a copy of it is the whole database.
    let _ = tpl.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)").await;
    let _ = tpl.close().await;
    path.display().to_string()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.drop {
            DropWith::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            DropWith::Postgres { admin, name } => {
                let (admin, name) = (admin.clone(), name.clone());
                // Drop runs inside the test's runtime: do the async work on a thread
                // with its own, and wait for it so no database outlives the run.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                    rt.block_on(async {
                        if let Ok(conn) = Database::connect(admin.as_str()).await {
                            let _ =
                                conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                            let _ = conn.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A migrated database and the SQL adapter of every repository port over it, for
/// the contract tests of the ports (no HTTP in between).
pub struct Store {
    /// The adapter; it implements every repository port.
    pub db: infra::db::Db,
    /// The database it is open on.
    pub file: TestDb,
}

impl Store {
    /// A fresh, migrated database on the backend, with a pool of ten connections
    /// (as the test apps have), so racers really contend.
    ///
    /// # Panics
    /// When the server cannot be reached (saying how to start it) or migration fails.
    pub async fn open(backend: Backend) -> Self {
        let file = TestDb::create(backend).await;
        let vars = [("DATABASE_URL", file.url.clone()), ("DATABASE_MAX_CONNECTIONS", "10".to_owned())];
        let settings = infra::Settings::load_from(std::path::Path::new("/nonexistent"), |k| {
            vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        })
        .expect("store settings");
        let db = infra::db::connect(&settings).await.expect("connect to test database");
        db.migrate().await.expect("migrate test database");
        Self { db, file }
    }

    /// A second adapter with a pool of its own on the same database: another
    /// instance, as far as the database can tell.
    ///
    /// # Panics
    /// When the database cannot be reached.
    pub async fn another_instance(&self) -> infra::db::Db {
        let vars = [("DATABASE_URL", self.file.url.clone()), ("DATABASE_MAX_CONNECTIONS", "10".to_owned())];
        let settings = infra::Settings::load_from(std::path::Path::new("/nonexistent"), |k| {
            vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        })
        .expect("store settings");
        infra::db::connect(&settings).await.expect("connect to test database")
    }
}

/// Options of a spawned app beyond its database.
#[derive(Default, Clone)]
pub struct Options {
    /// `REDIS_URL`; `None` for the in-process cache.
    pub redis_url: Option<String>,
    /// `AUTH_JWKS_URL`.
    pub jwks_url: Option<String>,
    /// Extra settings by variable name.
    pub extra: Vec<(String, String)>,
}

/// A clock tests pin and move ([`TestApp::clock`]); unpinned, it is the system's
/// (in whole seconds, as [`domain::clock::SystemClock`]).
#[derive(Default)]
pub struct TestClock {
    pinned: std::sync::Mutex<Option<time::OffsetDateTime>>,
}

impl TestClock {
    /// Stops the clock at `t`.
    pub fn set(&self, t: time::OffsetDateTime) {
        if let Ok(mut p) = self.pinned.lock() {
            *p = Some(t);
        }
    }

    /// Moves the clock by `d` (from now, when it was not pinned).
    pub fn advance(&self, d: time::Duration) {
        let next = domain::clock::Clock::now(self) + d;
        self.set(next);
    }
}

impl domain::clock::Clock for TestClock {
    fn now(&self) -> time::OffsetDateTime {
        self.pinned
            .lock()
            .ok()
            .and_then(|p| *p)
            .unwrap_or_else(|| domain::clock::Clock::now(&domain::clock::SystemClock))
    }
}

/// A running app and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The database the app runs on (dropped with the app unless shared).
    pub db: std::sync::Arc<TestDb>,
    /// The app's clock: every rule's "now" (pin it, move it).
    pub clock: std::sync::Arc<TestClock>,
    handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    /// An app on a fresh database with the in-process cache.
    pub async fn spawn(backend: Backend) -> Self {
        let db = std::sync::Arc::new(TestDb::create(backend).await);
        Self::spawn_on(db, Options::default()).await
    }

    /// An app on a given (possibly shared) database with options.
    ///
    /// # Panics
    /// When the app cannot start.
    pub async fn spawn_on(db: std::sync::Arc<TestDb>, opts: Options) -> Self {
        let mut vars: Vec<(String, String)> = vec![
            ("GYMAPI_ENV".into(), "test".into()),
            ("DATABASE_URL".into(), db.url.clone()),
            ("DATABASE_MAX_CONNECTIONS".into(), "10".into()),
            ("CACHE_KEY_PREFIX".into(), db.cache_prefix.clone()),
            ("WORKERS".into(), "1".into()),
        ];
        match &opts.jwks_url {
            Some(u) => vars.push(("AUTH_JWKS_URL".into(), u.clone())),
            None => vars.push(("AUTH_JWT_SECRET".into(), SECRET.into())),
        }
        if let Some(r) = &opts.redis_url {
            vars.push(("REDIS_URL".into(), r.clone()));
        }
        vars.extend(opts.extra.iter().cloned());
        let settings = infra::Settings::load_from(std::path::Path::new("/nonexistent"), |k| {
            vars.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .expect("test settings");
        let conn = infra::db::connect(&settings).await.expect("connect to test database");
        conn.migrate().await.expect("migrate test database");
        let clock = std::sync::Arc::new(TestClock::default());
        let state = api::app::build_state(&settings, conn, clock.clone()).expect("state");
        let state = actix_web::web::Data::new(state);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = api::app::server(state, listener, 1, false).expect("server");
        let handle = server.handle();
        tokio::spawn(server);
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        Self { base: format!("http://127.0.0.1:{port}"), client, db, clock, handle }
    }

    /// Two apps on one fresh database sharing the real Redis: what a second instance
    /// behind the load balancer sees.
    ///
    /// # Panics
    /// When Redis or the database cannot be reached (saying how to start them).
    pub async fn pair(backend: Backend) -> (Self, Self) {
        redis_reachable().await;
        let db = std::sync::Arc::new(TestDb::create(backend).await);
        let opts = Options { redis_url: Some(redis_url()), ..Options::default() };
        (Self::spawn_on(db.clone(), opts.clone()).await, Self::spawn_on(db, opts).await)
    }

    /// A request to a path of the app.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// A request with a bearer token (and a gym, when given).
    pub fn call(&self, method: Method, path: &str, token: &str, gym: Option<i64>) -> RequestBuilder {
        let rb = self.req(method, path).bearer_auth(token);
        match gym {
            Some(g) => rb.header("X-Gym-ID", g.to_string()),
            None => rb,
        }
    }

    /// Sends a request as `user` in `gym` and reads the answer.
    pub async fn send_as(&self, method: Method, path: &str, user: &TestUser, gym: i64) -> (StatusCode, Value) {
        send(self.call(method, path, &user.token, Some(gym))).await
    }

    /// Sends a JSON body as `user` in `gym` and reads the answer.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        user: &TestUser,
        gym: i64,
        body: &Value,
    ) -> (StatusCode, Value) {
        send(self.call(method, path, &user.token, Some(gym)).json(body)).await
    }

    /// Provisions a user through `GET /users/me` and returns it.
    pub async fn user(&self, sub: &str) -> TestUser {
        let token = token(sub, "resource:read resource:write");
        let (status, body) = send(self.call(Method::GET, "/api/v1/users/me", &token, None)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        TestUser { id: body["id"].as_i64().expect("id"), token }
    }

    /// A new gym and its owner.
    pub async fn gym(&self) -> (TestUser, i64) {
        let owner = self.user(&format!("owner-{}", unique_name())).await;
        let (status, body) = send(
            self.call(Method::POST, "/api/v1/gyms", &owner.token, None).json(&serde_json::json!({"name": "Test Gym"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (owner, body["id"].as_i64().expect("gym id"))
    }

    /// A new user added to the gym with a role by its owner.
    pub async fn member(&self, gym: i64, owner: &TestUser, role: &str) -> TestUser {
        let u = self.user(&format!("{role}-{}", unique_name())).await;
        let (status, body) = send(
            self.call(Method::POST, "/api/v1/members", &owner.token, Some(gym))
                .json(&serde_json::json!({"user_id": u.id, "role": role})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        u
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stops accepting and ends the worker; the database guard runs after.
        let stop = self.handle.stop(false);
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(5), stop).await;
                });
            }
        });
    }
}

/// A provisioned user.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// User id.
    pub id: i64,
    /// A token with read and write scopes.
    pub token: String,
}

/// An HS256 token for a subject with scopes, valid for an hour.
pub fn token(sub: &str, scope: &str) -> String {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp().unsigned_abs() + 3600;
    sign_hs256(
        SECRET,
        &TokenClaims { sub: sub.into(), exp, email: None, name: None, scope: Some(scope.into()), permissions: None },
    )
    .expect("sign")
}

/// Sends a request and reads the status and JSON body (`Null` when empty).
pub async fn send(rb: RequestBuilder) -> (StatusCode, Value) {
    let res = rb.send().await.expect("request");
    let status = res.status();
    let bytes = res.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, body)
}

/// Asserts an error response's status and code.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "body: {}", got.1);
    assert_eq!(got.1["code"], code, "body: {}", got.1);
    assert!(got.1["detail"].is_string(), "body: {}", got.1);
}

/// RFC 3339 of a time.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).expect("format")
}

/// Staff helpers for schedule data.
impl TestApp {
    /// Creates a class with a capacity; returns its id.
    pub async fn class(&self, gym: i64, staff: &TestUser, capacity: i64) -> i64 {
        let body = serde_json::json!({"name": "Spinning", "duration_minutes": 45, "max_capacity": capacity});
        let (status, class) =
            send(self.call(Method::POST, "/api/v1/schedule/classes", &staff.token, Some(gym)).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{class}");
        class["id"].as_i64().expect("class id")
    }

    /// `POST /schedule/sessions` with a body, as `staff`.
    pub async fn create_session(&self, gym: i64, staff: &TestUser, body: &Value) -> (StatusCode, Value) {
        self.send_json(Method::POST, "/api/v1/schedule/sessions", staff, gym, body).await
    }

    /// `POST /events` with a body, as `staff`.
    pub async fn create_event(&self, gym: i64, staff: &TestUser, body: &Value) -> (StatusCode, Value) {
        self.send_json(Method::POST, "/api/v1/events", staff, gym, body).await
    }

    /// Creates a session of a class starting at `start`; returns the session JSON.
    pub async fn session_at(&self, gym: i64, staff: &TestUser, class: i64, start: time::OffsetDateTime) -> Value {
        let body = serde_json::json!({"class_id": class, "start_time": rfc3339(start)});
        let (status, session) =
            send(self.call(Method::POST, "/api/v1/schedule/sessions", &staff.token, Some(gym)).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        session
    }
}

/// The sum of a metric's series in the app's `/metrics`.
pub async fn metric(app: &TestApp, name: &str) -> f64 {
    metric_with(app, name, "").await
}

/// The sum of a metric's series whose labels include `label` (`""` for all).
pub async fn metric_with(app: &TestApp, name: &str, label: &str) -> f64 {
    let text = app.req(Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Cached reads answered from the cache so far.
pub async fn hits(app: &TestApp) -> f64 {
    metric_with(app, "gymapi_cache_operations_total", "result=\"hit\"").await
}

/// The member's current QR code in the gym (`GET /attendance/my-qr`).
pub async fn qr_of(app: &TestApp, gym: i64, u: &TestUser) -> String {
    let (status, body) = app.send_as(Method::GET, "/api/v1/attendance/my-qr", u, gym).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"].as_i64(), Some(u.id));
    body["qr_code"].as_str().expect("qr").to_owned()
}

/// One connection of the test's own to an app's database.
pub async fn own_connection(url: &str) -> sea_orm::DatabaseConnection {
    let mut opt = sea_orm::ConnectOptions::new(url.to_owned());
    opt.max_connections(1).min_connections(1).sqlx_logging(false);
    Database::connect(opt).await.expect("a connection of the test to its database")
}

/// The path of an action on a session (`register`, `cancel`, `participants`).
pub fn session_url(session: &Value, action: &str) -> String {
    format!("/api/v1/schedule/sessions/{}/{action}", session["id"])
}

/// Now, in whole seconds.
pub fn now() -> time::OffsetDateTime {
    let n = time::OffsetDateTime::now_utc();
    n.replace_nanosecond(0).unwrap_or(n)
}

/// One request a [`Receiver`] took.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on loopback: it answers each request with the next status of
/// its script (200 once the script is spent), or never answers at all.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver answering `script` in turn, then 200.
    pub async fn start(script: Vec<u16>) -> Self {
        Self::on(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"), Some(script))
    }

    /// A receiver that takes connections and requests and never answers.
    pub async fn hanging() -> Self {
        Self::on(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind"), None)
    }

    /// A receiver on a listener already bound.
    pub fn on(listener: tokio::net::TcpListener, script: Option<Vec<u16>>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let port = listener.local_addr().expect("addr").port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        let script = std::sync::Arc::new(std::sync::Mutex::new(script.map(|s| s.into_iter())));
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body_start) = loop {
                    let Ok(n) = conn.read(&mut chunk).await else { break (String::new(), 0) };
                    if n == 0 {
                        break (String::new(), 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..end]).into_owned(), end + 4);
                    }
                };
                let headers: Vec<(String, String)> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let length = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                while buf.len() < body_start + length {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[body_start.min(buf.len())..]).into_owned();
                if let Ok(mut g) = sink.lock() {
                    g.push(Received { headers, body });
                }
                let status = match script.lock().ok().and_then(|mut s| s.as_mut().map(|s| s.next().unwrap_or(200))) {
                    Some(status) => status,
                    None => {
                        held.push(conn);
                        continue;
                    }
                };
                let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
        });
        Self { url: format!("http://127.0.0.1:{port}/hook"), got, task }
    }

    /// Every request taken so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Waits until at least `n` requests were taken; answers them.
    ///
    /// # Panics
    /// When fewer came within `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let until = std::time::Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(std::time::Instant::now() < until, "{} of {n} requests within {within:?}: {got:?}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `X-GymAPI-Signature: t=…,v1=…` signs `body` with `secret`, checked by
/// Python's `hmac` module: an implementation independent of the server's.
///
/// # Panics
/// When `python3` cannot be run (it is part of the machine; `make api-fuzz` needs it too).
pub fn python_verifies(secret: &str, header: &str, body: &str) -> bool {
    let script = "import hmac, hashlib, os\n\
        parts = [p.split('=', 1) for p in os.environ['SIG'].split(',')]\n\
        t = next(v for k, v in parts if k == 't')\n\
        mac = hmac.new(os.environ['SECRET'].encode(), (t + '.' + os.environ['BODY']).encode(), hashlib.sha256).hexdigest()\n\
        print('ok' if any(k == 'v1' and hmac.compare_digest(v, mac) for k, v in parts) else 'no')\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .env("SIG", header)
        .env("SECRET", secret)
        .env("BODY", body)
        .output()
        .expect("python3 runs the independent signature check; install CPython 3 (`apt install python3`)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim() == "ok"
}

/// A signature header for `body` at `t` by `secret`, made by Python's `hmac` (an
/// implementation independent of the server's), as a payment system would send it.
///
/// # Panics
/// When `python3` cannot be run.
pub fn python_signs(secret: &str, t: i64, body: &str) -> String {
    let script = "import hmac, hashlib, os\n\
        t = os.environ['T']\n\
        print('t=' + t + ',v1=' + hmac.new(os.environ['SECRET'].encode(), (t + '.' + os.environ['BODY']).encode(), hashlib.sha256).hexdigest())\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .env("T", t.to_string())
        .env("SECRET", secret)
        .env("BODY", body)
        .output()
        .expect("python3 signs as a payment system would; install CPython 3 (`apt install python3`)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
