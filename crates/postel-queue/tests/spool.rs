//! What only the spool has: state that survives a restart, and damaged files
//! set aside rather than lost or fatal.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use postel_proto::types::{
    BodyType, EnhancedStatus, ForwardPath, Mailbox, Notify, Reply, ReplyCode, Ret, ReversePath,
};
use postel_queue::conformance::block_on;
use postel_queue::model::{
    Arrival, AttemptResult, NewMessage, NewRecipient, Outcome, RecipientState, Stage,
};
use postel_queue::schedule::RetrySchedule;
use postel_queue::{Queue, SpoolQueue, apply_outcomes};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("postel-spool-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A body too large for the segment log: it gets a file of its own.
fn big(tag: &str) -> Vec<u8> {
    let mut b = format!("Subject: {tag}\r\n\r\n").into_bytes();
    b.resize(200 * 1024, b'x');
    b.extend_from_slice(b"\r\n");
    b
}

fn t(s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

fn message() -> NewMessage {
    NewMessage {
        return_path: ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap()),
        envid: Some("id with spaces+and=signs".into()),
        ret: Some(Ret::Hdrs),
        body_type: BodyType::EightBitMime,
        smtputf8: true,
        requiretls: false,
        arrival: Arrival {
            client: Some("192.0.2.9".parse().unwrap()),
            helo: Some("client.example".into()),
            auth_user: Some("jane doe".into()),
            tls: true,
            quarantine: None,
        },
        recipients: vec![
            NewRecipient {
                address: ForwardPath::Mailbox(Mailbox::try_from("用户@例子.广告").unwrap()),
                orcpt: Some("utf-8;用户@例子.广告".into()),
                notify: Some(Notify {
                    success: true,
                    failure: true,
                    delay: false,
                }),
            },
            NewRecipient {
                address: ForwardPath::Postmaster,
                orcpt: None,
                notify: None,
            },
        ],
    }
}

#[test]
fn everything_survives_a_restart() {
    let d = dir("restart");
    let q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let id = block_on(q.enqueue(message(), b"body\r\n".to_vec(), t(0))).unwrap();
    let claim = block_on(q.claim("w", t(1), Duration::from_secs(60), 1))
        .unwrap()
        .remove(0);
    let mut m = claim.message.clone();
    let reply = Reply::new(
        ReplyCode::try_from(451).unwrap(),
        EnhancedStatus::new(4, 3, 0),
        "try later, please",
    )
    .unwrap();
    let result = AttemptResult {
        stage: Stage::Data,
        remote_host: Some("mx.example.net".into()),
        reply,
    };
    apply_outcomes(
        &mut m,
        &[(0, Outcome::Deferred(result))],
        &RetrySchedule::default(),
        t(2),
        0.5,
    );
    block_on(q.complete(claim.lease, m.recipients.clone(), false)).unwrap();
    block_on(q.set_held(&id, true)).unwrap();
    let before = block_on(q.show(&id)).unwrap();
    drop(q);

    let again = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let after = block_on(again.show(&id)).unwrap();
    assert_eq!(
        after, before,
        "envelope, recipients, results and hold are all read back"
    );
    assert_eq!(after.recipients[0].state, RecipientState::Pending);
    assert_eq!(
        after.envelope.envid.as_deref(),
        Some("id with spaces+and=signs")
    );
    assert_eq!(block_on(again.body(&id)).unwrap(), b"body\r\n");
}

#[test]
fn damaged_and_half_written_files_are_set_aside() {
    let d = dir("damage");
    let q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let good = block_on(q.enqueue(message(), big("good"), t(0))).unwrap();
    let bad = block_on(q.enqueue(message(), big("bad"), t(0))).unwrap();
    drop(q);
    // A message file cut short: its footer is gone.
    let path = d.join(format!("{bad}.msg"));
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
    // A message that never got its 250, left in tmp/.
    std::fs::write(d.join("tmp").join("0000000000000a000002.msg"), b"partial").unwrap();
    // A body whose envelope never landed: an enqueue that did not complete.
    std::fs::write(d.join("0000000000000a000001.body"), b"orphan").unwrap();
    // A torn journal line from a crash mid-append.
    std::fs::write(d.join(format!("{good}.log")), b"r 0 deliv").unwrap();

    let q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let report = block_on(q.recover(t(1))).unwrap();
    assert_eq!(report.messages, 1);
    assert_eq!(report.quarantined, [bad.to_string()]);
    assert!(
        d.join("corrupt").join(format!("{bad}.msg")).exists(),
        "kept for the operator"
    );
    assert!(!d.join("0000000000000a000001.body").exists());
    assert!(!d.join("tmp").join("0000000000000a000002.msg").exists());
    assert_eq!(
        block_on(q.show(&good)).unwrap().recipients[0].state,
        RecipientState::Pending
    );
}

#[test]
fn a_finished_message_whose_removal_was_cut_short_is_removed_at_open() {
    let d = dir("finished");
    let mut q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    // Both recipients fail; the process stops right after the journal
    // records that their bounce is queued, before the files are removed.
    let reported = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let armed = std::sync::Arc::clone(&reported);
    q.set_fault_hook(move |step| {
        let stop = armed.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            !(stop && step == postel_queue::WriteStep::JournalSynced),
            "stop here"
        );
    });
    let id = block_on(q.enqueue(message(), big("finished"), t(0))).unwrap();
    let claim = block_on(q.claim("w", t(1), Duration::from_secs(60), 1))
        .unwrap()
        .remove(0);
    let mut m = claim.message.clone();
    let failed = Outcome::Failed(AttemptResult {
        stage: Stage::Data,
        remote_host: None,
        reply: Reply::new(ReplyCode::new(550).unwrap(), None, "no").unwrap(),
    });
    apply_outcomes(
        &mut m,
        &[(0, failed.clone()), (1, failed)],
        &RetrySchedule::default(),
        t(2),
        0.5,
    );
    block_on(q.complete(claim.lease, m.recipients, false)).unwrap();
    reported.store(true, std::sync::atomic::Ordering::SeqCst);
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(q.mark_reported(&id, &[0, 1]))
    }));
    assert!(crashed.is_err(), "stopped at the fault");
    assert!(d.join(format!("{id}.msg")).exists(), "files left behind");
    drop(q);

    let q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    assert!(block_on(q.list()).unwrap().is_empty(), "not queued again");
    assert!(!d.join(format!("{id}.msg")).exists(), "removal finished");
    assert!(!d.join(format!("{id}.log")).exists());
}

