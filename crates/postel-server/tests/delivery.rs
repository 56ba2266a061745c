//! Mail between `postel` instances on loopback, routed by MX records that a
//! real DNS server (NSD, started by the test) serves: delivery to the
//! preferred exchanger, fallback to the next, retries and a bounce when all
//! are down; and crash safety under SIGKILL.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{
    Nsd, Process, add_user, free_port, installed, local, mail, python, run, serve, temp_dir,
    wait_mail, without_trace,
};

const PASSWORD: &str = "s3cret-for-tests";

const ZONE: &str = "$ORIGIN test.
$TTL 1
@        IN SOA ns.test. hostmaster.test. 1 3600 600 86400 1
@        IN NS  ns
ns       IN A   127.0.0.1
b        IN MX  10 mx1.b
mx1.b    IN A   127.0.0.2
c        IN MX  10 down.c
c        IN MX  20 mx2.c
down.c   IN A   127.0.0.5
mx2.c    IN A   127.0.0.3
d        IN MX  10 down1.d
d        IN MX  20 down2.d
down1.d  IN A   127.0.0.6
down2.d  IN A   127.0.0.7
e        IN MX  10 mx.e
mx.e     IN A   127.0.0.1
";

/// Submits one message with AUTH over STARTTLS.
fn submit(port: u16, to: &str, subject: &str) {
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.starttls(context=ctx)
    s.login("alice@a.test", sys.argv[2])
    msg = ("From: alice@a.test\r\nTo: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n" % (sys.argv[3], sys.argv[4], sys.argv[4])).encode()
    s.sendmail("alice@a.test", [sys.argv[3]], msg)
"#;
    python(script, &[&port.to_string(), PASSWORD, to, subject]);
}

/// A receiving instance: mx listener at `ip:port` for `domain`/`mailbox`.
fn receiver(
    label: &str,
    ip: [u8; 4],
    port: u16,
    domain: &str,
    mailbox: &str,
) -> (std::path::PathBuf, Process) {
    let dir = temp_dir(label);
    let addr = SocketAddr::from((ip, port));
    let config = format!(
        "hostname = \"mx.{domain}\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"{addr}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"{domain}\"\nmailboxes = [\"{mailbox}\"]\n"
    );
    // With a certificate, so the sending server's opportunistic STARTTLS
    // is exercised.
    let p = serve(&dir, &config, addr, true);
    (dir, p)
}

fn received_count(message: &[u8]) -> usize {
    String::from_utf8_lossy(message)
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("Received:"))
        .count()
}

/// A server for `a.test` (mailbox alice, user alice@a.test) with submission
/// and mx listeners, relaying remote mail through a smarthost at
/// 127.0.0.1:`sink_port`; `relay` and `queue` are extra lines for those
/// sections.
struct Relay {
    dir: std::path::PathBuf,
    mx: u16,
    submission: u16,
    config: String,
}

impl Relay {
    fn new(label: &str, sink_port: u16, relay: &str, queue: &str) -> Relay {
        let dir = temp_dir(label);
        let (mx, submission) = (free_port(), free_port());
        let config = format!(
            "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{submission}\"\nrole = \"submission\"\n\
[[listener]]\naddress = \"127.0.0.1:{mx}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nsmarthost = \"127.0.0.1:{sink_port}\"\n{relay}\n[queue]\n{queue}\n"
        );
        common::write_config(&dir, &config);
        add_user(&dir, "alice@a.test", PASSWORD);
        Relay {
            dir,
            mx,
            submission,
            config,
        }
    }

    fn start(&self) -> Process {
        serve(&self.dir, &self.config, local(self.mx), true)
    }
}

