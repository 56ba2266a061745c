//! MAIL and RCPT parameters of the SMTP service extensions.

use std::borrow::Cow;

use super::{ValueError, validated_str};
use crate::grammar;

/// `BODY=` of RFC 6152 and RFC 3030.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyType {
    /// `7BIT`.
    SevenBit,
    /// `8BITMIME` (RFC 6152).
    EightBitMime,
    /// `BINARYMIME` (RFC 3030): only with BDAT.
    BinaryMime,
}

impl BodyType {
    /// The keyword value as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        }
    }
}

/// `RET=` of RFC 3461 section 4.3: what a bounce returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `FULL`: the whole message.
    Full,
    /// `HDRS`: the headers only.
    Hdrs,
}

impl Ret {
    /// The keyword value as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// An `xtext` (RFC 3461 section 4): printable ASCII with `+` and `=` and any other
/// octet written as `+XX`. Kept encoded; [`XText::decode`] gives the octets.
/// Non-ASCII UTF-8 is also accepted, as RFC 6533 allows in `ORCPT`.
///
/// ```
/// use postel_proto::types::XText;
/// let x = XText::try_from("a+2Bb+3Dc")?;
/// assert_eq!(&*x.decode(), b"a+b=c");
/// assert_eq!(XText::encode(b"a+b=c").as_str(), "a+2Bb+3Dc");
/// # Ok::<(), postel_proto::types::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XText<'a>(Cow<'a, str>);

pub(crate) fn validate_xtext(s: &str) -> Result<(), ValueError> {
    if grammar::scan_xtext(s.as_bytes()) == s.len() {
        Ok(())
    } else {
        Err(ValueError::syntax("xtext", s))
    }
}

validated_str!(XText, validate_xtext);

impl XText<'_> {
    /// The decoded octets.
    pub fn decode(&self) -> Cow<'_, [u8]> {
        let b = self.0.as_bytes();
        if !b.contains(&b'+') {
            return Cow::Borrowed(b);
        }
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            };
            let pair = b
                .get(i + 1)
                .copied()
                .and_then(hex)
                .zip(b.get(i + 2).copied().and_then(hex));
            if let (b'+', Some((hi, lo))) = (b[i], pair) {
                out.push(hi << 4 | lo);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        Cow::Owned(out)
    }

    /// Encodes arbitrary octets.
    pub fn encode(raw: &[u8]) -> XText<'static> {
        let mut s = String::with_capacity(raw.len());
        for &b in raw {
            if grammar::is_xchar(b) {
                s.push(char::from(b));
            } else {
                let hex = |n: u8| char::from(b"0123456789ABCDEF"[usize::from(n & 15)]);
                s.push('+');
                s.push(hex(b >> 4));
                s.push(hex(b));
            }
        }
        XText(Cow::Owned(s))
    }
}

/// `NOTIFY=` of RFC 3461 section 4.1. All flags false is `NEVER`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[allow(clippy::struct_excessive_bools)] // Three independent flags of the RFC.
pub struct Notify {
    /// `SUCCESS`.
    pub success: bool,
    /// `FAILURE`.
    pub failure: bool,
    /// `DELAY`.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// True for `NEVER`.
    pub fn is_never(self) -> bool {
        self == Notify::NEVER
    }
}

/// `ORCPT=addr-type;xtext` of RFC 3461 section 4.2. Kept as the one string
/// `addr-type;xtext` and where the `;` is, so that a parsed RCPT stays small.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Orcpt<'a> {
    value: Cow<'a, str>,
    semicolon: usize,
}

impl<'a> Orcpt<'a> {
    /// Builds an ORCPT; `addr_type` is an atom such as `rfc822` or `utf-8`.
    #[allow(clippy::needless_pass_by_value)] // Joined into one string.
    pub fn new(addr_type: impl Into<Cow<'a, str>>, address: XText<'a>) -> Result<Self, ValueError> {
        let addr_type = addr_type.into();
        let b = addr_type.as_bytes();
        if b.is_empty() || !b.iter().all(|&c| grammar::is_atext(c) && c < 0x80) {
            return Err(ValueError::syntax("addr-type", &addr_type));
        }
        Ok(Orcpt {
            semicolon: addr_type.len(),
            value: Cow::Owned(format!("{addr_type};{}", address.as_str())),
        })
    }

