//! The client side of an SMTP session, without I/O: one connection that
//! delivers one or more messages.
//!
//! ```text
//!   greeting 220 -> EHLO (HELO if refused) -> [STARTTLS -> EHLO] -> [AUTH]
//!        -> for each message: MAIL, RCPT..., DATA or BDAT -> outcome -> RSET
//!        -> QUIT
//! ```
//!
//! Queue messages with [`Client::send`], then loop: write [`Client::transmit`],
//! feed what the server answers to [`Client::receive`], and [`Client::poll`]
//! for events. Each message ends in an [`Outcome`] with one result per
//! recipient, so a queue retries exactly the recipients that need it.

mod adapt;
mod body;
mod reader;

use std::collections::VecDeque;
use std::time::Duration;

use postel_proto::codec::{EhloReply, parse_ehlo_reply, parse_reply};
use postel_proto::types::{
    Capabilities, Command, Domain, ForwardPath, HeloName, InitialResponse, MailParameters,
    Mechanism, RcptParameters, Reply, ReversePath, Secret,
};
use postel_proto::{ParserOptions, ReplyError, Status};

use crate::sasl::encode_base64;
use reader::{ReplyCaps, ReplyFramer};

/// When to use STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never, even if offered.
    Never,
    /// When the server offers it; go on in plaintext otherwise (RFC 3207
    /// opportunistic TLS, what MTAs do by default).
    Opportunistic,
    /// Only over TLS: fail the connection if the server does not offer it.
    Required,
}

/// Client settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // One switch per protocol choice.
pub struct ClientConfig {
    /// The name sent in EHLO.
    pub helo_name: Domain<'static>,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// Credentials for AUTH PLAIN (user, password); `None` sends no AUTH.
    pub auth: Option<(String, Secret<String>)>,
    /// Send MAIL, every RCPT and DATA in one flight when the server offers
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// Send the body with BDAT when the server offers CHUNKING (RFC 3030).
    pub chunking: bool,
    /// Grammar options for the server's replies.
    pub parser: ParserOptions,
    /// Most octets one reply may hold, all its lines together: 64 KiB, as
    /// Postfix bounds what it reads of a reply. Past it the session fails
    /// with [`ClientError::ReplyTooLong`].
    pub max_reply_octets: usize,
    /// Most lines one reply may hold: 256 (an EHLO reply has a line per
    /// extension, about 20 in practice).
    pub max_reply_lines: usize,
    /// Refuse to deliver to a server whose greeting or EHLO reply names
    /// [`ClientConfig::helo_name`]: it is this host, and the mail would loop
    /// (RFC 5321 section 5.1). On by default; the session fails with
    /// [`ClientError::LoopsBack`].
    pub refuse_own_name: bool,
    /// How long each reply may take (RFC 5321 section 4.5.3.2).
    pub timeouts: Timeouts,
    /// Speak LMTP (RFC 2033): LHLO instead of EHLO (and no HELO), and after
    /// the message one reply per accepted recipient. A connection lost half
    /// way through those replies leaves the unanswered recipients transient.
    pub lmtp: bool,
}

/// The time the server has for each reply, from when the client starts
/// waiting for it. Defaults are RFC 5321 section 4.5.3.2's minimums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// The 220 greeting: 5 minutes (section 4.5.3.2.1).
    pub greeting: Duration,
    /// The reply to MAIL: 5 minutes (section 4.5.3.2.2).
    pub mail: Duration,
    /// Each reply to RCPT: 5 minutes (section 4.5.3.2.3).
    pub rcpt: Duration,
    /// The 354 to DATA: 2 minutes (section 4.5.3.2.4).
    pub data: Duration,
    /// Each write of the message to the server: 3 minutes (section
    /// 4.5.3.2.5); applied by the driver, which does the writing.
    pub data_block: Duration,
    /// The reply to the end of the message: 10 minutes (section 4.5.3.2.6).
    pub final_dot: Duration,
    /// EHLO, STARTTLS, AUTH, RSET and QUIT: 5 minutes, as for MAIL.
    pub other: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Timeouts {
            greeting: minutes(5),
            mail: minutes(5),
            rcpt: minutes(5),
            data: minutes(2),
            data_block: minutes(3),
            final_dot: minutes(10),
            other: minutes(5),
        }
    }
}

