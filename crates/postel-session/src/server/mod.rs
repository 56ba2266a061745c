//! The server side of an SMTP session, without I/O.
//!
//! ```text
//!            new() queues 220
//!                  |
//!                  v
//!   +-------> Command <----------------------------+
//!   |        |   |   \                              |
//!   |   MAIL/RCPT |  DATA/BDAT -> Body ... -> Message decision
//!   |   decision  |                                 |
//!   |        |    AUTH -> 334 exchange -> Auth decision
//!   |        |
//!   |     STARTTLS -> 220, input dropped -> TlsHandshake
//!   |                                          |
//!   +------------- tls_established() ----------+   (EHLO forgotten)
//!
//!   QUIT, shutdown() or too many errors -> Closed
//! ```
//!
//! Call [`Server::receive`] with what the peer sent, then [`Server::poll`] until
//! it returns `None`, answering each decision it hands out; write what
//! [`Server::transmit`] returns before waiting for more input. While a decision
//! is open the server reads no further command, so pipelined commands are
//! answered in order.

mod config;
mod decision;

use std::time::Duration;

use bytes::Bytes;
use postel_proto::framing::{BdatReader, BodyOptions, BodyViolation, DotDecoder, skip_line};
use postel_proto::types::{
    AuthParam, BodyType, Command, EnhancedStatus, ForwardPath, HeloName, InitialResponse,
    MailParameters, Reply, ReplyCode, ReversePath, SaslResponse,
};
use postel_proto::{CommandError, Invalid, Status};

pub use config::ServerConfig;
use decision::Token;
pub use decision::{AuthRequest, MailRequest, MessageRequest, Misuse, MisuseReason, RcptRequest};

use crate::sasl::{self, Credentials};

/// What the server tells the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The client said HELO or EHLO; the server has answered.
    Hello {
        /// The name it gave.
        name: HeloName<'static>,
        /// EHLO rather than HELO.
        extended: bool,
    },
    /// MAIL FROM, to be decided.
    Mail(MailRequest),
    /// RCPT TO, to be decided.
    Rcpt(RcptRequest),
    /// Message octets, dot-stuffing removed, in order. Everything between
    /// [`Event::Mail`] and [`Event::Message`] belongs to one message.
    Body(Bytes),
    /// The end of the message, to be decided: accept only once it is stored.
    Message(MessageRequest),
    /// The message was refused by the server before the application saw its end
    /// (too large, bare CR or LF, line too long); the server has answered.
    MessageAborted(BodyViolation),
    /// The transaction was dropped (RSET, EHLO, or a refused message).
    Reset,
    /// STARTTLS was accepted: start the TLS handshake on the connection now and
    /// call [`Server::tls_established`] when it completes.
    StartTls,
    /// AUTH credentials, to be decided.
    Auth(AuthRequest),
    /// The session is over: write what is left to transmit and close.
    Closed,
}

/// What handling one command produced.
enum Step {
    NeedInput,
    Handled,
    Event(Event),
}

/// Which decision is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Mail,
    Rcpt,
    Message,
    Auth,
}

/// Where the AUTH exchange stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SaslStep {
    /// PLAIN sent 334 and waits for the message.
    Plain,
    /// LOGIN asked for the user name.
    LoginUser,
    /// LOGIN asked for the password.
    LoginPassword(String),
}