    /// `value` is `addr-type;xtext`, checked by the parser; `semicolon` the
    /// position of the `;`.
    pub(crate) fn unvalidated(value: &'a str, semicolon: usize) -> Self {
        Orcpt {
            value: Cow::Borrowed(value),
            semicolon,
        }
    }

    /// The address type, usually `rfc822`.
    pub fn addr_type(&self) -> &str {
        self.value.get(..self.semicolon).unwrap_or_default()
    }

    /// The original recipient, xtext-encoded.
    pub fn address(&self) -> XText<'_> {
        XText::unvalidated(self.value.get(self.semicolon + 1..).unwrap_or_default())
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Orcpt<'static> {
        Orcpt {
            value: Cow::Owned(self.value.into_owned()),
            semicolon: self.semicolon,
        }
    }
}

/// `MT-PRIORITY=` of RFC 6710: -9 (lowest) to 9 (highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MtPriority(i8);

impl MtPriority {
    /// The priority value.
    pub fn get(self) -> i8 {
        self.0
    }
}

impl TryFrom<i8> for MtPriority {
    type Error = ValueError;
    fn try_from(v: i8) -> Result<Self, ValueError> {
        if (-9..=9).contains(&v) {
            Ok(MtPriority(v))
        } else {
            Err(ValueError::OutOfRange {
                rule: "MT-PRIORITY",
                value: v.into(),
                min: -9,
                max: 9,
            })
        }
    }
}

/// `AUTH=` on MAIL (RFC 4954 section 5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthParam<'a> {
    /// `AUTH=<>`: the submitter is unknown or not trusted.
    Unknown,
    /// `AUTH=xtext`: the authenticated submitter's mailbox.
    Identity(XText<'a>),
}

/// An ESMTP parameter this crate has no type for, kept raw for the application
/// to judge (RFC 5321 section 4.1.2 `esmtp-param`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Parameter<'a> {
    keyword: Cow<'a, str>,
    value: Option<Cow<'a, str>>,
}

/// Keywords with a typed field in [`MailParameters`] or [`RcptParameters`].
const KNOWN: [&str; 10] = [
    "SIZE",
    "BODY",
    "SMTPUTF8",
    "AUTH",
    "RET",
    "ENVID",
    "REQUIRETLS",
    "MT-PRIORITY",
    "NOTIFY",
    "ORCPT",
];

impl<'a> Parameter<'a> {
    /// Builds a parameter. The keyword must be an `esmtp-keyword` and not one of the
    /// keywords that have a typed field; the value an `esmtp-value`.
    pub fn new(
        keyword: impl Into<Cow<'a, str>>,
        value: Option<Cow<'a, str>>,
    ) -> Result<Self, ValueError> {
        let keyword = keyword.into();
        if keyword.is_empty()
            || grammar::scan_keyword(keyword.as_bytes()) != keyword.len()
            || KNOWN.iter().any(|k| k.eq_ignore_ascii_case(&keyword))
        {
            return Err(ValueError::syntax("esmtp-keyword", &keyword));
        }
        if let Some(v) = &value
            && (v.is_empty() || !v.bytes().all(grammar::is_esmtp_value))
        {
            return Err(ValueError::syntax("esmtp-value", v));
        }
        Ok(Parameter { keyword, value })
    }

    pub(crate) fn unvalidated(keyword: &'a str, value: Option<&'a str>) -> Self {
        Parameter {
            keyword: Cow::Borrowed(keyword),
            value: value.map(Cow::Borrowed),
        }
    }

    /// The keyword as sent.
    pub fn keyword(&self) -> &str {
        &self.keyword
    }

    /// The value after `=`, if any.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Parameter<'static> {
        Parameter {
            keyword: Cow::Owned(self.keyword.into_owned()),
            value: self.value.map(|v| Cow::Owned(v.into_owned())),
        }
    }
}

