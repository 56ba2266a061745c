//! The message phase of the client: the body after DATA's 354 or with BDAT,
//! and the reply, or with LMTP the replies, that end it.

use postel_proto::framing::dot_stuff;
use postel_proto::types::{Command, Reply};

use super::{Client, Expect, RecipientResult};

impl Client {
    /// Sends the body with BDAT, if any recipient was accepted.
    pub(super) fn start_body(&mut self) {
        if !self.any_accepted() {
            self.complete(true);
            return;
        }
        if let Some(c) = &self.current {
            let bdat = Command::Bdat {
                size: c.message.data.len() as u64,
                last: true,
            };
            bdat.write(&mut self.output);
            self.output.extend_from_slice(&c.message.data);
            self.expect_final_replies();
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
                self.output.extend_from_slice(&dot_stuff(&c.message.data));
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
