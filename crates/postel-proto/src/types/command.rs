//! SMTP commands (RFC 5321 section 4.1.1 and the extensions).

use std::borrow::Cow;

use super::{
    AddressLiteral, Domain, ForwardPath, MailParameters, RcptParameters, ReversePath, Secret,
    ValueError, validated_str,
};
use crate::grammar;

/// A command a client sends. Built by [`crate::codec::parse_command`] or by hand,
/// written by [`Command::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `HELO domain`.
    Helo(HeloName<'a>),
    /// `EHLO domain / address-literal`.
    Ehlo(HeloName<'a>),
    /// `LHLO domain / address-literal`: LMTP's EHLO (RFC 2033 section 4.1).
    Lhlo(HeloName<'a>),
    /// `MAIL FROM:<reverse-path> [parameters]`.
    Mail {
        /// The sender, or `<>`.
        from: ReversePath<'a>,
        /// ESMTP parameters.
        params: MailParameters<'a>,
    },
    /// `RCPT TO:<forward-path> [parameters]`.
    Rcpt {
        /// The recipient.
        to: ForwardPath<'a>,
        /// ESMTP parameters.
        params: RcptParameters<'a>,
    },
    /// `DATA`.
    Data,
    /// `BDAT chunk-size [LAST]` (RFC 3030).
    Bdat {
        /// Octets of the chunk that follows the command line.
        size: u64,
        /// `LAST`: this chunk ends the message.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop(Option<Text<'a>>),
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy(Text<'a>),
    /// `EXPN string`.
    Expn(Text<'a>),
    /// `HELP [string]`.
    Help(Option<Text<'a>>),
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism.
        mechanism: Mechanism<'a>,
        /// The initial response, if the client sent one.
        initial_response: Option<InitialResponse<'a>>,
    },
}

impl Command<'_> {
    /// The command verb in upper case, for logs and replies.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo(_) => "HELO",
            Command::Ehlo(_) => "EHLO",
            Command::Lhlo(_) => "LHLO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop(_) => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }

    /// Detaches the command from the buffer it was parsed from.
    pub fn into_owned(self) -> Command<'static> {
        match self {
            Command::Helo(h) => Command::Helo(h.into_owned()),
            Command::Ehlo(h) => Command::Ehlo(h.into_owned()),
            Command::Lhlo(h) => Command::Lhlo(h.into_owned()),
            Command::Mail { from, params } => Command::Mail {
                from: from.into_owned(),
                params: params.into_owned(),
            },
            Command::Rcpt { to, params } => Command::Rcpt {
                to: to.into_owned(),
                params: params.into_owned(),
            },
            Command::Data => Command::Data,
            Command::Bdat { size, last } => Command::Bdat { size, last },
            Command::Rset => Command::Rset,
            Command::Noop(t) => Command::Noop(t.map(Text::into_owned)),
            Command::Quit => Command::Quit,
            Command::Vrfy(t) => Command::Vrfy(t.into_owned()),
            Command::Expn(t) => Command::Expn(t.into_owned()),
            Command::Help(t) => Command::Help(t.map(Text::into_owned)),
            Command::StartTls => Command::StartTls,
            Command::Auth {
                mechanism,
                initial_response,
            } => Command::Auth {
                mechanism: mechanism.into_owned(),
                initial_response: initial_response.map(InitialResponse::into_owned),
            },
        }
    }
}

/// The argument of HELO and EHLO.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeloName<'a> {
    /// A domain, as RFC 5321 requires.
    Domain(Domain<'a>),
    /// An address literal, for clients without a name.
    Literal(AddressLiteral<'a>),
    /// Anything else, accepted only with
    /// [`ParserOptions::allow_nonstandard_helo`](crate::ParserOptions::allow_nonstandard_helo).
    Nonstandard(NonstandardHelo<'a>),
}

impl HeloName<'_> {
    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> HeloName<'static> {
        match self {
            HeloName::Domain(d) => HeloName::Domain(d.into_owned()),
            HeloName::Literal(l) => HeloName::Literal(l.into_owned()),
            HeloName::Nonstandard(n) => HeloName::Nonstandard(n.into_owned()),
        }
    }
}

impl std::fmt::Display for HeloName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeloName::Domain(d) => d.fmt(f),
            HeloName::Literal(l) => l.fmt(f),
            HeloName::Nonstandard(n) => n.fmt(f),
        }
    }
}

