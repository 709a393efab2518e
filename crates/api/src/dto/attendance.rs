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
