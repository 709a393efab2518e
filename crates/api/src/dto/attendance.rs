//! §4 "Attendance" and §5 check-in: QR codes, check-ins and the member's figures.

use domain::attendance::{CheckIn, DashboardSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schedule::SessionOut;
use super::times::UtcTime;
use super::wire::response;

#[derive(Serialize, ToSchema)]
pub struct QrOut {
    pub user_id: i64,
    pub qr_code: String,
    /// When a rotating code stops being the current one (it is accepted one step
    /// more); `null` for a static code.
    pub expires_at: Option<UtcTime>,
    /// The gym's QR mode: `static` or `rotating`.
    pub mode: &'static str,
}

impl QrOut {
    pub fn new(user: domain::UserId, qr: domain::attendance::MyQr) -> Self {
        Self { user_id: user.0, qr_code: qr.code, expires_at: qr.expires_at.map(UtcTime::from), mode: qr.mode.as_str() }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct CheckInIn {
    pub qr_code: String,
    pub session_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckInSessionOut {
    pub id: i64,
    pub start_time: UtcTime,
    pub end_time: UtcTime,
}

#[derive(Serialize, ToSchema)]
pub struct CheckInOut {
    pub success: bool,
    pub message: &'static str,
    pub session: CheckInSessionOut,
    pub user_id: i64,
    pub new_participation: bool,
}

impl CheckInOut {
    pub fn new(c: CheckIn, message: &'static str) -> Self {
        Self {
            success: true,
            message,
            session: CheckInSessionOut {
                id: c.session_id.0,
                start_time: c.start_time.into(),
                end_time: c.end_time.into(),
            },
            user_id: c.user_id.0,
            new_participation: c.new_participation,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LastAttendanceOut {
    pub last_attendance: Option<UtcTime>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryItemOut {
    pub session: SessionOut,
    pub attendance_time: UtcTime,
}

response! {
    /// The member's dashboard.
    DashboardOut from DashboardSummary {
        total_attendances: i64, attendances_last_30_days: i64, last_attendance: Option<UtcTime>,
        upcoming_registrations: Vec<SessionOut>,
    }
}

/// A member's calendar feed.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CalendarOut {
    /// The unguessable token (the feed's only key: keep it like a password).
    pub token: String,
    /// The feed's URL, to subscribe to in a calendar app.
    pub url: String,
}

/// `from` / `to` (UTC dates, inclusive, at most 62 days apart; by default the week up
/// to today) with `skip` and `limit`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefusalsIn {
    pub from: Option<String>,
    pub to: Option<String>,
    pub skip: Option<i64>,
    pub limit: Option<i64>,
}

impl RefusalsIn {
    pub fn page(&self) -> Result<domain::Page, domain::DomainError> {
        super::PageIn { skip: self.skip, limit: self.limit }.page()
    }

    pub fn range(&self, today: ::time::Date) -> Result<domain::DateRange, domain::DomainError> {
        let parse =
            |name: &str, v: &Option<String>| v.as_deref().map(|s| super::times::parse_date(name, s)).transpose();
        let week = ::time::Duration::days(7);
        let (from, to) = match (parse("from", &self.from)?, parse("to", &self.to)?) {
            (Some(f), Some(t)) => (f, t),
            (Some(f), None) => (f, f.checked_add(week).unwrap_or(::time::Date::MAX)),
            (None, Some(t)) => (t.checked_sub(week).filter(|d| d.year() >= 1).unwrap_or(t), t),
            (None, None) => (today.checked_sub(week).unwrap_or(today), today),
        };
        domain::DateRange::new(from, to)
    }
}

/// A refused check-in of the audit.
#[derive(Serialize, ToSchema)]
pub struct RefusalOut {
    pub id: i64,
    /// What was scanned (at most 64 characters kept).
    pub qr_code: String,
    /// The user the code names, when it parsed.
    pub qr_user_id: Option<i64>,
    /// The front desk's user.
    pub desk_user_id: i64,
    /// The session the desk named.
    pub session_id: Option<i64>,
    /// The refusal's code.
    pub code: String,
    pub at: UtcTime,
    /// One of 3 or more refusals of this member's code within 5 minutes.
    pub repeated_member: bool,
    /// One of 5 or more refusals at this desk within 5 minutes.
    pub repeated_desk: bool,
}

impl From<domain::refusals::Refusal> for RefusalOut {
    fn from(r: domain::refusals::Refusal) -> Self {
        Self {
            id: r.id,
            qr_code: r.draft.qr_code,
            qr_user_id: r.draft.qr_user.map(|u| u.0),
            desk_user_id: r.draft.desk.0,
            session_id: r.draft.session.map(|s| s.0),
            code: r.draft.code,
            at: r.draft.at.into(),
            repeated_member: r.repeated_member,
            repeated_desk: r.repeated_desk,
        }
    }
}

/// Who is in the gym now.
#[derive(Serialize, ToSchema)]
pub struct OccupancyOut {
    /// Members checked in within the window (each once).
    pub total: i64,
    /// The gym's `occupancy_window_minutes`.
    pub window_minutes: i32,
    pub sessions: Vec<SessionOccupancyOut>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionOccupancyOut {
    pub session_id: i64,
    /// Members checked in to it within the window.
    pub checked_in: i64,
}

impl From<domain::attendance::Occupancy> for OccupancyOut {
    fn from(o: domain::attendance::Occupancy) -> Self {
        Self {
            total: o.total,
            window_minutes: o.window_minutes,
            sessions: o
                .sessions
                .into_iter()
                .map(|(s, n)| SessionOccupancyOut { session_id: s.0, checked_in: n })
                .collect(),
        }
    }
}
