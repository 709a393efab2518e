//! Times on the wire: one type, [`UtcTime`], carries their JSON form and their
//! OpenAPI schema; dates of query parameters are parsed by [`parse_date`].

use std::borrow::Cow;

use domain::{DomainError, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

/// A calendar date of the years 1 to 9999, leap days included only in leap years,
/// as a regular expression that means the same in Rust, Python and JavaScript: the
/// server accepts exactly what the OpenAPI document's pattern admits.
const DATE_RE: &str = concat!(
    "(?:(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-",
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])",
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)",
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))",
    "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29)"
);
/// RFC 3339 time of day with seconds (up to nanoseconds) and its offset.
const TIME_RE: &str =
    "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";

/// The anchored pattern of request date-times (published in the OpenAPI document).
pub fn date_time_pattern() -> String {
    format!("^{DATE_RE}{TIME_RE}$")
}

/// The anchored pattern of request dates (published in the OpenAPI document).
pub fn date_pattern() -> String {
    format!("^{DATE_RE}$")
}

static DATE_TIME: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(&date_time_pattern()).ok());
static DATE: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(&date_pattern()).ok());

/// Parses a request date-time ([`date_time_pattern`]) into a storable [`Timestamp`]
/// (UTC, whole seconds, years 1 to 9999 once in UTC).
///
/// # Errors
/// A message for the client: not a date-time, or not storable.
pub fn parse_time(s: &str) -> Result<Timestamp, TimeError> {
    let not_a_time = || TimeError::NotRfc3339(s.to_owned());
    if !DATE_TIME.as_ref().is_some_and(|re| re.is_match(s)) {
        return Err(not_a_time());
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| not_a_time())?;
    Timestamp::new(t).map_err(|_| TimeError::OutOfRange(s.to_owned()))
}

/// Why a request date-time was refused (the message a client reads).
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    /// Not of the published pattern.
    #[error("{0:?} is not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SS[.f][Z|+HH:MM])")]
    NotRfc3339(String),
    /// Not within the years 1 to 9999 once in UTC.
    #[error("{0:?} is outside the years 1 to 9999 in UTC")]
    OutOfRange(String),
}

/// Parses a request date ([`date_pattern`]).
///
/// # Errors
/// A message naming the parameter.
pub fn parse_date(name: &str, s: &str) -> Result<time::Date, domain::DomainError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    DATE.as_ref()
        .filter(|re| re.is_match(s))
        .and_then(|_| time::Date::parse(s, fmt).ok())
        .ok_or_else(|| domain::DomainError::validation(format!("{name} must be a date YYYY-MM-DD")))
}

/// An instant on the wire. Out, RFC 3339 in UTC with `Z`; in, exactly
/// [`date_time_pattern`], made a storable [`Timestamp`] (UTC, sub-seconds truncated,
/// years 1 to 9999). Its schema in the OpenAPI document says the same, so no field
/// repeats a format or a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime(OffsetDateTime);

impl UtcTime {
    /// The instant as the domain stores it.
    ///
    /// # Errors
    /// [`DomainError::Validation`] outside the years 1 to 9999 (never for a time read
    /// from a request, which was checked when parsed).
    pub fn storable(self) -> Result<Timestamp, DomainError> {
        Timestamp::new(self.0)
    }
}

impl From<OffsetDateTime> for UtcTime {
    fn from(t: OffsetDateTime) -> Self {
        Self(t)
    }
}

impl From<Timestamp> for UtcTime {
    fn from(t: Timestamp) -> Self {
        Self(t.get())
    }
}

impl UtcTime {
    /// The instant as every answer writes it: RFC 3339 in UTC.
    ///
    /// # Errors
    /// A year the format cannot write (never for a storable time).
    pub fn rfc3339(self) -> Result<String, time::error::Format> {
        self.0.to_offset(UtcOffset::UTC).format(&Rfc3339)
    }
}

impl Serialize for UtcTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339().map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for UtcTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_time(&s).map(Self::from).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for UtcTime {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .pattern(Some(date_time_pattern()))
            .description(Some(
                "RFC 3339 with seconds and offset (responses: UTC, `Z`); the instant falls within the years 1 to \
                 9999 in UTC",
            ))
            .into()
    }
}