/// A HELO name that is neither a domain nor an address literal, such as
/// `my_pc`: one token of printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NonstandardHelo<'a>(Cow<'a, str>);

pub(crate) fn validate_nonstandard_helo(s: &str) -> Result<(), ValueError> {
    let b = s.as_bytes();
    let printable = !b.is_empty() && b.iter().all(|&c| c > 32 && c != 127);
    let standard = super::domain::validate_domain(s).is_ok() || AddressLiteral::try_from(s).is_ok();
    if printable && !standard {
        Ok(())
    } else {
        Err(ValueError::syntax("nonstandard HELO name", s))
    }
}

validated_str!(NonstandardHelo, validate_nonstandard_helo);

/// The `String` argument of VRFY, EXPN, HELP and NOOP: printable text, UTF-8
/// allowed, never empty, never a line break.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text<'a>(Cow<'a, str>);

pub(crate) fn validate_text(s: &str) -> Result<(), ValueError> {
    if !s.is_empty() && s.bytes().all(grammar::is_text) {
        Ok(())
    } else {
        Err(ValueError::syntax("String", s))
    }
}

validated_str!(Text, validate_text);

/// A SASL mechanism name: `1*20(UPPER-ALPHA / DIGIT / "-" / "_")` (RFC 4422
/// section 3.1). Lower case is accepted and kept as sent; compare with
/// [`Mechanism::is`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mechanism<'a>(Cow<'a, str>);

pub(crate) fn validate_mechanism(s: &str) -> Result<(), ValueError> {
    let ok = (1..=20).contains(&s.len())
        && s.bytes()
            .all(|b| grammar::is_alnum(b) || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValueError::syntax("sasl-mech", s))
    }
}

validated_str!(Mechanism, validate_mechanism);

impl Mechanism<'_> {
    /// `PLAIN` (RFC 4616).
    pub const PLAIN: Mechanism<'static> = Mechanism(Cow::Borrowed("PLAIN"));
    /// `LOGIN` (draft-murchison-sasl-login).
    pub const LOGIN: Mechanism<'static> = Mechanism(Cow::Borrowed("LOGIN"));

    /// Case-insensitive comparison with a mechanism name.
    pub fn is(&self, name: &str) -> bool {
        self.0.eq_ignore_ascii_case(name)
    }
}

pub(crate) fn validate_base64(s: &str) -> Result<(), ValueError> {
    let b = s.as_bytes();
    let body = b.len() - b.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    let ok = b[..body]
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/');
    if ok && !b.is_empty() {
        Ok(())
    } else {
        Err(ValueError::syntax("base64", s))
    }
}

/// The initial response of `AUTH` (RFC 4954 section 4).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum InitialResponse<'a> {
    /// `=`: an empty initial response.
    Empty,
    /// Base64 text, not decoded.
    Base64(Secret<Cow<'a, str>>),
}

impl<'a> InitialResponse<'a> {
    /// Wraps base64 text after checking its alphabet.
    pub fn base64(text: impl Into<Cow<'a, str>>) -> Result<Self, ValueError> {
        let text = text.into();
        validate_base64(&text)?;
        Ok(InitialResponse::Base64(Secret::new(text)))
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> InitialResponse<'static> {
        match self {
            InitialResponse::Empty => InitialResponse::Empty,
            InitialResponse::Base64(s) => {
                InitialResponse::Base64(Secret::new(Cow::Owned(s.into_inner().into_owned())))
            }
        }
    }
}

impl std::fmt::Debug for InitialResponse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitialResponse::Empty => f.write_str("Empty"),
            InitialResponse::Base64(s) => write!(f, "Base64({s:?})"),
        }
    }
}

/// A client line during an AUTH exchange (RFC 4954 section 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SaslResponse<'a> {
    /// `*`: the client cancels the exchange; the server answers 501.
    Cancel,
    /// Base64 text, possibly empty, not decoded.
    Data(Secret<Cow<'a, str>>),
}

impl SaslResponse<'_> {
    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> SaslResponse<'static> {
        match self {
            SaslResponse::Cancel => SaslResponse::Cancel,
            SaslResponse::Data(s) => {
                SaslResponse::Data(Secret::new(Cow::Owned(s.into_inner().into_owned())))
            }
        }
    }
}
