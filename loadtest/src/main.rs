//! `make bench`: goose scenarios against a running release `gymapi` whose database
//! `scripts/bench.sh` seeded in SQL (`loadtest seed-sql postgres|sqlite`, see
//! [`layout`]); prints one row per scenario, and one tab-separated `ROW` line each
//! for `scripts/bench.sh` to take medians of.
//!
//! Environment (set by `scripts/bench.sh`): `BENCH_URL` (the server, or several
//! instances' comma-separated), `BENCH_PID` (its process, or theirs, for CPU time), `BENCH_SECRET` (its HS256 secret), `BENCH_BACKEND`
//! (`postgres` or `sqlite`, a label and whether PostgreSQL and Redis CPU count),
//! `BENCH_COMMIT` (the commit measured), `BENCH_SECONDS` (per scenario, default 15),
//! `BENCH_USERS` (goose users, default 64), `BENCH_ONLY` (a comma-separated subset of
//! health, reads, spread, hot, named, mixed).

mod layout;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use layout::{HOT, NAMED, READS, SPREAD};
use loadtest::env;
use serde_json::{Value, json};

/// Tokens of the staff of each gym, by gym id, and of gym 1's members.
struct Bench {
    staff: Vec<String>,
    /// Gym 1's members (not its owner).
    readers: Vec<String>,
    future_sessions: Vec<i64>,
}

static BENCH: OnceLock<Bench> = OnceLock::new();

/// Every instance's base URL (`BENCH_URL`, comma-separated): each goose user stays
/// on one, as behind a load balancer that keeps a client's connection.
static INSTANCES: OnceLock<Vec<String>> = OnceLock::new();

async fn pick_instance(user: &mut GooseUser) -> TransactionResult {
    if let Some(bases) = INSTANCES.get().filter(|b| b.len() > 1) {
        user.set_base_url(&bases[user.weighted_users_index % bases.len()])?;
    }
    Ok(())
}
static NEXT_SPREAD: AtomicUsize = AtomicUsize::new(0);
static NEXT_HOT: AtomicUsize = AtomicUsize::new(0);
static NEXT_NAMED: AtomicUsize = AtomicUsize::new(0);

fn bench() -> &'static Bench {
    BENCH.get().expect("tokens made before any scenario runs")
}

fn token(secret: &str, i: i64) -> String {
    loadtest::token(secret, &layout::subject(i), 24 * 3600).expect("sign")
}

async fn send(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    (tok, gym): (&str, i64),
    body: Option<Value>,
    expect: u16,
) -> TransactionResult {
    let mut rb = user.get_request_builder(&method, path)?.bearer_auth(tok).header("X-Gym-ID", gym.to_string());
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let req = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(rb)
        .expect_status_code(expect)
        .build();
    user.request(req).await?;
    Ok(())
}

fn reader(user: &GooseUser) -> (&'static str, i64) {
    let b = bench();
    (&b.readers[user.weighted_users_index % b.readers.len()], READS.first_gym)
}

async fn classes(user: &mut GooseUser) -> TransactionResult {
    let who = reader(user);
    send(user, GooseMethod::Get, "/api/v1/schedule/classes", "classes", who, None, 200).await
}

async fn events(user: &mut GooseUser) -> TransactionResult {
    let who = reader(user);
    send(user, GooseMethod::Get, "/api/v1/events", "events", who, None, 200).await
}

async fn users_me(user: &mut GooseUser) -> TransactionResult {
    let who = reader(user);
    send(user, GooseMethod::Get, "/api/v1/users/me", "users/me", who, None, 200).await
}

async fn health(user: &mut GooseUser) -> TransactionResult {
    user.get_named("/health", "health").await?;
    Ok(())
}

fn desk(gym: i64) -> (&'static str, i64) {
    (&bench().staff[usize::try_from(gym).unwrap_or(0)], gym)
}

