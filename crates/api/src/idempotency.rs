//! `Idempotency-Key` on every POST (the IETF httpapi draft): a retried request is
//! answered from what its first attempt answered, without doing the work again.
//!
//! The key belongs to the caller. The first request with it runs inside an
//! [`infra::db::idempotency::Hold`]: its service's transaction claims the key and
//! waits, uncommitted, until this middleware has the answer, then the work and the
//! answer commit together ([`Keys::settle`]). So:
//!
//! - a retry (same caller, key, method, route, gym and body) within a day replays
//!   the kept status and body with `Idempotent-Replayed: true`;
//! - the same key with anything else is `422 idempotency_key_reused`;
//! - a retry that arrives while the first is at work waits for it (its claim waits
//!   for the first transaction) and replays its answer; one that finds the key
//!   held and nothing kept is `409 idempotency_key_in_progress`;
//! - only work that committed is kept: a refusal keeps nothing, so a retry is
//!   decided again (nothing was done the first time);
//! - a success that changed nothing (cancelling a cancelled session) is kept too,
//!   in a transaction of its own.
//!
//! Check-ins carry their keys into the batch that checks them in (`crate::checkins`).

use actix_web::body::{BoxBody, MessageBody, to_bytes};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpMessage, HttpResponse, web};
use domain::DomainError;
use domain::facts::Dispatcher;
use futures_util::StreamExt;
use infra::db::Db;
use infra::db::idempotency::{Answer, Claim, Hold, Kept};
use sha2::{Digest, Sha256};

use crate::auth::authenticate;
use crate::error::{ApiError, Lang};
use crate::limits::MAX_BODY;

/// The request header.
pub const HEADER: &str = "Idempotency-Key";

/// The header of a replayed answer.
pub const REPLAYED: &str = "Idempotent-Replayed";

/// Longest key accepted (UUIDs are 36; the draft sets no bound).
pub const KEY_MAX: usize = 255;

/// Where keys are kept, and who hears the facts of the work they held back.
pub struct Keys {
    db: Db,
    dispatcher: Dispatcher,
}

impl Keys {
    /// Keys in `db`; facts of settled work go to `dispatcher`.
    pub fn new(db: Db, dispatcher: Dispatcher) -> Self {
        Self { db, dispatcher }
    }

    /// What the caller's key holds.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn kept(&self, claim: &Claim) -> Result<Option<Kept>, DomainError> {
        self.db.kept(claim.user, &claim.key).await
    }

    /// Keeps the answers and commits the work held back with them, then delivers
    /// its facts (see [`Db::settle`]).
    ///
    /// # Errors
    /// As [`Db::settle`]: nothing of the work was committed, or the outcome is unknown.
    pub async fn settle(&self, hold: &Hold, answers: &[Option<Answer>]) -> Result<(), DomainError> {
        let facts = self.db.settle(hold, answers).await?;
        self.dispatcher.deliver(facts).await;
        Ok(())
    }
}

/// The key of a request: absent, or one header of 1 to [`KEY_MAX`] printable ASCII
/// characters, bare or as a structured-field string (`"…"`, as the draft writes it).
///
/// # Errors
/// `422 validation_error` for two headers or a key out of shape.
pub fn key_of(headers: &header::HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER);
    let Some(value) = values.next() else { return Ok(None) };
    let bad = || ApiError::validation(format!("{HEADER} must be sent once, 1 to {KEY_MAX} printable ASCII characters"));
    if values.next().is_some() {
        return Err(bad());
    }
    let text = value.to_str().map_err(|_| bad())?.trim();
    let key = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner,
        None => text,
    };
    if key.is_empty() || key.len() > KEY_MAX || !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

