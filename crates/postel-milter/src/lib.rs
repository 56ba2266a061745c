//! # postel-milter
//!
//! The MTA side of the milter protocol, version 6, as Sendmail defined it
//! and Postfix speaks it: the filters people run (rspamd, `OpenDKIM`,
//! `OpenDMARC`, `ClamAV`) judge and change mail through it. Like
//! `postel-session`, it does no I/O and never waits: calls queue frames to
//! send, octets read from the filter come out as [`Event`]s, and the caller
//! owns the socket and the three time-outs ([`Milter::awaiting`] says which
//! applies).
//!
//! A session runs: negotiation ([`Offer`] against the filter's answer; a
//! filter asking for more actions or steps than offered is refused), then the
//! events of the SMTP dialogue in order ([`Milter::connect`],
//! [`helo`](Milter::helo), [`mail`](Milter::mail), [`rcpt`](Milter::rcpt),
//! [`data`](Milter::data), [`header`](Milter::header),
//! [`end_of_headers`](Milter::end_of_headers), [`body`](Milter::body) in
//! chunks of at most [`MAX_BODY_CHUNK`], [`end_of_message`](Milter::end_of_message),
//! [`abort`](Milter::abort), [`quit`](Milter::quit)), each with the macros
//! the filter asked for at its stage. Each call says whether to wait for an
//! answer ([`Step`]): a filter may leave events out or not answer them. The
//! answer at the end of the message carries the changes ([`Change`], a
//! replacement body, a quarantine reason); [`edit::Message`] applies the
//! header and body changes to a message.
//!
//! Frames have a size limit ([`Offer::max_frame`]) and so does everything a
//! filter asks to change in one message ([`Offer::max_changes`]); a frame
//! that does not read as its command says, a response that does not fit what
//! was asked, or a change that was not negotiated is a [`MilterError`].
//!
//! ```
//! use postel_milter::{Actions, Event, Milter, Offer, Step, Steps, Verdict};
//!
//! let mut milter = Milter::new(Offer::default());
//! let _negotiation = milter.transmit();
//! // The filter wants to add header fields and does not need HELO.
//! let mut answer = vec![0, 0, 0, 13, b'O', 0, 0, 0, 6];
//! answer.extend_from_slice(&Actions::ADD_HEADERS.bits().to_be_bytes());
//! answer.extend_from_slice(&Steps::NO_HELO.bits().to_be_bytes());
//! milter.receive(&answer);
//! assert_eq!(milter.poll()?, Some(Event::Negotiated));
//! assert_eq!(milter.helo("client.example", &[])?, Step::Done(Verdict::Continue));
//!
//! assert_eq!(milter.mail(&["<a@example.org>"], &[("i", "4F2A")])?, Step::Wait);
//! // The queue id went ahead of MAIL, as the macro Postfix sends there.
//! let sent = milter.transmit();
//! assert!(sent.windows(7).any(|w| w == b"i\x004F2A\x00"));
//! # Ok::<(), postel_milter::MilterError>(())
//! ```
//!
//! ## Sources
//!
//! The milter protocol as libmilter implements it (the `SMFIC_`, `SMFIR_`,
//! `SMFIF_` and `SMFIP_` values), the Internet-Draft describing it, and
//! Postfix's `MILTER_README` for the macros sent by default and how older
//! protocol versions are handled.
#![forbid(unsafe_code)]

pub mod edit;
mod error;
mod flags;
mod frame;
mod session;
mod types;

pub use error::MilterError;
pub use flags::{Actions, Stage, Steps};
pub use frame::{ConnectAddress, DEFAULT_MAX_FRAME, Decoder, MAX_BODY_CHUNK, Response};
pub use session::Milter;
pub use types::{Awaiting, Change, EndOfMessage, Event, Negotiated, Offer, Step, Verdict};
