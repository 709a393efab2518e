//! Bearer-token authentication: HS256 with the configured secret, or RS256 against
//! a JWKS (cached, refetched when a token names an unknown `kid`). Exactly one
//! algorithm is accepted per deployment, so an HS256 token "signed" with the RSA
//! public key — the classic confusion attack — is refused.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use domain::UserId;
use domain::users::Claims;
use futures_util::future::LocalBoxFuture;
use infra::config::Settings;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The scope mutating requests need.
pub const WRITE_SCOPE: &str = "resource:write";

/// Least time between two JWKS fetches caused by unknown `kid`s, so forged tokens
/// cannot turn the service into a load generator against the issuer.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// How often the keys are fetched again, so that a key the issuer withdrew (rotated
/// out, revoked) stops verifying even when no token names an unknown `kid`.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(600);

/// Longest a JWKS fetch may take: no request waits longer than this for keys.
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest pause between fetches after repeated failures (the pause doubles from
/// [`JWKS_REFETCH_INTERVAL`] with each failure in a row).
const JWKS_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Authentication settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// Neither `AUTH_JWT_SECRET` nor `AUTH_JWKS_URL`.
    #[error("AUTH_JWT_SECRET or AUTH_JWKS_URL must be set")]
    NoKeys,
    /// The HTTP client of the JWKS could not be built.
    #[error("AUTH_JWKS_URL: {0}")]
    Client(#[source] reqwest::Error),
}

/// The claims GymAPI reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Subject.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Auth0-style permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

impl TokenClaims {
    fn has_scope(&self, wanted: &str) -> bool {
        self.scope.as_deref().is_some_and(|s| s.split_whitespace().any(|x| x == wanted))
            || self.permissions.as_ref().is_some_and(|p| p.iter().any(|x| x == wanted))
    }
}

/// When the next fetch may start, and how many fetches failed in a row.
struct FetchState {
    not_before: Option<Instant>,
    failures: u32,
}

/// Keys of an OIDC issuer, fetched at start-up and again when a token names an
/// unknown `kid`. Only one fetch is in flight at a time (the mutex): whoever waited
/// for it reads what it brought instead of fetching again, and a failed fetch
/// backs off exponentially, so no request waits longer than one fetch.
pub struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    fetch: tokio::sync::Mutex<FetchState>,
}

impl Jwks {
    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().ok().and_then(|k| k.get(kid).cloned())
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(k) = self.cached(kid) {
            return Some(k);
        }
        // Bounded twice: the wait for an in-flight fetch and the fetch itself each
        // end within the fetch timeout.
        let mut state = tokio::time::timeout(JWKS_FETCH_TIMEOUT, self.fetch.lock()).await.ok()?;
        if let Some(k) = self.cached(kid) {
            return Some(k);
        }
        if state.not_before.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        self.refresh_locked(&mut state).await;
        self.cached(kid)
    }

    /// Fetches the keys now (start-up), unless a fetch is already running.
    pub async fn refresh(&self) {
        if let Ok(mut state) = self.fetch.try_lock() {
            self.refresh_locked(&mut state).await;
        }
    }

    async fn refresh_locked(&self, state: &mut FetchState) {
        match self.download().await {
            Ok(keys) => {
                if let Ok(mut k) = self.keys.write() {
                    *k = keys;
                }
                state.failures = 0;
                state.not_before = Some(Instant::now() + JWKS_REFETCH_INTERVAL);
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let backoff = JWKS_REFETCH_INTERVAL.saturating_mul(1 << state.failures.min(6)).min(JWKS_MAX_BACKOFF);
                state.not_before = Some(Instant::now() + backoff);
                tracing::warn!(error = %e, url = %self.url, backoff_s = backoff.as_secs(), "JWKS fetch failed");
            }
        }
    }

    async fn download(&self) -> Result<HashMap<String, DecodingKey>, reqwest::Error> {
        let set: JwkSet = self.client.get(&self.url).send().await?.error_for_status()?.json().await?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
            .collect())
    }
}

enum Keys {
    Hs256(DecodingKey),
    Rs256(std::sync::Arc<Jwks>),
}

/// Verifies bearer tokens.
pub struct Verifier {
    keys: Keys,
    validation: Validation,
    /// Tokens already verified, so a client's repeated token costs a hash lookup
    /// instead of a signature check and two JSON parses; `exp` is still checked
    /// on every use.
    verified: moka::future::Cache<String, std::sync::Arc<TokenClaims>>,
}

