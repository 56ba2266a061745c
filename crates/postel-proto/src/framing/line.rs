//! The line framer: one CRLF-terminated line with a length limit.

use memchr::{memchr, memchr2};

use crate::grammar::{HI, is_ascii, octets_equal};

use crate::error::{Invalid, LineError, Status};

/// A framed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line without its line ending.
    pub content: &'a [u8],
}

/// Frames one line at the start of `input`.
///
/// `max` is the limit including the CRLF. With `allow_bare_lf` an LF alone also
/// ends a line; a CR anywhere but before the final LF is always refused.
///
/// ```
/// use postel_proto::{Status, framing::frame_line};
/// let s = frame_line(b"NOOP\r\nQUIT\r\n", 512, false)?;
/// let (line, used) = s.complete().ok_or("incomplete")?;
/// assert_eq!((line.content, used), (&b"NOOP"[..], 6));
/// assert!(frame_line(b"NOOP\nQUIT\r\n", 512, false).is_err());
/// assert_eq!(frame_line(b"NO", 512, false)?, Status::Incomplete);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[inline]
pub fn frame_line(
    input: &[u8],
    max: usize,
    allow_bare_lf: bool,
) -> Result<Status<Line<'_>>, Invalid<LineError>> {
    frame_line_ascii(input, max, allow_bare_lf).map(|s| match s {
        Status::Complete { value, consumed } => Status::Complete {
            value: value.0,
            consumed,
        },
        Status::Incomplete => Status::Incomplete,
    })
}

/// Octets of a line scanned word by word before a SIMD search pays off.
const SHORT: usize = 64;

/// The first CR or LF in `window[..SHORT]`, with whether every octet before
/// it is ASCII; `None` when there is none there (the ASCII flag then covers
/// the octets scanned). Eight octets at a time.
#[inline]
fn scan_short(window: &[u8]) -> (Option<usize>, bool) {
    let head = &window[..window.len().min(SHORT)];
    let mut high = 0u64;
    let mut words = head.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let ends = octets_equal(w, b'\r') | octets_equal(w, b'\n');
        if ends != 0 {
            let k = (ends.trailing_zeros() / 8) as usize;
            // The octets below the line end.
            let below = (1u64 << (k * 8)) - 1;
            return (Some(at + k), (high | (w & below)) & HI == 0);
        }
        high |= w;
        at += 8;
    }
    let mut ascii = high & HI == 0;
    for (k, &b) in words.remainder().iter().enumerate() {
        if b == b'\r' || b == b'\n' {
            return (Some(at + k), ascii);
        }
        ascii &= b < 0x80;
    }
    (None, ascii)
}

/// [`frame_line`], and whether the line is ASCII: the command parser then
/// needs no UTF-8 validation. One pass finds the line end and the high bits
/// for lines of up to 64 octets; longer ones take a SIMD search and an ASCII
/// check of the line.
#[inline]
pub(crate) fn frame_line_ascii(
    input: &[u8],
    max: usize,
    allow_bare_lf: bool,
) -> Result<Status<(Line<'_>, bool)>, Invalid<LineError>> {
    let window = &input[..input.len().min(max)];
    // Where the line ends, whether the octets checked so far are ASCII,
    // and how many were checked.
    let (found, ascii) = match scan_short(window) {
        (Some(p), ascii) => (Some(p), (ascii, p)),
        (None, head) if window.len() > SHORT => (
            memchr2(b'\r', b'\n', &window[SHORT..]).map(|p| p + SHORT),
            (head, SHORT),
        ),
        (None, head) => (None, (head, window.len())),
    };
    let Some(end) = found else {
        if input.len() < max {
            return Ok(Status::Incomplete);
        }
        return Err(match skip_line(&input[max..]) {
            Some(n) => Invalid::line(LineError::TooLong { max }, max + n),
            None => Invalid {
                error: LineError::TooLong { max },
                consumed: input.len(),
                line_finished: false,
            },
        });
    };
    if input[end] == b'\r' {
        return match input.get(end + 1) {
            Some(b'\n') if end + 2 <= max => Ok(Status::Complete {
                value: line(&input[..end], ascii),
                consumed: end + 2,
            }),
            Some(b'\n') => Err(Invalid::line(LineError::TooLong { max }, end + 2)),
            // The CR is the last octet so far: its LF may be on the way,
            // and tells a line too long (CRLF past the limit) from a bare
            // CR even when the CR is the limit's last octet.
            None => Ok(Status::Incomplete),
            _ => Err(match skip_line(&input[end..]) {
                Some(n) => Invalid::line(LineError::BareCr, end + n),
                None => Invalid {
                    error: LineError::BareCr,
                    consumed: input.len(),
                    line_finished: false,
                },
            }),
        };
    }
    // A bare LF.
    let consumed = end + 1;
    if !allow_bare_lf {
        return Err(Invalid::line(LineError::BareLf, consumed));
    }
    if end + 2 > max {
        // Counted as if it were CRLF, so the line fits the limit when written back.
        return Err(Invalid::line(LineError::TooLong { max }, consumed));
    }
    Ok(Status::Complete {
        value: line(&input[..end], ascii),
        consumed,
    })
}

