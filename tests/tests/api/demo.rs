//! Issue 23, `gymapi seed-demo` for a newcomer: its times are the API's (RFC 3339,
//! UTC, with the gym's wall clock beside them), its curl line targets the address the
//! server was started on, and the check-in it prints works as printed.

use gymapi_tests::{SECRET, both_backends};
use serde_json::Value;

/// The value between `start` and the next `end` in `text`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("{start:?} in:\n{text}")) + start.len();
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or_else(|| panic!("{end:?} after {start:?} in:\n{text}"))]
}

both_backends!(the_printed_check_in_works_against_a_server_on_another_port, |app| {
    let port = app.base.rsplit(':').next().expect("port").to_owned();
    assert_ne!(port, "8000", "the test needs a non-default port");
    // Bound to every interface, as in a container: the curl names loopback.
    let vars = [
        ("GYMAPI_ENV", "test".to_owned()),
        ("DATABASE_URL", app.db.url.clone()),
        ("AUTH_JWT_SECRET", SECRET.to_owned()),
        ("BIND_ADDR", format!("0.0.0.0:{port}")),
    ];
    let settings = infra::Settings::load_from(std::path::Path::new("/nonexistent"), |k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .expect("settings");
    let db = infra::db::connect(&settings).await.expect("connect");
    let printed = api::demo::seed(&settings, db).await.expect("seed-demo");

    // Every session time as the API writes it, the gym's wall clock beside it.
    let sessions: Vec<&str> = printed.lines().filter(|l| l.trim_start().starts_with("session")).collect();
    assert_eq!(sessions.len(), 3, "{printed}");
    for line in &sessions {
        let utc = between(line, "starts ", " (");
        let parsed = time::OffsetDateTime::parse(utc, &time::format_description::well_known::Rfc3339);
        assert!(parsed.is_ok() && utc.ends_with('Z'), "{line}");
        assert!(line.contains("in Europe/Madrid, the gym's time)"), "{line}");
    }
    assert!(!printed.contains("+00:00:00"), "no time in time's debug form:\n{printed}");

    // The printed curl, run as printed (its request, by reqwest).
    let url = between(&printed, "curl -s -X POST ", " \\");
    assert_eq!(url, format!("http://127.0.0.1:{port}/api/v1/attendance/check-in"));
    let token = between(&printed, "-H 'Authorization: Bearer ", "'");
    let gym = between(&printed, "-H 'X-Gym-ID: ", "'");
    let body = between(&printed, "-d '", "'");
    let answer = app
        .client
        .post(url)
        .bearer_auth(token)
        .header("X-Gym-ID", gym)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("the printed check-in");
    let status = answer.status();
    let json: Value = answer.json().await.expect("json");
    assert_eq!((status.as_u16(), &json["success"]), (200, &Value::Bool(true)), "{json}");
    assert!(printed.trim_end().ends_with(&format!("Next: the interactive API docs at http://127.0.0.1:{port}/docs, and docs/api.md for what GymAPI adds to the contract.")), "{printed}");
});