impl Verifier {
    /// Builds the verifier the settings describe (JWKS wins over a secret).
    ///
    /// # Errors
    /// [`AuthConfigError`] when neither a secret nor a JWKS URL is configured, or the
    /// HTTP client for the JWKS cannot be built.
    pub fn from_settings(s: &Settings) -> Result<Self, AuthConfigError> {
        let (keys, alg) = match (&s.auth_jwks_url, &s.auth_jwt_secret) {
            (Some(url), _) => {
                let client = reqwest::Client::builder()
                    .timeout(JWKS_FETCH_TIMEOUT)
                    .connect_timeout(JWKS_FETCH_TIMEOUT)
                    .build()
                    .map_err(AuthConfigError::Client)?;
                let jwks = Jwks {
                    url: url.clone(),
                    client,
                    keys: RwLock::new(HashMap::new()),
                    fetch: tokio::sync::Mutex::new(FetchState { not_before: None, failures: 0 }),
                };
                (Keys::Rs256(std::sync::Arc::new(jwks)), Algorithm::RS256)
            }
            (None, Some(secret)) => {
                (Keys::Hs256(DecodingKey::from_secret(secret.expose().as_bytes())), Algorithm::HS256)
            }
            (None, None) => return Err(AuthConfigError::NoKeys),
        };
        let mut validation = Validation::new(alg);
        // RFC 8725: a token not yet valid is refused like an expired one, with the
        // same leeway for clock skew.
        validation.leeway = 30;
        validation.validate_nbf = true;
        match &s.auth_audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &s.auth_issuer {
            validation.set_issuer(&[iss]);
        }
        let verified =
            moka::future::Cache::builder().max_capacity(20_000).time_to_live(Duration::from_secs(300)).build();
        Ok(Self { keys, validation, verified })
    }

    /// The issuer's key set, when tokens are RS256 (to fetch it at start-up).
    pub fn jwks(&self) -> Option<std::sync::Arc<Jwks>> {
        match &self.keys {
            Keys::Rs256(j) => Some(j.clone()),
            Keys::Hs256(_) => None,
        }
    }

    /// The claims of a valid token.
    ///
    /// # Errors
    /// [`ApiError::InvalidToken`] for anything that does not verify.
    pub async fn verify(&self, token: &str) -> Result<std::sync::Arc<TokenClaims>, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::InvalidToken);
        }
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(claims) = self.verified.get(token).await {
            // Saturating: an `exp` near 2^64 (valid to the library) must not wrap
            // into the past on its second use.
            if claims.exp.saturating_add(self.validation.leeway) > now {
                return Ok(claims);
            }
            self.verified.invalidate(token).await;
            return Err(ApiError::InvalidToken);
        }
        let claims = std::sync::Arc::new(self.verify_signature(token).await?);
        self.verified.insert(token.to_owned(), claims.clone()).await;
        Ok(claims)
    }

    async fn verify_signature(&self, token: &str) -> Result<TokenClaims, ApiError> {
        let header = decode_header(token).map_err(|_| ApiError::InvalidToken)?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(ApiError::InvalidToken);
        }
        let key = match &self.keys {
            Keys::Hs256(k) => k.clone(),
            Keys::Rs256(jwks) => {
                jwks.key(header.kid.as_deref().ok_or(ApiError::InvalidToken)?).await.ok_or(ApiError::InvalidToken)?
            }
        };
        let claims = decode::<TokenClaims>(token, &key, &self.validation)
            .map(|d| d.claims)
            .map_err(|_| ApiError::InvalidToken)?;
        // A token must name somebody: an empty subject is no identity to provision;
        // and no claim stored for the user may hold NUL, which PostgreSQL cannot store.
        let has_nul = |s: &Option<String>| s.as_deref().is_some_and(|v| v.contains('\0'));
        if claims.sub.trim().is_empty() || claims.sub.contains('\0') || has_nul(&claims.email) || has_nul(&claims.name)
        {
            return Err(ApiError::InvalidToken);
        }
        Ok(claims)
    }
}

/// Signs an HS256 token (the `gymapi token` command, tests and load tests).
///
/// # Errors
/// Signing failures.
pub fn sign_hs256(secret: &str, claims: &TokenClaims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user behind the token.
    pub user_id: UserId,
}

/// The longest token accepted. Real access tokens are a few KB; past this a token is
/// an attempt to make every request decode, verify and cache a large blob (10,000
/// scopes, a padded claim), so it is refused before any of that.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next().ok_or(ApiError::MissingToken)?;
    // Two credentials are no credential: proxies and frameworks disagree on which wins.
    if values.next().is_some() {
        return Err(ApiError::InvalidToken);
    }
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::InvalidToken);
    }
    Ok(token.trim().to_owned())
}

pub(crate) fn is_mutation(m: &Method) -> bool {
    matches!(*m, Method::POST | Method::PATCH | Method::DELETE | Method::PUT)
}

/// Authenticates a request: token, scope for mutations, then the user (provisioned
/// on a subject's first request). The result is kept on the request so the tenant
/// check reuses it.
pub async fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    if let Some(c) = req.extensions().get::<Caller>() {
        return Ok(c.clone());
    }
    let missing = || ApiError::from(domain::DomainError::internal("verifier or identity not configured"));
    let verifier = req.app_data::<actix_web::web::Data<Verifier>>().cloned().ok_or_else(missing)?;
    let identity = req.app_data::<actix_web::web::Data<crate::identity::Identity>>().cloned().ok_or_else(missing)?;
    let token = bearer(req)?;
    let claims = verifier.verify(&token).await?;
    if is_mutation(req.method()) && !claims.has_scope(WRITE_SCOPE) {
        return Err(ApiError::InsufficientScope);
    }
    let user_id = identity
        .user_for(&claims.sub, || Claims {
            sub: claims.sub.clone(),
            email: claims.email.clone(),
            name: claims.name.clone(),
        })
        .await?;
    let caller = Caller { user_id };
    req.extensions_mut().insert(caller.clone());
    infra::db::replica::set_caller(user_id);
    tracing::Span::current().record("user_id", user_id.0);
    Ok(caller)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(&req).await })
    }
}
