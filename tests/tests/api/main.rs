//! Black-box tests of the HTTP stack, each on PostgreSQL and on SQLite.

mod attendance;
mod auth;
mod batching;
mod cache;
mod calendar;
mod cancelling;
mod changes;
mod docs;
mod events;
mod fan_out;
mod gym_settings;
mod hostile;
mod http;
mod idempotency;
mod limits;
mod operations;
mod outage;
mod outbox;
mod properties;
mod recurrences;
mod refusals;
mod rotating_qr;
mod schedule;
mod times;
mod users_gyms;
mod waitlist;
