//! Command lines (RFC 5321 section 4.1.1 and the extensions' commands).

use std::borrow::Cow;

use nom::Parser;
use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case};
use nom::character::complete::digit1;
use nom::combinator::{all_consuming, opt};
use nom::sequence::preceded;

use super::path::{self, PathCtx, PathKind};
use crate::error::{CommandError, Invalid, Status};
use crate::framing::{frame_line, line::frame_line_ascii};
use crate::grammar;
use crate::limits::ParserOptions;
use crate::types::{
    AuthParam, BodyType, Command, ForwardPath, HeloName, InitialResponse, MailParameters,
    Mechanism, MtPriority, NonstandardHelo, Notify, Orcpt, OtherParameters, Parameter,
    RcptParameters, Ret, ReversePath, SaslResponse, Secret, Text, XText,
};

/// Parses one command at the start of `input`.
///
/// Returns the command (borrowing from `input`) and the octets it used, or
/// [`Status::Incomplete`] when no line end has arrived yet. A bad line is an
/// [`Invalid`] that says how much to drop; its [`CommandError::reply`] is what to
/// answer.
///
/// ```
/// use postel_proto::{ParserOptions, Status, codec::parse_command, types::Command};
/// let input = b"RCPT TO:<jane@example.org> NOTIFY=FAILURE\r\nDATA\r\n";
/// let Status::Complete { value, consumed } = parse_command(input, &ParserOptions::STRICT)? else {
///     return Ok(()); // incomplete: read more
/// };
/// assert!(matches!(value, Command::Rcpt { .. }));
/// assert_eq!(&input[consumed..], b"DATA\r\n");
/// # Ok::<(), postel_proto::Invalid<postel_proto::CommandError>>(())
/// ```
#[inline]
pub fn parse_command<'a>(
    input: &'a [u8],
    opts: &ParserOptions,
) -> Result<Status<Command<'a>>, Invalid<CommandError>> {
    let framed = frame_line_ascii(input, opts.limits.command_line, opts.allow_bare_lf);
    let ((line, ascii), consumed) = match framed {
        Ok(Status::Complete { value, consumed }) => ((value.0.content, value.1), consumed),
        Ok(Status::Incomplete) => return Ok(Status::Incomplete),
        Err(e) => return Err(e.map(CommandError::Line)),
    };
    command_line(line, opts, ascii, Done(consumed))
}

/// What [`parse_command`] returns.
type Parsed<'a> = Result<Status<Command<'a>>, Invalid<CommandError>>;

/// The octets a framed line used: turns a command, or the error in it, into
/// [`parse_command`]'s result. Each verb's parser builds that result itself,
/// so a command is written once, where the caller receives it; moving a
/// finished `Command` into the result was a third of a short command's
/// parse time (a `memcpy` call of its full size, in perf).
#[derive(Clone, Copy)]
struct Done(usize);

impl Done {
    #[inline]
    #[allow(clippy::unnecessary_wraps)] // The shape every arm returns.
    fn ok(self, value: Command<'_>) -> Parsed<'_> {
        Ok(Status::Complete {
            value,
            consumed: self.0,
        })
    }

    #[inline]
    fn err<'a>(self, error: CommandError) -> Parsed<'a> {
        Err(Invalid::line(error, self.0))
    }
}

/// Folds the ASCII letters of four octets to lower case, for verb matching.
#[inline]
fn verb_key(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) | 0x2020_2020
}

const fn key(v: [u8; 4]) -> u32 {
    u32::from_le_bytes(v)
}

/// `command = verb [SP arguments]`: one framed line without its CRLF. Verbs are
/// case-insensitive (RFC 5321 section 2.4).
#[inline]
pub fn parse_command_line<'a>(
    line: &'a [u8],
    opts: &ParserOptions,
) -> Result<Command<'a>, CommandError> {
    match command_line(line, opts, grammar::is_ascii(line), Done(line.len())) {
        Ok(Status::Complete { value, .. }) => Ok(value),
        // `command_line` never waits for more input.
        Ok(Status::Incomplete) => Err(CommandError::UnknownCommand),
        Err(e) => Err(e.error),
    }
}

