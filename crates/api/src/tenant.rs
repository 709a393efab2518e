//! Tenancy: the gym named by `X-Gym-ID` and the caller's role there (resolved by
//! [`crate::identity::Identity`]), as the [`Tenant`] extractor.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use domain::values::Actor;
use domain::{DomainError, GymId, Role, UserId};
use futures_util::future::LocalBoxFuture;

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::identity::Identity;

/// Parses `X-Gym-ID`: sent once, ASCII digits only, a positive 64-bit integer.
///
/// # Errors
/// [`ApiError::GymIdRequired`] when absent, [`ApiError::InvalidGymId`] otherwise.
pub fn gym_id(req: &HttpRequest) -> Result<GymId, ApiError> {
    let mut values = req.headers().get_all("X-Gym-ID");
    let raw = values.next().ok_or(ApiError::GymIdRequired)?;
    if values.next().is_some() {
        return Err(ApiError::InvalidGymId);
    }
    let s = raw.to_str().map_err(|_| ApiError::InvalidGymId)?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::InvalidGymId);
    }
    match s.parse::<i64>() {
        Ok(n) if n > 0 => Ok(GymId(n)),
        _ => Err(ApiError::InvalidGymId),
    }
}

/// The caller acting in a gym: authenticated, member, with a role.
#[derive(Debug, Clone, Copy)]
pub struct Tenant(pub Actor);

impl FromRequest for Tenant {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let at = AtGym::of(req).await?;
            let role = at.identity()?.role_in(at.user_id, at.gym_id).await?;
            Ok(Tenant(at.admit(role)))
        })
    }
}

/// The authenticated caller and the gym they name, before their role there is
/// known: a cached read of the gym learns the role in the same round trip as the
/// value ([`crate::respond::cached_json_at`]), and serves it only once admitted.
pub struct AtGym {
    req: HttpRequest,
    /// The caller.
    pub user_id: UserId,
    /// The gym named by `X-Gym-ID`.
    pub gym_id: GymId,
}

impl AtGym {
    async fn of(req: HttpRequest) -> Result<Self, ApiError> {
        let caller = authenticate(&req).await?;
        let gym_id = gym_id(&req)?;
        Ok(Self { req, user_id: caller.user_id, gym_id })
    }

    /// The resolver of roles.
    ///
    /// # Errors
    /// Internal when the app was built without one.
    pub fn identity(&self) -> Result<actix_web::web::Data<Identity>, ApiError> {
        self.req
            .app_data::<actix_web::web::Data<Identity>>()
            .cloned()
            .ok_or_else(|| ApiError::from(DomainError::internal("identity not configured")))
    }

    /// The caller admitted with their role: the actor of the request (in its log line).
    pub fn admit(&self, role: Role) -> Actor {
        let actor = Actor { user_id: self.user_id, gym_id: self.gym_id, role };
        tracing::Span::current().record("gym_id", self.gym_id.0);
        self.req.extensions_mut().insert(actor);
        actor
    }

    /// The value of a parse of the request, or its error, unless the caller is no
    /// member of the gym, which is said first (as on every route of a gym).
    ///
    /// # Errors
    /// `NotAMember` or storage failures, else the parse's error.
    pub async fn valid<T, E: Into<ApiError>>(&self, parsed: Result<T, E>) -> Result<T, ApiError> {
        match parsed {
            Ok(v) => Ok(v),
            Err(e) => {
                self.identity()?.role_in(self.user_id, self.gym_id).await?;
                Err(e.into())
            }
        }
    }
}

impl FromRequest for AtGym {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(Self::of(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn parse(v: &str) -> Result<GymId, ApiError> {
        gym_id(&TestRequest::default().insert_header(("X-Gym-ID", v)).to_http_request())
    }

    #[test]
    fn gym_id_accepts_only_positive_ascii_integers() {
        assert!(matches!(parse("42"), Ok(GymId(42))));
        for bad in ["0", "-1", "+1", "1 2", "abc", "1.5", "1e3", "0x10", "", "99999999999999999999"] {
            assert!(matches!(parse(bad), Err(ApiError::InvalidGymId)), "{bad:?}");
        }
        assert!(matches!(gym_id(&TestRequest::default().to_http_request()), Err(ApiError::GymIdRequired)));
    }

    /// Header values as they can arrive: any bytes a header may carry, and text
    /// close to a number.
    fn header_values() -> impl proptest::strategy::Strategy<Value = actix_web::http::header::HeaderValue> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..24),
            "[-+ 0-9a-fx.e]{0,24}".prop_map(String::into_bytes),
            any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        ]
        .prop_filter_map("not a header value", |b| actix_web::http::header::HeaderValue::from_bytes(&b).ok())
    }

    proptest::proptest! {
        #[test]
        fn gym_id_is_exactly_a_positive_i64_in_ascii_digits(v in header_values()) {
            let got = gym_id(&TestRequest::default().insert_header(("X-Gym-ID", v.clone())).to_http_request());
            // The contract's rule, decided by length and digit comparison, not a parser:
            // ASCII digits only, a value from 1 to 2^63 - 1.
            let rule = std::str::from_utf8(v.as_bytes()).ok().and_then(|s| {
                let significant = s.trim_start_matches('0');
                let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                let fits = significant.len() < 19 || (significant.len() == 19 && significant <= "9223372036854775807");
                (digits && fits && !significant.is_empty())
                    .then(|| significant.bytes().fold(0_i64, |n, b| n * 10 + i64::from(b - b'0')))
            });
            match (got, rule) {
                (Ok(GymId(n)), Some(m)) => proptest::prop_assert_eq!(n, m),
                (Err(ApiError::InvalidGymId), None) => {}
                (got, rule) => proptest::prop_assert!(false, "{v:?}: parser {got:?}, rule {rule:?}"),
            }
        }
    }
}
