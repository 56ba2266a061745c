//! One MTA-side milter session: the protocol's order and scope rules.

use crate::error::MilterError;
use crate::flags::{Actions, Stage, Steps};
use crate::frame::{self, Command, ConnectAddress, Decoder, MAX_BODY_CHUNK, Response};
use crate::types::{Awaiting, Change, EndOfMessage, Event, Negotiated, Offer, Step, Verdict};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Connection,
    /// An unknown command: a refusal is that command's only.
    Unknown,
    Recipient,
    Message,
    Body,
    EndOfMessage,
}

/// Where the current message stands with the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MessageState {
    /// No message: MAIL has not been sent (or left out) since the last end.
    None,
    /// Events go to the filter.
    Open,
    /// The filter answered a body chunk with skip: no more body.
    SkippingBody,
    /// Accepted, refused or discarded: no more events for this message.
    Done,
}

#[derive(Debug)]
enum Phase {
    Negotiating,
    Ready,
    Waiting(Asked),
    Closed,
}

/// Pending answer at the end of a message.
#[derive(Debug, Default)]
struct Collected {
    changes: Vec<Change>,
    body: Option<Vec<u8>>,
    quarantine: Option<String>,
    octets: usize,
}

/// The MTA side of one milter session, with no I/O: calls queue frames to
/// [`transmit`](Milter::transmit); octets from the filter go to
/// [`receive`](Milter::receive) and come out of [`poll`](Milter::poll).
///
/// ```
/// use postel_milter::{Event, Milter, Offer, Step, Verdict};
///
/// let mut milter = Milter::new(Offer::default());
/// assert_eq!(&milter.transmit()[4..5], b"O");
/// // The filter answers: version 6, no actions, no protocol steps.
/// let mut answer = vec![0, 0, 0, 13, b'O'];
/// answer.extend_from_slice(&[0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
/// milter.receive(&answer);
/// assert_eq!(milter.poll()?, Some(Event::Negotiated));
///
/// assert_eq!(milter.helo("client.example", &[])?, Step::Wait);
/// assert_eq!(&milter.transmit()[4..], b"Hclient.example\0");
/// milter.receive(&[0, 0, 0, 1, b'r']);
/// assert_eq!(milter.poll()?, Some(Event::Verdict(Verdict::Reject)));
/// # Ok::<(), postel_milter::MilterError>(())
/// ```
#[derive(Debug)]
pub struct Milter {
    offer: Offer,
    negotiated: Option<Negotiated>,
    phase: Phase,
    decoder: Decoder,
    out: Vec<u8>,
    /// Accepted or refused at connect or HELO: no more events but QUIT.
    connection_done: bool,
    message: MessageState,
    collected: Collected,
}

impl Milter {
    /// A session that starts with the negotiation frame queued.
    pub fn new(offer: Offer) -> Self {
        let mut out = Vec::new();
        let negotiate = Command::Negotiate {
            version: offer.version,
            actions: offer.actions,
            steps: offer.steps,
        };
        // Three numbers: nothing in them can fail to encode.
        let _ = frame::encode(&negotiate, &mut out);
        Milter {
            decoder: Decoder::new(offer.max_frame),
            offer,
            negotiated: None,
            phase: Phase::Negotiating,
            out,
            connection_done: false,
            message: MessageState::None,
            collected: Collected::default(),
        }
    }

    /// The octets to send to the filter, taken.
    pub fn transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Octets read from the filter.
    pub fn receive(&mut self, input: &[u8]) {
        self.decoder.extend(input);
    }

    /// What the filter agreed to, once it has.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// What an answer is awaited for, if one is.
    pub fn awaiting(&self) -> Option<Awaiting> {
        match self.phase {
            Phase::Negotiating => Some(Awaiting::Negotiation),
            Phase::Waiting(Asked::Body | Asked::EndOfMessage) => Some(Awaiting::Content),
            Phase::Waiting(_) => Some(Awaiting::Command),
            Phase::Ready | Phase::Closed => None,
        }
    }

