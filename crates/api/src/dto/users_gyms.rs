//! §4 "Users and gyms": users, gyms and memberships.

use domain::gyms::{Gym, GymPatch, MemberEntry, Membership};
use domain::users::User;
use domain::{DomainError, Role};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::times::UtcTime;
use super::wire::response;

fn de_role<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
    let s = String::deserialize(d)?;
    Role::parse(&s).map_err(|e| serde::de::Error::custom(e.to_string()))
}

response! {
    /// `User`.
    UserOut from User {
        id: i64, auth0_id: String, email: Option<String>, name: Option<String>, phone: Option<String>,
        created_at: UtcTime, updated_at: UtcTime,
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ProfileIn {
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// `Gym`: the contract's fields and the gym's settings.
#[derive(Serialize, ToSchema)]
pub struct GymOut {
    pub id: i64,
    pub name: String,
    /// IANA time zone name.
    pub timezone: String,
    pub address: Option<String>,
    pub created_at: UtcTime,
    /// Hours before a session's start at which booking opens; `null`: no limit.
    pub booking_opens_hours: Option<i32>,
    /// Minutes before a session's start at which booking closes.
    pub booking_closes_minutes: i32,
    /// Minutes before a session's start from which a freed place no longer goes to
    /// the head of the waitlist.
    pub waitlist_cutoff_minutes: i32,
    /// How many waitlists a member may be on at once.
    pub max_waitlists_per_member: i32,
    /// How the front desk reads members' QR codes: `static` (the printed code) or
    /// `rotating` (a code of the 30-second step).
    pub qr_mode: &'static str,
    /// Members checked in within this many minutes count in the live occupancy.
    pub occupancy_window_minutes: i32,
    /// Bookings and walk-ins need a usable pass, and take its credit.
    pub booking_requires_pass: bool,
    /// Minutes before a session's start from which a cancellation is late (the
    /// credit is kept by the gym).
    pub cancel_cutoff_minutes: i32,
}

impl From<Gym> for GymOut {
    fn from(g: Gym) -> Self {
        Self {
            id: g.id.0,
            name: g.name,
            timezone: g.timezone,
            address: g.address,
            created_at: g.created_at.into(),
            booking_opens_hours: g.booking.opens_hours(),
            booking_closes_minutes: g.booking.closes_minutes(),
            waitlist_cutoff_minutes: g.waitlist.cutoff_minutes(),
            max_waitlists_per_member: g.waitlist.max_per_member(),
            qr_mode: g.qr_mode.as_str(),
            occupancy_window_minutes: g.occupancy_window_minutes,
            booking_requires_pass: g.booking_requires_pass,
            cancel_cutoff_minutes: g.cancel_cutoff_minutes,
        }
    }
}

/// A present field, `null` included: `Some(None)` clears, an absent one stays `None`.
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /gyms/current`: every field optional; `null` clears `address` and
/// `booking_opens_hours` (no limit), and is refused for the others.
#[derive(Deserialize, ToSchema)]
pub struct GymPatchIn {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = false)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = false)]
    pub timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub address: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub booking_opens_hours: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i32, required = false)]
    pub booking_closes_minutes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i32, required = false)]
    pub waitlist_cutoff_minutes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i32, required = false)]
    pub max_waitlists_per_member: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = false)]
    pub qr_mode: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i32, required = false)]
    pub occupancy_window_minutes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    pub booking_requires_pass: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = i32, required = false)]
    pub cancel_cutoff_minutes: Option<Option<i32>>,
}

/// A field that may be left out but not cleared.
pub(super) fn not_null<T>(field: &str, v: Option<Option<T>>) -> Result<Option<T>, DomainError> {
    match v {
        Some(None) => Err(DomainError::validation(format!("{field} must not be null"))),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

impl TryFrom<GymPatchIn> for GymPatch {
    type Error = DomainError;

    fn try_from(p: GymPatchIn) -> Result<Self, DomainError> {
        Ok(Self {
            name: not_null("name", p.name)?,
            timezone: not_null("timezone", p.timezone)?,
            address: p.address,
            booking_opens_hours: p.booking_opens_hours,
            booking_closes_minutes: not_null("booking_closes_minutes", p.booking_closes_minutes)?,
            waitlist_cutoff_minutes: not_null("waitlist_cutoff_minutes", p.waitlist_cutoff_minutes)?,
            max_waitlists_per_member: not_null("max_waitlists_per_member", p.max_waitlists_per_member)?,
            qr_mode: not_null("qr_mode", p.qr_mode)?.as_deref().map(domain::values::QrMode::parse).transpose()?,
            occupancy_window_minutes: not_null("occupancy_window_minutes", p.occupancy_window_minutes)?,
            booking_requires_pass: not_null("booking_requires_pass", p.booking_requires_pass)?,
            cancel_cutoff_minutes: not_null("cancel_cutoff_minutes", p.cancel_cutoff_minutes)?,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct GymWithRoleOut {
    pub gym: GymOut,
    pub role: &'static str,
}

#[derive(Deserialize, ToSchema)]
pub struct GymIn {
    pub name: String,
    pub timezone: Option<String>,
    pub address: Option<String>,
}

response! {
    /// A member as listed: `{user: User, role, joined_at}`.
    MemberOut from MemberEntry { user: UserOut, role: &'static str, joined_at: UtcTime }
}

response! {
    /// `Membership`.
    MembershipOut from Membership { user_id: i64, gym_id: i64, role: &'static str, joined_at: UtcTime }
}

#[derive(Deserialize, ToSchema)]
pub struct MemberIn {
    pub user_id: i64,
    #[serde(deserialize_with = "de_role")]
    #[schema(value_type = String, example = "member")]
    pub role: Role,
}

#[derive(Deserialize, ToSchema)]
pub struct RoleIn {
    #[serde(deserialize_with = "de_role")]
    #[schema(value_type = String, example = "member")]
    pub role: Role,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    pub role: Option<String>,
    pub skip: Option<i64>,
    pub limit: Option<i64>,
}
