//! Issue 21, passes and the ledger: staff sell passes of active plans, admins
//! adjust and end them, members read their own; every credit moves as a ledger
//! entry, a pack never goes below zero under racers over two instances, and the
//! database itself refuses an entry that breaks the chain.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, own_connection, two_instances};
use reqwest::Method;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

async fn plan(app: &TestApp, owner: &TestUser, gym: i64, body: Value) -> Value {
    let (status, plan) = app.send_json(Method::POST, "/api/v1/plans", owner, gym, &body).await;
    assert_eq!(status, 201, "{plan}");
    plan
}

async fn pack(app: &TestApp, owner: &TestUser, gym: i64, credits: i64) -> Value {
    plan(app, owner, gym, json!({"name": "Pack", "kind": "pack", "credits": credits, "valid_days": 30})).await
}

async fn sell(app: &TestApp, seller: &TestUser, gym: i64, member: &TestUser, body: Value) -> Value {
    let path = format!("/api/v1/members/{}/passes", member.id);
    let (status, pass) = app.send_json(Method::POST, &path, seller, gym, &body).await;
    assert_eq!(status, 201, "{pass}");
    pass
}

both_backends!(a_sold_pack_is_granted_in_the_ledger_adjusted_with_a_reason_and_ended, |app| {
    let (owner, gym) = app.gym().await;
    let ten = pack(&app, &owner, gym, 10).await;
    let trainer = app.member(gym, &owner, "trainer").await;
    let ana = app.member(gym, &owner, "member").await;
    let start = gymapi_tests::now().date() - time::Duration::days(5);
    let pass = sell(&app, &trainer, gym, &ana, json!({"plan_id": ten["id"], "starts_on": start.to_string()})).await;
    assert_eq!(
        (&pass["kind"], &pass["credits_total"], &pass["credits_left"], &pass["member_id"], &pass["plan_id"]),
        (&json!("pack"), &json!(10), &json!(10), &json!(ana.id), &ten["id"])
    );
    // The gym's zone is UTC unless set: the first instant of the day, 30 days on.
    assert_eq!(
        (&pass["starts_at"], &pass["expires_at"]),
        (&json!(format!("{start}T00:00:00Z")), &json!(format!("{}T00:00:00Z", start + time::Duration::days(30))))
    );

    let base = format!("/api/v1/members/{}/passes/{}", ana.id, pass["id"]);
    let (status, adjusted) = app
        .send_json(
            Method::POST,
            &format!("{base}/adjust"),
            &owner,
            gym,
            &json!({"credits": -3, "reason": " no-show fee "}),
        )
        .await;
    assert_eq!((status.as_u16(), &adjusted["credits_left"]), (200, &json!(7)), "{adjusted}");
    assert_error(
        &app.send_json(
            Method::POST,
            &format!("{base}/adjust"),
            &owner,
            gym,
            &json!({"credits": -8, "reason": "too many"}),
        )
        .await,
        422,
        "validation_error",
    );
    let (_, plus) = app
        .send_json(Method::POST, &format!("{base}/adjust"), &owner, gym, &json!({"credits": 2, "reason": "goodwill"}))
        .await;
    assert_eq!(plus["credits_left"], 9);

    // The member reads their own ledger: newest first, each entry with its balance.
    let ledger_path = format!("/api/v1/members/{}/ledger", ana.id);
    let (status, ledger) = app.send_as(Method::GET, &ledger_path, &ana, gym).await;
    assert_eq!(status, 200, "{ledger}");
    let got: Vec<(Value, Value, Value, Value)> = ledger
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["kind"].clone(), e["credits"].clone(), e["balance"].clone(), e["seq"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("adjust"), json!(2), json!(9), json!(3)),
            (json!("adjust"), json!(-3), json!(7), json!(2)),
            (json!("grant"), json!(10), json!(10), json!(1)),
        ]
    );
    assert_eq!(
        (&ledger[1]["reason"], &ledger[1]["actor_id"], &ledger[1]["cause"]),
        (&json!("no-show fee"), &json!(owner.id), &json!("staff"))
    );
    assert_eq!((&ledger[2]["actor_id"], &ledger[2]["reason"]), (&json!(trainer.id), &json!(null)));

    // Ended: its credits stay, it cannot be adjusted, ending it again changes nothing.
    let (status, ended) = app.send_as(Method::POST, &format!("{base}/cancel"), &owner, gym).await;
    assert_eq!((status.as_u16(), &ended["status"], &ended["credits_left"]), (200, &json!("cancelled"), &json!(9)));
    let (status, again) = app.send_as(Method::POST, &format!("{base}/cancel"), &owner, gym).await;
    assert_eq!((status.as_u16(), &again["status"]), (200, &json!("cancelled")));
    assert_error(
        &app.send_json(Method::POST, &format!("{base}/adjust"), &owner, gym, &json!({"credits": 1, "reason": "x"}))
            .await,
        422,
        "validation_error",
    );
    let (_, passes) = app.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &trainer, gym).await;
    assert_eq!((passes.as_array().map(Vec::len), &passes[0]["status"]), (Some(1), &json!("cancelled")));

    // An unlimited pass has no credits and no ledger.
    let monthly = plan(&app, &owner, gym, json!({"name": "Monthly", "kind": "unlimited", "valid_days": 30})).await;
    let open = sell(&app, &owner, gym, &ana, json!({"plan_id": monthly["id"]})).await;
    assert_eq!(
        (&open["credits_total"], &open["credits_left"], &open["status"]),
        (&json!(null), &json!(null), &json!("active"))
    );
    let path = format!("/api/v1/members/{}/passes/{}/adjust", ana.id, open["id"]);
    assert_error(
        &app.send_json(Method::POST, &path, &owner, gym, &json!({"credits": 1, "reason": "x"})).await,
        422,
        "validation_error",
    );
    let (_, ledger) = app.send_as(Method::GET, &ledger_path, &ana, gym).await;
    assert_eq!(ledger.as_array().map(Vec::len), Some(3));
});

