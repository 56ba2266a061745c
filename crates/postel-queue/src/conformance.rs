//! The conformance suite every [`Queue`] backend must pass, written once.
//! Each check takes a fresh, empty queue and panics with a message on the
//! first violation; [`run_all`] runs them in turn. Time is simulated.
//!
//! A backend's test calls it with its own runtime:
//!
//! ```
//! # #[allow(clippy::unwrap_used)]
//! # fn main() {
//! use postel_queue::{MemoryQueue, conformance, schedule::RetrySchedule};
//! conformance::block_on(conformance::run_all(|| MemoryQueue::new(RetrySchedule::default())));
//! # }
//! ```

// ok: the suite reports failures by panicking, as tests do; it is test
// support, run by backends' tests, never by a server handling a peer.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc,
    missing_docs
)]

use std::future::Future;
use std::time::{Duration, SystemTime};

use postel_proto::types::{
    BodyType, EnhancedStatus, ForwardPath, Mailbox, Reply, ReplyCode, ReversePath,
};

use crate::model::{
    Arrival, AttemptResult, NewMessage, NewRecipient, Outcome, RecipientState, Stage,
};
use crate::queue::{Queue, QueueError, QueueStats, apply_outcomes, report_failures};
use crate::schedule::RetrySchedule;

/// Runs a future that completes without waiting on I/O readiness (the memory
/// and file backends) to the end.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn message(recipients: &[&'static str]) -> NewMessage {
    NewMessage {
        return_path: ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap()),
        envid: Some("ENV1".into()),
        ret: None,
        body_type: BodyType::EightBitMime,
        smtputf8: false,
        requiretls: false,
        arrival: Arrival::default(),
        recipients: recipients
            .iter()
            .map(|r| NewRecipient {
                address: ForwardPath::Mailbox(Mailbox::try_from(*r).unwrap()),
                orcpt: None,
                notify: None,
            })
            .collect(),
    }
}

fn result(code: u16, enhanced: (u8, u16, u16)) -> AttemptResult {
    AttemptResult {
        stage: Stage::Rcpt,
        remote_host: Some("mx.example.net".into()),
        reply: Reply::new(
            ReplyCode::try_from(code).unwrap(),
            EnhancedStatus::new(enhanced.0, enhanced.1, enhanced.2),
            "test reply",
        )
        .unwrap(),
    }
}

const LEASE: Duration = Duration::from_secs(60);
const BODY: &[u8] = b"Subject: test\r\n\r\nbody\r\n";

/// Enqueue, then claim once: the body and envelope come back whole, and a live
/// lease keeps a second worker away.
pub async fn enqueue_and_claim<Q: Queue>(q: &Q) {
    let id = q
        .enqueue(message(&["a@example.net"]), BODY.to_vec(), t(0))
        .await
        .unwrap();
    let claims = q.claim("w1", t(1), LEASE, 10).await.unwrap();
    assert_eq!(claims.len(), 1, "the message is due");
    assert_eq!(claims[0].message.id, id);
    assert_eq!(claims[0].message.envelope.envid.as_deref(), Some("ENV1"));
    assert_eq!(q.body(&id).await.unwrap(), BODY);
    assert!(
        q.claim("w2", t(2), LEASE, 10).await.unwrap().is_empty(),
        "leased"
    );
    assert_eq!(
        q.enqueue(message(&[]), Vec::new(), t(0)).await,
        Err(QueueError::NoRecipients)
    );
}

/// A lapsed lease is taken over; the old worker's completion is refused
/// (fencing), the new one's is kept.
pub async fn lease_expiry_takeover_and_fencing<Q: Queue>(q: &Q) {
    q.enqueue(message(&["a@example.net"]), BODY.to_vec(), t(0))
        .await
        .unwrap();
    let old = q.claim("w1", t(1), LEASE, 1).await.unwrap().remove(0);
    let extended = q.extend(&old.lease, t(30), LEASE).await.unwrap();
    assert!(
        q.claim("w2", t(80), LEASE, 1).await.unwrap().is_empty(),
        "extended to 90"
    );
    let new = q.claim("w2", t(100), LEASE, 1).await.unwrap().remove(0);
    assert_ne!(new.lease.token, old.lease.token);
    let mut done = new.message.clone();
    apply_outcomes(
        &mut done,
        &[(0, Outcome::Delivered(result(250, (2, 0, 0))))],
        &RetrySchedule::default(),
        t(101),
        0.5,
    );
    let stale = q
        .complete(extended.clone(), done.recipients.clone(), false)
        .await;
    assert!(
        matches!(stale, Err(QueueError::StaleLease(_))),
        "stale worker refused: {stale:?}"
    );
    assert!(q.extend(&extended, t(102), LEASE).await.is_err());
    q.complete(new.lease, done.recipients, false).await.unwrap();
    assert!(
        q.list().await.unwrap().is_empty(),
        "delivered messages leave the queue"
    );
}