impl ClientConfig {
    /// Opportunistic TLS, no AUTH, PIPELINING and CHUNKING when offered.
    pub fn new(helo_name: Domain<'static>) -> Self {
        ClientConfig {
            helo_name,
            tls: TlsPolicy::Opportunistic,
            auth: None,
            pipelining: true,
            chunking: true,
            parser: ParserOptions::STRICT,
            max_reply_octets: 64 * 1024,
            max_reply_lines: 256,
            refuse_own_name: true,
            lmtp: false,
            timeouts: Timeouts::default(),
        }
    }
}

/// One message to deliver: the envelope and the message octets (headers and
/// body, CRLF line endings; dot-stuffing is done here).
#[derive(Debug, Clone)]
pub struct Message {
    /// MAIL FROM.
    pub from: ReversePath<'static>,
    /// MAIL parameters (SIZE is filled in when the server offers it).
    pub params: MailParameters<'static>,
    /// RCPT TO, each with its parameters.
    pub recipients: Vec<(ForwardPath<'static>, RcptParameters<'static>)>,
    /// The message, whole or in pieces.
    pub data: MessageBody,
}

/// The octets of a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageBody {
    /// The whole message, in memory.
    Whole(Vec<u8>),
    /// The driver hands the message over in pieces when the client asks
    /// ([`ClientEvent::BodyWanted`]): each through [`Client::send_body`],
    /// then [`Client::end_body`]. Nothing of it need be in memory at once.
    ///
    /// ```
    /// use postel_session::client::{Client, ClientConfig, ClientEvent, Message, MessageBody};
    /// use postel_proto::types::{Domain, ForwardPath, Mailbox, ReversePath};
    ///
    /// let mut client = Client::new(ClientConfig::new(Domain::try_from("client.example").unwrap()));
    /// client.send(Message {
    ///     from: ReversePath::Null,
    ///     params: Default::default(),
    ///     recipients: vec![(ForwardPath::Mailbox(Mailbox::try_from("b@example.org").unwrap()), Default::default())],
    ///     data: MessageBody::Streamed { size: Some(12), utf8_header: false },
    /// });
    /// client.finish();
    /// for reply in ["220 mx ready\r\n", "250 mx\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n"] {
    ///     client.receive(reply.as_bytes());
    ///     while let Some(_) = client.poll() {}
    /// }
    /// assert!(client.wants_body());
    /// client.transmit();
    /// client.send_body(b"\r\n.hidden");
    /// client.send_body(b"\r\n");
    /// client.end_body();
    /// assert_eq!(client.transmit(), b"\r\n..hidden\r\n.\r\n");
    /// ```
    Streamed {
        /// The length in octets, for SIZE (RFC 1870), when known.
        size: Option<u64>,
        /// Whether the header section holds octets that are not ASCII,
        /// which a server without SMTPUTF8 must not get (RFC 6531).
        utf8_header: bool,
    },
}

impl From<Vec<u8>> for MessageBody {
    fn from(whole: Vec<u8>) -> Self {
        MessageBody::Whole(whole)
    }
}