    /// True once the session is over (QUIT sent, or the filter shut down).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The next thing the filter said; `Ok(None)` until a whole frame is in.
    /// An error means the filter broke the protocol: the session is over.
    pub fn poll(&mut self) -> Result<Option<Event>, MilterError> {
        loop {
            let Some(response) = self.decoder.next_response()? else {
                return Ok(None);
            };
            let event = match self.phase {
                Phase::Negotiating => Some(self.negotiation(response)?),
                Phase::Waiting(asked) => self.answer(asked, response)?,
                Phase::Ready | Phase::Closed => {
                    return Err(MilterError::Unexpected(
                        "a response when none was asked for",
                    ));
                }
            };
            if let Some(event) = event {
                return Ok(Some(event));
            }
        }
    }

    fn negotiation(&mut self, response: Response) -> Result<Event, MilterError> {
        let Response::Negotiate {
            version,
            actions,
            steps,
            macros,
        } = response
        else {
            return Err(MilterError::Unexpected("not an answer to the negotiation"));
        };
        if !(2..=self.offer.version).contains(&version) {
            return Err(MilterError::Version(version));
        }
        if !self.offer.actions.contains(actions) {
            return Err(MilterError::ActionsNotOffered {
                asked: actions.without(self.offer.actions),
            });
        }
        if !self.offer.steps.contains(steps) {
            return Err(MilterError::StepsNotOffered {
                asked: steps.without(self.offer.steps),
            });
        }
        if !macros.is_empty() && !actions.contains(Actions::SET_SYMBOL_LIST) {
            return Err(MilterError::ActionNotNegotiated(Actions::SET_SYMBOL_LIST));
        }
        let mut names = Stage::ALL.map(|s| {
            s.default_macros()
                .iter()
                .map(|n| (*n).to_owned())
                .collect::<Vec<_>>()
        });
        for (stage, list) in macros {
            names[stage.index()] = list;
        }
        self.negotiated = Some(Negotiated {
            version,
            actions,
            steps,
            macros: names,
        });
        self.phase = Phase::Ready;
        Ok(Event::Negotiated)
    }

    fn answer(&mut self, asked: Asked, response: Response) -> Result<Option<Event>, MilterError> {
        if asked == Asked::EndOfMessage {
            return self.end_answer(response);
        }
        let verdict = match response {
            Response::Progress => return Ok(Some(Event::Progress)),
            Response::Skip if asked == Asked::Body && self.steps().contains(Steps::SKIP) => {
                self.message = MessageState::SkippingBody;
                Verdict::Continue
            }
            other => verdict(other)?,
        };
        self.phase = Phase::Ready;
        match (&verdict, asked) {
            // A refused recipient is that recipient only; accepting one
            // accepts the message.
            (Verdict::Continue, _)
            | (
                Verdict::Reject | Verdict::Tempfail | Verdict::Reply(_),
                Asked::Recipient | Asked::Unknown,
            )
            | (Verdict::Accept, Asked::Unknown) => {}
            (Verdict::Shutdown | Verdict::ConnectionFailure, _) => {
                self.phase = Phase::Closed;
                self.connection_done = true;
            }
            (Verdict::Discard, Asked::Connection | Asked::Unknown) => {
                return Err(MilterError::Unexpected("discard outside a message"));
            }
            (_, Asked::Connection) => self.connection_done = true,
            _ => self.message = MessageState::Done,
        }
        Ok(Some(Event::Verdict(verdict)))
    }

