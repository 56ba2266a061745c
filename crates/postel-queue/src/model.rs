//! The queue's data model: per message and per recipient. "In flight" is a
//! lease, not a stored state.

use std::net::IpAddr;
use std::time::SystemTime;

use postel_proto::types::{BodyType, ForwardPath, Notify, Orcpt, Reply, Ret, ReversePath, XText};

/// A queue id: time-ordered (hex of the enqueue time in microseconds, then a
/// sequence number), so that ids sort by age.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

impl QueueId {
    /// Builds the id for a message enqueued at `now` as the `seq`-th of its
    /// microsecond.
    pub fn new(now: SystemTime, seq: u32) -> Self {
        let micros = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        QueueId(format!("{micros:014x}{seq:06x}"))
    }

    /// Parses an id as printed.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 20
            && text
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| QueueId(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Facts about how the message arrived, for Received headers and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arrival {
    /// The client's address.
    pub client: Option<IpAddr>,
    /// The name the client gave in HELO/EHLO.
    pub helo: Option<String>,
    /// The authenticated user, if any.
    pub auth_user: Option<String>,
    /// Whether the session was protected by TLS.
    pub tls: bool,
    /// Why a filter had the message held on arrival (quarantined): it is
    /// enqueued held, and released like any held message.
    pub quarantine: Option<String>,
}

/// A recipient as it is enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecipient {
    /// The forward path.
    pub address: ForwardPath<'static>,
    /// ORCPT (RFC 3461) as the client gave it, `addr-type;xtext`: still
    /// encoded, so that every octet reaches the next hop and the report
    /// unchanged.
    pub orcpt: Option<String>,
    /// NOTIFY (RFC 3461).
    pub notify: Option<Notify>,
}

/// A message as it is enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The return path, or the null sender.
    pub return_path: ReversePath<'static>,
    /// ENVID (RFC 3461), decoded.
    pub envid: Option<String>,
    /// RET (RFC 3461).
    pub ret: Option<Ret>,
    /// The body type declared at MAIL.
    pub body_type: BodyType,
    /// SMTPUTF8 was declared.
    pub smtputf8: bool,
    /// REQUIRETLS was declared (RFC 8689): relay it only over verified TLS
    /// to a server that offers REQUIRETLS, or bounce it.
    pub requiretls: bool,
    /// How it arrived.
    pub arrival: Arrival,
    /// The recipients, at least one.
    pub recipients: Vec<NewRecipient>,
}

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecipientState {
    /// Still to be delivered.
    Pending,
    /// Delivered; done.
    Delivered,
    /// Failed for good; `reported` once its bounce is safely enqueued.
    Failed {
        /// The DSN for it is enqueued (or none was wanted).
        reported: bool,
    },
    /// Gave up after the queue lifetime; `reported` as for `Failed`.
    Expired {
        /// The DSN for it is enqueued (or none was wanted).
        reported: bool,
    },
}

impl RecipientState {
    /// True when nothing more will be attempted.
    pub fn is_final(self) -> bool {
        !matches!(self, RecipientState::Pending)
    }
}

/// The stage of a delivery attempt a result comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Looking up where the mail goes.
    Dns,
    /// Connecting.
    Connect,
    /// The greeting, EHLO, STARTTLS or AUTH.
    Session,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA or BDAT and the message.
    Data,
    /// Local delivery.
    Local,
}

/// The last result for a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// Where it happened.
    pub stage: Stage,
    /// The remote host, if one was reached.
    pub remote_host: Option<String>,
    /// The reply, with its code, enhanced code and text.
    pub reply: Reply<'static>,
}

/// A recipient in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The forward path.
    pub address: ForwardPath<'static>,
    /// ORCPT.
    pub orcpt: Option<String>,
    /// NOTIFY.
    pub notify: Option<Notify>,
    /// Where it stands.
    pub state: RecipientState,
    /// Attempts counted so far (deferrals for our own limits do not count).
    pub attempts: u32,
    /// When it was last tried.
    pub last_attempt: Option<SystemTime>,
    /// When it is next due.
    pub next_attempt: SystemTime,
    /// The last result.
    pub last_result: Option<AttemptResult>,
}

/// A message in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id.
    pub id: QueueId,
    /// The envelope as enqueued.
    pub envelope: NewMessage,
    /// When it was enqueued.
    pub created: SystemTime,
    /// When it expires.
    pub expires: SystemTime,
    /// Held by the operator: not delivered until released.
    pub held: bool,
    /// A delay warning was sent.
    pub warned: bool,
    /// The recipients, in the order enqueued.
    pub recipients: Vec<Recipient>,
}

impl Message {
    /// True when every recipient is final and every failure is reported: the
    /// message can leave the queue.
    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| {
            matches!(
                r.state,
                RecipientState::Delivered
                    | RecipientState::Failed { reported: true }
                    | RecipientState::Expired { reported: true }
            )
        })
    }

    /// True when a worker should take the message at `now`: not held, and a
    /// pending recipient is due or a failure is not yet reported.
    pub fn is_due(&self, now: SystemTime) -> bool {
        !self.held && self.recipients.iter().any(|r| r.is_due(now))
    }

    /// When the message is next due: the earliest pending recipient's time.
    pub fn next_due(&self) -> Option<SystemTime> {
        self.recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .map(|r| r.next_attempt)
            .min()
    }
}

impl Recipient {
    /// True when this recipient needs work at `now`: pending and due, or
    /// failed and not yet reported.
    pub fn is_due(&self, now: SystemTime) -> bool {
        match self.state {
            RecipientState::Pending => self.next_attempt <= now,
            RecipientState::Failed { reported } | RecipientState::Expired { reported } => !reported,
            RecipientState::Delivered => false,
        }
    }
}

/// The outcome of one attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Delivered(AttemptResult),
    /// Failed for now: retry on the schedule.
    Deferred(AttemptResult),
    /// Failed for good: bounce.
    Failed(AttemptResult),
    /// Not tried because of our own rate or concurrency limit: back soon, not
    /// counted as an attempt.
    LocalLimit,
}

/// The ORCPT parameter for a stored `addr-type;xtext` value. A value stored
/// decoded (by an older version, or written by hand) that is not valid xtext
/// is encoded again.
pub fn orcpt_param(stored: &str) -> Option<Orcpt<'static>> {
    let (kind, address) = stored.split_once(';')?;
    let xtext = XText::try_from(address)
        .map_or_else(|_| XText::encode(address.as_bytes()), XText::into_owned);
    Orcpt::new(kind.to_owned(), xtext).ok()
}
