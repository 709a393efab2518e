//! Routes, one file per section of the contract. Handlers are four steps: extract,
//! convert into domain values, call one domain service, map the result.

use actix_web::web;

pub mod attendance;
pub mod changes;
pub mod events;
pub mod gyms;
pub mod health;
pub mod passes;
pub mod payments;
pub mod plans;
pub mod reports;
pub mod schedule;
pub mod users;
pub mod webhooks;

/// Everything under `/api/v1`. Fixed paths come before `{id}` paths that would
/// otherwise swallow them (`/users/me` before `/users/{user_id}`). actix matches
/// resources in registration order, testing each `{id}` pattern with a regex, so
/// the busiest routes (check-in, class list) are registered first.
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.configure(attendance::configure)
        .configure(schedule::configure)
        .configure(events::configure)
        .configure(users::configure)
        .configure(gyms::configure)
        .configure(changes::configure)
        .configure(reports::configure)
        .configure(webhooks::configure)
        .configure(plans::configure)
        .configure(passes::configure)
        .configure(payments::configure);
}
