//! A buffer that turns a byte stream into commands, for callers that receive
//! data in arbitrary pieces.

use crate::codec::parse_command;
use crate::error::{CommandError, Invalid, Status};
use crate::framing::skip_line;
use crate::limits::ParserOptions;
use crate::types::Command;

/// Buffers received octets and yields commands that borrow from the buffer.
///
/// Only a partial line is ever kept, so the buffer stays within the command
/// line limit. After an over-long line the rest of it is dropped as it arrives.
///
/// ```
/// use postel_proto::{ParserOptions, framing::CommandReader, types::Command};
/// let mut r = CommandReader::new(ParserOptions::STRICT);
/// r.feed(b"NOOP\r\nQU");
/// assert_eq!(r.next_command(), Some(Ok(Command::Noop(None))));
/// assert_eq!(r.next_command(), None);
/// r.feed(b"IT\r\n");
/// assert_eq!(r.next_command(), Some(Ok(Command::Quit)));
/// ```
#[derive(Debug, Clone)]
pub struct CommandReader {
    opts: ParserOptions,
    buf: Vec<u8>,
    start: usize,
    /// Octets after `start` known to hold no CR or LF: a line that arrives
    /// in pieces is searched once, not again from its start for each piece.
    scanned: usize,
    /// Dropping the rest of an over-long line.
    discarding: bool,
}

impl CommandReader {
    /// An empty reader.
    pub fn new(opts: ParserOptions) -> Self {
        CommandReader {
            opts,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            discarding: false,
        }
    }

    /// Appends received octets.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete command, an error for a bad line (already dropped), or
    /// `None` when more input is needed.
    pub fn next_command(&mut self) -> Option<Result<Command<'_>, CommandError>> {
        if self.discarding {
            self.scanned = 0;
            let Some(n) = skip_line(&self.buf[self.start..]) else {
                self.start = self.buf.len();
                return None;
            };
            self.start += n;
            self.discarding = false;
        }
        let input = &self.buf[self.start..];
        // Without a CR or LF, and shorter than the limit, the line is
        // incomplete, as the parser would find.
        if input.len() < self.opts.limits.command_line
            && memchr::memchr2(b'\r', b'\n', &input[self.scanned..]).is_none()
        {
            self.scanned = input.len();
            return None;
        }
        self.scanned = 0;
        match parse_command(input, &self.opts) {
            Ok(Status::Complete { value, consumed }) => {
                self.start += consumed;
                Some(Ok(value))
            }
            Ok(Status::Incomplete) => None,
            Err(Invalid {
                error,
                consumed,
                line_finished,
            }) => {
                self.start += consumed;
                self.discarding = !line_finished;
                Some(Err(error))
            }
        }
    }

    /// Octets received but not yet parsed: after DATA or BDAT, the start of the
    /// body. Take them with [`CommandReader::take_buffered`].
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Removes and returns the unparsed octets.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.buf[self.start..].to_vec();
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        rest
    }
}
