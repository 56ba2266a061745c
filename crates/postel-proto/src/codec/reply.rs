//! Replies (RFC 5321 section 4.2), with RFC 2034 enhanced status codes.

use std::borrow::Cow;

use crate::error::{Invalid, LineError, ReplyError, Status};
use crate::framing::line::frame_line_ascii;
use crate::grammar::{octets_below, octets_equal};
use crate::limits::ParserOptions;
use crate::types::{EnhancedStatus, Reply, ReplyCode, reply_lines::Lines};

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
/// let (reply, used) = parse_reply(input, &ParserOptions::STRICT)?.complete().ok_or("incomplete")?;
/// assert_eq!((reply.code().get(), reply.lines().len(), used), (250, 3, input.len()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_reply<'a>(
    input: &'a [u8],
    opts: &ParserOptions,
) -> Result<Status<Reply<'a>>, Invalid<ReplyError>> {
    // First pass: frame and check every line, noting where each text lies.
    // Text is turned into `str` afterwards, with one UTF-8 check for the reply.
    let mut pos = 0;
    let mut code: Option<ReplyCode> = None;
    let mut enhanced: Option<EnhancedStatus> = None;
    // Made on the second line: a single-line reply, the common case, never
    // pays for zeroing it (a third of a code-only reply's parse time in perf).
    let mut ranges: Option<TextRanges> = None;
    // Whether every line so far is ASCII, which the framer finds while it
    // looks for the line end: such text needs no UTF-8 check.
    let mut all_ascii = true;
    loop {
        let (content, ascii, used) =
            match frame_line_ascii(&input[pos..], opts.limits.reply_line, opts.allow_bare_lf) {
                Ok(Status::Complete { value, consumed }) => (value.0.content, value.1, consumed),
                Ok(Status::Incomplete) => return Ok(Status::Incomplete),
                Err(e) => {
                    let mut e = e.map(ReplyError::Line);
                    e.consumed += pos;
                    return Err(e);
                }
            };
        let start = pos;
        pos += used;
        all_ascii &= ascii;
        let line = reply_line(content).map_err(|error| Invalid::line(error, pos))?;
        match code {
            None => {
                code = Some(line.code);
                let mut skip = 0;
                if let Some(t) = line.text
                    && let Some((e, n)) = EnhancedStatus::parse_prefix(t)
                    && e.class() == line.code.class()
                {
                    enhanced = Some(e);
                    skip = (n + 1).min(t.len());
                }
                if line.last {
                    // A single-line reply, the common case: no bookkeeping.
                    let mut lines = Lines::empty();
                    if let Some(t) = line.text {
                        lines.push(line_text(&t[skip..], ascii));
                    }
                    return Ok(Status::Complete {
                        value: Reply::from_parts(line.code, enhanced, lines),
                        consumed: pos,
                    });
                }
            }
            Some(first) if first != line.code => {
                return Err(Invalid::line(
                    ReplyError::InconsistentCode {
                        first: first.get(),
                        later: line.code.get(),
                    },
                    pos,
                ));
            }
            Some(_) => {}
        }
        match line.text {
            Some(text) => {
                let skip = strip_enhanced(text, enhanced);
                // The writer puts the enhanced code on every line, as RFC 2034
                // asks; a line sent without it must fit the limit with it.
                if let Some(e) = enhanced
                    && skip == 0
                    && content.len() + e.written_len() + 1 + 2 > opts.limits.reply_line
                {
                    let max = opts.limits.reply_line;
                    return Err(Invalid::line(
                        ReplyError::Line(LineError::TooLong { max }),
                        pos,
                    ));
                }
                ranges
                    .get_or_insert_with(TextRanges::default)
                    .push((start + 4 + skip, start + content.len()));
            }
            // A code-only line inside a multiline reply, or ending one, has empty text.
            None if !(line.last && ranges.as_ref().is_none_or(TextRanges::is_empty)) => ranges
                .get_or_insert_with(TextRanges::default)
                .push((start, start)),
            None => {}
        }
        if line.last {
            break;
        }
    }
    let whole = if all_ascii {
        super::text_of(&input[..pos], true).ok()
    } else {
        std::str::from_utf8(&input[..pos]).ok()
    };
    // Extended from an iterator of known length: collecting through
    // `Option::iter().flat_map` grew the vector two or three times and built
    // each line on the stack first, a third of an EHLO reply's parse time.
    let mut lines: Vec<Cow<'a, str>> = Vec::new();
    if let Some(ranges) = &ranges {
        lines.extend(ranges.iter().map(|(from, to)| {
            let text = whole.and_then(|w| w.get(from..to));
            text.map_or_else(|| text_of(&input[from..to]), Cow::Borrowed)
        }));
    }
    let lines = Lines::Many(Cow::Owned(lines));
    // Set on the first line, which the loop always reads: without it, the
    // reply has no code to give.
    let Some(code) = code else {
        return Err(Invalid::line(ReplyError::BadCode, pos));
    };
    Ok(Status::Complete {
        value: Reply::from_parts(code, enhanced, lines),
        consumed: pos,
    })
}