/// The arguments as text: without a check when the framer found the line
/// ASCII, with UTF-8 validation otherwise.
#[inline]
fn as_text<'a>(rest: &'a [u8], ascii: bool, verb: &'static str) -> Result<&'a str, CommandError> {
    super::text_of(rest, ascii).map_err(|_| CommandError::NotUtf8 { verb })
}

/// [`parse_command`] of a framed line whose ASCII-ness is known.
#[inline]
fn command_line<'a>(line: &'a [u8], opts: &ParserOptions, ascii: bool, done: Done) -> Parsed<'a> {
    if line.len() < 4 {
        return done.err(CommandError::UnknownCommand);
    }
    let rest = &line[4..];
    const HELO: u32 = key(*b"helo");
    const EHLO: u32 = key(*b"ehlo");
    const LHLO: u32 = key(*b"lhlo");
    const MAIL: u32 = key(*b"mail");
    const RCPT: u32 = key(*b"rcpt");
    const DATA: u32 = key(*b"data");
    const BDAT: u32 = key(*b"bdat");
    const RSET: u32 = key(*b"rset");
    const NOOP: u32 = key(*b"noop");
    const QUIT: u32 = key(*b"quit");
    const VRFY: u32 = key(*b"vrfy");
    const EXPN: u32 = key(*b"expn");
    const HELP: u32 = key(*b"help");
    const STAR: u32 = key(*b"star");
    const AUTH: u32 = key(*b"auth");
    // UTF-8 is checked once per line, for the commands whose arguments may
    // carry it (RFC 6531); the rest of the grammar then slices the `str`.
    let text = |verb: &'static str| as_text(rest, ascii, verb);
    // Each arm ends in `done`, so the command is built in the result.
    macro_rules! finish {
        ($r:expr, $make:expr) => {
            match $r {
                Ok(v) => done.ok($make(v)),
                Err(e) => done.err(e),
            }
        };
    }
    macro_rules! bare {
        ($verb:literal, $cmd:expr) => {
            match no_args(rest, $verb) {
                Ok(()) => done.ok($cmd),
                Err(e) => done.err(e),
            }
        };
    }
    match verb_key(line) {
        MAIL => match text("MAIL") {
            Ok(t) => mail(t, opts, done),
            Err(e) => done.err(e),
        },
        RCPT => match text("RCPT") {
            Ok(t) => rcpt(t, opts, done),
            Err(e) => done.err(e),
        },
        DATA => bare!("DATA", Command::Data),
        EHLO => finish!(
            text("EHLO").and_then(|t| helo(t, opts, "EHLO")),
            Command::Ehlo
        ),
        HELO => finish!(
            text("HELO").and_then(|t| helo(t, opts, "HELO")),
            Command::Helo
        ),
        LHLO => finish!(
            text("LHLO").and_then(|t| helo(t, opts, "LHLO")),
            Command::Lhlo
        ),
        BDAT => finish!(bdat(rest), |c| c),
        RSET => bare!("RSET", Command::Rset),
        QUIT => bare!("QUIT", Command::Quit),
        NOOP => finish!(
            text("NOOP").and_then(|t| optional_text(t, "NOOP")),
            Command::Noop
        ),
        HELP => finish!(
            text("HELP").and_then(|t| optional_text(t, "HELP")),
            Command::Help
        ),
        VRFY => finish!(
            text("VRFY").and_then(|t| required_text(t, "VRFY")),
            Command::Vrfy
        ),
        EXPN => finish!(
            text("EXPN").and_then(|t| required_text(t, "EXPN")),
            Command::Expn
        ),
        AUTH => finish!(text("AUTH").and_then(auth), |c| c),
        STAR if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case(b"TTLS") => {
            match no_args(&rest[4..], "STARTTLS") {
                Ok(()) => done.ok(Command::StartTls),
                Err(e) => done.err(e),
            }
        }
        _ => done.err(CommandError::UnknownCommand),
    }
}

