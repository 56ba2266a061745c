//! The line framer: one CRLF-terminated line with a length limit.

use memchr::{memchr, memchr2};

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
    let window = &input[..input.len().min(max)];
    // One search finds the line end, or the first CR or LF out of place. Short
    // lines (DATA, QUIT, a code-only reply) end before a SIMD search pays off.
    const SHORT: usize = 16;
    let head = &window[..window.len().min(SHORT)];
    let found = match head.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(p) => Some(p),
        None if window.len() > SHORT => memchr2(b'\r', b'\n', &window[SHORT..]).map(|p| p + SHORT),
        None => None,
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
                value: Line {
                    content: &input[..end],
                },
                consumed: end + 2,
            }),
            Some(b'\n') => Err(Invalid::line(LineError::TooLong { max }, end + 2)),
            // The CR is the last octet so far: its LF may be on the way.
            None if end + 1 < max => Ok(Status::Incomplete),
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
        value: Line {
            content: &input[..end],
        },
        consumed,
    })
}

/// Octets up to and including the next LF, or `None` when there is none yet.
/// Used to drop the rest of a line that was too long.
pub fn skip_line(input: &[u8]) -> Option<usize> {
    memchr(b'\n', input).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

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