both_backends!(sales_and_adjustments_refuse_what_they_must_and_change_nothing, |app| {
    let (owner, gym) = app.gym().await;
    let (other_owner, other_gym) = app.gym().await;
    let ten = pack(&app, &owner, gym, 10).await;
    let theirs = pack(&app, &other_owner, other_gym, 5).await;
    let ana = app.member(gym, &owner, "member").await;
    let bea = app.member(gym, &owner, "member").await;
    let outsider = app.member(other_gym, &other_owner, "member").await;
    let passes = |u: &TestUser| format!("/api/v1/members/{}/passes", u.id);
    let post = |path: String, body: Value| {
        let (app, owner) = (&app, &owner);
        async move { app.send_json(Method::POST, &path, owner, gym, &body).await }
    };
    assert_error(&post(passes(&ana), json!({"plan_id": theirs["id"]})).await, 404, "plan_not_found");
    assert_error(&post(passes(&ana), json!({"plan_id": 999_999_999})).await, 404, "plan_not_found");
    assert_error(&post(passes(&outsider), json!({"plan_id": ten["id"]})).await, 404, "user_not_found");
    for bad in [
        json!({"plan_id": ten["id"], "starts_on": "2026-13-01"}),
        json!({"plan_id": ten["id"], "starts_on": "tomorrow"}),
        json!({"plan_id": ten["id"], "starts_on": "2030-01-01"}),
        json!({"plan_id": "1"}),
        json!({}),
        json!([]),
    ] {
        assert_error(&post(passes(&ana), bad).await, 422, "validation_error");
    }
    let retired = pack(&app, &owner, gym, 3).await;
    app.send_as(Method::DELETE, &format!("/api/v1/plans/{}", retired["id"]), &owner, gym).await;
    assert_error(&post(passes(&ana), json!({"plan_id": retired["id"]})).await, 422, "validation_error");
    let (_, none) = app.send_as(Method::GET, &passes(&ana), &owner, gym).await;
    assert_eq!(none, json!([]), "nothing sold");

    let pass = sell(&app, &owner, gym, &ana, json!({"plan_id": ten["id"]})).await;
    let adjust = format!("/api/v1/members/{}/passes/{}/adjust", ana.id, pass["id"]);
    for bad in [
        json!({"credits": 0, "reason": "x"}),
        json!({"credits": 1001, "reason": "x"}),
        json!({"credits": -2_147_483_648_i64, "reason": "x"}),
        json!({"credits": 4_294_967_296_i64, "reason": "x"}),
        json!({"credits": 1, "reason": " "}),
        json!({"credits": 1, "reason": "x".repeat(501)}),
        json!({"credits": 1}),
        json!({"credits": 1.5, "reason": "x"}),
    ] {
        assert_error(&post(adjust.clone(), bad).await, 422, "validation_error");
    }
    // Another member's path, another gym's pass: not found.
    let wrong = format!("/api/v1/members/{}/passes/{}/adjust", bea.id, pass["id"]);
    assert_error(&post(wrong, json!({"credits": 1, "reason": "x"})).await, 404, "pass_not_found");
    let (_, their_pass) = app
        .send_json(
            Method::POST,
            &format!("/api/v1/members/{}/passes", outsider.id),
            &other_owner,
            other_gym,
            &json!({"plan_id": theirs["id"]}),
        )
        .await;
    let foreign = format!("/api/v1/members/{}/passes/{}/cancel", outsider.id, their_pass["id"]);
    assert_error(&app.send_as(Method::POST, &foreign, &owner, gym).await, 404, "pass_not_found");
    let (_, after) = app.send_as(Method::GET, &passes(&ana), &ana, gym).await;
    assert_eq!(after[0]["credits_left"], 10, "unchanged");

    // Roles: a member reads only their own; a trainer sells but does not adjust or end.
    assert_error(&app.send_as(Method::GET, &passes(&bea), &ana, gym).await, 403, "forbidden");
    assert_error(
        &app.send_as(Method::GET, &format!("/api/v1/members/{}/ledger", bea.id), &ana, gym).await,
        403,
        "forbidden",
    );
    // Anyone else's passes are judged by the role before the query (contract, section 7);
    // a path that names no user is refused as on `GET /users/{id}`.
    for path in
        [format!("/api/v1/members/{}/passes?limit=0", bea.id), format!("/api/v1/members/{}/ledger?skip=-1", bea.id)]
    {
        assert_error(&app.send_as(Method::GET, &path, &ana, gym).await, 403, "forbidden");
    }
    for path in ["/api/v1/members/abc/ledger", "/api/v1/members/99999999999999999999/passes"] {
        assert_error(&app.send_as(Method::GET, path, &ana, gym).await, 422, "validation_error");
    }
    let own = format!("/api/v1/members/{}/ledger?limit=0", ana.id);
    assert_error(&app.send_as(Method::GET, &own, &ana, gym).await, 422, "validation_error");
    let trainer = app.member(gym, &owner, "trainer").await;
    let bad = "/api/v1/members/abc/passes";
    assert_error(&app.send_as(Method::GET, bad, &trainer, gym).await, 422, "validation_error");
    assert_error(&app.send_json(Method::POST, &adjust, &trainer, gym, &json!([])).await, 403, "forbidden");
    assert_error(&app.send_json(Method::POST, &passes(&bea), &ana, gym, &json!([])).await, 403, "forbidden");
    assert_error(&app.send_as(Method::GET, &passes(&outsider), &trainer, gym).await, 404, "user_not_found");
});

