//! The one error type of the domain: each variant is one stable code of the contract.

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
    /// No such event in this gym (`event_not_found`).
    #[error("event not found")]
    EventNotFound,
    /// The member already holds a place in the session (`already_registered`).
    #[error("already registered")]
    AlreadyRegistered,
    /// Every place of the session is taken (`session_full`).
    #[error("session full")]
    SessionFull,
    /// The session is cancelled or has started (`session_not_open`).
    #[error("session not open for registration")]
    SessionNotOpen,
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
    /// The database could not be reached in time (`database_unavailable`).
    #[error("database unavailable")]
    Unavailable,
    /// Anything unexpected; the cause is for logs, never for clients (`internal_error`).
    #[error("internal error: {0}")]
    Internal(String),
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
            Self::AlreadyRegistered => "already_registered",
            Self::SessionFull => "session_full",
            Self::SessionNotOpen => "session_not_open",
            Self::InvalidQr => "invalid_qr",
            Self::SessionOutsideWindow => "session_outside_window",
            Self::NoSessionInWindow => "no_session_in_window",
            Self::AlreadyCheckedIn => "already_checked_in",
            Self::Unavailable => "database_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Builds a [`DomainError::Validation`] from anything printable.
    pub fn validation(msg: impl Into<String>) -> Self {
        Self::Validation(msg.into())
    }
}
