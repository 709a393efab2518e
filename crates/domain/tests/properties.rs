//! Property tests of the domain's parsers and value types: what each accepts is
//! exactly what its rule says, over inputs no one would think to write by hand.

use domain::attendance::{QrCode, QrSecret};
use domain::{DateRange, DomainError, Timestamp, UserId};
use proptest::prelude::*;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

/// A decimal number as the contract reads it: ASCII digits whose value fits in an
/// `i64`, decided by length and digit comparison, not by a parser.
fn fits_i64(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    let fits = significant.len() < 19 || (significant.len() == 19 && significant <= "9223372036854775807");
    fits.then(|| significant.bytes().fold(0_i64, |n, b| n * 10 + i64::from(b - b'0')))
}

/// The QR rule of the contract: `U`, a positive user id of decimal digits within 64
/// bits and without leading zeros (the one spelling a code is printed with), `_`,
/// exactly eight lowercase hex digits, nothing else.
fn qr_rule(s: &str) -> Option<(i64, String)> {
    let rest = s.strip_prefix('U')?;
    let (id, secret) = rest.split_once('_')?;
    let hex = secret.len() == 8 && secret.chars().all(|c| "0123456789abcdef".contains(c));
    hex.then_some(())?;
    (!id.starts_with('0')).then_some(())?;
    Some((fits_i64(id)?, secret.to_owned()))
}

/// Strings near the QR form as well as arbitrary ones, so both sides of the rule
/// are reached often.
fn qr_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[Uu]?[0-9]{0,21}_?[0-9a-fA-F]{6,10}",
        "U0{1,6}[0-9]{0,19}_[0-9a-f]{8}",
        "U[0-9]{1,19}_[0-9a-f]{8}",
        (any::<u64>(), "[0-9a-f]{8}").prop_map(|(n, h)| format!("U{n}_{h}")),
    ]
}

fn any_date() -> impl Strategy<Value = Date> {
    (Date::MIN.to_julian_day()..=Date::MAX.to_julian_day()).prop_map(|d| Date::from_julian_day(d).unwrap_or(Date::MIN))
}

fn near_dates() -> impl Strategy<Value = (Date, Date)> {
    (any_date(), -10_i64..80).prop_map(|(a, days)| (a, a.checked_add(Duration::days(days)).unwrap_or(a)))
}

proptest! {
    #[test]
    fn a_qr_code_parses_exactly_when_it_has_the_printed_form(s in qr_like()) {
        match (QrCode::parse(&s), qr_rule(&s)) {
            (Ok(qr), Some((id, secret))) => {
                prop_assert_eq!(qr.user_id, UserId(id));
                prop_assert_eq!(qr.secret, secret);
            }
            (Err(DomainError::InvalidQr), None) => {}
            (got, want) => prop_assert!(false, "{s:?}: parser {got:?}, rule {want:?}"),
        }
    }

    #[test]
    fn a_printed_qr_code_parses_back_to_its_owner_and_secret(id in 1..=i64::MAX) {
        let secret = QrSecret::random();
        let qr = QrCode::parse(&QrCode::format(UserId(id), &secret)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(qr.user_id, UserId(id));
        prop_assert_eq!(qr.secret.as_str(), secret.as_str());
    }

    #[test]
    fn a_date_range_is_accepted_exactly_when_ordered_short_and_storable((start, end) in prop_oneof![
        near_dates(),
        (any_date(), any_date()),
    ]) {
        let ordered = start <= end;
        // The contract's bound, not the constant of the code under test.
        let short = (end - start).whole_days() <= 62;
        // Every date of the years 1 to 9999 (the contract's), the last one included.
        let storable = (1..=9999).contains(&start.year()) && (1..=9999).contains(&end.year());
        match DateRange::new(start, end) {
            Ok(r) => {
                prop_assert!(ordered && short && storable, "{start}..{end} accepted");
                // Every whole second of every day of the range lies in [from, through].
                prop_assert_eq!(r.from().date(), start);
                prop_assert_eq!(r.from().offset(), UtcOffset::UTC);
                prop_assert_eq!(r.through() - r.from(), Duration::days((end - start).whole_days() + 1) - Duration::seconds(1));
            }
            Err(e) => {
                prop_assert!(matches!(e, DomainError::Validation(_)), "{e:?}");
                prop_assert!(!(ordered && short && storable), "{start}..{end} refused: {e}");
            }
        }
    }

    #[test]
    fn a_timestamp_is_the_instant_in_utc_to_the_second_or_refused(
        secs in -400_000_000_000_i64..400_000_000_000,
        nanos in 0..1_000_000_000_u32,
        offset_secs in -86_399_i32..86_400,
    ) {
        let Ok(offset) = UtcOffset::from_whole_seconds(offset_secs) else { return Ok(()) };
        let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) else { return Ok(()) };
        let Some(t) = t.checked_add(Duration::nanoseconds(i64::from(nanos))).and_then(|t| t.checked_to_offset(offset)) else {
            return Ok(());
        };
        let utc_year = t.to_offset(UtcOffset::UTC).year();
        match Timestamp::new(t) {
            Ok(ts) => {
                prop_assert!((1..=9999).contains(&utc_year));
                prop_assert_eq!(ts.get().offset(), UtcOffset::UTC);
                prop_assert_eq!(ts.get().nanosecond(), 0);
                prop_assert_eq!(ts.get().unix_timestamp(), t.unix_timestamp());
            }
            Err(_) => prop_assert!(!(1..=9999).contains(&utc_year), "{t} refused"),
        }
    }
}
