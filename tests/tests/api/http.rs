//! Contract §2 and §7 (HTTP): error bodies everywhere, limits, request ids, language.

use gymapi_tests::{assert_error, both_backends, send};
use reqwest::Method;
use serde_json::json;

both_backends!(a_wrong_method_is_405_method_not_allowed_in_json, |app| {
    let (owner, gym) = app.gym().await;
    let got = app.send_as(Method::PUT, "/api/v1/gyms/current", &owner, gym).await;
    assert_error(&got, 405, "method_not_allowed");
    assert_error(&send(app.req(Method::POST, "/health")).await, 405, "method_not_allowed");
});

both_backends!(a_body_over_64_kib_is_413_and_nothing_is_created, |app| {
    let owner = app.user("big-body").await;
    let big = json!({"name": "x".repeat(70 * 1024)});
    let got = send(app.call(Method::POST, "/api/v1/gyms", &owner.token, None).json(&big)).await;
    assert_error(&got, 413, "payload_too_large");
    // Chunked: no Content-Length, the limit is enforced while reading.
    let status_line =
        post_chunked(&app.base, "/api/v1/gyms", &owner.token, &[b"{\"name\": \"", &[b'y'; 70 * 1024], b"\"}"]).await;
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    let (_, gyms) = send(app.call(Method::GET, "/api/v1/users/me/gyms", &owner.token, None)).await;
    assert_eq!(gyms, json!([]), "no gym may have been created");
});

both_backends!(bad_json_and_wrong_types_are_422_validation_error, |app| {
    let owner = app.user("bad-json").await;
    let got = send(
        app.call(Method::POST, "/api/v1/gyms", &owner.token, None)
            .header("Content-Type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_error(&got, 422, "validation_error");
    let got = send(app.call(Method::POST, "/api/v1/gyms", &owner.token, None).json(&json!({"name": 42}))).await;
    assert_error(&got, 422, "validation_error");
    let got = send(app.call(Method::POST, "/api/v1/gyms", &owner.token, None).json(&json!({}))).await;
    assert_error(&got, 422, "validation_error");
    let got = send(app.call(Method::POST, "/api/v1/gyms", &owner.token, None).json(&json!({"name": "   "}))).await;
    assert_error(&got, 422, "validation_error");
});

both_backends!(list_bounds_are_validated_not_clamped, |app| {
    let (owner, gym) = app.gym().await;
    for q in ["limit=0", "limit=501", "skip=-1", "limit=abc"] {
        let got = send(app.call(Method::GET, &format!("/api/v1/members?{q}"), &owner.token, Some(gym))).await;
        assert_error(&got, 422, "validation_error");
    }
    let (status, _) = app.send_as(Method::GET, "/api/v1/members?limit=500&skip=0", &owner, gym).await;
    assert_eq!(status, 200);
});

both_backends!(the_request_id_is_echoed_or_generated, |app| {
    let res = app.req(Method::GET, "/health").header("X-Request-ID", "abc-123").send().await.expect("send");
    assert_eq!(res.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("abc-123"));
    let res = app.req(Method::GET, "/api/v1/nowhere").send().await.expect("send");
    let id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(id.len() >= 16, "generated id {id:?}");
});

both_backends!(messages_are_spanish_when_spanish_is_preferred, |app| {
    let es = send(app.req(Method::GET, "/api/v1/users/me").header("Accept-Language", "es-ES,es;q=0.9")).await;
    assert_error(&es, 401, "missing_token");
    let en = send(app.req(Method::GET, "/api/v1/users/me").header("Accept-Language", "en-US,es;q=0.5")).await;
    assert_error(&en, 401, "missing_token");
    assert_ne!(es.1["detail"], en.1["detail"]);
    assert_eq!(es.1["detail"], "No autenticado: se requiere un token");
    let es404 = send(app.req(Method::GET, "/nowhere").header("Accept-Language", "es")).await;
    assert_eq!(es404.1["detail"], "No encontrado");
});

both_backends!(health_and_ready_answer, |app| {
    let (status, body) = send(app.req(Method::GET, "/health")).await;
    assert_eq!((status.as_u16(), body), (200, json!({"status": "ok"})));
    let (status, body) = send(app.req(Method::GET, "/ready")).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["cache"], "disabled");
});

/// Sends a chunked POST by hand (no Content-Length) and returns the status line.
pub(crate) async fn post_chunked(base: &str, path: &str, token: &str, chunks: &[&[u8]]) -> String {
    post_chunked_with(base, path, token, "", chunks).await
}

/// [`post_chunked`] with extra header lines (each ending in `\r\n`).
pub(crate) async fn post_chunked_with(base: &str, path: &str, token: &str, extra: &str, chunks: &[&[u8]]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n{extra}\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    for c in chunks {
        // The server may answer 413 and close before the whole body is sent.
        if stream.write_all(format!("{:x}\r\n", c.len()).as_bytes()).await.is_err()
            || stream.write_all(c).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).lines().next().unwrap_or_default().to_owned()
}

both_backends!(metrics_expose_every_contract_series_labelled_by_route_template, |app| {
    let (owner, gym) = app.gym().await;
    let class = app.class(gym, &owner, 5).await;
    let _ = app.send_as(Method::GET, &format!("/api/v1/schedule/classes/{class}"), &owner, gym).await;
    let _ = app.send_as(Method::GET, "/api/v1/schedule/classes", &owner, gym).await;
    let _ = app.send_as(Method::GET, "/api/v1/schedule/classes", &owner, gym).await;
    let _ = app.send_json(Method::POST, "/api/v1/attendance/check-in", &owner, gym, &json!({"qr_code": "bad"})).await;
    let text = app.req(Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text");
    for needle in [
        "gymapi_http_requests_total{",
        "gymapi_http_request_duration_seconds_bucket{",
        "gymapi_db_query_duration_seconds_bucket{",
        "gymapi_cache_operations_total{",
        "result=\"hit\"",
        "result=\"miss\"",
        "gymapi_checkins_total{result=\"invalid_qr\"}",
        "gymapi_db_pool_connections{state=\"idle\"}",
        "route=\"/api/v1/schedule/classes/{id}\"",
        "method=\"GET\"",
        "status=\"200\"",
    ] {
        assert!(text.contains(needle), "missing {needle} in /metrics:\n{text}");
    }
    assert!(!text.contains(&format!("/api/v1/schedule/classes/{class}\"")), "raw paths must not be labels");
});