/// How the body in pieces is being sent.
#[derive(Debug)]
enum Streaming {
    /// After DATA's 354: dot-stuffed across the pieces.
    Data(postel_proto::framing::DotEncoder),
    /// As BDAT chunks, one per piece.
    Bdat,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientResult {
    /// The server took responsibility for the message (RFC 5321 section 6.1).
    Delivered(Reply<'static>),
    /// Try again later (4yz, or the connection failed).
    Transient(Reply<'static>),
    /// Do not retry (5yz): bounce.
    Permanent(Reply<'static>),
}

impl RecipientResult {
    fn from_reply(reply: Reply<'static>) -> Self {
        if reply.code().is_positive() {
            RecipientResult::Delivered(reply)
        } else if reply.code().is_permanent() {
            RecipientResult::Permanent(reply)
        } else {
            RecipientResult::Transient(reply)
        }
    }
}

/// The result of one message: one entry per recipient, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Index of the message in the order it was queued.
    pub message: usize,
    /// Each recipient's result.
    pub recipients: Vec<(ForwardPath<'static>, RecipientResult)>,
}

/// Why the connection failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server sent something that is not a reply.
    #[error("malformed reply: {0}")]
    Protocol(ReplyError),
    /// The server refused the session (greeting, EHLO and HELO, or AUTH).
    #[error("server refused the session: {0}")]
    Refused(Reply<'static>),
    /// TLS is required and the server does not offer STARTTLS.
    #[error("the server does not offer STARTTLS")]
    TlsUnavailable,
    /// STARTTLS was answered with a reply that neither starts TLS nor, under
    /// opportunistic policy, lets the session go on in plaintext (421, or
    /// any refusal when TLS is required). Never a reason to send in
    /// plaintext (RFC 3207 section 4).
    #[error("STARTTLS refused: {0}")]
    TlsRefused(Reply<'static>),
    /// The server greeted with this host's own name: delivering to it would
    /// loop. A permanent failure (554 5.4.6).
    #[error("the server {0} is this host: mail loops back to itself")]
    LoopsBack(String),
    /// One reply was longer than [`ClientConfig::max_reply_octets`] or had
    /// more lines than [`ClientConfig::max_reply_lines`].
    #[error("reply longer than {octets} octets or {lines} lines")]
    ReplyTooLong {
        /// The octet cap.
        octets: usize,
        /// The line cap.
        lines: usize,
    },
}

impl ClientError {
    /// The reply the messages of a failed connection are recorded with:
    /// the server's own reply when it sent one ([`ClientError::Refused`],
    /// [`ClientError::TlsRefused`]), otherwise a local diagnosis saying what
    /// went wrong, never a reply the server did not send.
    pub fn diagnosis(&self) -> Reply<'static> {
        let local = |status: (u8, u16, u16), text: String| {
            Reply::new(
                postel_proto::types::ReplyCode::LOCAL_ERROR,
                postel_proto::types::EnhancedStatus::new(status.0, status.1, status.2),
                text,
            )
            .unwrap_or(Reply::TRANSIENT_PROTOCOL_ERROR)
        };
        match self {
            ClientError::Refused(r) | ClientError::TlsRefused(r) => r.clone(),
            // RFC 3463: X.5.0, other or undefined protocol status.
            ClientError::Protocol(e) => {
                local((4, 5, 0), format!("Protocol error: malformed reply ({e})"))
            }
            ClientError::ReplyTooLong { octets, lines } => local(
                (4, 5, 0),
                format!("Protocol error: reply longer than {octets} octets or {lines} lines"),
            ),
            ClientError::LoopsBack(name) => Reply::new(
                postel_proto::types::ReplyCode::new(554)
                    .unwrap_or(postel_proto::types::ReplyCode::LOCAL_ERROR),
                postel_proto::types::EnhancedStatus::new(5, 4, 6),
                format!("Mail for this destination loops back to myself ({name})"),
            )
            .unwrap_or(Reply::TOO_MANY_HOPS),
            // RFC 5248: X.7.10, encryption needed.
            ClientError::TlsUnavailable => local(
                (4, 7, 10),
                "TLS is required but the server does not offer STARTTLS".into(),
            ),
        }
    }

    /// True when [`ClientError::diagnosis`] is this client's own finding
    /// rather than the server's reply.
    pub fn is_local(&self) -> bool {
        !matches!(self, ClientError::Refused(_) | ClientError::TlsRefused(_))
    }
}

/// What the client tells its driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The server agreed to STARTTLS: run the TLS handshake now, then call
    /// [`Client::tls_established`].
    StartTls,
    /// A message is done, with a result per recipient.
    Delivered(Outcome),
    /// The connection failed; messages not yet done are reported as
    /// [`ClientEvent::Delivered`] with transient results first.
    Failed(ClientError),
    /// QUIT was answered: close the connection.
    Closed,
    /// The message in pieces ([`MessageBody::Streamed`]) is to be sent
    /// now: hand each piece to [`Client::send_body`], writing out what
    /// [`Client::transmit`] gives as you go, then call
    /// [`Client::end_body`].
    BodyWanted,
}

/// One reply, parsed for what it answers.
enum Parsed {
    Ehlo(Result<Capabilities<'static>, Reply<'static>>),
    Reply(Reply<'static>),
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    Mail,
    Rcpt(usize),
    Data,
    Body,
    /// The reply to a BDAT chunk that is not the last.
    Chunk,
    /// LMTP: the reply after the message for accepted recipient `usize`.
    LmtpBody(usize),
    Rset,
    Quit,
}

/// The message being delivered.
#[derive(Debug)]
struct InFlight {
    index: usize,
    message: Message,
    results: Vec<Option<RecipientResult>>,
    /// MAIL's refusal, which every recipient shares.
    mail_refused: Option<Reply<'static>>,
    /// LMTP: recipients whose reply after the message has come; a failed
    /// connection keeps their results.
    answered: Vec<bool>,
}

/// A sans-I/O SMTP client connection. See the [module documentation](self).
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // Independent facts of the connection.
pub struct Client {
    config: ClientConfig,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Replies still to come, in order.
    expect: VecDeque<Expect>,
    caps: Option<Capabilities<'static>>,
    tls: bool,
    queue: VecDeque<Message>,
    sent: usize,
    current: Option<InFlight>,
    events: VecDeque<ClientEvent>,
    finished: bool,
    closed: bool,
    waiting_tls: bool,
    framer: ReplyFramer,
    replies_read: u64,
    /// A message in pieces is being sent.
    streaming: Option<Streaming>,
}

impl Client {
    /// A client on a new connection, waiting for the greeting.
    pub fn new(config: ClientConfig) -> Self {
        Client {
            config,
            input: Vec::new(),
            output: Vec::new(),
            expect: VecDeque::from([Expect::Greeting]),
            caps: None,
            tls: false,
            queue: VecDeque::new(),
            sent: 0,
            current: None,
            events: VecDeque::new(),
            finished: false,
            closed: false,
            waiting_tls: false,
            framer: ReplyFramer::default(),
            replies_read: 0,
            streaming: None,
        }
    }

    /// Queues a message for this connection.
    pub fn send(&mut self, message: Message) {
        self.queue.push_back(message);
        self.next();
    }

    /// No more messages: QUIT once the queued ones are done.
    pub fn finish(&mut self) {
        self.finished = true;
        self.next();
    }

    /// The server's capabilities, once EHLO was answered.
    pub fn capabilities(&self) -> Option<&Capabilities<'static>> {
        self.caps.as_ref()
    }

    /// Octets to write to the server.
    pub fn transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// True once the connection should be closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// How long the server may take over the reply now awaited, counted from
    /// when the client began to wait for it, not from the last octet: a server
    /// that trickles a reply an octet at a time gets no more time than one
    /// that is silent. The limits are [`ClientConfig::timeouts`]. `None` when
    /// no reply is awaited.
    pub fn timeout(&self) -> Option<Duration> {
        let t = &self.config.timeouts;
        Some(match self.expect.front()? {
            Expect::Greeting => t.greeting,
            Expect::Mail => t.mail,
            Expect::Rcpt(_) => t.rcpt,
            Expect::Data => t.data,
            Expect::Body | Expect::LmtpBody(_) => t.final_dot,
            Expect::Chunk => t.data_block,
            _ => t.other,
        })
    }

    /// Counts the replies read so far. A driver keeps the deadline of
    /// [`Client::timeout`] while this stays the same, and starts a new one
    /// when it changes: one deadline per stage, however the octets arrive.
    pub fn replies_read(&self) -> u64 {
        self.replies_read
    }

    /// Which stage the awaited reply belongs to, for a driver's log or its
    /// diagnosis of a timeout.
    pub fn awaiting(&self) -> Option<&'static str> {
        Some(match self.expect.front()? {
            Expect::Greeting => "the greeting",
            Expect::Ehlo | Expect::Helo => "the reply to EHLO",
            Expect::StartTls => "the reply to STARTTLS",
            Expect::Auth => "the reply to AUTH",
            Expect::Mail => "the reply to MAIL",
            Expect::Rcpt(_) => "the reply to RCPT",
            Expect::Data => "the reply to DATA",
            Expect::Body | Expect::LmtpBody(_) => "the reply to the end of the message",
            Expect::Chunk => "the reply to BDAT",
            Expect::Rset => "the reply to RSET",
            Expect::Quit => "the reply to QUIT",
        })
    }

    /// The TLS handshake after [`ClientEvent::StartTls`] is done: EHLO again
    /// (RFC 3207 section 4.2).
    pub fn tls_established(&mut self) {
        if self.waiting_tls {
            self.waiting_tls = false;
            self.tls = true;
            self.caps = None;
            self.input.clear();
            self.framer.reset();
            self.ehlo();
        }
    }

    /// Appends octets received from the server.
    pub fn receive(&mut self, data: &[u8]) {
        if !self.waiting_tls && !self.closed {
            self.input.extend_from_slice(data);
        }
    }

    /// Handles the replies received so far; returns the next event. Each
    /// octet is looked at once for framing and once by the reply parser,
    /// however the input was split.
    pub fn poll(&mut self) -> Option<ClientEvent> {
        while self.events.is_empty() && !self.closed && !self.waiting_tls {
            let Some(&expect) = self.expect.front() else {
                break;
            };
            let caps = ReplyCaps {
                octets: self.config.max_reply_octets,
                lines: self.config.max_reply_lines,
                line: self.config.parser.limits.reply_line,
            };
            let end = match self.framer.next(&self.input, caps) {
                Ok(Some(end)) => end,
                Ok(None) => break,
                Err(e) => {
                    self.fail(e);
                    continue;
                }
            };
            self.framer.reset();
            self.replies_read += 1;
            let whole = &self.input[..end];
            let parsed = if matches!(expect, Expect::Ehlo) {
                match parse_ehlo_reply(whole, &self.config.parser) {
                    Ok(Status::Complete { value, consumed }) if consumed == end => {
                        Ok(match value {
                            EhloReply::Accepted(caps) => Ok(caps.into_owned()),
                            EhloReply::Refused(r) => Err(r.into_owned()),
                        })
                    }
                    Ok(_) => Err(ReplyError::Line(postel_proto::LineError::BareLf)),
                    Err(bad) => Err(bad.error),
                }
                .map(Parsed::Ehlo)
            } else {
                match parse_reply(whole, &self.config.parser) {
                    Ok(Status::Complete { value, consumed }) if consumed == end => {
                        Ok(Parsed::Reply(value.into_owned()))
                    }
                    Ok(_) => Err(ReplyError::Line(postel_proto::LineError::BareLf)),
                    Err(bad) => Err(bad.error),
                }
            };
            self.input.drain(..end);
            match parsed {
                Ok(Parsed::Ehlo(value)) => {
                    self.expect.pop_front();
                    self.on_ehlo(value);
                }
                Ok(Parsed::Reply(reply)) => {
                    self.expect.pop_front();
                    self.on_reply(expect, reply);
                }
                Err(e) => self.fail(ClientError::Protocol(e)),
            }
        }
        self.events.pop_front()
    }

    fn command(&mut self, command: &Command<'_>, expect: Expect) {
        command.write(&mut self.output);
        self.expect.push_back(expect);
    }

    fn ehlo(&mut self) {
        let name = HeloName::Domain(self.config.helo_name.clone());
        let hello = if self.config.lmtp {
            Command::Lhlo(name)
        } else {
            Command::Ehlo(name)
        };
        self.command(&hello, Expect::Ehlo);
    }

    /// True when `name` is this client's own host name and loops are refused.
    fn is_own_name(&self, name: &str) -> bool {
        self.config.refuse_own_name && name.eq_ignore_ascii_case(self.config.helo_name.as_str())
    }

    fn on_ehlo(&mut self, answer: Result<Capabilities<'static>, Reply<'static>>) {
        match answer {
            Ok(caps) if self.is_own_name(caps.greeting.split(' ').next().unwrap_or("")) => {
                let name = caps.greeting.split(' ').next().unwrap_or("").to_owned();
                self.fail(ClientError::LoopsBack(name));
            }
            Ok(caps) => {
                self.caps = Some(caps);
                self.after_hello();
            }
            // RFC 5321 section 4.1.4: fall back to HELO when EHLO is not
            // known; LMTP has no HELO.
            Err(r) if matches!(r.code().get(), 500 | 502) && !self.config.lmtp => {
                let name = HeloName::Domain(self.config.helo_name.clone());
                self.command(&Command::Helo(name), Expect::Helo);
            }
            Err(r) => self.fail(ClientError::Refused(r)),
        }
    }

    fn after_hello(&mut self) {
        let offers_tls = self.caps.as_ref().is_some_and(|c| c.starttls);
        if !self.tls && self.config.tls != TlsPolicy::Never && offers_tls {
            self.command(&Command::StartTls, Expect::StartTls);
            return;
        }
        if !self.tls && self.config.tls == TlsPolicy::Required {
            self.fail(ClientError::TlsUnavailable);
            return;
        }
        if let Some((user, password)) = self.config.auth.clone() {
            let message = [b"\0", user.as_bytes(), b"\0", password.expose().as_bytes()].concat();
            let initial = InitialResponse::base64(encode_base64(&message)).ok();
            let command = Command::Auth {
                mechanism: Mechanism::PLAIN,
                initial_response: initial,
            };
            self.command(&command, Expect::Auth);
            return;
        }
        self.next();
    }

    /// Starts the next message, or QUIT, when the connection is idle.
    fn next(&mut self) {
        if self.closed || !self.expect.is_empty() || self.current.is_some() || self.waiting_tls {
            return;
        }
        let caps = self.caps.clone().unwrap_or_default();
        let message = loop {
            let Some(mut message) = self.queue.pop_front() else {
                if self.finished {
                    self.command(&Command::Quit, Expect::Quit);
                }
                return;
            };
            match adapt::fit(&mut message, &caps, self.tls) {
                Ok(()) => break message,
                Err(refusal) => {
                    // Nothing is sent: the message cannot go to this server.
                    let index = self.sent;
                    self.sent += 1;
                    let recipients = message
                        .recipients
                        .into_iter()
                        .map(|(to, _)| (to, RecipientResult::Permanent(refusal.clone())))
                        .collect();
                    self.events.push_back(ClientEvent::Delivered(Outcome {
                        message: index,
                        recipients,
                    }));
                }
            }
        };
        let mut params = message.params.clone();
        if caps.size.is_some() && params.size.is_none() {
            params.size = match &message.data {
                MessageBody::Whole(data) => Some(data.len() as u64),
                MessageBody::Streamed { size, .. } => *size,
            };
        }
        let mail = Command::Mail {
            from: message.from.clone(),
            params,
        };
        self.command(&mail, Expect::Mail);
        let pipelined = self.config.pipelining && caps.pipelining;
        let results = vec![None; message.recipients.len()];
        let index = self.sent;
        self.sent += 1;
        if pipelined {
            for (i, (to, params)) in message.recipients.iter().enumerate() {
                let rcpt = Command::Rcpt {
                    to: to.clone(),
                    params: params.clone(),
                };
                self.command(&rcpt, Expect::Rcpt(i));
            }
            if !self.use_bdat() {
                self.command(&Command::Data, Expect::Data);
            }
        }
        self.current = Some(InFlight {
            index,
            message,
            answered: vec![false; results.len()],
            results,
            mail_refused: None,
        });
    }

    fn use_bdat(&self) -> bool {
        self.config.chunking && self.caps.as_ref().is_some_and(|c| c.chunking)
    }

    fn pipelined(&self) -> bool {
        self.config.pipelining && self.caps.as_ref().is_some_and(|c| c.pipelining)
    }

    fn on_reply(&mut self, expect: Expect, reply: Reply<'static>) {
        match expect {
            Expect::Greeting if reply.code().get() == 220 => {
                let name = reply.lines().first().and_then(|l| l.split(' ').next());
                match name {
                    Some(n) if self.is_own_name(n) => {
                        self.fail(ClientError::LoopsBack(n.to_owned()));
                    }
                    _ => self.ehlo(),
                }
            }
            Expect::Helo if reply.code().is_positive() => {
                self.caps = Some(Capabilities::default());
                self.after_hello();
            }
            Expect::Greeting | Expect::Helo | Expect::Ehlo => {
                self.fail(ClientError::Refused(reply));
            }
            Expect::StartTls if reply.code().get() == 220 => {
                self.waiting_tls = true;
                self.input.clear();
                self.events.push_back(ClientEvent::StartTls);
            }
            // RFC 3207 section 4: only 220 starts TLS. Under opportunistic
            // policy a server that cannot do TLS now (454) or does not know
            // the command (500-504) may be used in plaintext; anything else,
            // 421 first of all, ends the session and the mail waits.
            Expect::StartTls
                if self.config.tls == TlsPolicy::Opportunistic
                    && matches!(reply.code().get(), 454 | 500..=502 | 504) =>
            {
                if let Some(c) = self.caps.as_mut() {
                    c.starttls = false;
                }
                self.after_hello();
            }
            Expect::StartTls => self.fail(ClientError::TlsRefused(reply)),
            Expect::Auth if reply.code().is_positive() => self.next(),
            Expect::Auth => self.fail(ClientError::Refused(reply)),
            Expect::Mail => self.on_mail(reply),
            Expect::Rcpt(i) => self.on_rcpt(i, reply),
            Expect::Data => self.on_data(&reply),
            Expect::Body => self.on_body(&reply),
            Expect::Chunk => self.on_chunk(&reply),
            Expect::LmtpBody(i) => self.on_lmtp_body(i, reply),
            Expect::Rset => self.next(),
            Expect::Quit => {
                self.closed = true;
                self.events.push_back(ClientEvent::Closed);
            }
        }
    }

    fn on_mail(&mut self, reply: Reply<'static>) {
        if reply.code().is_positive() {
            if !self.pipelined() {
                let first = self
                    .current
                    .as_ref()
                    .and_then(|c| c.message.recipients.first().cloned());
                match first {
                    Some((to, params)) => {
                        self.command(&Command::Rcpt { to, params }, Expect::Rcpt(0));
                    }
                    None => self.complete(true),
                }
            }
            return;
        }
        // Every recipient shares the sender's fate; pipelined RCPT and DATA
        // replies still arrive and are read, then dropped.
        if let Some(c) = self.current.as_mut() {
            for r in &mut c.results {
                *r = Some(RecipientResult::from_reply(reply.clone()));
            }
            c.mail_refused = Some(reply);
        }
        if !self.pipelined() {
            self.complete(true);
        }
    }

    fn on_rcpt(&mut self, i: usize, reply: Reply<'static>) {
        let pipelined = self.pipelined();
        let Some(c) = self.current.as_mut() else {
            return;
        };
        // A refused recipient keeps its own reply, whatever comes next.
        if c.mail_refused.is_none() {
            c.results[i] = Some(RecipientResult::from_reply(reply));
        }
        let count = c.message.recipients.len();
        let next = c.message.recipients.get(i + 1).cloned();
        if pipelined {
            if i + 1 == count && self.use_bdat() {
                self.start_body();
            }
            return;
        }
        if let Some((to, params)) = next {
            self.command(&Command::Rcpt { to, params }, Expect::Rcpt(i + 1));
        } else if self.any_accepted() {
            if self.use_bdat() {
                self.start_body();
            } else {
                self.command(&Command::Data, Expect::Data);
            }
        } else {
            self.complete(true);
        }
    }

    fn any_accepted(&self) -> bool {
        self.current.as_ref().is_some_and(|c| {
            c.mail_refused.is_none()
                && c.results
                    .iter()
                    .any(|r| matches!(r, Some(RecipientResult::Delivered(_))))
        })
    }

    /// Reports the current message and moves on; `reset` sends RSET first.
    fn complete(&mut self, reset: bool) {
        // Pipelined replies not yet read belong to this message.
        if self
            .expect
            .iter()
            .any(|e| matches!(e, Expect::Rcpt(_) | Expect::Data))
        {
            return;
        }
        let Some(InFlight {
            index,
            message,
            results,
            ..
        }) = self.current.take()
        else {
            return;
        };
        let missing = || RecipientResult::Transient(Reply::TRANSIENT_PROTOCOL_ERROR);
        let recipients = message
            .recipients
            .into_iter()
            .zip(results)
            .map(|((to, _), r)| (to, r.unwrap_or_else(missing)))
            .collect();
        self.events.push_back(ClientEvent::Delivered(Outcome {
            message: index,
            recipients,
        }));
        if reset && (!self.queue.is_empty() || !self.finished) {
            self.command(&Command::Rset, Expect::Rset);
        } else {
            self.next();
        }
    }

    fn fail(&mut self, error: ClientError) {
        let transient = match &error {
            ClientError::Refused(r) if r.code().is_permanent() => None,
            ClientError::LoopsBack(_) => None,
            _ => Some(()),
        };
        self.streaming = None;
        let reply = error.diagnosis();
        let result = if transient.is_some() {
            RecipientResult::Transient(reply)
        } else {
            RecipientResult::Permanent(reply)
        };
        if let Some(c) = self.current.take() {
            // The message under way keeps its index; with LMTP, recipients
            // already answered after the message keep their replies.
            let recipients = c
                .message
                .recipients
                .into_iter()
                .zip(c.results)
                .zip(c.answered)
                .map(|(((to, _), r), answered)| match r {
                    Some(r) if answered => (to, r),
                    _ => (to, result.clone()),
                })
                .collect();
            self.events.push_back(ClientEvent::Delivered(Outcome {
                message: c.index,
                recipients,
            }));
        }
        for message in self.queue.drain(..) {
            let index = self.sent;
            self.sent += 1;
            let recipients = message
                .recipients
                .into_iter()
                .map(|(to, _)| (to, result.clone()))
                .collect();
            self.events.push_back(ClientEvent::Delivered(Outcome {
                message: index,
                recipients,
            }));
        }
        self.events.push_back(ClientEvent::Failed(error));
        self.expect.clear();
        self.closed = true;
    }
}
