//! Crash test for the spool: a child process enqueues and delivers in a loop
//! and is killed with SIGKILL at varying moments; after each kill the spool is
//! reopened and checked. Every message whose enqueue had returned must be
//! present and whole (or delivered), none may be half-present, and a message
//! whose delivery was recorded must not be delivered again.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use postel_proto::types::{BodyType, ForwardPath, Mailbox, Reply, ReversePath};
use postel_queue::conformance::block_on;
use postel_queue::model::{Arrival, AttemptResult, NewMessage, NewRecipient, Outcome, Stage};
use postel_queue::schedule::RetrySchedule;
use postel_queue::{Queue, SpoolQueue, WriteStep, apply_outcomes};

const CHILD: &str = "POSTEL_CRASH_CHILD_DIR";

fn message(n: u64) -> NewMessage {
    NewMessage {
        return_path: ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap()),
        envid: Some(format!("n{n}")),
        ret: None,
        body_type: BodyType::SevenBit,
        smtputf8: false,
        requiretls: false,
        arrival: Arrival::default(),
        recipients: vec![NewRecipient {
            address: ForwardPath::Mailbox(Mailbox::try_from("rcpt@example.net").unwrap()),
            orcpt: None,
            notify: None,
        }],
    }
}

/// Every fifth body is too large for the segment log (200 KiB), so that
/// the spool's file per message is crashed at as well.
fn body(n: u64) -> Vec<u8> {
    let len = if n.is_multiple_of(5) {
        200 * 1024
    } else {
        200 + (n % 50) as usize
    };
    format!("Subject: message {n}\r\n\r\n{}\r\n", "x".repeat(len)).into_bytes()
}

fn prefix(n: u64) -> Vec<u8> {
    format!("X-Crash: {n}\r\n").into_bytes()
}

/// The child: enqueue, and deliver every other message, reporting each step
/// only after it returned.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let mut q = SpoolQueue::open(&dir, RetrySchedule::default()).unwrap();
    if let Ok(fault) = std::env::var("POSTEL_CRASH_FAULT") {
        // "Step:N": die at the N-th time the spool reaches that step.
        let (step, nth) = fault.split_once(':').unwrap();
        let (step, nth) = (step.to_owned(), nth.parse::<usize>().unwrap());
        let seen = std::sync::atomic::AtomicUsize::new(0);
        q.set_fault_hook(move |s: WriteStep| {
            if format!("{s:?}") == step
                && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == nth
            {
                std::process::abort();
            }
        });
    }
    let start: u64 = std::env::var("POSTEL_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let mut out = std::io::stdout();
    for n in start.. {
        let now = SystemTime::now();
        // Streamed in two pieces, with a prefix, as the server stores mail.
        let whole = body(n);
        let (head, tail) = whole.split_at(whole.len() / 2);
        let mut incoming = block_on(q.begin(now)).unwrap();
        block_on(q.append(&mut incoming, head)).unwrap();
        block_on(q.append(&mut incoming, tail)).unwrap();
        let id = block_on(q.commit(incoming, message(n), prefix(n), now)).unwrap();
        writeln!(out, "E {id} {n}").unwrap();
        out.flush().unwrap();
        // Every other message is delivered (its files removed), every
        // fourth deferred (a journal entry written).
        if n % 2 == 0 || n % 4 == 1 {
            let delivered = n % 2 == 0;
            for claim in block_on(q.claim("child", now, Duration::from_secs(600), 1)).unwrap() {
                let mut m = claim.message.clone();
                let result = AttemptResult {
                    stage: Stage::Data,
                    remote_host: None,
                    reply: if delivered {
                        Reply::OK
                    } else {
                        Reply::TRANSIENT_PROTOCOL_ERROR
                    },
                };
                let outcome = if delivered {
                    Outcome::Delivered(result)
                } else {
                    Outcome::Deferred(result)
                };
                apply_outcomes(&mut m, &[(0, outcome)], &RetrySchedule::default(), now, 0.5);
                let id = claim.lease.id.clone();
                block_on(q.complete(claim.lease, m.recipients, false)).unwrap();
                if delivered {
                    writeln!(out, "D {id}").unwrap();
                    out.flush().unwrap();
                }
            }
        }
    }
}