/// One attempt with three results: delivered, deferred, failed. Only the
/// deferred recipient is tried again, when due; the failure is bounced once.
pub async fn partial_success_retry_and_bounce<Q: Queue>(q: &Q) {
    let id = q
        .enqueue(
            message(&["ok@example.net", "later@example.net", "gone@example.net"]),
            BODY.to_vec(),
            t(0),
        )
        .await
        .unwrap();
    let claim = q.claim("w", t(1), LEASE, 1).await.unwrap().remove(0);
    let mut m = claim.message.clone();
    let schedule = RetrySchedule::default();
    apply_outcomes(
        &mut m,
        &[
            (0, Outcome::Delivered(result(250, (2, 0, 0)))),
            (1, Outcome::Deferred(result(451, (4, 3, 0)))),
            (2, Outcome::Failed(result(550, (5, 1, 1)))),
        ],
        &schedule,
        t(2),
        0.5,
    );
    q.complete(claim.lease, m.recipients.clone(), false)
        .await
        .unwrap();
    let stored = q.show(&id).await.unwrap();
    let states: Vec<_> = stored.recipients.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [
            RecipientState::Delivered,
            RecipientState::Pending,
            RecipientState::Failed { reported: false }
        ]
    );
    assert_eq!(stored.recipients[1].attempts, 1);
    assert_eq!(
        stored.recipients[1].next_attempt,
        t(2 + 300),
        "the 5-minute minimum"
    );

    // The unreported failure makes the message due at once: report it.
    let claim = q.claim("w", t(3), LEASE, 1).await.unwrap().remove(0);
    let bounce = report_failures(q, &claim.message, "mx.example.org", t(3), "b0undary")
        .await
        .unwrap();
    let bounce = bounce.expect("a bounce is owed");
    let dsn = q.show(&bounce).await.unwrap();
    assert_eq!(
        dsn.envelope.return_path,
        ReversePath::Null,
        "bounces come from the null sender"
    );
    let text = String::from_utf8(q.body(&bounce).await.unwrap()).unwrap();
    assert!(
        text.contains("Final-Recipient: rfc822; gone@example.net")
            && text.contains("Status: 5.1.1"),
        "{text}"
    );
    assert!(
        !text.contains("ok@example.net"),
        "only the failure is reported"
    );
    q.complete(claim.lease, q.show(&id).await.unwrap().recipients, false)
        .await
        .unwrap();
    assert_eq!(
        q.show(&id).await.unwrap().recipients[2].state,
        RecipientState::Failed { reported: true }
    );

    // Retry timing: not before the next attempt, then due.
    let due: Vec<_> = q
        .claim("w", t(200), LEASE, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.message.id == id)
        .collect();
    assert!(due.is_empty(), "not due before its retry time");
    let due: Vec<_> = q
        .claim("w", t(303), LEASE, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.message.id == id)
        .collect();
    assert_eq!(due.len(), 1);
}