/// The end of a command that takes no arguments. Returns nothing so the caller
/// builds the command in place.
fn no_args(rest: &[u8], verb: &'static str) -> Result<(), CommandError> {
    if rest.is_empty() {
        Ok(())
    } else if rest[0] == b' ' || rest[0] == b'\t' {
        Err(CommandError::Syntax {
            verb,
            what: "takes no arguments",
        })
    } else {
        Err(CommandError::UnknownCommand)
    }
}

/// `SP String` where the argument is optional (NOOP, HELP). A lone trailing
/// space counts as no argument.
fn optional_text<'a>(rest: &'a str, verb: &'static str) -> Result<Option<Text<'a>>, CommandError> {
    match rest {
        "" | " " => Ok(None),
        _ => match rest.strip_prefix(' ') {
            Some(arg) => text(arg, verb).map(Some),
            None => Err(CommandError::UnknownCommand),
        },
    }
}

fn required_text<'a>(rest: &'a str, verb: &'static str) -> Result<Text<'a>, CommandError> {
    match rest {
        "" | " " => Err(CommandError::Syntax {
            verb,
            what: "argument required",
        }),
        _ => match rest.strip_prefix(' ') {
            Some(arg) => text(arg, verb),
            None => Err(CommandError::UnknownCommand),
        },
    }
}

fn text<'a>(arg: &'a str, verb: &'static str) -> Result<Text<'a>, CommandError> {
    if !arg.bytes().all(grammar::is_text) {
        return Err(CommandError::Syntax {
            verb,
            what: "control character in argument",
        });
    }
    Ok(Text::unvalidated(arg))
}

/// `"HELO" SP Domain` / `"EHLO" SP ( Domain / address-literal )` (section 4.1.1.1).
/// HELO also takes an address literal, as clients without a name send one.
fn helo<'a>(
    rest: &'a str,
    opts: &ParserOptions,
    verb: &'static str,
) -> Result<HeloName<'a>, CommandError> {
    let arg = match rest.strip_prefix(' ') {
        Some(arg) if !arg.is_empty() => arg,
        _ if rest.is_empty() || rest == " " => {
            return Err(CommandError::Syntax {
                verb,
                what: "domain or address literal required",
            });
        }
        _ => return Err(CommandError::UnknownCommand),
    };
    let ctx = PathCtx {
        verb,
        limits: &opts.limits,
    };
    let standard = if arg.starts_with('[') {
        path::address_literal(arg)
            .filter(|(_, n)| *n == arg.len())
            .map(|(l, _)| HeloName::Literal(l))
    } else {
        match path::domain(arg, ctx) {
            Ok((d, n)) if n == arg.len() => Some(HeloName::Domain(d)),
            Err(e @ CommandError::DomainTooLong { .. }) => return Err(e),
            _ => None,
        }
    };
    if let Some(name) = standard {
        return Ok(name);
    }
    if opts.allow_nonstandard_helo && arg.bytes().all(|b| b > 32 && b != 127) {
        return Ok(HeloName::Nonstandard(NonstandardHelo::unvalidated(arg)));
    }
    Err(CommandError::Syntax {
        verb,
        what: "not a domain or address literal",
    })
}

/// Matches `prefix` (ASCII, case-insensitive) and the optional space some
/// clients put after the colon; returns the rest.
fn after_prefix<'a>(rest: &'a str, prefix: &str, opts: &ParserOptions) -> Option<&'a str> {
    let head = rest.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = &rest[prefix.len()..];
    Some(match rest.strip_prefix(' ') {
        Some(tail) if opts.allow_space_after_colon => tail,
        _ => rest,
    })
}

/// `"MAIL FROM:" Reverse-path [SP Mail-parameters]` (section 4.1.1.2).
///
/// Builds `parse_command`'s result itself, as `rcpt` does: folded into the
/// shared `finish!` arm, the parts went through a closure and came back as
/// a `memcpy` call (12% of command-MAIL in perf).
fn mail<'a>(rest: &'a str, opts: &ParserOptions, done: Done) -> Parsed<'a> {
    match mail_parts(rest, opts) {
        Ok((from, params)) => done.ok(Command::Mail { from, params }),
        Err(e) => done.err(e),
    }
}

