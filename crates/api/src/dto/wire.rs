//! How a domain value travels in a response, so that a response type is declared
//! once: its fields with their wire types, and nothing else. The conversion from
//! the entity is generated field by field by [`response!`], and the compiler checks
//! that each listed type is the wire form of the entity's field.

use domain::schedule::{ParticipationStatus, SessionStatus};
use domain::{ClassId, EventId, GymId, ParticipationId, Role, SessionId, Timestamp, UserId};
use time::OffsetDateTime;

use super::times::UtcTime;

/// A domain value as a response carries it.
pub trait Wire {
    /// The JSON-facing type.
    type Out;
    /// Converts.
    fn wire(self) -> Self::Out;
}

/// Values that travel as they are.
macro_rules! as_is {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            type Out = $t;
            fn wire(self) -> $t {
                self
            }
        }
    )*};
}
as_is!(String, i32, i64, bool);

/// Ids travel as their number.
macro_rules! id_number {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            type Out = i64;
            fn wire(self) -> i64 {
                self.0
            }
        }
    )*};
}
id_number!(GymId, UserId, ClassId, SessionId, EventId, ParticipationId);

/// Names travel as the contract spells them.
macro_rules! by_name {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            type Out = &'static str;
            fn wire(self) -> &'static str {
                self.as_str()
            }
        }
    )*};
}
by_name!(Role, SessionStatus, ParticipationStatus);

impl Wire for OffsetDateTime {
    type Out = UtcTime;
    fn wire(self) -> UtcTime {
        self.into()
    }
}

impl Wire for Timestamp {
    type Out = UtcTime;
    fn wire(self) -> UtcTime {
        self.into()
    }
}

impl<T: Wire> Wire for Option<T> {
    type Out = Option<T::Out>;
    fn wire(self) -> Self::Out {
        self.map(Wire::wire)
    }
}

impl<T: Wire> Wire for Vec<T> {
    type Out = Vec<T::Out>;
    fn wire(self) -> Self::Out {
        self.into_iter().map(Wire::wire).collect()
    }
}

/// Declares a response type of the contract from an entity: the struct (with its
/// serde form and OpenAPI schema), `From<entity>`, and the entity's [`Wire`] form,
/// so responses nest (`user: UserOut` inside a member).
macro_rules! response {
    ($(#[$meta:meta])* $name:ident from $entity:ty { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(::serde::Serialize, ::utoipa::ToSchema)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl From<$entity> for $name {
            fn from(e: $entity) -> Self {
                Self { $($field: $crate::dto::wire::Wire::wire(e.$field),)* }
            }
        }

        impl $crate::dto::wire::Wire for $entity {
            type Out = $name;
            fn wire(self) -> $name {
                self.into()
            }
        }
    };
}
pub(crate) use response;
