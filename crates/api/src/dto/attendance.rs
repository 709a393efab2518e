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
        dates_from_to(&self.from, &self.to, today, 7)
    }
}

/// `from` / `to` as UTC dates, inclusive: both given; one and the `days` dates from or
/// up to it; or the `days` dates up to today (today included).
pub fn dates_from_to(
    from: &Option<String>,
    to: &Option<String>,
    today: ::time::Date,
    days: i64,
) -> Result<domain::DateRange, domain::DomainError> {
    let parse = |name: &str, v: &Option<String>| v.as_deref().map(|s| super::times::parse_date(name, s)).transpose();
    let beside = ::time::Duration::days(days - 1);
    let (from, to) = match (parse("from", from)?, parse("to", to)?) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, f.checked_add(beside).unwrap_or(::time::Date::MAX)),
        (None, Some(t)) => (t.checked_sub(beside).filter(|d| d.year() >= 1).unwrap_or(t), t),
        (None, None) => (today.checked_sub(beside).unwrap_or(today), today),
    };
    domain::DateRange::new(from, to)
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

/// `from` / `to` of the classes' report (UTC dates, inclusive, at most 62 days apart;
/// by default the four weeks up to today).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportDatesIn {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl ReportDatesIn {
    pub fn range(&self, today: ::time::Date) -> Result<domain::DateRange, domain::DomainError> {
        dates_from_to(&self.from, &self.to, today, 28)
    }
}

/// One class in the classes' report.
#[derive(Serialize, ToSchema)]
pub struct ClassReportOut {
    pub class_id: i64,
    pub name: String,
    /// Sessions held: not cancelled, started within the dates, ended.
    pub sessions: i64,
    /// Places offered in them (their capacities).
    pub places: i64,
    /// Places taken: registered, attended (walk-ins included) and no-show.
    pub taken: i64,
    pub attended: i64,
    pub no_shows: i64,
    /// `taken / places`; `null` over no places.
    pub fill_rate: Option<f64>,
    /// `attended / taken`; `null` over no places taken.
    pub attendance_rate: Option<f64>,
    /// `no_shows / taken`; `null` over no places taken.
    pub no_show_rate: Option<f64>,
}

impl From<domain::reports::ClassReport> for ClassReportOut {
    fn from(r: domain::reports::ClassReport) -> Self {
        let f = r.figures;
        Self {
            class_id: f.class_id.0,
            name: f.name,
            sessions: f.sessions,
            places: f.places,
            taken: f.taken,
            attended: f.attended,
            no_shows: f.no_shows,
            fill_rate: r.fill_rate,
            attendance_rate: r.attendance_rate,
            no_show_rate: r.no_show_rate,
        }
    }
}

response! {
    /// One plan's passes and pack credits over the report's dates: passes sold then, and
    /// credits granted, used, refunded (in time, cancelled sessions, members removed),
    /// forfeited (late cancels) and expired then.
    PassReportOut from domain::reports::PlanFigures {
        plan_id: i64, name: String, passes_sold: i64, credits_granted: i64, credits_used: i64,
        credits_refunded: i64, credits_forfeited: i64, credits_expired: i64,
    }
}

/// A member's weekly habit.
#[derive(Serialize, ToSchema)]
pub struct MemberReportOut {
    pub member_id: i64,
    /// Weeks in a row with an attendance, back from this week (an unfinished week
    /// without one yet does not break it).
    pub streak_weeks: i64,
    /// The last 12 ISO weeks on the gym's wall clock, oldest first.
    pub weeks: Vec<WeekOut>,
}

#[derive(Serialize, ToSchema)]
pub struct WeekOut {
    /// The week's Monday (`YYYY-MM-DD`).
    pub week_start: String,
    pub attended: i64,
}

impl From<domain::reports::MemberReport> for MemberReportOut {
    fn from(r: domain::reports::MemberReport) -> Self {
        Self {
            member_id: r.member.0,
            streak_weeks: r.streak_weeks,
            weeks: r.weeks.into_iter().map(|(d, n)| WeekOut { week_start: d.to_string(), attended: n }).collect(),
        }
    }
}
