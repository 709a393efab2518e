//! The JSON shapes of the contract, one module per section of its §4, and their
//! conversion from domain types. Serde lives here, not in the domain. What every
//! route shares is in `common` (paging, date ranges, the error body), `times` (the
//! one time type), `responses` (the documented failures of each kind of route) and
//! `wire` (how domain values travel, so each response type is declared once).
//! Sections import their siblings, never this module, which only re-exports.

mod attendance;
mod common;
mod events;
mod passes;
mod plans;
mod responses;
mod schedule;
mod times;
mod users_gyms;
mod webhooks;
mod wire;

pub use attendance::*;
pub use common::*;
pub use events::*;
pub use passes::*;
pub use plans::*;
pub use responses::*;
pub use schedule::*;
pub use times::{TimeError, UtcTime, date_pattern, date_time_pattern, parse_date, parse_time};
pub use users_gyms::*;
pub use webhooks::*;
