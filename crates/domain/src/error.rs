//! The one error type of the domain: each variant is one stable code of the contract.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Shorthand for results whose error is a [`DomainError`].
pub type Result<T, E = DomainError> = std::result::Result<T, E>;

/// Every way a domain operation can fail. [`DomainError::code`] is the stable,
/// snake_case code clients see; the HTTP layer maps each variant to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Input broke a rule of shape or range (`validation_error`); the text says which.
    #[error("validation failed: {0}")]
    Validation(String),
    /// The caller does not belong to the gym, or the gym does not exist (`not_a_member`).
    #[error("not a member of this gym")]
    NotAMember,
    /// The caller's role is too low for the operation (`forbidden`).
    #[error("forbidden")]
    Forbidden,
    /// No such user, or not visible from this gym (`user_not_found`).
    #[error("user not found")]
    UserNotFound,
    /// The user already belongs to the gym (`already_member`).
    #[error("already a member")]
    AlreadyMember,
    /// The operation would leave the gym without an owner (`last_owner`).
    #[error("the gym would have no owner")]
    LastOwner,
    /// No such class in this gym (`class_not_found`).
    #[error("class not found")]
    ClassNotFound,
    /// No such session in this gym (`session_not_found`).
    #[error("session not found")]
    SessionNotFound,
    /// No such series of the class in this gym (`recurrence_not_found`).
    #[error("recurrence not found")]
    RecurrenceNotFound,
    /// No such event in this gym (`event_not_found`).
    #[error("event not found")]
    EventNotFound,
    /// The member already holds a place in the session (`already_registered`).
    #[error("already registered")]
    AlreadyRegistered,
    /// The member holds no place in the session to give back (`not_registered`).
    #[error("not registered")]
    NotRegistered,
    /// The member is already on the session's waitlist (`already_waitlisted`).
    #[error("already on the waitlist")]
    AlreadyWaitlisted,
    /// The member is on as many waitlists as the gym allows (`waitlist_limit`).
    #[error("waitlist limit reached")]
    WaitlistLimit,
    /// Every place of the session is taken (`session_full`).
    #[error("session full")]
    SessionFull,
    /// The session is cancelled or has started (`session_not_open`).
    #[error("session not open for registration")]
    SessionNotOpen,
    /// The gym's booking window for the session has not opened yet (`booking_not_open`).
    #[error("booking opens at {opens_at}")]
    BookingNotOpen {
        /// When it opens.
        opens_at: time::OffsetDateTime,
    },
    /// The gym's booking window for the session closed before its start
    /// (`session_not_open`, as a started session).
    #[error("booking closed at {closed_at}")]
    BookingClosed {
        /// When it closed.
        closed_at: time::OffsetDateTime,
    },
    /// The QR code is malformed, unknown or not the user's current one (`invalid_qr`).
    #[error("invalid QR code")]
    InvalidQr,
    /// The chosen session does not start inside the check-in window (`session_outside_window`).
    #[error("session outside the check-in window")]
    SessionOutsideWindow,
    /// No scheduled session of the gym starts inside the window (`no_session_in_window`).
    #[error("no session in the check-in window")]
    NoSessionInWindow,
    /// The member's participation is already `attended` (`already_checked_in`).
    #[error("already checked in")]
    AlreadyCheckedIn,
    /// Another request with the caller's idempotency key is at work, or did the work
    /// this one was about to do (`idempotency_key_in_progress`): nothing was done
    /// here; the caller's first request answers for both.
    #[error("idempotency key in use by another request")]
    IdempotencyKeyInProgress,
    /// No webhook of the gym has this id (`webhook_not_found`).
    #[error("webhook not found")]
    WebhookNotFound,
    /// The webhook has no delivery with this id (`delivery_not_found`).
    #[error("delivery not found")]
    DeliveryNotFound,
    /// No plan of the gym has this id (`plan_not_found`).
    #[error("plan not found")]
    PlanNotFound,
    /// The member holds no pass of the gym with this id (`pass_not_found`).
    #[error("pass not found")]
    PassNotFound,
    /// The member holds no pass usable for the session (`no_valid_pass`).
    #[error("no valid pass")]
    NoValidPass,
    /// The member's usable passes reached their weekly limit (`weekly_limit_reached`).
    #[error("weekly limit reached")]
    WeeklyLimitReached,
    /// A payment event's signature is missing, stale or not made with the gym's
    /// secret (`invalid_signature`).
    #[error("invalid signature")]
    InvalidSignature,
    /// The change feed's next fact after the cursor was purged (`cursor_expired`).
    #[error("the cursor is older than the facts kept")]
    CursorExpired,
    /// The database could not be reached in time (`database_unavailable`).
    #[error("database unavailable")]
    Unavailable,
    /// Anything unexpected; the cause, with its whole source chain, is for logs,
    /// never for clients (`internal_error`).
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
}

