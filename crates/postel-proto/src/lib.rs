//! # postel-proto
//!
//! The SMTP grammar for Rust: a zero-copy parser for commands and replies, the
//! writer for both, and the DATA and BDAT body codecs. No I/O, no clock, no
//! randomness: bytes in, values out, and values back to bytes.
//!
//! ```
//! use postel_proto::{ParserOptions, Status, codec::parse_command, types::{Command, Reply}};
//!
//! let input = b"MAIL FROM:<jane@example.org> SIZE=1024 BODY=8BITMIME\r\n";
//! match parse_command(input, &ParserOptions::STRICT) {
//!     Ok(Status::Complete { value: Command::Mail { from, params }, consumed }) => {
//!         assert_eq!(from.to_string(), "<jane@example.org>");
//!         assert_eq!(params.size, Some(1024));
//!         assert_eq!(consumed, input.len());
//!         assert_eq!(Reply::OK.to_bytes(), b"250 2.0.0 OK\r\n");
//!     }
//!     Ok(Status::Complete { value, .. }) => println!("another command: {}", value.verb()),
//!     Ok(Status::Incomplete) => { /* read more, call again */ }
//!     Err(bad) => {
//!         // Drop `bad.consumed` octets and send the matching reply.
//!         let _reply = bad.error.reply();
//!     }
//! }
//! ```
//!
//! ## Layout
//!
//! - [`types`]: validated values (`Domain`, `Mailbox`, `ReversePath`, `Reply`, ...),
//!   each built only through a checking constructor, borrowing where possible,
//!   with `into_owned` for storage.
//! - [`codec`]: one parser per ABNF rule, and the writers. `parse(write(x)) == x`.
//! - [`framing`]: lines, the DATA dot-decoder and dot-encoder, BDAT chunks, and a
//!   buffering [`framing::CommandReader`].
//!
//! Every parser answers [`Status::Complete`] (with the octets used),
//! [`Status::Incomplete`] (read more), or [`Invalid`] with an error that maps to
//! the reply a server should send ([`CommandError::reply`]).
//!
//! ## Standards
//!
//! | RFC | What | Where |
//! |-----|------|-------|
//! | 5321 | SMTP commands, paths, replies, limits (section 4.5.3.1), transparency (4.5.2) | everything |
//! | 6531 | SMTPUTF8: UTF-8 in local parts, domains, parameter values | `types`, `codec` |
//! | 1870 | SIZE parameter and EHLO keyword | `MailParameters::size`, `Capabilities::size` |
//! | 6152 | 8BITMIME, `BODY=8BITMIME` | `BodyType` |
//! | 3030 | CHUNKING (`BDAT`), BINARYMIME | `Command::Bdat`, `framing::BdatReader` |
//! | 3207 | STARTTLS | `Command::StartTls` |
//! | 4954 | AUTH command, initial response, `AUTH=` parameter, 12 288-octet SASL lines | `Command::Auth`, `codec::parse_sasl_line` |
//! | 3461 | DSN: `RET`, `ENVID`, `NOTIFY`, `ORCPT`, xtext | `types::XText`, `Notify`, `Orcpt` |
//! | 8689 | REQUIRETLS | `MailParameters::requiretls` |
//! | 6710 | MT-PRIORITY | `MtPriority` |
//! | 2034, 3463 | Enhanced status codes | `EnhancedStatus` |
//! | 2920 | PIPELINING: commands parsed one after another from one buffer | `Status::Complete::consumed` |
//!
//! ## Strict where it matters
//!
//! Only CRLF ends a line and only CRLF `.` CRLF ends a body; bare CR and LF are
//! refused unless an `allow_*` option is set (SMTP smuggling, CVE-2023-51766).
//! The leniencies a real client needs are named in [`ParserOptions`]:
//! a space after `FROM:`/`TO:` and nonstandard HELO names. Verbs, parameter
//! keywords, `<Postmaster>` and the `IPv6:` tag are case-insensitive, as the RFCs
//! say; mechanism names and parameter values like `8bitmime` also are, as
//! clients write them either way.
// Commented, benchmarked exceptions, each beside a safe fallback and a
// proptest: the AVX2 dispatch in framing::data, the AVX2 loads of
// framing::blocks (the quick and the close look at a block), and the
// ASCII-to-str conversion of codec::text_of.
#![deny(unsafe_code)]

pub mod codec;
mod error;
pub mod framing;
mod grammar;
mod limits;
pub mod types;

pub use error::{CommandError, Invalid, LineError, ReplyError, Status};
pub use limits::{Limits, ParserOptions};
