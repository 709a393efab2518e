//! GymAPI's HTTP surface: actix-web handlers, authentication and tenancy,
//! telemetry, and the application factory shared by the binary and the tests.

pub mod app;
pub mod auth;
pub mod body;
pub mod cache_keys;
pub mod checkins;
pub mod cli;
pub mod demo;
pub mod dto;
pub mod error;
pub mod ics;
pub mod idempotency;
pub mod identity;
pub mod lifecycle;
pub mod limits;
pub mod openapi;
pub mod own_writes;
pub mod params;
pub mod refusals;
pub mod respond;
pub mod routes;
pub mod state;
pub mod streams;
pub mod telemetry;
pub mod tenant;
pub mod webhook_thread;
