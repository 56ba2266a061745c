//! The queue trait that servers and tools program against, and the logic
//! every backend shares: applying attempt outcomes, and reporting failures.

use std::future::Future;
use std::time::{Duration, SystemTime};

use postel_proto::types::{EnhancedStatus, ReversePath};

use crate::dsn::{Action, Dsn, DsnRecipient, notify_wants};
use crate::model::{
    Message, NewMessage, NewRecipient, Outcome, QueueId, Recipient, RecipientState,
};
use crate::schedule::{NextStep, RetrySchedule};

/// A claim on a message for one worker, until `expires`. `token` fences: a
/// completion carrying an older token than the message's current one is
/// refused, so a worker whose lease lapsed cannot overwrite newer state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The message.
    pub id: QueueId,
    /// The fencing token of this claim.
    pub token: u64,
    /// When the claim lapses unless extended.
    pub expires: SystemTime,
}

/// A claimed message: the lease and the message as stored.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The lease to extend and complete with.
    pub lease: Lease,
    /// The message; recipients not pending are included for reference.
    pub message: Message,
}

/// What startup recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Messages in the queue.
    pub messages: usize,
    /// Leases of a previous run released.
    pub leases_released: usize,
    /// Messages that could not be read, moved aside.
    pub quarantined: Vec<String>,
}

/// Why a queue operation failed. Grouped by cause: the caller's mistake, a
/// lost race, or the storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// No such message.
    #[error("no message {0} in the queue")]
    NotFound(QueueId),
    /// The lease was taken over or the message changed: this worker's result
    /// is refused.
    #[error("the lease on {0} is no longer held")]
    StaleLease(QueueId),
    /// A message must have at least one recipient.
    #[error("a message needs at least one recipient")]
    NoRecipients,
    /// The storage is full: answer 452 (RFC 5321 section 4.5.3.1.10) rather
    /// than accept the message.
    #[error("queue storage is full")]
    Full,
    /// The storage failed.
    #[error("queue storage failed while {context}: {message}")]
    Storage {
        /// What the queue was doing.
        context: &'static str,
        /// The underlying error.
        message: String,
    },
}

/// The operations every backend provides. Methods take the time as an
/// argument; no backend reads a clock.
///
/// A body goes in as a stream: [`Queue::begin`] a message, hand each piece
/// to [`Queue::append`] as it arrives, then [`Queue::commit`] it with its
/// envelope (durable once that returns) or [`Queue::abort`] it (nothing of
/// it stays). It comes out the same way, through [`Queue::open_body`] and
/// [`Queue::read_body`]. [`Queue::enqueue`] and [`Queue::body`] do all of
/// it at once for a body already in memory.
///
/// ```
/// # futures_lite_block_on(async {
/// use std::time::SystemTime;
/// use postel_queue::{MemoryQueue, Queue};
/// use postel_queue::model::{Arrival, NewMessage, NewRecipient};
/// use postel_proto::types::{BodyType, ForwardPath, Mailbox, ReversePath};
///
/// let queue = MemoryQueue::default();
/// let now = SystemTime::now();
/// let mut incoming = queue.begin(now).await?;
/// queue.append(&mut incoming, b"Subject: hi\r\n\r\n").await?;
/// queue.append(&mut incoming, b"Hello.\r\n").await?;
/// let to = Mailbox::try_from("b@example.org").expect("an address");
/// let message = NewMessage {
///     return_path: ReversePath::Null,
///     envid: None,
///     ret: None,
///     body_type: BodyType::SevenBit,
///     smtputf8: false,
///     requiretls: false,
///     arrival: Arrival::default(),
///     recipients: vec![NewRecipient { address: ForwardPath::Mailbox(to), orcpt: None, notify: None }],
/// };
/// let id = queue.commit(incoming, message, b"Received: by us\r\n".to_vec(), now).await?;
///
/// let mut body = queue.open_body(&id).await?;
/// let mut chunk = [0u8; 8];
/// let mut all = Vec::new();
/// loop {
///     let n = queue.read_body(&mut body, &mut chunk).await?;
///     if n == 0 { break; }
///     all.extend_from_slice(&chunk[..n]);
/// }
/// assert_eq!(all, b"Received: by us\r\nSubject: hi\r\n\r\nHello.\r\n");
/// # Ok::<(), postel_queue::QueueError>(())
/// # }).unwrap();
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
pub trait Queue: Send + Sync {
    /// A message being received: what [`Queue::begin`] returns.
    type Incoming: Send + 'static;
    /// A stored body being read: what [`Queue::open_body`] returns.
    type Body: Send + 'static;

