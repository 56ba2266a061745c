//! Server replies: reply codes, enhanced status codes, and reply text.

use std::borrow::Cow;

use super::ValueError;
use crate::grammar;

/// A reply code (RFC 5321 section 4.2): `%x32-35 %x30-35 %x30-39`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(u16);

impl ReplyCode {
    /// `250`.
    pub const OK: ReplyCode = ReplyCode(250);
    /// `334`: AUTH continues.
    pub const AUTH_CONTINUE: ReplyCode = ReplyCode(334);
    /// `354`: send the message.
    pub const START_MAIL_INPUT: ReplyCode = ReplyCode(354);
    /// `451`: requested action aborted, local error in processing.
    pub const LOCAL_ERROR: ReplyCode = ReplyCode(451);

    /// The numeric code.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The first digit: 2 success, 3 intermediate, 4 transient, 5 permanent.
    #[allow(clippy::cast_possible_truncation)] // At most 5.
    pub const fn class(self) -> u8 {
        (self.0 / 100) as u8
    }

    /// 2yz.
    pub const fn is_positive(self) -> bool {
        self.class() == 2
    }

    /// 4yz: try again later.
    pub const fn is_transient(self) -> bool {
        self.class() == 4
    }

    /// 5yz: do not retry.
    pub const fn is_permanent(self) -> bool {
        self.class() == 5
    }

    pub(crate) const fn from_digits(a: u8, b: u8, c: u8) -> Option<ReplyCode> {
        if a >= b'2' && a <= b'5' && b >= b'0' && b <= b'5' && c >= b'0' && c <= b'9' {
            Some(ReplyCode(
                (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16,
            ))
        } else {
            None
        }
    }

    /// Builds a code in a `const` context; `None` outside the grammar.
    #[allow(clippy::cast_possible_truncation)] // Each digit is below 10.
    pub const fn new(code: u16) -> Option<ReplyCode> {
        if code > 999 {
            return None;
        }
        let (a, b, c) = (
            (code / 100) as u8,
            (code / 10 % 10) as u8,
            (code % 10) as u8,
        );
        ReplyCode::from_digits(a + b'0', b + b'0', c + b'0')
    }
}

impl TryFrom<u16> for ReplyCode {
    type Error = ValueError;
    fn try_from(code: u16) -> Result<Self, ValueError> {
        ReplyCode::new(code).ok_or(ValueError::OutOfRange {
            rule: "Reply-code",
            value: code.into(),
            min: 200,
            max: 559,
        })
    }
}

impl std::fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An enhanced status code `class.subject.detail` (RFC 3463), carried in reply
/// text as RFC 2034 describes. The class is 2, 4 or 5; subject and detail 0 to 999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    class: u8,
    subject: u16,
    detail: u16,
}

impl EnhancedStatus {
    /// Builds a code; `None` outside RFC 3463's ranges.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Option<EnhancedStatus> {
        if (class == 2 || class == 4 || class == 5) && subject <= 999 && detail <= 999 {
            Some(EnhancedStatus {
                class,
                subject,
                detail,
            })
        } else {
            None
        }
    }

    const fn of(class: u8, subject: u16, detail: u16) -> EnhancedStatus {
        EnhancedStatus {
            class,
            subject,
            detail,
        }
    }

    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    #[allow(clippy::cast_possible_truncation)] // At most 5.
    pub const fn class(self) -> u8 {
        self.class
    }

    /// Octets of `class.subject.detail` as written.
    pub(crate) fn written_len(self) -> usize {
        3 + digit_count(self.subject) + digit_count(self.detail)
    }

    /// The code as written, `class.subject.detail`: at most `5.999.999`.
    pub(crate) fn render(self) -> ([u8; 9], usize) {
        let mut out = [0u8; 9];
        out[0] = b'0' + self.class % 10;
        let mut n = 1;
        for part in [self.subject, self.detail] {
            out[n] = b'.';
            n += 1;
            // Each part is at most 999 (checked by `new`): its last digits.
            let digits = [part / 100, part / 10 % 10, part % 10];
            for d in &digits[3 - digit_count(part)..] {
                out[n] = b'0' + u8::try_from(*d).unwrap_or(0);
                n += 1;
            }
        }
        (out, n)
    }

    /// The subject sub-code (RFC 3463 section 3).
    pub const fn subject(self) -> u16 {
        self.subject
    }

    /// The detail sub-code.
    pub const fn detail(self) -> u16 {
        self.detail
    }

    /// Parses `class "." subject "." detail` at the start of `input`, followed by
    /// a space or the end. Returns the code and the octets it used.
    pub(crate) fn parse_prefix(input: &[u8]) -> Option<(EnhancedStatus, usize)> {
        let class = match input.first()? {
            b'2' => 2,
            b'4' => 4,
            b'5' => 5,
            _ => return None,
        };
        if input.get(1) != Some(&b'.') {
            return None;
        }
        // `1*3digit`, returning the value and the position after it.
        let number = |mut at: usize| -> Option<(u16, usize)> {
            let start = at;
            let mut v = 0u16;
            while let Some(&d) = input
                .get(at)
                .filter(|d| d.is_ascii_digit() && at - start < 3)
            {
                v = v * 10 + u16::from(d - b'0');
                at += 1;
            }
            (at > start).then_some((v, at))
        };
        let (subject, end) = number(2)?;
        if input.get(end) != Some(&b'.') {
            return None;
        }
        let (detail, end) = number(end + 1)?;
        match input.get(end) {
            None | Some(b' ') => Some((EnhancedStatus::of(class, subject, detail), end)),
            _ => None,
        }
    }
}