#[test]
fn mx_delivery_fallback_retry_and_bounce_between_instances() {
    if !installed("python3") {
        return;
    }
    let Some(nsd) = Nsd::start(&[("test", Some(ZONE))]) else {
        return;
    };
    let relay_port = free_port();
    let (b_dir, _b) = receiver("mx-b", [127, 0, 0, 2], relay_port, "b.test", "bob");
    let (c_dir, _c) = receiver("mx-c", [127, 0, 0, 3], relay_port, "c.test", "carol");

    let a_dir = temp_dir("mx-a");
    let submission = free_port();
    let config = format!(
        r#"
hostname = "mail.a.test"
data_dir = "data"
[[listener]]
address = "127.0.0.1:{submission}"
role = "submission"
[[domain]]
name = "a.test"
mailboxes = ["alice"]
[relay]
port = {relay_port}
[dns]
servers = ["{}"]
timeout_secs = 2
[queue]
lifetime_secs = 8
min_retry_secs = 1
max_retry_secs = 1
delay_warning_secs = 2
poll_ms = 200
"#,
        nsd.addr
    );
    std::fs::write(a_dir.join("postel.toml"), &config).unwrap();
    add_user(&a_dir, "alice@a.test", PASSWORD);
    let a = serve(&a_dir, &config, local(submission), true);

    // The single exchanger of b.test.
    submit(submission, "bob@b.test", "to b");
    let got = wait_mail(&b_dir, "b.test", "bob", 1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "arrived at b.test's MX: {}", a.log_text());
    assert!(String::from_utf8_lossy(&got[0]).contains("Subject: to b"));
    assert_eq!(received_count(&got[0]), 2, "one Received line per server");
    let text = String::from_utf8_lossy(&got[0]).into_owned();
    assert!(
        text.contains("(Postel) with ESMTPS"),
        "relayed over opportunistic STARTTLS: {text}"
    );

    // c.test's preferred exchanger does not answer: the next one gets it.
    submit(submission, "carol@c.test", "to c");
    let got = wait_mail(&c_dir, "c.test", "carol", 1, Duration::from_secs(30));
    assert_eq!(
        got.len(),
        1,
        "arrived through the second MX: {}",
        a.log_text()
    );
    assert!(String::from_utf8_lossy(without_trace(&got[0])).contains("Subject: to c"));

    // Every exchanger of d.test is down: queued, retried, then bounced.
    submit(submission, "dave@d.test", "to d");
    std::thread::sleep(Duration::from_millis(2500));
    let listed = run(&a_dir, &["queue", "list"], "");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    // The message from alice is still queued (a delay warning from <> may
    // be passing through the queue at the same moment).
    let line = listed
        .lines()
        .find(|l| l.contains("from <alice@a.test>"))
        .unwrap_or_else(|| panic!("still queued: {listed}"));
    let id = line.split_whitespace().next().unwrap().to_owned();
    let shown = run(&a_dir, &["queue", "show", &id], "");
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains("<dave@d.test> pending"), "{shown}");
    let attempts: u32 = shown
        .split("attempts ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(attempts >= 2, "retried: {shown}");

    let reports = wait_mail(&a_dir, "a.test", "alice", 2, Duration::from_secs(40));
    assert_eq!(reports.len(), 2, "a warning and a bounce: {}", a.log_text());
    let warning = String::from_utf8_lossy(&reports[0]).into_owned();
    assert!(warning.contains("Action: delayed"), "{warning}");
    assert!(
        warning.contains("Final-Recipient: rfc822; dave@d.test"),
        "{warning}"
    );
    let dsn = String::from_utf8_lossy(&reports[1]).into_owned();
    assert!(dsn.starts_with("Return-Path: <>\r\n"), "{dsn}");
    assert!(dsn.contains("report-type=delivery-status"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; dave@d.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("Status: 4.4.7"), "expired: {dsn}");
    assert!(
        queue_empties(&a_dir),
        "the queue is empty once the bounce is delivered"
    );
    drop(nsd);
}

/// Waits (at most 10 s) for `postel queue list` to show an empty queue: a
/// delivery is recorded just after the message arrives.
fn queue_empties(dir: &std::path::Path) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let out = run(dir, &["queue", "list"], "");
        if String::from_utf8_lossy(&out.stdout).contains("0 messages") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Reads one reply (all its lines); returns the last line.
fn reply(reader: &mut BufReader<TcpStream>) -> String {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return line;
        }
    }
}

