//! The DATA body codec: dot-stuffing removal with end-of-data detection on the
//! receiving side (RFC 5321 section 4.5.2), and dot-stuffing on the sending side.
//!
//! Only CRLF `.` CRLF ends a body. LF `.` LF, CR `.` CR, LF `.` CRLF and every
//! other mix are data: a server that ended DATA on any of them, while the next
//! hop did not, would let a sender smuggle a second message (CVE-2023-51766).

use crate::types::Reply;

/// Options of the body decoder. Strict by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BodyOptions {
    /// Largest decoded body in octets, typically the advertised SIZE (RFC 1870).
    /// Past it the decoder stops passing data on and reports
    /// [`BodyViolation::TooLarge`] at the end. Default: no limit.
    pub max_size: Option<u64>,
    /// Longest line in octets including CRLF: 1000 by RFC 5321 section 4.5.3.1.6.
    /// One octet more is accepted so that a line starting with a transparency dot
    /// is never refused. `None` turns the check off, as BINARYMIME needs (with
    /// BDAT, which does not use this decoder) and some senders of long HTML lines
    /// do.
    pub max_line: Option<usize>,
    /// Pass bare CR and bare LF through as data instead of reporting
    /// [`BodyViolation::BareLineEnding`]. They still never end the body or start a
    /// line for dot-stuffing. Needed only for old senders that write bare LF
    /// (some Unix scripts); default off because downstream systems that treat LF
    /// as a line end read such a body differently.
    pub allow_bare_line_endings: bool,
}

impl Default for BodyOptions {
    fn default() -> Self {
        BodyOptions {
            max_size: None,
            max_line: Some(crate::Limits::DEFAULT.text_line),
            allow_bare_line_endings: false,
        }
    }
}

/// Why a body that reached its end must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyViolation {
    /// A CR not followed by LF, or an LF not preceded by CR.
    #[error("bare CR or LF at body offset {offset}")]
    BareLineEnding {
        /// Offset in the encoded body (after the DATA line) where it was seen.
        offset: u64,
    },
    /// A line longer than [`BodyOptions::max_line`].
    #[error("line longer than {max} octets at body offset {offset}")]
    LineTooLong {
        /// Where the over-long line ended.
        offset: u64,
        /// The limit.
        max: usize,
    },
    /// The decoded body is larger than [`BodyOptions::max_size`].
    #[error("message larger than {max} octets")]
    TooLarge {
        /// The limit.
        max: u64,
    },
}

impl BodyViolation {
    /// The reply to the end of data.
    pub fn reply(&self) -> Reply<'static> {
        match self {
            BodyViolation::BareLineEnding { .. } => Reply::BODY_BARE_LINE_ENDING,
            BodyViolation::LineTooLong { .. } => Reply::BODY_LINE_TOO_LONG,
            BodyViolation::TooLarge { .. } => Reply::MESSAGE_TOO_BIG,
        }
    }
}

/// The end of a body, returned by [`DotDecoder::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataEnd {
    /// Octets of the last input that belong to the body, terminator included. The
    /// rest is the next command, pipelined after the body.
    pub consumed: usize,
    /// Decoded size of the whole body.
    pub size: u64,
    /// Why the body must be refused, if it must.
    pub violation: Option<BodyViolation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a line; the previous octet was neither CR nor the end of a CRLF.
    Text,
    /// The previous octet was a CR (already passed on).
    Cr,
    /// At the start of a line: after CRLF, or at the start of the body.
    LineStart,
    /// A `.` at the start of a line, held back.
    Dot,
    /// `.` CR at the start of a line, both held back.
    DotCr,
    /// The terminator was seen.
    Done,
}

/// Streaming decoder of a DATA body: removes the transparency dots and finds
/// CRLF `.` CRLF across any chunk boundaries.
///
/// Feed it everything received after the `354` reply. Decoded data goes to a sink
/// as borrowed slices of the input, so nothing is copied unless the sink copies.
/// The fast path classifies 64 octets at a time with bit masks and takes a slow
/// step only at a dot that starts a line or at a chunk boundary.
///
/// ```
/// use postel_proto::framing::DotDecoder;
/// let mut dec = DotDecoder::new(Default::default());
/// let mut body = Vec::new();
/// assert!(dec.decode(b"Subject: hi\r\n\r\n..dot\r\n.", &mut |d| body.extend_from_slice(d)).is_none());
/// let end = dec.decode(b"\r\nQUIT\r\n", &mut |d| body.extend_from_slice(d)).unwrap();
/// assert_eq!(body, b"Subject: hi\r\n\r\n.dot\r\n");
/// assert_eq!((end.consumed, end.violation), (2, None));
/// ```
#[derive(Debug, Clone)]
pub struct DotDecoder {
    opts: BodyOptions,
    state: State,
    /// Octets of the body passed on (decoded size).
    size: u64,
    /// Encoded octets seen before the current input.
    offset: u64,
    /// Octets of the current line seen so far.
    line_len: usize,
    /// The earliest bare line ending or over-long line.
    violation: Option<BodyViolation>,
    /// Set once the body passed `max_size`; reported in preference to `violation`.
    too_large: bool,
}

