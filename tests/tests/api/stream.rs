//! Issue 20: `GET /attendance/stream`, the desk screen's live attendance. A check-in
//! made on one instance reaches a stream open on the other (announced through Redis
//! pub/sub), and a screen that reconnects with `Last-Event-ID` misses nothing.

use std::time::{Duration, Instant};

use gymapi_tests::{TestApp, TestUser, assert_error, now, qr_of, send, two_instances};
use reqwest::Method;
use serde_json::{Value, json};

/// One event of a stream.
#[derive(Debug, Clone)]
struct Event {
    id: i64,
    kind: String,
    data: Value,
}

/// An open stream, read as the bytes come.
struct Stream {
    res: reqwest::Response,
    buf: String,
}

impl Stream {
    async fn open(app: &TestApp, u: &TestUser, gym: i64, last_id: Option<i64>) -> Self {
        let mut rb = app.call(Method::GET, "/api/v1/attendance/stream", &u.token, Some(gym));
        if let Some(id) = last_id {
            rb = rb.header("Last-Event-ID", id.to_string());
        }
        let res = rb.send().await.expect("stream");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let mut s = Self { res, buf: String::new() };
        // The stream opens with its retry hint, before any event.
        s.fill(Duration::from_secs(5)).await;
        assert!(s.buf.starts_with("retry: "), "{}", s.buf);
        s
    }

    /// Reads one more chunk, within `wait`.
    async fn fill(&mut self, wait: Duration) -> bool {
        match tokio::time::timeout(wait, self.res.chunk()).await {
            Ok(Ok(Some(bytes))) => {
                self.buf.push_str(std::str::from_utf8(&bytes).expect("utf-8"));
                true
            }
            Ok(Ok(None)) => panic!("the stream ended"),
            Ok(Err(e)) => panic!("the stream failed: {e}"),
            Err(_) => false,
        }
    }

    /// The next event, within `wait` (comments and hints are passed over).
    async fn next(&mut self, wait: Duration) -> Option<Event> {
        let until = Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse::<i64>().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        kind = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str::<Value>(v).expect("data is JSON"));
                    }
                }
                if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
                    return Some(Event { id, kind, data });
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.fill(left).await {
                return None;
            }
        }
    }
}