fn relay_config(mx: u16, smarthost: u16) -> String {
    format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"127.0.0.1:{mx}\"\n\
role = \"mx\"\n[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nsmarthost = \"127.0.0.1:{smarthost}\"\n[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n"
    )
}

fn start_transaction(mx: u16, to: &str) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(local(mx)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream.try_clone().unwrap();
    assert!(reply(&mut reader).starts_with("220"));
    for cmd in [
        "EHLO crash.test\r\n".to_owned(),
        "MAIL FROM:<sender@elsewhere.example>\r\n".to_owned(),
        format!("RCPT TO:<{to}>\r\n"),
        "DATA\r\n".to_owned(),
    ] {
        w.write_all(cmd.as_bytes()).unwrap();
        let r = reply(&mut reader);
        assert!(r.starts_with('2') || r.starts_with('3'), "{cmd}: {r}");
    }
    (w, reader)
}

#[test]
fn killed_right_after_250_the_message_is_still_delivered() {
    let dir = temp_dir("crash-250");
    let (mx, sink_port) = (free_port(), free_port());
    let config = relay_config(mx, sink_port);
    let mut a = serve(&dir, &config, local(mx), false);
    // A local recipient: the kill lands before, during or after the Maildir
    // delivery; in every case the message arrives exactly once.
    let (mut w, mut reader) = start_transaction(mx, "alice@a.test");
    w.write_all(b"Subject: survive\r\n\r\nkept across SIGKILL\r\n.\r\n")
        .unwrap();
    let r = reply(&mut reader);
    assert!(r.starts_with("250"), "{r}");
    a.kill();
    drop((w, reader));
    let _a = serve(&dir, &config, local(mx), false);
    let got = wait_mail(&dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(got.len(), 1, "delivered once after the restart");
    assert!(String::from_utf8_lossy(&got[0]).contains("kept across SIGKILL"));
}

#[test]
fn killed_in_the_middle_of_data_nothing_is_delivered() {
    let dir = temp_dir("crash-data");
    let (mx, sink_port) = (free_port(), free_port());
    let config = relay_config(mx, sink_port);
    let mut a = serve(&dir, &config, local(mx), false);
    let (mut w, _reader) = start_transaction(mx, "alice@a.test");
    w.write_all(b"Subject: half\r\n\r\nthe first half of a message\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    a.kill();
    drop(w);
    let _a = serve(&dir, &config, local(mx), false);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        mail(&dir, "a.test", "alice").is_empty(),
        "nothing half-written delivered"
    );
    let listed = run(&dir, &["queue", "list"], "");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("0 messages"),
        "nothing queued"
    );
}

