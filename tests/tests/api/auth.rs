//! Contract §3: authentication, scopes, the gym header, roles.

use gymapi_tests::{Backend, Options, SECRET, TestApp, TestDb, assert_error, both_backends, send, token};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

fn exp_in(secs: i64) -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() + secs
}

fn hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).expect("sign")
}

both_backends!(no_token_is_missing_token_with_www_authenticate, |app| {
    let res = app.req(Method::GET, "/api/v1/users/me").send().await.expect("send");
    assert_eq!(res.headers().get("www-authenticate").map(|v| v.to_str().ok()), Some(Some("Bearer")));
    let got = send(app.req(Method::GET, "/api/v1/users/me")).await;
    assert_error(&got, 401, "missing_token");
});

both_backends!(no_token_with_a_gym_header_is_still_missing_token, |app| {
    let got = send(app.req(Method::GET, "/api/v1/gyms/current").header("X-Gym-ID", "abc")).await;
    assert_error(&got, 401, "missing_token");
});

both_backends!(an_unknown_route_is_not_found_even_without_a_token, |app| {
    assert_error(&send(app.req(Method::GET, "/api/v1/nowhere")).await, 404, "not_found");
    assert_error(&send(app.req(Method::GET, "/nowhere")).await, 404, "not_found");
});

both_backends!(forged_expired_none_and_garbage_tokens_are_invalid_token, |app| {
    let forged = hs256(b"not-the-secret-not-the-secret-xx", &json!({"sub": "eve", "exp": exp_in(3600)}));
    let expired = hs256(SECRET.as_bytes(), &json!({"sub": "eve", "exp": exp_in(-3600)}));
    let no_sub = hs256(SECRET.as_bytes(), &json!({"exp": exp_in(3600)}));
    let no_exp = hs256(SECRET.as_bytes(), &json!({"sub": "eve"}));
    // alg: none — header {"alg":"none","typ":"JWT"}, claims, empty signature.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(json!({"sub": "eve", "exp": exp_in(3600)}).to_string())
    );
    for bad in [forged, expired, no_sub, no_exp, none, "garbage".into(), "a.b.c".into()] {
        let got = send(app.call(Method::GET, "/api/v1/users/me", &bad, None)).await;
        assert_error(&got, 401, "invalid_token");
    }
    let got = send(app.req(Method::GET, "/api/v1/users/me").header("Authorization", "Basic dXNlcjpwYXNz")).await;
    assert_error(&got, 401, "invalid_token");
});

