//! Issue 21, payments: a payment system grants the pass a member paid for with an
//! event signed by the gym's secret. One pass per event id however often it is
//! retried, at once over two instances; a wrong or stale signature grants nothing.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, now, python_signs, send, two_instances};
use reqwest::Method;
use serde_json::{Value, json};

async fn secret(app: &TestApp, owner: &TestUser, gym: i64) -> Value {
    let (status, made) = app.send_as(Method::POST, "/api/v1/integrations/payments", owner, gym).await;
    assert_eq!(status, 201, "{made}");
    made
}

async fn post_event(app: &TestApp, gym: i64, body: &str, signature: Option<String>) -> (reqwest::StatusCode, Value) {
    let mut rb = app
        .client
        .post(format!("{}/api/v1/integrations/payments/{gym}/events", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(s) = signature {
        rb = rb.header("X-GymAPI-Signature", s);
    }
    send(rb).await
}

async fn pack(app: &TestApp, owner: &TestUser, gym: i64) -> Value {
    let body = json!({"name": "Five", "kind": "pack", "credits": 5, "valid_days": 30});
    let (status, plan) = app.send_json(Method::POST, "/api/v1/plans", owner, gym, &body).await;
    assert_eq!(status, 201, "{plan}");
    plan
}

two_instances!(an_event_retried_twenty_times_at_once_over_two_instances_grants_one_pass, |a, b| {
    let (owner, gym) = a.gym().await;
    let made = secret(&a, &owner, gym).await;
    let key = made["secret"].as_str().expect("secret").to_owned();
    assert_eq!(made["previous_secret_expires_at"], json!(null));
    let plan = pack(&a, &owner, gym).await;
    let ana = a.member(gym, &owner, "member").await;
    let body = json!({"event_id": "pi_3Nx", "user_id": ana.id, "plan_id": plan["id"]}).to_string();
    let racers = (0..20).map(|i| {
        let (app, body, key) = (if i % 2 == 0 { &a } else { &b }, &body, &key);
        // Each retry signs afresh, as a payment system's would.
        let signature = python_signs(key, now().unix_timestamp() - i, body);
        async move { post_event(app, gym, body, Some(signature)).await }
    });
    let answers = futures_util::future::join_all(racers).await;
    let created = answers.iter().filter(|(s, _)| s.as_u16() == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(answers.iter().all(|(s, p)| (s.as_u16() == 201 || s.as_u16() == 200) && p["id"] == answers[0].1["id"]));
    let (_, passes) = b.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &ana, gym).await;
    assert_eq!(passes.as_array().map(Vec::len), Some(1), "{passes}");
    assert_eq!((&passes[0]["credits_left"], &passes[0]["status"]), (&json!(5), &json!("active")));
    let (_, ledger) = b.send_as(Method::GET, &format!("/api/v1/members/{}/ledger", ana.id), &ana, gym).await;
    assert_eq!(ledger.as_array().map(Vec::len), Some(1), "{ledger}");
    assert_eq!(
        (&ledger[0]["kind"], &ledger[0]["cause"], &ledger[0]["actor_id"]),
        (&json!("grant"), &json!("payment"), &json!(null))
    );

    // One fact for the change feed and webhooks, once numbered (within about a second).
    let granted = |changes: &Value| -> Vec<Value> {
        changes["changes"].as_array().into_iter().flatten().filter(|c| c["type"] == "pass_granted").cloned().collect()
    };
    let mut facts = Vec::new();
    for _ in 0..50 {
        let (_, changes) = a.send_as(Method::GET, "/api/v1/changes?limit=500", &owner, gym).await;
        facts = granted(&changes);
        if !facts.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(facts.len(), 1, "{facts:?}");
    assert_eq!(facts[0]["data"], json!({"pass": passes[0]["id"], "member": ana.id, "plan": plan["id"], "credits": 5}));
});

both_backends!(a_wrong_or_stale_signature_is_401_and_grants_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let (other_owner, other_gym) = app.gym().await;
    let plan = pack(&app, &owner, gym).await;
    let ana = app.member(gym, &owner, "member").await;
    let body = json!({"event_id": "evt_1", "user_id": ana.id, "plan_id": plan["id"]}).to_string();
    let t = now().unix_timestamp();
    // Before the gym made a secret, nothing is verified.
    assert_error(
        &post_event(&app, gym, &body, Some(python_signs("whsec_x", t, &body))).await,
        401,
        "invalid_signature",
    );
    let key = secret(&app, &owner, gym).await["secret"].as_str().expect("secret").to_owned();
    let theirs = secret(&app, &other_owner, other_gym).await["secret"].as_str().expect("secret").to_owned();
    for signature in [
        None,
        Some(python_signs("whsec_wrong", t, &body)),
        Some(python_signs(&theirs, t, &body)),
        Some(python_signs(&key, t - 400, &body)),
        Some(python_signs(&key, t + 400, &body)),
        Some(python_signs(&key, t, "{}")),
        Some(format!("t={t}")),
        Some("garbage".into()),
    ] {
        assert_error(&post_event(&app, gym, &body, signature.clone()).await, 401, "invalid_signature");
    }
    // Signed for another gym's path: refused there too.
    assert_error(
        &post_event(&app, other_gym, &body, Some(python_signs(&key, t, &body))).await,
        401,
        "invalid_signature",
    );
    assert_error(&post_event(&app, 0, &body, Some(python_signs(&key, t, &body))).await, 401, "invalid_signature");
    let (_, passes) = app.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &ana, gym).await;
    assert_eq!(passes, json!([]), "nothing granted");

    // Signed, but wrong inside: the contract's answers, nothing granted.
    let signed = |b: &str| Some(python_signs(&key, t, b));
    for (b, status, code) in [
        (json!({"event_id": "e2", "user_id": ana.id}), 422, "validation_error"),
        (json!({"event_id": "", "user_id": ana.id, "plan_id": plan["id"]}), 422, "validation_error"),
        (json!({"event_id": "x".repeat(201), "user_id": ana.id, "plan_id": plan["id"]}), 422, "validation_error"),
        (json!({"event_id": "e3", "user_id": other_owner.id, "plan_id": plan["id"]}), 404, "user_not_found"),
        (json!({"event_id": "e4", "user_id": ana.id, "plan_id": 999_999}), 404, "plan_not_found"),
    ] {
        let b = b.to_string();
        assert_error(&post_event(&app, gym, &b, signed(&b)).await, status, code);
    }
    let (_, passes) = app.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &ana, gym).await;
    assert_eq!(passes, json!([]), "nothing granted");

    // A rotation: the new secret signs, and the old one a day more.
    let rotated = secret(&app, &owner, gym).await;
    assert!(rotated["previous_secret_expires_at"].is_string(), "{rotated}");
    let new_key = rotated["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new_key, key);
    let (status, _) = post_event(&app, gym, &body, Some(python_signs(&key, t, &body))).await;
    assert_eq!(status, 201);
    let b2 = json!({"event_id": "evt_2", "user_id": ana.id, "plan_id": plan["id"]}).to_string();
    let (status, _) = post_event(&app, gym, &b2, Some(python_signs(&new_key, t, &b2))).await;
    assert_eq!(status, 201);
    // Only admins make secrets.
    let trainer = app.member(gym, &owner, "trainer").await;
    assert_error(&app.send_as(Method::POST, "/api/v1/integrations/payments", &trainer, gym).await, 403, "forbidden");
});

both_backends!(a_granted_event_retried_after_its_plan_is_retired_still_answers_its_pass, |app| {
    let (owner, gym) = app.gym().await;
    let key = secret(&app, &owner, gym).await["secret"].as_str().expect("secret").to_owned();
    let plan = pack(&app, &owner, gym).await;
    let ana = app.member(gym, &owner, "member").await;
    let body = json!({"event_id": "pi_retired", "user_id": ana.id, "plan_id": plan["id"]}).to_string();
    let (status, first) = post_event(&app, gym, &body, Some(python_signs(&key, now().unix_timestamp(), &body))).await;
    assert_eq!(status, 201, "{first}");
    let (status, _) = app.send_as(Method::DELETE, &format!("/api/v1/plans/{}", plan["id"]), &owner, gym).await;
    assert_eq!(status, 204);
    let (status, again) = post_event(&app, gym, &body, Some(python_signs(&key, now().unix_timestamp(), &body))).await;
    assert_eq!((status.as_u16(), &again["id"]), (200, &first["id"]), "{again}");
    // A new event for the retired plan is refused, and grants nothing.
    let other = json!({"event_id": "pi_new", "user_id": ana.id, "plan_id": plan["id"]}).to_string();
    let refused = post_event(&app, gym, &other, Some(python_signs(&key, now().unix_timestamp(), &other))).await;
    assert_error(&refused, 422, "validation_error");
    let (_, passes) = app.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &ana, gym).await;
    assert_eq!(passes.as_array().map(Vec::len), Some(1), "{passes}");
});
