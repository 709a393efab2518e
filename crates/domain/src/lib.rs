//! GymAPI's business rules, written over ports.
//!
//! This crate is the inside of the hexagon: entities and value types, the rules of
//! booking, check-in and roles, and the async traits (ports) that adapters implement.
//! It knows nothing of HTTP, SQL or Redis, so other services can reuse it and its
//! rules are unit-tested against `mockall` mocks (enable the `mocks` feature to get them).

pub mod attendance;
pub mod cache;
pub mod calendar;
pub mod changes;
pub mod clock;
pub mod credits;
pub mod error;
pub mod events;
pub mod facts;
pub mod gyms;
pub mod limits;
pub mod members;
#[cfg(any(test, feature = "mocks"))]
pub mod mocks;
pub mod passes;
pub mod payments;
pub mod plans;
pub mod policy;
pub mod recurrences;
pub mod refusals;
pub mod reports;
pub mod schedule;
pub mod tx;
pub mod users;
pub mod values;
pub mod webhooks;

pub use error::{Cause, DomainError, Result};
pub use values::{
    ClassId, DateRange, EventId, GymId, Page, ParticipationId, RecurrenceId, Role, SessionId, Timestamp, UserId,
};
