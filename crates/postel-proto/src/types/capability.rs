//! The service extensions a server lists in its EHLO reply.

use std::borrow::Cow;

use super::{Mechanism, ValueError};
use crate::grammar;

/// An EHLO line this crate has no field for, kept as sent: keyword and parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Capability<'a>(Cow<'a, str>);

impl<'a> Capability<'a> {
    /// Builds a capability line such as `X-EXTENSION arg`. The line must be non-empty
    /// printable text not beginning with a space, and its keyword must not be one
    /// that has a field in [`Capabilities`].
    pub fn new(line: impl Into<Cow<'a, str>>) -> Result<Self, ValueError> {
        let line = line.into();
        let keyword = line.split(' ').next().unwrap_or_default();
        let known = crate::codec::KNOWN_KEYWORDS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(keyword));
        if known || line.is_empty() || line.starts_with(' ') || !line.bytes().all(grammar::is_text)
        {
            return Err(ValueError::syntax("ehlo-line", &line));
        }
        Ok(Capability(line))
    }

    pub(crate) fn unvalidated(line: &'a str) -> Self {
        Capability(Cow::Borrowed(line))
    }

    /// The keyword: the line up to the first space.
    pub fn keyword(&self) -> &str {
        self.0.split(' ').next().unwrap_or_default()
    }

    /// The whole line.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Capability<'static> {
        Capability(Cow::Owned(self.0.into_owned()))
    }
}

/// A typed EHLO reply (RFC 5321 section 4.1.1.1): the server's name and greeting,
/// then one field per known extension. Parsed by
/// [`crate::codec::parse_capabilities`], written with [`Capabilities::to_reply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // One flag per extension keyword.
pub struct Capabilities<'a> {
    /// The first line: the server's domain and optional greeting.
    pub greeting: Cow<'a, str>,
    /// `PIPELINING` (RFC 2920).
    pub pipelining: bool,
    /// `SIZE [limit]` (RFC 1870): `Some(None)` means SIZE without a fixed limit.
    pub size: Option<Option<u64>>,
    /// `8BITMIME` (RFC 6152).
    pub eight_bit_mime: bool,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `CHUNKING` (RFC 3030).
    pub chunking: bool,
    /// `BINARYMIME` (RFC 3030).
    pub binary_mime: bool,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub enhanced_status_codes: bool,
    /// `DSN` (RFC 3461).
    pub dsn: bool,
    /// `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
    /// `HELP`.
    pub help: bool,
    /// `AUTH mech...` (RFC 4954). `None` when not advertised.
    pub auth: Option<Vec<Mechanism<'a>>>,
    /// Any other line, in order.
    pub other: Vec<Capability<'a>>,
}

impl Capabilities<'_> {
    /// True when `AUTH` lists the mechanism.
    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m.is(mechanism)))
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Capabilities<'static> {
        Capabilities {
            greeting: Cow::Owned(self.greeting.into_owned()),
            pipelining: self.pipelining,
            size: self.size,
            eight_bit_mime: self.eight_bit_mime,
            smtputf8: self.smtputf8,
            chunking: self.chunking,
            binary_mime: self.binary_mime,
            starttls: self.starttls,
            enhanced_status_codes: self.enhanced_status_codes,
            dsn: self.dsn,
            requiretls: self.requiretls,
            help: self.help,
            auth: self
                .auth
                .map(|v| v.into_iter().map(Mechanism::into_owned).collect()),
            other: self.other.into_iter().map(Capability::into_owned).collect(),
        }
    }
}