/// A message deferred past its lifetime expires and bounces; a bounce itself
/// (null sender) never bounces.
pub async fn expiry_and_dsn<Q: Queue>(q: &Q) {
    let id = q
        .enqueue(message(&["slow@example.net"]), BODY.to_vec(), t(0))
        .await
        .unwrap();
    let late = t(5 * 24 * 3600 + 10);
    let claim = q.claim("w", late, LEASE, 1).await.unwrap().remove(0);
    let mut m = claim.message.clone();
    apply_outcomes(
        &mut m,
        &[(0, Outcome::Deferred(result(451, (4, 4, 1))))],
        &RetrySchedule::default(),
        late,
        0.5,
    );
    assert_eq!(
        m.recipients[0].state,
        RecipientState::Expired { reported: false }
    );
    q.complete(claim.lease, m.recipients.clone(), false)
        .await
        .unwrap();
    let stored = q.show(&id).await.unwrap();
    let bounce = report_failures(q, &stored, "mx.example.org", late, "b0undary")
        .await
        .unwrap()
        .expect("bounce");
    let text = String::from_utf8(q.body(&bounce).await.unwrap()).unwrap();
    assert!(
        text.contains("Status: 4.4.7") && text.contains("Original-Envelope-Id: ENV1"),
        "{text}"
    );
    assert!(q.show(&id).await.is_err(), "reported and done");

    // The bounce fails for good: no bounce of a bounce.
    let claim = q
        .claim("w", late, LEASE, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.message.id == bounce)
        .expect("bounce due");
    let mut b = claim.message.clone();
    apply_outcomes(
        &mut b,
        &[(0, Outcome::Failed(result(550, (5, 1, 1))))],
        &RetrySchedule::default(),
        late,
        0.5,
    );
    q.complete(claim.lease, b.recipients.clone(), false)
        .await
        .unwrap();
    let stored = q.show(&bounce).await.unwrap();
    assert_eq!(
        report_failures(q, &stored, "mx.example.org", late, "b")
            .await
            .unwrap(),
        None
    );
    assert!(q.list().await.unwrap().is_empty());
}

/// The operator's verbs.
pub async fn hold_release_delete_requeue<Q: Queue>(q: &Q) {
    let id = q
        .enqueue(message(&["a@example.net"]), BODY.to_vec(), t(0))
        .await
        .unwrap();
    q.set_held(&id, true).await.unwrap();
    assert!(
        q.claim("w", t(1), LEASE, 10).await.unwrap().is_empty(),
        "held"
    );
    q.set_held(&id, false).await.unwrap();
    let claim = q.claim("w", t(2), LEASE, 10).await.unwrap().remove(0);
    let mut m = claim.message.clone();
    apply_outcomes(
        &mut m,
        &[(0, Outcome::Deferred(result(451, (4, 0, 0))))],
        &RetrySchedule::default(),
        t(3),
        0.5,
    );
    q.complete(claim.lease, m.recipients, false).await.unwrap();
    assert!(q.claim("w", t(4), LEASE, 10).await.unwrap().is_empty());
    q.requeue(&id, t(5)).await.unwrap();
    assert_eq!(
        q.claim("w", t(5), LEASE, 10).await.unwrap().len(),
        1,
        "requeued: due now"
    );
    q.delete(&id).await.unwrap();
    assert!(matches!(q.show(&id).await, Err(QueueError::NotFound(_))));
    assert!(matches!(q.delete(&id).await, Err(QueueError::NotFound(_))));
}

/// A message quarantined on arrival is stored held, with its reason, and
/// released like any held message.
pub async fn quarantined_on_arrival<Q: Queue>(q: &Q) {
    let mut new = message(&["a@example.net"]);
    new.arrival.quarantine = Some("held by filter: suspicious attachment".into());
    let id = q.enqueue(new, BODY.to_vec(), t(0)).await.unwrap();
    assert!(
        q.claim("w", t(1), LEASE, 10).await.unwrap().is_empty(),
        "quarantined: not claimed"
    );
    let shown = q.show(&id).await.unwrap();
    assert!(shown.held);
    assert_eq!(
        shown.envelope.arrival.quarantine.as_deref(),
        Some("held by filter: suspicious attachment")
    );
    assert_eq!(q.stats(t(1)).await.unwrap().held, 1);
    q.set_held(&id, false).await.unwrap();
    assert_eq!(
        q.claim("w", t(2), LEASE, 10).await.unwrap().len(),
        1,
        "released"
    );
}

