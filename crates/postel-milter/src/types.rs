//! The values a milter session is configured with and answers in.

use postel_proto::types::Reply;

use crate::flags::{Actions, Stage, Steps};
use crate::frame;

/// What this MTA offers a filter, sent in the negotiation.
#[derive(Clone, Debug)]
pub struct Offer {
    /// The protocol version (6).
    pub version: u32,
    /// The changes the caller will apply.
    pub actions: Actions,
    /// The steps the caller lets a filter leave out or not answer.
    pub steps: Steps,
    /// The largest frame accepted from the filter.
    pub max_frame: usize,
    /// The most octets of changes (replacement body, header fields,
    /// addresses) accepted at the end of one message.
    pub max_changes: usize,
}

impl Offer {
    /// What can be offered at protocol `version`, as Postfix offers older
    /// filters: version 2 has the first six actions and the seven `NO_*`
    /// steps; versions 3 to 5 add unanswered headers, unknown commands and
    /// DATA; version 6 has everything.
    pub fn for_version(version: u32) -> Offer {
        let all = Offer::default();
        let (actions, steps) = match version {
            ..=2 => (Actions::from_bits(0x3f), Steps::from_bits(0x7f)),
            3..=5 => (Actions::from_bits(0x3f), Steps::from_bits(0x3ff)),
            _ => (all.actions, all.steps),
        };
        Offer {
            version,
            actions,
            steps,
            ..all
        }
    }
}

impl Default for Offer {
    /// Version 6, every action, every step but sending refused recipients
    /// and header values with their leading space (this side sends neither).
    fn default() -> Self {
        Offer {
            version: 6,
            actions: Actions::ALL,
            steps: Steps::ALL.without(Steps::REJECTED_RECIPIENTS),
            max_frame: frame::DEFAULT_MAX_FRAME,
            max_changes: 64 * 1024 * 1024,
        }
    }
}

/// What the filter and this side agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The filter's protocol version.
    pub version: u32,
    /// The changes it may make.
    pub actions: Actions,
    /// The steps it left out or will not answer, and its options.
    pub steps: Steps,
    pub(crate) macros: [Vec<String>; 7],
}

impl Negotiated {
    /// The macro names sent at `stage`: the filter's choice, or Postfix's
    /// defaults.
    pub fn macros(&self, stage: Stage) -> &[String] {
        &self.macros[stage.index()]
    }
}

/// A filter's answer to one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on (also what an event the filter left out or does not answer
    /// counts as).
    Continue,
    /// Accept: no more events for this message, or for the connection when
    /// given at connect or HELO.
    Accept,
    /// Refuse with this MTA's own 5xx.
    Reject,
    /// Refuse for now with this MTA's own 4xx.
    Tempfail,
    /// Refuse with the filter's reply (4xx or 5xx).
    Reply(Reply<'static>),
    /// Accept the message and throw it away.
    Discard,
    /// The filter is shutting down: close the SMTP session with 421.
    Shutdown,
    /// Fail the SMTP connection.
    ConnectionFailure,
}

/// A change a filter asked for at the end of a message, in the order it
/// asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Append a header field.
    AddHeader {
        /// Field name.
        name: String,
        /// Value, continuation lines separated by LF.
        value: String,
    },
    /// Insert a field before the `index`th (from 0).
    InsertHeader {
        /// Position among all fields.
        index: u32,
        /// Field name.
        name: String,
        /// Value.
        value: String,
    },
    /// Change the `index`th field of `name` (from 1); an empty value deletes.
    ChangeHeader {
        /// Occurrence, from 1.
        index: u32,
        /// Field name.
        name: String,
        /// New value; empty deletes.
        value: String,
    },
    /// Add a recipient (with ESMTP parameters when given).
    AddRecipient {
        /// The address, usually in angle brackets.
        address: String,
        /// Parameters, space separated.
        parameters: Option<String>,
    },
    /// Remove a recipient.
    DeleteRecipient(String),
    /// Replace the envelope sender.
    ChangeSender {
        /// The address, usually in angle brackets.
        address: String,
        /// Parameters, space separated.
        parameters: Option<String>,
    },
}

/// The answer at the end of a message: the verdict and what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndOfMessage {
    /// The verdict.
    pub verdict: Verdict,
    /// Header and envelope changes, in order.
    pub changes: Vec<Change>,
    /// The replacement body, when the filter sent one.
    pub body: Option<Vec<u8>>,
    /// Hold the message, for this reason.
    pub quarantine: Option<String>,
}

/// What a call that may send an event leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// An event went out and needs an answer: transmit, then read and
    /// [`Milter::poll`](crate::Milter::poll) until it comes.
    Wait,
    /// Nothing to wait for (the event was left out, is not answered, or the
    /// filter is done with this message or connection): this is the answer.
    Done(Verdict),
}

/// What [`Milter::poll`](crate::Milter::poll) found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Negotiation finished; events may be sent.
    Negotiated,
    /// The filter is still working: restart its time-out.
    Progress,
    /// The answer to the last event.
    Verdict(Verdict),
    /// The answer to the end of the message.
    EndOfMessage(EndOfMessage),
}

/// Which time-out applies to what is awaited (Postfix's three).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Awaiting {
    /// The negotiation answer (the connect time-out).
    Negotiation,
    /// The answer to a command event.
    Command,
    /// The answer to a body chunk or the end of the message.
    Content,
}
