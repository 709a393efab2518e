//! Who may do what: the least role of each kind of operation, in one place. The
//! services enforce these; the HTTP layer reads the same constants to refuse a
//! caller *before* it parses a request body (contract §7: route → token → gym →
//! role → body), so a member sending junk to a staff route learns `forbidden`,
//! not what the body should have been.

use crate::values::Role;

/// Create and change classes and sessions, cancel sessions, list participants.
pub const MANAGE_SCHEDULE: Role = Role::Trainer;
/// Delete (deactivate) a class.
pub const DELETE_CLASS: Role = Role::Admin;
/// Create and change events.
pub const MANAGE_EVENTS: Role = Role::Trainer;
/// Delete an event.
pub const DELETE_EVENT: Role = Role::Admin;
/// See the member list and other members' profiles.
pub const SEE_MEMBERS: Role = Role::Trainer;
/// Add, change and remove members (granting `admin`/`owner` takes [`GRANT_STAFF_ADMIN`]).
pub const MANAGE_MEMBERS: Role = Role::Admin;
/// Grant or change the roles `admin` and `owner`, or manage those who hold them.
pub const GRANT_STAFF_ADMIN: Role = Role::Owner;
/// Change the gym's name, address, time zone and settings.
pub const MANAGE_GYM: Role = Role::Admin;
/// Check members in at the front desk.
pub const CHECK_IN: Role = Role::Trainer;
/// List the front desk's refused scans.
pub const SEE_REFUSALS: Role = Role::Admin;
/// Read the gym's change feed.
pub const READ_CHANGES: Role = Role::Admin;
/// See who is in the gym now.
pub const SEE_OCCUPANCY: Role = Role::Trainer;
/// Watch the live stream of check-ins and refusals (the desk screen).
pub const WATCH_ATTENDANCE: Role = Role::Trainer;
/// Register webhooks and read their deliveries.
pub const MANAGE_WEBHOOKS: Role = Role::Admin;
/// See the classes' report.
pub const SEE_REPORTS: Role = Role::Admin;
/// Create, change and retire the gym's plans.
pub const MANAGE_PLANS: Role = Role::Admin;
/// See the plans a gym sells.
pub const SEE_PLANS: Role = Role::Member;
/// See retired plans beside the ones on sale.
pub const SEE_RETIRED_PLANS: Role = Role::Trainer;
/// Sell a pass to a member.
pub const SELL_PASSES: Role = Role::Trainer;
/// End a member's pass.
pub const END_PASSES: Role = Role::Admin;
/// Add or remove a pass's credits by hand.
pub const ADJUST_CREDITS: Role = Role::Admin;
/// Freeze a member's pass.
pub const FREEZE_PASSES: Role = Role::Trainer;
/// Make or rotate the gym's payment signing secret.
pub const MANAGE_PAYMENTS: Role = Role::Admin;
