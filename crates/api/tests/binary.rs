//! Tests of the `gymapi` binary as an operator runs it: configuration errors,
//! `token`, `seed-demo`, JSON logs and a graceful SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_gymapi");

/// A fresh working directory (no config/, its own SQLite file).
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gymapi-bin-{}-{:x}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn rand_suffix() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    u64::try_from(t % u128::from(u64::MAX)).unwrap_or(0)
}

fn gymapi(dir: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = workdir();
    let out = gymapi(&dir, args, env).output().expect("run gymapi");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn assert_config_error(out: &Output, must_name: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(must_name), "names {must_name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_bad_setting_stops_the_binary_with_one_line_naming_it_and_exit_code_2() {
    for (var, value) in [
        ("WORKERS", "abc"),
        ("BIND_ADDR", "nowhere"),
        ("DATABASE_URL", "mysql://x"),
        ("LOG_FORMAT", "xml"),
        ("CHECKIN_WINDOW_MINUTES", "-5"),
        ("GYMAPI_ENV", "staging"),
    ] {
        assert_config_error(&run(&["migrate"], &[(var, value)]), var);
    }
}

#[test]
fn production_refuses_weak_or_missing_secrets() {
    let prod = ("GYMAPI_ENV", "production");
    assert_config_error(&run(&["migrate"], &[prod]), "AUTH_JWT_SECRET");
    assert_config_error(&run(&["migrate"], &[prod, ("AUTH_JWT_SECRET", "too-short")]), "AUTH_JWT_SECRET");
    let dev = ("AUTH_JWT_SECRET", "gymapi-development-secret-not-for-production-use");
    assert_config_error(&run(&["migrate"], &[prod, dev]), "AUTH_JWT_SECRET");
    let jwks = ("AUTH_JWKS_URL", "https://tenant.example/.well-known/jwks.json");
    assert_config_error(&run(&["migrate"], &[prod, jwks]), "AUTH_AUDIENCE");
    assert_config_error(&run(&["migrate"], &[prod, jwks, ("AUTH_AUDIENCE", "https://gymapi/")]), "AUTH_ISSUER");
    for (var, value) in [("DATABASE_STATEMENT_TIMEOUT_SECONDS", "0"), ("SHUTDOWN_GRACE_SECONDS", "soon")] {
        assert_config_error(&run(&["migrate"], &[(var, value)]), var);
    }
}

#[test]
fn token_prints_a_signed_jwt() {
    let out = run(&["token", "--sub", "alice", "--email", "a@x.io", "--ttl", "60"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
}

/// A token for `sub`, minted by the server's own `gymapi token`.
fn token_of(server: &Server, sub: &str) -> String {
    let out = gymapi(&server.dir, &["token", "--sub", sub], &[]).output().expect("token");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
    /// Every line the server printed so far.
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `gymapi serve` on port 0 and learns the port from its start-up line,
    /// so parallel tests never race for a port.
    fn start(dir: PathBuf, extra: &[(&str, &str)]) -> Self {
        let mut env = vec![("BIND_ADDR", "127.0.0.1:0"), ("WORKERS", "2"), ("RUST_LOG", "info")];
        env.extend_from_slice(extra);
        let mut child =
            gymapi(&dir, &["serve"], &env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("gymapi serving") {
                    let _ = tx.send(line.clone());
                }
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("server did not start");
        let addr = line
            .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .find_map(|w| w.strip_prefix("addr=").or_else(|| w.starts_with("127.0.0.1:").then_some(w)))
            .expect("address in the start-up line")
            .to_owned();
        Self { child, base: format!("http://{addr}"), dir, lines }
    }

    fn sigterm(&self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_request_id() {
    let mut server = Server::start(workdir(), &[("LOG_FORMAT", "json"), ("SHUTDOWN_GRACE_SECONDS", "0")]);
    let client = reqwest::Client::new();
    let res =
        client.get(format!("{}/health", server.base)).header("X-Request-ID", "log-probe-1").send().await.expect("get");
    assert_eq!(res.status(), 200);
    let token = token_of(&server, "logged");
    let res = client.get(format!("{}/api/v1/users/me", server.base)).bearer_auth(&token).send().await.expect("get");
    assert_eq!(res.status(), 200);
    server.sigterm();
    let _ = server.child.wait();
    // The reader thread drains what is left once the process is gone.
    std::thread::sleep(Duration::from_millis(200));
    let lines = server.lines.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(!lines.is_empty());
    let mut found = false;
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["request_id"] == "log-probe-1" {
            found = true;
            assert_eq!(
                (v["method"].as_str(), v["route"].as_str(), v["status"].as_u64()),
                (Some("GET"), Some("/health"), Some(200))
            );
            assert!(v["latency_ms"].is_number());
        }
    }
    assert!(found, "no line carries the request id: {lines:?}");
    let signature = token.rsplit('.').next().unwrap_or_default();
    assert!(lines.iter().all(|l| !l.contains(signature)), "a log line carries the token");
    assert!(lines.iter().any(|l| l.contains("/api/v1/users/me") && l.contains("\"user_id\"")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_request_completes_it_and_exits_0() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = Server::start(workdir(), &[("SHUTDOWN_GRACE_SECONDS", "1")]);
    let token = token_of(&server, "drain");
    // A request whose body is still arriving is in flight for as long as we like.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let (first, rest) = ("{\"name\": ", "\"Drained\"}");
    let head = format!(
        "POST /api/v1/gyms HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        first.len() + rest.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(rest.as_bytes()).await.expect("write rest");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("Drained"), "{response}");
    let status = tokio::task::spawn_blocking(move || server.child.wait()).await.expect("join").expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigterm_ready_is_503_at_once_and_every_request_sent_is_answered_then_exit_0() {
    let mut server = Server::start(workdir(), &[("SHUTDOWN_GRACE_SECONDS", "2")]);
    let token = token_of(&server, "burst");
    // Keep-alive connections already open, as a load balancer's are.
    let client = reqwest::Client::builder().pool_max_idle_per_host(32).build().expect("client");
    let me = format!("{}/api/v1/users/me", server.base);
    assert_eq!(client.get(&me).bearer_auth(&token).send().await.expect("warm").status(), 200);
    // A burst is on its way when the signal lands.
    let burst: Vec<_> = (0..200)
        .map(|_| {
            let (client, me, token) = (client.clone(), me.clone(), token.clone());
            tokio::spawn(async move { client.get(&me).bearer_auth(&token).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // Timed from before the signal is sent: spawning `kill` can take a while under load,
    // and the grace period starts when the server receives the signal, not after.
    let signalled = std::time::Instant::now();
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = client.get(format!("{}/ready", server.base)).send().await.expect("ready");
    assert_eq!(ready.status(), 503, "/ready turns 503 at once");
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["code"], "shutting_down");
    // Requests are still served during the grace period, with Connection: close.
    let res = client.get(&me).bearer_auth(&token).send().await.expect("during grace");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
    let mut answered = 0;
    for task in burst {
        let status = task.await.expect("join").expect("every request sent before SIGTERM is answered");
        assert_eq!(status, 200);
        answered += 1;
    }
    assert_eq!(answered, 200);
    let status = tokio::task::spawn_blocking(move || server.child.wait()).await.expect("join").expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(signalled.elapsed() >= Duration::from_secs(2), "served through the grace period");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_demo_data_is_usable_for_a_check_in() {
    let dir = workdir();
    let demo = Demo::seed(&dir);
    let trainer_token = demo.field("trainer", "token: ");
    let qr = demo.field("member", "qr: ");
    let gym = demo.gym();
    let server = Server::start(dir, &[]);
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/attendance/check-in", server.base))
        .bearer_auth(trainer_token)
        .header("X-Gym-ID", gym)
        .json(&serde_json::json!({"qr_code": qr}))
        .send()
        .await
        .expect("check-in");
    let status = res.status();
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
}

/// What `gymapi seed-demo` printed.
struct Demo(String);

impl Demo {
    fn seed(dir: &PathBuf) -> Self {
        let out = gymapi(dir, &["seed-demo"], &[]).output().expect("seed-demo");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Self(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The word after `key` on the line starting with `prefix`.
    fn field(&self, prefix: &str, key: &str) -> String {
        let text = &self.0;
        let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} line in {text}"));
        let after = line.split(key).nth(1).unwrap_or_else(|| panic!("no {key} in {line}"));
        after.split_whitespace().next().unwrap_or_default().to_owned()
    }

    fn gym(&self) -> String {
        self.0.split("X-Gym-ID: ").nth(1).and_then(|s| s.split(')').next()).expect("gym id").to_owned()
    }
}

fn token_in(dir: &PathBuf, sub: &str) -> String {
    let out = gymapi(dir, &["token", "--sub", sub], &[]).output().expect("token");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_write_load_restores_every_acknowledged_write() {
    let server = Server::start(workdir(), &[("SHUTDOWN_GRACE_SECONDS", "0")]);
    let token = token_in(&server.dir, "backup-owner");
    let client = reqwest::Client::new();
    // Writes go on before, during and after the copy; each acknowledged id is noted
    // with whether the backup had started when its 201 arrived.
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (client, base, token, started, stop) =
            (client.clone(), server.base.clone(), token.clone(), started.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let body = serde_json::json!({"name": format!("Gym {i}")});
                let res = client.post(format!("{base}/api/v1/gyms")).bearer_auth(&token).json(&body).send().await;
                let before = !started.load(std::sync::atomic::Ordering::SeqCst);
                if let Some(res) = res.ok().filter(|r| r.status() == 201) {
                    let v: serde_json::Value = res.json().await.expect("json");
                    acked.push((v["id"].as_i64().expect("id"), before));
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let copy = server.dir.join("copy.db");
    started.store(true, std::sync::atomic::Ordering::SeqCst);
    let out = gymapi(&server.dir, &["backup", copy.to_str().expect("utf-8")], &[]).output().expect("backup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = writer.await.expect("writer");
    let before: Vec<i64> = acked.iter().filter(|(_, b)| *b).map(|(id, _)| *id).collect();
    assert!(before.len() >= 10, "the load ran before the copy: {} writes", before.len());
    assert!(acked.len() > before.len(), "and went on during and after it");
    let again = gymapi(&server.dir, &["backup", copy.to_str().expect("utf-8")], &[]).output().expect("backup");
    assert_eq!(again.status.code(), Some(1), "a backup never overwrites");
    let elsewhere = workdir();
    let nothing = gymapi(&elsewhere, &["backup", "copy.db"], &[]).output().expect("backup");
    assert_eq!(nothing.status.code(), Some(1), "a directory without a GymAPI database has nothing to back up");
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("nothing to back up"));
    assert!(!elsewhere.join("copy.db").exists());
    let _ = std::fs::remove_dir_all(&elsewhere);

    // Restore: a fresh directory serving from the copy.
    let restored = workdir();
    std::fs::copy(&copy, restored.join("gymapi.db")).expect("restore the copy");
    let restored = Server::start(restored, &[("SHUTDOWN_GRACE_SECONDS", "0")]);
    for id in &before {
        let res = client
            .get(format!("{}/api/v1/gyms/current", restored.base))
            .bearer_auth(&token)
            .header("X-Gym-ID", id.to_string())
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 200, "gym {id}, acknowledged before the backup, is in the copy");
    }
}

/// A zstd frame of run-length blocks: four bytes a block, each block 128 KiB once
/// decoded. 16 KiB of it is half a GiB.
fn zstd_bomb(bytes: usize) -> Vec<u8> {
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]; // magic; no FCS; window 128 KiB
    let blocks = (bytes - frame.len()) / 4;
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = (128 * 1024) << 3 | 1 << 1 | last; // size, RLE, last
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(b' ');
    }
    frame
}

/// A gzip member whose deflate stream (one fixed-Huffman block) is a literal and
/// then matches of 258 bytes at distance 1: 13 bits each, about 1,000 to 1.
fn gzip_bomb(bytes: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, len: u32) {
            self.acc |= value << self.n;
            self.n += len;
            while self.n >= 8 {
                self.out.push((self.acc & 0xff) as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        // Huffman codes go most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            let reversed = (0..len).fold(0, |r, i| r | ((code >> i) & 1) << (len - 1 - i));
            self.put(reversed, len);
        }
    }
    let mut b = Bits { out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255], acc: 0, n: 0 };
    b.put(1, 1); // final block
    b.put(1, 2); // fixed Huffman
    b.code(0x30 + u32::from(b' '), 8); // literal ' '
    while b.out.len() < bytes {
        b.code(0b1100_0101, 8); // length code 285: 258 bytes
        b.code(0, 5); // distance code 0: distance 1
    }
    b.code(0, 7); // end of block
    b.put(0, 8);
    b.out.extend_from_slice(&[0; 8]); // CRC and size: never reached by a refusal
    b.out
}

/// A PostgreSQL database of one test, dropped with the guard.
struct PgDb {
    name: String,
}

impl PgDb {
    fn create() -> Self {
        let name = format!("gymapi_bin_{}_{:x}", std::process::id(), rand_suffix());
        Self::psql(&format!("CREATE DATABASE {name}"));
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    fn psql(sql: &str) {
        let out = Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-qc", sql]).output();
        assert!(
            out.as_ref().is_ok_and(|o| o.status.success()),
            "PostgreSQL on 127.0.0.1:5432 (user postgres) refused {sql:?}: {out:?}. Start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (make test does)."
        );
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// The server's peak resident memory so far (`VmHWM`), in KiB.
fn peak_rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

/// Sends compression bombs (four at once per kind, each about 2 GiB once inflated)
/// and checks that each is refused and that the server's peak memory barely moves.
async fn compression_bombs_are_refused_within_bounded_memory(extra: &[(&str, &str)]) {
    let server = Server::start(workdir(), extra);
    let token = token_of(&server, "bomber");
    let client = reqwest::Client::new();
    let me = client.get(format!("{}/api/v1/users/me", server.base)).bearer_auth(&token).send().await;
    assert_eq!(me.expect("provision").status(), 200);
    let before = peak_rss_kib(&server);
    for (encoding, body) in [("zstd", zstd_bomb(16 * 1024)), ("gzip", gzip_bomb(16 * 1024))] {
        let sends = (0..4).map(|_| {
            client
                .post(format!("{}/api/v1/gyms", server.base))
                .bearer_auth(&token)
                .header("Content-Type", "application/json")
                .header("Content-Encoding", encoding)
                .body(body.clone())
                .send()
        });
        for res in futures_util::future::join_all(sends).await {
            let res = res.expect("an answer");
            assert_eq!(res.status(), 415, "{encoding}");
            let body: serde_json::Value = res.json().await.expect("json");
            assert_eq!(body["code"], "unsupported_content_encoding", "{encoding}: {body}");
        }
    }
    let grown = peak_rss_kib(&server).saturating_sub(before);
    assert!(grown < 32 * 1024, "peak memory grew by {grown} KiB for 8 refused bodies of 16 KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_bombs_are_refused_within_bounded_memory_on_sqlite() {
    compression_bombs_are_refused_within_bounded_memory(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_bombs_are_refused_within_bounded_memory_on_postgres() {
    let db = PgDb::create();
    let url = db.url();
    compression_bombs_are_refused_within_bounded_memory(&[("DATABASE_URL", &url)]).await;
}

/// Sends requests actix-http answers itself (a malformed request line, a head over
/// its limit, too many headers) and checks that they are counted and that at most
/// one ERROR line reaches the log however many arrive.
async fn unparsable_requests_are_counted_and_do_not_flood_the_error_log(extra: &[(&str, &str)]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(workdir(), extra);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let huge_head = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(200 * 1024));
    let many_headers = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..200).map(|i| format!("X-{i}: a\r\n")).collect::<String>()
    );
    let requests = ["GARBAGE\r\n\r\n".to_owned(), "GET / HTTP/9.9\r\n\r\n".to_owned(), huge_head, many_headers];
    let mut statuses = Vec::new();
    for _ in 0..10 {
        for request in &requests {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
            let _ = stream.write_all(request.as_bytes()).await;
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
            statuses.push(String::from_utf8_lossy(&answer).split_whitespace().nth(1).unwrap_or("none").to_owned());
        }
    }
    assert!(statuses.iter().all(|s| s == "400" || s == "431"), "{statuses:?}");
    let metrics = reqwest::get(format!("{}/metrics", server.base)).await.expect("scrape").text().await.expect("text");
    let counted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gymapi_http_connection_errors_total "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(counted >= 40.0, "40 unparsable requests counted, not {counted}:\n{metrics}");
    let errors = server.lines.lock().map(|l| l.iter().filter(|l| l.contains("ERROR")).count()).unwrap_or(usize::MAX);
    assert!(errors <= 1, "{errors} ERROR lines for 40 unparsable requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_requests_are_counted_and_do_not_flood_the_error_log_on_sqlite() {
    unparsable_requests_are_counted_and_do_not_flood_the_error_log(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparsable_requests_are_counted_and_do_not_flood_the_error_log_on_postgres() {
    let db = PgDb::create();
    let url = db.url();
    unparsable_requests_are_counted_and_do_not_flood_the_error_log(&[("DATABASE_URL", &url)]).await;
}

/// A TCP proxy to Redis whose cut drops its listener and every connection through it.
struct Cuttable {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    async fn to_redis() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:6379").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { port, task }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn cut(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The class names a server answers (a cached read), as `token` in `gym`.
async fn class_names(server: &Server, token: &str, gym: i64) -> Vec<String> {
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/schedule/classes", server.base))
        .bearer_auth(token)
        .header("X-Gym-ID", gym.to_string())
        .send()
        .await
        .expect("classes");
    let body: serde_json::Value = res.json().await.expect("json");
    body.as_array()
        .map(|l| l.iter().filter_map(|c| c["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// A gym with one class "Spinning", made through `server`: `(token, gym, class)`.
async fn gym_with_a_class(server: &Server) -> (String, i64, i64) {
    let token = token_of(server, &format!("owner-{}", rand_suffix()));
    let client = reqwest::Client::new();
    let gym: serde_json::Value = client
        .post(format!("{}/api/v1/gyms", server.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Relay"}))
        .send()
        .await
        .expect("gym")
        .json()
        .await
        .expect("json");
    let gym = gym["id"].as_i64().expect("gym id");
    let class: serde_json::Value = client
        .post(format!("{}/api/v1/schedule/classes", server.base))
        .bearer_auth(&token)
        .header("X-Gym-ID", gym.to_string())
        .json(&serde_json::json!({"name": "Spinning", "duration_minutes": 45, "max_capacity": 10}))
        .send()
        .await
        .expect("class")
        .json()
        .await
        .expect("json");
    (token, gym, class["id"].as_i64().expect("class id"))
}

async fn rename(server: &Server, token: &str, gym: i64, class: i64) {
    let res = reqwest::Client::new()
        .patch(format!("{}/api/v1/schedule/classes/{class}", server.base))
        .bearer_auth(token)
        .header("X-Gym-ID", gym.to_string())
        .json(&serde_json::json!({"name": "Renamed"}))
        .send()
        .await
        .expect("rename");
    assert_eq!(res.status(), 200, "the rename is acknowledged: committed");
}

/// Polls `server` until it serves the renamed class; answers how long that took.
async fn until_renamed(server: &Server, token: &str, gym: i64) -> Duration {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if class_names(server, token, gym).await == ["Renamed"] {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the renamed class was not served within 20 s (CACHE_TTL_SECONDS is 300)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_instance_was_killed_before_invalidating_reaches_the_other_on_postgres() {
    let db = PgDb::create();
    let url = db.url();
    let prefix = format!("relay-{}:", rand_suffix());
    let proxy = Cuttable::to_redis().await;
    let through = proxy.url();
    let a = Server::start(workdir(), &[("DATABASE_URL", &url), ("REDIS_URL", &through), ("CACHE_KEY_PREFIX", &prefix)]);
    let direct = "redis://127.0.0.1:6379/0";
    let b = Server::start(workdir(), &[("DATABASE_URL", &url), ("REDIS_URL", direct), ("CACHE_KEY_PREFIX", &prefix)]);
    let (token, gym, class) = gym_with_a_class(&a).await;
    assert_eq!(class_names(&b, &token, gym).await, ["Spinning"]);
    assert_eq!(class_names(&b, &token, gym).await, ["Spinning"], "cached on B");
    proxy.cut().await;
    rename(&a, &token, gym, class).await;
    let mut a = a;
    a.child.kill().expect("SIGKILL A before it can replay");
    let _ = a.child.wait();
    assert_eq!(class_names(&b, &token, gym).await, ["Spinning"], "the invalidation died with A");
    let took = until_renamed(&b, &token, gym).await;
    assert!(took < Duration::from_secs(10), "B's relay delivered A's fact in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_process_was_killed_before_invalidating_is_delivered_after_a_restart_on_sqlite() {
    let dir = workdir();
    let prefix = format!("relay-{}:", rand_suffix());
    let proxy = Cuttable::to_redis().await;
    let through = proxy.url();
    let mut a = Server::start(dir.clone(), &[("REDIS_URL", &through), ("CACHE_KEY_PREFIX", &prefix)]);
    let (token, gym, class) = gym_with_a_class(&a).await;
    assert_eq!(class_names(&a, &token, gym).await, ["Spinning"], "cached in Redis");
    proxy.cut().await;
    rename(&a, &token, gym, class).await;
    a.child.kill().expect("SIGKILL before it can replay");
    let _ = a.child.wait();
    // The same database, Redis reachable again: what Redis holds is the old list.
    let again = Server::start(dir, &[("REDIS_URL", "redis://127.0.0.1:6379/0"), ("CACHE_KEY_PREFIX", &prefix)]);
    let took = until_renamed(&again, &token, gym).await;
    assert!(took < Duration::from_secs(10), "the restarted relay delivered the fact in {took:?}");
    drop(again);
    drop(a);
}

/// Issue 20: a check-in acknowledged just before the process is killed (SIGKILL,
/// nothing flushed, nothing said) still reaches its webhook, from the outbox, once
/// an instance runs again; the receiver was not even up while the first one lived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_in_acknowledged_before_a_kill_reaches_its_webhook_after_a_restart() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = workdir();
    let demo = Demo::seed(&dir);
    let (owner, trainer, qr) =
        (demo.field("owner", "token: "), demo.field("trainer", "token: "), demo.field("member", "qr: "));
    let member: i64 = qr.trim_start_matches('U').split('_').next().and_then(|id| id.parse().ok()).expect("qr id");
    let gym = demo.gym();
    // A port nobody listens on while the first instance lives.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();

    let mut first = Server::start(dir.clone(), &[]);
    let client = reqwest::Client::new();
    let call = |base: &str, token: &str, path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}/api/v1{path}"))
            .bearer_auth(token.to_owned())
            .header("X-Gym-ID", gym.clone())
            .json(&body)
            .send()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    let hook = call(&first.base, &owner, "/webhooks", serde_json::json!({"url": url, "events": ["checkin.succeeded"]}))
        .await
        .expect("register");
    assert_eq!(hook.status(), 201);
    let scanned = call(&first.base, &trainer, "/attendance/check-in", serde_json::json!({"qr_code": qr}))
        .await
        .expect("check-in");
    assert_eq!(scanned.status(), 200);
    first.child.kill().expect("SIGKILL");
    let _ = first.child.wait();

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("receiver");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = conn.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    let _ = tx.send(body.to_owned());
                    let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await;
                    break;
                }
            }
        }
    });
    let _second = Server::start(dir, &[]);
    // Usually within two seconds; a kill during an attempt leaves the endpoint leased
    // for its 60 s, which bounds the wait.
    let body = tokio::time::timeout(Duration::from_secs(90), rx.recv()).await.expect("delivered").expect("body");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (&body["type"], &body["data"]["member"]),
        (&serde_json::json!("checkin.succeeded"), &serde_json::json!(member))
    );
}
