//! Validated SMTP values. Every protocol string is a newtype that can only be
//! built through a validating constructor, borrows from the input where it can
//! (`Cow<'a, str>`), and has an explicit `into_owned` for storage.

mod capability;
mod command;
pub(crate) mod domain;
pub(crate) mod mailbox;
mod param;
mod reply;
mod secret;

pub use capability::{Capabilities, Capability};
pub use command::{
    Command, HeloName, InitialResponse, Mechanism, NonstandardHelo, SaslResponse, Text,
};
pub use domain::{AddressLiteral, Domain, GeneralLiteral, Host};
pub use mailbox::{ForwardPath, LocalPart, Mailbox, ReversePath};
pub use param::{
    AuthParam, BodyType, MailParameters, MtPriority, Notify, Orcpt, OtherParameters, Parameter,
    RcptParameters, Ret, XText,
};
pub use reply::{EnhancedStatus, Reply, ReplyCode};
pub(crate) mod reply_lines {
    pub(crate) use super::reply::Lines;
}
pub use secret::Secret;

/// Why a value could not be built. Returned by the validating constructors
/// (`TryFrom`) of the types in this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value does not match its ABNF rule.
    #[error("not a valid {rule}: {value:?}")]
    Syntax {
        /// The ABNF rule, as named in the RFC.
        rule: &'static str,
        /// The rejected value, truncated to 64 characters.
        value: String,
    },
    /// The value is longer than RFC 5321 section 4.5.3.1 allows.
    #[error("{rule} is {len} octets, longer than the limit of {max}")]
    TooLong {
        /// The ABNF rule.
        rule: &'static str,
        /// Length of the value in octets.
        len: usize,
        /// The limit in octets.
        max: usize,
    },
    /// A number is outside its allowed range.
    #[error("{rule} {value} is outside {min}..={max}")]
    OutOfRange {
        /// The rule or parameter.
        rule: &'static str,
        /// The rejected value.
        value: i64,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
}

impl ValueError {
    pub(crate) fn syntax(rule: &'static str, value: &str) -> Self {
        ValueError::Syntax {
            rule,
            value: value.chars().take(64).collect(),
        }
    }
}

/// Implements the shared surface of a validated string newtype: `as_str`,
/// `into_owned`, `Display`, `AsRef<str>` and `TryFrom` for `&str` and `String`.
macro_rules! validated_str {
    ($ty:ident, $validate:path) => {
        impl<'a> $ty<'a> {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Detaches the value from the buffer it was parsed from.
            pub fn into_owned(self) -> $ty<'static> {
                $ty(std::borrow::Cow::Owned(self.0.into_owned()))
            }

            /// Wraps a value the parser has already validated.
            pub(crate) fn unvalidated(value: impl Into<std::borrow::Cow<'a, str>>) -> Self {
                let value = value.into();
                debug_assert!($validate(&value).is_ok(), "{} {:?}", stringify!($ty), value);
                $ty(value)
            }
        }

        impl std::fmt::Display for $ty<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty<'_> {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'a> TryFrom<&'a str> for $ty<'a> {
            type Error = $crate::types::ValueError;
            fn try_from(value: &'a str) -> Result<Self, Self::Error> {
                $validate(value)?;
                Ok($ty(std::borrow::Cow::Borrowed(value)))
            }
        }

        impl TryFrom<String> for $ty<'static> {
            type Error = $crate::types::ValueError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $validate(&value)?;
                Ok($ty(std::borrow::Cow::Owned(value)))
            }
        }
    };
}
pub(crate) use validated_str;

pub(crate) use command::validate_base64 as command_validate_base64;
pub(crate) use command::validate_mechanism as command_validate_mechanism;
