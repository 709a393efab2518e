//! Adapters of GymAPI's ports: SeaORM repositories on PostgreSQL or SQLite, the
//! Redis and in-process caches, and configuration loading.

pub mod bus;
pub mod cache;
pub mod config;
pub mod db;
pub mod webhooks;

pub use config::{ConfigError, Settings};
