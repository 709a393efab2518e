//! Issue 20: the replayable change feed. A gym's facts come in commit order, numbered
//! without gaps; a reader resumes from its cursor, also after a restart, and misses
//! nothing; a cursor whose next fact was purged is refused, never skipped.

use gymapi_tests::{Backend, Options, TestApp, TestUser, assert_error, now, on_both_backends, own_connection, qr_of};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use time::Duration;

/// The feed after `after`, once it holds at least `n` facts (numbers are given
/// by the relay's sequencer, within about a second of the commit).
async fn feed(app: &TestApp, gym: i64, admin: &TestUser, after: i64, n: usize) -> Value {
    for _ in 0..100 {
        let (status, page) = app.send_as(Method::GET, &format!("/api/v1/changes?after={after}"), admin, gym).await;
        assert_eq!(status, 200, "{page}");
        if page["changes"].as_array().map_or(0, Vec::len) >= n {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("fewer than {n} changes after {after}");
}

fn types(page: &Value) -> Vec<String> {
    page["changes"].as_array().expect("changes").iter().map(|c| c["type"].as_str().expect("type").to_owned()).collect()
}

fn seqs(page: &Value) -> Vec<i64> {
    page["changes"].as_array().expect("changes").iter().map(|c| c["seq"].as_i64().expect("seq")).collect()
}

async fn the_feed_resumes_from_its_cursor_after_a_restart_in_commit_order(backend: Backend) {
    let db = std::sync::Arc::new(gymapi_tests::TestDb::create(backend).await);
    let app = TestApp::spawn_on(db.clone(), Options::default()).await;
    let (owner, gym) = app.gym().await;
    let m = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 5).await;
    let s = app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    assert_eq!(
        app.send_as(Method::POST, &format!("/api/v1/schedule/sessions/{}/register", s["id"]), &m, gym).await.0,
        201
    );
    let page = feed(&app, gym, &owner, 0, 5).await;
    assert_eq!(types(&page), ["gym_created", "membership_changed", "class_changed", "session_scheduled", "booked"]);
    assert_eq!(seqs(&page), [1, 2, 3, 4, 5]);
    assert_eq!(page["next"], 5);
    let booked = &page["changes"][4];
    assert_eq!((&booked["data"]["session"], &booked["data"]["member"]), (&s["id"], &json!(m.id)), "{booked}");
    assert!(booked["id"].as_i64().is_some() && booked["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Resumed from the cursor after a restart: only what came after, nothing missing.
    drop(app);
    let app = TestApp::spawn_on(db, Options::default()).await;
    let qr = qr_of(&app, gym, &m).await;
    let scanned =
        app.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &json!({"qr_code": qr})).await;
    assert_eq!(scanned.0, 200, "{}", scanned.1);
    let (status, _) =
        app.send_json(Method::PATCH, "/api/v1/gyms/current", &owner, gym, &json!({"name": "Renamed"})).await;
    assert_eq!(status, 200);
    let page = feed(&app, gym, &owner, 5, 2).await;
    assert_eq!((types(&page), seqs(&page)), (vec!["checked_in".to_owned(), "gym_changed".to_owned()], vec![6, 7]));
    let (_, empty) = app.send_as(Method::GET, "/api/v1/changes?after=7", &owner, gym).await;
    assert_eq!(
        (empty["changes"].clone(), empty["next"].clone()),
        (json!([]), json!(7)),
        "nothing new: the same cursor"
    );
    // A number the feed never gave: nothing, and `next` back at the last fact, so a
    // client that keeps it skips nothing.
    for past in ["8", "9223372036854775807"] {
        let (status, page) = app.send_as(Method::GET, &format!("/api/v1/changes?after={past}"), &owner, gym).await;
        assert_eq!((status.as_u16(), page["changes"].clone(), page["next"].clone()), (200, json!([]), json!(7)));
    }
    let (_, one) = app.send_as(Method::GET, "/api/v1/changes?after=2&limit=1", &owner, gym).await;
    assert_eq!((seqs(&one), one["next"].clone()), (vec![3], json!(3)));

    // Another gym's feed is its own; admins only; junk cursors are refused.
    let (other_owner, other_gym) = app.gym().await;
    let theirs = feed(&app, other_gym, &other_owner, 0, 1).await;
    assert_eq!((types(&theirs), seqs(&theirs)), (vec!["gym_created".to_owned()], vec![1]));
    assert_error(&app.send_as(Method::GET, "/api/v1/changes", &m, gym).await, 403, "forbidden");
    for bad in ["after=-1", "after=x", "limit=0", "limit=501"] {
        assert_error(
            &app.send_as(Method::GET, &format!("/api/v1/changes?{bad}"), &owner, gym).await,
            422,
            "validation_error",
        );
    }

    // Purged facts: a cursor before them is refused, not skipped past.
    let conn = own_connection(&app.db.url).await;
    let sql = format!("DELETE FROM outbox WHERE gym_id = {gym} AND gym_seq IN (3, 4)");
    conn.execute_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).await.expect("purge");
    assert_error(&app.send_as(Method::GET, "/api/v1/changes?after=2", &owner, gym).await, 410, "cursor_expired");
    let (_, upto) = app.send_as(Method::GET, "/api/v1/changes?after=1", &owner, gym).await;
    assert_eq!((seqs(&upto), upto["next"].clone()), (vec![2], json!(2)), "a page stops at a gap");
    let (_, later) = app.send_as(Method::GET, "/api/v1/changes?after=4", &owner, gym).await;
    assert_eq!(seqs(&later), [5, 6, 7]);
}

on_both_backends!(
    the_feed_resumes_from_its_cursor_after_a_restart_in_commit_order_on,
    the_feed_resumes_from_its_cursor_after_a_restart_in_commit_order
);