/// The desks of 50 gyms scan without `session_id`: scan `n` is member `n / 50` of gym
/// `n % 50`, booked (70 %) or walking in, once each.
async fn spread(user: &mut GooseUser) -> TransactionResult {
    let n = NEXT_SPREAD.fetch_add(1, Ordering::Relaxed) as i64;
    let (g, j) = (n % SPREAD.gyms, (n / SPREAD.gyms) % (SPREAD.members - 1) + 1);
    let body = json!({"qr_code": layout::qr(SPREAD.user(g, j))});
    send(
        user,
        GooseMethod::Post,
        "/api/v1/attendance/check-in",
        "check-in",
        desk(SPREAD.first_gym + g),
        Some(body),
        200,
    )
    .await
}

/// One gym's desk: every member walks into one session, then into the next.
async fn hot(user: &mut GooseUser) -> TransactionResult {
    let n = NEXT_HOT.fetch_add(1, Ordering::Relaxed) as i64;
    let (j, s) = (n % HOT.members, (n / HOT.members) as usize % HOT.window.len());
    let body = json!({"qr_code": layout::qr(HOT.user(0, j)), "session_id": HOT.session(0, s)});
    send(user, GooseMethod::Post, "/api/v1/attendance/check-in", "check-in", desk(HOT.first_gym), Some(body), 200).await
}

/// The desks of 10 gyms name the session: every (member, session) pair once,
/// spread over the gyms and their sessions.
async fn named(user: &mut GooseUser) -> TransactionResult {
    let n = NEXT_NAMED.fetch_add(1, Ordering::Relaxed) as i64;
    let (g, p) = (n % NAMED.gyms, n / NAMED.gyms);
    let w = NAMED.window.len() as i64;
    let (s, j) = ((p % w) as usize, (p / w) % NAMED.members);
    let body = json!({"qr_code": layout::qr(NAMED.user(g, j)), "session_id": NAMED.session(g, s)});
    send(user, GooseMethod::Post, "/api/v1/attendance/check-in", "check-in", desk(NAMED.first_gym + g), Some(body), 200)
        .await
}

/// Per goose user: a member of gym 1 books a place tomorrow and gives it back.
async fn book_and_cancel(user: &mut GooseUser) -> TransactionResult {
    let b = bench();
    let who = reader(user);
    let session = b.future_sessions[rand::random_range(0..b.future_sessions.len())];
    let path = format!("/api/v1/schedule/sessions/{session}/register");
    send(user, GooseMethod::Post, &path, "register", who, None, 201).await?;
    send(user, GooseMethod::Delete, &path, "unregister", who, None, 204).await
}

fn attack(users: usize, seconds: usize, host: &str) -> Result<GooseAttack, GooseError> {
    let mut config = GooseConfiguration::default();
    config.quiet = 1;
    GooseAttack::initialize_with_config(config)?
        .set_default(GooseDefault::Host, host)?
        .set_default(GooseDefault::Users, users)?
        .set_default(GooseDefault::IncreaseRate, "1000")?
        .set_default(GooseDefault::RunTime, seconds)?
        .set_default(GooseDefault::NoResetMetrics, false)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoErrorSummary, true)?
        .set_default(GooseDefault::NoTelnet, true)
        .map(|attack| *attack)
}

/// User + system CPU ticks of a process (`/proc/PID/stat`).
fn ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name: utime is the 14th field of the line, stime the 15th.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// CPU ticks of every process whose command is `comm` (all of PostgreSQL's
/// backends and helpers, or Redis).
fn ticks_of(comm: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())).map(str::to_owned))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm))
        .map(|pid| ticks(&pid))
        .sum()
}

/// Counters read around a scenario.
#[derive(Default, Clone, Copy)]
struct Sample {
    server: u64,
    postgres: u64,
    redis: u64,
    generator: u64,
    statements: f64,
    round_trips: f64,
    http: f64,
    batches: f64,
    batched: f64,
}

async fn sample(bases: &[String], pids: &[String]) -> Sample {
    let mut text = String::new();
    for base in bases {
        text += &reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("text");
    }
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Sample {
        server: pids.iter().map(|p| ticks(p)).sum(),
        postgres: ticks_of("postgres"),
        redis: ticks_of("redis-server"),
        generator: ticks("self"),
        statements: sum("gymapi_db_query_duration_seconds_count"),
        round_trips: sum("gymapi_cache_round_trips_total"),
        http: sum("gymapi_http_requests_total"),
        batches: sum("gymapi_checkin_batch_size_count"),
        batched: sum("gymapi_checkin_batch_size_sum"),
    }
}

