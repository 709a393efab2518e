//! §4 "Users and gyms": users, gyms and memberships.

use domain::Role;
use domain::gyms::{Gym, MemberEntry, Membership};
use domain::users::User;
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

response! {
    /// `Gym`.
    GymOut from Gym { id: i64, name: String, timezone: String, address: Option<String>, created_at: UtcTime }
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
