//! The DATA body decoder: dot-stuffing removal with end-of-data detection on
//! the receiving side (RFC 5321 section 4.5.2). The sending side is in
//! `encode`.
//!
//! Only CRLF `.` CRLF ends a body. LF `.` LF, CR `.` CR, LF `.` CRLF and every
//! other mix are data: a server that ended DATA on any of them, while the next
//! hop did not, would let a sender smuggle a second message (CVE-2023-51766).

use super::blocks::{BLOCK, CHUNK, CHUNKS, Detail, Dots, detail, plain};
#[cfg(target_arch = "x86_64")]
use super::blocks::{detail_avx2, plain_avx2};
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
    /// A line longer than [`BodyOptions::max_line`]. Reported as soon as the
    /// line crosses the limit, not when it ends, so a line that never ends
    /// stops reaching the sink at once.
    #[error("line longer than {max} octets at body offset {offset}")]
    LineTooLong {
        /// The first octet of the line past the limit.
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
    /// The header section has more `Received` fields than a server allows: a
    /// mail loop (RFC 5321 section 6.3). Found by a
    /// [`TraceScanner`](super::TraceScanner), never by the decoder.
    #[error("{received} Received fields, more than {max}: a mail loop")]
    TooManyHops {
        /// `Received` fields counted.
        received: usize,
        /// The limit.
        max: usize,
    },
}

