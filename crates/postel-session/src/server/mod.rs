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

mod auth;
mod body;
mod command;
mod config;
mod decision;
mod input;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use postel_proto::framing::{BdatReader, BodyViolation, DotDecoder, TraceScanner, skip_line};
use postel_proto::types::{EnhancedStatus, ForwardPath, HeloName, Reply, ReplyCode};
use postel_proto::{CommandError, Invalid, Status};

pub use config::ServerConfig;
use decision::Token;
pub use decision::{
    AuthRequest, DataRequest, LmtpMessageRequest, MailRequest, MessageRequest, Misuse,
    MisuseReason, RcptRequest,
};

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
    /// DATA, to be decided before the 354 (only with
    /// [`ServerConfig::decide_data`]); a refusal ends the transaction.
    Data(DataRequest),
    /// RCPT TO, to be decided.
    Rcpt(RcptRequest),
    /// Message octets, dot-stuffing removed, in order. Everything between
    /// [`Event::Mail`] and [`Event::Message`] belongs to one message.
    Body(Bytes),
    /// The end of the message, to be decided: accept only once it is stored.
    Message(MessageRequest),
    /// LMTP: the end of the message for one accepted recipient, to be
    /// decided; one such event per accepted recipient, in RCPT order.
    LmtpMessage(LmtpMessageRequest),
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

/// Commands handled per verb: a fixed table, so a session's memory does not
/// grow with what the client sends.
#[derive(Debug, Default)]
struct CommandCounts([u32; VERBS.len()]);

/// The verbs counted, in `CommandCounts` order.
const VERBS: [&str; 16] = [
    "HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN",
    "HELP", "STARTTLS", "AUTH", "invalid",
];