    /// Starts a message whose body arrives in pieces.
    fn begin(
        &self,
        now: SystemTime,
    ) -> impl Future<Output = Result<Self::Incoming, QueueError>> + Send;

    /// Appends the next piece of the body. Nothing of it is in the queue
    /// until [`Queue::commit`]; a crash before then leaves nothing behind
    /// once the queue is opened again.
    fn append(
        &self,
        incoming: &mut Self::Incoming,
        chunk: &[u8],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Stores the message durably, with `prefix` (the trace fields this
    /// server writes, known only at the end) ahead of the appended body;
    /// only once this returns may the server answer 250 to the end of data.
    fn commit(
        &self,
        incoming: Self::Incoming,
        message: NewMessage,
        prefix: Vec<u8>,
        now: SystemTime,
    ) -> impl Future<Output = Result<QueueId, QueueError>> + Send;

    /// Throws away a message being received.
    fn abort(
        &self,
        incoming: Self::Incoming,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Opens a stored body (the prefix, then what was appended) for reading.
    fn open_body(
        &self,
        id: &QueueId,
    ) -> impl Future<Output = Result<Self::Body, QueueError>> + Send;

    /// The length in octets of an opened body, prefix included.
    fn body_size(&self, body: &Self::Body) -> u64;

    /// Reads the next octets of a body into `buf`; 0 at its end.
    fn read_body(
        &self,
        body: &mut Self::Body,
        buf: &mut [u8],
    ) -> impl Future<Output = Result<usize, QueueError>> + Send;

    /// Stores a message whose body is in memory: [`Queue::begin`],
    /// one [`Queue::append`] and [`Queue::commit`] with no prefix.
    fn enqueue(
        &self,
        message: NewMessage,
        body: Vec<u8>,
        now: SystemTime,
    ) -> impl Future<Output = Result<QueueId, QueueError>> + Send {
        async move {
            if message.recipients.is_empty() {
                return Err(QueueError::NoRecipients);
            }
            let mut incoming = self.begin(now).await?;
            if let Err(e) = self.append(&mut incoming, &body).await {
                let _ = self.abort(incoming).await;
                return Err(e);
            }
            self.commit(incoming, message, Vec::new(), now).await
        }
    }

    /// Claims up to `limit` messages that are due at `now` (a pending
    /// recipient due, or a failure not yet reported), not held, and not under
    /// a live lease, for `lease_for`.
    fn claim(
        &self,
        worker: &str,
        now: SystemTime,
        lease_for: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Claim>, QueueError>> + Send;

    /// Extends a lease during a long delivery.
    fn extend(
        &self,
        lease: &Lease,
        now: SystemTime,
        lease_for: Duration,
    ) -> impl Future<Output = Result<Lease, QueueError>> + Send;

    /// Stores the recipients' new states (see [`apply_outcomes`]) and releases
    /// the lease, atomically, if the lease is still held.
    fn complete(
        &self,
        lease: Lease,
        recipients: Vec<Recipient>,
        warned: bool,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Marks failures as reported, once their DSN is enqueued; a message whose
    /// recipients are all done leaves the queue.
    fn mark_reported(
        &self,
        id: &QueueId,
        recipients: &[usize],
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// The whole message body, read into memory.
    fn body(&self, id: &QueueId) -> impl Future<Output = Result<Vec<u8>, QueueError>> + Send {
        async move {
            let mut body = self.open_body(id).await?;
            let mut all = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = self.read_body(&mut body, &mut chunk).await?;
                if n == 0 {
                    return Ok(all);
                }
                all.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
        }
    }

    /// Every message, oldest first.
    fn list(&self) -> impl Future<Output = Result<Vec<Message>, QueueError>> + Send;

    /// One message.
    fn show(&self, id: &QueueId) -> impl Future<Output = Result<Message, QueueError>> + Send;

    /// Holds (`true`) or releases (`false`) a message.
    fn set_held(
        &self,
        id: &QueueId,
        held: bool,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Deletes a message without a bounce.
    fn delete(&self, id: &QueueId) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Makes every pending recipient due at `now`.
    fn requeue(
        &self,
        id: &QueueId,
        now: SystemTime,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Startup: releases leases of a previous run, sets aside what cannot be read.
    fn recover(
        &self,
        now: SystemTime,
    ) -> impl Future<Output = Result<RecoveryReport, QueueError>> + Send;

    /// Counts for the operator at `now`. The default reads [`Queue::list`];
    /// a backend may count more cheaply.
    fn stats(
        &self,
        now: SystemTime,
    ) -> impl Future<Output = Result<QueueStats, QueueError>> + Send {
        async move {
            let all = self.list().await?;
            let mut stats = QueueStats {
                messages: all.len(),
                ..QueueStats::default()
            };
            for m in &all {
                stats.held += usize::from(m.held);
                stats.oldest = Some(
                    stats
                        .oldest
                        .map_or(m.created, |o: SystemTime| o.min(m.created)),
                );
                for r in &m.recipients {
                    match r.state {
                        RecipientState::Pending if r.attempts == 0 => stats.pending_new += 1,
                        RecipientState::Pending if r.next_attempt <= now => stats.pending_due += 1,
                        RecipientState::Pending => stats.deferred += 1,
                        RecipientState::Delivered => {}
                        RecipientState::Failed { .. } | RecipientState::Expired { .. } => {
                            stats.failed_unreported += 1;
                        }
                    }
                }
            }
            Ok(stats)
        }
    }
}

/// For a backend whose body is in memory, or a piece of it: copies what
/// follows `*at` in `data` into `buf`, as much as fits, and moves `*at`
/// on; the count copied, 0 at the end.
///
/// ```
/// let mut at = 0;
/// let mut buf = [0u8; 4];
/// assert_eq!(postel_queue::read_slice(b"hello", &mut at, &mut buf), 4);
/// assert_eq!(postel_queue::read_slice(b"hello", &mut at, &mut buf), 1);
/// assert_eq!(&buf[..1], b"o");
/// assert_eq!(postel_queue::read_slice(b"hello", &mut at, &mut buf), 0);
/// ```
pub fn read_slice(data: &[u8], at: &mut usize, buf: &mut [u8]) -> usize {
    let rest = data.get(*at..).unwrap_or_default();
    let n = rest.len().min(buf.len());
    if let (Some(to), Some(from)) = (buf.get_mut(..n), rest.get(..n)) {
        to.copy_from_slice(from);
    }
    *at += n;
    n
}

/// What the queue holds, for the operator (`postel queue stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages in the queue.
    pub messages: usize,
    /// Messages on hold.
    pub held: usize,
    /// Recipients not yet tried.
    pub pending_new: usize,
    /// Recipients tried before and due again now.
    pub pending_due: usize,
    /// Recipients waiting for a later retry.
    pub deferred: usize,
    /// Recipients failed or expired whose bounce is not yet queued.
    pub failed_unreported: usize,
    /// When the oldest message arrived.
    pub oldest: Option<SystemTime>,
}

/// The recipients of a new message, all pending and due at `now`.
pub fn new_recipients(recipients: &[NewRecipient], now: SystemTime) -> Vec<Recipient> {
    recipients
        .iter()
        .map(|r| Recipient {
            address: r.address.clone(),
            orcpt: r.orcpt.clone(),
            notify: r.notify,
            state: RecipientState::Pending,
            attempts: 0,
            last_attempt: None,
            next_attempt: now,
            last_result: None,
        })
        .collect()
}

/// Applies one attempt's outcomes to a claimed message's recipients (index,
/// outcome), with the retry schedule: the logic every backend shares. A
/// deferral past the message's lifetime becomes an expiry. `random` in
/// `0.0..1.0` spreads the retry.
pub fn apply_outcomes(
    message: &mut Message,
    outcomes: &[(usize, Outcome)],
    schedule: &RetrySchedule,
    now: SystemTime,
    random: f64,
) {
    for (index, outcome) in outcomes {
        let Some(r) = message.recipients.get_mut(*index) else {
            continue;
        };
        if r.state != RecipientState::Pending {
            continue;
        }
        match outcome {
            Outcome::LocalLimit => {
                r.next_attempt = schedule.after_local_limit(now);
                continue;
            }
            Outcome::Delivered(result) => {
                r.state = RecipientState::Delivered;
                r.last_result = Some(result.clone());
            }
            Outcome::Failed(result) => {
                r.state = RecipientState::Failed { reported: false };
                r.last_result = Some(result.clone());
            }
            Outcome::Deferred(result) => {
                r.last_result = Some(result.clone());
                match schedule.next_attempt(message.created, now, random) {
                    NextStep::RetryAt(t) => r.next_attempt = t,
                    NextStep::Expire => r.state = RecipientState::Expired { reported: false },
                }
            }
        }
        r.attempts += 1;
        r.last_attempt = Some(now);
    }
    // Recipients that waited past expiry without an attempt expire too.
    for r in &mut message.recipients {
        if r.state == RecipientState::Pending && now >= message.expires {
            r.state = RecipientState::Expired { reported: false };
        }
    }
}

/// A bounce owed for a message: the recipients it covers (to mark reported
/// once it is enqueued), and the DSN to enqueue, unless NOTIFY declined it.
pub type Bounce = (Vec<usize>, Option<(NewMessage, Vec<u8>)>);

/// The bounce for a message's unreported failures, if one is owed: the
/// indices of the recipients it covers (to mark reported once it is
/// enqueued), and the message to enqueue from the null sender. Recipients
/// whose NOTIFY declines get no report but are still marked.
pub fn bounce(
    message: &Message,
    body: &[u8],
    reporting_mta: &str,
    now: SystemTime,
    boundary: &str,
) -> Option<Bounce> {
    let unreported: Vec<usize> = message
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            matches!(
                r.state,
                RecipientState::Failed { reported: false }
                    | RecipientState::Expired { reported: false }
            )
        })
        .map(|(i, _)| i)
        .collect();
    if unreported.is_empty() {
        return None;
    }
    let dsn_recipients: Vec<DsnRecipient> = unreported
        .iter()
        .filter_map(|&i| message.recipients.get(i))
        .filter(|r| notify_wants(r.notify, Action::Failed))
        .filter_map(|r| {
            let expired = matches!(r.state, RecipientState::Expired { .. });
            // RFC 3463: X.4.7 is "delivery time expired"; otherwise the last
            // reply's code, or 5.0.0 when there was none.
            let last = r.last_result.as_ref().and_then(|res| res.reply.enhanced());
            let status = if expired {
                EnhancedStatus::new(4, 4, 7)
            } else {
                last.or_else(|| EnhancedStatus::new(5, 0, 0))
            }?;
            Some(dsn_recipient(r, Action::Failed, status))
        })
        .collect();
    let headers_only = message.envelope.ret == Some(postel_proto::types::Ret::Hdrs);
    let report = report(
        message,
        &dsn_recipients,
        body,
        headers_only,
        (reporting_mta, now, boundary),
    );
    Some((unreported, report))
}

/// A recipient's block for a report of `class` (2 success, 4 delay): the
/// last reply's enhanced code when it is of that class, else `class.0.0`.
fn status_block(r: &Recipient, action: Action, class: u8) -> Option<DsnRecipient> {
    let last = r.last_result.as_ref().and_then(|res| res.reply.enhanced());
    let status = last
        .filter(|s| s.class() == class)
        .or_else(|| EnhancedStatus::new(class, 0, 0))?;
    Some(dsn_recipient(r, action, status))
}

/// One recipient's block of a report.
fn dsn_recipient(r: &Recipient, action: Action, status: EnhancedStatus) -> DsnRecipient {
    DsnRecipient {
        final_recipient: r
            .address
            .mailbox()
            .map_or_else(|| "postmaster".into(), ToString::to_string),
        original_recipient: r.orcpt.clone(),
        action,
        status,
        diagnostic: r.last_result.as_ref().map(|res| res.reply.clone()),
        remote_mta: r
            .last_result
            .as_ref()
            .and_then(|res| res.remote_host.clone()),
        last_attempt: r.last_attempt,
    }
}

/// A report about `message` to its return path, from the null sender,
/// asking for no report about itself; `None` when there is nobody to tell.
/// `at` is the reporting MTA, the time and the MIME boundary.
fn report(
    message: &Message,
    recipients: &[DsnRecipient],
    body: &[u8],
    headers_only: bool,
    at: (&str, SystemTime, &str),
) -> Option<(NewMessage, Vec<u8>)> {
    let (reporting_mta, now, boundary) = at;
    // A report about a message its sender asked to travel only over
    // verified TLS (RFC 8689) travels the same way, and carries its header
    // fields only: the content stays where it was sent from.
    let requiretls = message.envelope.requiretls;
    let bytes = Dsn {
        reporting_mta,
        return_path: &message.envelope.return_path,
        envelope_id: message.envelope.envid.as_deref(),
        arrival: message.created,
        recipients,
        original: body,
        headers_only: headers_only || requiretls,
        now,
        boundary,
    }
    .to_message()
    .ok()?;
    let to = message.envelope.return_path.mailbox()?.clone().into_owned();
    let envelope = NewMessage {
        return_path: ReversePath::Null,
        envid: None,
        ret: None,
        body_type: postel_proto::types::BodyType::EightBitMime,
        smtputf8: !to.is_ascii(),
        requiretls,
        arrival: crate::model::Arrival::default(),
        recipients: vec![NewRecipient {
            address: postel_proto::types::ForwardPath::Mailbox(to),
            orcpt: None,
            notify: Some(postel_proto::types::Notify::NEVER),
        }],
    };
    Some((envelope, bytes))
}

/// The success report for recipients whose NOTIFY asks for one (RFC 3461
/// section 4.1): each index with its action, `Delivered` for a final
/// delivery, `Relayed` for a hand-over to a server without DSN (section
/// 5.2.2). `None` when nobody is to be told.
pub fn success_report(
    message: &Message,
    delivered: &[(usize, Action)],
    body: &[u8],
    reporting_mta: &str,
    now: SystemTime,
    boundary: &str,
) -> Option<(NewMessage, Vec<u8>)> {
    let recipients: Vec<DsnRecipient> = delivered
        .iter()
        .filter_map(|&(i, action)| Some((message.recipients.get(i)?, action)))
        .filter(|(r, action)| notify_wants(r.notify, *action))
        .filter_map(|(r, action)| status_block(r, action, 2))
        .collect();
    if recipients.is_empty() {
        return None;
    }
    // A success report returns the headers only, whatever RET says: the
    // message arrived, the sender has it.
    report(
        message,
        &recipients,
        body,
        true,
        (reporting_mta, now, boundary),
    )
}

/// The delay warning for a message still being retried (RFC 3464, Action
/// delayed), for the pending recipients whose NOTIFY asks for it; `None` when
/// nobody is to be told. The caller sends it once (see
/// [`RetrySchedule::delay_warning_due`]) and records that with `warned`.
pub fn delay_warning(
    message: &Message,
    body: &[u8],
    reporting_mta: &str,
    now: SystemTime,
    boundary: &str,
) -> Option<(NewMessage, Vec<u8>)> {
    let recipients: Vec<DsnRecipient> = message
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Pending)
        .filter(|r| notify_wants(r.notify, Action::Delayed))
        .filter_map(|r| status_block(r, Action::Delayed, 4))
        .collect();
    // A warning carries the headers only: the sender still has a copy on its
    // way.
    report(
        message,
        &recipients,
        body,
        true,
        (reporting_mta, now, boundary),
    )
}

/// Reports a message's unreported failures: the DSN is enqueued durably
/// first, then the recipients are marked reported, so a crash between the two
/// gives at worst a duplicate bounce, never a missing one.
pub async fn report_failures<Q: Queue>(
    queue: &Q,
    message: &Message,
    reporting_mta: &str,
    now: SystemTime,
    boundary: &str,
) -> Result<Option<QueueId>, QueueError> {
    report_failures_with(queue, message, (reporting_mta, now, boundary), |b| b).await
}

/// [`report_failures`], with the report's octets passed through `finish`
/// before they are queued (to add a DKIM signature, say); `at` is the
/// reporting MTA, the time and the MIME boundary.
pub async fn report_failures_with<Q: Queue>(
    queue: &Q,
    message: &Message,
    at: (&str, SystemTime, &str),
    finish: impl FnOnce(Vec<u8>) -> Vec<u8> + Send,
) -> Result<Option<QueueId>, QueueError> {
    let (reporting_mta, now, boundary) = at;
    let body = queue.body(&message.id).await?;
    let Some((indices, report)) = bounce(message, &body, reporting_mta, now, boundary) else {
        return Ok(None);
    };
    let mut id = None;
    if let Some((envelope, bytes)) = report {
        id = Some(queue.enqueue(envelope, finish(bytes), now).await?);
    }
    queue.mark_reported(&message.id, &indices).await?;
    Ok(id)
}
