//! Contract §4, users and gyms: profiles, gyms, memberships and roles.

use gymapi_tests::{assert_error, both_backends, send};
use reqwest::Method;
use serde_json::json;

both_backends!(a_user_updates_their_name_and_phone, |app| {
    let u = app.user("profile").await;
    let profile = json!({"name": "Ana", "phone": "+34 600"});
    let (status, body) = send(app.call(Method::PATCH, "/api/v1/users/me", &u.token, None).json(&profile)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["name"].as_str(), body["phone"].as_str()), (Some("Ana"), Some("+34 600")));
    let (_, again) = send(app.call(Method::GET, "/api/v1/users/me", &u.token, None)).await;
    assert_eq!(again["name"], "Ana");
    assert!(again["updated_at"].as_str().is_some_and(|t| t.ends_with('Z')));
});

both_backends!(creating_a_gym_makes_the_caller_its_owner, |app| {
    let u = app.user("founder").await;
    let new = json!({"name": "Iron", "address": "Calle 1"});
    let (status, gym) = send(app.call(Method::POST, "/api/v1/gyms", &u.token, None).json(&new)).await;
    assert_eq!(status, 201, "{gym}");
    assert_eq!(gym["timezone"], "UTC");
    assert_eq!(gym["address"], "Calle 1");
    let (_, mine) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &u.token, None)).await;
    assert_eq!(mine, json!([{"gym": gym, "role": "owner"}]));
    let (status, current) = send(app.call(Method::GET, "/api/v1/gyms/current", &u.token, gym["id"].as_i64())).await;
    assert_eq!(status, 200);
    assert_eq!(current, gym);
});

both_backends!(adding_members_follows_the_grant_rules, |app| {
    let (owner, gym) = app.gym().await;
    let admin = app.member(gym, &owner, "admin").await;
    let newbie = app.user("newbie").await;
    let add = |token: &str, user: i64, role: &str| {
        app.call(Method::POST, "/api/v1/members", token, Some(gym)).json(&json!({"user_id": user, "role": role}))
    };
    assert_error(&send(add(&admin.token, newbie.id, "admin")).await, 403, "forbidden");
    assert_error(&send(add(&admin.token, newbie.id, "owner")).await, 403, "forbidden");
    assert_error(&send(add(&admin.token, 999_999, "member")).await, 404, "user_not_found");
    let (status, m) = send(add(&admin.token, newbie.id, "member")).await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(
        (m["user_id"].as_i64(), m["gym_id"].as_i64(), m["role"].as_str()),
        (Some(newbie.id), Some(gym), Some("member"))
    );
    assert!(m["joined_at"].is_string());
    assert_error(&send(add(&admin.token, newbie.id, "trainer")).await, 409, "already_member");
    // The new member sees the gym at once (the membership cache was invalidated).
    assert_eq!(send(app.call(Method::GET, "/api/v1/gyms/current", &newbie.token, Some(gym))).await.0, 200);
});