/// Decimal digits of a sub-code (at most 999).
fn digit_count(n: u16) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        _ => 3,
    }
}

impl std::fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete reply, single- or multi-line. The one type for everything a server
/// says; written by [`Reply::write`] and parsed by [`crate::codec::parse_reply`].
///
/// Invariants, checked by the constructors: the enhanced code's class matches the
/// reply code's; a reply with an enhanced code has at least one line; every line is
/// a `textstring` (no CR, LF or other controls); and without an enhanced code the
/// first line does not itself begin with one, so that parsing a written reply
/// gives back the same reply; and every written line fits the 512-octet reply
/// line of RFC 5321 section 4.5.3.1.5.
///
/// ```
/// use postel_proto::types::{EnhancedStatus, Reply, ReplyCode};
/// let r = Reply::new(ReplyCode::OK, EnhancedStatus::new(2, 1, 0), "Sender OK")?;
/// assert_eq!(r.to_bytes(), b"250 2.1.0 Sender OK\r\n");
/// assert_eq!(Reply::code_only(ReplyCode::AUTH_CONTINUE).to_bytes(), b"334\r\n");
/// # Ok::<(), postel_proto::types::ValueError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Reply<'a> {
    code: ReplyCode,
    enhanced: Option<EnhancedStatus>,
    lines: Lines<'a>,
}

impl PartialEq for Reply<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.enhanced == other.enhanced && self.lines() == other.lines()
    }
}

impl Eq for Reply<'_> {}

impl std::hash::Hash for Reply<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code.hash(state);
        self.enhanced.hash(state);
        self.lines().hash(state);
    }
}

/// The text of a reply. Most replies have one line, kept without a vector so
/// that parsing one allocates nothing.
#[derive(Debug, Clone)]
pub(crate) enum Lines<'a> {
    One(Cow<'a, str>),
    Many(Cow<'a, [Cow<'a, str>]>),
}

impl<'a> Lines<'a> {
    pub(crate) fn empty() -> Lines<'a> {
        Lines::Many(Cow::Borrowed(&[]))
    }

    pub(crate) fn push(&mut self, line: Cow<'a, str>) {
        *self = match std::mem::replace(self, Lines::empty()) {
            Lines::Many(v) if v.is_empty() => Lines::One(line),
            Lines::One(first) => {
                let mut v = Vec::with_capacity(8);
                v.push(first);
                v.push(line);
                Lines::Many(Cow::Owned(v))
            }
            Lines::Many(v) => {
                let mut v = v.into_owned();
                v.push(line);
                Lines::Many(Cow::Owned(v))
            }
        };
    }

    fn as_slice(&self) -> &[Cow<'a, str>] {
        match self {
            Lines::One(l) => std::slice::from_ref(l),
            Lines::Many(v) => v,
        }
    }
}