both_backends!(the_first_request_provisions_the_user_from_the_claims, |app| {
    let t = hs256(
        SECRET.as_bytes(),
        &json!({"sub": "auth0|new", "exp": exp_in(3600), "email": "n@x.io", "name": "New Person"}),
    );
    let (status, body) = send(app.call(Method::GET, "/api/v1/users/me", &t, None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth0_id"], "auth0|new");
    assert_eq!(body["email"], "n@x.io");
    assert_eq!(body["name"], "New Person");
    assert!(body["phone"].is_null());
    let (_, again) = send(app.call(Method::GET, "/api/v1/users/me", &t, None)).await;
    assert_eq!(again["id"], body["id"], "the same subject is the same user");
});

both_backends!(mutations_need_the_write_scope, |app| {
    let read_only = token("reader", "resource:read");
    let got = send(app.call(Method::POST, "/api/v1/gyms", &read_only, None).json(&json!({"name": "G"}))).await;
    assert_error(&got, 403, "insufficient_scope");
    let got = send(app.call(Method::PATCH, "/api/v1/users/me", &read_only, None).json(&json!({"name": "x"}))).await;
    assert_error(&got, 403, "insufficient_scope");
    // Reads do not need it.
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me", &read_only, None)).await.0, 200);
    // Auth0 `permissions` count as well as `scope`.
    let perm =
        hs256(SECRET.as_bytes(), &json!({"sub": "perm", "exp": exp_in(3600), "permissions": ["resource:write"]}));
    let (status, body) = send(app.call(Method::POST, "/api/v1/gyms", &perm, None).json(&json!({"name": "G"}))).await;
    assert_eq!(status, 201, "{body}");
});

both_backends!(gym_routes_need_a_well_formed_gym_header, |app| {
    let (owner, _) = app.gym().await;
    let got = send(app.call(Method::GET, "/api/v1/gyms/current", &owner.token, None)).await;
    assert_error(&got, 400, "gym_id_required");
    for bad in ["0", "-1", "+1", "1 2", "abc", "1.5", "1e3", "0x10", "99999999999999999999"] {
        let got =
            send(app.req(Method::GET, "/api/v1/gyms/current").bearer_auth(&owner.token).header("X-Gym-ID", bad)).await;
        assert_error(&got, 400, "invalid_gym_id");
    }
});

both_backends!(a_missing_gym_and_a_foreign_gym_get_identical_not_a_member, |app| {
    let (_, gym) = app.gym().await;
    let stranger = app.user("stranger").await;
    let foreign = app.call(Method::GET, "/api/v1/gyms/current", &stranger.token, Some(gym)).send().await.expect("send");
    let missing =
        app.call(Method::GET, "/api/v1/gyms/current", &stranger.token, Some(gym + 1000)).send().await.expect("send");
    assert_eq!(foreign.status(), 403);
    assert_eq!(missing.status(), 403);
    let (a, b) = (foreign.bytes().await.expect("body"), missing.bytes().await.expect("body"));
    assert_eq!(a, b, "bodies must be byte-identical");
    let v: serde_json::Value = serde_json::from_slice(&a).expect("json");
    assert_eq!(v["code"], "not_a_member");
});

both_backends!(a_route_above_the_callers_role_is_forbidden, |app| {
    let (owner, gym) = app.gym().await;
    let member = app.member(gym, &owner, "member").await;
    let got = send(app.call(Method::GET, "/api/v1/members", &member.token, Some(gym))).await;
    assert_error(&got, 403, "forbidden");
});

/// A JWKS server for RS256 tests: serves whatever JSON is current.
async fn jwks_server(jwks: std::sync::Arc<std::sync::Mutex<String>>) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        let jwks = jwks.clone();
        App::new().route(
            "/.well-known/jwks.json",
            web::get().to(move || {
                let body = jwks.lock().map(|s| s.clone()).unwrap_or_default();
                async move { HttpResponse::Ok().content_type("application/json").body(body) }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/.well-known/jwks.json")
}

struct RsaKey {
    pem: String,
    public_pem: String,
    jwk: serde_json::Value,
}

fn rsa_key(kid: &str) -> RsaKey {
    use base64::Engine as _;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    let key = rsa::PrivateKey::new(&mut rand::rng(), 2048).expect("rsa key");
    let public = rsa::PublicKey::from(&key);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    RsaKey {
        pem: key.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string(),
        public_pem: public.to_public_key_pem(LineEnding::LF).expect("public pem"),
        jwk: json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64.encode(public.n().to_be_bytes()), "e": b64.encode(public.e().to_be_bytes()),
        }),
    }
}

fn rs256(key: &RsaKey, kid: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(key.pem.as_bytes()).expect("key")).expect("sign")
}

async fn spawn_jwks_app(jwks: &std::sync::Arc<std::sync::Mutex<String>>, extra: Vec<(String, String)>) -> TestApp {
    let url = jwks_server(jwks.clone()).await;
    let db = std::sync::Arc::new(TestDb::create(Backend::Sqlite).await);
    TestApp::spawn_on(db, Options { jwks_url: Some(url), extra, ..Options::default() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_verify_against_the_jwks_and_a_new_kid_is_refetched() {
    let k1 = rsa_key("k1");
    let jwks = std::sync::Arc::new(std::sync::Mutex::new(json!({"keys": [k1.jwk.clone()]}).to_string()));
    let app = spawn_jwks_app(&jwks, vec![]).await;
    let t1 = rs256(&k1, "k1", &json!({"sub": "rs-user", "exp": exp_in(3600)}));
    let (status, body) = send(app.call(Method::GET, "/api/v1/users/me", &t1, None)).await;
    assert_eq!(status, 200, "{body}");

    // The issuer rotates in a second key: a token with the new kid triggers a refetch.
    let k2 = rsa_key("k2");
    *jwks.lock().expect("lock") = json!({"keys": [k1.jwk.clone(), k2.jwk.clone()]}).to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let t2 = rs256(&k2, "k2", &json!({"sub": "rs-user", "exp": exp_in(3600)}));
    let (status, body) = send(app.call(Method::GET, "/api/v1/users/me", &t2, None)).await;
    assert_eq!(status, 200, "{body}");

    // A kid the issuer never published stays invalid.
    let k3 = rsa_key("k3");
    let t3 = rs256(&k3, "k3", &json!({"sub": "rs-user", "exp": exp_in(3600)}));
    assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &t3, None)).await, 401, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_tokens_are_refused_when_keys_come_from_a_jwks() {
    let k1 = rsa_key("k1");
    let jwks = std::sync::Arc::new(std::sync::Mutex::new(json!({"keys": [k1.jwk.clone()]}).to_string()));
    let app = spawn_jwks_app(&jwks, vec![]).await;
    let claims = json!({"sub": "mallory", "exp": exp_in(3600)});
    // The confusion attack: HS256 "signed" with the RSA public key as the secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let confused =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(k1.public_pem.as_bytes())).expect("sign");
    assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &confused, None)).await, 401, "invalid_token");
    let plain_hs = hs256(SECRET.as_bytes(), &claims);
    assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &plain_hs, None)).await, 401, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_and_audience_must_match_when_configured() {
    let k1 = rsa_key("k1");
    let jwks = std::sync::Arc::new(std::sync::Mutex::new(json!({"keys": [k1.jwk.clone()]}).to_string()));
    let extra = vec![
        ("AUTH_ISSUER".to_owned(), "https://issuer.test/".to_owned()),
        ("AUTH_AUDIENCE".to_owned(), "gymapi".to_owned()),
    ];
    let app = spawn_jwks_app(&jwks, extra).await;
    let good =
        rs256(&k1, "k1", &json!({"sub": "a", "exp": exp_in(3600), "iss": "https://issuer.test/", "aud": "gymapi"}));
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me", &good, None)).await.0, 200);
    let bad_iss =
        rs256(&k1, "k1", &json!({"sub": "a", "exp": exp_in(3600), "iss": "https://evil.test/", "aud": "gymapi"}));
    assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &bad_iss, None)).await, 401, "invalid_token");
    let bad_aud =
        rs256(&k1, "k1", &json!({"sub": "a", "exp": exp_in(3600), "iss": "https://issuer.test/", "aud": "other"}));
    assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &bad_aud, None)).await, 401, "invalid_token");
}

