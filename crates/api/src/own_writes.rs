//! Read-your-writes with a read replica (`infra::db::replica`): each request runs in
//! a scope that learns its caller, so their lists skip the replica right after their
//! own writes; a successful write marks its caller before the answer leaves.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

use crate::auth::Caller;
use crate::state::State;

/// The middleware (installed only with a replica).
///
/// # Errors
/// What the inner service answers.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(db) = req.app_data::<State>().map(|s| s.db.clone()).filter(infra::db::Db::has_replica) else {
        return next.call(req).await;
    };
    let mutation = crate::auth::is_mutation(req.method());
    let res = infra::db::replica::scope(next.call(req)).await?;
    // Only a write that committed: its 2xx is sent after the commit, and this mark
    // is awaited before it, so the caller's next request finds it.
    let caller = res.request().extensions().get::<Caller>().map(|c| c.user_id);
    if mutation
        && res.status().is_success()
        && let Some(user) = caller
    {
        db.wrote(user).await;
    }
    Ok(res)
}
