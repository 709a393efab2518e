//! `make soak`: six fault drills against the release `gymapi`, each under a steady
//! concurrent load of reads, bookings, cancellations, check-ins, class edits and
//! role changes. After each drill it prints the requests sent, the answers by
//! status, the writes acknowledged and those missing afterwards (which must be 0),
//! and checks the drill's own promise. Exit code 1 when any drill fails.
//!
//! Each drill gets a database of its own, and Redis and PostgreSQL servers of its
//! own where it kills or restarts them: the shared servers of the machine are
//! never touched. Environment: `SOAK_BIN` (the release binary), `SOAK_PG_ADMIN`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), `SOAK_REDIS_URL`
//! (default `redis://127.0.0.1:6379`), `SOAK_MINUTES` (drill 6, default 3),
//! `SOAK_ONLY` (run only the drills named, e.g. `1,5`).

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loadtest::env;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Workers of the steady load; each owns its members, class and role user, so a
/// ledger of what was acknowledged is well defined per worker.
const WORKERS: usize = 12;
const MEMBERS_PER_WORKER: usize = 5;
/// Bookable sessions of few places, so bookings run near capacity.
const BOOKABLE: usize = 6;
const BOOKABLE_CAPACITY: i64 = 6;
const WINDOW_SESSIONS: usize = 3;

type Res<T> = Result<T, String>;

fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn token(secret: &str, sub: &str) -> Res<String> {
    loadtest::token(secret, sub, 6 * 3600)
}

/// Runs a command to completion; its output on failure.
fn run(cmd: &mut Command) -> Res<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn psql(url: &str, sql: &str) -> Res<String> {
    run(Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]))
}

fn signal(pid: u32, sig: &str) -> Res<()> {
    run(Command::new("kill").args([&format!("-{sig}"), &pid.to_string()])).map(|_| ())
}

// ---------------------------------------------------------------- servers ----

/// A database of the shared PostgreSQL, dropped at the end.
struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    fn create(admin: &str, tag: &str) -> Res<Self> {
        let name = format!("gymapi_soak_{tag}_{}_{:06x}", std::process::id(), rand::random::<u32>() & 0xff_ffff);
        psql(admin, &format!("CREATE DATABASE {name}")).map_err(|e| {
            format!("PostgreSQL at {admin}: {e}\nStart it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`.")
        })?;
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        Ok(Self { admin: admin.to_owned(), url: format!("{base}/{name}?sslmode=disable"), name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A `redis-server` of the drill's own, on a port of its own.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(port: u16) -> Res<Self> {
        let mut r = Self { port, child: None };
        r.restart()?;
        Ok(r)
    }

    fn restart(&mut self) -> Res<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e} (install Debian's redis-server, as make test does)"))?;
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("redis-server did not listen on {}", self.port))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of the drill's own, made with `initdb` in a temporary
/// directory: restarting it disturbs no one else.
struct PrivatePostgres {
    bin: String,
    dir: String,
    port: u16,
}

impl PrivatePostgres {
    fn as_postgres(&self, program: &str) -> Command {
        // initdb refuses to run as root; the cluster belongs to the postgres user.
        let path = format!("{}/{program}", self.bin);
        if run(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0") {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(path)
        }
    }

    fn create(port: u16) -> Res<Self> {
        let versions = std::fs::read_dir("/usr/lib/postgresql").map_err(|e| {
            format!("/usr/lib/postgresql: {e}: drill 3 needs PostgreSQL's own initdb and pg_ctl (Debian's postgresql)")
        })?;
        let bin = versions
            .filter_map(|v| v.ok())
            .map(|v| format!("{}/bin", v.path().display()))
            .find(|b| std::path::Path::new(&format!("{b}/initdb")).exists())
            .ok_or("no initdb under /usr/lib/postgresql/*/bin")?;
        let dir = format!("/tmp/gymapi-soak-pg-{}-{port}", std::process::id());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{dir}: {e}"))?;
        let pg = Self { bin, dir, port };
        if run(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0") {
            run(Command::new("chown").args(["postgres:postgres", &pg.dir]))?;
        }
        run(pg.as_postgres("initdb").args(["-D", &format!("{}/data", pg.dir), "-A", "trust", "-U", "postgres"]))?;
        run(pg.as_postgres("pg_ctl").args(pg.ctl_args("start")))?;
        Ok(pg)
    }

    fn ctl_args(&self, action: &str) -> Vec<String> {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir);
        let mut a: Vec<String> = vec![
            action.into(),
            "-w".into(),
            "-D".into(),
            format!("{}/data", self.dir),
            "-l".into(),
            format!("{}/log", self.dir),
        ];
        if action != "stop" {
            a.extend(["-o".into(), opts]);
        }
        if action != "start" {
            a.extend(["-m".into(), "fast".into()]);
        }
        a
    }

    fn restart(&self) -> Res<()> {
        run(self.as_postgres("pg_ctl").args(self.ctl_args("restart"))).map(|_| ())
    }

    fn admin(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = run(self.as_postgres("pg_ctl").args(self.ctl_args("stop")));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy to PostgreSQL the drill can cut: cutting closes every connection
/// through it and refuses new ones, as a failed-over or partitioned database does.
struct CutProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl CutProxy {
    async fn start(target: u16) -> Res<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let (c, g) = (c.clone(), g.clone());
                let born = g.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let watch = async {
                        while !c.load(Ordering::SeqCst) && g.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, () = watch => {} }
                });
            }
        });
        Ok(Self { port, cut, generation })
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// One `gymapi serve` process.
struct Server {
    child: Child,
    base: String,
}

