//! `Reverse-path`, `Forward-path`, `Mailbox` and their parts (RFC 5321 section 4.1.2).

use nom::Parser;
use nom::bytes::complete::tag;
use nom::multi::separated_list1;
use nom::sequence::preceded;

use crate::error::CommandError;
use crate::grammar;
use crate::limits::Limits;
use crate::types::{AddressLiteral, Domain, Host, LocalPart, Mailbox};

/// What a path parser needs from the command: its verb (for error context) and
/// the limits.
#[derive(Clone, Copy)]
pub(crate) struct PathCtx<'l> {
    pub verb: &'static str,
    pub limits: &'l Limits,
}

impl PathCtx<'_> {
    fn syntax(self, what: &'static str) -> CommandError {
        CommandError::Syntax {
            verb: self.verb,
            what,
        }
    }
}

/// A parsed path, with the octets it used (brackets included).
pub(crate) enum PathKind<'a> {
    Null,
    Postmaster,
    Mailbox(Mailbox<'a>),
}

/// `Path = "<" [ A-d-l ":" ] Mailbox ">"`, also `"<>"` and `"<Postmaster>"`;
/// the caller decides which forms its command allows. At most `limits.path`
/// octets including the brackets (section 4.5.3.1.3).
pub(crate) fn path<'a>(
    text: &'a str,
    ctx: PathCtx<'_>,
) -> Result<(PathKind<'a>, usize), CommandError> {
    let input = text.as_bytes();
    if input.first() != Some(&b'<') {
        return Err(ctx.syntax("path must start with '<'"));
    }
    if input.get(1) == Some(&b'>') {
        return Ok((PathKind::Null, 2));
    }
    let mut pos = 1;
    if input.get(1) == Some(&b'@') {
        pos += a_d_l(&input[1..]).ok_or_else(|| ctx.syntax("bad source route"))?;
    }
    if input.len() >= pos + 11 && input[pos..pos + 11].eq_ignore_ascii_case(b"Postmaster>") {
        return Ok((PathKind::Postmaster, pos + 11));
    }
    let (mailbox, used) = mailbox(sub(text, pos, text.len(), ctx)?, ctx)?;
    pos += used;
    if input.get(pos) != Some(&b'>') {
        return Err(ctx.syntax("path must end with '>'"));
    }
    pos += 1;
    if pos > ctx.limits.path {
        return Err(CommandError::PathTooLong {
            verb: ctx.verb,
            len: pos,
            max: ctx.limits.path,
        });
    }
    Ok((PathKind::Mailbox(mailbox), pos))
}

/// `A-d-l = At-domain *( "," At-domain )`, `At-domain = "@" Domain`, followed by
/// the `":"` that ends it. Source routes are parsed and then ignored, as RFC 5321
/// section 4.1.2 and appendix C direct. Returns the octets used.
fn a_d_l(input: &[u8]) -> Option<usize> {
    let at_domain = preceded(tag(&b"@"[..]), domain_octets);
    let (rest, _) = (separated_list1(tag(&b","[..]), at_domain), tag(&b":"[..]))
        .parse(input)
        .ok()?;
    Some(input.len() - rest.len())
}

/// The octets of a `Domain`, as a nom parser.
fn domain_octets(i: &[u8]) -> nom::IResult<&[u8], &[u8]> {
    match grammar::scan_domain(i) {
        Some(n) => Ok((&i[n..], &i[..n])),
        None => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

/// `Mailbox = Local-part "@" ( Domain / address-literal )`.
pub(crate) fn mailbox<'a>(
    text: &'a str,
    ctx: PathCtx<'_>,
) -> Result<(Mailbox<'a>, usize), CommandError> {
    let input = text.as_bytes();
    let (local, mut pos) = local_part(text, ctx)?;
    if input.get(pos) != Some(&b'@') {
        return Err(ctx.syntax("mailbox needs '@' and a domain"));
    }
    pos += 1;
    let (host, used) = host(sub(text, pos, text.len(), ctx)?, ctx)?;
    Ok((Mailbox::new(local, host), pos + used))
}

/// `Local-part = Dot-string / Quoted-string`, at most `limits.local_part` octets.
fn local_part<'a>(text: &'a str, ctx: PathCtx<'_>) -> Result<(LocalPart<'a>, usize), CommandError> {
    let input = text.as_bytes();
    let n = if input.first() == Some(&b'"') {
        grammar::scan_quoted_string(input)
    } else {
        grammar::scan_dot_string(input)
    }
    .ok_or_else(|| ctx.syntax("bad local part"))?;
    // The type's own ceiling bounds a larger configured limit (see `domain`).
    let max = ctx
        .limits
        .local_part
        .min(crate::types::mailbox::MAX_LOCAL_PART);
    if n > max {
        return Err(CommandError::LocalPartTooLong {
            verb: ctx.verb,
            len: n,
            max,
        });
    }
    Ok((LocalPart::unvalidated(sub(text, 0, n, ctx)?), n))
}

/// `Domain / address-literal`.
pub(crate) fn host<'a>(text: &'a str, ctx: PathCtx<'_>) -> Result<(Host<'a>, usize), CommandError> {
    if text.starts_with('[') {
        let (lit, n) = address_literal(text).ok_or_else(|| ctx.syntax("bad address literal"))?;
        Ok((Host::Literal(Box::new(lit)), n))
    } else {
        let (d, n) = domain(text, ctx)?;
        Ok((Host::Domain(d), n))
    }
}

/// `Domain = sub-domain *("." sub-domain)`, at most `limits.domain` octets.
pub(crate) fn domain<'a>(
    text: &'a str,
    ctx: PathCtx<'_>,
) -> Result<(Domain<'a>, usize), CommandError> {
    let n = grammar::scan_domain(text.as_bytes()).ok_or_else(|| ctx.syntax("bad domain"))?;
    // A larger configured limit cannot make a `Domain` longer than its type
    // allows (RFC 1035's 255 octets).
    let max = ctx.limits.domain.min(crate::Limits::DEFAULT.domain);
    if n > max {
        return Err(CommandError::DomainTooLong {
            verb: ctx.verb,
            len: n,
            max,
        });
    }
    Ok((Domain::unvalidated(sub(text, 0, n, ctx)?), n))
}

/// `address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
/// General-address-literal ) "]"` (section 4.1.3).
pub(crate) fn address_literal(text: &str) -> Option<(AddressLiteral<'_>, usize)> {
    crate::types::domain::scan_address_literal(text)
}

/// `text[from..to]`. The scanners stop only at ASCII octets, so the bounds are
/// character boundaries; a miss is reported as a syntax error, never a panic.
pub(crate) fn sub<'a>(
    text: &'a str,
    from: usize,
    to: usize,
    ctx: PathCtx<'_>,
) -> Result<&'a str, CommandError> {
    text.get(from..to)
        .ok_or_else(|| ctx.syntax("octets out of place"))
}
