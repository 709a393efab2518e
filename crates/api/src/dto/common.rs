//! What every route shares: paging, date ranges, the error body, the gym header.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `skip` and `limit` of list routes, validated by [`domain::Page`].
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageIn {
    pub skip: Option<i64>,
    pub limit: Option<i64>,
}

impl PageIn {
    pub fn page(&self) -> Result<domain::Page, domain::DomainError> {
        domain::Page::new(self.skip.unwrap_or(0), self.limit.unwrap_or(100))
    }
}

/// `start_date` / `end_date` of range routes, with `skip` and `limit`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DateRangeIn {
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub skip: Option<i64>,
    pub limit: Option<i64>,
    /// `gym`: the dates are read on the gym's wall clock (its time zone); `utc` (the
    /// default): UTC dates.
    pub tz: Option<String>,
}

impl DateRangeIn {
    pub fn page(&self) -> Result<domain::Page, domain::DomainError> {
        PageIn { skip: self.skip, limit: self.limit }.page()
    }

    /// Which wall clock the dates are read on.
    pub fn dates_in(&self) -> Result<domain::values::DatesIn, domain::DomainError> {
        match self.tz.as_deref() {
            None | Some("utc") => Ok(domain::values::DatesIn::Utc),
            Some("gym") => Ok(domain::values::DatesIn::Gym),
            Some(_) => Err(domain::DomainError::validation("tz must be gym or utc")),
        }
    }

    /// Missing both: today (UTC) and the week after; only a start: that week; only
    /// an end: the week up to it.
    pub fn range(&self, today: ::time::Date) -> Result<domain::DateRange, domain::DomainError> {
        let parse =
            |name: &str, v: &Option<String>| v.as_deref().map(|s| super::times::parse_date(name, s)).transpose();
        let week = ::time::Duration::days(7);
        let (start, end) = match (parse("start_date", &self.start_date)?, parse("end_date", &self.end_date)?) {
            (Some(s), Some(e)) => (s, e),
            (Some(s), None) => (s, s.checked_add(week).unwrap_or(::time::Date::MAX)),
            // Only an end: the week up to it, so any single date is a valid range.
            (None, Some(e)) => (e.checked_sub(week).filter(|d| d.year() >= 1).unwrap_or(e), e),
            (None, None) => (today, today.checked_add(week).unwrap_or(today)),
        };
        domain::DateRange::new(start, end)
    }
}

/// The error body of every failure.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable message (English, or Spanish with `Accept-Language: es`).
    pub detail: String,
    /// Stable snake_case code.
    pub code: String,
}

/// `X-Gym-ID`: the gym a scoped route acts in (documentation only: the tenant
/// extractor reads the header).
#[derive(IntoParams)]
#[into_params(names("X-Gym-ID"), parameter_in = Header)]
pub struct GymHeader(
    /// A positive integer.
    pub i64,
);

/// `after` (the last number seen; 0 or absent: from the oldest kept) and `limit`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesIn {
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

impl ChangesIn {
    pub fn page(&self) -> Result<domain::Page, domain::DomainError> {
        PageIn { skip: Some(0), limit: self.limit }.page()
    }
}

/// One fact of the change feed.
#[derive(Serialize, ToSchema)]
pub struct ChangeOut {
    /// Its number in the gym's feed: 1, 2, 3, … in commit order, no gaps.
    pub seq: i64,
    /// Its stable id (the id webhooks deliver it under).
    pub id: i64,
    /// Its type: `gym_changed`, `membership_changed`, `member_left`, `class_changed`,
    /// `session_scheduled`, `session_cancelled`, `booked`, `booking_cancelled`,
    /// `waitlist_joined`, `waitlist_left`, `waitlist_promoted`, `checked_in`,
    /// `checkin_refused`, `series_scheduled`, `series_stopped`, `event_changed`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was committed.
    pub created_at: super::UtcTime,
    /// Its ids (`{"session": 5, "member": 42, …}`).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// A page of the change feed.
#[derive(Serialize, ToSchema)]
pub struct ChangesOut {
    pub changes: Vec<ChangeOut>,
    /// The cursor to ask with next (`after=`).
    pub next: i64,
}

impl From<domain::changes::ChangePage> for ChangesOut {
    fn from(p: domain::changes::ChangePage) -> Self {
        let changes = p
            .changes
            .into_iter()
            .map(|c| ChangeOut {
                seq: c.seq,
                id: c.id,
                kind: c.kind,
                created_at: c.created_at.into(),
                data: serde_json::from_str(&c.data).unwrap_or(serde_json::Value::Null),
            })
            .collect();
        Self { changes, next: p.next }
    }
}
