//! Responses: JSON bodies, and cache-aside for cached reads.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

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

/// Cache-aside for a read: serves the cached JSON bytes as they are, or loads,
/// serializes, stores and serves. A cached value that is not JSON is ignored.
///
/// # Errors
/// The loader's.
pub async fn cached_json<T, F>(state: &AppState, slot: Slot, load: F) -> Result<HttpResponse, ApiError>
where
    T: Serialize,
    F: std::future::Future<Output = Result<T, domain::DomainError>>,
{
    use actix_web::http::StatusCode;
    let (group, field, max_fields) = match &slot {
        Slot::Key(k) => (k.as_str(), "", 1),
        Slot::Field(k, f) => (k.as_str(), f.as_str(), domain::cache::MAX_FIELDS),
        Slot::Member(k, f) => (k.as_str(), f.as_str(), domain::cache::MAX_MEMBER_FIELDS),
    };
    let read = state.cache.read(group, field).await;
    if let Some(bytes) = read.value {
        if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
            return Ok(json_bytes(StatusCode::OK, bytes));
        }
        tracing::warn!("cached value is not JSON; reloading");
    }
    let value = load.await?;
    let bytes = serde_json::to_vec(&value).map_err(domain::DomainError::internal)?;
    // At the version read: if a write invalidated the group meanwhile, this value
    // lands where no reader looks.
    state.cache.fill(group, read.version, field, &bytes, state.cache_ttl, max_fields).await;
    Ok(json_bytes(StatusCode::OK, bytes))
}
