//! The handlers of each command verb, and the checks they make before the
//! application is asked.

use postel_proto::types::{
    AuthParam, BodyType, Command, ForwardPath, HeloName, MailParameters, RcptParameters, Reply,
    ReplyCode, ReversePath,
};

use super::{Event, MailRequest, Pending, Phase, RcptRequest, Server, reply};

impl Server {
    /// Handles one command read off the input.
    pub(super) fn command(&mut self, command: Command<'static>) -> Option<Event> {
        self.counts.count(command.verb());
        match command {
            // RFC 2033 section 4.1: an LMTP server answers HELO and EHLO with
            // 500; LHLO is its greeting, and an SMTP server does not know it.
            Command::Ehlo(_) | Command::Helo(_) if self.config.lmtp => {
                self.error(&reply(500, Some((5, 5, 1)), "This is LMTP: use LHLO"));
                None
            }
            Command::Lhlo(_) if !self.config.lmtp => {
                self.error(&Reply::UNRECOGNIZED);
                None
            }
            Command::Ehlo(name) | Command::Lhlo(name) => Some(self.hello(name, true)),
            Command::Helo(name) => Some(self.hello(name, false)),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => {
                self.bdat(size, last);
                None
            }
            Command::Rset => {
                self.send(&reply(250, Some((2, 0, 0)), "Reset"));
                self.transaction.take().map(|_| Event::Reset)
            }
            Command::Noop(_) => {
                self.send(&Reply::OK);
                None
            }
            Command::Quit => {
                self.send(&Reply::BYE);
                self.phase = Phase::Closing;
                None
            }
            Command::Vrfy(_) => {
                // RFC 5321 section 3.5.3: 252 when the server will not verify.
                self.send(&reply(
                    252,
                    Some((2, 5, 0)),
                    "Cannot VRFY user, but will accept message",
                ));
                None
            }
            Command::Expn(_) => {
                self.send(&reply(502, Some((5, 5, 1)), "EXPN not available"));
                None
            }
            Command::Help(_) => {
                self.send(&reply(214, Some((2, 0, 0)), "See RFC 5321"));
                None
            }
            Command::StartTls => self.starttls(),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism.as_str(), initial_response),
            _ => {
                self.error(&Reply::NOT_IMPLEMENTED);
                None
            }
        }
    }

    fn hello(&mut self, name: HeloName<'static>, extended: bool) -> Event {
        let reset = self.transaction.take().is_some();
        if extended {
            let written = self
                .config
                .capabilities(self.tls)
                .write_reply(&mut self.output);
            if written.is_err() {
                // A greeting no reply can carry: a bare acceptance instead.
                self.send(&reply(250, None, "ESMTP"));
            }
        } else {
            let answer = Reply::new(ReplyCode::OK, None, self.config.hostname.to_string())
                .unwrap_or_else(|_| reply(250, None, "Hello"));
            self.send(&answer);
        }
        self.helo = Some(name.clone());
        self.extended = extended;
        let hello = Event::Hello { name, extended };
        if reset {
            // EHLO ends the transaction (RFC 5321 section 4.1.4): the
            // application hears of the reset first.
            self.queued.push_back(hello);
            return Event::Reset;
        }
        hello
    }

    fn mail(
        &mut self,
        from: ReversePath<'static>,
        params: MailParameters<'static>,
    ) -> Option<Event> {
        if self.helo.is_none() {
            self.error(&reply(503, Some((5, 5, 1)), "Send EHLO or HELO first"));
            return None;
        }
        if self.transaction.is_some() {
            self.error(&reply(503, Some((5, 5, 1)), "Nested MAIL command"));
            return None;
        }
        if self.config.require_auth && !self.authenticated {
            self.send(&reply(530, Some((5, 7, 0)), "Authentication required"));
            return None;
        }
        if let Some(problem) = self.check_mail_params(&from, &params) {
            self.send(&problem);
            return None;
        }
        self.mail_binary = params.body == Some(BodyType::BinaryMime);
        self.mail_smtputf8 = params.smtputf8;
        let mut params = params;
        if matches!(params.auth, Some(AuthParam::Identity(_))) && !self.authenticated {
            // RFC 4954 section 5: from a client that has not authenticated,
            // the server must act as if AUTH=<> had been given.
            params.auth = Some(AuthParam::Unknown);
        }
        let token = self.ask(Pending::Mail);
        Some(Event::Mail(MailRequest {
            from,
            params,
            token,
        }))
    }

    /// What MAIL parameters the server refuses before the application sees them.
    fn check_mail_params(
        &self,
        from: &ReversePath<'_>,
        params: &MailParameters<'_>,
    ) -> Option<Reply<'static>> {
        if !params.other.is_empty()
            || (params.smtputf8 && !self.config.smtputf8)
            || (params.body == Some(BodyType::BinaryMime) && !self.config.chunking)
            || (params.body == Some(BodyType::EightBitMime) && !self.config.eight_bit_mime)
            || ((params.ret.is_some() || params.envid.is_some()) && !self.config.dsn)
            || (matches!(params.auth, Some(AuthParam::Identity(_)))
                && self.config.auth_mechanisms.is_empty())
            // RFC 8689 section 4.1: only where it was offered, under TLS.
            || (params.requiretls && !(self.config.requiretls && self.tls))
            || params.mt_priority.is_some()
        {
            return Some(Reply::PARAMETERS_NOT_RECOGNIZED);
        }
        if let (Some(size), Some(max)) = (params.size, self.config.max_message_size)
            && size > max
        {
            return Some(Reply::MESSAGE_TOO_BIG);
        }
        if from.mailbox().is_some_and(|m| !m.is_ascii()) && !params.smtputf8 {
            // RFC 6531 section 3.7.4.1.
            return Some(Reply::NON_ASCII_ADDRESS);
        }
        None
    }

    fn rcpt(&mut self, to: ForwardPath<'static>, params: RcptParameters<'static>) -> Option<Event> {
        let Some(t) = self.transaction.as_ref() else {
            self.error(&reply(503, Some((5, 5, 1)), "Send MAIL first"));
            return None;
        };
        if t.recipients >= self.config.max_recipients {
            // RFC 5321 section 4.5.3.1.10: 452, and the client retries the rest later.
            self.send(&reply(452, Some((4, 5, 3)), "Too many recipients"));
            return None;
        }
        if !params.other.is_empty()
            || ((params.notify.is_some() || params.orcpt.is_some()) && !self.config.dsn)
        {
            self.send(&Reply::PARAMETERS_NOT_RECOGNIZED);
            return None;
        }
        if let ForwardPath::Mailbox(m) = &to
            && !m.is_ascii()
            && !t.smtputf8
        {
            // RFC 6531 section 3.7.4.1, as for the sender.
            self.send(&Reply::NON_ASCII_ADDRESS);
            return None;
        }
        if self.config.lmtp {
            self.rcpt_pending = Some(Box::new(to.clone()));
        }
        let token = self.ask(Pending::Rcpt);
        Some(Event::Rcpt(RcptRequest { to, params, token }))
    }

    fn starttls(&mut self) -> Option<Event> {
        if !self.config.starttls {
            self.error(&Reply::NOT_IMPLEMENTED);
            return None;
        }
        if self.tls {
            self.error(&reply(503, Some((5, 5, 1)), "TLS already active"));
            return None;
        }
        self.send(&reply(220, Some((2, 0, 0)), "Ready to start TLS"));
        // Anything pipelined after STARTTLS arrived in plaintext and must not be
        // read as if it came over TLS (CVE-2011-0411).
        self.input.clear();
        self.phase = Phase::TlsHandshake;
        Some(Event::StartTls)
    }
}
