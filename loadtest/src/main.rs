//! `make bench`: seeds fresh data into a running release `gymapi` and measures
//! the scenarios of the performance issue with goose, printing one table.
//!
//! Environment (set by `scripts/bench.sh`): `BENCH_URL` (the server),
//! `BENCH_PID` (its process, for CPU time and memory), `BENCH_SECRET` (its HS256
//! secret), `BENCH_SECONDS` (per scenario, default 20), `BENCH_USERS` (default 64),
//! `BENCH_MEMBERS` (default 4000).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use goose::config::GooseConfiguration;
use goose::prelude::*;
use loadtest::{env, rfc3339};
use serde_json::{Value, json};

/// What the scenarios need, seeded once.
struct Bench {
    gym: String,
    staff: String,
    reader: String,
    /// (member token, QR code) per member.
    members: Vec<(String, String)>,
    /// Sessions starting inside the check-in window.
    window_sessions: Vec<i64>,
    /// Bookable sessions tomorrow.
    future_sessions: Vec<i64>,
}

static BENCH: OnceLock<Bench> = OnceLock::new();
static NEXT_CHECKIN: AtomicUsize = AtomicUsize::new(0);

fn bench() -> &'static Bench {
    BENCH.get().expect("seeded before any scenario runs")
}

fn token(secret: &str, sub: &str) -> String {
    loadtest::token(secret, sub, 24 * 3600).expect("sign")
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    tok: &str,
    gym: Option<&str>,
    body: Option<Value>,
) -> Value {
    let mut rb = client.request(method, format!("{base}{path}")).bearer_auth(tok);
    if let Some(g) = gym {
        rb = rb.header("X-Gym-ID", g);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let res = rb.send().await.expect("seed request");
    let status = res.status();
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "seeding {path}: {status} {v}");
    v
}

/// A gym, `members` members with QR codes, 30 sessions inside the check-in window
/// and 40 bookable sessions tomorrow — all through the public API.
async fn seed(base: &str, secret: &str, members: usize) -> Bench {
    let client = reqwest::Client::new();
    let run = rand::random::<u32>();
    let owner = token(secret, &format!("bench-owner-{run}"));
    let gym =
        call(&client, base, reqwest::Method::POST, "/api/v1/gyms", &owner, None, Some(json!({"name": "Bench Gym"})))
            .await;
    let gym = gym["id"].as_i64().expect("gym id").to_string();
    let g = Some(gym.as_str());
    let class = call(
        &client,
        base,
        reqwest::Method::POST,
        "/api/v1/schedule/classes",
        &owner,
        g,
        Some(json!({"name": "Spin", "duration_minutes": 45, "max_capacity": 1000})),
    )
    .await;
    let class = class["id"].as_i64().expect("class id");
    for i in 0..5 {
        let body = json!({"name": format!("Class {i}"), "duration_minutes": 60, "max_capacity": 50});
        call(&client, base, reqwest::Method::POST, "/api/v1/schedule/classes", &owner, g, Some(body)).await;
    }
    let now = time::OffsetDateTime::now_utc();
    for i in 0..5 {
        let start = now + time::Duration::days(1) + time::Duration::hours(i);
        let end = start + time::Duration::hours(1);
        let body = json!({"title": format!("Event {i}"), "start_time": rfc3339(start), "end_time": rfc3339(end)});
        call(&client, base, reqwest::Method::POST, "/api/v1/events", &owner, g, Some(body)).await;
    }
    let session = async |start: time::OffsetDateTime| {
        let body = json!({"class_id": class, "start_time": rfc3339(start)});
        let s = call(&client, base, reqwest::Method::POST, "/api/v1/schedule/sessions", &owner, g, Some(body)).await;
        s["id"].as_i64().expect("session id")
    };
    let mut window_sessions = Vec::new();
    for i in 0..30_i64 {
        window_sessions.push(session(now + time::Duration::minutes(i - 15)).await);
    }
    let mut future_sessions = Vec::new();
    for i in 0..40_i64 {
        future_sessions.push(session(now + time::Duration::days(1) + time::Duration::minutes(30 * i)).await);
    }
    let staff = owner.clone();
    // Members in parallel batches: provision, join, fetch the QR code.
    let mut out = Vec::with_capacity(members);
    for chunk in (0..members).collect::<Vec<_>>().chunks(64) {
        let batch = chunk.iter().map(|i| {
            let (client, owner, gym) = (client.clone(), owner.clone(), gym.clone());
            let tok = token(secret, &format!("bench-member-{run}-{i}"));
            async move {
                let me = call(&client, base, reqwest::Method::GET, "/api/v1/users/me", &tok, None, None).await;
                let body = json!({"user_id": me["id"], "role": "member"});
                call(&client, base, reqwest::Method::POST, "/api/v1/members", &owner, Some(&gym), Some(body)).await;
                let qr =
                    call(&client, base, reqwest::Method::GET, "/api/v1/attendance/my-qr", &tok, Some(&gym), None).await;
                (tok, qr["qr_code"].as_str().expect("qr").to_owned())
            }
        });
        out.extend(futures_util::future::join_all(batch).await);
    }
    let reader = out.first().map(|m| m.0.clone()).expect("a member");
    Bench { gym, staff, reader, members: out, window_sessions, future_sessions }
}

