//! Domains, address literals, and the `Domain / address-literal` choice.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{ValueError, validated_str};
use crate::grammar;
use crate::limits::Limits;

/// A domain name: `sub-domain *("." sub-domain)` (RFC 5321 section 4.1.2), with
/// U-labels allowed (RFC 6531). At most 255 octets (section 4.5.3.1.2), labels at
/// most 63. Compared exactly by `==`; use [`Domain::eq_ignore_ascii_case`] for
/// the comparison DNS makes.
///
/// ```
/// use postel_proto::types::Domain;
/// let d = Domain::try_from("mail.example.org")?;
/// assert!(d.eq_ignore_ascii_case(&Domain::try_from("MAIL.example.ORG")?));
/// assert!(Domain::try_from("-bad.example").is_err());
/// # Ok::<(), postel_proto::types::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domain<'a>(Cow<'a, str>);

pub(crate) fn validate_domain(s: &str) -> Result<(), ValueError> {
    let max = Limits::DEFAULT.domain;
    if s.len() > max {
        return Err(ValueError::TooLong {
            rule: "Domain",
            len: s.len(),
            max,
        });
    }
    match grammar::scan_domain(s.as_bytes()) {
        Some(n) if n == s.len() => Ok(()),
        _ => Err(ValueError::syntax("Domain", s)),
    }
}

validated_str!(Domain, validate_domain);

impl Domain<'_> {
    /// Compares as DNS does: ASCII letters case-insensitively.
    pub fn eq_ignore_ascii_case(&self, other: &Domain<'_>) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }

    /// True when every label is ASCII (no U-labels).
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
}

/// An address literal (RFC 5321 section 4.1.3): `[192.0.2.1]`, `[IPv6:2001:db8::1]`,
/// or a general literal `[tag:content]`.
///
/// ```
/// use postel_proto::types::AddressLiteral;
/// let lit = AddressLiteral::try_from("[IPv6:2001:db8::1]")?;
/// assert_eq!(lit.to_string(), "[IPv6:2001:db8::1]");
/// # Ok::<(), postel_proto::types::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddressLiteral<'a> {
    /// `IPv4-address-literal`.
    Ipv4(Ipv4Addr),
    /// `IPv6-address-literal`.
    Ipv6(Ipv6Addr),
    /// `General-address-literal = Standardized-tag ":" 1*dcontent`.
    General(GeneralLiteral<'a>),
}

/// A general address literal, `tag:content` without the brackets. Kept as one
/// string so that a parsed command stays small.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GeneralLiteral<'a>(Cow<'a, str>);

impl GeneralLiteral<'_> {
    /// `Standardized-tag`, an `Ldh-str` other than `IPv6`.
    pub fn tag(&self) -> &str {
        self.0.split_once(':').map_or("", |(t, _)| t)
    }

    /// `1*dcontent`.
    pub fn content(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, c)| c)
    }
}

impl<'a> AddressLiteral<'a> {
    /// Parses the inside of the brackets. Shared with the parser.
    pub(crate) fn from_inner(inner: &'a str) -> Option<Self> {
        if let Some(colon) = inner.find(':') {
            let (tag, content) = (&inner[..colon], &inner[colon + 1..]);
            if tag.eq_ignore_ascii_case("IPv6") {
                return content.parse().ok().map(AddressLiteral::Ipv6);
            }
            let tag_ok = !tag.is_empty()
                && tag.bytes().all(|b| grammar::is_alnum(b) || b == b'-')
                && !tag.ends_with('-');
            let content_ok = !content.is_empty() && content.bytes().all(grammar::is_dcontent);
            (tag_ok && content_ok).then_some(AddressLiteral::General(GeneralLiteral(
                Cow::Borrowed(inner),
            )))
        } else {
            // std's parser takes exactly the dotted quad `Snum 3("."  Snum)`,
            // and refuses leading zeros, which RFC 5321 leaves ambiguous.
            inner.parse().ok().map(AddressLiteral::Ipv4)
        }
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> AddressLiteral<'static> {
        match self {
            AddressLiteral::Ipv4(a) => AddressLiteral::Ipv4(a),
            AddressLiteral::Ipv6(a) => AddressLiteral::Ipv6(a),
            AddressLiteral::General(g) => {
                AddressLiteral::General(GeneralLiteral(Cow::Owned(g.0.into_owned())))
            }
        }
    }

    /// The IP address, when the literal is one.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            AddressLiteral::Ipv4(a) => Some((*a).into()),
            AddressLiteral::Ipv6(a) => Some((*a).into()),
            AddressLiteral::General(_) => None,
        }
    }
}