async fn check_in(app: &TestApp, desk: &TestUser, gym: i64, qr: &str) -> Value {
    let (status, body) =
        app.send_json(Method::POST, "/api/v1/attendance/check-in", desk, gym, &json!({"qr_code": qr})).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A stream does not look again on its own for 5 s: an event sooner than this came
/// through the announcement. The issue asks for a second; the rest is room for a
/// loaded machine.
const ANNOUNCED: Duration = Duration::from_secs(3);

two_instances!(a_check_in_on_one_instance_reaches_a_stream_on_the_other_and_a_reconnect_misses_nothing, |a, b| {
    let (owner, gym) = a.gym().await;
    let desk = a.member(gym, &owner, "trainer").await;
    let ana = a.member(gym, &owner, "member").await;
    let bea = a.member(gym, &owner, "member").await;
    let class = a.class(gym, &owner, 5).await;
    let s = a.session_at(gym, &owner, class, now() + time::Duration::minutes(5)).await;
    let mut screen = Stream::open(&b, &desk, gym, None).await;

    let sent = Instant::now();
    let scanned = check_in(&a, &desk, gym, &qr_of(&a, gym, &ana).await).await;
    let first = screen.next(Duration::from_secs(10)).await.expect("the check-in reaches the other instance");
    assert!(sent.elapsed() < ANNOUNCED, "announced, not found by looking again: {:?}", sent.elapsed());
    assert_eq!(first.kind, "checkin.succeeded");
    assert_eq!(first.data["type"], "checkin.succeeded");
    assert_eq!(first.data["seq"], first.id);
    assert_eq!(first.data["gym_id"], gym);
    assert_eq!((&first.data["data"]["member"], &first.data["data"]["session"]), (&json!(ana.id), &s["id"]));
    assert_eq!(scanned["user_id"], ana.id);

    // A refused scan is an event too; a booking is not (the stream carries attendance).
    let (status, _) =
        a.send_as(Method::POST, &format!("/api/v1/schedule/sessions/{}/register", s["id"]), &bea, gym).await;
    assert_eq!(status, 201);
    let (status, _) = a
        .send_json(
            Method::POST,
            "/api/v1/attendance/check-in",
            &desk,
            gym,
            &json!({"qr_code": format!("U{}_00000000", ana.id)}),
        )
        .await;
    assert_eq!(status, 400);
    let refused = screen.next(Duration::from_secs(10)).await.expect("the refusal reaches the stream");
    assert_eq!((refused.kind.as_str(), &refused.data["data"]["code"]), ("checkin.refused", &json!("invalid_qr")));
    assert!(refused.id > first.id + 1, "the booking between them has its number but no event");

    // The screen drops; a check-in happens meanwhile; the screen comes back on A.
    drop(screen);
    check_in(&a, &desk, gym, &qr_of(&a, gym, &bea).await).await;
    let mut screen = Stream::open(&a, &desk, gym, Some(refused.id)).await;
    let missed = screen.next(Duration::from_secs(10)).await.expect("what happened while away");
    assert_eq!((missed.kind.as_str(), &missed.data["data"]["member"]), ("checkin.succeeded", &json!(bea.id)));
    // Nothing else was missed: the feed has no attendance fact between them.
    let (_, feed) = a.send_as(Method::GET, &format!("/api/v1/changes?after={}", refused.id), &owner, gym).await;
    let between: Vec<i64> = feed["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["type"] == "checked_in" || c["type"] == "checkin_refused")
        .map(|c| c["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(between, [missed.id]);
    assert!(screen.next(Duration::from_millis(300)).await.is_none(), "and nothing twice");

    // Another gym's check-ins never show on this screen.
    let (other_owner, other_gym) = b.gym().await;
    let other = b.member(other_gym, &other_owner, "member").await;
    let other_class = b.class(other_gym, &other_owner, 5).await;
    b.session_at(other_gym, &other_owner, other_class, now() + time::Duration::minutes(5)).await;
    check_in(&b, &other_owner, other_gym, &qr_of(&b, other_gym, &other).await).await;
    assert!(screen.next(Duration::from_secs(2)).await.is_none(), "another gym's event");
});

gymapi_tests::both_backends!(the_stream_is_for_staff_and_resumes_only_from_ids_it_gave, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let path = "/api/v1/attendance/stream";
    assert_error(&send(app.call(Method::GET, path, &member.token, Some(gym))).await, 403, "forbidden");
    assert_error(&send(app.call(Method::GET, path, &owner.token, None)).await, 400, "gym_id_required");
    for bad in ["abc", "-1", "1.5", "99999"] {
        let rb = app.call(Method::GET, path, &owner.token, Some(gym)).header("Last-Event-ID", bad);
        assert_error(&send(rb).await, 422, "validation_error");
    }
    // The same process, no Redis: its own announcements wake its streams.
    let class = app.class(gym, &owner, 5).await;
    app.session_at(gym, &owner, class, now() + time::Duration::minutes(5)).await;
    let mut screen = Stream::open(&app, &owner, gym, None).await;
    let sent = Instant::now();
    check_in(&app, &owner, gym, &qr_of(&app, gym, &member).await).await;
    let got = screen.next(Duration::from_secs(10)).await.expect("event");
    assert!(sent.elapsed() < ANNOUNCED, "{:?}", sent.elapsed());
    assert_eq!((got.kind.as_str(), &got.data["data"]["member"]), ("checkin.succeeded", &json!(member.id)));
    // A cursor whose next fact was purged is refused, not skipped past.
    let conn = gymapi_tests::own_connection(&app.db.url).await;
    let sql = format!("DELETE FROM outbox WHERE gym_id = {gym} AND gym_seq = 2");
    sea_orm::ConnectionTrait::execute_raw(
        &conn,
        sea_orm::Statement::from_string(sea_orm::ConnectionTrait::get_database_backend(&conn), sql),
    )
    .await
    .expect("purge");
    let rb = app.call(Method::GET, path, &owner.token, Some(gym)).header("Last-Event-ID", "1");
    assert_error(&send(rb).await, 410, "cursor_expired");
});
