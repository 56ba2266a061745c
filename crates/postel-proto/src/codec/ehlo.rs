//! The EHLO reply as a typed capability set (RFC 5321 section 4.1.1.1).

use std::borrow::Cow;

use crate::error::{Invalid, ReplyError, Status};
use crate::framing::line::frame_line_ascii;
use crate::grammar;
use crate::limits::ParserOptions;
use crate::types::{Capabilities, Capability, Mechanism, Reply};

/// What a server answered to EHLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EhloReply<'a> {
    /// `250`: the server's extensions.
    Accepted(Capabilities<'a>),
    /// Any other reply; a client falls back to HELO on 500 and 502
    /// (RFC 5321 section 4.1.4).
    Refused(Reply<'a>),
}

/// Parses the reply to EHLO straight into [`Capabilities`], without building the
/// intermediate [`Reply`]: the client's fast path. Gives the same result as
/// [`parse_reply`](super::parse_reply) followed by [`parse_capabilities`], with
/// the same errors.
///
/// ```
/// use postel_proto::{ParserOptions, codec::{EhloReply, parse_ehlo_reply}};
/// let input = b"250-mx.example.org\r\n250-PIPELINING\r\n250 CHUNKING\r\n";
/// let Some((EhloReply::Accepted(caps), _)) = parse_ehlo_reply(input, &ParserOptions::STRICT)?.complete() else {
///     return Ok(()); // incomplete, or refused: fall back to HELO
/// };
/// assert!(caps.pipelining && caps.chunking);
/// # Ok::<(), postel_proto::Invalid<postel_proto::ReplyError>>(())
/// ```
pub fn parse_ehlo_reply<'a>(
    input: &'a [u8],
    opts: &ParserOptions,
) -> Result<Status<EhloReply<'a>>, Invalid<ReplyError>> {
    if input.len() < 4 {
        // Too short to tell; the general parser says whether more is needed.
        return map_refused(input, opts);
    }
    if !input.starts_with(b"250") || !matches!(input[3], b' ' | b'-' | b'\r' | b'\n') {
        return map_refused(input, opts);
    }
    let mut caps = Capabilities::default();
    let mut pos = 0;
    let mut first = true;
    loop {
        let framed = frame_line_ascii(&input[pos..], opts.limits.reply_line, opts.allow_bare_lf);
        let ((content, ascii), used) = match framed {
            Ok(Status::Complete { value, consumed }) => ((value.0.content, value.1), consumed),
            Ok(Status::Incomplete) => return Ok(Status::Incomplete),
            Err(_) => return map_refused(input, opts),
        };
        pos += used;
        let (last, text) = match content {
            [b'2', b'5', b'0'] => (true, ""),
            [b'2', b'5', b'0', sep @ (b' ' | b'-'), text @ ..]
                if super::reply::is_textstring(text) =>
            {
                match super::text_of(text, ascii) {
                    Ok(t) => (*sep == b' ', t),
                    // Invalid UTF-8 is replaced; the general parser owns that.
                    Err(_) => return map_refused(input, opts),
                }
            }
            // Another code, a bad separator, a control character: the general
            // parser gives the precise error.
            _ => return map_refused(input, opts),
        };
        if first {
            if crate::types::EnhancedStatus::parse_prefix(text.as_bytes())
                .is_some_and(|(e, _)| e.class() == 2)
            {
                // The general parser takes enhanced codes out of the text.
                return map_refused(input, opts);
            }
            caps.greeting = Cow::Borrowed(text);
            first = false;
        } else if !apply(&mut caps, text) && !text.is_empty() {
            caps.other.push(Capability::unvalidated(text));
        }
        if last {
            return Ok(Status::Complete {
                value: EhloReply::Accepted(caps),
                consumed: pos,
            });
        }
    }
}

/// The general path: a reply that is not a plain 250.
fn map_refused<'a>(
    input: &'a [u8],
    opts: &ParserOptions,
) -> Result<Status<EhloReply<'a>>, Invalid<ReplyError>> {
    Ok(match super::parse_reply(input, opts)? {
        Status::Complete { value, consumed } => Status::Complete {
            value: match parse_capabilities(&value) {
                Ok(caps) => EhloReply::Accepted(caps.into_owned()),
                Err(_) => EhloReply::Refused(value),
            },
            consumed,
        },
        Status::Incomplete => Status::Incomplete,
    })
}