macro_rules! reply_const {
    ($(#[$doc:meta])* $name:ident, $code:literal, ($c:literal, $s:literal, $d:literal), $text:literal) => {
        $(#[$doc])*
        pub const $name: Reply<'static> = Reply {
            code: ReplyCode($code),
            enhanced: Some(EnhancedStatus::of($c, $s, $d)),
            lines: Lines::One(Cow::Borrowed($text)),
        };
    };
}

impl<'a> Reply<'a> {
    reply_const!(
        /// `250 2.0.0 OK`.
        OK, 250, (2, 0, 0), "OK");
    reply_const!(
        /// `221 2.0.0 Bye`, the answer to QUIT.
        BYE, 221, (2, 0, 0), "Bye");
    reply_const!(
        /// `421 4.3.2 Service shutting down`, before closing on shutdown.
        SHUTTING_DOWN, 421, (4, 3, 2), "Service shutting down, closing transmission channel");
    reply_const!(
        /// `421 4.7.0 Too many errors`, before closing after too many errors.
        TOO_MANY_ERRORS, 421, (4, 7, 0), "Too many errors, closing transmission channel");
    reply_const!(
        /// `500 5.5.2 Line too long` (RFC 5321 section 4.5.3.1.10).
        LINE_TOO_LONG, 500, (5, 5, 2), "Line too long");
    reply_const!(
        /// `500 5.5.6 Authentication exchange line is too long` (RFC 4954 section 6).
        SASL_LINE_TOO_LONG, 500, (5, 5, 6), "Authentication exchange line is too long");
    reply_const!(
        /// `500 5.5.1 Command unrecognized`.
        UNRECOGNIZED, 500, (5, 5, 1), "Command unrecognized");
    reply_const!(
        /// `500 5.5.2 Bare CR or LF received`: the line did not end in CRLF.
        BARE_LINE_ENDING, 500, (5, 5, 2), "Line must end in CRLF");
    reply_const!(
        /// `501 5.5.4 Syntax error in parameters or arguments`.
        SYNTAX_ERROR_ARGS, 501, (5, 5, 4), "Syntax error in parameters or arguments");
    reply_const!(
        /// `501 5.1.3 Path too long` (RFC 5321 section 4.5.3.1.10).
        PATH_TOO_LONG, 501, (5, 1, 3), "Path too long");
    reply_const!(
        /// `501 5.1.7 Syntax error in sender address`.
        SENDER_SYNTAX, 501, (5, 1, 7), "Syntax error in sender address");
    reply_const!(
        /// `501 5.1.3 Syntax error in recipient address`.
        RECIPIENT_SYNTAX, 501, (5, 1, 3), "Syntax error in recipient address");
    reply_const!(
        /// `501 5.1.3 Local part too long` (RFC 5321 section 4.5.3.1.1).
        LOCAL_PART_TOO_LONG, 501, (5, 1, 3), "Local part too long");
    reply_const!(
        /// `501 5.1.3 Domain too long` (RFC 5321 section 4.5.3.1.2).
        DOMAIN_TOO_LONG, 501, (5, 1, 3), "Domain too long");
    reply_const!(
        /// `501 5.6.7 Invalid UTF-8` (RFC 6531 section 3.7.4.1).
        INVALID_UTF8, 501, (5, 6, 7), "Invalid UTF-8");
    reply_const!(
        /// `550 5.6.0 Message contains bare CR or LF`: the body had a line ending
        /// other than CRLF (RFC 5321 section 2.3.8; the SMTP smuggling defence).
        BODY_BARE_LINE_ENDING, 550, (5, 6, 0), "Message contains bare CR or LF");
    reply_const!(
        /// `552 5.3.4` for a body line over 1000 octets (RFC 5321 section
        /// 4.5.3.1.6): a limit of the message's content, like its size.
        BODY_LINE_TOO_LONG, 552, (5, 3, 4), "Message contains a line longer than allowed");
    reply_const!(
        /// `553 5.6.7`: a UTF-8 address without SMTPUTF8 on MAIL (RFC 6531
        /// section 3.7.4.1).
        NON_ASCII_ADDRESS, 553, (5, 6, 7), "Non-ASCII address needs SMTPUTF8");
    reply_const!(
        /// `451 4.5.0`: a client's own diagnosis of a session that broke
        /// without a reply from the server to record (RFC 3463's other
        /// protocol status).
        TRANSIENT_PROTOCOL_ERROR, 451, (4, 5, 0), "Protocol error: no reply from the server");
    reply_const!(
        /// `554 5.4.6 Too many hops` (RFC 5321 section 6.3, RFC 3463's
        /// routing loop code).
        TOO_MANY_HOPS, 554, (5, 4, 6), "Too many Received header fields, mail loop");
    reply_const!(
        /// `552 5.3.4 Message too big for system` (RFC 1870 section 6).
        MESSAGE_TOO_BIG, 552, (5, 3, 4), "Message size exceeds fixed maximum message size");
    reply_const!(
        /// `502 5.5.1 Command not implemented`.
        NOT_IMPLEMENTED, 502, (5, 5, 1), "Command not implemented");
    reply_const!(
        /// `503 5.5.1 Bad sequence of commands`.
        BAD_SEQUENCE, 503, (5, 5, 1), "Bad sequence of commands");
    reply_const!(
        /// `504 5.5.4 Command parameter not implemented`.
        PARAMETER_NOT_IMPLEMENTED, 504, (5, 5, 4), "Command parameter not implemented");
    reply_const!(
        /// `555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented`.
        PARAMETERS_NOT_RECOGNIZED, 555, (5, 5, 4),
        "MAIL FROM/RCPT TO parameters not recognized or not implemented");

    /// A single-line reply.
    pub fn new(
        code: ReplyCode,
        enhanced: Option<EnhancedStatus>,
        text: impl Into<Cow<'a, str>>,
    ) -> Result<Self, ValueError> {
        Reply::multiline(code, enhanced, vec![text.into()])
    }

    /// Checks one line of a reply's text (`first`: the first line) as
    /// written with `code` and `enhanced`: a `textstring` that fits the
    /// reply line, and without an enhanced code, a first line that does not
    /// itself begin with one.
    pub(crate) fn check_line(
        code: ReplyCode,
        enhanced: Option<EnhancedStatus>,
        line: &[u8],
        first: bool,
    ) -> Result<(), ValueError> {
        let shown = || String::from_utf8_lossy(line);
        if !line.iter().all(|&b| grammar::is_text(b)) {
            return Err(ValueError::syntax("textstring", &shown()));
        }
        // Code, separator, enhanced code and its space, text, CRLF.
        let overhead = 4 + enhanced.map_or(0, |e| e.written_len() + 1) + 2;
        let max = crate::Limits::DEFAULT.reply_line;
        if line.len() + overhead > max {
            return Err(ValueError::TooLong {
                rule: "Reply-line",
                len: line.len() + overhead,
                max,
            });
        }
        if first
            && enhanced.is_none()
            && EnhancedStatus::parse_prefix(line).is_some_and(|(e, _)| e.class == code.class())
        {
            return Err(ValueError::syntax(
                "reply text (begins like an enhanced status code)",
                &shown(),
            ));
        }
        Ok(())
    }

    /// A reply of one or more lines.
    pub fn multiline(
        code: ReplyCode,
        enhanced: Option<EnhancedStatus>,
        lines: Vec<Cow<'a, str>>,
    ) -> Result<Self, ValueError> {
        if let Some(e) = enhanced
            && e.class != code.class()
        {
            return Err(ValueError::syntax("enhanced status class", &e.to_string()));
        }
        if lines.is_empty() {
            return Err(ValueError::syntax("reply text", ""));
        }
        for (i, line) in lines.iter().enumerate() {
            Reply::check_line(code, enhanced, line.as_bytes(), i == 0)?;
        }
        let mut text = Lines::empty();
        for line in lines {
            text.push(line);
        }
        Ok(Reply {
            code,
            enhanced,
            lines: text,
        })
    }

    /// A reply with no text, such as the `334` of an AUTH exchange.
    pub fn code_only(code: ReplyCode) -> Reply<'static> {
        Reply {
            code,
            enhanced: None,
            lines: Lines::Many(Cow::Borrowed(&[])),
        }
    }

    pub(crate) fn from_parts(
        code: ReplyCode,
        enhanced: Option<EnhancedStatus>,
        lines: Lines<'a>,
    ) -> Self {
        Reply {
            code,
            enhanced,
            lines,
        }
    }

    /// The reply code.
    pub fn code(&self) -> ReplyCode {
        self.code
    }

    /// The enhanced status code, when the text carries one.
    pub fn enhanced(&self) -> Option<EnhancedStatus> {
        self.enhanced
    }

    /// The text lines, without code and enhanced code. Empty for a code-only reply.
    pub fn lines(&self) -> &[Cow<'a, str>] {
        self.lines.as_slice()
    }

    /// Detaches the value from the buffer it was parsed from.
    pub fn into_owned(self) -> Reply<'static> {
        Reply {
            code: self.code,
            enhanced: self.enhanced,
            lines: match self.lines {
                Lines::One(l) => Lines::One(Cow::Owned(l.into_owned())),
                Lines::Many(v) => Lines::Many(Cow::Owned(
                    v.iter()
                        .map(|l| Cow::Owned(l.clone().into_owned()))
                        .collect(),
                )),
            },
        }
    }
}

impl std::fmt::Display for Reply<'_> {
    /// The reply as one line of text for logs: code, enhanced code, lines joined by
    /// a space.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        for l in self.lines() {
            write!(f, " {l}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::EnhancedStatus;

    #[test]
    fn rendered_codes_read_as_displayed() {
        for class in [2, 4, 5] {
            for subject in (0..=999).step_by(7).chain([0, 9, 10, 99, 100, 999]) {
                for detail in [0, 1, 9, 10, 42, 99, 100, 555, 999] {
                    let Some(e) = EnhancedStatus::new(class, subject, detail) else {
                        panic!("{class}.{subject}.{detail} is in range");
                    };
                    let (octets, n) = e.render();
                    assert_eq!(&octets[..n], e.to_string().as_bytes());
                }
            }
        }
    }
}