fn deliver_all(q: &SpoolQueue, now: SystemTime) {
    for claim in block_on(q.claim("w", now, Duration::from_secs(60), 1000)).unwrap() {
        let mut m = claim.message.clone();
        let delivered = Outcome::Delivered(AttemptResult {
            stage: Stage::Data,
            remote_host: None,
            reply: Reply::OK,
        });
        let all: Vec<(usize, Outcome)> = (0..m.recipients.len())
            .map(|i| (i, delivered.clone()))
            .collect();
        apply_outcomes(&mut m, &all, &RetrySchedule::default(), now, 0.5);
        block_on(q.complete(claim.lease, m.recipients, false)).unwrap();
    }
}

fn files(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut f: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.path())
        .collect();
    f.sort();
    f
}

#[test]
fn a_message_delivered_at_once_leaves_no_journal() {
    let d = dir("at-once");
    let q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let id = block_on(q.enqueue(message(), big("at once"), t(0))).unwrap();
    assert!(
        d.join(format!("{id}.msg")).exists(),
        "a large message has a file"
    );
    deliver_all(&q, t(1));
    let left: Vec<_> = files(&d)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("seg-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(block_on(q.list()).unwrap().is_empty());
    let again = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    assert!(
        block_on(again.list()).unwrap().is_empty(),
        "not back after a restart"
    );
}

#[test]
fn segments_are_removed_once_their_messages_are_gone_and_stragglers_move_forward() {
    let d = dir("compaction");
    let mut q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    q.set_segment_size(16 * 1024);
    // 200 small messages over many segments; one of the first waits.
    let ids: Vec<_> = (0..200)
        .map(|n| {
            let body = format!("Subject: {n}\r\n\r\n{}\r\n", "y".repeat(500)).into_bytes();
            block_on(q.enqueue(message(), body, t(0))).unwrap()
        })
        .collect();
    block_on(q.set_held(&ids[3], true)).unwrap();
    let third = format!("Subject: 3\r\n\r\n{}\r\n", "y".repeat(500)).into_bytes();
    // Read once from its first segment, whose handle the spool then keeps.
    assert_eq!(block_on(q.body(&ids[3])).unwrap(), third);
    let segments = |d: &std::path::Path| {
        files(d)
            .iter()
            .filter(|p| p.to_string_lossy().contains("seg-"))
            .count()
    };
    let before = segments(&d);
    assert!(before > 5, "{before} segments");
    deliver_all(&q, t(1));
    let after = segments(&d);
    assert!(after <= 2, "{after} segments left of {before}");
    // The held one moved forward, whole, with its state, and is read from
    // where it is now.
    assert_eq!(block_on(q.list()).unwrap().len(), 1);
    assert_eq!(block_on(q.body(&ids[3])).unwrap(), third);
    let again = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let kept = block_on(again.show(&ids[3])).unwrap();
    assert!(kept.held, "still held after the move and a restart");
    assert_eq!(
        block_on(again.body(&ids[3])).unwrap(),
        format!("Subject: 3\r\n\r\n{}\r\n", "y".repeat(500)).into_bytes()
    );
    assert_eq!(
        block_on(again.list()).unwrap().len(),
        1,
        "the others stay delivered"
    );
}

#[test]
fn a_damaged_segment_keeps_what_precedes_the_damage_and_reports_the_rest() {
    let d = dir("segment-damage");
    let q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let first = block_on(q.enqueue(message(), b"first\r\n".to_vec(), t(0))).unwrap();
    let second = block_on(q.enqueue(message(), b"second\r\n".to_vec(), t(0))).unwrap();
    drop(q);
    let segment = files(&d)
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut data = std::fs::read(&segment).unwrap();
    let at = data
        .windows(8)
        .rposition(|w| w == b"second\r\n".get(..8).unwrap())
        .unwrap();
    data[at] = b'S';
    std::fs::write(&segment, &data).unwrap();

    let q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let report = block_on(q.recover(t(1))).unwrap();
    assert_eq!(report.messages, 1);
    assert_eq!(block_on(q.body(&first)).unwrap(), b"first\r\n");
    assert!(block_on(q.show(&second)).is_err());
    assert_eq!(report.quarantined.len(), 1, "{report:?}");
    let kept: Vec<_> = std::fs::read_dir(d.join("corrupt"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(
        kept.len(),
        1,
        "the unreadable rest is kept for the operator"
    );
}

#[test]
fn a_spool_in_the_older_layout_is_read_and_delivered_from() {
    let d = dir("older");
    std::fs::create_dir_all(&d).unwrap();
    let id = postel_queue::model::QueueId::new(t(0), 7);
    let stored = postel_queue::model::Message {
        id: id.clone(),
        recipients: postel_queue::new_recipients(&message().recipients, t(0)),
        held: false,
        envelope: message(),
        created: t(0),
        expires: t(5 * 86_400),
        warned: false,
    };
    std::fs::write(
        d.join(format!("{id}.env")),
        postel_queue::record::encode_envelope(&stored),
    )
    .unwrap();
    std::fs::write(d.join(format!("{id}.body")), b"old body\r\n").unwrap();
    let q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let listed = block_on(q.list()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].envelope, message());
    assert_eq!(block_on(q.body(&id)).unwrap(), b"old body\r\n");
    block_on(q.delete(&id)).unwrap();
    assert!(!d.join(format!("{id}.env")).exists());
    assert!(!d.join(format!("{id}.body")).exists());
}

#[test]
fn concurrent_writers_and_workers_with_compaction_lose_and_resurrect_nothing() {
    let d = dir("concurrent");
    let mut q = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    q.set_segment_size(8 * 1024);
    let q = std::sync::Arc::new(q);
    let kept = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..6 {
            let (q, kept) = (std::sync::Arc::clone(&q), &kept);
            s.spawn(move || {
                for n in 0..150 {
                    let body =
                        format!("Subject: {w}-{n}\r\n\r\n{}\r\n", "z".repeat(300)).into_bytes();
                    // Every tenth held on arrival: it stays, and moves
                    // forward as segments go.
                    let mut m = message();
                    if n % 10 == 0 {
                        m.arrival.quarantine = Some("test".into());
                    }
                    let id = block_on(q.enqueue(m, body.clone(), t(0))).unwrap();
                    if n % 10 == 0 {
                        kept.lock().unwrap().push((id, body));
                    }
                    deliver_all(&q, t(1));
                }
            });
        }
    });
    let kept = kept.into_inner().unwrap();
    assert_eq!(block_on(q.list()).unwrap().len(), kept.len());
    drop(q);
    let again = SpoolQueue::open(&d, RetrySchedule::default()).unwrap();
    let listed = block_on(again.list()).unwrap();
    assert_eq!(
        listed.len(),
        kept.len(),
        "exactly the held ones after a restart"
    );
    for (id, body) in &kept {
        assert_eq!(&block_on(again.body(id)).unwrap(), body, "{id} whole");
        assert!(block_on(again.show(id)).unwrap().held);
    }
    let segments = files(&d)
        .iter()
        .filter(|p| p.to_string_lossy().contains("seg-"))
        .count();
    // Some hundred segments were written; the held messages moved forward.
    assert!(
        segments <= 4,
        "{segments} segments kept for {} messages",
        kept.len()
    );
}
