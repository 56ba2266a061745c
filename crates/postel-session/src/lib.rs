//! # postel-session
//!
//! The rules of the SMTP dialogue as state machines that do no I/O and never
//! wait: bytes go in, events and bytes to send come out. The same session runs
//! under tokio, over a blocking `std::net::TcpStream`, or in a unit test with
//! no socket at all.
//!
//! ## The event and decision model
//!
//! The [`server::Server`] answers everything the protocol decides by itself
//! (sequencing, syntax, limits, advertised extensions) and hands the
//! application what only it can decide, as events carrying a handle: accept
//! this sender? this recipient? this message (now that it is stored)? these
//! credentials? Each handle is `#[must_use]` and answered once with `accept` or
//! `reject`, which take it by value. Until then the server reads no further
//! command, so an application may decide later, after a database or DNS
//! look-up, and pipelined commands are still answered in order.
//!
//! ```
//! use postel_proto::types::Domain;
//! use postel_session::server::{Event, Server, ServerConfig};
//!
//! let mut server = Server::new(ServerConfig::new(Domain::try_from("mx.example.org")?));
//! assert!(server.transmit().starts_with(b"220 mx.example.org"));
//!
//! server.receive(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n");
//! let mut body = Vec::new();
//! while let Some(event) = server.poll() {
//!     match event {
//!         Event::Mail(mail) => mail.accept(&mut server)?,
//!         Event::Rcpt(rcpt) => rcpt.accept(&mut server)?,
//!         Event::Body(data) => body.extend_from_slice(&data),
//!         Event::Message(message) => message.accept(&mut server)?,
//!         _ => {}
//!     }
//! }
//! let replies = String::from_utf8(server.transmit())?;
//! assert!(replies.contains("250 2.1.0 Sender OK") && replies.contains("250 2.1.5 Recipient OK"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Standards
//!
//! | RFC | What |
//! |-----|------|
//! | 5321 | the dialogue, sequencing (section 4.1.4), replies, limits, timeouts (section 4.5.3.2) |
//! | 2920 | PIPELINING: commands handled in order, replies batched |
//! | 1870 | SIZE, checked at MAIL and during the body |
//! | 6152 | 8BITMIME |
//! | 6531 | SMTPUTF8 |
//! | 3030 | CHUNKING (BDAT) and BINARYMIME |
//! | 3207 | STARTTLS, with pipelined plaintext dropped and the session reset |
//! | 4954, 4616 | AUTH with PLAIN and LOGIN, 334 challenges, cancel, initial response |
//! | 2034, 3463 | enhanced status codes |
//! | 3461 | DSN parameters carried to the application |
#![forbid(unsafe_code)]

pub mod client;
pub mod sasl;
pub mod server;