async fn send(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &str,
    tok: &str,
    body: Option<Value>,
    expect: u16,
) -> TransactionResult {
    let mut rb = user.get_request_builder(&method, path)?.bearer_auth(tok).header("X-Gym-ID", &bench().gym);
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

async fn classes(user: &mut GooseUser) -> TransactionResult {
    send(user, GooseMethod::Get, "/api/v1/schedule/classes", "classes", &bench().reader, None, 200).await
}

async fn events(user: &mut GooseUser) -> TransactionResult {
    send(user, GooseMethod::Get, "/api/v1/events", "events", &bench().reader, None, 200).await
}

async fn users_me(user: &mut GooseUser) -> TransactionResult {
    let mut rb = user.get_request_builder(&GooseMethod::Get, "/api/v1/users/me")?.bearer_auth(&bench().reader);
    rb = rb.header("Accept", "application/json");
    let req = GooseRequest::builder().path("/api/v1/users/me").name("users/me").set_request_builder(rb).build();
    user.request(req).await?;
    Ok(())
}

async fn health(user: &mut GooseUser) -> TransactionResult {
    user.get_named("/health", "health").await?;
    Ok(())
}

/// A real QR of a distinct (member, session) pair every time: every request is a success path.
async fn check_in(user: &mut GooseUser) -> TransactionResult {
    let b = bench();
    let n = NEXT_CHECKIN.fetch_add(1, Ordering::Relaxed);
    let (member, session) = (n % b.members.len(), (n / b.members.len()) % b.window_sessions.len());
    let body = json!({"qr_code": b.members[member].1, "session_id": b.window_sessions[session]});
    send(user, GooseMethod::Post, "/api/v1/attendance/check-in", "check-in", &b.staff, Some(body), 200).await
}

/// Per goose user: its own member books a place tomorrow, gives it back, reads.
async fn book_and_cancel(user: &mut GooseUser) -> TransactionResult {
    let b = bench();
    let i = user.weighted_users_index;
    let member = &b.members[b.members.len() - 1 - (i % b.members.len())].0;
    let session = b.future_sessions[rand::random_range(0..b.future_sessions.len())];
    let path = format!("/api/v1/schedule/sessions/{session}/register");
    send(user, GooseMethod::Post, &path, "register", member, None, 201).await?;
    send(user, GooseMethod::Delete, &path, "unregister", member, None, 204).await
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

/// Server-side counters read around a scenario.
#[derive(Default, Clone, Copy)]
struct Server {
    cpu_ticks: u64,
    db_ops: f64,
    cache_ops: f64,
    http: f64,
}

fn proc_stat(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: utime is the 14th field, stime the 15th.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn peak_rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn sample(base: &str, pid: &str) -> Server {
    let text = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("text");
    let sum = |prefix: &str| -> f64 {
        text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    Server {
        cpu_ticks: proc_stat(pid),
        db_ops: sum("gymapi_db_query_duration_seconds_count"),
        cache_ops: sum("gymapi_cache_operations_total"),
        http: sum("gymapi_http_requests_total"),
    }
}

struct Row {
    name: &'static str,
    rps: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    errors: usize,
    db_per_req: f64,
    cache_per_req: f64,
    cpu_us_per_req: f64,
}

async fn run(name: &'static str, scenario: Scenario, users: usize, seconds: usize, base: &str, pid: &str) -> Row {
    let before = sample(base, pid).await;
    let metrics =
        attack(users, seconds, base).expect("goose").register_scenario(scenario).execute().await.expect("attack");
    let after = sample(base, pid).await;
    let (mut count, mut errors, mut p) = (0usize, 0usize, [0u64; 3]);
    for agg in metrics.requests.values() {
        count += agg.raw_data.counter;
        errors += agg.fail_count;
        for (slot, q) in p.iter_mut().zip([0.50_f32, 0.95, 0.99]) {
            *slot = (*slot).max(agg.raw_data.percentile_us(q));
        }
    }
    // Requests the server counted during the run, minus the two /metrics scrapes.
    let served = (after.http - before.http - 1.0).max(1.0);
    let ticks_per_sec = 100.0;
    Row {
        name,
        rps: count as f64 / metrics.duration.max(1) as f64,
        p50: p[0] as f64 / 1000.0,
        p95: p[1] as f64 / 1000.0,
        p99: p[2] as f64 / 1000.0,
        errors,
        db_per_req: (after.db_ops - before.db_ops) / served,
        cache_per_req: (after.cache_ops - before.cache_ops) / served,
        cpu_us_per_req: (after.cpu_ticks - before.cpu_ticks) as f64 / ticks_per_sec * 1e6 / served,
    }
}

/// After the mixed day: no session over capacity, counts matching rows, and one
/// attended row per successful check-in.
async fn verify(base: &str, checkins_ok: usize) -> Result<(), String> {
    let b = bench();
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = &client;
        async move { call(client, base, reqwest::Method::GET, &path, &b.staff, Some(&b.gym), None).await }
    };
    // Every participation of a session, page by page (lists are paged, at most 500 a page).
    let participants = |s: i64| {
        let get = &get;
        async move {
            let mut all = Vec::new();
            loop {
                let page =
                    get(format!("/api/v1/schedule/sessions/{s}/participants?limit=500&skip={}", all.len())).await;
                let rows = page.as_array().cloned().unwrap_or_default();
                let last = rows.len() < 500;
                all.extend(rows);
                if last {
                    return Value::Array(all);
                }
            }
        }
    };
    let count = |parts: &Value, status: &str| {
        parts.as_array().map_or(0, |p| p.iter().filter(|p| p["status"] == status).count())
    };
    for &s in &b.future_sessions {
        let session = get(format!("/api/v1/schedule/sessions/{s}")).await;
        // A place is held by a registered or an attended participation.
        let parts = participants(s).await;
        let registered = (count(&parts, "registered") + count(&parts, "attended")) as i64;
        let (booked, cap) =
            (session["registered_count"].as_i64().unwrap_or(-1), session["capacity"].as_i64().unwrap_or(0));
        if booked > cap || booked != registered {
            return Err(format!(
                "session {s}: registered_count {booked}, capacity {cap}, registered rows {registered}"
            ));
        }
    }
    let mut attended = 0;
    for &s in &b.window_sessions {
        attended += count(&participants(s).await, "attended");
    }
    if attended != checkins_ok {
        return Err(format!("{attended} attended rows for {checkins_ok} successful check-ins"));
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let base = env("BENCH_URL", "http://127.0.0.1:8080");
    let pid = env("BENCH_PID", "0");
    let secret = env("BENCH_SECRET", "");
    let seconds: usize = env("BENCH_SECONDS", "20").parse().unwrap_or(20);
    let users: usize = env("BENCH_USERS", "64").parse().unwrap_or(64);
    let members: usize = env("BENCH_MEMBERS", "4000").parse().unwrap_or(4000);
    // BENCH_ONLY=checkin (or health, reads, mixed; comma-separated) runs a subset, e.g. to profile one.
    let only = env("BENCH_ONLY", "health,reads,checkin,mixed");
    let wanted = |name: &str| only.split(',').any(|s| s.trim() == name);

    eprintln!("seeding {members} members…");
    let data = seed(&base, &secret, members).await;
    let _ = BENCH.set(data);
    // Warm the caches the read scenario relies on (steady state).
    let warm = attack(8, 2, &base).expect("goose").register_scenario(
        scenario!("warm")
            .register_transaction(transaction!(classes))
            .register_transaction(transaction!(events))
            .register_transaction(transaction!(users_me)),
    );
    let _ = warm.execute().await;

    let mut rows = Vec::new();
    if wanted("health") {
        eprintln!("health…");
        let health = scenario!("health").register_transaction(transaction!(health));
        rows.push(run("/health (ceiling)", health, users, seconds, &base, &pid).await);
    }
    if wanted("reads") {
        eprintln!("read mix…");
        let reads = scenario!("reads")
            .register_transaction(transaction!(classes).set_weight(3).expect("weight"))
            .register_transaction(transaction!(events).set_weight(2).expect("weight"))
            .register_transaction(transaction!(users_me).set_weight(1).expect("weight"));
        rows.push(run("read mix 3:2:1", reads, users, seconds, &base, &pid).await);
    }
    if wanted("checkin") {
        eprintln!("check-in…");
        let checkin = scenario!("checkin").register_transaction(transaction!(check_in));
        rows.push(run("check-in", checkin, users, seconds, &base, &pid).await);
    }
    if wanted("mixed") {
        eprintln!("mixed day…");
        let mixed = scenario!("mixed")
            .register_transaction(transaction!(book_and_cancel).set_weight(1).expect("weight"))
            .register_transaction(transaction!(check_in).set_weight(2).expect("weight"))
            .register_transaction(transaction!(classes).set_weight(3).expect("weight"))
            .register_transaction(transaction!(events).set_weight(2).expect("weight"));
        rows.push(run("mixed day", mixed, users, seconds, &base, &pid).await);
    }

    println!();
    println!(
        "| scenario | req/s | P50 ms | P95 ms | P99 ms | errors | DB ops/req | cache ops/req | server CPU µs/req |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {:.0} |",
            r.name, r.rps, r.p50, r.p95, r.p99, r.errors, r.db_per_req, r.cache_per_req, r.cpu_us_per_req
        );
    }
    println!();
    println!("peak resident memory of the server: {} MiB", peak_rss_kib(&pid) / 1024);
    println!("check-ins issued: {}", NEXT_CHECKIN.load(Ordering::Relaxed));
    match verify(&base, count_checkin_successes(&base).await).await {
        Ok(()) => println!("after the mixed day: no capacity or exactly-once violation"),
        Err(e) => {
            println!("VIOLATION after the mixed day: {e}");
            std::process::exit(1);
        }
    }
}

/// Successful check-ins as the server counted them.
async fn count_checkin_successes(base: &str) -> usize {
    let text = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with("gymapi_checkins_total{result=\"success\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}