#[inline]
fn mail_parts<'a>(
    rest: &'a str,
    opts: &ParserOptions,
) -> Result<(ReversePath<'a>, MailParameters<'a>), CommandError> {
    const VERB: &str = "MAIL";
    let Some(rest) = after_prefix(rest, " FROM:", opts) else {
        return Err(syntax(VERB, "expected FROM:"));
    };
    let ctx = PathCtx {
        verb: VERB,
        limits: &opts.limits,
    };
    let (from, used) = match path::path(rest, ctx)? {
        (PathKind::Null, n) => (ReversePath::Null, n),
        (PathKind::Mailbox(m), n) => (ReversePath::Mailbox(m), n),
        (PathKind::Postmaster, _) => return Err(syntax(VERB, "<Postmaster> needs a domain")),
    };
    let mut params = MailParameters::default();
    for_each_param(&rest[used..], VERB, |keyword, value| {
        mail_param(&mut params, keyword, value)
    })?;
    Ok((from, params))
}

/// `"RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" / Forward-path )
/// [SP Rcpt-parameters]` (section 4.1.1.3).
fn rcpt<'a>(rest: &'a str, opts: &ParserOptions, done: Done) -> Parsed<'a> {
    match rcpt_parts(rest, opts) {
        Ok((to, params)) => done.ok(Command::Rcpt { to, params }),
        Err(e) => done.err(e),
    }
}

#[inline]
fn rcpt_parts<'a>(
    rest: &'a str,
    opts: &ParserOptions,
) -> Result<(ForwardPath<'a>, RcptParameters<'a>), CommandError> {
    const VERB: &str = "RCPT";
    let Some(rest) = after_prefix(rest, " TO:", opts) else {
        return Err(syntax(VERB, "expected TO:"));
    };
    let ctx = PathCtx {
        verb: VERB,
        limits: &opts.limits,
    };
    let (to, used) = match path::path(rest, ctx)? {
        (PathKind::Null, _) => return Err(syntax(VERB, "<> is not a recipient")),
        (PathKind::Postmaster, n) => (ForwardPath::Postmaster, n),
        (PathKind::Mailbox(m), n) => (ForwardPath::Mailbox(m), n),
    };
    // Each parameter in a local of its own, the struct built once at the
    // end: filled in place, its three-octet NOTIFY was written in parts and
    // read back whole when the command was moved out, a store-forwarding
    // stall that took a tenth of the RCPT-1 benchmark in perf.
    let mut notify = None;
    let mut orcpt = None;
    let mut other = OtherParameters::default();
    for_each_param(&rest[used..], VERB, |keyword, value| {
        rcpt_param(&mut notify, &mut orcpt, &mut other, keyword, value)
    })?;
    Ok((
        to,
        RcptParameters {
            notify,
            orcpt,
            other,
        },
    ))
}

fn syntax(verb: &'static str, what: &'static str) -> CommandError {
    CommandError::Syntax { verb, what }
}

/// `*(SP esmtp-param)`, `esmtp-param = esmtp-keyword ["=" esmtp-value]`.
fn for_each_param<'a>(
    mut rest: &'a str,
    verb: &'static str,
    mut each: impl FnMut(&'a str, Option<&'a str>) -> Result<(), CommandError>,
) -> Result<(), CommandError> {
    let bad = || syntax(verb, "bad parameter");
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| syntax(verb, "expected SP before parameter"))?;
        let k = grammar::scan_keyword(rest.as_bytes());
        if k == 0 {
            return Err(syntax(verb, "bad parameter keyword"));
        }
        let (keyword, tail) = rest.split_at_checked(k).ok_or_else(bad)?;
        rest = tail;
        let value = if let Some(tail) = rest.strip_prefix('=') {
            let v = grammar::span_esmtp_value(tail.as_bytes());
            if v == 0 {
                return Err(syntax(verb, "empty parameter value"));
            }
            let (value, tail) = tail.split_at_checked(v).ok_or_else(bad)?;
            rest = tail;
            Some(value)
        } else {
            None
        };
        each(keyword, value)?;
    }
    Ok(())
}

fn set<T>(slot: &mut Option<T>, v: T, keyword: &'static str) -> Result<(), CommandError> {
    if slot.is_some() {
        return Err(CommandError::DuplicateParameter { keyword });
    }
    *slot = Some(v);
    Ok(())
}