impl DotDecoder {
    /// A decoder at the start of a body.
    pub fn new(opts: BodyOptions) -> Self {
        DotDecoder {
            opts,
            state: State::LineStart,
            size: 0,
            offset: 0,
            line_len: 0,
            violation: None,
            too_large: false,
        }
    }

    /// Decoded octets so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first violation seen so far, if any: a server may stop storing the
    /// body at once, but must read on to the terminator before replying.
    pub fn violation(&self) -> Option<BodyViolation> {
        match self.opts.max_size {
            Some(max) if self.too_large => Some(BodyViolation::TooLarge { max }),
            _ => self.violation,
        }
    }

    /// Keeps the violation at the lowest offset, so the outcome does not depend
    /// on how the input was split.
    fn record(&mut self, v: BodyViolation) {
        let offset = |v: &BodyViolation| match *v {
            BodyViolation::BareLineEnding { offset }
            | BodyViolation::LineTooLong { offset, .. } => offset,
            BodyViolation::TooLarge { .. } => 0,
        };
        if self
            .violation
            .as_ref()
            .is_none_or(|old| offset(&v) < offset(old))
        {
            self.violation = Some(v);
        }
    }

    /// Decodes `input`, passing body data to `sink`. Returns `None` when all of
    /// `input` was body and more is needed, or the end with how much of `input`
    /// it used. After a violation the sink is no longer called, but the
    /// terminator is still looked for, so the session stays in step. Calling
    /// again after the end returns the same end with nothing consumed.
    pub fn decode(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Option<DataEnd> {
        if self.state == State::Done {
            return Some(self.end(0));
        }
        let fast_lines = self.opts.max_line.is_none_or(|m| m >= 64);
        let mut run = 0; // start of data not yet passed to the sink
        let mut i = 0;
        while i < input.len() {
            if fast_lines
                && matches!(self.state, State::Text | State::LineStart)
                && input.len() - i >= 66
                && let Some(block) = input[i..].first_chunk::<64>()
            {
                if let Some(end) = self.block(block, i, input, &mut run, sink) {
                    self.offset += end as u64;
                    self.state = State::Done;
                    return Some(self.end(end));
                }
                i += 64;
                continue;
            }
            let b = input[i];
            match self.state {
                State::Text => {
                    self.line_len += 1;
                    match b {
                        b'\r' => self.state = State::Cr,
                        b'\n' => {
                            self.bare(i);
                            self.line_end(i);
                        }
                        _ => {}
                    }
                    i += 1;
                }
                State::Cr => {
                    if b == b'\n' {
                        self.line_len += 1;
                        self.line_end(i);
                        self.state = State::LineStart;
                        i += 1;
                    } else {
                        // The CR may have ended the previous input.
                        self.bare_at((self.offset + i as u64).saturating_sub(1));
                        self.state = State::Text;
                    }
                }
                State::LineStart => {
                    if b == b'.' {
                        self.flush(&input[run..i], sink);
                        self.state = State::Dot;
                        i += 1;
                        run = i;
                        self.line_len += 1;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Dot => {
                    if b == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                        run = i;
                        self.line_len += 1;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::DotCr => {
                    if b == b'\n' {
                        self.offset += (i + 1) as u64;
                        self.state = State::Done;
                        return Some(self.end(i + 1));
                    }
                    // `.` CR then no LF: the dot was stuffing, the CR is bare data.
                    self.flush(b"\r", sink);
                    self.bare_at((self.offset + i as u64).saturating_sub(1));
                    self.state = State::Text;
                }
                State::Done => break,
            }
        }
        self.flush(&input[run..], sink);
        self.offset += input.len() as u64;
        None
    }

    /// Classifies one 64-octet block starting at `at` in state `Text` or `LineStart`.
    /// At least two octets follow the block in `input`. Returns the end of the
    /// terminator if the block holds one.
    fn block(
        &mut self,
        block: &[u8; 64],
        at: usize,
        input: &[u8],
        run: &mut usize,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Option<usize> {
        let (lf, cr, dot) = masks(block);
        let crlf = lf & (cr << 1);
        let line_start = (crlf << 1) | u64::from(self.state == State::LineStart);
        let dots = dot & line_start;
        let mut end = None;
        let mut events = dots;
        while events != 0 {
            let p = events.trailing_zeros() as usize;
            events &= events - 1;
            let abs = at + p;
            self.flush(&input[*run..abs], sink);
            *run = abs + 1;
            if input[abs + 1] == b'\r' && input[abs + 2] == b'\n' {
                end = Some(p);
                break;
            }
        }
        // Octets after the terminator belong to the next command, not the body.
        let body = end.map_or(u64::MAX, |p| (1u64 << p) - 1);
        if !self.opts.allow_bare_line_endings {
            // A CR in the last position is judged by the next step, in state Cr.
            let bare = ((lf & !(cr << 1)) | (cr & !(lf >> 1) & !(1 << 63))) & body;
            if bare != 0 {
                self.bare(at + bare.trailing_zeros() as usize);
            }
        }
        if let Some(p) = end {
            self.lines(lf & body, p, at);
            return Some(at + p + 3);
        }
        self.lines(lf, 64, at);
        self.state = if block[63] == b'\r' {
            State::Cr
        } else if crlf >> 63 == 1 {
            State::LineStart
        } else {
            State::Text
        };
        None
    }

    /// Line-length accounting for the first `n` octets of a block with LF mask `lf`.
    fn lines(&mut self, lf: u64, n: usize, at: usize) {
        let Some(max) = self.opts.max_line else {
            return;
        };
        if lf == 0 {
            self.line_len += n;
            return;
        }
        let first = lf.trailing_zeros() as usize;
        self.line_len += first + 1;
        self.line_end(at + first);
        let last = 63 - lf.leading_zeros() as usize;
        self.line_len = n - last - 1;
        debug_assert!(max >= 64);
    }

    /// A line ended at input position `i` (the LF): check its length.
    fn line_end(&mut self, i: usize) {
        if let Some(max) = self.opts.max_line
            && self.line_len > max + 1
        {
            self.record(BodyViolation::LineTooLong {
                offset: self.offset + i as u64,
                max,
            });
        }
        self.line_len = 0;
    }

    /// A bare CR or LF at input position `i`.
    fn bare(&mut self, i: usize) {
        self.bare_at(self.offset + i as u64);
    }

    /// A bare CR or LF at body offset `offset`.
    fn bare_at(&mut self, offset: u64) {
        if !self.opts.allow_bare_line_endings {
            self.record(BodyViolation::BareLineEnding { offset });
        }
    }

    fn flush(&mut self, data: &[u8], sink: &mut dyn FnMut(&[u8])) {
        if data.is_empty() {
            return;
        }
        self.size += data.len() as u64;
        if self.opts.max_size.is_some_and(|max| self.size > max) {
            self.too_large = true;
        }
        if self.violation.is_none() && !self.too_large {
            sink(data);
        }
    }

    fn end(&self, consumed: usize) -> DataEnd {
        DataEnd {
            consumed,
            size: self.size,
            violation: self.violation(),
        }
    }
}

/// Bit masks of LF, CR and `.` in a block: bit `j` stands for octet `j`. Written
/// as a plain loop over a fixed-size array so the compiler turns it into vector
/// compares and mask extraction without `unsafe`.
#[inline]
fn masks(block: &[u8; 64]) -> (u64, u64, u64) {
    let (mut lf, mut cr, mut dot) = (0u64, 0u64, 0u64);
    for (j, &b) in block.iter().enumerate() {
        lf |= u64::from(b == b'\n') << j;
        cr |= u64::from(b == b'\r') << j;
        dot |= u64::from(b == b'.') << j;
    }
    (lf, cr, dot)
}

/// Streaming dot-stuffer for the sending side: doubles each `.` that starts a
/// line, turns any bare CR or LF into CRLF (so the output can never be read two
/// ways), and [`DotEncoder::finish`] ends the body with CRLF `.` CRLF.
///
/// ```
/// use postel_proto::framing::DotEncoder;
/// let mut out = Vec::new();
/// let mut enc = DotEncoder::new();
/// enc.encode(b".hidden\nline", &mut out);
/// enc.finish(&mut out);
/// assert_eq!(out, b"..hidden\r\nline\r\n.\r\n");
/// ```
#[derive(Debug, Clone)]
pub struct DotEncoder {
    line_start: bool,
    after_cr: bool,
}

impl Default for DotEncoder {
    fn default() -> Self {
        DotEncoder::new()
    }
}

impl DotEncoder {
    /// An encoder at the start of a body.
    pub fn new() -> Self {
        DotEncoder {
            line_start: true,
            after_cr: false,
        }
    }

    /// Appends the stuffed form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 3);
        let mut run = 0;
        for (i, &b) in input.iter().enumerate() {
            match b {
                b'\n' => {
                    out.extend_from_slice(&input[run..i]);
                    if !self.after_cr {
                        out.push(b'\r');
                    }
                    out.push(b'\n');
                    run = i + 1;
                    self.after_cr = false;
                    self.line_start = true;
                    continue;
                }
                _ if self.after_cr => {
                    // The CR before this octet was bare: complete it.
                    out.extend_from_slice(&input[run..i]);
                    out.push(b'\n');
                    run = i;
                    self.after_cr = false;
                    self.line_start = true;
                }
                _ => {}
            }
            if b == b'\r' {
                self.after_cr = true;
                self.line_start = false;
                continue;
            }
            if self.line_start && b == b'.' {
                out.extend_from_slice(&input[run..i]);
                out.push(b'.');
                run = i;
            }
            self.line_start = false;
        }
        out.extend_from_slice(&input[run..]);
    }

    /// Ends the body: completes a pending CR or an unterminated last line, then
    /// appends `.` CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.after_cr {
            out.push(b'\n');
        } else if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = DotEncoder::new();
    }
}

/// Dot-stuffs a whole message and appends the terminator.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut enc = DotEncoder::new();
    enc.encode(message, &mut out);
    enc.finish(&mut out);
    out
}