/// The longest address literal, brackets included. RFC 5321 sets no limit;
/// the longest standard one (`[IPv6:` and a full IPv4-mapped address `]`) is
/// 51 octets, and a literal must fit a 256-octet path.
pub(crate) const MAX_ADDRESS_LITERAL: usize = 256;

/// `address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
/// General-address-literal ) "]"` (RFC 5321 section 4.1.3) at the start of
/// `text`: the literal and its length. The one definition, used by the parser
/// and by [`AddressLiteral::try_from`], so that the two never disagree.
pub(crate) fn scan_address_literal(text: &str) -> Option<(AddressLiteral<'_>, usize)> {
    if !text.starts_with('[') {
        return None;
    }
    let end = text
        .bytes()
        .take(MAX_ADDRESS_LITERAL)
        .position(|b| b == b']')?;
    AddressLiteral::from_inner(text.get(1..end)?).map(|l| (l, end + 1))
}

impl<'a> TryFrom<&'a str> for AddressLiteral<'a> {
    type Error = ValueError;
    fn try_from(value: &'a str) -> Result<Self, ValueError> {
        match scan_address_literal(value) {
            Some((literal, n)) if n == value.len() => Ok(literal),
            _ => Err(ValueError::syntax("address-literal", value)),
        }
    }
}

impl From<std::net::IpAddr> for AddressLiteral<'static> {
    fn from(ip: std::net::IpAddr) -> Self {
        match ip {
            std::net::IpAddr::V4(a) => AddressLiteral::Ipv4(a),
            std::net::IpAddr::V6(a) => AddressLiteral::Ipv6(a),
        }
    }
}

impl std::fmt::Display for AddressLiteral<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressLiteral::Ipv4(a) => write!(f, "[{a}]"),
            AddressLiteral::Ipv6(a) => write!(f, "[IPv6:{a}]"),
            AddressLiteral::General(g) => write!(f, "[{}]", g.0),
        }
    }
}

/// `Domain / address-literal`: the right side of a mailbox and the argument of EHLO.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A domain name.
    Domain(Domain<'a>),
    /// An address literal. Boxed: literals are rare in mailboxes, and a
    /// host the size of a domain keeps a parsed command small.
    Literal(Box<AddressLiteral<'a>>),
}

impl Host<'_> {
    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Host<'static> {
        match self {
            Host::Domain(d) => Host::Domain(d.into_owned()),
            Host::Literal(l) => Host::Literal(Box::new(l.into_owned())),
        }
    }

    /// True when the host contains no UTF-8.
    pub fn is_ascii(&self) -> bool {
        match self {
            Host::Domain(d) => d.is_ascii(),
            Host::Literal(_) => true,
        }
    }
}

impl<'a> TryFrom<&'a str> for Host<'a> {
    type Error = ValueError;
    fn try_from(value: &'a str) -> Result<Self, ValueError> {
        if value.starts_with('[') {
            AddressLiteral::try_from(value).map(|l| Host::Literal(Box::new(l)))
        } else {
            Domain::try_from(value).map(Host::Domain)
        }
    }
}

impl std::fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Domain(d) => d.fmt(f),
            Host::Literal(l) => l.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_from_rfc_5321_section_4_1_3() {
        assert_eq!(
            AddressLiteral::try_from("[123.255.37.2]").unwrap(),
            AddressLiteral::Ipv4(Ipv4Addr::new(123, 255, 37, 2))
        );
        assert!(matches!(
            AddressLiteral::try_from("[IPv6:::1]").unwrap(),
            AddressLiteral::Ipv6(_)
        ));
        assert!(matches!(
            AddressLiteral::try_from("[x-foo:bar]").unwrap(),
            AddressLiteral::General(_)
        ));
        assert!(AddressLiteral::try_from("[IPv6:1.2.3.4]").is_err());
        assert!(AddressLiteral::try_from("[256.1.1.1]").is_err());
        assert!(AddressLiteral::try_from("[1.2.3]").is_err());
        assert!(AddressLiteral::try_from("1.2.3.4").is_err());
    }

    #[test]
    fn domain_limits() {
        let long = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        assert!(matches!(
            Domain::try_from(long.as_str()),
            Err(ValueError::TooLong { max: 255, .. })
        ));
        assert!(Domain::try_from("bücher.example").is_ok());
        assert!(Domain::try_from("a..b").is_err());
        assert!(Domain::try_from("").is_err());
    }
}
