//! Issue 19: a member's calendar feed, public at an unguessable URL, read back by an
//! independent RFC 5545 parser (Python's `icalendar`).

use std::path::PathBuf;
use std::process::Command;

use gymapi_tests::{TestApp, assert_error, both_backends, send, session_url};
use reqwest::Method;
use serde_json::{Value, json};
use time::macros::datetime;

/// A Python with `icalendar`, in a virtualenv of the tests' own (made on first use).
fn python_with_icalendar() -> PathBuf {
    // The tests of both backends run at once: one makes the virtualenv, the other waits.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".to_owned());
    let venv = PathBuf::from(home).join(".cache/gymapi-ical-venv");
    let python = venv.join("bin/python");
    let ready =
        |p: &PathBuf| Command::new(p).args(["-c", "import icalendar"]).output().is_ok_and(|o| o.status.success());
    if !ready(&python) {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "python3 -m venv failed: install Python 3 with venv (apt-get install python3-venv)"
        );
        let pip = Command::new(venv.join("bin/pip")).args(["install", "-q", "icalendar==6.*"]).status();
        assert!(
            pip.is_ok_and(|s| s.success()) && ready(&python),
            "installing Python's icalendar from PyPI into {} failed: run `{}/bin/pip install icalendar`",
            venv.display(),
            venv.display()
        );
    }
    python
}

/// The events of a feed as the independent parser reads them: uid, summary, start
/// (ISO 8601 with its offset), its zone, status.
fn parse(ics: &str) -> Vec<Value> {
    let script = r#"
import json, sys, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.read())
out = []
for e in cal.walk("VEVENT"):
    start = e.decoded("DTSTART")
    out.append({"uid": str(e["UID"]), "summary": str(e["SUMMARY"]), "start": start.isoformat(),
                "zone": str(start.tzinfo), "status": str(e.get("STATUS")), "stamp": e.decoded("DTSTAMP").isoformat()})
print(json.dumps(out))
"#;
    let mut child = Command::new(python_with_icalendar())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), ics.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("parsed");
    assert!(out.status.success(), "icalendar refused the feed:\n{ics}");
    serde_json::from_slice(&out.stdout).expect("json")
}

async fn fetch(app: &TestApp, url: &str, etag: Option<&str>) -> (u16, String, Option<String>) {
    let path = url.split_once("/api/v1/").map(|(_, p)| format!("/api/v1/{p}")).expect("an API URL");
    let mut rb = app.req(Method::GET, &path);
    if let Some(tag) = etag {
        rb = rb.header("If-None-Match", tag);
    }
    let res = rb.send().await.expect("sent");
    let status = res.status().as_u16();
    let tag = res.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, res.text().await.expect("body"), tag)
}