/// A framed line and whether it is ASCII: `ascii` tells for its first
/// octets, the rest are checked here.
#[inline]
fn line(content: &[u8], ascii: (bool, usize)) -> (Line<'_>, bool) {
    let (head, checked) = ascii;
    let rest = content.get(checked..).unwrap_or_default();
    (Line { content }, head && is_ascii(rest))
}

/// Octets up to and including the next LF, or `None` when there is none yet.
/// Used to drop the rest of a line that was too long.
pub fn skip_line(input: &[u8]) -> Option<usize> {
    memchr(b'\n', input).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The flag that lets the command parser skip UTF-8 validation is
        /// exactly `is_ascii` of the framed line, on any input.
        #[test]
        fn the_ascii_flag_is_is_ascii(input in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::prelude::any::<u8>(),
                proptest::strategy::Just(b'\r'),
                proptest::strategy::Just(b'\n'),
                proptest::strategy::Just(b'a'),
            ],
            0..200,
        ), max in 1usize..160, lf: bool) {
            if let Ok(Status::Complete { value: (line, ascii), .. }) = frame_line_ascii(&input, max, lf) {
                proptest::prop_assert_eq!(ascii, line.content.is_ascii());
                let plain = frame_line(&input, max, lf);
                let same = matches!(plain, Ok(Status::Complete { value, .. }) if value == line);
                proptest::prop_assert!(same, "frame_line disagrees");
            }
        }
    }

    #[test]
    fn the_scan_finds_each_line_end_and_high_octet() {
        for len in 0..80usize {
            for end in [b'\r', b'\n'] {
                for high in [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))] {
                    let mut line = vec![b'a'; len];
                    if let Some(h) = high.filter(|&h| h < len) {
                        line[h] = 0xc3;
                    }
                    let mut input = line.clone();
                    input.push(end);
                    input.extend_from_slice(b"\n\xc3tail");
                    let (found, ascii) = scan_short(&input);
                    if len < SHORT {
                        assert_eq!(found, Some(len), "{len}");
                        assert_eq!(ascii, line.is_ascii(), "{len} {high:?}");
                    } else {
                        assert_eq!(found, None);
                    }
                }
            }
        }
    }

    fn err(input: &[u8], max: usize) -> Invalid<LineError> {
        frame_line(input, max, false).unwrap_err()
    }

    #[test]
    fn exact_limit_is_accepted_one_more_is_not() {
        let ok = [&[b'a'; 510][..], b"\r\n"].concat();
        assert!(matches!(
            frame_line(&ok, 512, false),
            Ok(Status::Complete { consumed: 512, .. })
        ));
        let long = [&[b'a'; 511][..], b"\r\nNOOP\r\n"].concat();
        let e = err(&long, 512);
        assert_eq!(e.error, LineError::TooLong { max: 512 });
        assert_eq!((e.consumed, e.line_finished), (513, true));
    }

    #[test]
    fn a_cr_that_is_the_limits_last_octet_waits_for_what_follows() {
        // 511 octets and a CR: the octet after it decides, so a line cut
        // there reads as the whole line does.
        let cut = [&[b'a'; 511][..], b"\r"].concat();
        assert_eq!(frame_line(&cut, 512, false), Ok(Status::Incomplete));
        let crlf = [&cut[..], b"\n"].concat();
        assert_eq!(err(&crlf, 512).error, LineError::TooLong { max: 512 });
        let bare = [&cut[..], b"x\n"].concat();
        assert_eq!(err(&bare, 512).error, LineError::BareCr);
    }

    #[test]
    fn too_long_without_end_asks_to_keep_dropping() {
        let e = err(&[b'a'; 600], 512);
        assert_eq!((e.consumed, e.line_finished), (600, false));
    }

    #[test]
    fn bare_endings() {
        assert_eq!(err(b"NOOP\n", 512).error, LineError::BareLf);
        assert_eq!(err(b"NO\rOP\r\n", 512).error, LineError::BareCr);
        assert_eq!(err(b"NOOP\r\r\n", 512).error, LineError::BareCr);
        let lenient = frame_line(b"NOOP\n", 512, true)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(lenient.0.content, b"NOOP");
        // A CR before the LF is still a CRLF when bare LF is allowed.
        let crlf = frame_line(b"NOOP\r\n", 512, true)
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(crlf.0.content, b"NOOP");
    }
}
