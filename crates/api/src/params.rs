//! The path id and the query string of a request, read but not yet parsed.
//!
//! Like [`crate::body::Body`], and for the same reason: actix runs a handler's
//! extractors together, so a `web::Path<i64>` or `web::Query<T>` beside the tenant
//! extractor answers `422` before the gym header, the membership or the role are
//! judged. These extractors only keep the text; the handler parses it after the
//! role (`parse_as`), which keeps the contract's order (§7): route → token → gym
//! header → role → path, query and body.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use domain::Role;
use domain::values::Actor;
use futures_util::future::{Ready, ready};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Checks the actor's role, then parses: the order every deferred input follows.
fn after_role<T>(actor: &Actor, min: Role, parse: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    actor.require(min)?;
    parse()
}

/// The one `{id}` (or `{user_id}`) segment of a route's path, as text.
pub struct PathId(String);

impl PathId {
    /// The id as a 64-bit integer.
    ///
    /// # Errors
    /// `422 validation_error` when it is not one.
    pub fn parse(&self) -> Result<i64, ApiError> {
        self.0.parse().map_err(|_| ApiError::validation(format!("the path id {:?} is not a 64-bit integer", self.0)))
    }

    /// [`PathId::parse`], once the actor's role is at least `min`.
    ///
    /// # Errors
    /// `403 forbidden` below `min`, then the parse error.
    pub fn parse_as(&self, actor: &Actor, min: Role) -> Result<i64, ApiError> {
        after_role(actor, min, || self.parse())
    }

    /// The user a route of "their own, or anyone's from `min` up" names. Every role
    /// may call such a route, so the id is judged first, as on `GET /users/{id}`;
    /// then anyone else's needs `min`, before the route's query is.
    ///
    /// # Errors
    /// The parse error, then `403 forbidden` below `min` for anyone else.
    pub fn parse_self_or(&self, actor: &Actor, min: Role) -> Result<i64, ApiError> {
        let id = self.parse()?;
        if id == actor.user_id.0 { Ok(id) } else { after_role(actor, min, || Ok(id)) }
    }
}

impl FromRequest for PathId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Routes taking a `PathId` have exactly one dynamic segment.
        let raw = req.match_info().iter().next().map(|(_, v)| v.to_owned());
        ready(raw.map(Self).ok_or_else(|| ApiError::from(domain::DomainError::internal("route has no path id"))))
    }
}

/// The two id segments of a route's path, in their order (`…/{id}/…/{rid}`), as text.
pub struct PathIds(String, String);

impl PathIds {
    /// Both ids as 64-bit integers, once the actor's role is at least `min`.
    ///
    /// # Errors
    /// `403 forbidden` below `min`, then `422 validation_error` for an id that is not
    /// a 64-bit integer.
    pub fn parse_as(&self, actor: &Actor, min: Role) -> Result<(i64, i64), ApiError> {
        after_role(actor, min, || Ok((PathId(self.0.clone()).parse()?, PathId(self.1.clone()).parse()?)))
    }
}

impl FromRequest for PathIds {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Routes taking `PathIds` have exactly two dynamic segments, in this order.
        let mut segments = req.match_info().iter().map(|(_, v)| v.to_owned());
        let ids = segments.next().zip(segments.next()).map(|(a, b)| Self(a, b));
        ready(ids.ok_or_else(|| ApiError::from(domain::DomainError::internal("route has no two path ids"))))
    }
}

/// The query string of a request, to be parsed as `T`.
pub struct Query<T> {
    raw: String,
    _shape: PhantomData<T>,
}

impl<T: DeserializeOwned> Query<T> {
    /// Parses the query string as `T`.
    ///
    /// # Errors
    /// `422 validation_error` saying what is wrong.
    pub fn parse(&self) -> Result<T, ApiError> {
        web::Query::<T>::from_query(&self.raw)
            .map(web::Query::into_inner)
            .map_err(|e| ApiError::validation(format!("invalid query parameters: {e}")))
    }

    /// [`Query::parse`], once the actor's role is at least `min`.
    ///
    /// # Errors
    /// `403 forbidden` below `min`, then the parse errors.
    pub fn parse_as(&self, actor: &Actor, min: Role) -> Result<T, ApiError> {
        after_role(actor, min, || self.parse())
    }
}

impl<T> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self { raw: req.query_string().to_owned(), _shape: PhantomData }))
    }
}
