//! The body phases of a transaction: DATA and BDAT, from the go-ahead to the
//! end-of-message decision, with the limits a body must keep (size, line
//! length, bare line endings, the hop count of RFC 5321 section 6.3).

use std::ops::ControlFlow;

use bytes::Bytes;

/// Decoded body octets held before they are handed out as one
/// [`Event::Body`]: the most a session holds of a DATA body.
const BODY_CHUNK: usize = 16 * 1024;
use postel_proto::framing::{BdatReader, BodyOptions, BodyViolation, DotDecoder};
use postel_proto::types::{EnhancedStatus, Reply, ReplyCode};

use super::{
    DataRequest, Event, LmtpMessageRequest, MessageRequest, Pending, Phase, Server, reply,
};

impl Server {
    /// The reply for DATA or BDAT when the transaction cannot take a body.
    pub(super) fn body_refusal(&self) -> Option<Reply<'static>> {
        match &self.transaction {
            None => Some(reply(503, Some((5, 5, 1)), "Send MAIL first")),
            // RFC 2033 section 4.2: LMTP refuses DATA without a recipient
            // with 503; SMTP's 554 is RFC 5321 section 3.3's.
            Some(t) if t.recipients == 0 && self.config.lmtp => {
                Some(reply(503, Some((5, 5, 1)), "No valid recipients"))
            }
            Some(t) if t.recipients == 0 => {
                Some(reply(554, Some((5, 5, 1)), "No valid recipients"))
            }
            _ => None,
        }
    }

    pub(super) fn data(&mut self) -> Option<Event> {
        if let Some(refusal) = self.body_refusal() {
            self.error(&refusal);
            return None;
        }
        if self
            .transaction
            .as_ref()
            .is_some_and(|t| t.bdat || t.binary)
        {
            self.error(&reply(
                503,
                Some((5, 5, 1)),
                "DATA cannot follow BDAT or BODY=BINARYMIME",
            ));
            return None;
        }
        if self.config.decide_data {
            let token = self.ask(Pending::Data);
            return Some(Event::Data(DataRequest { token }));
        }
        self.send(&reply(354, None, "End data with <CR><LF>.<CR><LF>"));
        self.start_data();
        None
    }

    /// After the 354: the body phase of DATA.
    pub(super) fn start_data(&mut self) {
        let mut opts = BodyOptions::default();
        opts.max_size = self.config.max_message_size;
        self.phase = Phase::Data(Box::new(DotDecoder::new(opts)));
    }

    pub(super) fn bdat(&mut self, size: u64, last: bool) {
        let discard = if self.config.chunking {
            self.body_refusal()
        } else {
            Some(Reply::NOT_IMPLEMENTED)
        };
        if discard.is_none()
            && let Some(t) = self.transaction.as_mut()
        {
            t.bdat = true;
        }
        self.phase = Phase::Bdat {
            reader: BdatReader::new(size),
            last,
            discard,
        };
    }

    pub(super) fn end_of_chunk(&mut self, last: bool, discard: Option<Reply<'static>>) {
        self.phase = Phase::Command;
        if let Some(refusal) = discard {
            self.error(&refusal);
            return;
        }
        if last {
            let too_large = self.transaction.as_ref().is_some_and(|t| t.too_large);
            let max = self.config.max_message_size.unwrap_or(0);
            self.phase = Phase::DataEnd(too_large.then_some(BodyViolation::TooLarge { max }));
        } else {
            let size = self.transaction.as_ref().map_or(0, |t| t.size);
            let text = format!("{size} octets received");
            let ok =
                Reply::new(ReplyCode::OK, EnhancedStatus::new(2, 0, 0), text).unwrap_or(Reply::OK);
            self.send(&ok);
        }
    }

    pub(super) fn end_of_message(&mut self, violation: Option<BodyViolation>) -> Option<Event> {
        let transaction = self.transaction.take().unwrap_or_default();
        let received = transaction.trace.received();
        let hops = self
            .config
            .max_received
            .filter(|&max| received > max)
            .map(|max| BodyViolation::TooManyHops { received, max });
        if let Some(v) = violation.or(hops) {
            // LMTP answers every accepted recipient, even to refuse them all.
            let replies = if self.config.lmtp {
                transaction.accepted.len().max(1)
            } else {
                1
            };
            for _ in 0..replies {
                self.send(&v.reply());
            }
            self.phase = Phase::Command;
            return Some(Event::MessageAborted(v));
        }
        if self.config.lmtp {
            self.transaction = Some(transaction);
            return self.lmtp_decision(0);
        }
        let token = self.ask(Pending::Message);
        let size = transaction.size;
        let recipients = transaction.recipients;
        let delivered_to = transaction.trace.delivered_to().to_vec();
        self.transaction = Some(transaction);
        Some(Event::Message(MessageRequest {
            size,
            recipients,
            received,
            delivered_to,
            token,
        }))
    }

    /// LMTP: asks for accepted recipient `next`'s decision, or ends the
    /// transaction once every one has its reply.
    pub(super) fn lmtp_decision(&mut self, next: usize) -> Option<Event> {
        let ask = self.transaction.as_ref().and_then(|t| {
            let recipient = t.accepted.get(next)?.clone();
            Some((
                recipient,
                t.size,
                t.trace.received(),
                t.trace.delivered_to().to_vec(),
            ))
        });
        let Some((recipient, size, received, delivered_to)) = ask else {
            self.transaction = None;
            self.phase = Phase::Command;
            return None;
        };
        self.lmtp_next = next;
        let token = self.ask(Pending::LmtpMessage);
        Some(Event::LmtpMessage(LmtpMessageRequest {
            recipient,
            index: next,
            size,
            received,
            delivered_to,
            token,
        }))
    }

    /// Decodes what has arrived of a DATA body and hands out what is held
    /// once it reaches `BODY_CHUNK`.
    pub(super) fn poll_data(&mut self) -> ControlFlow<Option<Event>> {
        if !self.input.is_empty() {
            let input = std::mem::take(&mut self.input);
            let used = self.decode_body(input.unread());
            self.input = input;
            self.input.consume(used);
        }
        // Decoded octets are handed out in chunks of at least BODY_CHUNK
        // (and the rest at the end, by `data_end`): a body that arrives a
        // line at a time costs an event and an allocation per chunk, not
        // per line.
        if self.body.len() >= BODY_CHUNK {
            return ControlFlow::Break(Some(self.take_body()));
        }
        match self.phase {
            Phase::Data(_) => ControlFlow::Break(None),
            _ => ControlFlow::Continue(()),
        }
    }

    /// Decodes body octets into the held body, counting trace fields as
    /// they pass; returns how many octets of `input` were body (all of them
    /// unless the terminator came, after which the phase is `DataEnd`).
    pub(super) fn decode_body(&mut self, input: &[u8]) -> usize {
        let Phase::Data(decoder) = &mut self.phase else {
            return 0;
        };
        let held = self.body.len();
        if self.body.capacity() == 0 {
            // Room for a chunk and the line that completes it, so that a
            // body arriving line by line is not copied again as it grows.
            self.body.reserve(BODY_CHUNK + 1024);
        }
        let end = decoder.decode_into(input, &mut self.body);
        if let Some(t) = self.transaction.as_mut() {
            t.trace.feed(&self.body[held..]);
            if let Some(end) = end {
                t.size = end.size;
            }
        }
        match end {
            Some(end) => {
                self.phase = Phase::DataEnd(end.violation);
                end.consumed
            }
            None => input.len(),
        }
    }

    fn take_body(&mut self) -> Event {
        Event::Body(Bytes::from(std::mem::take(&mut self.body)))
    }

    /// After the body's end: first what is held of it, then the decision.
    pub(super) fn data_end(&mut self, violation: Option<BodyViolation>) -> Option<Event> {
        if !self.body.is_empty() {
            return Some(self.take_body());
        }
        self.end_of_message(violation)
    }

    /// Reads what has arrived of a BDAT chunk.
    pub(super) fn poll_bdat(&mut self) -> ControlFlow<Option<Event>> {
        let Phase::Bdat {
            reader,
            last,
            discard,
        } = &mut self.phase
        else {
            return ControlFlow::Continue(());
        };
        let (chunk, done) = reader.read(self.input.unread());
        let n = chunk.len();
        let mut event = None;
        if discard.is_none() && n > 0 {
            let t = self.transaction.get_or_insert_with(Box::default);
            t.size += n as u64;
            if self.config.max_message_size.is_some_and(|max| t.size > max) {
                t.too_large = true;
            }
            if !t.too_large {
                t.trace.feed(chunk);
                event = Some(Event::Body(Bytes::copy_from_slice(chunk)));
            }
        }
        let (last, discard) = (*last, discard.clone());
        self.input.consume(n);
        if done {
            self.end_of_chunk(last, discard);
        }
        if event.is_some() || !done {
            return ControlFlow::Break(event);
        }
        ControlFlow::Continue(())
    }
}