both_backends!(a_token_not_yet_valid_or_with_an_empty_sub_is_invalid_token, |app| {
    let early = hs256(SECRET.as_bytes(), &json!({"sub": "soon", "exp": exp_in(7200), "nbf": exp_in(3600)}));
    assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &early, None)).await, 401, "invalid_token");
    // nbf gets the same leeway as exp (30 s of clock skew).
    let skewed = hs256(SECRET.as_bytes(), &json!({"sub": "skewed", "exp": exp_in(3600), "nbf": exp_in(10)}));
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me", &skewed, None)).await.0, 200);
    let past = hs256(SECRET.as_bytes(), &json!({"sub": "now", "exp": exp_in(3600), "nbf": exp_in(-10)}));
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me", &past, None)).await.0, 200);
    for sub in ["", "   "] {
        let t = hs256(SECRET.as_bytes(), &json!({"sub": sub, "exp": exp_in(3600)}));
        let got = send(app.call(Method::GET, "/api/v1/users/me", &t, None)).await;
        assert_error(&got, 401, "invalid_token");
        let res = app.call(Method::GET, "/api/v1/users/me", &t, None).send().await.expect("send");
        assert_eq!(res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    }
});

both_backends!(oversized_tokens_are_invalid_token_even_when_signed, |app| {
    // A 100 KB token (a claim padded to 75,000 characters, base64 makes it 100 KB).
    let padded = hs256(SECRET.as_bytes(), &json!({"sub": "big", "exp": exp_in(3600), "pad": "x".repeat(75_000)}));
    assert!((100_000..110_000).contains(&padded.len()), "{}", padded.len());
    let scopes: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
    let scoped = hs256(SECRET.as_bytes(), &json!({"sub": "scopes", "exp": exp_in(3600), "scope": scopes.join(" ")}));
    for t in [padded, scoped] {
        assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &t, None)).await, 401, "invalid_token");
    }
    let at_the_limit = hs256(SECRET.as_bytes(), &json!({"sub": "fits", "exp": exp_in(3600), "pad": "x".repeat(8_000)}));
    assert!(at_the_limit.len() <= api::auth::MAX_TOKEN_BYTES);
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me", &at_the_limit, None)).await.0, 200);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_answering_junk_or_errors_makes_unknown_keys_invalid_token_at_once() {
    use std::time::{Duration, Instant};
    for mode in [JwksMode::Junk, JwksMode::Down] {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mode = std::sync::Arc::new(std::sync::Mutex::new(mode));
        let url = jwks_server_with_modes("{}".into(), mode, hits).await;
        let db = std::sync::Arc::new(TestDb::create(Backend::Sqlite).await);
        let app = TestApp::spawn_on(db, Options { jwks_url: Some(url), ..Options::default() }).await;
        let key = rsa_key("k-any");
        let t = rs256(&key, "k-any", &json!({"sub": "eve", "exp": exp_in(3600)}));
        let began = Instant::now();
        for _ in 0..5 {
            assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &t, None)).await, 401, "invalid_token");
        }
        assert!(began.elapsed() < api::auth::JWKS_FETCH_TIMEOUT + Duration::from_secs(1), "{:?}", began.elapsed());
    }
}