both_backends!(a_role_change_applies_on_the_next_request, |app| {
    let (owner, gym) = app.gym().await;
    let m = app.member(gym, &owner, "member").await;
    assert_error(&app.send_as(Method::GET, "/api/v1/members", &m, gym).await, 403, "forbidden");
    let (status, body) = app
        .send_json(Method::PATCH, &format!("/api/v1/members/{}", m.id), &owner, gym, &json!({"role": "trainer"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "trainer");
    assert_eq!(app.send_as(Method::GET, "/api/v1/members", &m, gym).await.0, 200);
    let got =
        app.send_json(Method::PATCH, &format!("/api/v1/members/{}", m.id), &owner, gym, &json!({"role": "boss"})).await;
    assert_error(&got, 422, "validation_error");
});

both_backends!(staff_list_members_filtered_by_role, |app| {
    let (owner, gym) = app.gym().await;
    let t = app.member(gym, &owner, "trainer").await;
    let m = app.member(gym, &owner, "member").await;
    let (status, all) = app.send_as(Method::GET, "/api/v1/members", &t, gym).await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().map(Vec::len), Some(3));
    let (_, members) = app.send_as(Method::GET, "/api/v1/members?role=member", &t, gym).await;
    assert_eq!(members.as_array().map(Vec::len), Some(1));
    assert_eq!(members[0]["user"]["id"].as_i64(), Some(m.id));
    assert_eq!(members[0]["role"], "member");
    let (_, page) = app.send_as(Method::GET, "/api/v1/members?skip=1&limit=1", &t, gym).await;
    assert_eq!(page.as_array().map(Vec::len), Some(1));
});

both_backends!(removing_members_and_the_last_owner_rule, |app| {
    let (owner, gym) = app.gym().await;
    let m = app.member(gym, &owner, "member").await;
    let del = |token: &str, user: i64| app.call(Method::DELETE, &format!("/api/v1/members/{user}"), token, Some(gym));
    assert_error(&send(del(&m.token, owner.id)).await, 403, "forbidden");
    let (status, _) = send(del(&owner.token, m.id)).await;
    assert_eq!(status, 204);
    assert_error(&app.send_as(Method::GET, "/api/v1/gyms/current", &m, gym).await, 403, "not_a_member");
    assert_error(&send(del(&owner.token, m.id)).await, 404, "user_not_found");
    assert_error(&send(del(&owner.token, owner.id)).await, 409, "last_owner");
    let demote = app
        .call(Method::PATCH, &format!("/api/v1/members/{}", owner.id), &owner.token, Some(gym))
        .json(&json!({"role": "admin"}));
    assert_error(&send(demote).await, 409, "last_owner");
    // With a second owner, the first may leave.
    let second = app.member(gym, &owner, "owner").await;
    assert_eq!(send(del(&second.token, owner.id)).await.0, 204);
});

both_backends!(users_are_visible_to_themselves_and_to_staff_of_their_gym, |app| {
    let (owner, gym) = app.gym().await;
    let trainer = app.member(gym, &owner, "trainer").await;
    let m1 = app.member(gym, &owner, "member").await;
    let m2 = app.member(gym, &owner, "member").await;
    let outsider = app.user("outsider").await;
    let get = |token: &str, id: i64| app.call(Method::GET, &format!("/api/v1/users/{id}"), token, Some(gym));
    let (status, me) = send(get(&m1.token, m1.id)).await;
    assert_eq!((status.as_u16(), me["id"].as_i64()), (200, Some(m1.id)));
    assert_error(&send(get(&m1.token, m2.id)).await, 403, "forbidden");
    assert_eq!(send(get(&trainer.token, m2.id)).await.0, 200);
    assert_error(&send(get(&trainer.token, outsider.id)).await, 404, "user_not_found");
    assert_error(&send(get(&trainer.token, 987_654)).await, 404, "user_not_found");
});

both_backends!(a_gym_asked_for_before_it_existed_is_usable_by_its_creator_at_once, |app| {
    let u = app.user("early-asker").await;
    // The next gym id is one past the last one; asking for it caches "not a member".
    let (_, probe) = app.gym().await;
    let next = probe + 1;
    assert_error(&app.send_as(Method::GET, "/api/v1/gyms/current", &u, next).await, 403, "not_a_member");
    let (status, gym) =
        send(app.call(Method::POST, "/api/v1/gyms", &u.token, None).json(&json!({"name": "Mine"}))).await;
    assert_eq!((status.as_u16(), gym["id"].as_i64()), (201, Some(next)));
    assert_eq!(send(app.call(Method::GET, "/api/v1/gyms/current", &u.token, Some(next))).await.0, 200);
});

both_backends!(user_ids_are_random_positive_integers_below_2_pow_53, |app| {
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(app.user(&format!("random-id-{i}")).await.id);
    }
    assert!(ids.iter().all(|&id| id > 0 && id < 1 << 53), "{ids:?}");
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "distinct: {ids:?}");
    // Not a sequence: twelve consecutive users would span 11.
    assert!(sorted[sorted.len() - 1] - sorted[0] > 1_000_000, "{ids:?}");
    // A guessed id finds nobody: adding the neighbour of a real id is user_not_found.
    let (owner, gym) = app.gym().await;
    let got = app
        .send_json(Method::POST, "/api/v1/members", &owner, gym, &json!({"user_id": owner.id + 1, "role": "member"}))
        .await;
    assert_error(&got, 404, "user_not_found");
});

both_backends!(a_member_may_leave_a_gym_but_its_last_owner_may_not, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let other = app.member(gym, &owner, "member").await;
    let me = |u: &gymapi_tests::TestUser| format!("/api/v1/members/{}", u.id);
    assert_error(&app.send_as(Method::DELETE, &me(&other), &member, gym).await, 403, "forbidden");
    let (status, _) = app.send_as(Method::GET, "/api/v1/gyms/current", &member, gym).await;
    assert_eq!(status, 200);
    assert_eq!(app.send_as(Method::DELETE, &me(&member), &member, gym).await.0, 204);
    let got = app.send_as(Method::GET, "/api/v1/gyms/current", &member, gym).await;
    assert_error(&got, 403, "not_a_member");
    let (_, gyms) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &member.token, None)).await;
    assert_eq!(gyms, json!([]));
    let got = send(app.call(Method::DELETE, &me(&owner), &owner.token, Some(gym))).await;
    assert_error(&got, 409, "last_owner");
    assert_eq!(app.send_as(Method::GET, "/api/v1/gyms/current", &owner, gym).await.0, 200);
});

both_backends!(a_member_who_leaves_gives_back_their_places_ahead, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 1).await;
    let start = gymapi_tests::now() + time::Duration::days(1);
    let s = app.session_at(gym, &owner, class, start).await;
    let one = format!("/api/v1/schedule/sessions/{}", s["id"]);
    assert_eq!(app.send_as(Method::POST, &format!("{one}/register"), &member, gym).await.0, 201);
    assert_eq!(app.send_as(Method::GET, &one, &owner, gym).await.1["registered_count"], 1);
    let leave = format!("/api/v1/members/{}", member.id);
    assert_eq!(app.send_as(Method::DELETE, &leave, &member, gym).await.0, 204);
    let (_, after) = app.send_as(Method::GET, &one, &owner, gym).await;
    assert_eq!(after["registered_count"], 0, "the place is free again: {after}");
    let (_, parts) = app.send_as(Method::GET, &format!("{one}/participants"), &owner, gym).await;
    assert_eq!(parts[0]["status"], "cancelled", "{parts}");
    let next = app.member(gym, &owner, "member").await;
    assert_eq!(app.send_as(Method::POST, &format!("{one}/register"), &next, gym).await.0, 201);
});