impl DomainError {
    /// The stable code of the contract for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_error",
            Self::NotAMember => "not_a_member",
            Self::Forbidden => "forbidden",
            Self::UserNotFound => "user_not_found",
            Self::AlreadyMember => "already_member",
            Self::LastOwner => "last_owner",
            Self::ClassNotFound => "class_not_found",
            Self::SessionNotFound => "session_not_found",
            Self::EventNotFound => "event_not_found",
            Self::RecurrenceNotFound => "recurrence_not_found",
            Self::AlreadyRegistered => "already_registered",
            Self::NotRegistered => "not_registered",
            Self::SessionFull => "session_full",
            Self::AlreadyWaitlisted => "already_waitlisted",
            Self::WaitlistLimit => "waitlist_limit",
            Self::SessionNotOpen | Self::BookingClosed { .. } => "session_not_open",
            Self::BookingNotOpen { .. } => "booking_not_open",
            Self::InvalidQr => "invalid_qr",
            Self::SessionOutsideWindow => "session_outside_window",
            Self::NoSessionInWindow => "no_session_in_window",
            Self::AlreadyCheckedIn => "already_checked_in",
            Self::IdempotencyKeyInProgress => "idempotency_key_in_progress",
            Self::CursorExpired => "cursor_expired",
            Self::WebhookNotFound => "webhook_not_found",
            Self::DeliveryNotFound => "delivery_not_found",
            Self::PlanNotFound => "plan_not_found",
            Self::PassNotFound => "pass_not_found",
            Self::NoValidPass => "no_valid_pass",
            Self::WeeklyLimitReached => "weekly_limit_reached",
            Self::InvalidSignature => "invalid_signature",
            Self::Unavailable => "database_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Builds a [`DomainError::Validation`] from anything printable.
    pub fn validation(msg: impl Into<String>) -> Self {
        Self::Validation(msg.into())
    }

    /// Builds a [`DomainError::Internal`] from an error (kept whole, sources and all)
    /// or from a message naming a broken invariant.
    pub fn internal(cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Internal(Cause(Arc::from(cause.into())))
    }
}

/// What went wrong inside an [`DomainError::Internal`]: the original error, shared
/// so that [`DomainError`] stays `Clone` (mocks and retries hand errors around).
#[derive(Clone)]
pub struct Cause(Arc<dyn StdError + Send + Sync>);

impl Cause {
    /// Every message of the chain, outermost first, joined by `": "`: what a log line
    /// needs to tell a timeout from a constraint from a broken invariant.
    pub fn chain(&self) -> String {
        let mut out = self.0.to_string();
        let mut next = self.0.source();
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// Two causes are equal when they say the same: errors carry no identity, and tests
/// compare what would be logged.
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.chain() == other.chain()
    }
}

impl Eq for Cause {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("query failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_internal_error_keeps_its_whole_source_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "socket timed out");
        let e = DomainError::internal(Outer(io));
        let DomainError::Internal(cause) = &e else { panic!("not internal: {e:?}") };
        assert_eq!(cause.chain(), "query failed: socket timed out");
        let source = StdError::source(&e).expect("the cause is the source");
        assert_eq!(source.to_string(), "query failed");
        assert_eq!(source.source().map(ToString::to_string).as_deref(), Some("socket timed out"));
        assert_eq!(e.code(), "internal_error");
    }

    #[test]
    fn a_message_is_a_cause_too() {
        assert_eq!(DomainError::internal("insert returned no row"), DomainError::internal("insert returned no row"));
        assert_ne!(DomainError::internal("a"), DomainError::internal("b"));
    }
}
