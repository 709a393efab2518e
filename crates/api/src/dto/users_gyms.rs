//! §4 "Users and gyms": users, gyms and memberships.

use domain::Role;
use domain::gyms::{Gym, MemberEntry, Membership};
use domain::users::User;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::times::UtcTime;

fn de_role<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
    let s = String::deserialize(d)?;
    Role::parse(&s).map_err(|e| serde::de::Error::custom(e.to_string()))
}

#[derive(Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub auth0_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub created_at: UtcTime,
    pub updated_at: UtcTime,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id.0,
            auth0_id: u.auth0_id,
            email: u.email,
            name: u.name,
            phone: u.phone,
            created_at: u.created_at.into(),
            updated_at: u.updated_at.into(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ProfileIn {
    pub name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GymOut {
    pub id: i64,
    pub name: String,
    pub timezone: String,
    pub address: Option<String>,
    pub created_at: UtcTime,
}

impl From<Gym> for GymOut {
    fn from(g: Gym) -> Self {
        Self { id: g.id.0, name: g.name, timezone: g.timezone, address: g.address, created_at: g.created_at.into() }
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

#[derive(Serialize, ToSchema)]
pub struct MemberOut {
    pub user: UserOut,
    pub role: &'static str,
    pub joined_at: UtcTime,
}

impl From<MemberEntry> for MemberOut {
    fn from(m: MemberEntry) -> Self {
        Self { user: m.user.into(), role: m.role.as_str(), joined_at: m.joined_at.into() }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MembershipOut {
    pub user_id: i64,
    pub gym_id: i64,
    pub role: &'static str,
    pub joined_at: UtcTime,
}

impl From<Membership> for MembershipOut {
    fn from(m: Membership) -> Self {
        Self { user_id: m.user_id.0, gym_id: m.gym_id.0, role: m.role.as_str(), joined_at: m.joined_at.into() }
    }
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