two_instances!(racing_adjustments_over_two_instances_never_take_a_pack_below_zero, |a, b| {
    let (owner, gym) = a.gym().await;
    let ten = pack(&a, &owner, gym, 10).await;
    let ana = a.member(gym, &owner, "member").await;
    let pass = sell(&a, &owner, gym, &ana, json!({"plan_id": ten["id"]})).await;
    let path = format!("/api/v1/members/{}/passes/{}/adjust", ana.id, pass["id"]);
    let racers = (0..24).map(|i| {
        let (app, owner, path) = (if i % 2 == 0 { &a } else { &b }, &owner, &path);
        async move {
            app.send_json(Method::POST, path, owner, gym, &json!({"credits": -1, "reason": format!("racer {i}")})).await
        }
    });
    let answers = futures_util::future::join_all(racers).await;
    let ok = answers.iter().filter(|(s, _)| s.as_u16() == 200).count();
    assert!(
        answers.iter().all(|(s, b)| s.as_u16() == 200 || (s.as_u16() == 422 && b["code"] == "validation_error")),
        "{answers:?}"
    );
    assert_eq!(ok, 10, "ten credits, ten takers");
    let (_, passes) = b.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &ana, gym).await;
    assert_eq!(passes[0]["credits_left"], 0);

    // In SQL: the chain is whole, each balance the one before plus the entry, none below zero.
    let conn = own_connection(&a.db.url).await;
    let sql = format!("SELECT seq, credits, balance FROM credit_entries WHERE pass_id = {} ORDER BY seq", pass["id"]);
    let rows = conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql)).await.expect("entries");
    let mut before = 0_i32;
    for (i, r) in rows.iter().enumerate() {
        let (seq, credits, balance): (i32, i32, i32) = (
            r.try_get("", "seq").expect("seq"),
            r.try_get("", "credits").expect("c"),
            r.try_get("", "balance").expect("b"),
        );
        assert_eq!((seq, balance), (i32::try_from(i).expect("small") + 1, before + credits));
        before = balance;
    }
    assert_eq!((rows.len(), before), (11, 0));
});