    fn end_answer(&mut self, response: Response) -> Result<Option<Event>, MilterError> {
        let actions = self
            .negotiated
            .as_ref()
            .map_or(Actions::NONE, |n| n.actions);
        let need = |a: Actions| {
            if actions.contains(a) {
                Ok(())
            } else {
                Err(MilterError::ActionNotNegotiated(a))
            }
        };
        let change = match response {
            Response::Progress => return Ok(Some(Event::Progress)),
            Response::ReplaceBody(chunk) => {
                need(Actions::CHANGE_BODY)?;
                self.count(chunk.len())?;
                self.collected
                    .body
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&chunk);
                return Ok(None);
            }
            Response::Quarantine(reason) => {
                need(Actions::QUARANTINE)?;
                self.count(reason.len())?;
                self.collected.quarantine = Some(reason);
                return Ok(None);
            }
            Response::Change { change, needs } => {
                need(needs)?;
                if let Change::AddHeader { name, value }
                | Change::InsertHeader { name, value, .. }
                | Change::ChangeHeader { name, value, .. } = &change
                {
                    check_field(name, value)?;
                }
                change
            }
            final_answer => {
                let verdict = verdict(final_answer)?;
                let collected = std::mem::take(&mut self.collected);
                self.finish_message();
                if matches!(verdict, Verdict::Shutdown | Verdict::ConnectionFailure) {
                    self.phase = Phase::Closed;
                    self.connection_done = true;
                }
                return Ok(Some(Event::EndOfMessage(EndOfMessage {
                    verdict,
                    changes: collected.changes,
                    body: collected.body,
                    quarantine: collected.quarantine,
                })));
            }
        };
        self.count(change_len(&change))?;
        self.collected.changes.push(change);
        Ok(None)
    }

    fn count(&mut self, octets: usize) -> Result<(), MilterError> {
        self.collected.octets += octets;
        if self.collected.octets > self.offer.max_changes {
            return Err(MilterError::FrameTooLong {
                len: self.collected.octets,
                max: self.offer.max_changes,
            });
        }
        Ok(())
    }

    fn finish_message(&mut self) {
        self.phase = Phase::Ready;
        self.message = MessageState::None;
    }

    fn steps(&self) -> Steps {
        self.negotiated.as_ref().map_or(Steps::NONE, |n| n.steps)
    }

    /// Sends `command` (with its stage's macros) unless the filter left it
    /// out, and says whether to wait for an answer.
    fn send(
        &mut self,
        command: &Command<'_>,
        macros: Option<(Stage, &[(&str, &str)])>,
        left_out: Steps,
        not_answered: Steps,
        asked: Asked,
    ) -> Result<Step, MilterError> {
        match self.phase {
            Phase::Ready => {}
            Phase::Negotiating => return Err(MilterError::Misuse("event before negotiation")),
            Phase::Waiting(_) => return Err(MilterError::Misuse("event while awaiting an answer")),
            Phase::Closed => return Err(MilterError::Misuse("event after the session ended")),
        }
        let steps = self.steps();
        let message_event = !matches!(asked, Asked::Connection | Asked::Unknown);
        let message_done = self.message == MessageState::Done;
        if self.connection_done
            || (message_event && message_done)
            || (left_out != Steps::NONE && steps.contains(left_out))
        {
            return Ok(Step::Done(Verdict::Continue));
        }
        let start = self.out.len();
        if let (Some((stage, known)), Some(n)) = (macros, &self.negotiated) {
            let wanted = n.macros(stage);
            let pairs: Vec<(&str, &str)> = known
                .iter()
                .filter(|(name, _)| wanted.iter().any(|w| same_macro(w, name)))
                .copied()
                .collect();
            if !pairs.is_empty() {
                frame::encode(
                    &Command::Macros {
                        stage,
                        pairs: &pairs,
                    },
                    &mut self.out,
                )?;
            }
        }
        if let Err(e) = frame::encode(command, &mut self.out) {
            self.out.truncate(start);
            return Err(e);
        }
        if not_answered != Steps::NONE && steps.contains(not_answered) {
            return Ok(Step::Done(Verdict::Continue));
        }
        self.phase = Phase::Waiting(asked);
        Ok(Step::Wait)
    }

    /// The connect event: the client's name and address.
    pub fn connect(
        &mut self,
        hostname: &str,
        address: &ConnectAddress,
        macros: &[(&str, &str)],
    ) -> Result<Step, MilterError> {
        self.send(
            &Command::Connect { hostname, address },
            Some((Stage::Connect, macros)),
            Steps::NO_CONNECT,
            Steps::NO_REPLY_CONNECT,
            Asked::Connection,
        )
    }

    /// HELO or EHLO, with the name the client gave.
    pub fn helo(&mut self, name: &str, macros: &[(&str, &str)]) -> Result<Step, MilterError> {
        self.send(
            &Command::Helo(name),
            Some((Stage::Helo, macros)),
            Steps::NO_HELO,
            Steps::NO_REPLY_HELO,
            Asked::Connection,
        )
    }

    /// MAIL: the sender in angle brackets, then each ESMTP parameter. A new
    /// message starts here (an unfinished one is aborted first).
    pub fn mail(&mut self, args: &[&str], macros: &[(&str, &str)]) -> Result<Step, MilterError> {
        self.abort()?;
        self.message = MessageState::Open;
        self.send(
            &Command::Mail(args),
            Some((Stage::Mail, macros)),
            Steps::NO_MAIL,
            Steps::NO_REPLY_MAIL,
            Asked::Message,
        )
    }

    /// RCPT: the recipient in angle brackets, then each ESMTP parameter. A
    /// refusal is for this recipient only.
    pub fn rcpt(&mut self, args: &[&str], macros: &[(&str, &str)]) -> Result<Step, MilterError> {
        self.message_event()?;
        self.send(
            &Command::Rcpt(args),
            Some((Stage::Rcpt, macros)),
            Steps::NO_RCPT,
            Steps::NO_REPLY_RCPT,
            Asked::Recipient,
        )
    }

    /// DATA.
    pub fn data(&mut self, macros: &[(&str, &str)]) -> Result<Step, MilterError> {
        self.message_event()?;
        self.send(
            &Command::Data,
            Some((Stage::Data, macros)),
            Steps::NO_DATA,
            Steps::NO_REPLY_DATA,
            Asked::Message,
        )
    }

    /// One header field: its name, and its value as it follows the colon in
    /// the message (folded lines joined by CR LF or LF). The value goes out
    /// with LF line ends, and without its leading white space unless the
    /// filter asked for [`Steps::HEADER_LEADING_SPACE`].
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> Result<Step, MilterError> {
        self.message_event()?;
        let mut value = value;
        if !self.steps().contains(Steps::HEADER_LEADING_SPACE) {
            while let [b' ' | b'\t', rest @ ..] = value {
                value = rest;
            }
        }
        let mut lf = Vec::with_capacity(value.len());
        let mut rest = value;
        while let Some(i) = rest.iter().position(|&b| b == b'\r') {
            lf.extend_from_slice(&rest[..i]);
            if rest.get(i + 1) != Some(&b'\n') {
                lf.push(b'\r');
            }
            rest = &rest[i + 1..];
        }
        lf.extend_from_slice(rest);
        self.send(
            &Command::Header { name, value: &lf },
            None,
            Steps::NO_HEADERS,
            Steps::NO_REPLY_HEADER,
            Asked::Message,
        )
    }

    /// The end of the header section.
    pub fn end_of_headers(&mut self, macros: &[(&str, &str)]) -> Result<Step, MilterError> {
        self.message_event()?;
        self.send(
            &Command::EndOfHeaders,
            Some((Stage::EndOfHeaders, macros)),
            Steps::NO_END_OF_HEADERS,
            Steps::NO_REPLY_END_OF_HEADERS,
            Asked::Message,
        )
    }

    /// Body octets (with CR LF line ends, as on the wire): sends up to
    /// [`MAX_BODY_CHUNK`] of them and returns how many it took. After the
    /// filter answered skip, takes everything and sends nothing.
    pub fn body(&mut self, chunk: &[u8]) -> Result<(Step, usize), MilterError> {
        self.message_event()?;
        if self.message == MessageState::SkippingBody || chunk.is_empty() {
            return Ok((Step::Done(Verdict::Continue), chunk.len()));
        }
        let taken = chunk.len().min(MAX_BODY_CHUNK);
        let step = self.send(
            &Command::Body(&chunk[..taken]),
            None,
            Steps::NO_BODY,
            Steps::NO_REPLY_BODY,
            Asked::Body,
        )?;
        Ok((step, taken))
    }

    /// The end of the message: the answer, when awaited, comes as
    /// [`Event::EndOfMessage`] with the changes the filter asks for.
    pub fn end_of_message(&mut self, macros: &[(&str, &str)]) -> Result<Step, MilterError> {
        self.message_event()?;
        let step = self.send(
            &Command::EndOfBody,
            Some((Stage::EndOfMessage, macros)),
            Steps::NONE,
            Steps::NONE,
            Asked::EndOfMessage,
        )?;
        if matches!(step, Step::Done(_)) {
            self.finish_message();
        }
        Ok(step)
    }

    /// A command the SMTP server did not know, as the client sent it
    /// (without CR LF); the filter may refuse it with its own reply.
    pub fn unknown(&mut self, line: &[u8]) -> Result<Step, MilterError> {
        self.send(
            &Command::Unknown(line),
            None,
            Steps::NO_UNKNOWN,
            Steps::NO_REPLY_UNKNOWN,
            Asked::Unknown,
        )
    }

    /// Ends this SMTP session's part but keeps the connection (QUIT-NC):
    /// the next SMTP session starts with [`Milter::connect`] on it, under
    /// the same negotiation.
    pub fn restart(&mut self) -> Result<(), MilterError> {
        if !matches!(self.phase, Phase::Ready) {
            return Err(MilterError::Misuse("restart while awaiting an answer"));
        }
        frame::encode(&Command::QuitNoClose, &mut self.out)?;
        self.connection_done = false;
        self.message = MessageState::None;
        self.collected = Collected::default();
        Ok(())
    }

    /// Ends the current message without its end (RSET, a refusal): sends
    /// ABORT when the filter has a message open, else nothing.
    pub fn abort(&mut self) -> Result<(), MilterError> {
        if self.message == MessageState::None {
            return Ok(());
        }
        if !matches!(self.phase, Phase::Ready) {
            return Err(MilterError::Misuse("abort while awaiting an answer"));
        }
        if !self.connection_done {
            frame::encode(&Command::Abort, &mut self.out)?;
        }
        self.finish_message();
        Ok(())
    }

    /// Ends the session: QUIT is queued and nothing more may be sent.
    pub fn quit(&mut self) {
        if !matches!(self.phase, Phase::Closed | Phase::Negotiating) {
            let _ = frame::encode(&Command::Quit, &mut self.out);
        }
        self.phase = Phase::Closed;
    }

    fn message_event(&self) -> Result<(), MilterError> {
        if self.message == MessageState::None {
            Err(MilterError::Misuse("message event outside a message"))
        } else {
            Ok(())
        }
    }
}