/// Reads the extensions out of an EHLO reply: `ehlo-ok-rsp = "250" SP Domain [ SP
/// ehlo-greet ] CRLF / ( "250-" Domain [ SP ehlo-greet ] CRLF *( "250-" ehlo-line
/// CRLF ) "250" SP ehlo-line CRLF )`. Keywords are case-insensitive. A line that
/// repeats a keyword already seen, or whose parameters do not fit the extension's
/// grammar, is kept in [`Capabilities::other`] rather than refused, so a client
/// still sees what the server sent.
///
/// ```
/// use postel_proto::{ParserOptions, codec::{parse_capabilities, parse_reply}};
/// let input = b"250-mx.example.org\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n";
/// let (reply, _) = parse_reply(input, &ParserOptions::STRICT)?.complete().ok_or("incomplete")?;
/// let caps = parse_capabilities(&reply)?;
/// assert_eq!(caps.size, Some(Some(10_240_000)));
/// assert!(caps.pipelining && caps.offers_auth("plain"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_capabilities<'r>(reply: &'r Reply<'_>) -> Result<Capabilities<'r>, ReplyError> {
    if reply.code().get() != 250 {
        return Err(ReplyError::NotEhlo {
            code: reply.code().get(),
        });
    }
    let mut lines = reply.lines().iter();
    let mut caps = Capabilities {
        greeting: Cow::Borrowed(lines.next().map_or("", |l| &**l)),
        ..Capabilities::default()
    };
    for line in lines {
        if !apply(&mut caps, line) && !line.is_empty() {
            caps.other.push(Capability::unvalidated(line));
        }
    }
    Ok(caps)
}

/// Up to the first eight octets of a keyword, letters folded to lower case
/// by setting bit 0x20, as one number: the keyword dispatch compares one
/// integer instead of strings. The fold is exact on text without controls
/// (which `textstring` excludes): only a letter's two cases share a folded
/// value among printable octets, and digits and `-` already have the bit.
const fn key(k: &[u8]) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < k.len() && i < 8 {
        v |= ((k[i] | 0x20) as u64) << (8 * i);
        i += 1;
    }
    v
}

/// The keyword of an `ehlo-line` (up to the first space) and its
/// [`key`], from one eight-octet load: the space search and the folding run
/// on the word at once.
#[inline]
fn keyword(line: &str) -> (&str, &str, u64) {
    let b = line.as_bytes();
    let mut word = [0u8; 8];
    let n = b.len().min(8);
    word[..n].copy_from_slice(&b[..n]);
    let w = u64::from_le_bytes(word);
    // Only the lowest flagged octet is exact, which is the one used.
    let spaces = grammar::octets_equal(w, b' ') & low_octets(n) & grammar::HI;
    let len = if spaces != 0 {
        (spaces.trailing_zeros() / 8) as usize
    } else {
        // Keywords are short: the rest, if any, octet by octet.
        b[n..]
            .iter()
            .position(|&c| c == b' ')
            .map_or(b.len(), |p| n + p)
    };
    let key = (w | (grammar::LO * 0x20)) & low_octets(len.min(8));
    (&line[..len], line.get(len + 1..).unwrap_or(""), key)
}

