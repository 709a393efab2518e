//! The operator's kit against the real thing: the alert rules of `deploy/` pass
//! `promtool check rules`, and a scrape of `/metrics` under load passes
//! `promtool check metrics` and holds every metric the rules and the dashboard use.

use std::io::Write;
use std::process::{Command, Stdio};

use gymapi_tests::{Backend, TestApp, now, send};
use reqwest::Method;
use serde_json::json;
use time::Duration;

fn promtool() -> Command {
    let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "promtool is not installed. It comes with Debian's prometheus package: \
         `apt-get install -y --no-install-recommends prometheus` (make test's set-up does it as root)."
    );
    Command::new("promtool")
}

fn deploy(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

#[test]
fn the_alert_rules_pass_promtool() {
    let out = promtool().args(["check", "rules"]).arg(deploy("prometheus/alerts.yml")).output().expect("promtool");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_dashboard_is_json_whose_queries_are_on_gymapi_metrics() {
    let text = std::fs::read_to_string(deploy("grafana/gymapi.json")).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let exprs: Vec<&str> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");
    for e in exprs {
        assert!(e.contains("gymapi_"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_under_load_passes_promtool_and_holds_every_metric_the_rules_use() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 10).await;
    app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let member = app.member(gym, &owner, "member").await;
    let (_, qr) = app.send_as(Method::GET, "/api/v1/attendance/my-qr", &member, gym).await;
    let scan = json!({"qr_code": qr["qr_code"]});
    for _ in 0..2 {
        // One success, then a refusal: both results are counted.
        app.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &scan).await;
    }
    let load = (0..40).map(|i| {
        let path = if i % 4 == 0 { "/api/v1/nowhere" } else { "/api/v1/schedule/classes" };
        send(app.call(Method::GET, path, &member.token, Some(gym)))
    });
    futures_util::future::join_all(load).await;
    let scrape = app.client.get(format!("{}/metrics", app.base)).send().await.expect("scrape");
    assert_eq!(scrape.status(), 200);
    let body = scrape.text().await.expect("text");
    // Every metric the alert rules and the dashboard query is in the scrape.
    let used = [deploy("prometheus/alerts.yml"), deploy("grafana/gymapi.json")]
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("deploy file"))
        .collect::<String>();
    let names: std::collections::BTreeSet<&str> = used
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("gymapi_") && w.len() > "gymapi_".len())
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        assert!(body.lines().any(|l| l.starts_with(name)), "{name} (used in deploy/) is not in the scrape");
    }
    for metric in [
        "gymapi_http_requests_total",
        "gymapi_http_request_duration_seconds_bucket",
        "gymapi_db_query_duration_seconds_bucket",
        "gymapi_cache_operations_total",
        "gymapi_checkins_total",
        "gymapi_db_pool_connections{state=\"max\"}",
        "gymapi_db_pool_connections{state=\"in_use\"}",
    ] {
        assert!(body.contains(metric), "{metric} is not in the scrape:\n{body}");
    }
    let mut check = promtool()
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("pipe the scrape");
    let out = check.wait_with_output().expect("promtool");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