impl utoipa::ToSchema for UtcTime {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("UtcTime")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_date_time_pattern_admits_parses_and_the_rest_does_not() {
        for ok in [
            "2026-01-31T10:00:00Z",
            "2024-02-29T23:59:59.123456789+05:30",
            "2000-02-29T00:00:00-23:59",
            "0004-02-29T00:00:00Z",
            "0001-01-01T12:00:00+00:00",
            "9999-12-31T23:59:59.5Z",
            "2026-04-30T00:00:00.1-00:00",
        ] {
            assert!(parse_time(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "2026-02-29T10:00:00Z",
            "1900-02-29T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "0000-06-01T00:00:00Z",
            "2026-01-01 10:00:00Z",
            "2026-01-01T10:00Z",
            "2026-01-01t10:00:00z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T10:00:60Z",
            "2026-01-01T10:00:00.1234567890Z",
            "2026-01-01T10:00:00",
            "2026-01-01T10:00:00+24:00",
            "+2026-01-01T10:00:00Z",
            "２０２６-01-01T10:00:00Z",
            "9999-12-31T23:30:00-01:00",
            "0001-01-01T00:30:00+01:00",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_time_is_written_in_utc_and_read_back_as_the_same_instant() {
        let t = time::macros::datetime!(2026-03-01 10:00:00 +02:00);
        let json = serde_json::to_string(&UtcTime::from(t)).expect("serialize");
        assert_eq!(json, "\"2026-03-01T08:00:00Z\"");
        let back: UtcTime = serde_json::from_str("\"2026-03-01T10:00:00.9+02:00\"").expect("parse");
        assert_eq!(back.storable().map(Timestamp::get), Ok(t), "sub-seconds are truncated");
        assert!(serde_json::from_str::<UtcTime>("\"2026-03-01T10:00\"").is_err());
    }

    #[test]
    fn what_the_date_pattern_admits_parses_and_the_rest_does_not() {
        for ok in ["2026-01-31", "2024-02-29", "0001-01-01", "9999-12-31"] {
            assert!(parse_date("d", ok).is_ok(), "{ok}");
        }
        for bad in ["", "2026-02-29", "0000-01-01", "2026-1-1", "-0001-01-01", "10000-01-01", "2026-13-01"] {
            assert!(parse_date("d", bad).is_err(), "{bad:?}");
        }
    }

    use proptest::prelude::*;

    /// Days in a month of the proleptic Gregorian calendar, from the leap-year rule.
    fn days_in(year: i32, month: u8) -> u8 {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    fn digits(s: &str) -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
    }

    /// `YYYY-MM-DD` of years 0001 to 9999, a real calendar day: the rule as written, no parser.
    fn date_rule(s: &str) -> Option<(i32, u8, u8)> {
        if s.len() != 10 || !s.is_ascii() || &s[4..5] != "-" || &s[7..8] != "-" {
            return None;
        }
        let (y, m, d) = (digits(&s[0..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
        let (y, m, d) = (i32::try_from(y).ok()?, u8::try_from(m).ok()?, u8::try_from(d).ok()?);
        (y >= 1 && (1..=12).contains(&m) && d >= 1 && d <= days_in(y, m)).then_some((y, m, d))
    }

    /// The published date-time form, as written: a [`date_rule`] date, `T`, `HH:MM:SS`
    /// (hours to 23, seconds to 59), one to nine fraction digits or none, `Z` or an
    /// offset to ±23:59; and the instant, once in UTC, within the years 1 to 9999.
    fn time_rule(s: &str) -> bool {
        let Some((y, m, d)) = s.get(..10).and_then(date_rule) else { return false };
        let rest = &s[10..];
        let Some(rest) = rest.strip_prefix('T') else { return false };
        let clock = |t: &str| -> Option<u32> {
            let (h, mi, se) = (digits(t.get(0..2)?)?, digits(t.get(3..5)?)?, digits(t.get(6..8)?)?);
            let shape = t.len() == 8 && &t[2..3] == ":" && &t[5..6] == ":";
            (shape && h <= 23 && mi <= 59 && se <= 59).then_some(h * 3600 + mi * 60 + se)
        };
        let Some(secs) = rest.get(..8).and_then(clock) else { return false };
        let mut rest = &rest[8..];
        if let Some(f) = rest.strip_prefix('.') {
            let n = f.bytes().take_while(u8::is_ascii_digit).count();
            if !(1..=9).contains(&n) {
                return false;
            }
            rest = &f[n..];
        }
        let offset_secs: i64 = match rest {
            "Z" => 0,
            o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && &o[3..4] == ":" => {
                let (Some(h), Some(mi)) = (digits(&o[1..3]), digits(&o[4..6])) else { return false };
                if h > 23 || mi > 59 {
                    return false;
                }
                let v = i64::from(h * 3600 + mi * 60);
                if o.starts_with('-') { -v } else { v }
            }
            _ => return false,
        };
        // Days from 0001-01-01 of the local date, then the UTC instant's year.
        let days_before_year = |y: i32| {
            let y = i64::from(y - 1);
            y * 365 + y / 4 - y / 100 + y / 400
        };
        let day_of_year: i64 = (1..m).map(|mm| i64::from(days_in(y, mm))).sum::<i64>() + i64::from(d) - 1;
        let local = (days_before_year(y) + day_of_year) * 86_400 + i64::from(secs);
        let utc = local - offset_secs;
        let (first, after_last) = (0, days_before_year(10_000) * 86_400);
        (first..after_last).contains(&utc)
    }

    /// Any instant of the years 1 to 9999 at any whole-minute offset, with or
    /// without sub-seconds.
    fn written_times() -> impl Strategy<Value = (OffsetDateTime, String)> {
        let first = time::macros::datetime!(0001-01-01 00:00 UTC).unix_timestamp();
        let last = time::macros::datetime!(9999-12-31 23:59:59 UTC).unix_timestamp();
        (first..=last, 0..1_000_000_000_u32, -(23 * 60 + 59)..=(23 * 60 + 59_i32)).prop_filter_map(
            "not writable at that offset",
            |(secs, nanos, minutes)| {
                let offset = time::UtcOffset::from_whole_seconds(minutes * 60).ok()?;
                let t = OffsetDateTime::from_unix_timestamp(secs).ok()?.replace_nanosecond(nanos).ok()?;
                // The published pattern writes years 0001 to 9999, locally too.
                let local = t.checked_to_offset(offset).filter(|l| l.year() >= 1)?;
                Some((t, local.format(&Rfc3339).ok()?))
            },
        )
    }

    proptest::proptest! {
        #[test]
        fn a_written_time_reads_back_as_its_instant_to_the_second((t, s) in written_times()) {
            match parse_time(&s) {
                Ok(ts) => {
                    prop_assert_eq!(ts.get().unix_timestamp(), t.unix_timestamp(), "{}", s);
                    prop_assert_eq!(ts.get().offset(), time::UtcOffset::UTC);
                }
                Err(e) => prop_assert!(false, "{s}: {e}"),
            }
        }

        #[test]
        fn parse_time_accepts_exactly_the_published_form(
            s in prop_oneof![
                any::<String>(),
                "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2})?(\\.[0-9]{1,11})?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
            ]
        ) {
            prop_assert_eq!(parse_time(&s).is_ok(), time_rule(&s), "{:?}", s);
        }

        #[test]
        fn a_date_parses_exactly_when_it_is_a_calendar_date_of_years_1_to_9999(
            s in prop_oneof![any::<String>(), "[0-9]{4}-[0-9]{2}-[0-9]{2}", "-?[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}"]
        ) {
            match (parse_date("d", &s), date_rule(&s)) {
                (Ok(d), Some((y, m, day))) => {
                    prop_assert_eq!((d.year(), u8::from(d.month()), d.day()), (y, m, day));
                }
                (Err(_), None) => {}
                (got, rule) => prop_assert!(false, "{s:?}: parser {got:?}, rule {rule:?}"),
            }
        }
    }
}