fn flag(slot: &mut bool, value: Option<&str>, keyword: &'static str) -> Result<(), CommandError> {
    if value.is_some() {
        return Err(CommandError::UnexpectedParameterValue { keyword });
    }
    if *slot {
        return Err(CommandError::DuplicateParameter { keyword });
    }
    *slot = true;
    Ok(())
}

fn needs<'a>(value: Option<&'a str>, keyword: &'static str) -> Result<&'a str, CommandError> {
    value.ok_or(CommandError::BadParameterValue { keyword })
}

fn xtext<'a>(value: &'a str, keyword: &'static str) -> Result<XText<'a>, CommandError> {
    if grammar::scan_xtext(value.as_bytes()) == value.len() {
        Ok(XText::unvalidated(value))
    } else {
        Err(CommandError::BadParameterValue { keyword })
    }
}

/// An xtext value whose decoded octets are text: no CR, LF, NUL or other
/// control, which a later hop would otherwise write into a header or a
/// delivery report as a line break. `printable` also refuses everything
/// outside US-ASCII, as ENVID requires (RFC 3461 section 4.4).
fn xtext_text<'a>(
    value: &'a str,
    keyword: &'static str,
    max_len: usize,
    printable: bool,
) -> Result<XText<'a>, CommandError> {
    let x = xtext(value, keyword)?;
    // Without `+XX` the value is its own decoding, and every xchar is
    // printable: only non-ASCII needs a look.
    let plain = !value.as_bytes().contains(&b'+');
    let ok = value.len() <= max_len
        && if plain {
            !printable || value.is_ascii()
        } else {
            x.decode().iter().all(|&b| {
                if printable {
                    (0x20..0x7f).contains(&b)
                } else {
                    b >= 0x20 && b != 0x7f
                }
            })
        };
    if ok {
        Ok(x)
    } else {
        Err(CommandError::BadParameterValue { keyword })
    }
}

/// RFC 3461 section 4.4: an ENVID is at most 100 characters.
const MAX_ENVID: usize = 100;
/// RFC 3461 section 4.2: an ORCPT value is at most 500 characters.
const MAX_ORCPT: usize = 500;
/// RFC 4954 section 5: `AUTH=` carries a mailbox, which fits a path.
const MAX_AUTH_PARAM: usize = 512;

/// One `Mail-parameters` entry: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030),
/// SMTPUTF8 (RFC 6531), AUTH (RFC 4954), RET and ENVID (RFC 3461), REQUIRETLS
/// (RFC 8689), MT-PRIORITY (RFC 6710); anything else is kept raw.
fn mail_param<'a>(
    p: &mut MailParameters<'a>,
    keyword: &'a str,
    value: Option<&'a str>,
) -> Result<(), CommandError> {
    let is = |k: &str| keyword.eq_ignore_ascii_case(k);
    if is("SIZE") {
        let v = needs(value, "SIZE")?;
        let n = grammar::parse_u64(v.as_bytes())
            .ok_or(CommandError::BadParameterValue { keyword: "SIZE" })?;
        set(&mut p.size, n, "SIZE")
    } else if is("BODY") {
        let v = needs(value, "BODY")?;
        let body = if v.eq_ignore_ascii_case("8BITMIME") {
            BodyType::EightBitMime
        } else if v.eq_ignore_ascii_case("7BIT") {
            BodyType::SevenBit
        } else if v.eq_ignore_ascii_case("BINARYMIME") {
            BodyType::BinaryMime
        } else {
            return Err(CommandError::UnsupportedParameterValue { keyword: "BODY" });
        };
        set(&mut p.body, body, "BODY")
    } else if is("SMTPUTF8") {
        flag(&mut p.smtputf8, value, "SMTPUTF8")
    } else if is("AUTH") {
        let v = needs(value, "AUTH")?;
        let auth = if v == "<>" {
            AuthParam::Unknown
        } else {
            AuthParam::Identity(xtext_text(v, "AUTH", MAX_AUTH_PARAM, false)?)
        };
        set(&mut p.auth, auth, "AUTH")
    } else if is("RET") {
        let v = needs(value, "RET")?;
        let ret = if v.eq_ignore_ascii_case("FULL") {
            Ret::Full
        } else if v.eq_ignore_ascii_case("HDRS") {
            Ret::Hdrs
        } else {
            // RFC 3461 section 4.3 defines only these two: anything else is a
            // syntax error (501), not an unimplemented parameter (504).
            return Err(CommandError::BadParameterValue { keyword: "RET" });
        };
        set(&mut p.ret, ret, "RET")
    } else if is("ENVID") {
        let v = xtext_text(needs(value, "ENVID")?, "ENVID", MAX_ENVID, true)?;
        set(&mut p.envid, v, "ENVID")
    } else if is("REQUIRETLS") {
        flag(&mut p.requiretls, value, "REQUIRETLS")
    } else if is("MT-PRIORITY") {
        let v =
            mt_priority(needs(value, "MT-PRIORITY")?).ok_or(CommandError::BadParameterValue {
                keyword: "MT-PRIORITY",
            })?;
        set(&mut p.mt_priority, v, "MT-PRIORITY")
    } else {
        p.other.push(Parameter::unvalidated(keyword, value));
        Ok(())
    }
}

