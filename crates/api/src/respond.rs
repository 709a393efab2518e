//! Responses: JSON bodies, and cache-aside for cached reads.

use actix_web::HttpResponse;
use serde::Serialize;

use domain::cache::Read;
use domain::values::Actor;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tenant::AtGym;

/// Serves a JSON body from bytes.
pub fn json_bytes(status: actix_web::http::StatusCode, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json").body(bytes)
}

/// Serializes a value as a JSON response.
///
/// # Errors
/// Serialization failures (internal).
pub fn json<T: Serialize>(status: actix_web::http::StatusCode, value: &T) -> Result<HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(domain::DomainError::internal)?;
    Ok(json_bytes(status, bytes))
}

/// Where a cached read lives: a group of its own, or one field of a group shared
/// with its variants (pages, date ranges), all invalidated together.
pub enum Slot {
    /// A group holding this one read.
    Key(String),
    /// A field of a group: one variant of a list (a page, a date range).
    Field(String, String),
    /// A member's field of a group with one per member (dashboards).
    Member(String, String),
}

impl Slot {
    /// The group, the field and the most fields of its version.
    fn parts(&self) -> (&str, &str, usize) {
        match self {
            Slot::Key(k) => (k.as_str(), "", 1),
            Slot::Field(k, f) => (k.as_str(), f.as_str(), domain::cache::MAX_FIELDS),
            Slot::Member(k, f) => (k.as_str(), f.as_str(), domain::cache::MAX_MEMBER_FIELDS),
        }
    }
}

/// Cache-aside for a read of no gym (the caller's own profile): serves the cached
/// JSON bytes as they are, or loads, serializes, stores and serves.
///
/// # Errors
/// The loader's.
pub async fn cached_json<T, F>(state: &AppState, slot: Slot, load: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    F: std::future::Future<Output = Result<T, domain::DomainError>>,
{
    let (group, field, _) = slot.parts();
    let read = state.cache.read(group, field).await;
    serve(state, &slot, read, load).await
}

/// Cache-aside for a read of a gym: the caller's role and the cached value come in
/// one round trip ([`Identity::role_and_read`](crate::identity::Identity::role_and_read)),
/// and the value is served only to a member; `load` is given the admitted actor.
///
/// # Errors
/// `NotAMember`, then the loader's.
pub async fn cached_json_at<T, F, Fut>(
    state: &AppState,
    at: &AtGym,
    slot: Slot,
    load: F,
) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    F: FnOnce(Actor) -> Fut,
    Fut: std::future::Future<Output = Result<T, domain::DomainError>>,
{
    let (group, field, _) = slot.parts();
    let (role, read) = at.identity()?.role_and_read(at.user_id, at.gym_id, group, field).await?;
    let actor = at.admit(role);
    serve(state, &slot, read, load(actor)).await
}

/// Whether cached bytes can be served as a JSON body. Only this service fills the
/// cache, with `serde_json`'s output, so the first and last bytes tell a value
/// from junk (a foreign writer, a truncated value) without parsing it again.
fn looks_like_json(bytes: &[u8]) -> bool {
    matches!((bytes.first(), bytes.last()), (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']')))
}

async fn serve<T, F>(state: &AppState, slot: &Slot, read: Read, load: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    F: std::future::Future<Output = Result<T, domain::DomainError>>,
{
    use actix_web::http::StatusCode;
    if let Some(bytes) = read.value {
        if looks_like_json(&bytes) {
            return Ok(json_bytes(StatusCode::OK, bytes));
        }
        tracing::warn!("cached value is not JSON; reloading");
    }
    let value = load.await?;
    let bytes = serde_json::to_vec(&value).map_err(domain::DomainError::internal)?;
    // At the version read: if a write invalidated the group meanwhile, this value
    // lands where no reader looks.
    let (group, field, max_fields) = slot.parts();
    state.cache.fill(group, read.version, field, &bytes, state.cache_ttl, max_fields).await;
    Ok(json_bytes(StatusCode::OK, bytes))
}