/// REQUIRETLS (RFC 8689) stays with the message, and its bounce is sent
/// the same way, without the message's body.
pub async fn requiretls_is_kept<Q: Queue>(q: &Q) {
    let mut new = message(&["a@example.net"]);
    new.requiretls = true;
    let id = q
        .enqueue(
            new,
            b"Subject: secret\r\n\r\nthe secret body\r\n".to_vec(),
            t(0),
        )
        .await
        .unwrap();
    let claims = q.claim("w", t(1), LEASE, 10).await.unwrap();
    assert!(claims[0].message.envelope.requiretls);
    let plain = q
        .enqueue(message(&["b@example.net"]), BODY.to_vec(), t(0))
        .await
        .unwrap();
    assert!(!q.show(&plain).await.unwrap().envelope.requiretls);
    let message = q.show(&id).await.unwrap();
    let (_, report) = crate::bounce(
        &crate::model::Message {
            recipients: vec![crate::model::Recipient {
                state: RecipientState::Failed { reported: false },
                ..message.recipients[0].clone()
            }],
            ..message.clone()
        },
        b"Subject: secret\r\n\r\nthe secret body\r\n",
        "mx.example.org",
        t(2),
        "b",
    )
    .unwrap();
    let (envelope, bytes) = report.unwrap();
    assert!(envelope.requiretls, "the bounce asks for REQUIRETLS too");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("Subject: secret"), "{text}");
    assert!(!text.contains("the secret body"), "{text}");
}

/// The operator's counts follow the queue: new, deferred, held.
pub async fn stats<Q: Queue>(q: &Q) {
    assert_eq!(q.stats(t(0)).await.unwrap(), QueueStats::default(), "empty");
    let a = q
        .enqueue(
            message(&["a@example.net", "b@example.net"]),
            BODY.to_vec(),
            t(0),
        )
        .await
        .unwrap();
    q.enqueue(message(&["c@example.net"]), BODY.to_vec(), t(1))
        .await
        .unwrap();
    let s = q.stats(t(1)).await.unwrap();
    assert_eq!((s.messages, s.pending_new, s.oldest), (2, 3, Some(t(0))));
    let claim = q.claim("w", t(2), LEASE, 1).await.unwrap().remove(0);
    assert_eq!(claim.lease.id, a, "oldest first");
    let mut m = claim.message.clone();
    apply_outcomes(
        &mut m,
        &[
            (0, Outcome::Deferred(result(451, (4, 0, 0)))),
            (1, Outcome::Delivered(result(250, (2, 0, 0)))),
        ],
        &RetrySchedule::default(),
        t(3),
        0.5,
    );
    q.complete(claim.lease, m.recipients, false).await.unwrap();
    q.set_held(&a, true).await.unwrap();
    let s = q.stats(t(4)).await.unwrap();
    assert_eq!(
        (s.messages, s.held, s.pending_new, s.deferred, s.pending_due),
        (2, 1, 1, 1, 0)
    );
}

/// Startup recovery releases a previous run's leases.
pub async fn recovery<Q: Queue>(q: &Q) {
    q.enqueue(message(&["a@example.net"]), BODY.to_vec(), t(0))
        .await
        .unwrap();
    q.enqueue(message(&["b@example.net"]), BODY.to_vec(), t(0))
        .await
        .unwrap();
    assert_eq!(q.claim("crashed", t(1), LEASE, 1).await.unwrap().len(), 1);
    let report = q.recover(t(2)).await.unwrap();
    assert_eq!((report.messages, report.leases_released), (2, 1));
    assert_eq!(
        q.claim("w", t(3), LEASE, 10).await.unwrap().len(),
        2,
        "both claimable after recovery"
    );
}

/// Reads a stored body to its end through [`Queue::read_body`], `step`
/// octets at a time.
async fn read_all<Q: Queue>(q: &Q, id: &crate::model::QueueId, step: usize) -> Vec<u8> {
    let mut body = q.open_body(id).await.unwrap();
    let mut all = Vec::new();
    let mut chunk = vec![0u8; step];
    loop {
        let n = q.read_body(&mut body, &mut chunk).await.unwrap();
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&chunk[..n]);
    }
}

/// A body appended in pieces comes back whole, the prefix ahead of it,
/// through small reads and through [`Queue::body`].
pub async fn streamed_body_round_trips<Q: Queue>(q: &Q) {
    let mut incoming = q.begin(t(0)).await.unwrap();
    let pieces: [&[u8]; 4] = [
        b"Subject: streamed\r\n",
        b"\r\n",
        b"line one\r\n",
        b"line two\r\n",
    ];
    for piece in pieces {
        q.append(&mut incoming, piece).await.unwrap();
    }
    let id = q
        .commit(
            incoming,
            message(&["a@example.net"]),
            b"Received: by test\r\n".to_vec(),
            t(0),
        )
        .await
        .unwrap();
    let want = b"Received: by test\r\nSubject: streamed\r\n\r\nline one\r\nline two\r\n";
    let opened = q.open_body(&id).await.unwrap();
    assert_eq!(q.body_size(&opened), want.len() as u64);
    assert_eq!(read_all(q, &id, 7).await, want, "read 7 octets at a time");
    assert_eq!(q.body(&id).await.unwrap(), want);
    assert_eq!(q.claim("w", t(1), LEASE, 10).await.unwrap().len(), 1);
    // An empty body, no prefix: nothing to read.
    let empty = q.begin(t(2)).await.unwrap();
    let id = q
        .commit(empty, message(&["b@example.net"]), Vec::new(), t(2))
        .await
        .unwrap();
    assert!(read_all(q, &id, 64).await.is_empty());
}