/// How the test JWKS server answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum JwksMode {
    Ok,
    Slow,
    Down,
    Junk,
}

/// A JWKS server whose behaviour can change, counting the fetches it received.
async fn jwks_server_with_modes(
    body: String,
    mode: std::sync::Arc<std::sync::Mutex<JwksMode>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(move || {
        let (body, mode, hits) = (body.clone(), mode.clone(), hits.clone());
        App::new().route(
            "/jwks.json",
            web::get().to(move || {
                let (body, hits) = (body.clone(), hits.clone());
                let mode = mode.lock().map(|m| *m).unwrap_or(JwksMode::Down);
                async move {
                    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match mode {
                        JwksMode::Ok => HttpResponse::Ok().content_type("application/json").body(body),
                        JwksMode::Slow => {
                            // Longer than the service's fetch timeout.
                            tokio::time::sleep(std::time::Duration::from_secs(8)).await;
                            HttpResponse::Ok().content_type("application/json").body(body)
                        }
                        JwksMode::Down => HttpResponse::ServiceUnavailable().body("down"),
                        JwksMode::Junk => {
                            HttpResponse::Ok().content_type("application/json").body("{\"keys\": 7, <html>")
                        }
                    }
                }
            }),
        )
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/jwks.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_is_fetched_at_start_once_at_a_time_and_backed_off_when_slow_or_down() {
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::{Duration, Instant};
    let k1 = rsa_key("k1");
    let mode = std::sync::Arc::new(std::sync::Mutex::new(JwksMode::Ok));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let body = json!({"keys": [k1.jwk.clone()]}).to_string();
    let url = jwks_server_with_modes(body, mode.clone(), hits.clone()).await;
    let db = std::sync::Arc::new(TestDb::create(Backend::Sqlite).await);
    let app = TestApp::spawn_on(db, Options { jwks_url: Some(url), ..Options::default() }).await;
    // Keys are fetched at start-up, before any request.
    let start = Instant::now();
    while hits.load(SeqCst) == 0 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits.load(SeqCst), 1, "one fetch at start-up");
    let good = rs256(&k1, "k1", &json!({"sub": "jwks-user", "exp": exp_in(3600)}));
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me", &good, None)).await.0, 200);
    assert_eq!(hits.load(SeqCst), 1, "a known kid costs no fetch");

    // A slow issuer: twenty tokens with an unknown kid share one fetch, and none
    // waits much past the fetch timeout.
    *mode.lock().expect("mode") = JwksMode::Slow;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stranger = rsa_key("k-unknown");
    let forged = rs256(&stranger, "k-unknown", &json!({"sub": "eve", "exp": exp_in(3600)}));
    let began = Instant::now();
    let results =
        futures_util::future::join_all((0..20).map(|_| send(app.call(Method::GET, "/api/v1/users/me", &forged, None))))
            .await;
    let waited = began.elapsed();
    for got in &results {
        assert_error(got, 401, "invalid_token");
    }
    assert!(waited < api::auth::JWKS_FETCH_TIMEOUT + Duration::from_secs(2), "waited {waited:?}");
    assert_eq!(hits.load(SeqCst), 2, "one fetch for twenty waiters");

    // Down: the failure is backed off, so a burst causes no fetch at all.
    *mode.lock().expect("mode") = JwksMode::Down;
    let before = hits.load(SeqCst);
    let began = Instant::now();
    for _ in 0..10 {
        assert_error(&send(app.call(Method::GET, "/api/v1/users/me", &forged, None)).await, 401, "invalid_token");
    }
    assert!(began.elapsed() < Duration::from_secs(2), "answered at once: {:?}", began.elapsed());
    assert_eq!(hits.load(SeqCst), before, "no fetch inside the back-off");
    // Known keys keep working while the issuer is down.
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me", &good, None)).await.0, 200);
}