/// What a request asked, as one digest: method, path and query, gym and body. A
/// key sent again with any of them different is another request.
pub fn fingerprint(req: &ServiceRequest, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(req.method().as_str().as_bytes());
    h.update(b"\n");
    h.update(req.uri().path_and_query().map_or("", |p| p.as_str()).as_bytes());
    for gym in req.headers().get_all("X-Gym-ID") {
        h.update(b"\nX-Gym-ID: ");
        h.update(gym.as_bytes());
    }
    h.update(b"\n\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// The middleware; see the module docs.
///
/// # Errors
/// Errors of inner services, passed through.
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let wanted = req.method() == Method::POST
        && req.headers().contains_key(HEADER)
        && req.resource_map().has_resource(req.match_info().as_str());
    if !wanted {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let lang = Lang::of(req.request());
    let Some(keys) = req.app_data::<web::Data<Keys>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // An unauthenticated request is refused by its route as ever; the key is the
    // caller's, so only a caller's request has one.
    let Ok(caller) = authenticate(req.request()).await else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let key = match key_of(req.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return Ok(next.call(req).await?.map_into_boxed_body()),
        Err(e) => return Ok(refuse(req, &e, lang)),
    };
    let body = match read_body(&mut req).await {
        Ok(body) => body,
        Err(e) => return Ok(refuse(req, &e, lang)),
    };
    let claim = Claim { user: caller.user_id, key, fingerprint: fingerprint(&req, &body) };
    match keys.kept(&claim).await {
        Err(e) => return Ok(refuse(req, &e.into(), lang)),
        Ok(Some(kept)) => return Ok(req.into_response(replay(&claim, &kept, lang))),
        Ok(None) => {}
    }
    req.set_payload(Payload::from(body));
    let hold = Hold::new(vec![claim.clone()]);
    let res = hold.run(next.call(req)).await?.map_into_boxed_body();
    if hold.is_settled() {
        return Ok(res);
    }
    if matches!(error_of(&res), Some(ApiError::Domain(DomainError::IdempotencyKeyInProgress))) {
        // The claim waited for the transaction that held the key: what it kept is
        // the answer for this request too.
        hold.abandon();
        let (req, res) = res.into_parts();
        return Ok(match keys.kept(&claim).await {
            Ok(Some(kept)) => ServiceResponse::new(req, replay(&claim, &kept, lang)),
            _ => ServiceResponse::new(req, res),
        });
    }
    if !res.status().is_success() {
        hold.abandon();
        return Ok(res);
    }
    let (req, res) = res.into_parts();
    let status = res.status();
    let headers = res.headers().clone();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = match to_bytes(res.into_body()).await {
        Ok(b) => b,
        Err(_) => {
            hold.abandon();
            let e = ApiError::from(DomainError::internal("an answer could not be read to keep it"));
            return Ok(ServiceResponse::new(req, e.render(lang)));
        }
    };
    let answer = Answer { status: status.as_u16(), content_type, body: String::from_utf8_lossy(&bytes).into_owned() };
    if let Err(e) = keys.settle(&hold, &[Some(answer)]).await {
        // Nothing committed: the client must not see the work's answer.
        return Ok(ServiceResponse::new(req, ApiError::from(e).render(lang)));
    }
    let mut out = HttpResponse::build(status);
    for (name, value) in &headers {
        out.append_header((name.clone(), value.clone()));
    }
    Ok(ServiceResponse::new(req, out.body(bytes)))
}

/// The request's body, read whole (the body-limit middleware bounded it already).
async fn read_body(req: &mut ServiceRequest) -> Result<Bytes, ApiError> {
    let mut payload = req.take_payload();
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::payload(&e))?;
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::PayloadTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The kept answer, or `422 idempotency_key_reused` when it answered another request.
fn replay(claim: &Claim, kept: &Kept, lang: Lang) -> HttpResponse {
    if kept.fingerprint != claim.fingerprint {
        metrics::counter!("gymapi_idempotent_requests_total", "outcome" => "reused").increment(1);
        return ApiError::IdempotencyKeyReused.render(lang);
    }
    metrics::counter!("gymapi_idempotent_requests_total", "outcome" => "replayed").increment(1);
    let status = StatusCode::from_u16(kept.answer.status).unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::build(status);
    if let Some(ct) = &kept.answer.content_type {
        res.insert_header((header::CONTENT_TYPE, ct.as_str()));
    }
    res.insert_header((REPLAYED, "true"));
    res.body(kept.answer.body.clone())
}

fn refuse(req: ServiceRequest, e: &ApiError, lang: Lang) -> ServiceResponse<BoxBody> {
    req.into_response(e.render(lang))
}

fn error_of(res: &ServiceResponse<BoxBody>) -> Option<&ApiError> {
    res.response().error().and_then(|e| e.as_error::<ApiError>())
}

/// The keyed answer of a check-in, for a batch that keeps it (shared with the route
/// so the kept bytes are the sent bytes).
pub fn json_answer<T: serde::Serialize>(status: StatusCode, value: &T) -> Option<Answer> {
    let body = serde_json::to_string(value).ok()?;
    Some(Answer { status: status.as_u16(), content_type: Some("application/json".into()), body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn key(values: &[&str]) -> Result<Option<String>, ApiError> {
        let mut req = TestRequest::default();
        for v in values {
            req = req.append_header((HEADER, *v));
        }
        key_of(req.to_http_request().headers())
    }

    #[test]
    fn keys_are_one_header_of_printable_ascii_bare_or_quoted() {
        assert_eq!(key(&[]).ok().flatten(), None);
        assert_eq!(key(&["abc-123"]).ok().flatten().as_deref(), Some("abc-123"));
        assert_eq!(key(&["\"8e03978e-40d5\""]).ok().flatten().as_deref(), Some("8e03978e-40d5"));
        assert_eq!(key(&[&"k".repeat(KEY_MAX)]).ok().flatten().map(|k| k.len()), Some(KEY_MAX));
        for bad in [&[""][..], &["\"\""], &[&"k".repeat(KEY_MAX + 1)], &["a", "b"], &["   "]] {
            assert!(matches!(key(bad), Err(ApiError::Domain(DomainError::Validation(_)))), "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_changes_with_route_gym_and_body() {
        let fp = |path: &str, gym: &str, body: &[u8]| {
            let req = TestRequest::post().uri(path).insert_header(("X-Gym-ID", gym)).to_srv_request();
            fingerprint(&req, body)
        };
        let base = fp("/api/v1/schedule/sessions/1/register", "1", b"{}");
        assert_eq!(base, fp("/api/v1/schedule/sessions/1/register", "1", b"{}"));
        assert_ne!(base, fp("/api/v1/schedule/sessions/2/register", "1", b"{}"));
        assert_ne!(base, fp("/api/v1/schedule/sessions/1/register", "2", b"{}"));
        assert_ne!(base, fp("/api/v1/schedule/sessions/1/register", "1", b"{ }"));
    }
}