impl BodyViolation {
    /// The reply to the end of data.
    pub fn reply(&self) -> Reply<'static> {
        match self {
            BodyViolation::BareLineEnding { .. } => Reply::BODY_BARE_LINE_ENDING,
            BodyViolation::LineTooLong { .. } => Reply::BODY_LINE_TOO_LONG,
            BodyViolation::TooLarge { .. } => Reply::MESSAGE_TOO_BIG,
            BodyViolation::TooManyHops { .. } => Reply::TOO_MANY_HOPS,
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
/// The fast path checks 256 octets at a time for bare line endings with
/// vectorizable compares, then finds the lines that start with a dot with a
/// SIMD substring search; it steps octet by octet only through a block with a
/// bare CR or LF, and at the edges of the input.
///
/// ```
/// use postel_proto::framing::DotDecoder;
/// let mut dec = DotDecoder::new(Default::default());
/// let mut body = Vec::new();
/// assert!(dec.decode(b"Subject: hi\r\n\r\n..dot\r\n.", &mut |d| body.extend_from_slice(d)).is_none());
/// let end = dec.decode(b"\r\nQUIT\r\n", &mut |d| body.extend_from_slice(d));
/// assert_eq!(body, b"Subject: hi\r\n\r\n.dot\r\n");
/// assert_eq!(end.map(|e| (e.consumed, e.violation)), Some((2, None)));
/// ```
#[derive(Debug, Clone)]
pub struct DotDecoder {
    opts: BodyOptions,
    state: State,
    /// Octets of the body passed on (decoded size).
    size: u64,
    /// Encoded octets seen before the current input.
    offset: u64,
    /// Octets of the current line seen so far: exact, or an upper bound on the
    /// fast path (see `line_len_exact`).
    line_len: usize,
    line_len_exact: bool,
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
            line_len_exact: true,
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
            BodyViolation::TooLarge { .. } | BodyViolation::TooManyHops { .. } => 0,
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
        self.run(input, sink)
    }

    /// [`DotDecoder::decode`] that appends the body to `out` instead of
    /// handing slices to a sink. The decoder copies each block of plain text
    /// while it checks it, so the octets are read once: use it when the body
    /// is to be copied anyway (into a buffer that is then written out).
    ///
    /// ```
    /// use postel_proto::framing::DotDecoder;
    /// let mut dec = DotDecoder::new(Default::default());
    /// let mut body = Vec::new();
    /// let end = dec.decode_into(b"Hi\r\n..dot\r\n.\r\nQUIT\r\n", &mut body);
    /// assert_eq!(body, b"Hi\r\n.dot\r\n");
    /// assert_eq!(end.map(|e| e.consumed), Some(14));
    /// ```
    pub fn decode_into(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<DataEnd> {
        out.reserve(input.len());
        self.run(input, out)
    }

    fn run<T: Take + ?Sized>(&mut self, input: &[u8], sink: &mut T) -> Option<DataEnd> {
        if self.state == State::Done {
            return Some(self.end(0));
        }
        let mut run = 0; // start of data not yet passed to the sink
        let mut i = 0;
        while i < input.len() {
            if matches!(self.state, State::Text | State::LineStart)
                && i >= 1
                && input.len() - i >= BLOCK + 2
            {
                match self.span(input, i, &mut run, sink) {
                    Ok(next) if next > i => {
                        i = next;
                        continue;
                    }
                    Ok(_) => {
                        // A bare CR or LF in the next block: step through it.
                        self.exact_line_len(input, i);
                        match self.steps(input, i, i + BLOCK, &mut run, sink) {
                            Ok(next) => i = next,
                            Err(end) => return Some(self.finish(end)),
                        }
                        continue;
                    }
                    Err(end) => return Some(self.finish(end)),
                }
            }
            self.exact_line_len(input, i);
            if matches!(self.state, State::Text | State::LineStart) && input.len() - i < BLOCK + 2 {
                let next = self.lines(input, i, &mut run, sink);
                if next > i {
                    i = next;
                    continue;
                }
            }
            // Up to where the fast path could take over again.
            let stop = if matches!(self.state, State::Text | State::LineStart) && i == 0 {
                1
            } else {
                input.len().min(i + BLOCK)
            };
            match self.steps(input, i, stop, &mut run, sink) {
                Ok(next) => i = next,
                Err(end) => return Some(self.finish(end)),
            }
        }
        self.exact_line_len(input, input.len());
        self.flush(&input[run..], sink);
        self.offset += input.len() as u64;
        None
    }

    /// The fast path from `i` (state `Text` or `LineStart`, at least one octet
    /// before it and `BLOCK + 2` after it): checks whole blocks for bare line
    /// endings, up to `SPAN` octets, and removes the dots of the lines they
    /// start, found on the same masks. Every LF in a checked block has its CR,
    /// so LF `.` CRLF there is the terminator. `Ok` is where it stopped (`i`
    /// itself if the first block is not clean); `Err` is the end of the
    /// terminator.
    fn span<T: Take + ?Sized>(
        &mut self,
        input: &[u8],
        i: usize,
        run: &mut usize,
        sink: &mut T,
    ) -> Result<usize, usize> {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: `span_avx2` only requires AVX2, which the CPU has. One
            // of the crate's unsafe blocks (with the loads of
            // `blocks::plain_avx2` and `blocks::detail_avx2` and the command
            // parser's ASCII conversion): the scan is the bulk of decoding
            // time, and with 32-octet vectors it runs about twice as fast as
            // with the SSE2 baseline (see the data-4MiB benchmarks).
            #[allow(unsafe_code)]
            return unsafe { self.span_avx2(input, i, run, sink) };
        }
        self.span_with(input, i, run, sink, plain, detail)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn span_avx2<T: Take + ?Sized>(
        &mut self,
        input: &[u8],
        i: usize,
        run: &mut usize,
        sink: &mut T,
    ) -> Result<usize, usize> {
        self.span_with(
            input,
            i,
            run,
            sink,
            |w| plain_avx2(w),
            |w, d| detail_avx2(w, d),
        )
    }

    /// [`DotDecoder::span`] with `plain` taking a quick look at each block
    /// and `detail` a close one at those that are not plain.
    #[allow(clippy::inline_always)] // Inlined into the SIMD wrappers.
    #[inline(always)]
    fn span_with<T: Take + ?Sized>(
        &mut self,
        input: &[u8],
        i: usize,
        run: &mut usize,
        sink: &mut T,
        plain: impl Fn(&[u8; BLOCK + 1]) -> bool,
        detail: impl Fn(&[u8; BLOCK + 1], &mut Dots) -> Option<Detail>,
    ) -> Result<usize, usize> {
        // A dot at `i` starts a line only if the octet before ended one.
        let line_start = self.state == State::LineStart;
        let mut j = i;
        let mut quick = true;
        let mut dots: Dots = [0; CHUNKS];
        while j - i < SPAN
            && input.len() - j >= BLOCK + 2
            && let Some(window) = input[j - 1..].first_chunk::<{ BLOCK + 1 }>()
        {
            // A body with dotted lines tends to have them in every block:
            // after a block that was not plain, the quick look is skipped
            // until one is again.
            if quick && plain(window) {
                // The plain blocks that follow, up to a run that stays in
                // the first-level cache, are checked before anything else
                // is done with them.
                let mut end = j + BLOCK;
                while end - j < RUN
                    && end - i < SPAN
                    && input.len() - end >= BLOCK + 2
                    && let Some(next) = input[end - 1..].first_chunk::<{ BLOCK + 1 }>()
                    && plain(next)
                {
                    end += BLOCK;
                }
                self.plain_blocks(input, j, end);
                if T::EAGER {
                    self.flush(&input[*run..end], sink);
                    *run = end;
                }
                j = end;
                continue;
            }
            let Some(Detail { dotted, lf }) = detail(window, &mut dots) else {
                break;
            };
            if j == i && !line_start {
                dots[0] &= !1;
            }
            self.clean_block(input, j, lf);
            quick = !dotted;
            if !quick {
                for (k, &d) in dots.iter().enumerate() {
                    let mut m = d;
                    while m != 0 {
                        let dot = j + k * CHUNK + m.trailing_zeros() as usize;
                        m &= m - 1;
                        self.flush(&input[*run..dot], sink);
                        if input[dot + 1] == b'\r' && input[dot + 2] == b'\n' {
                            return Err(dot + 3);
                        }
                        *run = dot + 1;
                    }
                }
            } else if T::EAGER {
                self.flush(&input[*run..j + BLOCK], sink);
                *run = j + BLOCK;
            }
            j += BLOCK;
        }
        if j == i {
            return Ok(i);
        }
        self.state = match input[j - 1] {
            b'\r' => State::Cr,
            b'\n' => State::LineStart,
            _ => State::Text,
        };
        // Hand data on while it is still in cache.
        if j - *run >= FLUSH_EVERY {
            self.flush(&input[*run..j], sink);
            *run = j;
        }
        Ok(j)
    }

    fn finish(&mut self, end: usize) -> DataEnd {
        self.offset += end as u64;
        // Whole blocks are measured for line length, so a long line after the
        // terminator may have been seen; it belongs to the next command.
        if let Some(BodyViolation::LineTooLong { offset, .. }) = self.violation
            && offset >= self.offset
        {
            self.violation = None;
        }
        self.state = State::Done;
        self.end(end)
    }

    /// [`DotDecoder::plain_block`] for the blocks of `input[from..to]`.
    #[allow(clippy::inline_always)] // Part of the SIMD-compiled loop.
    #[inline(always)]
    fn plain_blocks(&mut self, input: &[u8], from: usize, to: usize) {
        if self.line_len.saturating_add(to - from) <= self.max_line_len() {
            self.line_len += to - from;
            self.line_len_exact = false;
            return;
        }
        for at in (from..to).step_by(BLOCK) {
            self.plain_block(input, at);
        }
    }

    /// Line-length accounting for a plain block at `input[at..at + BLOCK]`,
    /// not told whether it holds an LF: the bound of the current line's
    /// length grows by the block while that stays within the limit, and is
    /// made exact when it would not (a look back to the last LF, a line's
    /// length away).
    #[allow(clippy::inline_always)] // Part of the SIMD-compiled loop.
    #[inline(always)]
    fn plain_block(&mut self, input: &[u8], at: usize) {
        if self.line_len.saturating_add(BLOCK) > self.max_line_len() {
            self.exact_line_len(input, at);
            if self.line_len + BLOCK > self.max_line_len() {
                let has_lf = memchr::memchr(b'\n', &input[at..at + BLOCK]).is_some();
                self.clean_block(input, at, has_lf);
                return;
            }
        }
        self.line_len += BLOCK;
        self.line_len_exact = false;
    }

    /// Line-length accounting for a clean block at `input[at..at + BLOCK]`. The
    /// fast path keeps only an upper bound of the current line's length; it is
    /// made exact when a line might be over the limit, or when the octet-wise
    /// steps take over.
    #[allow(clippy::inline_always)] // Part of the AVX2-compiled loop.
    #[inline(always)]
    fn clean_block(&mut self, input: &[u8], at: usize, has_lf: bool) {
        if !has_lf {
            self.line_len += BLOCK;
            if self.line_len > self.max_line_len() {
                self.past_limit(input, at + BLOCK);
            }
            return;
        }
        if self.line_len + BLOCK > self.max_line_len() {
            // A line ending in this block may be too long: measure each.
            self.exact_line_len(input, at);
            for (k, &b) in input[at..at + BLOCK].iter().enumerate() {
                self.line_len += 1;
                if b == b'\n' {
                    self.line_end(at + k);
                }
            }
            self.past_limit(input, at + BLOCK);
        } else {
            // Fewer than BLOCK octets follow the block's last LF.
            self.line_len = BLOCK;
            self.line_len_exact = false;
        }
    }

    /// The limit a line may reach before it is a violation.
    fn max_line_len(&self) -> usize {
        self.opts
            .max_line
            .map_or(usize::MAX, |m| m.saturating_add(1))
    }

    /// Replaces the upper bound of the current line's length by the exact value,
    /// counting back from `at` to the last LF, which lies within the bound.
    fn exact_line_len(&mut self, input: &[u8], at: usize) {
        if self.line_len_exact {
            return;
        }
        let from = at.saturating_sub(self.line_len);
        self.line_len =
            memchr::memrchr(b'\n', &input[from..at]).map_or(self.line_len, |p| at - from - p - 1);
        self.line_len_exact = true;
    }

    /// Whole lines from `i` (state `Text` or `LineStart`, the line length
    /// exact), one search for each line's end: the path for input shorter
    /// than a block, such as a body that arrives a line at a time. Stops
    /// where the steps must look: at a bare CR or LF, at a line that starts
    /// with `.` CR (perhaps the terminator), and at the end of the input
    /// inside a line. Returns where it stopped.
    fn lines<T: Take + ?Sized>(
        &mut self,
        input: &[u8],
        mut i: usize,
        run: &mut usize,
        sink: &mut T,
    ) -> usize {
        while i < input.len() {
            if self.state == State::LineStart && input[i] == b'.' {
                if matches!(input.get(i + 1), None | Some(b'\r')) {
                    break;
                }
                // A dotted line: the dot goes, the line goes on.
                self.flush(&input[*run..i], sink);
                i += 1;
                *run = i;
                self.line_len = 1;
                self.state = State::Text;
            }
            let Some(p) = memchr::memchr2(b'\r', b'\n', &input[i..]) else {
                break;
            };
            let cr = i + p;
            if input[cr] != b'\r' || input.get(cr + 1) != Some(&b'\n') {
                break;
            }
            self.line_len += p + 2;
            self.line_end(cr + 1);
            self.state = State::LineStart;
            i = cr + 2;
        }
        i
    }

    /// The byte-at-a-time state machine over `input[i..stop]` (it may go a few
    /// octets past `stop` to leave a state that looks back). `Ok` is where it
    /// stopped; `Err` is the end of the terminator.
    fn steps<T: Take + ?Sized>(
        &mut self,
        input: &[u8],
        mut i: usize,
        stop: usize,
        run: &mut usize,
        sink: &mut T,
    ) -> Result<usize, usize> {
        let stop = stop.min(input.len());
        while i < stop {
            let b = input[i];
            match self.state {
                State::Text => {
                    // Plain text up to the next CR or LF needs no state change.
                    let Some(p) = memchr::memchr2(b'\r', b'\n', &input[i..stop]) else {
                        self.line_len += stop - i;
                        i = stop;
                        self.past_limit(input, i);
                        continue;
                    };
                    i += p;
                    self.line_len += p + 1;
                    if input[i] == b'\r' {
                        self.state = State::Cr;
                    } else {
                        self.bare(i);
                        self.line_end(i);
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
                        self.flush(&input[*run..i], sink);
                        self.state = State::Dot;
                        i += 1;
                        *run = i;
                        self.line_len += 1;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Dot => {
                    if b == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                        *run = i;
                        self.line_len += 1;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::DotCr => {
                    if b == b'\n' {
                        return Err(i + 1);
                    }
                    // `.` CR then no LF: the dot was stuffing, the CR is bare data.
                    self.flush(b"\r", sink);
                    self.bare_at((self.offset + i as u64).saturating_sub(1));
                    self.state = State::Text;
                }
                State::Done => return Err(i),
            }
        }
        Ok(i)
    }

    /// A line ended at input position `i` (the LF), its length exact: check it.
    fn line_end(&mut self, i: usize) {
        self.line_limit(i + 1);
        self.line_len = 0;
    }

    /// The line continues past input position `at` and may have crossed the
    /// limit there: records where it did, so that the sink stops at once
    /// instead of taking an endless line until the terminator.
    fn past_limit(&mut self, input: &[u8], at: usize) {
        if self.line_len > self.max_line_len() {
            self.exact_line_len(input, at);
            self.line_limit(at);
        }
    }

    /// Records a violation at the line's first octet past the limit when the
    /// line, `line_len` octets (exact) up to input position `at`, is too long.
    /// Where the line crossed is fixed by the body, whatever the chunking.
    fn line_limit(&mut self, at: usize) {
        if let Some(max) = self.opts.max_line
            && self.line_len > max + 1
        {
            let past = (self.line_len - (max + 1)) as u64;
            self.record(BodyViolation::LineTooLong {
                offset: (self.offset + at as u64).saturating_sub(past),
                max,
            });
        }
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

    fn flush<T: Take + ?Sized>(&mut self, data: &[u8], sink: &mut T) {
        if data.is_empty() {
            return;
        }
        self.size += data.len() as u64;
        if self.opts.max_size.is_some_and(|max| self.size > max) {
            self.too_large = true;
        }
        if self.violation.is_none() && !self.too_large {
            sink.take(data);
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

/// Where decoded octets go: a caller's sink, or a vector.
trait Take {
    /// Whether the fast path hands on each run of checked blocks at once (a
    /// copy, cheapest while the run is in cache) rather than long runs (a
    /// call, cheapest when rare).
    const EAGER: bool;

    fn take(&mut self, data: &[u8]);
}

impl Take for dyn FnMut(&[u8]) + '_ {
    const EAGER: bool = false;

    fn take(&mut self, data: &[u8]) {
        self(data);
    }
}

impl Take for Vec<u8> {
    const EAGER: bool = true;

    fn take(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

/// Octets decoded between two hand-overs to the sink on the fast path.
const FLUSH_EVERY: usize = 32 * 1024;

/// Octets checked before their dots are looked for.
const SPAN: usize = 32 * BLOCK;

/// Most octets of plain blocks checked before they are handed on.
const RUN: usize = 16 * BLOCK;

#[cfg(test)]
mod tests {
    use super::*;

    /// A dotted line at each line start of long bodies whose line lengths
    /// put line starts at every offset of a chunk and of a block: the fast
    /// path gives what the octet-wise steps give.
    #[test]
    fn dots_at_every_offset_decode_like_the_steps() {
        for line in 5..14usize {
            let lines = 3 * BLOCK / (line + 2);
            for dotted in 0..lines {
                let mut body = Vec::new();
                for n in 0..lines {
                    if n == dotted {
                        body.push(b'.');
                    }
                    body.extend(std::iter::repeat_n(b'x', line));
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(b".\r\nQUIT\r\n");
                let mut fast = Vec::new();
                let end = DotDecoder::new(BodyOptions::default()).decode_into(&body, &mut fast);
                let mut slow = Vec::new();
                let mut dec = DotDecoder::new(BodyOptions::default());
                let mut slow_end = None;
                for (n, octet) in body.chunks(1).enumerate() {
                    if let Some(e) = dec.decode(octet, &mut |d| slow.extend_from_slice(d)) {
                        slow_end = Some(DataEnd {
                            consumed: n + e.consumed,
                            ..e
                        });
                        break;
                    }
                }
                assert_eq!(end, slow_end, "{line} {dotted}");
                assert_eq!(fast, slow, "{line} {dotted}");
                assert_eq!(fast.len() + 1 + 9, body.len(), "{line} {dotted}");
            }
        }
    }
}
