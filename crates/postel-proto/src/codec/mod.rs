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