#[derive(Debug)]
enum Phase {
    Command,
    Decision(Pending, Token),
    Data(Box<DotDecoder>),
    /// The body ended: what the next poll reports.
    DataEnd(Option<BodyViolation>),
    Bdat {
        reader: BdatReader,
        last: bool,
        /// The chunk is read and dropped: the transaction cannot take it.
        discard: Option<Reply<'static>>,
    },
    Sasl(SaslStep, &'static str),
    TlsHandshake,
    Closing,
    Closed,
}

#[derive(Debug, Default)]
struct Transaction {
    recipients: usize,
    size: u64,
    bdat: bool,
    binary: bool,
    too_large: bool,
}

/// A sans-I/O SMTP server session. See the [module documentation](self).
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // Independent facts of the session.
pub struct Server {
    config: ServerConfig,
    id: u64,
    seq: u64,
    phase: Phase,
    input: Vec<u8>,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    output: Vec<u8>,
    helo: Option<HeloName<'static>>,
    extended: bool,
    tls: bool,
    authenticated: bool,
    transaction: Option<Transaction>,
    errors: usize,
    body: Vec<u8>,
    /// Whether the MAIL being decided asked for BODY=BINARYMIME.
    mail_binary: bool,
    /// Events produced together, handed out one per poll.
    queued: std::collections::VecDeque<Event>,
}

fn reply(code: u16, enhanced: Option<(u8, u16, u16)>, text: &'static str) -> Reply<'static> {
    let code = ReplyCode::new(code).unwrap_or(ReplyCode::OK); // ok: constant codes below
    let enhanced = enhanced.and_then(|(c, s, d)| EnhancedStatus::new(c, s, d));
    Reply::new(code, enhanced, text).unwrap_or(Reply::OK) // ok: constant texts below
}

impl Server {
    /// A session on a new connection; the 220 greeting is ready to transmit.
    pub fn new(config: ServerConfig) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let mut server = Server {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            seq: 0,
            phase: Phase::Command,
            input: Vec::new(),
            discarding: false,
            output: Vec::new(),
            helo: None,
            extended: false,
            tls: false,
            authenticated: false,
            transaction: None,
            errors: 0,
            body: Vec::new(),
            mail_binary: false,
            queued: std::collections::VecDeque::new(),
            config,
        };
        let greeting = format!("{} {}", server.config.hostname, server.config.greeting);
        let greeting = Reply::new(ReplyCode::new(220).unwrap_or(ReplyCode::OK), None, greeting)
            .unwrap_or_else(|_| reply(220, None, "ESMTP")); // ok: a bad greeting setting
        server.send(&greeting);
        server
    }

    /// A session on a connection that is already TLS (port 465, RFC 8314).
    pub fn new_tls(config: ServerConfig) -> Self {
        let mut server = Server::new(config);
        server.tls = true;
        server
    }

    /// Appends octets received from the client. Call [`Server::poll`] next.
    pub fn receive(&mut self, data: &[u8]) {
        if matches!(
            self.phase,
            Phase::TlsHandshake | Phase::Closing | Phase::Closed
        ) {
            // After STARTTLS, plaintext must not reach the TLS session
            // (CVE-2011-0411); after close, nothing matters.
            return;
        }
        self.input.extend_from_slice(data);
    }

    /// Octets to write to the client, in order. Write them all before waiting
    /// for input.
    pub fn transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// True once the session is over and the connection should close (after
    /// what [`Server::transmit`] returns is written).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// True while a TLS session protects the connection.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// How long the I/O layer should wait for the client before giving up:
    /// RFC 5321 section 4.5.3.2.7 gives the server at least 5 minutes for the
    /// next command; within a message the 3 minutes of a data block
    /// (section 4.5.3.2.5) apply. `None` while the application holds a
    /// decision, during the TLS handshake, and once closed.
    pub fn timeout(&self) -> Option<Duration> {
        match self.phase {
            Phase::Command | Phase::Sasl(..) => Some(Duration::from_secs(300)),
            Phase::Data(_) | Phase::Bdat { .. } | Phase::DataEnd(_) => {
                Some(Duration::from_secs(180))
            }
            Phase::Decision(..) | Phase::TlsHandshake | Phase::Closing | Phase::Closed => None,
        }
    }

    /// Ends the session with 421 (service shutting down), for example when the
    /// server stops; any open decision is withdrawn.
    pub fn shutdown(&mut self) {
        if !matches!(self.phase, Phase::Closing | Phase::Closed) {
            self.send(&Reply::SHUTTING_DOWN);
            self.phase = Phase::Closing;
        }
    }

    /// The TLS handshake that followed [`Event::StartTls`] is done: the session
    /// starts over, forgetting EHLO and authentication (RFC 3207 section 4.2).
    pub fn tls_established(&mut self) {
        if matches!(self.phase, Phase::TlsHandshake) {
            self.tls = true;
            self.helo = None;
            self.extended = false;
            self.authenticated = false;
            self.transaction = None;
            self.input.clear();
            self.phase = Phase::Command;
        }
    }

    /// Advances the session over the input received so far. Returns the next
    /// event, or `None` when more input is needed or a decision is open.
    pub fn poll(&mut self) -> Option<Event> {
        if let Some(event) = self.queued.pop_front() {
            return Some(event);
        }
        loop {
            match &mut self.phase {
                Phase::Closed | Phase::Decision(..) | Phase::TlsHandshake => return None,
                Phase::Closing => {
                    self.phase = Phase::Closed;
                    return Some(Event::Closed);
                }
                Phase::DataEnd(violation) => {
                    let violation = *violation;
                    return Some(self.end_of_message(violation));
                }
                Phase::Data(decoder) => {
                    let mut body = std::mem::take(&mut self.body);
                    let end = decoder.decode(&self.input, &mut |d| body.extend_from_slice(d));
                    let used = end.map_or(self.input.len(), |e| e.consumed);
                    self.input.drain(..used);
                    if let Some(end) = end {
                        self.phase = Phase::DataEnd(end.violation);
                        if let Some(t) = self.transaction.as_mut() {
                            t.size = end.size;
                        }
                    }
                    if !body.is_empty() {
                        return Some(Event::Body(Bytes::from(body)));
                    }
                    end?;
                }
                Phase::Bdat {
                    reader,
                    last,
                    discard,
                } => {
                    let (chunk, done) = reader.read(&self.input);
                    let n = chunk.len();
                    let mut event = None;
                    if discard.is_none() && n > 0 {
                        let t = self.transaction.get_or_insert_with(Transaction::default);
                        t.size += n as u64;
                        if self.config.max_message_size.is_some_and(|max| t.size > max) {
                            t.too_large = true;
                        }
                        if !t.too_large {
                            event = Some(Event::Body(Bytes::copy_from_slice(chunk)));
                        }
                    }
                    let (last, discard) = (*last, discard.clone());
                    self.input.drain(..n);
                    if done {
                        self.end_of_chunk(last, discard);
                    }
                    if event.is_some() {
                        return event;
                    }
                    if !done {
                        return None;
                    }
                }
                Phase::Sasl(step, mechanism) => {
                    let (step, mechanism) = (step.clone(), *mechanism);
                    match postel_proto::codec::parse_sasl_line(&self.input, &self.config.parser) {
                        Ok(Status::Incomplete) => return None,
                        Ok(Status::Complete { value, consumed }) => {
                            let value = value.into_owned();
                            self.input.drain(..consumed);
                            if let Some(event) = self.sasl_line(step, mechanism, value) {
                                return Some(event);
                            }
                        }
                        Err(bad) => {
                            self.drop_input(&bad);
                            self.phase = Phase::Command;
                            let answer = match bad.error {
                                CommandError::Line(postel_proto::LineError::TooLong { .. }) => {
                                    Reply::SASL_LINE_TOO_LONG
                                }
                                CommandError::Line(_) => bad.error.reply(),
                                _ => reply(501, Some((5, 5, 2)), "Cannot decode response"),
                            };
                            self.error(&answer);
                        }
                    }
                }
                Phase::Command => match self.next_command() {
                    Step::NeedInput => return None,
                    Step::Event(event) => return Some(event),
                    Step::Handled => {}
                },
            }
        }
    }

    /// Reads and handles one command.
    fn next_command(&mut self) -> Step {
        if self.discarding {
            let Some(n) = skip_line(&self.input) else {
                self.input.clear();
                return Step::NeedInput;
            };
            self.input.drain(..n);
            self.discarding = false;
        }
        let parsed = postel_proto::codec::parse_command(&self.input, &self.config.parser);
        match parsed {
            Ok(Status::Incomplete) => Step::NeedInput,
            Ok(Status::Complete { value, consumed }) => {
                let command = value.into_owned();
                self.input.drain(..consumed);
                match self.command(command) {
                    Some(event) => Step::Event(event),
                    None => Step::Handled,
                }
            }
            Err(bad) => {
                self.drop_input(&bad);
                self.error(&bad.error.reply());
                Step::Handled
            }
        }
    }

    fn drop_input(&mut self, bad: &Invalid<CommandError>) {
        self.input.drain(..bad.consumed.min(self.input.len()));
        self.discarding = !bad.line_finished;
    }

    fn send(&mut self, reply: &Reply<'_>) {
        reply.write(&mut self.output);
    }

    /// Sends a reply for a protocol error, closing after too many.
    fn error(&mut self, reply: &Reply<'_>) {
        self.send(reply);
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.send(&Reply::TOO_MANY_ERRORS);
            self.phase = Phase::Closing;
        }
    }

