//! Several `postel` servers share one queue on PostgreSQL: 10 000 messages
//! are delivered to a sink on loopback exactly once each, while one server
//! is killed with SIGKILL in the middle and its claims are taken over. Runs
//! under `.ci/with-postgres`; skipped with a reason without a database.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{Process, free_port, local, serve, temp_dir};
use postel_proto::types::{BodyType, ForwardPath, Mailbox, ReversePath};
use postel_queue::Queue;
use postel_queue::model::{Arrival, NewMessage, NewRecipient};
use postel_queue::schedule::RetrySchedule;
use postel_queue_postgres::PostgresQueue;

const MESSAGES: usize = 10_000;

/// A sink on loopback that counts each message by its number.
fn sink() -> (u16, Arc<Mutex<HashMap<usize, usize>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
    let counts = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let counts = Arc::clone(&counts);
            std::thread::spawn(move || {
                let _ = postel_examples::sink_session(stream, |m| {
                    let text = String::from_utf8_lossy(&m.data);
                    if let Some(n) = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Subject: message "))
                        .and_then(|n| n.trim().parse::<usize>().ok())
                    {
                        *counts.lock().unwrap().entry(n).or_insert(0) += 1;
                    }
                });
            });
        }
    });
    (port, seen)
}

fn message() -> NewMessage {
    NewMessage {
        return_path: ReversePath::Mailbox(Mailbox::try_from("sender@a.test").unwrap()),
        envid: None,
        ret: None,
        body_type: BodyType::SevenBit,
        smtputf8: false,
        requiretls: false,
        arrival: Arrival::default(),
        recipients: vec![NewRecipient {
            address: ForwardPath::Mailbox(Mailbox::try_from("rcpt@remote.test").unwrap()),
            orcpt: None,
            notify: None,
        }],
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Enqueues the messages through the library, 16 at a time.
fn fill(url: &str) -> PostgresQueue {
    let rt = runtime();
    rt.block_on(async {
        let q = PostgresQueue::connect(url, 16, RetrySchedule::default())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for lane in 0..16 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                for n in (lane..MESSAGES).step_by(16) {
                    let body = format!("Subject: message {n}\r\n\r\nbody {n}\r\n").into_bytes();
                    q.enqueue(message(), body, SystemTime::now()).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        q
    })
}

fn remaining(url: &str) -> usize {
    runtime().block_on(async {
        let q = PostgresQueue::connect(url, 1, RetrySchedule::default())
            .await
            .unwrap();
        q.list().await.unwrap().len()
    })
}

fn worker(n: usize, url: &str, sink_port: u16) -> Process {
    let dir = temp_dir(&format!("pg-worker{n}"));
    let port = free_port();
    let config = format!(
        "hostname = \"w{n}.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{port}\"\nrole = \"mx\"\n\
[relay]\nsmarthost = \"127.0.0.1:{sink_port}\"\nworkers = 20\n\
[queue]\nbackend = \"postgres\"\nurl = \"{url}\"\npool_size = 6\nlease_secs = 3\npoll_ms = 100\n"
    );
    serve(&dir, &config, local(port), false)
}

/// Runs `servers` workers over a full queue, kills one when a third is
/// delivered; returns (delivered, duplicates, lost, seconds).
fn scenario(servers: usize) -> Option<(usize, usize, usize, f64)> {
    let url = postel_testkit::fresh_database(&format!("workers{servers}"))?;
    let (sink_port, seen) = sink();
    drop(fill(&url));
    let start = Instant::now();
    let mut workers: Vec<Process> = (0..servers).map(|n| worker(n, &url, sink_port)).collect();
    let distinct = || seen.lock().unwrap().len();
    while distinct() < MESSAGES / 3 {
        assert!(start.elapsed() < Duration::from_secs(300), "too slow");
        std::thread::sleep(Duration::from_millis(20));
    }
    // One server dies holding claims; the others take them over once the
    // leases lapse.
    workers[0].kill();
    while remaining(&url) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "not done: {} left, {} delivered\n{}",
            remaining(&url),
            distinct(),
            workers[1].log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(workers);
    let counts = seen.lock().unwrap();
    let delivered: usize = counts.values().sum();
    let duplicates = delivered - counts.len();
    let lost = MESSAGES - counts.len();
    Some((delivered, duplicates, lost, seconds))
}

#[test]
fn servers_share_a_postgres_queue_and_survive_a_sigkill() {
    for servers in [2, 4] {
        let Some((delivered, duplicates, lost, seconds)) = scenario(servers) else {
            return;
        };
        println!(
            "{servers} servers: {MESSAGES} messages, {delivered} deliveries, {duplicates} duplicates, \
             {lost} lost, one server killed, {seconds:.1} s"
        );
        assert_eq!(lost, 0, "no message lost");
        // Only what the killed server had claimed (at most its 20 delivery
        // slots) may have gone out twice.
        assert!(duplicates <= 20, "{duplicates} duplicates");
    }
}
