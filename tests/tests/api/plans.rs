//! Issue 21, plans: what a gym sells. Admins make, change and retire them; members
//! list the ones on sale; bad input changes nothing; another gym's plans are not found.

use gymapi_tests::{assert_error, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

fn pack(name: &str, credits: i64) -> Value {
    json!({"name": name, "kind": "pack", "credits": credits, "valid_days": 90})
}

both_backends!(an_admin_sells_plans_members_list_the_ones_on_sale_and_a_retired_one_stays_readable, |app| {
    let (owner, gym) = app.gym().await;
    let (status, ten) = app.send_json(Method::POST, "/api/v1/plans", &owner, gym, &pack(" Ten classes ", 10)).await;
    assert_eq!(status, 201, "{ten}");
    assert_eq!(
        (&ten["name"], &ten["kind"], &ten["credits"], &ten["valid_days"], &ten["weekly_limit"], &ten["categories"]),
        (&json!("Ten classes"), &json!("pack"), &json!(10), &json!(90), &json!(null), &json!(null))
    );
    assert_eq!((&ten["gym_id"], &ten["active"]), (&json!(gym), &json!(true)));
    assert!(ten["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{ten}");
    let unlimited = json!({"name": "Monthly", "kind": "unlimited", "valid_days": 30, "weekly_limit": 3,
        "categories": ["Yoga", " Spin ", "yoga"]});
    let (status, monthly) = app.send_json(Method::POST, "/api/v1/plans", &owner, gym, &unlimited).await;
    assert_eq!(status, 201, "{monthly}");
    assert_eq!((&monthly["credits"], &monthly["categories"]), (&json!(null), &json!(["Yoga", "Spin"])));

    let member = app.member(gym, &owner, "member").await;
    let (status, list) = app.send_as(Method::GET, "/api/v1/plans", &member, gym).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(list[0]["id"], ten["id"], "oldest first");

    // A change: clear the weekly cap and the categories, rename; the kind stays.
    let path = format!("/api/v1/plans/{}", monthly["id"]);
    let patch = json!({"name": "Monthly open", "weekly_limit": null, "categories": null});
    let (status, changed) = app.send_json(Method::PATCH, &path, &owner, gym, &patch).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (&changed["name"], &changed["weekly_limit"], &changed["categories"], &changed["kind"], &changed["valid_days"]),
        (&json!("Monthly open"), &json!(null), &json!(null), &json!("unlimited"), &json!(30))
    );
    let (status, _) = app.send_json(Method::PATCH, &path, &owner, gym, &json!({"categories": ["HIIT"]})).await;
    assert_eq!(status, 200);

    // Retired: gone from the list on sale, still readable by id, listed for staff on request.
    let (status, _) = app.send_as(Method::DELETE, &path, &owner, gym).await;
    assert_eq!(status, 204);
    let (_, list) = app.send_as(Method::GET, "/api/v1/plans", &member, gym).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (status, retired) = app.send_as(Method::GET, &path, &member, gym).await;
    assert_eq!((status.as_u16(), &retired["active"], &retired["categories"]), (200, &json!(false), &json!(["HIIT"])));
    let (_, all) = app.send_as(Method::GET, "/api/v1/plans?retired=true", &owner, gym).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    assert_error(&app.send_as(Method::GET, "/api/v1/plans?retired=true", &member, gym).await, 403, "forbidden");
    // Re-activated.
    let (_, back) = app.send_json(Method::PATCH, &path, &owner, gym, &json!({"active": true})).await;
    assert_eq!(back["active"], true);
});

both_backends!(bad_plans_and_patches_are_refused_and_change_nothing, |app| {
    let (owner, gym) = app.gym().await;
    for bad in [
        json!({"name": "x", "kind": "pack", "valid_days": 30}),
        json!({"name": "x", "kind": "pack", "credits": 0, "valid_days": 30}),
        json!({"name": "x", "kind": "pack", "credits": 1001, "valid_days": 30}),
        json!({"name": "x", "kind": "pack", "credits": 4_294_967_296_i64, "valid_days": 30}),
        json!({"name": "x", "kind": "unlimited", "credits": 5, "valid_days": 30}),
        json!({"name": "x", "kind": "monthly", "valid_days": 30}),
        json!({"name": "x", "kind": "unlimited", "valid_days": 0}),
        json!({"name": "x", "kind": "unlimited", "valid_days": 3661}),
        json!({"name": "x", "kind": "unlimited", "valid_days": 30, "weekly_limit": 0}),
        json!({"name": "x", "kind": "unlimited", "valid_days": 30, "weekly_limit": 101}),
        json!({"name": "x", "kind": "unlimited", "valid_days": 30, "categories": []}),
        json!({"name": "x", "kind": "unlimited", "valid_days": 30, "categories": [" "]}),
        json!({"name": "x", "kind": "unlimited", "valid_days": 30, "categories": ["a\u{0}"]}),
        json!({"name": "x", "kind": "unlimited", "valid_days": 30, "categories": "Yoga"}),
        json!({"name": "  ", "kind": "unlimited", "valid_days": 30}),
        json!({"name": "x".repeat(201), "kind": "unlimited", "valid_days": 30}),
        json!({"kind": "unlimited", "valid_days": 30}),
        json!({"name": "x", "kind": "unlimited", "valid_days": "30"}),
        json!([]),
    ] {
        assert_error(&app.send_json(Method::POST, "/api/v1/plans", &owner, gym, &bad).await, 422, "validation_error");
    }
    let (_, list) = app.send_as(Method::GET, "/api/v1/plans?retired=true", &owner, gym).await;
    assert_eq!(list, json!([]), "nothing made");

    let (_, plan) = app.send_json(Method::POST, "/api/v1/plans", &owner, gym, &pack("Five", 5)).await;
    let (_, unlimited) = app
        .send_json(
            Method::POST,
            "/api/v1/plans",
            &owner,
            gym,
            &json!({"name": "U", "kind": "unlimited", "valid_days": 7}),
        )
        .await;
    let path = format!("/api/v1/plans/{}", plan["id"]);
    for bad in [
        json!({"name": null}),
        json!({"credits": null}),
        json!({"credits": 0}),
        json!({"valid_days": 4000}),
        json!({"active": null}),
        json!({"weekly_limit": -1}),
        json!({"categories": []}),
        json!({"name": 5}),
    ] {
        assert_error(&app.send_json(Method::PATCH, &path, &owner, gym, &bad).await, 422, "validation_error");
    }
    let upath = format!("/api/v1/plans/{}", unlimited["id"]);
    assert_error(
        &app.send_json(Method::PATCH, &upath, &owner, gym, &json!({"credits": 3})).await,
        422,
        "validation_error",
    );
    let (_, after) = app.send_as(Method::GET, &path, &owner, gym).await;
    assert_eq!(after, plan, "unchanged");
    let (_, after) = app.send_as(Method::GET, &upath, &owner, gym).await;
    assert_eq!(after["credits"], json!(null));

    for id in ["x", "99999999999999999999", "0"] {
        let (status, _) = app.send_as(Method::GET, &format!("/api/v1/plans/{id}"), &owner, gym).await;
        assert!(status == 404 || status == 422, "{id}: {status}");
    }
    assert_error(&app.send_as(Method::GET, "/api/v1/plans?limit=0", &owner, gym).await, 422, "validation_error");
    assert_error(&app.send_as(Method::GET, "/api/v1/plans?retired=maybe", &owner, gym).await, 422, "validation_error");
});

both_backends!(plans_belong_to_their_gym_and_only_admins_manage_them, |app| {
    let (owner, gym) = app.gym().await;
    let (other_owner, other_gym) = app.gym().await;
    let (_, theirs) = app.send_json(Method::POST, "/api/v1/plans", &other_owner, other_gym, &pack("Theirs", 3)).await;
    let path = format!("/api/v1/plans/{}", theirs["id"]);
    assert_error(&app.send_as(Method::GET, &path, &owner, gym).await, 404, "plan_not_found");
    assert_error(
        &app.send_json(Method::PATCH, &path, &owner, gym, &json!({"name": "Mine"})).await,
        404,
        "plan_not_found",
    );
    assert_error(&app.send_as(Method::DELETE, &path, &owner, gym).await, 404, "plan_not_found");
    let (_, list) = app.send_as(Method::GET, "/api/v1/plans", &owner, gym).await;
    assert_eq!(list, json!([]));
    let (_, still) = app.send_as(Method::GET, &path, &other_owner, other_gym).await;
    assert_eq!((&still["name"], &still["active"]), (&json!("Theirs"), &json!(true)));

    let (_, mine) = app.send_json(Method::POST, "/api/v1/plans", &owner, gym, &pack("Mine", 3)).await;
    let mine_path = format!("/api/v1/plans/{}", mine["id"]);
    let trainer = app.member(gym, &owner, "trainer").await;
    // The role is checked before the body: junk from a trainer is forbidden, not invalid.
    assert_error(&app.send_json(Method::POST, "/api/v1/plans", &trainer, gym, &json!([])).await, 403, "forbidden");
    assert_error(&app.send_json(Method::PATCH, &mine_path, &trainer, gym, &json!({"name": 1})).await, 403, "forbidden");
    assert_error(&app.send_as(Method::DELETE, &mine_path, &trainer, gym).await, 403, "forbidden");
    let (status, _) = app.send_as(Method::GET, "/api/v1/plans?retired=true", &trainer, gym).await;
    assert_eq!(status, 200);
    let outsider = app.member(other_gym, &other_owner, "member").await;
    assert_error(&app.send_as(Method::GET, "/api/v1/plans", &outsider, gym).await, 403, "not_a_member");
});
