//! What a parser returns: complete, incomplete, or invalid with a reason that
//! maps to the reply a server should send.

use crate::types::Reply;

/// The two-way result of a streaming parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole item was read; `consumed` octets of the input belong to it.
    Complete {
        /// The parsed item.
        value: T,
        /// Octets of input used, including the line ending.
        consumed: usize,
    },
    /// The input ends before the item does: read more and call again with the
    /// old and new octets together.
    Incomplete,
}

impl<T> Status<T> {
    /// The value, if complete.
    pub fn complete(self) -> Option<(T, usize)> {
        match self {
            Status::Complete { value, consumed } => Some((value, consumed)),
            Status::Incomplete => None,
        }
    }
}

/// Invalid input, with how much of it to drop before reading on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Invalid<E> {
    /// What was wrong.
    pub error: E,
    /// Octets of input the bad item occupied; drop them.
    pub consumed: usize,
    /// False when the end of the bad line has not arrived yet (a line longer than
    /// its limit): keep dropping input up to and including the next LF.
    pub line_finished: bool,
}

impl<E> Invalid<E> {
    pub(crate) fn line(error: E, consumed: usize) -> Self {
        Invalid {
            error,
            consumed,
            line_finished: true,
        }
    }

    /// Converts the error kind.
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> Invalid<F> {
        Invalid {
            error: f(self.error),
            consumed: self.consumed,
            line_finished: self.line_finished,
        }
    }
}

/// A line that cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// No LF within the limit (RFC 5321 section 4.5.3.1).
    #[error("line longer than {max} octets")]
    TooLong {
        /// The limit, including CRLF.
        max: usize,
    },
    /// An LF without a CR before it: refused because it enables SMTP smuggling.
    #[error("bare LF in line")]
    BareLf,
    /// A CR without an LF after it.
    #[error("bare CR in line")]
    BareCr,
}

/// Why a command line was refused. [`CommandError::reply`] gives the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The line could not be framed.
    #[error(transparent)]
    Line(#[from] LineError),
    /// The verb is not an SMTP command.
    #[error("unrecognized command")]
    UnknownCommand,
    /// The arguments do not match the command's grammar.
    #[error("syntax error in {verb}: {what}")]
    Syntax {
        /// The command verb.
        verb: &'static str,
        /// What was expected, in a few words.
        what: &'static str,
    },
    /// The path is longer than the limit (RFC 5321 section 4.5.3.1.3).
    #[error("path of {len} octets in {verb} exceeds {max}")]
    PathTooLong {
        /// MAIL or RCPT.
        verb: &'static str,
        /// Path length including angle brackets.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The local part is longer than the limit (section 4.5.3.1.1).
    #[error("local part of {len} octets in {verb} exceeds {max}")]
    LocalPartTooLong {
        /// MAIL or RCPT.
        verb: &'static str,
        /// Local part length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The domain is longer than the limit (section 4.5.3.1.2).
    #[error("domain of {len} octets in {verb} exceeds {max}")]
    DomainTooLong {
        /// The command verb.
        verb: &'static str,
        /// Domain length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A known parameter has a malformed value, such as `SIZE=ten`.
    #[error("bad value for {keyword}")]
    BadParameterValue {
        /// The parameter keyword.
        keyword: &'static str,
    },
    /// A known parameter has a value this grammar does not define, such as
    /// `BODY=9BIT` or `RET=ALL`.
    #[error("unsupported value for {keyword}")]
    UnsupportedParameterValue {
        /// The parameter keyword.
        keyword: &'static str,
    },
    /// A parameter that takes no value was given one, such as `SMTPUTF8=yes`.
    #[error("{keyword} takes no value")]
    UnexpectedParameterValue {
        /// The parameter keyword.
        keyword: &'static str,
    },
    /// A known parameter appears twice.
    #[error("duplicate {keyword} parameter")]
    DuplicateParameter {
        /// The parameter keyword.
        keyword: &'static str,
    },
    /// Octets that are not UTF-8 where UTF-8 is allowed.
    #[error("invalid UTF-8 in {verb}")]
    NotUtf8 {
        /// The command verb.
        verb: &'static str,
    },
}

impl CommandError {
    /// The reply a server sends for this error (RFC 5321 section 4.2.2,
    /// RFC 3463 for the enhanced codes).
    pub fn reply(&self) -> Reply<'static> {
        match self {
            CommandError::Line(LineError::TooLong { .. }) => Reply::LINE_TOO_LONG,
            CommandError::Line(LineError::BareLf | LineError::BareCr) => Reply::BARE_LINE_ENDING,
            CommandError::UnknownCommand => Reply::UNRECOGNIZED,
            CommandError::Syntax { verb: "MAIL", .. } => Reply::SENDER_SYNTAX,
            CommandError::Syntax { verb: "RCPT", .. } => Reply::RECIPIENT_SYNTAX,
            CommandError::Syntax { .. }
            | CommandError::BadParameterValue { .. }
            | CommandError::DuplicateParameter { .. } => Reply::SYNTAX_ERROR_ARGS,
            CommandError::NotUtf8 { .. } => Reply::INVALID_UTF8,
            CommandError::PathTooLong { .. } => Reply::PATH_TOO_LONG,
            CommandError::LocalPartTooLong { .. } => Reply::LOCAL_PART_TOO_LONG,
            CommandError::DomainTooLong { .. } => Reply::DOMAIN_TOO_LONG,
            CommandError::UnsupportedParameterValue { .. } => Reply::PARAMETER_NOT_IMPLEMENTED,
            CommandError::UnexpectedParameterValue { .. } => Reply::PARAMETERS_NOT_RECOGNIZED,
        }
    }
}

/// Why a reply could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The line could not be framed.
    #[error(transparent)]
    Line(#[from] LineError),
    /// The line does not start with a three-digit reply code.
    #[error("invalid reply code")]
    BadCode,
    /// The code is followed by something other than SP, `-` or the line end.
    #[error("invalid separator after reply code")]
    BadSeparator,
    /// A line of a multiline reply carries a different code than the first
    /// (RFC 5321 section 4.2.1 requires the same code on every line).
    #[error("multiline reply changes code from {first} to {later}")]
    InconsistentCode {
        /// Code of the first line.
        first: u16,
        /// The differing code.
        later: u16,
    },
    /// The text contains control characters.
    #[error("invalid character in reply text")]
    BadText,
    /// A reply expected to be an EHLO reply has another code.
    #[error("EHLO reply has code {code}, not 250")]
    NotEhlo {
        /// The code received.
        code: u16,
    },
}