struct Row {
    name: &'static str,
    rps: f64,
    p50: f64,
    p99: f64,
    errors: usize,
    server_us: f64,
    postgres_us: Option<f64>,
    redis_us: Option<f64>,
    generator_us: f64,
    statements: f64,
    round_trips: f64,
    batch: f64,
}

async fn run(name: &'static str, scenario: Scenario, cfg: &Config) -> Row {
    let before = sample(&cfg.bases, &cfg.pids).await;
    let scenario = scenario.register_transaction(transaction!(pick_instance).set_on_start());
    let metrics = attack(cfg.users, cfg.seconds, &cfg.base)
        .expect("goose")
        .register_scenario(scenario)
        .execute()
        .await
        .expect("attack");
    let after = sample(&cfg.bases, &cfg.pids).await;
    let (mut count, mut errors, mut p) = (0usize, 0usize, [0u64; 2]);
    for agg in metrics.requests.values() {
        count += agg.raw_data.counter;
        errors += agg.fail_count;
        for (slot, q) in p.iter_mut().zip([0.50_f32, 0.99]) {
            *slot = (*slot).max(agg.raw_data.percentile_us(q));
        }
    }
    // Requests the servers counted during the run, less the first /metrics scrapes.
    let served = (after.http - before.http - cfg.bases.len() as f64).max(1.0);
    // Ticks are 1/100 s (USER_HZ) on Linux.
    let per_request = |ticks: u64| ticks as f64 * 10_000.0 / served;
    let (pg, redis) = (cfg.postgres, cfg.postgres);
    Row {
        name,
        rps: count as f64 / metrics.duration.max(1) as f64,
        p50: p[0] as f64 / 1000.0,
        p99: p[1] as f64 / 1000.0,
        errors,
        server_us: per_request(after.server - before.server),
        postgres_us: pg.then(|| per_request(after.postgres.saturating_sub(before.postgres))),
        redis_us: redis.then(|| per_request(after.redis.saturating_sub(before.redis))),
        generator_us: per_request(after.generator - before.generator),
        statements: (after.statements - before.statements) / served,
        round_trips: (after.round_trips - before.round_trips) / served,
        batch: if after.batches > before.batches {
            (after.batched - before.batched) / (after.batches - before.batches)
        } else {
            0.0
        },
    }
}

/// After the runs: every seeded session's `registered_count` equals its registered
/// and attended rows, and there is one attended row per successful check-in.
async fn verify(cfg: &Config, checkins_ok: usize) -> Result<(), String> {
    let client = reqwest::Client::new();
    let get = |path: String, gym: i64| {
        let client = &client;
        let base = &cfg.base;
        async move {
            let res = client
                .get(format!("{base}{path}"))
                .bearer_auth(desk(gym).0)
                .header("X-Gym-ID", gym.to_string())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = res.status();
            let body: Value = res.json().await.map_err(|e| e.to_string())?;
            if status.is_success() { Ok(body) } else { Err(format!("{path}: {status} {body}")) }
        }
    };
    let mut sessions: Vec<(i64, i64)> = layout::window_sessions();
    sessions.extend(layout::future_sessions().into_iter().map(|s| (READS.first_gym, s)));
    let mut attended = 0;
    for (gym, s) in sessions {
        let (mut holding, mut skip) = (0_i64, 0);
        loop {
            let page = get(format!("/api/v1/schedule/sessions/{s}/participants?limit=500&skip={skip}"), gym).await?;
            let rows = page.as_array().cloned().unwrap_or_default();
            for p in &rows {
                let status = p["status"].as_str().unwrap_or_default();
                holding += i64::from(status == "registered" || status == "attended");
                attended += usize::from(status == "attended");
            }
            skip += rows.len();
            if rows.len() < 500 {
                break;
            }
        }
        let session = get(format!("/api/v1/schedule/sessions/{s}"), gym).await?;
        let count = session["registered_count"].as_i64().unwrap_or(-1);
        if count != holding {
            return Err(format!("session {s} of gym {gym}: registered_count {count}, {holding} rows hold a place"));
        }
    }
    if attended != checkins_ok {
        return Err(format!("{attended} attended rows for {checkins_ok} successful check-ins"));
    }
    Ok(())
}

