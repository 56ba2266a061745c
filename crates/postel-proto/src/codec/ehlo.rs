//! The EHLO reply as a typed capability set (RFC 5321 section 4.1.1.1).

use std::borrow::Cow;

use crate::error::ReplyError;
use crate::grammar;
use crate::types::{Capabilities, Capability, Mechanism, Reply};

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
/// let (reply, _) = parse_reply(input, &ParserOptions::STRICT)?.complete().unwrap();
/// let caps = parse_capabilities(&reply).unwrap();
/// assert_eq!(caps.size, Some(Some(10_240_000)));
/// assert!(caps.pipelining && caps.offers_auth("plain"));
/// # Ok::<(), postel_proto::Invalid<postel_proto::ReplyError>>(())
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

/// Sets the field for one known `ehlo-line`; false if the line is not one.
fn apply<'r>(caps: &mut Capabilities<'r>, line: &'r str) -> bool {
    let (keyword, params) = line.split_once(' ').unwrap_or((line, ""));
    let is = |k: &str| keyword.eq_ignore_ascii_case(k);
    let flag = |slot: &mut bool| {
        if *slot || !params.is_empty() {
            return false;
        }
        *slot = true;
        true
    };
    if is("PIPELINING") {
        flag(&mut caps.pipelining)
    } else if is("8BITMIME") {
        flag(&mut caps.eight_bit_mime)
    } else if is("SMTPUTF8") {
        flag(&mut caps.smtputf8)
    } else if is("CHUNKING") {
        flag(&mut caps.chunking)
    } else if is("BINARYMIME") {
        flag(&mut caps.binary_mime)
    } else if is("STARTTLS") {
        flag(&mut caps.starttls)
    } else if is("ENHANCEDSTATUSCODES") {
        flag(&mut caps.enhanced_status_codes)
    } else if is("DSN") {
        flag(&mut caps.dsn)
    } else if is("REQUIRETLS") {
        flag(&mut caps.requiretls)
    } else if is("HELP") {
        flag(&mut caps.help)
    } else if is("SIZE") {
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
    } else if is("AUTH") {
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
    } else {
        false
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
