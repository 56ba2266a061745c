//! The SMTP grammar: one parser function per ABNF rule, and the writers that
//! turn values back into octets.
//!
//! Parsers take a whole framed line (see [`crate::framing`]) or, at the top
//! level, the input buffer, and borrow from it. Hot rules scan bytes through the
//! tables in `grammar`; rare, structured rules (source routes, BDAT and AUTH
//! arguments, DSN values) are written with nom.

mod command;
mod ehlo;
mod path;
mod reply;
mod write;

pub use command::{parse_command, parse_command_line, parse_sasl_line};
pub use ehlo::{EhloReply, parse_capabilities, parse_ehlo_reply};
pub use reply::parse_reply;

pub(crate) use ehlo::KNOWN_KEYWORDS;

/// `octets` as text: without a check when `ascii` says every octet of the
/// line they come from is ASCII, with UTF-8 validation otherwise.
#[inline]
pub(crate) fn text_of(octets: &[u8], ascii: bool) -> Result<&str, std::str::Utf8Error> {
    if ascii {
        debug_assert!(octets.is_ascii());
        // SAFETY: `ascii` is true only when every octet of `octets` is
        // below 0x80 (the flag of `frame_line_ascii` for the framed line, or
        // for every line of a reply; `is_ascii` in `parse_command_line`), and
        // ASCII is valid UTF-8. The parsers' one unsafe block: UTF-8
        // validation was an eighth of a RCPT's parse time and a sixth of a
        // single-line reply's (perf on the command and reply benchmarks); a
        // proptest in `framing::line` checks that the framer's flag is
        // `is_ascii` on any input.
        #[allow(unsafe_code)]
        return Ok(unsafe { std::str::from_utf8_unchecked(octets) });
    }
    std::str::from_utf8(octets)
}