both_backends!(a_members_feed_lists_their_sessions_on_the_gyms_clock_with_cancellations, |app| {
    app.clock.set(datetime!(2026-01-01 00:00 UTC));
    let (owner, gym) = app.gym().await;
    let zone = json!({"timezone": "Europe/Madrid"});
    assert_eq!(app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &zone).await.0, 200);
    let member = app.member(gym, &owner, "member").await;
    let other = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 5).await;
    let winter = app.session_at(gym, &owner, class, datetime!(2026-03-16 08:00 UTC)).await;
    let summer = app.session_at(gym, &owner, class, datetime!(2026-03-30 07:00 UTC)).await;
    let later = app.session_at(gym, &owner, class, datetime!(2026-04-01 07:00 UTC)).await;
    for s in [&winter, &summer] {
        assert_eq!(app.send_as(Method::POST, &session_url(s, "register"), &member, gym).await.0, 201);
    }
    assert_eq!(app.send_as(Method::POST, &session_url(&summer, "cancel"), &owner, gym).await.0, 200);

    let (status, cal) = app.send_as(Method::GET, "/api/v1/attendance/calendar", &member, gym).await;
    assert_eq!(status, 200, "{cal}");
    let token = cal["token"].as_str().expect("token").to_owned();
    let secret = token.strip_prefix(&format!("{gym}-")).expect("the gym, then the secret");
    assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let url = cal["url"].as_str().expect("url").to_owned();
    assert!(url.ends_with(&format!("/api/v1/calendar/{token}.ics")), "{url}");
    let (_, again) = app.send_as(Method::GET, "/api/v1/attendance/calendar", &member, gym).await;
    assert_eq!(again["token"], cal["token"], "made once");

    let (status, ics, etag) = fetch(&app, &url, None).await;
    assert_eq!(status, 200, "{ics}");
    let events = parse(&ics);
    assert_eq!(events.len(), 2, "{ics}");
    let uid = |s: &Value| format!("session-{gym}-{}@gymapi", s["id"]);
    assert_eq!(
        (&events[0]["uid"], &events[0]["start"], &events[0]["zone"], &events[0]["status"]),
        (&json!(uid(&winter)), &json!("2026-03-16T09:00:00+01:00"), &json!("Europe/Madrid"), &json!("CONFIRMED"))
    );
    assert_eq!(
        (&events[1]["uid"], &events[1]["start"], &events[1]["status"]),
        (&json!(uid(&summer)), &json!("2026-03-30T09:00:00+02:00"), &json!("CANCELLED")),
        "the gym's cancellation is struck, on the summer clock"
    );
    assert_eq!(events[0]["summary"], "Spinning");

    // Polling: the same feed is 304, a change is a new body and tag with the same UIDs.
    let etag = etag.expect("an ETag");
    let (status, body, _) = fetch(&app, &url, Some(&etag)).await;
    assert_eq!((status, body.as_str()), (304, ""));
    assert_eq!(app.send_as(Method::POST, &session_url(&later, "register"), &member, gym).await.0, 201);
    let (status, ics, tag) = fetch(&app, &url, Some(&etag)).await;
    assert_eq!(status, 200);
    assert_ne!(tag.as_deref(), Some(etag.as_str()));
    let again = parse(&ics);
    assert_eq!(again.len(), 3);
    assert_eq!((&again[0]["uid"], &again[0]["stamp"]), (&events[0]["uid"], &events[0]["stamp"]), "stable across polls");

    // Another member's feed is theirs alone; rotation kills the old URL.
    let (_, theirs) = app.send_as(Method::GET, "/api/v1/attendance/calendar", &other, gym).await;
    assert_ne!(theirs["token"], cal["token"]);
    let (status, ics, _) = fetch(&app, theirs["url"].as_str().expect("url"), None).await;
    assert_eq!((status, parse(&ics).len()), (200, 0));
    let (status, rotated) = app.send_as(Method::POST, "/api/v1/attendance/calendar/rotate", &member, gym).await;
    assert_eq!(status, 200);
    assert_ne!(rotated["token"], cal["token"]);
    assert_eq!(fetch(&app, &url, None).await.0, 404, "the old URL is dead");
    assert_eq!(fetch(&app, rotated["url"].as_str().expect("url"), None).await.0, 200);
    for junk in [
        "/api/v1/calendar/zzz.ics".to_owned(),
        format!("/api/v1/calendar/{}", &token),
        format!("/api/v1/calendar/{}.ics", token.to_uppercase()),
        format!("/api/v1/calendar/{secret}.ics"),
        format!("/api/v1/calendar/0{token}.ics"),
        format!("/api/v1/calendar/{}-{secret}.ics", gym + 1),
        "/api/v1/calendar/.ics".to_owned(),
    ] {
        assert_error(&send(app.req(Method::GET, &junk)).await, 404, "not_found");
    }
    let stranger = app.user("stranger").await;
    assert_error(
        &send(app.call(Method::GET, "/api/v1/attendance/calendar", &stranger.token, Some(gym))).await,
        403,
        "not_a_member",
    );
});

/// First uses at once, on two instances, make one token: every caller's URL works.
async fn first_uses_at_once_make_one_token(backend: gymapi_tests::Backend) {
    let (a, b) = TestApp::pair(backend).await;
    let (owner, gym) = a.gym().await;
    let member = a.member(gym, &owner, "member").await;
    let asks = futures_util::future::join_all((0..10).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.send_as(Method::GET, "/api/v1/attendance/calendar", &member, gym)
    }))
    .await;
    assert!(asks.iter().all(|(s, _)| s.as_u16() == 200), "{asks:?}");
    let tokens: std::collections::BTreeSet<&str> = asks.iter().filter_map(|(_, v)| v["token"].as_str()).collect();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(fetch(&a, asks[0].1["url"].as_str().expect("url"), None).await.0, 200);
}

gymapi_tests::on_both_backends!(first_uses_at_once_make_one_token_on, first_uses_at_once_make_one_token);