/// Successful check-ins as the server counted them.
async fn checkin_successes(bases: &[String]) -> usize {
    let mut total = 0.0;
    for base in bases {
        let text = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("text");
        total += text
            .lines()
            .filter(|l| l.starts_with("gymapi_checkins_total{result=\"success\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    total as usize
}

struct Config {
    /// The first instance (seeded reads and checks go there).
    base: String,
    /// Every instance, and its server's pid.
    bases: Vec<String>,
    pids: Vec<String>,
    backend: String,
    commit: String,
    seconds: usize,
    users: usize,
    /// PostgreSQL and Redis serve this run (their CPU is counted).
    postgres: bool,
}

/// `loadtest receiver PORT`: a webhook receiver for `BENCH_WEBHOOK=1`, answering
/// every request 204 on kept-alive connections, as cheaply as a receiver can, so the
/// bench measures what delivering costs the server, not what receiving costs.
async fn receiver(port: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
        eprintln!("receiver: cannot listen on 127.0.0.1:{port}");
        return;
    };
    while let Ok((mut conn, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(8192);
            let mut chunk = [0u8; 8192];
            loop {
                // Answer every complete request in the buffer, then read more.
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        break;
                    }
                    buf.drain(..end + 4 + length);
                    if conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.is_err() {
                        return;
                    }
                }
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("seed-sql") {
        println!("{}", layout::seed_sql(args.get(2).map(String::as_str) != Some("sqlite")));
        return;
    }
    if args.get(1).map(String::as_str) == Some("receiver") {
        let port = args.get(2).and_then(|p| p.parse::<u16>().ok()).unwrap_or(0);
        receiver(port).await;
        return;
    }
    let backend = env("BENCH_BACKEND", "postgres");
    let bases: Vec<String> = env("BENCH_URL", "http://127.0.0.1:8080").split(',').map(str::to_owned).collect();
    let _ = INSTANCES.set(bases.clone());
    let cfg = Config {
        base: bases[0].clone(),
        bases,
        pids: env("BENCH_PID", "0").split(',').map(str::to_owned).collect(),
        postgres: backend == "postgres",
        backend,
        commit: env("BENCH_COMMIT", "unknown"),
        seconds: env("BENCH_SECONDS", "15").parse().unwrap_or(15),
        users: env("BENCH_USERS", "64").parse().unwrap_or(64),
    };
    let secret = env("BENCH_SECRET", "");
    let only = env("BENCH_ONLY", "health,reads,spread,hot,named,mixed");
    let wanted = |name: &str| only.split(',').any(|s| s.trim() == name);

    let last_gym = NAMED.first_gym + NAMED.gyms;
    let mut staff = vec![String::new(); usize::try_from(last_gym).unwrap_or(0)];
    for group in [READS, SPREAD, HOT, NAMED] {
        for g in 0..group.gyms {
            staff[usize::try_from(group.first_gym + g).unwrap_or(0)] = token(&secret, group.user(g, 0));
        }
    }
    let readers = (1..READS.members).map(|j| token(&secret, READS.user(0, j))).collect();
    let _ = BENCH.set(Bench { staff, readers, future_sessions: layout::future_sessions() });
    // Warm what the read mix reads (steady state: cached, users known).
    let warm = attack(8, 2, &cfg.base).expect("goose").register_scenario(
        scenario!("warm")
            .register_transaction(transaction!(classes))
            .register_transaction(transaction!(events))
            .register_transaction(transaction!(users_me)),
    );
    let _ = warm.execute().await;

    let weighted = |t: Transaction, w: usize| t.set_weight(w).expect("weight");
    let mut rows = Vec::new();
    if wanted("health") {
        eprintln!("health…");
        rows.push(run("/health (ceiling)", scenario!("health").register_transaction(transaction!(health)), &cfg).await);
    }
    if wanted("reads") {
        eprintln!("read mix…");
        let reads = scenario!("reads")
            .register_transaction(weighted(transaction!(classes), 3))
            .register_transaction(weighted(transaction!(events), 2))
            .register_transaction(weighted(transaction!(users_me), 1));
        rows.push(run("read mix 3:2:1", reads, &cfg).await);
    }
    if wanted("spread") {
        eprintln!("spread…");
        rows.push(run("check-in spread", scenario!("spread").register_transaction(transaction!(spread)), &cfg).await);
    }
    if wanted("hot") {
        eprintln!("hot session…");
        rows.push(run("check-in hot session", scenario!("hot").register_transaction(transaction!(hot)), &cfg).await);
    }
    if wanted("named") {
        eprintln!("named…");
        rows.push(run("check-in named", scenario!("named").register_transaction(transaction!(named)), &cfg).await);
    }
    if wanted("mixed") {
        eprintln!("mixed day…");
        let mixed = scenario!("mixed")
            .register_transaction(weighted(transaction!(book_and_cancel), 1))
            .register_transaction(weighted(transaction!(named), 2))
            .register_transaction(weighted(transaction!(classes), 3))
            .register_transaction(weighted(transaction!(events), 2));
        rows.push(run("mixed day", mixed, &cfg).await);
    }

    let opt = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.0}"));
    println!();
    println!(
        "| {} at {} | req/s | P50 ms | P99 ms | errors | server µs/req | PostgreSQL µs/req | Redis µs/req | \
         generator µs/req | statements/req | Redis round trips/req | check-ins per batch |",
        cfg.backend, cfg.commit
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} |",
            r.name,
            r.rps,
            r.p50,
            r.p99,
            r.errors,
            r.server_us,
            opt(r.postgres_us),
            opt(r.redis_us),
            r.generator_us,
            r.statements,
            r.round_trips,
            r.batch
        );
    }
    for r in &rows {
        // For scripts/bench.sh: backend, scenario, commit, then the figures.
        println!(
            "ROW\t{}\t{}\t{}\t{:.0}\t{:.2}\t{:.2}\t{}\t{:.1}\t{}\t{}\t{:.1}\t{:.2}\t{:.2}\t{:.1}",
            cfg.backend,
            r.name,
            cfg.commit,
            r.rps,
            r.p50,
            r.p99,
            r.errors,
            r.server_us,
            r.postgres_us.map_or("-".to_owned(), |v| format!("{v:.1}")),
            r.redis_us.map_or("-".to_owned(), |v| format!("{v:.1}")),
            r.generator_us,
            r.statements,
            r.round_trips,
            r.batch
        );
    }
    match verify(&cfg, checkin_successes(&cfg.bases).await).await {
        Ok(()) => println!("{}: every registered_count equals its rows; one attended row per success", cfg.backend),
        Err(e) => {
            println!("VIOLATION on {}: {e}", cfg.backend);
            std::process::exit(1);
        }
    }
    webhook_attempts(&cfg).await;
}

/// With `BENCH_WEBHOOK=1`: what the webhooks did while the scenarios ran, a few
/// seconds after the last request (deliveries trail the check-ins by design).
async fn webhook_attempts(cfg: &Config) {
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let Ok(res) = reqwest::get(format!("{}/metrics", cfg.base)).await else { return };
    let text = res.text().await.unwrap_or_default();
    let of = |result: &str| -> f64 {
        let name = format!("gymapi_webhook_attempts_total{{result=\"{result}\"}}");
        text.lines().filter(|l| l.starts_with(&name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    let (delivered, retry, failed) = (of("delivered"), of("retry"), of("failed"));
    if delivered + retry + failed > 0.0 {
        println!(
            "{}: webhooks delivered {delivered:.0}, retried {retry:.0}, failed {failed:.0} for {} successful check-ins",
            cfg.backend,
            checkin_successes(std::slice::from_ref(&cfg.base)).await
        );
    }
}