#[test]
fn queued_remote_mail_survives_sigkill_and_reaches_the_smarthost() {
    if !installed("python3") {
        return;
    }
    let sink_port = free_port();
    let relay = Relay::new(
        "crash-relay",
        sink_port,
        "",
        "min_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200",
    );
    let mut a = relay.start();
    submit(relay.submission, "bob@b.test", "through the crash");
    a.kill();
    // The smarthost comes up only now: another postel for b.test.
    let (b_dir, _b) = receiver("crash-relay-b", [127, 0, 0, 1], sink_port, "b.test", "bob");
    let _a = relay.start();
    let got = wait_mail(&b_dir, "b.test", "bob", 1, Duration::from_secs(30));
    assert_eq!(got.len(), 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("Subject: through the crash"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(mail(&b_dir, "b.test", "bob").len(), 1, "delivered once");
}

#[test]
fn a_worker_that_finishes_claims_the_mail_that_waited_for_it() {
    if !installed("python3") {
        return;
    }
    // One worker, and a poll far beyond the test: only a finished delivery
    // can start the next one.
    let sink_port = free_port();
    let relay = Relay::new(
        "one-worker",
        sink_port,
        "workers = 1",
        "min_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 600000",
    );
    let mut a = relay.start();
    // The smarthost is down: four messages wait in the queue.
    for n in 0..4 {
        submit(relay.submission, "bob@b.test", &format!("waiting {n}"));
    }
    a.kill();
    let (b_dir, _b) = receiver("one-worker-b", [127, 0, 0, 1], sink_port, "b.test", "bob");
    // Past their retry time, all four are due when the server comes back;
    // its one worker takes them one after another.
    std::thread::sleep(Duration::from_millis(1100));
    let _a = relay.start();
    let got = wait_mail(&b_dir, "b.test", "bob", 4, Duration::from_secs(30));
    assert_eq!(got.len(), 4, "every waiting message delivered");
}

#[test]
fn queue_verbs_hold_release_flush_delete_on_the_running_server() {
    if !installed("python3") {
        return;
    }
    let sink_port = free_port();
    // Retries an hour apart: only `flush` makes a deferred message due again.
    let relay = Relay::new(
        "verbs",
        sink_port,
        "",
        "min_retry_secs = 3600\nmax_retry_secs = 3600\npoll_ms = 100",
    );
    let (dir, submission) = (&relay.dir, relay.submission);
    let _a = relay.start();
    submit(submission, "bob@b.test", "first");
    submit(submission, "carol@b.test", "second");
    std::thread::sleep(Duration::from_millis(1500));
    let text = |args: &[&str]| {
        let out = run(dir, args, "");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = text(&["queue", "list"]);
    assert!(listed.contains("2 messages"), "both deferred: {listed}");
    let ids: Vec<String> = listed
        .lines()
        .filter(|l| !l.ends_with(" messages"))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    // For scripts: one JSON object per message, recipients with their state
    // and last reply.
    let objects: Vec<serde_json::Value> = text(&["queue", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2);
    for o in &objects {
        assert_eq!(o["from"], "<alice@a.test>");
        assert_eq!(o["recipients"][0]["state"], "pending");
        assert!(
            o["recipients"][0]["last_reply"]
                .as_str()
                .unwrap()
                .starts_with("451 4.4.1"),
            "{o}"
        );
    }
    let one: serde_json::Value =
        serde_json::from_str(&text(&["queue", "show", &ids[0], "--json"])).unwrap();
    assert_eq!(one["id"], ids[0].as_str());
    let stats = text(&["queue", "stats"]);
    assert!(
        stats.contains("messages 2\n") && stats.contains("recipients deferred 2\n"),
        "{stats}"
    );
    text(&["queue", "hold", &ids[0]]);
    assert!(text(&["queue", "list"]).contains("HELD"));
    assert!(text(&["queue", "stats"]).contains("held 1\n"));
    text(&["queue", "delete", &ids[1]]);
    // The smarthost comes up; flush makes everything due, but held mail waits.
    let (b_dir, _b) = receiver("verbs-b", [127, 0, 0, 1], sink_port, "b.test", "bob");
    text(&["queue", "flush"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        mail(&b_dir, "b.test", "bob").is_empty(),
        "held mail is not delivered"
    );
    text(&["queue", "release", &ids[0]]);
    text(&["queue", "flush"]);
    let got = wait_mail(&b_dir, "b.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(got.len(), 1, "released and flushed: delivered");
    assert!(String::from_utf8_lossy(&got[0]).contains("Subject: first"));
    assert!(queue_empties(dir), "the deleted one is gone");
    let missing = run(dir, &["queue", "show", &ids[1]], "");
    assert!(!missing.status.success(), "deleted");
}

#[test]
fn sigterm_answers_421_to_idle_clients_and_exits() {
    let dir = temp_dir("sigterm");
    let (mx, sink_port) = (free_port(), free_port());
    let config = relay_config(mx, sink_port);
    let mut a = serve(&dir, &config, local(mx), false);
    let stream = TcpStream::connect(local(mx)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert!(reply(&mut reader).starts_with("220"));
    (&stream).write_all(b"EHLO idle.test\r\n").unwrap();
    assert!(reply(&mut reader).starts_with("250"));
    let status = a.terminate(Duration::from_secs(15));
    assert!(
        reply(&mut reader).starts_with("421"),
        "told the service is closing"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exited cleanly: {status:?}"
    );
}

#[test]
fn deliveries_to_one_domain_respect_the_concurrency_limit() {
    if !installed("python3") {
        return;
    }
    // With 8 allowed, more than 2 sessions overlap: so the limit of 2 is what
    // holds the second run to 2.
    let unlimited = most_concurrent_sessions(8);
    assert!(unlimited > 2, "8 allowed: {unlimited} at once");
    let limited = most_concurrent_sessions(2);
    assert_eq!(limited, 2, "at most 2 sessions to b.test at once");
}

/// Eight messages for one domain wait in the queue while the smarthost is
/// down; then it comes up (slow: each session waits before its greeting)
/// and the queue is flushed. Returns the most sessions seen at once.
fn most_concurrent_sessions(per_domain: usize) -> usize {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let sink_port = free_port();
    let relay = Relay::new(
        "per-domain",
        sink_port,
        &format!("per_domain = {per_domain}\nworkers = 20"),
        "min_retry_secs = 3600\nmax_retry_secs = 3600\npoll_ms = 100",
    );
    let (dir, submission) = (&relay.dir, relay.submission);
    let _a = relay.start();
    for i in 0..8 {
        submit(submission, &format!("user{i}@b.test"), &format!("m{i}"));
    }
    std::thread::sleep(Duration::from_secs(1));
    let listener = std::net::TcpListener::bind(("127.0.0.1", sink_port)).unwrap();
    let (open, most, received) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    {
        let (open, most, received) = (open.clone(), most.clone(), received.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (open, most, received) = (open.clone(), most.clone(), received.clone());
                std::thread::spawn(move || {
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = postel_examples::sink_session(stream, |_| {
                        received.fetch_add(1, Ordering::SeqCst);
                    });
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    }
    let out = run(dir, &["queue", "flush"], "");
    assert!(out.status.success(), "{out:?}");
    let start = std::time::Instant::now();
    while received.load(Ordering::SeqCst) < 8 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not all delivered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    most.load(Ordering::SeqCst)
}

/// Mail for `user@[address]` goes to that address over STARTTLS: the
/// certificate is checked against an IP server name, not the bracketed text
/// taken for a DNS name (which rustls refuses, so the mail never left).
#[test]
fn mail_to_an_address_literal_is_delivered_over_starttls() {
    if !installed("python3") {
        return;
    }
    let port = free_port();
    let (b_dir, _b) = receiver("literal-b", [127, 0, 0, 2], port, "b.test", "bob");
    let dir = temp_dir("literal-a");
    let submission = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{submission}\"\nrole = \"submission\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nport = {port}\n[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n"
    );
    common::write_config(&dir, &config);
    add_user(&dir, "alice@a.test", PASSWORD);
    let _a = serve(&dir, &config, local(submission), true);
    submit(submission, "bob@[127.0.0.2]", "to a literal");
    let got = wait_mail(&b_dir, "b.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(got.len(), 1, "delivered to the literal's host");
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Subject: to a literal"));
    assert!(
        text.contains("by mx.b.test (Postel) with ESMTPS"),
        "the hop used STARTTLS: {text}"
    );
}

/// RFC 5321 section 5.1: an MX that is one of this server's own addresses
/// (here its submission listener's) would make it deliver to itself; the
/// message bounces with 5.4.6 instead.
#[test]
fn an_mx_at_our_own_address_is_a_loop_and_bounces() {
    if !installed("python3") {
        return;
    }
    let Some(nsd) = Nsd::start(&[("test", Some(ZONE))]) else {
        return;
    };
    let dir = temp_dir("own-mx");
    let submission = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{submission}\"\nrole = \"submission\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nport = {}\n[dns]\nservers = [\"{}\"]\ntimeout_secs = 2\n\
[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n",
        free_port(),
        nsd.addr
    );
    common::write_config(&dir, &config);
    add_user(&dir, "alice@a.test", PASSWORD);
    let a = serve(&dir, &config, local(submission), true);
    submit(submission, "eve@e.test", "to myself");
    let bounce = wait_mail(&dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(bounce.len(), 1, "bounced: {}", a.log_text());
    let text = String::from_utf8_lossy(&bounce[0]);
    assert!(
        text.contains("Final-Recipient: rfc822; eve@e.test"),
        "{text}"
    );
    assert!(text.contains("Status: 5.4.6"), "{text}");
    drop(nsd);
}
