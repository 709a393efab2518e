//! The 64 KiB body limit on every request, whether or not its route reads a body,
//! and the refusal of compressed request bodies.
//!
//! Request bodies are taken as sent: a `Content-Encoding` other than `identity` is
//! `415 unsupported_content_encoding` before a byte of the body is read. A few KiB of
//! zstd or gzip inflate to gigabytes, and decoders work a chunk at a time, so a limit
//! checked after decoding still lets one request hold hundreds of MiB; GymAPI's
//! bodies are small JSON objects that gain nothing from compression. (actix-web is
//! built without its `compress-*` features, so nothing else decodes them either.)
//!
//! Extractors enforce the limit only where a handler reads the body, so a route
//! without one (`POST /attendance/my-qr/rotate`) would accept a body of any size and
//! act on the request. This middleware refuses an oversized body before routing:
//! by its `Content-Length` at once, and a chunked one by reading it up to the limit
//! (then handing the buffered bytes on), so nothing of an oversized request is applied.
//! It runs after routing and before authentication: a body that large is refused
//! before anything reads it, whoever sends it.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::BytesMut;
use actix_web::{Error, HttpMessage};
use futures_util::StreamExt;

use crate::error::{ApiError, Lang};

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The middleware; see the module docs.
///
/// # Errors
/// Errors of inner services, passed through.
pub async fn body_limit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>().unwrap_or(u64::MAX));
    let has_body = declared.is_some_and(|len| len > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);
    // Most requests carry no body and cost nothing here. Routing comes first (§7):
    // an unknown path is 404 whatever its body, judged by the path as routing sees
    // it (percent-decoded), not the raw one.
    if !has_body || !req.resource_map().has_resource(req.match_info().as_str()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    if !identity_encoded(&req) {
        return Ok(refuse(req, &ApiError::UnsupportedEncoding));
    }
    let too_large = match declared {
        Some(len) => len > MAX_BODY as u64,
        None if req.headers().contains_key(header::TRANSFER_ENCODING) => {
            let mut payload = req.take_payload();
            let mut buf = BytesMut::new();
            let mut over = false;
            while let Some(chunk) = payload.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => return Ok(refuse(req, &ApiError::payload(&e))),
                };
                if buf.len() + chunk.len() > MAX_BODY {
                    over = true;
                    break;
                }
                buf.extend_from_slice(&chunk);
            }
            req.set_payload(Payload::from(buf.freeze()));
            over
        }
        None => false,
    };
    if too_large {
        return Ok(refuse(req, &ApiError::PayloadTooLarge));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Whether the body is sent as is: no `Content-Encoding`, or only `identity`.
fn identity_encoded(req: &ServiceRequest) -> bool {
    req.headers().get_all(header::CONTENT_ENCODING).all(|v| {
        v.to_str().is_ok_and(|v| v.split(',').all(|c| c.trim().is_empty() || c.trim().eq_ignore_ascii_case("identity")))
    })
}

fn refuse<B>(req: ServiceRequest, e: &ApiError) -> ServiceResponse<EitherBody<B>> {
    let lang = Lang::of(req.request());
    req.into_response(e.render(lang)).map_into_right_body()
}
