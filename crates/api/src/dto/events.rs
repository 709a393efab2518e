//! §4 "Events".

use domain::DomainError;
use domain::events::{Event, EventFields};
use serde::Deserialize;
use utoipa::ToSchema;

use super::times::UtcTime;
use super::wire::response;

response! {
    /// `Event`.
    EventOut from Event {
        id: i64, gym_id: i64, title: String, description: Option<String>, start_time: UtcTime, end_time: UtcTime,
        location: Option<String>, max_participants: Option<i32>, created_by: Option<i64>, created_at: UtcTime,
    }
}

#[derive(Deserialize, ToSchema)]
pub struct EventIn {
    pub title: Option<String>,
    pub description: Option<String>,
    pub start_time: Option<UtcTime>,
    pub end_time: Option<UtcTime>,
    pub location: Option<String>,
    pub max_participants: Option<i32>,
}

/// `POST /events`: the fields an event must have.
#[derive(Deserialize, ToSchema)]
pub struct EventNewIn {
    pub title: String,
    pub description: Option<String>,
    pub start_time: UtcTime,
    pub end_time: UtcTime,
    pub location: Option<String>,
    pub max_participants: Option<i32>,
}

impl TryFrom<EventNewIn> for EventFields {
    type Error = DomainError;

    /// A new event is a change with every required field given.
    fn try_from(e: EventNewIn) -> Result<Self, Self::Error> {
        EventIn {
            title: Some(e.title),
            description: e.description,
            start_time: Some(e.start_time),
            end_time: Some(e.end_time),
            location: e.location,
            max_participants: e.max_participants,
        }
        .try_into()
    }
}

impl TryFrom<EventIn> for EventFields {
    type Error = DomainError;

    fn try_from(e: EventIn) -> Result<Self, Self::Error> {
        Ok(Self {
            title: e.title,
            description: e.description,
            start_time: e.start_time.map(UtcTime::storable).transpose()?,
            end_time: e.end_time.map(UtcTime::storable).transpose()?,
            location: e.location,
            max_participants: e.max_participants,
        })
    }
}
