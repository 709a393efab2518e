//! Hostile input, round three: each class of input an attacker or a careless client
//! sent that an earlier round did not, with the contract's answer and no change.

use gymapi_tests::{TestApp, TestUser, assert_error, both_backends, now, rfc3339, send, session_url, two_instances};
use reqwest::Method;
use serde_json::{Value, json};
use time::Duration;

both_backends!(compressed_request_bodies_are_refused_unread_and_change_nothing, |app| {
    let owner = app.user("inflater").await;
    // What the bodies hold does not matter: they are refused by their header. (The
    // binary's test sends real bombs and measures the server's memory.)
    let bodies: [(&str, Vec<u8>); 6] = [
        ("zstd", vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0x38, 0x02, 0x00, 0x10, b' ']),
        ("gzip", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]),
        ("br", vec![0x1b; 1024]),
        ("deflate", vec![0x78; 1024]),
        ("gzip, identity", vec![0x1f, 0x8b]),
        ("x-whatever", b"{\"name\": \"Nope\"}".to_vec()),
    ];
    for (encoding, body) in bodies {
        let res = app
            .call(Method::POST, "/api/v1/gyms", &owner.token, None)
            .header("Content-Type", "application/json")
            .header("Content-Encoding", encoding)
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(res.headers().get("accept-encoding").and_then(|v| v.to_str().ok()), Some("identity"));
        assert!(res.headers().contains_key("x-request-id"), "{encoding}");
        let got = (res.status(), res.json::<Value>().await.expect("json"));
        assert_error(&got, 415, "unsupported_content_encoding");
    }
    let (_, gyms) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await;
    assert_eq!(gyms, json!([]), "no gym may have been created");
    let plain = app
        .call(Method::POST, "/api/v1/gyms", &owner.token, None)
        .header("Content-Encoding", "identity")
        .json(&json!({"name": "Plain"}));
    assert_eq!(send(plain).await.0, 201, "identity is the body as sent");
});

both_backends!(path_and_query_are_judged_after_the_gym_header_the_membership_and_the_role, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    // A user the server has never seen, then the same one known (the answer must not
    // depend on what is cached).
    let newcomer = gymapi_tests::token("never-seen-before", "resource:read resource:write");
    for _ in 0..2 {
        let got = send(app.call(Method::GET, "/api/v1/schedule/classes?limit=abc", &newcomer, None)).await;
        assert_error(&got, 400, "gym_id_required");
        let got = send(app.call(Method::GET, "/api/v1/users/abc", &newcomer, None)).await;
        assert_error(&got, 400, "gym_id_required");
    }
    let stranger = app.user("stranger").await;
    for path in ["/api/v1/users/abc", "/api/v1/schedule/sessions?start_date=never", "/api/v1/members?role=king"] {
        assert_error(&app.send_as(Method::GET, path, &stranger, gym).await, 403, "not_a_member");
    }
    let forbidden: [(Method, &str); 8] = [
        (Method::GET, "/api/v1/members?role=king"),
        (Method::GET, "/api/v1/members?limit=0"),
        (Method::DELETE, "/api/v1/schedule/classes/abc"),
        (Method::PATCH, "/api/v1/schedule/classes/abc"),
        (Method::POST, "/api/v1/schedule/sessions/abc/cancel"),
        (Method::GET, "/api/v1/schedule/sessions/abc/participants?limit=abc"),
        (Method::PATCH, "/api/v1/members/abc"),
        (Method::DELETE, "/api/v1/events/1.5"),
    ];
    for (method, path) in forbidden {
        let got = send(app.call(method.clone(), path, &member.token, Some(gym)).json(&json!({}))).await;
        assert_error(&got, 403, "forbidden");
        // The role allows it: now the path and query are judged.
        let got = send(app.call(method.clone(), path, &owner.token, Some(gym)).json(&json!({}))).await;
        assert_error(&got, 422, "validation_error");
    }
    assert_error(&app.send_as(Method::GET, "/api/v1/users/abc", &member, gym).await, 422, "validation_error");
});

both_backends!(a_qr_code_spelled_another_way_checks_nobody_in, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 10).await;
    app.session_at(gym, &owner, class, now() + Duration::minutes(5)).await;
    let (_, qr) = app.send_as(Method::GET, "/api/v1/attendance/my-qr", &member, gym).await;
    let code = qr["qr_code"].as_str().expect("code").to_owned();
    let (id, hex) = code[1..].split_once('_').expect("U{id}_{hex}");
    let mut respellings = vec![format!("U0{id}_{hex}"), format!("U000000{id}_{hex}")];
    // An all-digit secret (one in about 43) reads the same in upper case: no respelling then.
    if hex.bytes().any(|b| b.is_ascii_alphabetic()) {
        respellings.push(format!("U{id}_{}", hex.to_uppercase()));
    }
    for respelled in respellings {
        let got = app
            .send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &json!({"qr_code": respelled}))
            .await;
        assert_error(&got, 400, "invalid_qr");
    }
    let (_, last) = app.send_as(Method::GET, "/api/v1/attendance/me/last", &member, gym).await;
    assert_eq!(last["last_attendance"], Value::Null, "nobody was checked in");
    let got = app.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &json!({"qr_code": code})).await;
    assert_eq!(got.0, 200, "the code as printed still works: {}", got.1);
});