fn verdict(response: Response) -> Result<Verdict, MilterError> {
    Ok(match response {
        Response::Continue => Verdict::Continue,
        Response::Accept => Verdict::Accept,
        Response::Reject => Verdict::Reject,
        Response::Tempfail => Verdict::Tempfail,
        Response::Discard => Verdict::Discard,
        Response::ReplyCode(r) => Verdict::Reply(r),
        Response::Shutdown => Verdict::Shutdown,
        Response::ConnectionFailure => Verdict::ConnectionFailure,
        Response::Skip => return Err(MilterError::Unexpected("skip outside the body")),
        Response::Negotiate { .. } => {
            return Err(MilterError::Unexpected("a second negotiation"));
        }
        _ => {
            return Err(MilterError::Unexpected(
                "a change before the end of the message",
            ));
        }
    })
}

/// Macro names match with or without their braces (`{daemon_name}` and
/// `daemon_name`), as libmilter looks them up.
fn same_macro(a: &str, b: &str) -> bool {
    let bare = |s: &str| s.trim_start_matches('{').trim_end_matches('}').to_owned();
    bare(a) == bare(b)
}

/// A field a filter adds or changes must be one: a name of printable
/// US-ASCII without a colon, a value without NUL, bare CR or over-long lines.
fn check_field(name: &str, value: &str) -> Result<(), MilterError> {
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(MilterError::Malformed("header name"));
    }
    let lines_ok = value
        .split('\n')
        .all(|l| l.len() < 998 && !l.trim_end_matches('\r').contains('\r'));
    if !lines_ok {
        return Err(MilterError::Malformed("header value"));
    }
    Ok(())
}

fn change_len(change: &Change) -> usize {
    match change {
        Change::AddHeader { name, value }
        | Change::InsertHeader { name, value, .. }
        | Change::ChangeHeader { name, value, .. } => name.len() + value.len(),
        Change::AddRecipient {
            address,
            parameters,
        }
        | Change::ChangeSender {
            address,
            parameters,
        } => address.len() + parameters.as_ref().map_or(0, String::len),
        Change::DeleteRecipient(a) => a.len(),
    }
}