struct ServerConfig {
    bin: String,
    port: u16,
    database_url: String,
    redis_url: Option<String>,
    secret: String,
    prefix: String,
    extra: Vec<(&'static str, String)>,
    log: String,
}

impl Server {
    async fn start(c: &ServerConfig) -> Res<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&c.log)
            .map_err(|e| format!("{}: {e}", c.log))?;
        let mut cmd = Command::new(&c.bin);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", env("PATH", "/usr/bin:/bin"))
            .env("GYMAPI_ENV", "production")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .env("BIND_ADDR", format!("127.0.0.1:{}", c.port))
            .env("WORKERS", "2")
            .env("DATABASE_URL", &c.database_url)
            .env("AUTH_JWT_SECRET", &c.secret)
            .env("CACHE_KEY_PREFIX", &c.prefix)
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if let Some(r) = &c.redis_url {
            cmd.env("REDIS_URL", r);
        }
        for (k, v) in &c.extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().map_err(|e| format!("{}: {e} (make soak builds it first)", c.bin))?;
        let s = Self { child, base: format!("http://127.0.0.1:{}", c.port) };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client.get(format!("{}/health", s.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("gymapi did not come up on {} (log: {})", s.base, c.log))
    }

    /// SIGTERM, then the exit status.
    async fn terminate(mut self) -> Res<ExitStatus> {
        signal(self.child.id(), "TERM")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err("gymapi did not exit within 60 s of SIGTERM".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------------- load ----

/// One answer the load received (or not).
#[derive(Clone)]
struct Answer {
    sent: Instant,
    done: Instant,
    /// `None`: no HTTP answer (connection refused after a retry elsewhere, reset, timeout).
    status: Option<u16>,
    code: String,
    body: Value,
}

/// The instances behind the "load balancer": a request whose connection is refused
/// goes to the next one, as a balancer with health checks would send it.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    bases: Arc<Vec<String>>,
    /// Out of rotation: `/ready` did not answer 200 at the last health check.
    out: Arc<Vec<AtomicBool>>,
}

impl Client {
    fn new(bases: Vec<String>) -> Res<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build()
            .map_err(|e| e.to_string())?;
        let out = Arc::new(bases.iter().map(|_| AtomicBool::new(false)).collect());
        Ok(Self { http, bases: Arc::new(bases), out })
    }

    fn only(&self, base: &str) -> Self {
        Self {
            http: self.http.clone(),
            bases: Arc::new(vec![base.to_owned()]),
            out: Arc::new(vec![AtomicBool::new(false)]),
        }
    }

    /// Health checks as a load balancer makes them: every 200 ms, an instance whose
    /// `/ready` is not 200 leaves the rotation until it is again.
    fn watch_health(&self, stop: Arc<AtomicBool>) {
        let me = self.clone();
        tokio::spawn(async move {
            let probe = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap_or_default();
            while !stop.load(Ordering::Relaxed) {
                for (i, base) in me.bases.iter().enumerate() {
                    let (s, _) = ready(&probe, base).await;
                    me.out[i].store(s != 200, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    /// A read as the gym's owner.
    async fn read(&self, world: &World, path: &str) -> Answer {
        self.call(reqwest::Method::GET, path, &world.owner, Some(world.gym), None).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        tok: &str,
        gym: Option<i64>,
        body: Option<&Value>,
    ) -> Answer {
        let sent = Instant::now();
        let n = self.bases.len();
        let first = rand::random_range(0..n);
        let all_out = self.out.iter().all(|o| o.load(Ordering::Relaxed));
        for i in 0..n {
            let k = (first + i) % n;
            if !all_out && self.out[k].load(Ordering::Relaxed) {
                continue;
            }
            let base = &self.bases[k];
            let mut rb = self.http.request(method.clone(), format!("{base}{path}")).bearer_auth(tok);
            if let Some(g) = gym {
                rb = rb.header("X-Gym-ID", g.to_string());
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            match rb.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    let code = body["code"].as_str().unwrap_or_default().to_owned();
                    return Answer { sent, done: Instant::now(), status: Some(status), code, body };
                }
                // Never sent: safe to send elsewhere.
                Err(e) if e.is_connect() => {}
                Err(_) => break,
            }
        }
        Answer { sent, done: Instant::now(), status: None, code: String::new(), body: Value::Null }
    }
}

struct Member {
    id: i64,
    token: String,
    qr: String,
}

/// What the load works on, seeded through the public API.
struct World {
    gym: i64,
    owner: String,
    parts: Vec<Part>,
    bookable: Vec<i64>,
    window: Vec<i64>,
}

/// One worker's own members, class and role user.
struct Part {
    members: Vec<Member>,
    class: i64,
    role_user: i64,
}

async fn must(
    c: &Client,
    method: reqwest::Method,
    path: &str,
    tok: &str,
    gym: Option<i64>,
    body: Option<Value>,
) -> Res<Value> {
    let a = c.call(method, path, tok, gym, body.as_ref()).await;
    match a.status {
        Some(s) if (200..300).contains(&s) => Ok(a.body),
        s => Err(format!("seeding {path}: {s:?} {}", a.body)),
    }
}

async fn user(c: &Client, secret: &str, sub: &str) -> Res<(i64, String)> {
    let tok = token(secret, sub)?;
    let me = must(c, reqwest::Method::GET, "/api/v1/users/me", &tok, None, None).await?;
    Ok((me["id"].as_i64().ok_or("user id")?, tok))
}

async fn seed(c: &Client, secret: &str) -> Res<World> {
    use reqwest::Method as M;
    let run = rand::random::<u32>();
    let (_, owner) = user(c, secret, &format!("soak-owner-{run}")).await?;
    let gym = must(c, M::POST, "/api/v1/gyms", &owner, None, Some(json!({"name": "Soak Gym"}))).await?;
    let gym = gym["id"].as_i64().ok_or("gym id")?;
    let g = Some(gym);
    let class = |cap: i64| json!({"name": "Spin", "duration_minutes": 45, "max_capacity": cap});
    let small = must(c, M::POST, "/api/v1/schedule/classes", &owner, g, Some(class(BOOKABLE_CAPACITY))).await?;
    let big = must(c, M::POST, "/api/v1/schedule/classes", &owner, g, Some(class(1000))).await?;
    let now = time::OffsetDateTime::now_utc();
    let mut bookable = Vec::new();
    for i in 0..BOOKABLE {
        let start = now + time::Duration::days(1) + time::Duration::hours(i64::try_from(i).unwrap_or(0));
        let s = json!({"class_id": small["id"], "start_time": loadtest::rfc3339(start)});
        bookable
            .push(must(c, M::POST, "/api/v1/schedule/sessions", &owner, g, Some(s)).await?["id"].as_i64().ok_or("id")?);
    }
    let mut window = Vec::new();
    for i in 0..WINDOW_SESSIONS {
        let start = now + time::Duration::minutes(2 + 3 * i64::try_from(i).unwrap_or(0));
        let s = json!({"class_id": big["id"], "start_time": loadtest::rfc3339(start)});
        window
            .push(must(c, M::POST, "/api/v1/schedule/sessions", &owner, g, Some(s)).await?["id"].as_i64().ok_or("id")?);
    }
    let mut parts = Vec::new();
    for w in 0..WORKERS {
        let mut members = Vec::new();
        for m in 0..MEMBERS_PER_WORKER {
            let (id, tok) = user(c, secret, &format!("soak-{run}-w{w}-m{m}")).await?;
            must(c, M::POST, "/api/v1/members", &owner, g, Some(json!({"user_id": id, "role": "member"}))).await?;
            let qr = must(c, M::GET, "/api/v1/attendance/my-qr", &tok, g, None).await?;
            members.push(Member { id, token: tok, qr: qr["qr_code"].as_str().unwrap_or_default().to_owned() });
        }
        let (role_user, _) = user(c, secret, &format!("soak-{run}-w{w}-role")).await?;
        must(c, M::POST, "/api/v1/members", &owner, g, Some(json!({"user_id": role_user, "role": "member"}))).await?;
        let body = json!({"name": format!("w{w}-0"), "duration_minutes": 30, "max_capacity": 10});
        let class = must(c, M::POST, "/api/v1/schedule/classes", &owner, g, Some(body)).await?;
        parts.push(Part { members, class: class["id"].as_i64().ok_or("class id")?, role_user });
    }
    Ok(World { gym, owner, parts, bookable, window })
}

/// What a worker knows was acknowledged. `None` where an unacknowledged write
/// left the outcome open (a 503 may or may not have been applied).
#[derive(Default)]
struct Ledger {
    /// (member, bookable session) → acknowledged participation status.
    bookings: HashMap<(i64, i64), Option<&'static str>>,
    /// (member, window session) checked in (a 200, or `already_checked_in`).
    attended: HashMap<(i64, i64), bool>,
    class_name: Option<(i64, Option<String>)>,
    role: Option<(i64, Option<String>)>,
    acknowledged: u64,
    /// Reads of an own class that did not show the last acknowledged edit.
    stale_reads: u64,
    /// Answers that contradict an acknowledged write (it was lost), and the first few.
    lost: u64,
    lost_examples: Vec<String>,
}

impl Ledger {
    /// Records a booking (`book`) or a cancellation of one member's place in a session.
    fn booking(&mut self, member: i64, session: i64, book: bool, a: &Answer) {
        let known = self.bookings.get(&(member, session)).copied().flatten();
        let (state, lost) = match (book, a.status, a.code.as_str()) {
            // A new place for a member who held one: the acknowledged one was lost.
            (true, Some(201), _) => (Some("registered"), known == Some("registered")),
            // Still registered after an acknowledged cancellation: the cancellation was lost.
            (true, Some(409), "already_registered") => (Some("registered"), known == Some("cancelled")),
            // A place given back after an acknowledged cancellation: that one was lost.
            (false, Some(204), _) => (Some("cancelled"), known == Some("cancelled")),
            // No place to give back after an acknowledged booking: the booking was lost.
            (false, Some(404), "not_registered") => (known, known == Some("registered")),
            (_, Some(st), _) if st < 500 => (known, false),
            _ => (None, false),
        };
        let what = if book { "booking" } else { "cancellation" };
        self.contradict(lost, || format!("{what} {member}@{session}: {:?} after {known:?}", a.status));
        self.acknowledged += u64::from(a.status == Some(if book { 201 } else { 204 }));
        self.bookings.insert((member, session), state);
    }

    fn contradict(&mut self, lost: bool, what: impl FnOnce() -> String) {
        if lost {
            self.lost += 1;
            if self.lost_examples.len() < 3 {
                self.lost_examples.push(what());
            }
        }
    }
}

/// Records an edit of a last-writer-wins value: acknowledged, it is the value;
/// refused, nothing changed; a 5xx or no answer leaves it unknown.
fn settle(slot: &mut Option<(i64, Option<String>)>, id: i64, value: String, a: &Answer, acknowledged: &mut u64) {
    match a.status {
        Some(200) => {
            *slot = Some((id, Some(value)));
            *acknowledged += 1;
        }
        Some(s) if s < 500 => {}
        _ => *slot = Some((id, None)),
    }
}

async fn worker(
    c: Client,
    world: Arc<World>,
    w: usize,
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
) -> Ledger {
    use reqwest::Method as M;
    let part = &world.parts[w];
    let g = Some(world.gym);
    let mut ledger = Ledger { class_name: Some((part.class, Some(format!("w{w}-0")))), ..Ledger::default() };
    let mut mine = Vec::new();
    let mut edits = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        let roll = rand::random_range(0..100);
        let m = rand::random_range(0..part.members.len());
        let s = world.bookable[rand::random_range(0..world.bookable.len())];
        let ws = world.window[rand::random_range(0..world.window.len())];
        let member = &part.members[m];
        let a = match roll {
            0..=14 => {
                let a =
                    c.call(M::GET, &format!("/api/v1/schedule/classes/{}", part.class), &member.token, g, None).await;
                if let (Some(200), Some((_, Some(name)))) = (a.status, &ledger.class_name)
                    && a.body["name"].as_str() != Some(name.as_str())
                {
                    ledger.stale_reads += 1;
                }
                a
            }
            15..=24 => c.call(M::GET, "/api/v1/users/me/dashboard-summary", &member.token, g, None).await,
            25..=34 => {
                let day = time::OffsetDateTime::now_utc().date();
                let q =
                    format!("/api/v1/schedule/sessions?start_date={day}&end_date={}", day.next_day().unwrap_or(day));
                c.call(M::GET, &q, &member.token, g, None).await
            }
            35..=72 => {
                let (method, book) = if roll < 60 { (M::POST, true) } else { (M::DELETE, false) };
                let a =
                    c.call(method, &format!("/api/v1/schedule/sessions/{s}/register"), &member.token, g, None).await;
                ledger.booking(member.id, s, book, &a);
                a
            }
            73..=88 => {
                let body = json!({"qr_code": member.qr, "session_id": ws});
                let a = c.call(M::POST, "/api/v1/attendance/check-in", &world.owner, g, Some(&body)).await;
                match (a.status, a.code.as_str()) {
                    (Some(200), _) => {
                        ledger.attended.insert((member.id, ws), true);
                        ledger.acknowledged += 1;
                        mine.push(ws);
                    }
                    (Some(400), "already_checked_in") => {
                        ledger.attended.insert((member.id, ws), true);
                    }
                    _ => {}
                }
                a
            }
            89..=94 => {
                edits += 1;
                let name = format!("w{w}-{edits}");
                let body = json!({"name": name});
                let a = c
                    .call(M::PATCH, &format!("/api/v1/schedule/classes/{}", part.class), &world.owner, g, Some(&body))
                    .await;
                settle(&mut ledger.class_name, part.class, name, &a, &mut ledger.acknowledged);
                a
            }
            _ => {
                let role = if edits.is_multiple_of(2) { "trainer" } else { "member" };
                edits += 1;
                let body = json!({"role": role});
                let a = c
                    .call(M::PATCH, &format!("/api/v1/members/{}", part.role_user), &world.owner, g, Some(&body))
                    .await;
                settle(&mut ledger.role, part.role_user, role.to_owned(), &a, &mut ledger.acknowledged);
                a
            }
        };
        answers.lock().await.push(a);
    }
    ledger
}

/// The steady load, running until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<Ledger>>,
}

/// A drill that returns early (a fault it could not cause or undo) stops its load
/// too, rather than leaving clients spinning against a server that is gone.
impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Load {
    fn start(c: &Client, world: &Arc<World>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..WORKERS)
            .map(|w| tokio::spawn(worker(c.clone(), world.clone(), w, stop.clone(), answers.clone())))
            .collect();
        Self { stop, answers, tasks }
    }

    async fn finish(mut self) -> (Vec<Answer>, Vec<Ledger>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut ledgers = Vec::new();
        for t in std::mem::take(&mut self.tasks) {
            if let Ok(l) = t.await {
                ledgers.push(l);
            }
        }
        let answers = std::mem::take(&mut *self.answers.lock().await);
        (answers, ledgers)
    }
}

// --------------------------------------------------------------- checking ----

/// Writes acknowledged but not found afterwards, counted against the database and
/// through the reads of every instance.
async fn missing_writes(c: &Client, db_url: &str, world: &World, ledgers: &[Ledger]) -> Res<(u64, Vec<String>)> {
    let rows = psql(
        db_url,
        &format!("SELECT member_id, session_id, status FROM participations WHERE gym_id = {}", world.gym),
    )?;
    let mut stored: HashMap<(i64, i64), String> = HashMap::new();
    for line in rows.lines() {
        let f: Vec<&str> = line.split('|').collect();
        if let [m, s, st] = f.as_slice() {
            stored.insert((m.parse().unwrap_or(0), s.parse().unwrap_or(0)), (*st).to_owned());
        }
    }
    let mut missing = 0;
    let mut why = Vec::new();
    let mut miss = |what: String| {
        missing += 1;
        if why.len() < 10 {
            why.push(what);
        }
    };
    for l in ledgers {
        for (&(m, s), want) in &l.bookings {
            let got = stored.get(&(m, s)).map(String::as_str);
            match want {
                Some("registered") if got != Some("registered") => miss(format!("booking {m}@{s}: stored {got:?}")),
                Some("cancelled") if got != Some("cancelled") => miss(format!("cancellation {m}@{s}: stored {got:?}")),
                _ => {}
            }
        }
        for &(m, s) in l.attended.keys() {
            let got = stored.get(&(m, s)).map(String::as_str);
            if got != Some("attended") {
                miss(format!("check-in {m}@{s}: stored {got:?}"));
            }
        }
        if let Some((class, Some(name))) = &l.class_name {
            let got = psql(db_url, &format!("SELECT name FROM classes WHERE id = {class}"))?;
            if got.trim() != name {
                miss(format!("class {class}: stored {:?}, acknowledged {name}", got.trim()));
            }
        }
        if let Some((u, Some(role))) = &l.role {
            let got =
                psql(db_url, &format!("SELECT role FROM memberships WHERE user_id = {u} AND gym_id = {}", world.gym))?;
            if got.trim() != role {
                miss(format!("role of {u}: stored {:?}, acknowledged {role}", got.trim()));
            }
        }
        // Reads on every instance show the last acknowledged edit and role.
        for base in c.bases.iter() {
            let one = c.only(base);
            if let Some((class, Some(name))) = &l.class_name {
                let a = one.read(world, &format!("/api/v1/schedule/classes/{class}")).await;
                if a.body["name"].as_str() != Some(name) {
                    miss(format!("class {class} on {base}: {:?} not {name}", a.body["name"]));
                }
            }
            if let Some((u, Some(role))) = &l.role {
                let a = one.read(world, &format!("/api/v1/members?role={role}&limit=500")).await;
                let listed = a.body.as_array().is_some_and(|v| v.iter().any(|m| m["user"]["id"].as_i64() == Some(*u)));
                if !listed {
                    miss(format!("role {role} of {u} not listed on {base}"));
                }
            }
        }
    }
    // Participants as each instance lists them, against the database.
    for base in c.bases.iter() {
        let one = c.only(base);
        for s in world.bookable.iter().chain(&world.window) {
            let a = one.read(world, &format!("/api/v1/schedule/sessions/{s}/participants")).await;
            let listed: HashMap<i64, String> = a.body.as_array().map_or_else(HashMap::new, |v| {
                v.iter()
                    .map(|p| (p["member_id"].as_i64().unwrap_or(0), p["status"].as_str().unwrap_or("").to_owned()))
                    .collect()
            });
            for ((m, ss), st) in &stored {
                if ss == s && listed.get(m) != Some(st) {
                    miss(format!("participation {m}@{s} is {st} but {base} lists {:?}", listed.get(m)));
                }
            }
        }
    }
    Ok((missing, why))
}

/// The database's own invariants over the drill's data.
fn invariants(db_url: &str) -> Res<Vec<String>> {
    let checks = [
        (
            "sessions over capacity (bookable ones)",
            "SELECT count(*) FROM sessions WHERE registered_count > capacity AND capacity < 1000",
        ),
        (
            "sessions whose registered_count differs from their rows",
            "SELECT count(*) FROM sessions s WHERE registered_count <> (SELECT count(*) FROM participations p \
             WHERE p.session_id = s.id AND p.status IN ('registered', 'attended'))",
        ),
        (
            "members with two participations in a session",
            "SELECT count(*) FROM (SELECT 1 FROM participations GROUP BY session_id, member_id HAVING count(*) > 1) d",
        ),
    ];
    let mut bad = Vec::new();
    for (what, sql) in checks {
        let n = psql(db_url, sql)?;
        if n.trim() != "0" {
            bad.push(format!("{what}: {}", n.trim()));
        }
    }
    Ok(bad)
}

/// A span of time in which some 503s are the expected answer.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

impl Window {
    fn covers(&self, a: &Answer) -> bool {
        a.done >= self.from && a.sent <= self.until
    }
}

/// The counts of one drill, for the run's totals.
#[derive(Default)]
struct Outcome {
    ok: bool,
    faults: u64,
    sent: u64,
    acknowledged: u64,
    missing: u64,
    five_xx_outside: u64,
}

/// What one drill saw.
struct Report {
    name: &'static str,
    faults: u64,
    answers: Vec<Answer>,
    acknowledged: u64,
    missing: u64,
    problems: Vec<String>,
}

impl Report {
    fn new(name: &'static str, faults: u64, answers: Vec<Answer>, ledgers: &[Ledger]) -> Self {
        let acknowledged = ledgers.iter().map(|l| l.acknowledged).sum();
        let stale: u64 = ledgers.iter().map(|l| l.stale_reads).sum();
        let mut problems = Vec::new();
        if stale > 0 {
            problems.push(format!("{stale} reads did not show the last acknowledged class edit"));
        }
        let lost: u64 = ledgers.iter().map(|l| l.lost).sum();
        problems.extend(ledgers.iter().flat_map(|l| l.lost_examples.iter().cloned()));
        Self { name, faults, answers, acknowledged, missing: lost, problems }
    }

    /// 5xx answers: any but `503 database_unavailable` inside an allowed window is a problem.
    fn check_5xx(&mut self, allowed: &[Window]) -> u64 {
        let mut outside = 0;
        let mut shown = 0;
        for a in &self.answers {
            let Some(s) = a.status else { continue };
            if s < 500 {
                continue;
            }
            let excused = s == 503 && a.code == "database_unavailable" && allowed.iter().any(|w| w.covers(a));
            if !excused {
                outside += 1;
                if shown < 5 {
                    shown += 1;
                    self.problems.push(format!("{s} {} outside a fault window", a.body));
                }
            }
        }
        outside
    }

    fn check_answered(&mut self, before: Option<Instant>) {
        let unanswered =
            self.answers.iter().filter(|a| a.status.is_none() && before.is_none_or(|t| a.sent < t)).count();
        if unanswered > 0 {
            self.problems.push(format!("{unanswered} requests got no answer (reset, refused or timed out)"));
        }
    }

    fn print(&self, five_xx_outside: u64) -> Outcome {
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        for a in &self.answers {
            *by.entry(a.status.map_or("none".into(), |s| s.to_string())).or_default() += 1;
        }
        let statuses: Vec<String> = by.iter().map(|(s, n)| format!("{s}:{n}")).collect();
        let ok = self.problems.is_empty() && self.missing == 0;
        println!(
            "{} {} | faults {} | sent {} | {} | acknowledged writes {} | missing {} | 5xx outside fault windows {}",
            if ok { "PASS" } else { "FAIL" },
            self.name,
            self.faults,
            self.answers.len(),
            statuses.join(" "),
            self.acknowledged,
            self.missing,
            five_xx_outside
        );
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        for a in self.answers.iter().filter(|a| a.status.is_some_and(|s| s >= 400)) {
            let code = if a.code.is_empty() { "?" } else { a.code.as_str() };
            *codes.entry(code.to_owned()).or_default() += 1;
        }
        let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c}:{n}")).collect();
        println!("    refusals by code: {}", codes.join(" "));
        for p in &self.problems {
            println!("    - {p}");
        }
        Outcome {
            ok,
            faults: self.faults,
            sent: self.answers.len() as u64,
            acknowledged: self.acknowledged,
            missing: self.missing,
            five_xx_outside,
        }
    }
}

// ----------------------------------------------------------------- drills ----

struct Ctx {
    bin: String,
    pg_admin: String,
    redis_url: String,
    secret: String,
    minutes: f64,
}

impl Ctx {
    fn config(
        &self,
        name: &str,
        database_url: &str,
        redis_url: Option<String>,
        extra: Vec<(&'static str, String)>,
    ) -> Res<ServerConfig> {
        Ok(ServerConfig {
            bin: self.bin.clone(),
            port: free_port()?,
            database_url: database_url.to_owned(),
            redis_url,
            secret: self.secret.clone(),
            prefix: format!("soak-{}-{name}:", std::process::id()),
            extra,
            log: format!("/tmp/gymapi-soak-{name}.log"),
        })
    }
}

async fn ready(c: &reqwest::Client, base: &str) -> (u16, Value) {
    match c.get(format!("{base}/ready")).send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Polls `/ready` until `want` holds, at most `secs`; whether it did.
async fn ready_until(base: &str, secs: u64, want: impl Fn(u16, &Value) -> bool) -> bool {
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let (s, v) = ready(&c, base).await;
        if want(s, &v) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn cache_hits(base: &str) -> f64 {
    let Ok(r) = reqwest::get(format!("{base}/metrics")).await else { return 0.0 };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("gymapi_cache_operations_total") && l.contains("result=\"hit\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn secs(n: f64) {
    tokio::time::sleep(Duration::from_secs_f64(n)).await;
}

/// One instance, seeded, under load.
async fn loaded(ctx: &Ctx, cfg: &ServerConfig) -> Res<(Server, Client, Arc<World>, Load)> {
    let server = Server::start(cfg).await?;
    let c = Client::new(vec![server.base.clone()])?;
    let world = Arc::new(seed(&c, &ctx.secret).await?);
    let load = Load::start(&c, &world);
    Ok((server, c, world, load))
}

/// Sets its flag when dropped: stops a background task on every way out of a drill.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// 1. Redis killed (SIGKILL) and restarted on the same port.
async fn drill_redis(ctx: &Ctx) -> Res<Outcome> {
    let db = TestDatabase::create(&ctx.pg_admin, "redis")?;
    let mut redis = PrivateRedis::start(free_port()?)?;
    let cfg = ctx.config("redis", &db.url, Some(format!("redis://127.0.0.1:{}", redis.port)), vec![])?;
    let (server, c, world, load) = loaded(ctx, &cfg).await?;
    secs(4.0).await;
    redis.kill();
    let degraded = ready_until(&server.base, 10, |s, v| s == 200 && v["cache"] == "degraded").await;
    secs(4.0).await;
    redis.restart()?;
    let back = ready_until(&server.base, 15, |s, v| s == 200 && v["cache"] == "ok").await;
    let hits = cache_hits(&server.base).await;
    secs(5.0).await;
    let hits_after = cache_hits(&server.base).await;
    let (answers, ledgers) = load.finish().await;
    let mut r = Report::new("1 redis-sigkill-restart", 1, answers, &ledgers);
    if !degraded {
        r.problems.push("/ready never said cache: degraded while Redis was down".into());
    }
    if !back {
        r.problems.push("/ready did not say cache: ok after Redis returned".into());
    }
    if hits_after <= hits {
        r.problems.push(format!("no cache hits after Redis returned ({hits} then {hits_after})"));
    }
    finish(r, &c, &db.url, &world, &ledgers, &[], None).await
}

/// 2. PostgreSQL cut by a TCP proxy, then restored.
async fn drill_cut(ctx: &Ctx) -> Res<Outcome> {
    let db = TestDatabase::create(&ctx.pg_admin, "cut")?;
    let pg_port: u16 =
        ctx.pg_admin.rsplit_once(':').and_then(|(_, p)| p.split('/').next()?.parse().ok()).unwrap_or(5432);
    let proxy = CutProxy::start(pg_port).await?;
    let via = db.url.replacen(&format!(":{pg_port}/"), &format!(":{}/", proxy.port), 1);
    let extra = vec![("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "2".to_owned())];
    let cfg = ctx.config("cut", &via, Some(ctx.redis_url.clone()), extra)?;
    let (server, c, world, load) = loaded(ctx, &cfg).await?;
    let mut windows = Vec::new();
    for _ in 0..2 {
        secs(4.0).await;
        let from = Instant::now();
        proxy.set_cut(true);
        let not_ready = ready_until(&server.base, 10, |s, _| s == 503).await;
        secs(5.0).await;
        proxy.set_cut(false);
        let recovered = ready_until(&server.base, 20, |s, _| s == 200).await;
        // The pool may hold a connection that died in the cut until its first use fails.
        windows.push(Window { from, until: Instant::now() + Duration::from_secs(3) });
        if !not_ready || !recovered {
            let (answers, ledgers) = load.finish().await;
            let mut r = Report::new("2 postgres-cut-by-proxy", 1, answers, &ledgers);
            r.problems.push(format!("/ready: 503 during the cut {not_ready}, 200 after it {recovered}"));
            return finish(r, &c, &db.url, &world, &ledgers, &windows, None).await;
        }
    }
    secs(5.0).await;
    let (answers, ledgers) = load.finish().await;
    let r = Report::new("2 postgres-cut-by-proxy", 2, answers, &ledgers);
    let ok = finish(r, &c, &db.url, &world, &ledgers, &windows, None).await?;
    drop(server);
    Ok(ok)
}

/// 3. PostgreSQL restarted (`pg_ctl restart -m fast`) on a private cluster.
async fn drill_restart(ctx: &Ctx) -> Res<Outcome> {
    let pg = PrivatePostgres::create(free_port()?)?;
    let db = TestDatabase::create(&pg.admin(), "restart")?;
    let cfg = ctx.config("restart", &db.url, Some(ctx.redis_url.clone()), vec![])?;
    let (server, c, world, load) = loaded(ctx, &cfg).await?;
    let mut windows = Vec::new();
    for _ in 0..2 {
        secs(4.0).await;
        let from = Instant::now();
        pg.restart()?;
        let recovered = ready_until(&server.base, 20, |s, _| s == 200).await;
        windows.push(Window { from, until: Instant::now() + Duration::from_secs(3) });
        if !recovered {
            return Err("gymapi did not become ready after PostgreSQL restarted".into());
        }
    }
    secs(5.0).await;
    let (answers, ledgers) = load.finish().await;
    let mut r = Report::new("3 postgres-restart", 2, answers, &ledgers);
    let five_hundreds = r.answers.iter().filter(|a| a.status == Some(500)).count();
    if five_hundreds > 0 {
        r.problems.push(format!("{five_hundreds} answers were 500"));
    }
    let ok = finish(r, &c, &db.url, &world, &ledgers, &windows, None).await?;
    drop(server);
    drop(db);
    Ok(ok)
}

/// 4. Pool exhaustion: a table lock held from `psql`.
async fn drill_pool(ctx: &Ctx) -> Res<Outcome> {
    let db = TestDatabase::create(&ctx.pg_admin, "pool")?;
    let extra = vec![
        ("DATABASE_MAX_CONNECTIONS", "4".to_owned()),
        ("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "2".to_owned()),
        ("DATABASE_STATEMENT_TIMEOUT_SECONDS", "3".to_owned()),
    ];
    let cfg = ctx.config("pool", &db.url, Some(ctx.redis_url.clone()), extra)?;
    let (server, c, world, load) = loaded(ctx, &cfg).await?;
    secs(4.0).await;
    let hold = 8;
    let from = Instant::now();
    // The tables in the service's lock order (memberships, then sessions, then
    // participations; docs/architecture.md): an outage, not a party to a deadlock.
    let lock = format!(
        "BEGIN; LOCK TABLE memberships, sessions, participations, classes IN ACCESS EXCLUSIVE MODE; \
         SELECT pg_sleep({hold}); COMMIT;"
    );
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || psql(&url, &lock)).await.map_err(|e| e.to_string())??;
    let until = Instant::now();
    let recovered = ready_until(&server.base, 20, |s, _| s == 200).await;
    secs(4.0).await;
    let (answers, ledgers) = load.finish().await;
    let mut r = Report::new("4 pool-exhaustion-by-table-lock", 1, answers, &ledgers);
    // Bounded: the acquire wait plus one statement timeout, with slack for the two cores.
    let bound = Duration::from_secs(2 + 3 + 4);
    let slow = r.answers.iter().filter(|a| a.done - a.sent > bound).count();
    if slow > 0 {
        r.problems.push(format!("{slow} answers took longer than {bound:?}"));
    }
    let unavailable = r.answers.iter().filter(|a| a.code == "database_unavailable").count();
    if unavailable == 0 {
        r.problems.push("the lock caused no 503: the pool was never exhausted".into());
    }
    if !recovered {
        r.problems.push("not ready again after the lock was released".into());
    }
    let windows = [Window { from, until: until + Duration::from_secs(3) }];
    finish(r, &c, &db.url, &world, &ledgers, &windows, None).await
}

/// 5. SIGTERM under load.
async fn drill_sigterm(ctx: &Ctx) -> Res<Outcome> {
    let db = TestDatabase::create(&ctx.pg_admin, "sigterm")?;
    let extra = vec![("SHUTDOWN_GRACE_SECONDS", "2".to_owned())];
    let cfg = ctx.config("sigterm", &db.url, Some(ctx.redis_url.clone()), extra)?;
    let (server, _seeded_through, world, load) = loaded(ctx, &cfg).await?;
    secs(5.0).await;
    let signalled = Instant::now();
    let status = server.terminate().await?;
    let (answers, ledgers) = load.finish().await;
    let mut r = Report::new("5 sigterm-under-load", 1, answers, &ledgers);
    r.check_answered(Some(signalled));
    if status.code() != Some(0) {
        r.problems.push(format!("exit status {status}"));
    }
    // The ledger is checked on a fresh instance: nothing acknowledged before the exit is lost.
    let again = Server::start(&cfg).await?;
    let c2 = Client::new(vec![again.base.clone()])?;
    finish(r, &c2, &db.url, &world, &ledgers, &[], Some(())).await
}

/// 6. Two instances on one PostgreSQL and one Redis, one restarted midway.
async fn drill_two(ctx: &Ctx) -> Res<Outcome> {
    let db = TestDatabase::create(&ctx.pg_admin, "two")?;
    let cfg_a =
        ctx.config("two-a", &db.url, Some(ctx.redis_url.clone()), vec![("SHUTDOWN_GRACE_SECONDS", "2".to_owned())])?;
    let mut cfg_b = ctx.config("two-b", &db.url, Some(ctx.redis_url.clone()), vec![])?;
    cfg_b.prefix.clone_from(&cfg_a.prefix);
    let a = Server::start(&cfg_a).await?;
    let b = Server::start(&cfg_b).await?;
    let c = Client::new(vec![a.base.clone(), b.base.clone()])?;
    let health = StopOnDrop(Arc::new(AtomicBool::new(false)));
    c.watch_health(health.0.clone());
    let world = Arc::new(seed(&c, &ctx.secret).await?);
    let load = Load::start(&c, &world);
    let total = Duration::from_secs_f64(ctx.minutes * 60.0);
    secs(total.as_secs_f64() / 2.0).await;
    let status = a.terminate().await?;
    let a = Server::start(&cfg_a).await?;
    secs(total.as_secs_f64() / 2.0).await;
    let (answers, ledgers) = load.finish().await;
    drop(health);
    let mut r = Report::new("6 two-instances-one-restarted", 1, answers, &ledgers);
    if status.code() != Some(0) {
        r.problems.push(format!("the restarted instance exited with {status}"));
    }
    let ok = finish(r, &c, &db.url, &world, &ledgers, &[], None).await?;
    drop((a, b));
    Ok(ok)
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    mut r: Report,
    c: &Client,
    db_url: &str,
    world: &World,
    ledgers: &[Ledger],
    windows: &[Window],
    answered_checked: Option<()>,
) -> Res<Outcome> {
    if answered_checked.is_none() {
        r.check_answered(None);
    }
    let outside = r.check_5xx(windows);
    let (missing, why) = missing_writes(c, db_url, world, ledgers).await?;
    r.missing += missing;
    r.problems.extend(why);
    r.problems.extend(invariants(db_url)?);
    Ok(r.print(outside))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let target = env("CARGO_TARGET_DIR", "target");
    let ctx = Ctx {
        bin: env("SOAK_BIN", &format!("{target}/release/gymapi")),
        pg_admin: env("SOAK_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres"),
        redis_url: env("SOAK_REDIS_URL", "redis://127.0.0.1:6379"),
        secret: format!("soak-{:032x}", rand::random::<u128>()),
        minutes: env("SOAK_MINUTES", "3").parse().unwrap_or(3.0),
    };
    let only = env("SOAK_ONLY", "1,2,3,4,5,6");
    let started = Instant::now();
    let mut failed = 0;
    let mut total = Outcome::default();
    for (n, name) in [(1, "redis"), (2, "cut"), (3, "restart"), (4, "pool"), (5, "sigterm"), (6, "two")] {
        if !only.split(',').any(|o| o.trim() == n.to_string()) {
            continue;
        }
        let result = match n {
            1 => drill_redis(&ctx).await,
            2 => drill_cut(&ctx).await,
            3 => drill_restart(&ctx).await,
            4 => drill_pool(&ctx).await,
            5 => drill_sigterm(&ctx).await,
            _ => drill_two(&ctx).await,
        };
        match result {
            Ok(o) => {
                failed += u64::from(!o.ok);
                total.faults += o.faults;
                total.sent += o.sent;
                total.acknowledged += o.acknowledged;
                total.missing += o.missing;
                total.five_xx_outside += o.five_xx_outside;
            }
            Err(e) => {
                println!("FAIL {n} {name}: could not run: {e}");
                failed += 1;
            }
        }
    }
    println!(
        "soak: {failed} drills failed | faults {} | requests sent {} | writes acknowledged {} | writes lost {} | \
         5xx outside fault windows {} | {:.0} s",
        total.faults,
        total.sent,
        total.acknowledged,
        total.missing,
        total.five_xx_outside,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