both_backends!(a_token_expiring_near_the_end_of_u64_answers_the_same_on_every_use, |app| {
    for exp in [u64::MAX, u64::MAX - 29, u64::MAX - 30, 1 << 63, i64::MAX.unsigned_abs() + 1] {
        let claims = api::auth::TokenClaims {
            sub: format!("far-future-{exp}"),
            exp,
            email: None,
            name: None,
            scope: Some("resource:read".into()),
            permissions: None,
        };
        let token = api::auth::sign_hs256(gymapi_tests::SECRET, &claims).expect("sign");
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(send(app.call(Method::GET, "/api/v1/users/me", &token, None)).await.0.as_u16());
        }
        assert_eq!(answers, [200; 4], "exp {exp}: every use alike");
    }
});

both_backends!(a_repeated_authorization_or_gym_header_is_refused, |app| {
    let (owner, gym) = app.gym().await;
    let other = app.user("second-credential").await;
    for second in [&owner.token, &other.token] {
        let res = app
            .req(Method::GET, "/api/v1/gyms/current")
            .header("Authorization", format!("Bearer {}", owner.token))
            .header("Authorization", format!("Bearer {second}"))
            .header("X-Gym-ID", gym.to_string())
            .send()
            .await
            .expect("send");
        assert_eq!(res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
        assert_error(&(res.status(), res.json().await.expect("json")), 401, "invalid_token");
    }
    for second in [gym.to_string(), "999999".to_owned()] {
        let got =
            send(app.call(Method::GET, "/api/v1/gyms/current", &owner.token, Some(gym)).header("X-Gym-ID", second))
                .await;
        assert_error(&got, 400, "invalid_gym_id");
    }
});

/// Sends raw bytes and reads the whole answer (the connection closes after it).
async fn raw(app: &TestApp, request: &[u8], then_close_write: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    if then_close_write {
        stream.shutdown().await.expect("half-close");
    }
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The first response of a raw answer: status, lower-cased head, body.
fn first_response(text: &str) -> (u16, String, Value) {
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let head = head.to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(rest.len());
    let body = serde_json::from_str(rest.get(..len).unwrap_or(rest)).unwrap_or(Value::Null);
    (status, head, body)
}

both_backends!(broken_body_framing_is_answered_in_the_contract_format_and_counted, |app| {
    let owner = app.user("framer").await;
    let addr = app.base.trim_start_matches("http://");
    let head = |framing: &str| {
        format!(
            "POST /api/v1/gyms HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\n{framing}\r\n",
            owner.token
        )
    };
    let before = counted_400s(&app).await;
    let cases = [
        (format!("{}zz\r\n{{}}\r\n0\r\n\r\n", head("Transfer-Encoding: chunked\r\n")), false),
        (format!("{}5\r\n{{\"name\": \"x\"}}\r\n0\r\n\r\n", head("Transfer-Encoding: chunked\r\n")), false),
        (format!("{}{{\"name\": ", head("Content-Length: 100\r\n")), true),
    ];
    for (request, close) in cases {
        let (status, head, body) = first_response(&raw(&app, request.as_bytes(), close).await);
        assert_eq!(status, 400, "{request:?}: {head} {body}");
        assert_eq!(body["code"], "malformed_request", "{head} {body}");
        assert!(body["detail"].is_string());
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("x-request-id:"), "{head}");
    }
    let (_, gyms) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await;
    assert_eq!(gyms, json!([]), "nothing was created");
    assert!(counted_400s(&app).await >= before + 3.0, "the three answers are counted");
});

/// `gymapi_http_requests_total{route="/api/v1/gyms",status="400"}` (process-wide).
async fn counted_400s(app: &TestApp) -> f64 {
    let (_, metrics) = send(app.req(Method::GET, "/metrics")).await;
    metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("gymapi_http_requests_total") && l.contains("route=\"/api/v1/gyms\""))
        .filter(|l| l.contains("status=\"400\""))
        .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()))
        .sum()
}