impl CommandCounts {
    fn count(&mut self, verb: &str) {
        if let Some(i) = VERBS.iter().position(|v| *v == verb) {
            self.0[i] = self.0[i].saturating_add(1);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        VERBS
            .iter()
            .zip(self.0)
            .filter(|(_, n)| *n > 0)
            .map(|(v, n)| (*v, u64::from(n)))
    }
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
    Data,
    Message,
    LmtpMessage,
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
    /// LMTP: the decision for accepted recipient `usize` is the next to ask.
    LmtpReplies(usize),
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
#[allow(clippy::struct_excessive_bools)] // Independent facts of the transaction.
struct Transaction {
    recipients: usize,
    size: u64,
    bdat: bool,
    binary: bool,
    too_large: bool,
    /// SMTPUTF8 was given on MAIL.
    smtputf8: bool,
    /// The hop count, read as the header section streams past.
    trace: TraceScanner,
    /// LMTP: the accepted recipients, in order.
    accepted: Vec<ForwardPath<'static>>,
}

/// A sans-I/O SMTP server session. See the [module documentation](self).
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // Independent facts of the session.
pub struct Server {
    /// Shared by every session that was given the same `Arc`.
    config: Arc<ServerConfig>,
    id: u64,
    seq: u64,
    phase: Phase,
    input: input::Input,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    /// Command lines refused for their length.
    long_lines: usize,
    /// Commands handled, by verb.
    counts: CommandCounts,
    output: Vec<u8>,
    helo: Option<HeloName<'static>>,
    extended: bool,
    tls: bool,
    authenticated: bool,
    /// Boxed: an idle session holds only the pointer's room.
    transaction: Option<Box<Transaction>>,
    errors: usize,
    body: Vec<u8>,
    /// Whether the MAIL being decided asked for BODY=BINARYMIME.
    mail_binary: bool,
    /// Whether the MAIL being decided asked for SMTPUTF8.
    mail_smtputf8: bool,
    /// LMTP: the recipient being decided.
    rcpt_pending: Option<Box<ForwardPath<'static>>>,
    /// LMTP: the accepted recipient whose message decision is open.
    lmtp_next: usize,
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
    ///
    /// Takes a [`ServerConfig`] or an `Arc` of one: sessions given clones of
    /// one `Arc` share the configuration, so that each idle session holds
    /// only its own state (under 512 octets).
    pub fn new(config: impl Into<Arc<ServerConfig>>) -> Self {
        let config = config.into();
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let mut server = Server {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            seq: 0,
            phase: Phase::Command,
            input: input::Input::default(),
            discarding: false,
            long_lines: 0,
            counts: CommandCounts::default(),
            output: Vec::new(),
            helo: None,
            extended: false,
            tls: false,
            authenticated: false,
            transaction: None,
            errors: 0,
            body: Vec::new(),
            mail_binary: false,
            mail_smtputf8: false,
            rcpt_pending: None,
            lmtp_next: 0,
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
    pub fn new_tls(config: impl Into<Arc<ServerConfig>>) -> Self {
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
        if matches!(self.phase, Phase::Data(_)) && self.input.is_empty() {
            // Body octets with nothing unread before them are decoded
            // straight from `data`, not copied into the input first.
            let used = self.decode_body(data);
            self.input.extend(&data[used..]);
            return;
        }
        self.input.extend(data);
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

    /// How many commands of each verb this session has handled (and
    /// `invalid` for lines that were no command), for an operator's metrics.
    pub fn command_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.counts.iter()
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
            Phase::Data(_) | Phase::Bdat { .. } | Phase::DataEnd(_) | Phase::LmtpReplies(_) => {
                Some(Duration::from_secs(180))
            }
            Phase::Decision(..) | Phase::TlsHandshake | Phase::Closing | Phase::Closed => None,
        }
    }

    /// Ends the session with 421 (service shutting down), for example when the
    /// server stops; any open decision is withdrawn.
    pub fn shutdown(&mut self) {
        self.shutdown_with(&Reply::SHUTTING_DOWN);
    }

    /// Ends the session with `reply` (a 421 of the application's, such as a
    /// filter's), as [`Server::shutdown`] does with its own.
    pub fn shutdown_with(&mut self, reply: &Reply<'_>) {
        if !matches!(self.phase, Phase::Closing | Phase::Closed) {
            self.send(reply);
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
            let flow = match &mut self.phase {
                Phase::Closed | Phase::Decision(..) | Phase::TlsHandshake => return None,
                Phase::Closing => {
                    self.phase = Phase::Closed;
                    return Some(Event::Closed);
                }
                Phase::DataEnd(violation) => {
                    let violation = *violation;
                    match self.data_end(violation) {
                        Some(event) => return Some(event),
                        None => ControlFlow::Continue(()),
                    }
                }
                Phase::LmtpReplies(next) => {
                    let next = *next;
                    if let Some(event) = self.lmtp_decision(next) {
                        return Some(event);
                    }
                    ControlFlow::Continue(())
                }
                Phase::Data(_) => self.poll_data(),
                Phase::Bdat { .. } => self.poll_bdat(),
                Phase::Sasl(..) => self.poll_sasl(),
                Phase::Command => match self.next_command() {
                    Step::NeedInput => return None,
                    Step::Event(event) => return Some(event),
                    Step::Handled => ControlFlow::Continue(()),
                },
            };
            if let ControlFlow::Break(event) = flow {
                return event;
            }
        }
    }

    /// Reads and handles one command.
    fn next_command(&mut self) -> Step {
        if self.discarding {
            let Some(n) = skip_line(self.input.unread()) else {
                self.input.clear();
                return Step::NeedInput;
            };
            self.input.consume(n);
            self.discarding = false;
        }
        let parsed = postel_proto::codec::parse_command(self.input.unread(), &self.config.parser);
        match parsed {
            Ok(Status::Incomplete) => Step::NeedInput,
            Ok(Status::Complete { value, consumed }) => {
                let command = value.into_owned();
                self.input.consume(consumed);
                match self.command(command) {
                    Some(event) => Step::Event(event),
                    None => Step::Handled,
                }
            }
            Err(bad) => {
                self.counts.count("invalid");
                self.drop_input(&bad);
                self.error(&bad.error.reply());
                if self.long_lines >= self.config.max_long_lines
                    && !matches!(self.phase, Phase::Closing)
                {
                    // A client that keeps sending lines past the limit is not
                    // speaking SMTP; each such line costs reading to its end.
                    self.send(&reply(
                        421,
                        Some((4, 7, 0)),
                        "Too many over-long lines, closing transmission channel",
                    ));
                    self.phase = Phase::Closing;
                }
                Step::Handled
            }
        }
    }

    fn drop_input(&mut self, bad: &Invalid<CommandError>) {
        self.input.consume(bad.consumed);
        self.discarding = !bad.line_finished;
        if matches!(
            bad.error,
            CommandError::Line(postel_proto::LineError::TooLong { .. })
        ) {
            self.long_lines += 1;
        }
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
            Pending::Data => reply(354, None, "End data with <CR><LF>.<CR><LF>"),
            Pending::Message => reply(250, Some((2, 0, 0)), "Message accepted"),
            Pending::LmtpMessage => reply(250, Some((2, 0, 0)), "Message delivered"),
            Pending::Auth => reply(235, Some((2, 7, 0)), "Authentication successful"),
        };
        let text = match answer {
            None => standard,
            Some(Ok(r) | Err(r)) => r,
        };
        self.send(&text);
        match (pending, accepted) {
            (Pending::Mail, true) => {
                self.transaction = Some(Box::new(Transaction {
                    binary: self.mail_binary,
                    smtputf8: self.mail_smtputf8,
                    ..Transaction::default()
                }));
            }
            (Pending::Rcpt, true) => {
                let to = self.rcpt_pending.take();
                if let Some(t) = self.transaction.as_mut() {
                    t.recipients += 1;
                    t.accepted.extend(to.map(|to| *to));
                }
            }
            (Pending::Data, true) => self.start_data(),
            (Pending::Data, false) => {
                // A refused DATA ends the transaction, as a refused message does.
                self.transaction = None;
                self.queued.push_back(Event::Reset);
            }
            (Pending::Message, _) => self.transaction = None,
            (Pending::LmtpMessage, _) => self.phase = Phase::LmtpReplies(self.lmtp_next + 1),
            (Pending::Auth, true) => self.authenticated = true,
            _ => {}
        }
    }
}
