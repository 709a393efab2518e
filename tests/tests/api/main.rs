//! Black-box tests of the HTTP stack, each on PostgreSQL and on SQLite.

mod auth;
mod http;
mod users_gyms;