#[test]
fn spool_survives_sigkill() {
    let dir = std::env::temp_dir().join(format!("postel-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut enqueued: Vec<(String, u64)> = Vec::new();
    let mut delivered: HashSet<String> = HashSet::new();
    let (mut kills, mut losses, mut duplicates) = (0, 0, 0);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next_n = 0u64;
    for _round in 0..25 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD, &dir)
            .env("POSTEL_CRASH_START", next_n.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill after a varying number of reported steps (5 to 68).
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let steps = 5 + (seed % 64) as usize;
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut record = |line: &str| {
            match line.split(' ').collect::<Vec<_>>().as_slice() {
                ["E", id, n] => {
                    let n: u64 = n.parse().unwrap();
                    enqueued.push(((*id).to_owned(), n));
                    next_n = next_n.max(n + 1);
                }
                ["D", id] => {
                    delivered.insert((*id).to_owned());
                }
                _ => return false,
            }
            true
        };
        let mut seen = 0;
        while seen < steps {
            let Some(Ok(line)) = lines.next() else { break };
            if record(&line) {
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Everything the child wrote before it died: each step it reported had returned.
        for line in lines.map_while(Result::ok) {
            record(&line);
        }
        kills += 1;
        next_n += 1000; // the next run's messages never reuse a number

        let (lost, dup) = check(&dir, &enqueued, &mut delivered);
        losses += lost;
        duplicates += dup;
    }
    println!(
        "spool crash test: {kills} SIGKILLs, {} messages enqueued, {} deliveries recorded, {losses} lost, {duplicates} duplicates",
        enqueued.len(),
        delivered.len()
    );
    assert_eq!(losses, 0);
    assert_eq!(duplicates, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reopens the spool after a crash and checks it against what the child
/// reported: every message enqueued and not delivered is present and whole,
/// none is half-present, none delivered is present again. Returns (lost,
/// duplicates).
fn check(
    dir: &std::path::Path,
    enqueued: &[(String, u64)],
    delivered: &mut HashSet<String>,
) -> (usize, usize) {
    let mut duplicates = 0;
    let q = SpoolQueue::open(dir, RetrySchedule::default()).unwrap();
    let report = block_on(q.recover(SystemTime::now())).unwrap();
    assert!(
        report.quarantined.is_empty(),
        "no half-present message: {:?}",
        report.quarantined
    );
    let present: HashSet<String> = block_on(q.list())
        .unwrap()
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    let mut missing = Vec::new();
    for (id, n) in enqueued {
        if delivered.contains(id) {
            if present.contains(id) {
                duplicates += 1; // it would be delivered again
            }
            continue;
        }
        if !present.contains(id) {
            missing.push(id.clone());
            continue;
        }
        let parsed = postel_queue::model::QueueId::parse(id).unwrap();
        assert_eq!(
            block_on(q.body(&parsed)).unwrap(),
            [prefix(*n), body(*n)].concat(),
            "message {id} is whole"
        );
    }
    // The kill may land after a completion and before its report: that one
    // message was delivered. Any other missing message is lost.
    if let Some(first) = missing.first() {
        delivered.insert(first.clone());
    }
    (missing.len().saturating_sub(1), duplicates)
}

/// A run of the child that dies at one write step.
fn run_child_with_fault(
    dir: &std::path::Path,
    start: u64,
    fault: &str,
    enqueued: &mut Vec<(String, u64)>,
    delivered: &mut HashSet<String>,
) {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(&exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir)
        .env("POSTEL_CRASH_START", start.to_string())
        .env("POSTEL_CRASH_FAULT", fault)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(!child.status.success(), "the child died at {fault}");
    for line in String::from_utf8_lossy(&child.stdout).lines() {
        match line.split(' ').collect::<Vec<_>>().as_slice() {
            ["E", id, n] => enqueued.push(((*id).to_owned(), n.parse().unwrap())),
            ["D", id] => {
                delivered.insert((*id).to_owned());
            }
            _ => {}
        }
    }
}

#[test]
fn spool_survives_a_crash_at_every_write_step() {
    let dir = std::env::temp_dir().join(format!("postel-fault-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut enqueued = Vec::new();
    let mut delivered = HashSet::new();
    let (mut crashes, mut losses, mut duplicates) = (0, 0, 0);
    let mut start = 0;
    for step in WriteStep::ALL {
        for nth in [1, 4] {
            let fault = format!("{step:?}:{nth}");
            run_child_with_fault(&dir, start, &fault, &mut enqueued, &mut delivered);
            crashes += 1;
            start += 1000;
            let (lost, dup) = check(&dir, &enqueued, &mut delivered);
            assert_eq!((lost, dup), (0, 0), "after a crash at {fault}");
            losses += lost;
            duplicates += dup;
        }
    }
    println!(
        "spool fault injection: {crashes} crashes at {} write steps, {} messages enqueued, {} deliveries recorded, {losses} lost, {duplicates} duplicates",
        WriteStep::ALL.len(),
        enqueued.len(),
        delivered.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