both_backends!(the_last_day_of_9999_can_be_listed, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 5).await;
    let last = time::macros::datetime!(9999-12-31 12:00 UTC);
    let session = app.session_at(gym, &owner, class, last).await;
    let (status, event) = app
        .create_event(
            gym,
            &owner,
            &json!({"title": "Last", "start_time": rfc3339(last), "end_time": "9999-12-31T23:59:59Z"}),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    for (path, id) in [("/api/v1/schedule/sessions", &session["id"]), ("/api/v1/events", &event["id"])] {
        for query in ["start_date=9999-12-31&end_date=9999-12-31", "start_date=9999-12-30", "end_date=9999-12-31"] {
            let (status, list) = app.send_as(Method::GET, &format!("{path}?{query}"), &owner, gym).await;
            assert_eq!(status, 200, "{path}?{query}: {list}");
            assert_eq!(list.as_array().map(|l| l.iter().map(|x| &x["id"]).collect::<Vec<_>>()), Some(vec![id]));
        }
    }
});

both_backends!(accept_language_weights_choose_the_language, |app| {
    let owner = app.user("polyglot").await;
    let detail = |lang: &'static str| {
        let rb = app.call(Method::GET, "/api/v1/gyms/current", &owner.token, None).header("Accept-Language", lang);
        async move { send(rb).await.1["detail"].as_str().unwrap_or_default().to_owned() }
    };
    let spanish = detail("es").await;
    let english = detail("en").await;
    assert_ne!(spanish, english);
    for es in ["en;q=0.5, es", "es-ES,es;q=0.9", "fr;q=0.2, es;q=0.3, en;q=0.1", "en;q=0, es;q=0.001"] {
        assert_eq!(detail(es).await, spanish, "{es:?}");
    }
    for en in ["es;q=0", "es;q=0.5, en", "en, es", "es;q=0.000, en;q=0.1", "*;q=1, es;q=0.9"] {
        assert_eq!(detail(en).await, english, "{en:?}");
    }
});

both_backends!(giving_back_a_place_one_does_not_hold_is_404_not_registered, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let class = app.class(gym, &owner, 5).await;
    let session = app.session_at(gym, &owner, class, now() + Duration::days(1)).await;
    let url = session_url(&session, "register");
    assert_error(&app.send_as(Method::DELETE, &url, &member, gym).await, 404, "not_registered");
    assert_eq!(app.send_as(Method::POST, &url, &member, gym).await.0, 201);
    assert_eq!(app.send_as(Method::DELETE, &url, &member, gym).await.0, 204);
    assert_error(&app.send_as(Method::DELETE, &url, &member, gym).await, 404, "not_registered");
    let missing = "/api/v1/schedule/sessions/999999999/register";
    assert_error(&app.send_as(Method::DELETE, missing, &member, gym).await, 404, "session_not_found");
});

/// A session's participations as staff see them: `(member, status)`.
async fn participations(app: &TestApp, staff: &TestUser, gym: i64, session: &Value) -> Vec<(i64, String)> {
    let (status, list) = app.send_as(Method::GET, &session_url(session, "participants"), staff, gym).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|p| (p["member_id"].as_i64().unwrap_or(0), p["status"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

two_instances!(a_member_removed_while_booking_keeps_no_place, |a, b| {
    let (owner, gym) = a.gym().await;
    let class = a.class(gym, &owner, 50).await;
    for round in 0..12 {
        let session = a.session_at(gym, &owner, class, now() + Duration::days(1)).await;
        let member = a.member(gym, &owner, "member").await;
        // The member is known to both instances before the race, as in production.
        assert_eq!(b.send_as(Method::GET, "/api/v1/gyms/current", &member, gym).await.0, 200);
        let book_url = session_url(&session, "register");
        let remove_url = format!("/api/v1/members/{}", member.id);
        let (booked, removed) = tokio::join!(
            b.send_as(Method::POST, &book_url, &member, gym),
            a.send_as(Method::DELETE, &remove_url, &owner, gym),
        );
        assert_eq!(removed.0, 204, "round {round}: {}", removed.1);
        assert!(
            booked.0 == 201 || booked.1["code"] == "not_a_member",
            "round {round}: a booking lands or is refused as not_a_member: {booked:?}"
        );
        let rows = participations(&a, &owner, gym, &session).await;
        let holding = rows.iter().filter(|(m, s)| *m == member.id && (s == "registered" || s == "attended")).count();
        assert_eq!(holding, 0, "round {round}: the removed member holds no place: {rows:?}");
        let (_, s) = a.send_as(Method::GET, &format!("/api/v1/schedule/sessions/{}", session["id"]), &owner, gym).await;
        let counted = rows.iter().filter(|(_, s)| s == "registered" || s == "attended").count();
        assert_eq!(s["registered_count"].as_u64(), Some(counted as u64), "round {round}: the count matches the rows");
    }
});
