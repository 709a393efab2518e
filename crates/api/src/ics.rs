//! The member calendar feed as RFC 5545 text (the `icalendar` crate writes it).
//!
//! Each session is a `VEVENT` whose UID is the session's (stable across polls and
//! rotations of the token), stamped with when the member's booking was made, and
//! timed on the gym's wall clock (`DTSTART;TZID=Europe/Madrid:20260316T090000`,
//! the IANA name as the zone's id, which calendar apps resolve themselves); a session
//! the gym cancelled is `STATUS:CANCELLED`, so apps strike it rather than keep it.

use domain::calendar::Feed;
use domain::schedule::SessionStatus;
use icalendar::{Calendar, CalendarDateTime, Component, Event, EventLike, EventStatus, Property};
use time::OffsetDateTime;

/// The feed's text.
pub fn render(feed: &Feed) -> String {
    let zone = jiff::tz::TimeZone::get(&feed.timezone).ok();
    let mut calendar = Calendar::new();
    // The crate escapes the TEXT properties it knows, and NAME (RFC 7986) is not one
    // of them: written as given, a name with a line break would add lines to every
    // member's feed. Escaped here; the others get text without stray controls.
    calendar
        .append_property(Property::new("NAME", escaped(&feed.gym_name)))
        .append_property(Property::new("X-WR-CALNAME", clean(&feed.gym_name)))
        .timezone(feed.timezone.as_str());
    for entry in &feed.entries {
        let s = &entry.session;
        let mut event = Event::new();
        event
            .uid(&format!("session-{}-{}@gymapi", feed.gym_id.0, s.id.0))
            .summary(&clean(&entry.class_name))
            .timestamp(utc(entry.changed_at))
            .starts(wall_clock(zone.as_ref(), &feed.timezone, s.start_time))
            .ends(wall_clock(zone.as_ref(), &feed.timezone, s.end_time))
            .status(match s.status {
                SessionStatus::Cancelled => EventStatus::Cancelled,
                SessionStatus::Scheduled => EventStatus::Confirmed,
            });
        if let Some(room) = &s.room {
            event.location(&clean(room));
        }
        calendar.push(event.done());
    }
    calendar.done().to_string()
}

/// Text as an RFC 5545 TEXT value may hold it: a CR or CRLF is a line break (which
/// the writer escapes), other control characters but tab are dropped.
fn clean(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// RFC 5545 section 3.3.11's escaping, for a TEXT property the writer copies as it is.
fn escaped(text: &str) -> String {
    clean(text).replace('\\', "\\\\").replace(',', "\\,").replace(';', "\\;").replace('\n', "\\n")
}

fn utc(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap_or_default()
}

/// The instant on the zone's wall clock; UTC when the gym's stored zone is unknown.
fn wall_clock(zone: Option<&jiff::tz::TimeZone>, tzid: &str, t: OffsetDateTime) -> CalendarDateTime {
    let local = zone.and_then(|z| {
        let dt = z.to_datetime(jiff::Timestamp::from_second(t.unix_timestamp()).ok()?);
        let date = chrono::NaiveDate::from_ymd_opt(
            i32::from(dt.year()),
            dt.month().try_into().ok()?,
            dt.day().try_into().ok()?,
        )?;
        date.and_hms_opt(dt.hour().try_into().ok()?, dt.minute().try_into().ok()?, dt.second().try_into().ok()?)
    });
    match local {
        Some(date_time) => CalendarDateTime::WithTimezone { date_time, tzid: tzid.to_owned() },
        None => CalendarDateTime::Utc(utc(t)),
    }
}

/// A strong validator of the text: equal texts, equal tags, on every instance.
pub fn etag(text: &str) -> String {
    // FNV-1a: stable across processes and releases, unlike std's hasher.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("\"{hash:016x}-{}\"", text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::GymId;

    #[test]
    fn a_gym_name_cannot_add_lines_to_the_feed() {
        let feed = Feed {
            gym_id: GymId(1),
            gym_name: "Iron, Gym; X\nBEGIN:VEVENT\r\nSUMMARY:Free\rEND:VEVENT\u{b}\\".into(),
            timezone: "UTC".into(),
            entries: Vec::new(),
        };
        // Unfolded (RFC 5545 section 3.1): a line break followed by a space joins.
        let text = render(&feed).replace("\r\n ", "");
        assert!(!text.lines().any(|l| l.starts_with("BEGIN:VEVENT") || l.starts_with("SUMMARY")), "{text}");
        assert!(
            text.contains("\r\nNAME:Iron\\, Gym\\; X\\nBEGIN:VEVENT\\nSUMMARY:Free\\nEND:VEVENT\\\\\r\n"),
            "{text}"
        );
        assert!(text.contains("X-WR-CALNAME:Iron\\, Gym\\; X\\nBEGIN:VEVENT"), "{text}");
        assert!(!text.contains('\u{b}'));
    }
}
