//! The bounds of every text and number a client sends, in one place: the services
//! validate against them and the HTTP layer publishes the same numbers in its
//! OpenAPI document, so the document declares exactly what the server enforces.

/// Longest name of a gym, class or user, and title of an event (characters).
pub const NAME_MAX: usize = 200;
/// Longest IANA time zone name of a gym.
pub const TIMEZONE_MAX: usize = 64;
/// Longest address of a gym.
pub const ADDRESS_MAX: usize = 500;
/// Longest phone number of a user.
pub const PHONE_MAX: usize = 50;
/// Longest description of a class.
pub const CLASS_DESCRIPTION_MAX: usize = 2000;
/// Longest category of a class.
pub const CATEGORY_MAX: usize = 100;
/// Longest room of a session.
pub const ROOM_MAX: usize = 100;
/// Longest description of an event.
pub const EVENT_DESCRIPTION_MAX: usize = 5000;
/// Longest location of an event.
pub const LOCATION_MAX: usize = 200;
/// Length of one session of a class, in minutes.
pub const DURATION_MINUTES: std::ops::RangeInclusive<i32> = 1..=600;
/// Places per session of a class.
pub const CAPACITY: std::ops::RangeInclusive<i32> = 1..=1000;
/// Least `max_participants` of an event.
pub const MIN_PARTICIPANTS: i32 = 1;

/// The characters a required text may not consist of alone: ECMAScript's `\s`
/// set, written out so that the OpenAPI pattern built from it means the same in
/// every regex engine (JavaScript's, Python's and Rust's `\s` all differ).
pub const BLANK_CHARS: &[char] = &[
    '\t', '\n', '\u{b}', '\u{c}', '\r', ' ', '\u{a0}', '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}',
    '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200a}', '\u{2028}', '\u{2029}',
    '\u{202f}', '\u{205f}', '\u{3000}', '\u{feff}',
];

/// Whether a character is one of [`BLANK_CHARS`].
pub fn is_blank(c: char) -> bool {
    BLANK_CHARS.contains(&c)
}

/// The longest occupancy window of a gym: a day.
pub const OCCUPANCY_WINDOW_MAX: i32 = 1440;

/// The occupancy window of a new gym, in minutes.
pub const OCCUPANCY_WINDOW_DEFAULT: i32 = 90;
