//! Framing: split the byte stream into lines and message bodies before any
//! grammar runs, enforcing limits at a known boundary.
//!
//! Only CRLF ends a line and only CRLF `.` CRLF ends a DATA body: bare CR and
//! bare LF are what SMTP smuggling (CVE-2023-51766) exploits, so they never
//! count as line endings here unless an `allow_*` option says so.

mod bdat;
mod blocks;
mod data;
mod encode;
pub(crate) mod line;
mod reader;
mod trace;

pub use bdat::BdatReader;
pub use data::{BodyOptions, BodyViolation, DataEnd, DotDecoder};
pub use encode::{DotEncoder, dot_stuff};
pub use line::{Line, frame_line, skip_line};
pub use reader::CommandReader;
pub use trace::TraceScanner;
