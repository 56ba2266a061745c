//! Mailboxes and the reverse and forward paths of MAIL and RCPT.

use std::borrow::Cow;

use super::{Host, ValueError, validated_str};
use crate::grammar;
use crate::limits::Limits;

/// `Local-part = Dot-string / Quoted-string` (RFC 5321 section 4.1.2), kept in its
/// wire form (a quoted string keeps its quotes and escapes), UTF-8 allowed
/// (RFC 6531). At most 64 octets (section 4.5.3.1.1).
///
/// ```
/// use postel_proto::types::LocalPart;
/// let lp = LocalPart::try_from(r#""john \"jd\" doe""#)?;
/// assert!(lp.is_quoted());
/// assert_eq!(lp.unquoted(), r#"john "jd" doe"#);
/// # Ok::<(), postel_proto::types::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalPart<'a>(Cow<'a, str>);

/// The longest local part the type holds. RFC 5321 section 4.5.3.1.1 makes
/// 64 the minimum a server must take and many take more; one longer than
/// this could not fit any path a server would accept.
pub(crate) const MAX_LOCAL_PART: usize = 255;

pub(crate) fn validate_local_part(s: &str) -> Result<(), ValueError> {
    let max = MAX_LOCAL_PART;
    if s.len() > max {
        return Err(ValueError::TooLong {
            rule: "Local-part",
            len: s.len(),
            max,
        });
    }
    let b = s.as_bytes();
    let n = if b.first() == Some(&b'"') {
        grammar::scan_quoted_string(b)
    } else {
        grammar::scan_dot_string(b)
    };
    match n {
        Some(n) if n == s.len() => Ok(()),
        _ => Err(ValueError::syntax("Local-part", s)),
    }
}

validated_str!(LocalPart, validate_local_part);

impl LocalPart<'_> {
    /// True for the `Quoted-string` form.
    pub fn is_quoted(&self) -> bool {
        self.0.starts_with('"')
    }

    /// The local part with quotes and `quoted-pairSMTP` escapes removed.
    pub fn unquoted(&self) -> Cow<'_, str> {
        let Some(inner) = self.0.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
            return Cow::Borrowed(&self.0);
        };
        if !inner.contains('\\') {
            return Cow::Borrowed(inner);
        }
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                out.extend(chars.next());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )`.
///
/// ```
/// use postel_proto::types::Mailbox;
/// let mb = Mailbox::try_from("jane@[192.0.2.7]")?;
/// assert_eq!(mb.local_part().as_str(), "jane");
/// assert_eq!(mb.to_string(), "jane@[192.0.2.7]");
/// # Ok::<(), postel_proto::types::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox<'a> {
    local_part: LocalPart<'a>,
    host: Host<'a>,
}

impl<'a> Mailbox<'a> {
    /// Joins a local part and a host.
    pub fn new(local_part: LocalPart<'a>, host: Host<'a>) -> Self {
        Mailbox { local_part, host }
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &LocalPart<'a> {
        &self.local_part
    }

    /// The part after the `@`.
    pub fn host(&self) -> &Host<'a> {
        &self.host
    }

    /// True when neither part contains UTF-8, so no SMTPUTF8 is needed.
    pub fn is_ascii(&self) -> bool {
        self.local_part.as_str().is_ascii() && self.host.is_ascii()
    }

    /// Octets on the wire, without angle brackets.
    pub fn len(&self) -> usize {
        self.local_part.as_str().len() + 1 + self.host_len()
    }

    /// Always false: a mailbox has at least `x@y`. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn host_len(&self) -> usize {
        match &self.host {
            Host::Domain(d) => d.as_str().len(),
            Host::Literal(l) => l.to_string().len(),
        }
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Mailbox<'static> {
        Mailbox {
            local_part: self.local_part.into_owned(),
            host: self.host.into_owned(),
        }
    }
}

impl<'a> TryFrom<&'a str> for Mailbox<'a> {
    type Error = ValueError;
    fn try_from(value: &'a str) -> Result<Self, ValueError> {
        let b = value.as_bytes();
        let lp_len = if b.first() == Some(&b'"') {
            grammar::scan_quoted_string(b)
        } else {
            grammar::scan_dot_string(b)
        }
        .ok_or_else(|| ValueError::syntax("Mailbox", value))?;
        if b.get(lp_len) != Some(&b'@') {
            return Err(ValueError::syntax("Mailbox", value));
        }
        let local_part = LocalPart::try_from(&value[..lp_len])?;
        let host = Host::try_from(&value[lp_len + 1..])?;
        let mailbox = Mailbox { local_part, host };
        let max = Limits::DEFAULT.path - 2;
        if mailbox.len() > max {
            return Err(ValueError::TooLong {
                rule: "Path",
                len: mailbox.len() + 2,
                max: max + 2,
            });
        }
        Ok(mailbox)
    }
}

impl std::fmt::Display for Mailbox<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.local_part, self.host)
    }
}

/// `Reverse-path = Path / "<>"`: the sender of MAIL FROM, or the null sender of
/// bounces (RFC 5321 section 4.5.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath<'a> {
    /// `<>`.
    Null,
    /// `<mailbox>`.
    Mailbox(Mailbox<'a>),
}

impl ReversePath<'_> {
    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> ReversePath<'static> {
        match self {
            ReversePath::Null => ReversePath::Null,
            ReversePath::Mailbox(m) => ReversePath::Mailbox(m.into_owned()),
        }
    }

    /// The mailbox, unless this is the null path.
    pub fn mailbox(&self) -> Option<&Mailbox<'_>> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }
}

impl std::fmt::Display for ReversePath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

/// `Forward-path`: a mailbox, or `<Postmaster>` with no domain, which every
/// server must accept (RFC 5321 section 4.5.1). `RCPT TO:<>` is not a forward path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardPath<'a> {
    /// `<Postmaster>`, case-insensitive.
    Postmaster,
    /// `<mailbox>`.
    Mailbox(Mailbox<'a>),
}

impl ForwardPath<'_> {
    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> ForwardPath<'static> {
        match self {
            ForwardPath::Postmaster => ForwardPath::Postmaster,
            ForwardPath::Mailbox(m) => ForwardPath::Mailbox(m.into_owned()),
        }
    }

    /// The mailbox, unless this is the bare `<Postmaster>`.
    pub fn mailbox(&self) -> Option<&Mailbox<'_>> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(m) => Some(m),
        }
    }
}

impl std::fmt::Display for ForwardPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("<Postmaster>"),
            ForwardPath::Mailbox(m) => write!(f, "<{m}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_part_forms() {
        assert!(LocalPart::try_from("a.b-c+tag").is_ok());
        assert!(LocalPart::try_from("a..b").is_err());
        assert!(LocalPart::try_from(".a").is_err());
        assert!(LocalPart::try_from("\"a..b\"").is_ok());
        assert!(LocalPart::try_from("用户").is_ok());
        // 64 is the least a server must take (the parser's default limit),
        // not the most the type holds.
        assert!(LocalPart::try_from("a".repeat(65).as_str()).is_ok());
        assert!(matches!(
            LocalPart::try_from("a".repeat(256).as_str()),
            Err(ValueError::TooLong { max: 255, .. })
        ));
    }

    #[test]
    fn mailbox_with_quoted_at() {
        let m = Mailbox::try_from("\"a@b\"@example.com").unwrap();
        assert_eq!(m.local_part().unquoted(), "a@b");
        assert_eq!(m.to_string(), "\"a@b\"@example.com");
        assert!(Mailbox::try_from("nodomain").is_err());
        assert!(Mailbox::try_from("a@").is_err());
    }
}