    fn ask(&mut self, pending: Pending) -> Token {
        self.seq += 1;
        let token = Token {
            server: self.id,
            seq: self.seq,
        };
        self.phase = Phase::Decision(pending, token);
        token
    }

    fn is_pending(&self, pending: Pending, token: Token) -> bool {
        matches!(self.phase, Phase::Decision(p, t) if p == pending && t == token)
    }

    /// Applies an answer to the open decision: `None` is the standard
    /// acceptance, `Some(Ok)` a custom one, `Some(Err)` a rejection.
    fn decide(&mut self, pending: Pending, answer: Option<Result<Reply<'static>, Reply<'static>>>) {
        self.phase = Phase::Command;
        let accepted = !matches!(answer, Some(Err(_)));
        let standard = match pending {
            Pending::Mail => reply(250, Some((2, 1, 0)), "Sender OK"),
            Pending::Rcpt => reply(250, Some((2, 1, 5)), "Recipient OK"),
            Pending::Message => reply(250, Some((2, 0, 0)), "Message accepted"),
            Pending::Auth => reply(235, Some((2, 7, 0)), "Authentication successful"),
        };
        let text = match answer {
            None => standard,
            Some(Ok(r) | Err(r)) => r,
        };
        self.send(&text);
        match (pending, accepted) {
            (Pending::Mail, true) => {
                self.transaction = Some(Transaction {
                    binary: self.mail_binary,
                    ..Transaction::default()
                });
            }
            (Pending::Rcpt, true) => {
                if let Some(t) = self.transaction.as_mut() {
                    t.recipients += 1;
                }
            }
            (Pending::Message, _) => self.transaction = None,
            (Pending::Auth, true) => self.authenticated = true,
            _ => {}
        }
    }

