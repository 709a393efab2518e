//! What the load generators of `make bench` and `make soak` share.

use api::auth::{TokenClaims, sign_hs256};

/// An environment variable, or `default` when unset.
pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// An HS256 token for a subject with read and write scopes, valid for `secs`.
///
/// # Errors
/// When signing fails.
pub fn token(secret: &str, sub: &str, secs: u64) -> Result<String, String> {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp().unsigned_abs() + secs;
    let claims = TokenClaims {
        sub: sub.into(),
        exp,
        email: None,
        name: None,
        scope: Some("resource:read resource:write".into()),
        permissions: None,
    };
    sign_hs256(secret, &claims).map_err(|e| format!("sign: {e}"))
}

/// RFC 3339 of a time (empty when it cannot be written).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
