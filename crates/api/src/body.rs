//! The JSON body of a request, read but not yet parsed.
//!
//! actix runs a handler's extractors together, so a `web::Json<T>` beside the tenant
//! extractor could answer `422` before the role was checked. [`Body`] only collects
//! the bytes (bounded by the 64 KiB limit); the handler parses them after the role
//! check, which gives the contract's order: route → token → gym → role → body.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use domain::Role;
use domain::values::Actor;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The raw body of a request, to be parsed as `T` with [`Body::parse`].
pub struct Body<T> {
    bytes: web::Bytes,
    _shape: PhantomData<T>,
}

impl<T: DeserializeOwned> Body<T> {
    /// Parses the body as `T`. Only a JSON object is accepted: serde would otherwise
    /// read an array such as `[null, null]` as the struct's fields in order.
    ///
    /// # Errors
    /// `422 validation_error` saying what is wrong.
    pub fn parse(self) -> Result<T, ApiError> {
        let mut value: serde_json::Value = serde_json::from_slice(&self.bytes)
            .map_err(|e| ApiError::validation(format!("the body is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::validation("the body must be a JSON object"));
        }
        integral_floats_as_integers(&mut value);
        serde_json::from_value(value).map_err(|e| ApiError::validation(format!("invalid body: {e}")))
    }

    /// The bytes as sent, for a signature over them.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// [`Body::parse`], or `T`'s default for an empty body (a route whose body is
    /// optional).
    ///
    /// # Errors
    /// As [`Body::parse`] for a body that is not empty.
    pub fn parse_or_default(self) -> Result<T, ApiError>
    where
        T: Default,
    {
        if self.bytes.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { self.parse() }
    }

    /// [`Body::parse`], once the actor's role is at least `min`.
    ///
    /// # Errors
    /// `403 forbidden` below `min`, then the parse errors.
    pub fn parse_as(self, actor: &Actor, min: Role) -> Result<T, ApiError> {
        actor.require(min)?;
        self.parse()
    }
}

/// JSON (and its schemas) has one number type: `5.0` is the integer 5, as Python's
/// and JavaScript's clients may send it. serde would refuse it for an integer
/// field, so integral floats inside the i64 range become integers first.
fn integral_floats_as_integers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
            {
                // Exact: an integral float inside the i64 range converts without rounding.
                #[allow(clippy::cast_possible_truncation)]
                let i = f as i64;
                *v = serde_json::Value::from(i);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

impl<T: 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            // A body cut short or badly chunked is the contract's error, not actix's text.
            let bytes = bytes.await.map_err(|e| match e.as_error::<actix_web::error::PayloadError>() {
                Some(p) => ApiError::payload(p),
                None => ApiError::MalformedRequest,
            })?;
            Ok(Self { bytes, _shape: PhantomData })
        })
    }
}