/// An aborted message leaves nothing: not in the queue, not claimable,
/// and the next one is unaffected. One without recipients is refused.
pub async fn aborted_body_leaves_nothing<Q: Queue>(q: &Q) {
    let mut incoming = q.begin(t(0)).await.unwrap();
    q.append(&mut incoming, &vec![b'x'; 300 * 1024])
        .await
        .unwrap();
    q.abort(incoming).await.unwrap();
    assert!(q.list().await.unwrap().is_empty(), "aborted message listed");
    assert!(q.claim("w", t(1), LEASE, 10).await.unwrap().is_empty());
    let mut incoming = q.begin(t(1)).await.unwrap();
    q.append(&mut incoming, b"body\r\n").await.unwrap();
    let mut nobody = message(&["a@example.net"]);
    nobody.recipients.clear();
    assert_eq!(
        q.commit(incoming, nobody, Vec::new(), t(1)).await,
        Err(QueueError::NoRecipients)
    );
    assert!(q.list().await.unwrap().is_empty());
    assert_eq!(q.stats(t(1)).await.unwrap().messages, 0);
}

/// A 100 MB body goes in 64 KiB pieces and comes back byte for byte.
pub async fn large_body_round_trips<Q: Queue>(q: &Q) {
    const SIZE: usize = 100 * 1000 * 1000;
    let piece = |i: usize| -> Vec<u8> {
        // Every piece differs, so a reordered or repeated one shows.
        let mut p = format!("{i:08}:").into_bytes();
        p.resize(64 * 1024, b'a' + u8::try_from(i % 26).unwrap());
        p
    };
    let pieces = SIZE.div_ceil(64 * 1024);
    let mut incoming = q.begin(t(0)).await.unwrap();
    for i in 0..pieces {
        q.append(&mut incoming, &piece(i)).await.unwrap();
    }
    let id = q
        .commit(
            incoming,
            message(&["a@example.net"]),
            b"P\r\n".to_vec(),
            t(0),
        )
        .await
        .unwrap();
    let mut body = q.open_body(&id).await.unwrap();
    assert_eq!(q.body_size(&body), (3 + pieces * 64 * 1024) as u64);
    let mut chunk = vec![0u8; 100 * 1024];
    let mut expected = b"P\r\n".to_vec();
    let mut next = 0;
    let mut read = 0usize;
    loop {
        let n = q.read_body(&mut body, &mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        read += n;
        let mut got = &chunk[..n];
        while !got.is_empty() {
            if expected.is_empty() {
                expected = piece(next);
                next += 1;
            }
            let k = got.len().min(expected.len());
            assert_eq!(
                &got[..k],
                &expected[..k],
                "octets differ before offset {read}"
            );
            got = &got[k..];
            expected.drain(..k);
        }
    }
    assert!(
        expected.is_empty() && next == pieces,
        "body cut short at {read}"
    );
    assert_eq!(read, 3 + pieces * 64 * 1024);
}

/// Runs every check, each on a fresh queue from `make`.
pub async fn run_all<Q: Queue, F: Fn() -> Q>(make: F) {
    enqueue_and_claim(&make()).await;
    lease_expiry_takeover_and_fencing(&make()).await;
    partial_success_retry_and_bounce(&make()).await;
    expiry_and_dsn(&make()).await;
    hold_release_delete_requeue(&make()).await;
    quarantined_on_arrival(&make()).await;
    requiretls_is_kept(&make()).await;
    recovery(&make()).await;
    stats(&make()).await;
    streamed_body_round_trips(&make()).await;
    aborted_body_leaves_nothing(&make()).await;
    large_body_round_trips(&make()).await;
}
