//! Framing of the server's replies on the client side: where the next whole
//! reply ends, found with each octet looked at once however the replies are
//! split into reads, and the caps that keep a hostile server from making the
//! client buffer without bound.

use postel_proto::LineError;

use super::ClientError;

/// Finds the end of the next whole reply in the input. After a reply is
/// consumed, call [`ReplyFramer::reset`].
#[derive(Debug, Default, Clone)]
pub(super) struct ReplyFramer {
    /// Octets already looked at for a line end.
    scanned: usize,
    /// Where the line being read starts.
    line_start: usize,
    /// Whole lines of the reply so far.
    lines: usize,
}

/// How much one reply may hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReplyCaps {
    pub(super) octets: usize,
    pub(super) lines: usize,
    pub(super) line: usize,
}

impl ReplyFramer {
    /// `Ok(Some(end))` when `input[..end]` is one whole reply (its last line
    /// has no `-` after the code), `Ok(None)` when more input is needed.
    pub(super) fn next(
        &mut self,
        input: &[u8],
        caps: ReplyCaps,
    ) -> Result<Option<usize>, ClientError> {
        while let Some(p) = memchr::memchr(b'\n', &input[self.scanned..]) {
            let lf = self.scanned + p;
            let line = &input[self.line_start..=lf];
            self.scanned = lf + 1;
            self.line_start = lf + 1;
            self.lines += 1;
            if line.len() > caps.line {
                return Err(ClientError::Protocol(
                    LineError::TooLong { max: caps.line }.into(),
                ));
            }
            if self.scanned > caps.octets || (self.lines > caps.lines && line.get(3) == Some(&b'-'))
            {
                return Err(ClientError::ReplyTooLong {
                    octets: caps.octets,
                    lines: caps.lines,
                });
            }
            // The last line: `250 text`, a code alone, or a malformed line
            // that the reply parser will name.
            if line.get(3) != Some(&b'-') {
                return Ok(Some(self.scanned));
            }
        }
        self.scanned = input.len();
        if input.len() - self.line_start > caps.line {
            return Err(ClientError::Protocol(
                LineError::TooLong { max: caps.line }.into(),
            ));
        }
        if input.len() > caps.octets {
            return Err(ClientError::ReplyTooLong {
                octets: caps.octets,
                lines: caps.lines,
            });
        }
        Ok(None)
    }

    /// The reply found was consumed from the front of the input.
    pub(super) fn reset(&mut self) {
        *self = ReplyFramer::default();
    }
}