/// A mask of the lowest `n` octets of a word, `n` at most 8.
#[inline]
fn low_octets(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

/// Sets the field for one known `ehlo-line`; false if the line is not one.
fn apply<'r>(caps: &mut Capabilities<'r>, line: &'r str) -> bool {
    let (keyword, params, folded) = keyword(line);
    let flag = |slot: &mut bool| {
        if *slot || !params.is_empty() {
            return false;
        }
        *slot = true;
        true
    };
    let k = keyword.as_bytes();
    // Keywords longer than eight octets must match in full as well: the
    // first eight are in the key, so the rest is compared.
    let full = |name: &str| k.eq_ignore_ascii_case(name.as_bytes());
    // Folded like `key`.
    let tail = |rest: &[u8; 2]| {
        k.len() == 10
            && u16::from_le_bytes([k[8], k[9]]) | 0x2020 == u16::from_le_bytes(*rest) | 0x2020
    };
    const PIPELINING: u64 = key(b"PIPELINING");
    const EIGHTBITMIME: u64 = key(b"8BITMIME");
    const SMTPUTF8: u64 = key(b"SMTPUTF8");
    const CHUNKING: u64 = key(b"CHUNKING");
    const BINARYMIME: u64 = key(b"BINARYMIME");
    const STARTTLS: u64 = key(b"STARTTLS");
    const ENHANCED: u64 = key(b"ENHANCEDSTATUSCODES");
    const DSN: u64 = key(b"DSN");
    const REQUIRETLS: u64 = key(b"REQUIRETLS");
    const HELP: u64 = key(b"HELP");
    const SIZE: u64 = key(b"SIZE");
    const AUTH: u64 = key(b"AUTH");
    match (k.len(), folded) {
        (10, PIPELINING) if tail(b"NG") => flag(&mut caps.pipelining),
        (8, EIGHTBITMIME) => flag(&mut caps.eight_bit_mime),
        (8, SMTPUTF8) => flag(&mut caps.smtputf8),
        (8, CHUNKING) => flag(&mut caps.chunking),
        (10, BINARYMIME) if tail(b"ME") => flag(&mut caps.binary_mime),
        (8, STARTTLS) => flag(&mut caps.starttls),
        (19, ENHANCED) if full("ENHANCEDSTATUSCODES") => flag(&mut caps.enhanced_status_codes),
        (3, DSN) => flag(&mut caps.dsn),
        (10, REQUIRETLS) if tail(b"LS") => flag(&mut caps.requiretls),
        (4, HELP) => flag(&mut caps.help),
        (4, SIZE) => {
            // `size-param = [ SP 1*20DIGIT ]` (RFC 1870 section 4).
            if caps.size.is_some() {
                return false;
            }
            if params.is_empty() && !line.ends_with(' ') {
                caps.size = Some(None);
            } else if let Some(n) = grammar::parse_u64(params.as_bytes()) {
                caps.size = Some(Some(n));
            } else {
                return false;
            }
            true
        }
        (4, AUTH) => {
            // `"AUTH" 1*(SP sasl-mech)` (RFC 4954 section 3).
            if caps.auth.is_some() || params.is_empty() {
                return false;
            }
            let mut mechs = Vec::new();
            for m in params.split(' ') {
                if crate::types::command_validate_mechanism(m).is_err() {
                    return false;
                }
                mechs.push(Mechanism::unvalidated(m));
            }
            caps.auth = Some(mechs);
            true
        }
        _ => false,
    }
}

/// Keywords with a field in [`Capabilities`]: a [`Capability`] built by hand may
/// not use them.
pub(crate) const KNOWN_KEYWORDS: [&str; 12] = [
    "PIPELINING",
    "8BITMIME",
    "SMTPUTF8",
    "CHUNKING",
    "BINARYMIME",
    "STARTTLS",
    "ENHANCEDSTATUSCODES",
    "DSN",
    "REQUIRETLS",
    "HELP",
    "SIZE",
    "AUTH",
];

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)] // A panic is a failed test.
    use super::*;

    proptest::proptest! {
        /// The word-at-a-time keyword split and fold agree with splitting at
        /// the first space and folding octet by octet, on any text line.
        #[test]
        fn the_keyword_word_is_the_octetwise_one(line in "[ -~\u{e9}]{0,24}") {
            let (k, params, folded) = keyword(&line);
            let space = line.find(' ').unwrap_or(line.len());
            proptest::prop_assert_eq!(k, &line[..space]);
            proptest::prop_assert_eq!(params, line.get(space + 1..).unwrap_or(""));
            proptest::prop_assert_eq!(folded, key(&line.as_bytes()[..space]));
        }
    }

    #[test]
    fn keywords_match_in_either_case_and_nothing_else_does() {
        for (line, name) in [
            ("pipelining", "PIPELINING"),
            ("8bitmime", "8BITMIME"),
            ("Size 10", "SIZE"),
        ] {
            assert_eq!(keyword(line).2, key(name.as_bytes()), "{line}");
        }
        // Printable octets that differ from a keyword's only in bit 0x20 are
        // its letters' other case; `@` and `` ` `` never meet a keyword.
        assert_ne!(keyword("SIZ@").2, key(b"SIZE"));
        assert_ne!(keyword("DSN-").2, key(b"DSN"));
        // Long keywords must match past their first eight octets too.
        let input = b"250-mx\r\n250-PIPELINIXX\r\n250-binarymime\r\n250 REQUIRETLs\r\n";
        let Ok(Status::Complete {
            value: EhloReply::Accepted(caps),
            ..
        }) = parse_ehlo_reply(input, &ParserOptions::STRICT)
        else {
            panic!("not accepted");
        };
        assert!(!caps.pipelining && caps.binary_mime && caps.requiretls);
        assert_eq!(caps.other.len(), 1);
    }
}