both_backends!(the_database_refuses_an_entry_that_breaks_the_chain_or_goes_below_zero, |app| {
    let (owner, gym) = app.gym().await;
    let three = pack(&app, &owner, gym, 3).await;
    let ana = app.member(gym, &owner, "member").await;
    let pass = sell(&app, &owner, gym, &ana, json!({"plan_id": three["id"]})).await;
    let conn = own_connection(&app.db.url).await;
    let insert = |seq: i64, prev: &str, credits: i64, balance: i64| {
        format!(
            "INSERT INTO credit_entries (gym_id, pass_id, seq, prev_seq, prev_balance, kind, credits, balance, cause, at) \
             VALUES ({gym}, {}, {seq}, {prev}, {credits}, {balance}, 'job', '2026-12-08T00:00:00Z')",
            pass["id"]
        )
    };
    for sql in [
        // Below zero.
        insert(2, "1, 3, 'adjust'", -4, -1),
        // A balance that is not the one before plus the credits.
        insert(2, "1, 3, 'adjust'", -1, 1),
        // Naming a balance the entry before does not have.
        insert(2, "1, 5, 'adjust'", -1, 4),
        // Skipping a link.
        insert(3, "2, 3, 'adjust'", -1, 2),
        // A second grant, and a second entry 1.
        insert(1, "NULL, NULL, 'grant'", 3, 3),
    ] {
        let got = conn.execute_raw(Statement::from_string(conn.get_database_backend(), sql.clone())).await;
        assert!(got.is_err(), "the database took {sql}");
    }
    let (_, passes) = app.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &ana, gym).await;
    assert_eq!(passes[0]["credits_left"], 3, "nothing appended");
});

both_backends!(a_freeze_moves_the_expiry_out_by_its_days_and_the_pass_is_frozen_within_it, |app| {
    let (owner, gym) = app.gym().await;
    let ten = pack(&app, &owner, gym, 10).await;
    let ana = app.member(gym, &owner, "member").await;
    let trainer = app.member(gym, &owner, "trainer").await;
    // Noon: no day boundary falls between the requests.
    let today = gymapi_tests::now().date();
    app.clock.set(today.midnight().assume_utc() + time::Duration::hours(12));
    let pass = sell(&app, &owner, gym, &ana, json!({"plan_id": ten["id"]})).await;
    let day = |n: i64| (today + time::Duration::days(n)).to_string();
    let midnight = |n: i64| format!("{}T00:00:00Z", day(n));
    let freeze = format!("/api/v1/members/{}/passes/{}/freeze", ana.id, pass["id"]);
    let (status, frozen) =
        app.send_json(Method::POST, &freeze, &trainer, gym, &json!({"from": day(1), "until": day(3)})).await;
    assert_eq!(status, 200, "{frozen}");
    assert_eq!(
        (&frozen["frozen_from"], &frozen["frozen_until"], &frozen["expires_at"], &frozen["status"]),
        (&json!(midnight(1)), &json!(midnight(4)), &json!(midnight(33)), &json!("active")),
        "30 days and three frozen ones; it begins tomorrow"
    );
    app.clock.advance(time::Duration::days(2));
    let (_, passes) = app.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &ana, gym).await;
    assert_eq!(passes[0]["status"], "frozen");
    // One at a time, even for a later one.
    let later = json!({"from": day(10), "until": day(11)});
    assert_error(&app.send_json(Method::POST, &freeze, &trainer, gym, &later).await, 422, "validation_error");
    app.clock.advance(time::Duration::days(2));
    let (_, passes) = app.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &ana, gym).await;
    assert_eq!(passes[0]["status"], "active", "the freeze is over");
    let (status, again) = app.send_json(Method::POST, &freeze, &trainer, gym, &later).await;
    assert_eq!((status.as_u16(), &again["expires_at"]), (200, &json!(midnight(35))), "{again}");

    for bad in [
        json!({"from": day(3), "until": day(2)}),
        json!({"from": day(-1), "until": day(2)}),
        json!({"from": day(20), "until": day(400)}),
        json!({"from": day(60), "until": day(61)}),
        json!({"from": "2026-02-30", "until": day(2)}),
        json!({"from": day(20)}),
        json!([]),
    ] {
        assert_error(&app.send_json(Method::POST, &freeze, &owner, gym, &bad).await, 422, "validation_error");
    }
    assert_error(&app.send_json(Method::POST, &freeze, &ana, gym, &json!([])).await, 403, "forbidden");
    let other = format!("/api/v1/members/{}/passes/{}/freeze", trainer.id, pass["id"]);
    assert_error(
        &app.send_json(Method::POST, &other, &owner, gym, &json!({"from": day(20), "until": day(21)})).await,
        404,
        "pass_not_found",
    );
    app.send_as(Method::POST, &format!("/api/v1/members/{}/passes/{}/cancel", ana.id, pass["id"]), &owner, gym).await;
    let ended = json!({"from": day(20), "until": day(21)});
    assert_error(&app.send_json(Method::POST, &freeze, &owner, gym, &ended).await, 422, "validation_error");
    let (_, passes) = app.send_as(Method::GET, &format!("/api/v1/members/{}/passes", ana.id), &ana, gym).await;
    assert_eq!(passes[0]["expires_at"], json!(midnight(35)), "unchanged by the refusals");
});
