//! The message phase of the client: the body after DATA's 354 or with BDAT,
//! and the reply, or with LMTP the replies, that end it.

use postel_proto::framing::dot_stuff;
use postel_proto::types::{Command, Reply};

use super::{Client, ClientEvent, Expect, MessageBody, RecipientResult, Streaming};

impl Client {
    /// Sends the body with BDAT, if any recipient was accepted.
    pub(super) fn start_body(&mut self) {
        if !self.any_accepted() {
            self.complete(true);
            return;
        }
        if let Some(c) = &self.current {
            match &c.message.data {
                MessageBody::Whole(data) => {
                    let bdat = Command::Bdat {
                        size: data.len() as u64,
                        last: true,
                    };
                    bdat.write(&mut self.output);
                    self.output.extend_from_slice(data);
                    self.expect_final_replies();
                }
                MessageBody::Streamed { .. } => {
                    self.streaming = Some(Streaming::Bdat);
                    self.events.push_back(ClientEvent::BodyWanted);
                }
            }
        }
    }

    /// True while the client waits for the pieces of a message
    /// ([`ClientEvent::BodyWanted`] until [`Client::end_body`]).
    pub fn wants_body(&self) -> bool {
        self.streaming.is_some()
    }

    /// The next piece of a message in pieces, after
    /// [`ClientEvent::BodyWanted`]: dot-stuffed after DATA, or sent as a
    /// BDAT chunk of its own. Ignored when no body is wanted (the
    /// connection failed, say).
    pub fn send_body(&mut self, piece: &[u8]) {
        match &mut self.streaming {
            Some(Streaming::Data(encoder)) => encoder.encode(piece, &mut self.output),
            Some(Streaming::Bdat) if !piece.is_empty() => {
                let bdat = Command::Bdat {
                    size: piece.len() as u64,
                    last: false,
                };
                bdat.write(&mut self.output);
                self.output.extend_from_slice(piece);
                self.expect.push_back(Expect::Chunk);
            }
            Some(Streaming::Bdat) | None => {}
        }
    }

    /// Ends a message in pieces: the end of data, or the last BDAT.
    pub fn end_body(&mut self) {
        match self.streaming.take() {
            Some(Streaming::Data(mut encoder)) => encoder.finish(&mut self.output),
            Some(Streaming::Bdat) => Command::Bdat {
                size: 0,
                last: true,
            }
            .write(&mut self.output),
            None => return,
        }
        self.expect_final_replies();
    }

    /// The reply to a BDAT chunk before the last: a refusal is every
    /// accepted recipient's result, and stays so whatever the last says.
    pub(super) fn on_chunk(&mut self, reply: &Reply<'static>) {
        if !reply.code().is_positive() {
            self.finish_accepted(reply);
        }
    }

    /// What follows the message: one reply, or with LMTP one per accepted
    /// recipient, in RCPT order (RFC 2033 section 4.2).
    fn expect_final_replies(&mut self) {
        if !self.config.lmtp {
            self.expect.push_back(Expect::Body);
            return;
        }
        let accepted: Vec<usize> = self.current.as_ref().map_or_else(Vec::new, |c| {
            c.results
                .iter()
                .enumerate()
                .filter(|(_, r)| matches!(r, Some(RecipientResult::Delivered(_))))
                .map(|(i, _)| i)
                .collect()
        });
        if accepted.is_empty() {
            self.expect.push_back(Expect::Body);
        }
        self.expect
            .extend(accepted.into_iter().map(Expect::LmtpBody));
    }

    /// LMTP: recipient `i`'s own reply after the message.
    pub(super) fn on_lmtp_body(&mut self, i: usize, reply: Reply<'static>) {
        let Some(c) = self.current.as_mut() else {
            return;
        };
        if let Some(slot) = c.results.get_mut(i) {
            *slot = Some(RecipientResult::from_reply(reply));
        }
        if let Some(done) = c.answered.get_mut(i) {
            *done = true;
        }
        if !self.expect.iter().any(|e| matches!(e, Expect::LmtpBody(_))) {
            self.complete(false);
        }
    }

    pub(super) fn on_data(&mut self, reply: &Reply<'static>) {
        if reply.code().get() != 354 {
            // Recipients that were accepted get DATA's refusal.
            self.finish_accepted(reply);
            self.complete(true);
            return;
        }
        if self.any_accepted() {
            if let Some(c) = &self.current {
                match &c.message.data {
                    MessageBody::Whole(data) => self.output.extend_from_slice(&dot_stuff(data)),
                    MessageBody::Streamed { .. } => {
                        self.streaming =
                            Some(Streaming::Data(postel_proto::framing::DotEncoder::new()));
                        self.events.push_back(ClientEvent::BodyWanted);
                        return;
                    }
                }
            }
        } else {
            // RFC 2920 section 3.1: 354 after every RCPT failed; end the empty
            // body, and ignore its reply.
            self.output.extend_from_slice(b".\r\n");
        }
        self.expect_final_replies();
    }

    pub(super) fn on_body(&mut self, reply: &Reply<'static>) {
        if self.any_accepted() {
            self.finish_accepted(reply);
        }
        let refused = !reply.code().is_positive();
        self.complete(refused);
    }

    /// Gives every accepted recipient the final reply.
    pub(super) fn finish_accepted(&mut self, reply: &Reply<'static>) {
        if let Some(c) = self.current.as_mut()
            && c.mail_refused.is_none()
        {
            for r in &mut c.results {
                if matches!(r, Some(RecipientResult::Delivered(_))) {
                    *r = Some(RecipientResult::from_reply(reply.clone()));
                }
            }
        }
    }
}
