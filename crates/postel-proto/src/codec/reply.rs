//! Replies (RFC 5321 section 4.2), with RFC 2034 enhanced status codes.

use std::borrow::Cow;

use crate::error::{Invalid, ReplyError, Status};
use crate::framing::frame_line;
use crate::grammar;
use crate::limits::ParserOptions;
use crate::types::{EnhancedStatus, Reply, ReplyCode};

/// One reply line split into its parts.
struct ReplyLine<'a> {
    code: ReplyCode,
    last: bool,
    /// Text after the separator; `None` for a code-only line such as `334`.
    text: Option<&'a [u8]>,
}

/// `Reply-line = *( Reply-code "-" [ textstring ] CRLF ) Reply-code [ SP textstring ] CRLF`
/// (RFC 5321 section 4.2). Parses a whole reply, single or multiline, at the start
/// of `input`. The code-only form (`334` CRLF) is accepted, as servers send it in
/// AUTH exchanges. Every line must carry the same code. When the first line's text
/// begins with an enhanced status code of the reply's class, it is taken out of
/// every line that repeats it.
///
/// ```
/// use postel_proto::{ParserOptions, codec::parse_reply};
/// let input = b"250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
/// let (reply, used) = parse_reply(input, &ParserOptions::STRICT)?.complete().unwrap();
/// assert_eq!((reply.code().get(), reply.lines().len(), used), (250, 3, input.len()));
/// # Ok::<(), postel_proto::Invalid<postel_proto::ReplyError>>(())
/// ```
pub fn parse_reply<'a>(
    input: &'a [u8],
    opts: &ParserOptions,
) -> Result<Status<Reply<'a>>, Invalid<ReplyError>> {
    let mut pos = 0;
    let mut first: Option<ReplyCode> = None;
    let mut enhanced: Option<EnhancedStatus> = None;
    let mut lines: Vec<Cow<'a, str>> = Vec::new();
    loop {
        let (content, used) =
            match frame_line(&input[pos..], opts.limits.reply_line, opts.allow_bare_lf) {
                Ok(Status::Complete { value, consumed }) => (value.content, consumed),
                Ok(Status::Incomplete) => return Ok(Status::Incomplete),
                Err(e) => {
                    let mut e = e.map(ReplyError::Line);
                    e.consumed += pos;
                    return Err(e);
                }
            };
        pos += used;
        let line = reply_line(content).map_err(|error| Invalid::line(error, pos))?;
        match first {
            None => {
                first = Some(line.code);
                if let Some(t) = line.text
                    && let Some((e, _)) = EnhancedStatus::parse_prefix(t)
                    && e.class() == line.code.class()
                {
                    enhanced = Some(e);
                }
            }
            Some(code) if code != line.code => {
                return Err(Invalid::line(
                    ReplyError::InconsistentCode {
                        first: code.get(),
                        later: line.code.get(),
                    },
                    pos,
                ));
            }
            Some(_) => {}
        }
        match line.text {
            Some(text) => lines.push(strip_enhanced(text, enhanced)),
            // A code-only line inside a multiline reply, or ending one, has empty text.
            None if !(line.last && lines.is_empty()) => lines.push(Cow::Borrowed("")),
            None => {}
        }
        if line.last {
            let code = first.unwrap_or(line.code);
            return Ok(Status::Complete {
                value: Reply::from_parts(code, enhanced, lines),
                consumed: pos,
            });
        }
    }
}

/// `Reply-code [ ( SP / "-" ) textstring ]` for one framed line.
fn reply_line(content: &[u8]) -> Result<ReplyLine<'_>, ReplyError> {
    let [a, b, c, rest @ ..] = content else {
        return Err(ReplyError::BadCode);
    };
    let code = ReplyCode::from_digits(*a, *b, *c).ok_or(ReplyError::BadCode)?;
    let (last, text) = match rest {
        [] => (true, None),
        [b' ', t @ ..] => (true, Some(t)),
        [b'-', t @ ..] => (false, Some(t)),
        _ => return Err(ReplyError::BadSeparator),
    };
    if let Some(t) = text
        && !t.iter().all(|&b| grammar::is_text(b))
    {
        return Err(ReplyError::BadText);
    }
    Ok(ReplyLine { code, last, text })
}

/// Removes `enhanced` and the space after it from the start of `text`, when the
/// line repeats it, and converts to text. Invalid UTF-8, which old servers send in
/// Latin-1 greetings, is replaced rather than refused: a client must still be able
/// to read the code.
fn strip_enhanced(text: &[u8], enhanced: Option<EnhancedStatus>) -> Cow<'_, str> {
    let text = match enhanced {
        Some(e) => match EnhancedStatus::parse_prefix(text) {
            Some((found, n)) if found == e => &text[(n + 1).min(text.len())..],
            _ => text,
        },
        None => text,
    };
    match String::from_utf8_lossy(text) {
        Cow::Borrowed(s) => Cow::Borrowed(s),
        Cow::Owned(s) => Cow::Owned(s.replace(char::REPLACEMENT_CHARACTER, "?")),
    }
}