/// One `Rcpt-parameters` entry: NOTIFY and ORCPT (RFC 3461); anything else is
/// kept raw.
fn rcpt_param<'a>(
    notify_slot: &mut Option<Notify>,
    orcpt_slot: &mut Option<Orcpt<'a>>,
    other: &mut OtherParameters<'a>,
    keyword: &'a str,
    value: Option<&'a str>,
) -> Result<(), CommandError> {
    if keyword.eq_ignore_ascii_case("NOTIFY") {
        let v = notify(needs(value, "NOTIFY")?)
            .ok_or(CommandError::BadParameterValue { keyword: "NOTIFY" })?;
        set(notify_slot, v, "NOTIFY")
    } else if keyword.eq_ignore_ascii_case("ORCPT") {
        let v = orcpt(needs(value, "ORCPT")?)
            .ok_or(CommandError::BadParameterValue { keyword: "ORCPT" })?;
        set(orcpt_slot, v, "ORCPT")
    } else {
        other.push(Parameter::unvalidated(keyword, value));
        Ok(())
    }
}

/// `notify-esmtp-value = "NEVER" / 1#notify-list-element`,
/// `notify-list-element = "SUCCESS" / "FAILURE" / "DELAY"` (RFC 3461 section 4.1).
fn notify(v: &str) -> Option<Notify> {
    if v.eq_ignore_ascii_case("NEVER") {
        return Some(Notify::NEVER);
    }
    let mut n = Notify::NEVER;
    for item in v.as_bytes().split(|&b| b == b',') {
        let slot = if item.eq_ignore_ascii_case(b"SUCCESS") {
            &mut n.success
        } else if item.eq_ignore_ascii_case(b"FAILURE") {
            &mut n.failure
        } else if item.eq_ignore_ascii_case(b"DELAY") {
            &mut n.delay
        } else {
            return None;
        };
        *slot = true;
    }
    Some(n)
}

/// `orcpt-value = addr-type ";" xtext` (RFC 3461 section 4.2).
fn orcpt(v: &str) -> Option<Orcpt<'_>> {
    let semicolon = v.bytes().position(|b| b == b';')?;
    let (addr_type, address) = (v.get(..semicolon)?, v.get(semicolon + 1..)?);
    let type_ok =
        !addr_type.is_empty() && addr_type.bytes().all(|b| b < 0x80 && grammar::is_atext(b));
    (!address.is_empty() && v.len() <= MAX_ORCPT)
        .then(|| xtext_text(address, "ORCPT", MAX_ORCPT, false).ok())??;
    type_ok.then(|| Orcpt::unvalidated(v, semicolon))
}