/// Text positions of a multiline reply's lines: the first 16 on the stack, as
/// nearly every reply fits there; more only in a vector.
#[derive(Default)]
struct TextRanges {
    inline: [(u32, u32); 16],
    len: usize,
    more: Vec<(usize, usize)>,
}

impl TextRanges {
    fn push(&mut self, range: (usize, usize)) {
        match (u32::try_from(range.0), u32::try_from(range.1)) {
            (Ok(a), Ok(b)) if self.len < self.inline.len() && self.more.is_empty() => {
                self.inline[self.len] = (a, b);
                self.len += 1;
            }
            _ => self.more.push(range),
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && self.more.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.inline[..self.len]
            .iter()
            .map(|&(a, b)| (a as usize, b as usize))
            .chain(self.more.iter().copied())
    }
}

/// `textstring` excludes the controls but HT: one octet.
#[inline]
fn is_text_octet(b: u8) -> bool {
    !(b < 0x20 && b != b'\t') && b != 0x7f
}

/// Whether some octet of `w` is below 0x20 or is DEL: two exact
/// existence tests on the whole word.
#[inline]
fn may_hold_control(w: u64) -> bool {
    octets_below(w, 0x20) | octets_equal(w, 0x7f) != 0
}

/// `textstring` excludes the controls but HT. A short text eight octets at
/// a time: EHLO lines are short, and the vectorized octet loop spent most
/// of their check in its scalar tail. A word that may hold a control (an HT
/// does too) is looked at octet by octet.
pub(crate) fn is_textstring(t: &[u8]) -> bool {
    if t.len() >= 32 {
        // Long enough for the vectorized octet loop to win: a compare and
        // an OR per octet, no table and no early exit.
        return t.iter().fold(0u8, |bad, &b| {
            bad | (u8::from(b < 0x20) & u8::from(b != b'\t')) | u8::from(b == 0x7f)
        }) == 0;
    }
    let word_ok = |c: &[u8; 8]| {
        !may_hold_control(u64::from_le_bytes(*c)) || c.iter().all(|&b| is_text_octet(b))
    };
    let mut rest = t;
    while let Some((c, tail)) = rest.split_first_chunk::<8>() {
        if !word_ok(c) {
            return false;
        }
        rest = tail;
    }
    // The last few octets, as the word that ends the text when there is
    // one (it overlaps octets already checked, which pass again).
    match t.last_chunk::<8>() {
        Some(c) if !rest.is_empty() => word_ok(c),
        _ => rest.iter().all(|&b| is_text_octet(b)),
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
        && !is_textstring(t)
    {
        return Err(ReplyError::BadText);
    }
    Ok(ReplyLine { code, last, text })
}

/// How many octets of `text` to skip: `enhanced` and the space after it, when
/// the line repeats it.
fn strip_enhanced(text: &[u8], enhanced: Option<EnhancedStatus>) -> usize {
    match enhanced.and_then(|e| EnhancedStatus::parse_prefix(text).filter(|(f, _)| *f == e)) {
        Some((_, n)) => (n + 1).min(text.len()),
        None => 0,
    }
}

/// The text of a line the framer found ASCII or not.
#[inline]
fn line_text(text: &[u8], ascii: bool) -> Cow<'_, str> {
    match super::text_of(text, ascii) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => text_of(text),
    }
}

/// Invalid UTF-8, which old servers send in Latin-1 greetings, is replaced by
/// `?` rather than refused: a client must still be able to read the code, and
/// a one-octet replacement keeps the line within the limit it was read under.
/// Reply text as `str`, with `?` for each invalid UTF-8 sequence.
fn text_of(text: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(text) {
        return Cow::Borrowed(s);
    }
    match String::from_utf8_lossy(text) {
        Cow::Borrowed(s) => Cow::Borrowed(s),
        Cow::Owned(s) => Cow::Owned(s.replace(char::REPLACEMENT_CHARACTER, "?")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The word-wise check agrees with the octet-wise definition, on
        /// texts full of the octets at the edges of the rule.
        #[test]
        fn the_textstring_check_is_the_octet_rule(t in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just(b'\t'),
                proptest::strategy::Just(0x7f_u8),
                proptest::strategy::Just(0x1f_u8),
                proptest::strategy::Just(0x20_u8),
                proptest::strategy::Just(0x80_u8),
                proptest::strategy::Just(0xff_u8),
                0x21_u8..0x7f,
                proptest::prelude::any::<u8>(),
            ],
            0..80,
        )) {
            proptest::prop_assert_eq!(is_textstring(&t), t.iter().all(|&b| is_text_octet(b)));
        }
    }

    #[test]
    fn a_control_anywhere_in_a_word_or_the_tail_is_found() {
        for len in 0..40 {
            let clean = vec![b'a'; len];
            assert!(is_textstring(&clean), "{len}");
            for at in 0..len {
                for bad in [0u8, b'\r', b'\n', 0x1f, 0x7f] {
                    let mut t = clean.clone();
                    t[at] = bad;
                    assert!(!is_textstring(&t), "{bad:#x} at {at} of {len}");
                }
                let mut tab = clean.clone();
                tab[at] = b'\t';
                assert!(is_textstring(&tab), "HT at {at} of {len}");
            }
        }
    }
}