    fn command(&mut self, command: Command<'static>) -> Option<Event> {
        match command {
            Command::Ehlo(name) => Some(self.hello(name, true)),
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
        let answer = if extended {
            self.config
                .capabilities(self.tls)
                .to_reply()
                .unwrap_or_else(|_| reply(250, None, "ESMTP")) // ok: built from config
        } else {
            Reply::new(ReplyCode::OK, None, self.config.hostname.to_string())
                .unwrap_or_else(|_| reply(250, None, "Hello"))
        };
        self.send(&answer);
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
            || params.requiretls
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
            return Some(reply(
                553,
                Some((5, 6, 7)),
                "Non-ASCII address needs SMTPUTF8",
            ));
        }
        None
    }

    fn rcpt(
        &mut self,
        to: ForwardPath<'static>,
        params: postel_proto::types::RcptParameters<'static>,
    ) -> Option<Event> {
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
        let token = self.ask(Pending::Rcpt);
        Some(Event::Rcpt(RcptRequest { to, params, token }))
    }

    /// The reply for DATA or BDAT when the transaction cannot take a body.
    fn body_refusal(&self) -> Option<Reply<'static>> {
        match &self.transaction {
            None => Some(reply(503, Some((5, 5, 1)), "Send MAIL first")),
            Some(t) if t.recipients == 0 => {
                Some(reply(554, Some((5, 5, 1)), "No valid recipients"))
            }
            _ => None,
        }
    }

    fn data(&mut self) -> Option<Event> {
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
        let mut opts = BodyOptions::default();
        opts.max_size = self.config.max_message_size;
        self.send(&reply(354, None, "End data with <CR><LF>.<CR><LF>"));
        self.phase = Phase::Data(Box::new(DotDecoder::new(opts)));
        None
    }

    fn bdat(&mut self, size: u64, last: bool) {
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

    fn end_of_chunk(&mut self, last: bool, discard: Option<Reply<'static>>) {
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

    fn end_of_message(&mut self, violation: Option<BodyViolation>) -> Event {
        if let Some(v) = violation {
            self.send(&v.reply());
            self.transaction = None;
            self.phase = Phase::Command;
            return Event::MessageAborted(v);
        }
        let (size, recipients) = self
            .transaction
            .as_ref()
            .map_or((0, 0), |t| (t.size, t.recipients));
        let token = self.ask(Pending::Message);
        Event::Message(MessageRequest {
            size,
            recipients,
            token,
        })
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

    fn auth(
        &mut self,
        mechanism: &str,
        initial: Option<InitialResponse<'static>>,
    ) -> Option<Event> {
        if self.config.auth_mechanisms.is_empty() {
            self.error(&Reply::NOT_IMPLEMENTED);
            return None;
        }
        if !self.tls && !self.config.allow_auth_without_tls {
            // RFC 4954 section 6: 538 when the mechanism needs encryption.
            self.send(&reply(
                538,
                Some((5, 7, 11)),
                "Encryption required for requested authentication mechanism",
            ));
            return None;
        }
        if self.helo.is_none() || !self.extended {
            self.error(&reply(503, Some((5, 5, 1)), "Send EHLO first"));
            return None;
        }
        if self.authenticated {
            self.error(&reply(503, Some((5, 5, 1)), "Already authenticated"));
            return None;
        }
        if self.transaction.is_some() {
            self.error(&reply(
                503,
                Some((5, 5, 1)),
                "AUTH not allowed during a mail transaction",
            ));
            return None;
        }
        let offered = self.config.auth_mechanisms.iter().find(|m| m.is(mechanism));
        let name: &'static str = match offered {
            Some(m) if m.is("PLAIN") => "PLAIN",
            Some(m) if m.is("LOGIN") => "LOGIN",
            _ => {
                self.send(&reply(
                    504,
                    Some((5, 5, 4)),
                    "Unrecognized authentication type",
                ));
                return None;
            }
        };
        let step = if name == "PLAIN" {
            SaslStep::Plain
        } else {
            SaslStep::LoginUser
        };
        match initial {
            Some(InitialResponse::Base64(data)) => {
                let line = SaslResponse::Data(data);
                self.sasl_line(step, name, line)
            }
            Some(InitialResponse::Empty) => {
                let line = SaslResponse::Data(postel_proto::types::Secret::new(
                    std::borrow::Cow::default(),
                ));
                self.sasl_line(step, name, line)
            }
            None => {
                self.challenge(&step);
                self.phase = Phase::Sasl(step, name);
                None
            }
        }
    }

    fn challenge(&mut self, step: &SaslStep) {
        let text = match step {
            SaslStep::Plain => None,
            SaslStep::LoginUser => Some("VXNlcm5hbWU6"), // "Username:"
            SaslStep::LoginPassword(_) => Some("UGFzc3dvcmQ6"), // "Password:"
        };
        let code = ReplyCode::AUTH_CONTINUE;
        let r = match text {
            Some(t) => Reply::new(code, None, t).unwrap_or_else(|_| Reply::code_only(code)),
            None => Reply::code_only(code),
        };
        self.send(&r);
    }

    fn sasl_line(
        &mut self,
        step: SaslStep,
        mechanism: &'static str,
        line: SaslResponse<'static>,
    ) -> Option<Event> {
        self.phase = Phase::Command;
        let data = match line {
            SaslResponse::Cancel => {
                self.send(&reply(501, Some((5, 0, 0)), "Authentication cancelled"));
                return None;
            }
            SaslResponse::Data(d) => d,
        };
        let Some(decoded) = sasl::decode_base64(data.expose()) else {
            self.error(&reply(501, Some((5, 5, 2)), "Cannot decode response"));
            return None;
        };
        let credentials = match step {
            SaslStep::Plain if decoded.is_empty() && data.expose().is_empty() => {
                // An empty initial response: ask for the message.
                self.challenge(&SaslStep::Plain);
                self.phase = Phase::Sasl(SaslStep::Plain, mechanism);
                return None;
            }
            SaslStep::Plain => sasl::parse_plain(&decoded),
            SaslStep::LoginUser => {
                let Ok(user) = String::from_utf8(decoded) else {
                    self.error(&reply(501, Some((5, 5, 2)), "Cannot decode response"));
                    return None;
                };
                let next = SaslStep::LoginPassword(user);
                self.challenge(&next);
                self.phase = Phase::Sasl(next, mechanism);
                return None;
            }
            SaslStep::LoginPassword(user) => String::from_utf8(decoded).ok().map(|p| Credentials {
                authorization_id: String::new(),
                authentication_id: user,
                password: postel_proto::types::Secret::new(p),
            }),
        };
        let Some(credentials) = credentials else {
            self.error(&reply(
                501,
                Some((5, 5, 2)),
                "Malformed authentication response",
            ));
            return None;
        };
        let token = self.ask(Pending::Auth);
        Some(Event::Auth(AuthRequest {
            mechanism,
            credentials,
            token,
        }))
    }
}