/// `priority-value = [ "+" / "-" ] 1DIGIT` (RFC 6710 section 7), -9 to 9.
fn mt_priority(v: &str) -> Option<MtPriority> {
    let parsed: nom::IResult<&str, (Option<&str>, char)> = (
        opt(alt((tag("+"), tag("-")))),
        nom::character::complete::satisfy(|c: char| c.is_ascii_digit()),
    )
        .parse(v);
    let (rest, (sign, digit)) = parsed.ok()?;
    if !rest.is_empty() {
        return None;
    }
    let magnitude = i8::try_from(digit.to_digit(10)?).ok()?;
    MtPriority::try_from(if sign == Some("-") {
        -magnitude
    } else {
        magnitude
    })
    .ok()
}

/// `bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ]`, `chunk-size = 1*DIGIT`,
/// `end-marker = "LAST"` (RFC 3030 section 2).
fn bdat(rest: &[u8]) -> Result<Command<'static>, CommandError> {
    type Args<'a> = (&'a [u8], Option<&'a [u8]>);
    let parsed: nom::IResult<&[u8], Args<'_>> = all_consuming((
        preceded(tag(&b" "[..]), digit1),
        opt(preceded(tag(&b" "[..]), tag_no_case(&b"LAST"[..]))),
    ))
    .parse(rest);
    match parsed {
        Ok((_, (digits, last))) => {
            let size = grammar::parse_u64(digits).ok_or(CommandError::BadParameterValue {
                keyword: "chunk-size",
            })?;
            Ok(Command::Bdat {
                size,
                last: last.is_some(),
            })
        }
        Err(_) if rest.first().is_some_and(|&b| b != b' ') => Err(CommandError::UnknownCommand),
        Err(_) => Err(syntax("BDAT", "expected chunk size and optional LAST")),
    }
}

/// `"AUTH" SP sasl-mech [SP initial-response]`, `initial-response = base64 / "="`
/// (RFC 4954 section 4).
fn auth(rest: &str) -> Result<Command<'_>, CommandError> {
    let fail = || syntax("AUTH", "expected mechanism and optional initial response");
    let rest = match rest.strip_prefix(' ') {
        Some(r) => r,
        None if rest.is_empty() => return Err(fail()),
        None => return Err(CommandError::UnknownCommand),
    };
    let m = grammar::span(rest.as_bytes(), |b| {
        grammar::is_alnum(b) || b == b'-' || b == b'_'
    });
    if m == 0 || m > 20 {
        return Err(fail());
    }
    let (mechanism, tail) = rest.split_at_checked(m).ok_or_else(fail)?;
    let mechanism = Mechanism::unvalidated(mechanism);
    let initial_response = match tail {
        "" => None,
        " =" => Some(InitialResponse::Empty),
        _ => {
            let s = tail.strip_prefix(' ').ok_or_else(fail)?;
            crate::types::command_validate_base64(s).map_err(|_| fail())?;
            Some(InitialResponse::Base64(Secret::new(Cow::Borrowed(s))))
        }
    };
    Ok(Command::Auth {
        mechanism,
        initial_response,
    })
}

/// One client line during an AUTH exchange: `"*"` cancels, anything else is a
/// base64 response, possibly empty (RFC 4954 section 4). The line limit is
/// [`Limits::sasl_line`](crate::Limits::sasl_line).
pub fn parse_sasl_line<'a>(
    input: &'a [u8],
    opts: &ParserOptions,
) -> Result<Status<SaslResponse<'a>>, Invalid<CommandError>> {
    let (line, consumed) = match frame_line(input, opts.limits.sasl_line, opts.allow_bare_lf) {
        Ok(Status::Complete { value, consumed }) => (value.content, consumed),
        Ok(Status::Incomplete) => return Ok(Status::Incomplete),
        Err(e) => return Err(e.map(CommandError::Line)),
    };
    let bad = || Invalid::line(syntax("AUTH", "response is not base64"), consumed);
    let value = match line {
        b"*" => SaslResponse::Cancel,
        b"" => SaslResponse::Data(Secret::new(Cow::Borrowed(""))),
        _ => {
            let s = grammar::utf8(line).ok_or_else(bad)?;
            crate::types::command_validate_base64(s).map_err(|_| bad())?;
            SaslResponse::Data(Secret::new(Cow::Borrowed(s)))
        }
    };
    Ok(Status::Complete { value, consumed })
}