/// ESMTP parameters without a typed field, in order of appearance. Held
/// behind one pointer, allocated on the first: nearly every command has
/// none, and a parsed [`Command`](crate::types::Command) stays small enough
/// to move without a `memcpy` call. Reads as a slice.
///
/// ```
/// use postel_proto::types::{OtherParameters, Parameter};
/// let mut other = OtherParameters::default();
/// assert!(other.is_empty());
/// other.push(Parameter::new("X-TAG", Some("1".into()))?);
/// assert_eq!(other[0].keyword(), "X-TAG");
/// # Ok::<(), postel_proto::types::ValueError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct OtherParameters<'a>(Option<Box<[Parameter<'a>]>>);

impl<'a> OtherParameters<'a> {
    /// Appends a parameter.
    pub fn push(&mut self, parameter: Parameter<'a>) {
        let mut v = self.0.take().map(Vec::from).unwrap_or_default();
        v.push(parameter);
        self.0 = Some(v.into_boxed_slice());
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> OtherParameters<'static> {
        OtherParameters(self.0.map(|v| {
            Vec::from(v)
                .into_iter()
                .map(Parameter::into_owned)
                .collect()
        }))
    }
}

impl<'a> std::ops::Deref for OtherParameters<'a> {
    type Target = [Parameter<'a>];
    fn deref(&self) -> &[Parameter<'a>] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl<'a> From<Vec<Parameter<'a>>> for OtherParameters<'a> {
    fn from(v: Vec<Parameter<'a>>) -> Self {
        OtherParameters((!v.is_empty()).then(|| v.into_boxed_slice()))
    }
}

impl<'a> FromIterator<Parameter<'a>> for OtherParameters<'a> {
    fn from_iter<I: IntoIterator<Item = Parameter<'a>>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<_>>().into()
    }
}

impl<'a, 'b> IntoIterator for &'b OtherParameters<'a> {
    type Item = &'b Parameter<'a>;
    type IntoIter = std::slice::Iter<'b, Parameter<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for OtherParameters<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for OtherParameters<'_> {}

impl std::hash::Hash for OtherParameters<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

/// Parameters of `MAIL FROM`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MailParameters<'a> {
    /// `SIZE=` declared message size in octets (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152, RFC 3030).
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `AUTH=` (RFC 4954). The parser refuses a mailbox that decodes to a
    /// control character.
    pub auth: Option<AuthParam<'a>>,
    /// `RET=` (RFC 3461).
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461), at most 100 characters that decode to printable
    /// US-ASCII (section 4.4); the parser refuses anything else with 501.
    pub envid: Option<XText<'a>>,
    /// `REQUIRETLS` (RFC 8689).
    pub requiretls: bool,
    /// `MT-PRIORITY=` (RFC 6710).
    pub mt_priority: Option<MtPriority>,
    /// Any other parameter, in order of appearance.
    pub other: OtherParameters<'a>,
}

impl MailParameters<'_> {
    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> MailParameters<'static> {
        MailParameters {
            size: self.size,
            body: self.body,
            smtputf8: self.smtputf8,
            auth: self.auth.map(|a| match a {
                AuthParam::Unknown => AuthParam::Unknown,
                AuthParam::Identity(x) => AuthParam::Identity(x.into_owned()),
            }),
            ret: self.ret,
            envid: self.envid.map(XText::into_owned),
            requiretls: self.requiretls,
            mt_priority: self.mt_priority,
            other: self.other.into_owned(),
        }
    }
}

/// Parameters of `RCPT TO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RcptParameters<'a> {
    /// `NOTIFY=` (RFC 3461).
    pub notify: Option<Notify>,
    /// `ORCPT=` (RFC 3461), at most 500 characters; the parser refuses an
    /// address that decodes to a control character.
    pub orcpt: Option<Orcpt<'a>>,
    /// Any other parameter, in order of appearance.
    pub other: OtherParameters<'a>,
}

impl RcptParameters<'_> {
    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> RcptParameters<'static> {
        RcptParameters {
            notify: self.notify,
            orcpt: self.orcpt.map(Orcpt::into_owned),
            other: self.other.into_owned(),
        }
    }
}
