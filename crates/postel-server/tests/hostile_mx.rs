//! The delivery side against a scripted MX on loopback that misbehaves as
//! broken or hostile servers do: what the queue records is checked as the
//! reply's bytes, and what reached the MX as the octets it read.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, local, run, serve, temp_dir};

/// How the scripted MX answers a line from the client (or the connection's
/// opening, as `None`): the octets to write, and whether to hang up after.
type Script = fn(Option<&str>) -> (Vec<u8>, bool);

/// Starts the scripted MX; returns everything clients sent it, per session.
fn fake_mx(port: u16, script: Script) -> Arc<Mutex<Vec<String>>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let record = Arc::clone(&record);
            std::thread::spawn(move || session(stream, script, &record));
        }
    });
    seen
}

fn session(mut stream: TcpStream, script: Script, record: &Mutex<Vec<String>>) {
    let index = {
        let mut r = record.lock().unwrap();
        r.push(String::new());
        r.len() - 1
    };
    let (greeting, _) = script(None);
    if stream.write_all(&greeting).is_err() {
        return;
    }
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut in_body = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        record.lock().unwrap()[index].push_str(&line);
        // The message itself gets no replies, only its final dot.
        if in_body && line != ".\r\n" {
            continue;
        }
        let (answer, hang_up) = script(Some(line.trim_end()));
        in_body = answer.starts_with(b"354");
        // A client that gave up stops reading: the write fails, which ends
        // the session like the hang-up does.
        if stream.write_all(&answer).is_err() || hang_up {
            return;
        }
    }
}

/// postel for a.test relaying everything else to the scripted MX, retrying
/// every second; returns its directory, mx port and the process.
fn relay(label: &str, smarthost: u16) -> (std::path::PathBuf, u16, common::Process) {
    relay_with(label, smarthost, "")
}

fn relay_with(
    label: &str,
    smarthost: u16,
    relay_keys: &str,
) -> (std::path::PathBuf, u16, common::Process) {
    let dir = temp_dir(label);
    let mx = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"127.0.0.1:{mx}\"\n\
role = \"submission\"\n[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nsmarthost = \"127.0.0.1:{smarthost}\"\n{relay_keys}\n[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n"
    );
    std::fs::write(dir.join("postel.toml"), &config).unwrap();
    common::add_user(&dir, "alice@a.test", "pw-for-tests");
    let process = serve(&dir, &config, local(mx), true);
    (dir, mx, process)
}

/// Submits one message for bob@b.test with STARTTLS and AUTH through
/// Python's smtplib; returns its queue id.
fn submit(port: u16) -> String {
    submit_to(port, "bob@b.test", "")
}

/// Submits one message for `to`, with RCPT parameters `params` (space
/// separated, such as `NOTIFY=SUCCESS`); returns its queue id.
fn submit_to(port: u16, to: &str, params: &str) -> String {
    let out = common::python(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1])); s.starttls(context=ctx); s.login("alice@a.test", "pw-for-tests")
s.ehlo(); s.mail("alice@a.test"); s.rcpt(sys.argv[2], options=sys.argv[3].split())
code, text = s.data(b"Subject: to a hostile MX\r\n\r\nhello\r\n")
print(text.decode().rsplit(" ", 1)[-1]); s.quit()
"#,
        &[&port.to_string(), to, params],
    );
    out.trim().to_owned()
}

/// Waits until `postel queue show ID` contains `wanted`; returns the text.
fn shown(dir: &std::path::Path, id: &str, wanted: &str) -> String {
    let start = Instant::now();
    loop {
        let out = run(dir, &["queue", "show", id], "");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(wanted) || start.elapsed() > Duration::from_secs(20) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn starttls_421(line: Option<&str>) -> (Vec<u8>, bool) {
    match line {
        None => (b"220 fake.b.test ESMTP\r\n".to_vec(), false),
        Some(l) if l.starts_with("EHLO") => {
            (b"250-fake.b.test\r\n250 STARTTLS\r\n".to_vec(), false)
        }
        Some("STARTTLS") => (b"421 4.3.2 Going down for maintenance\r\n".to_vec(), true),
        Some(_) => (b"250 2.0.0 Ok\r\n".to_vec(), false),
    }
}

#[test]
fn starttls_answered_421_keeps_the_mail_queued_and_never_sends_it_in_cleartext() {
    if !common::installed("python3") {
        return;
    }
    let fake = free_port();
    let seen = fake_mx(fake, starttls_421);
    let (dir, port, _server) = relay("starttls-421", fake);
    let id = submit(port);
    let text = shown(&dir, &id, "421 4.3.2 Going down for maintenance");
    assert!(
        text.contains("421 4.3.2 Going down for maintenance"),
        "{text}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let sessions = seen.lock().unwrap().clone();
    assert!(sessions.len() >= 2, "retried: {sessions:?}");
    // The last session may still be under way (retries come every
    // second): what it sent so far must begin the same way.
    let (last, done) = sessions.split_last().unwrap();
    for s in done {
        assert_eq!(
            s, "EHLO mail.a.test\r\nSTARTTLS\r\n",
            "nothing in cleartext"
        );
    }
    assert!(
        "EHLO mail.a.test\r\nSTARTTLS\r\n".starts_with(last.as_str()),
        "nothing in cleartext: {last:?}"
    );
}

fn malformed(line: Option<&str>) -> (Vec<u8>, bool) {
    match line {
        None => (b"220 fake.b.test ESMTP\r\n".to_vec(), false),
        Some(_) => (b"25O fake.b.test\r\n".to_vec(), false),
    }
}

#[test]
fn a_malformed_reply_is_recorded_as_a_local_diagnosis_not_as_421() {
    if !common::installed("python3") {
        return;
    }
    let fake = free_port();
    let _seen = fake_mx(fake, malformed);
    let (dir, port, server) = relay("malformed-reply", fake);
    let id = submit(port);
    let wanted = "451 4.5.0 Protocol error: malformed reply (invalid reply code)";
    let text = shown(&dir, &id, wanted);
    assert!(text.contains(wanted), "{text}");
    assert!(!text.contains("4.3.2"), "{text}");
    assert!(server.log_text().contains("local=true"));
}

fn flood(line: Option<&str>) -> (Vec<u8>, bool) {
    match line {
        None => (b"220 fake.b.test ESMTP\r\n".to_vec(), false),
        // An EHLO reply that never ends: 16 MiB of continuation lines.
        Some(_) => (
            b"250-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
                .repeat(16 << 20 >> 7),
            true,
        ),
    }
}

#[test]
fn a_16_mib_reply_flood_is_refused_within_the_cap() {
    if !common::installed("python3") {
        return;
    }
    let fake = free_port();
    let _seen = fake_mx(fake, flood);
    let (dir, port, _server) = relay("reply-flood", fake);
    let id = submit(port);
    let wanted = "451 4.5.0 Protocol error: reply longer than 65536 octets or 256 lines";
    let text = shown(&dir, &id, wanted);
    assert!(text.contains(wanted), "{text}");
}

/// RFC 5321 section 4.5.3.2: a deadline per stage, not per read. A server
/// that sends its greeting an octet a second would hold a worker forever if
/// every octet restarted the timer.
#[test]
fn a_trickled_greeting_gets_no_more_time_than_a_silent_one() {
    if !common::installed("python3") {
        return;
    }
    let fake = free_port();
    let listener = TcpListener::bind(("127.0.0.1", fake)).unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                for b in b"220 fake.b.test ESMTP at one octet a second\r\n" {
                    if stream.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
    });
    let (dir, port, _server) = relay_with("trickle", fake, "greeting_timeout_secs = 3");
    let id = submit(port);
    let started = Instant::now();
    let wanted = "timed out waiting for the greeting";
    let text = shown(&dir, &id, wanted);
    assert!(text.contains(wanted), "{text}");
    assert!(
        text.contains("451 4.4.2 Session with 127.0.0.1 [127.0.0.1] failed: timed out waiting for the greeting"),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "gave up after {:?}",
        started.elapsed()
    );
}

fn broken_tls(line: Option<&str>) -> (Vec<u8>, bool) {
    match line {
        None => (b"220 fake.b.test ESMTP\r\n".to_vec(), false),
        Some(l) if l.starts_with("EHLO") => {
            (b"250-fake.b.test\r\n250 STARTTLS\r\n".to_vec(), false)
        }
        // Agrees to TLS, then speaks no TLS at all.
        Some("STARTTLS") => (
            b"220 Ready\r\nthis is not a TLS server hello\r\n".to_vec(),
            true,
        ),
        Some("DATA") => (b"354 Go ahead\r\n".to_vec(), false),
        Some(".") => (b"250 2.0.0 Queued\r\n".to_vec(), false),
        Some("QUIT") => (b"221 2.0.0 Bye\r\n".to_vec(), true),
        Some(_) => (b"250 2.0.0 Ok\r\n".to_vec(), false),
    }
}

/// Postfix's habit: an MX whose TLS is broken is tried once more without
/// STARTTLS, as opportunistic TLS would have done had it not been offered.
#[test]
fn a_broken_tls_handshake_is_retried_once_in_plaintext() {
    if !common::installed("python3") {
        return;
    }
    let fake = free_port();
    let seen = fake_mx(fake, broken_tls);
    let (dir, port, server) = relay("broken-tls", fake);
    let id = submit(port);
    let start = Instant::now();
    while !String::from_utf8_lossy(&run(&dir, &["queue", "list"], "").stdout).contains("0 messages")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not delivered: {}",
            shown(&dir, &id, "-")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let sessions = seen.lock().unwrap().clone();
    assert_eq!(sessions[0], "EHLO mail.a.test\r\nSTARTTLS\r\n");
    assert!(
        sessions[1].starts_with("EHLO mail.a.test\r\nMAIL FROM:<alice@a.test>"),
        "{sessions:?}"
    );
    assert!(!sessions[1].contains("STARTTLS"));
    assert_eq!(sessions.len(), 2, "one retry");
    assert!(
        server
            .log_text()
            .contains("TLS failed; retrying in plaintext")
    );
}

fn greets_as_us(line: Option<&str>) -> (Vec<u8>, bool) {
    match line {
        None => (b"220 mail.a.test ESMTP\r\n".to_vec(), false),
        Some(_) => (b"250 2.0.0 Ok\r\n".to_vec(), false),
    }
}

/// An MX that greets with our own name is ourselves: the message bounces
/// with 5.4.6 instead of looping, and nothing is sent to it.
#[test]
fn an_mx_that_greets_with_our_own_name_is_a_loop_and_bounces() {
    if !common::installed("python3") {
        return;
    }
    let fake = free_port();
    let seen = fake_mx(fake, greets_as_us);
    let (dir, port, _server) = relay("own-name", fake);
    submit(port);
    let bounce = common::wait_mail(&dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(bounce.len(), 1, "the bounce");
    let text = String::from_utf8_lossy(&bounce[0]);
    assert!(text.contains("Status: 5.4.6\r\n"), "{text}");
    assert!(
        text.contains("Diagnostic-Code: smtp; 554 5.4.6 Mail for this destination loops back to"),
        "{text}"
    );
    assert!(
        seen.lock().unwrap().iter().all(String::is_empty),
        "nothing sent"
    );
}

fn accepting(line: Option<&str>) -> (Vec<u8>, bool) {
    match line {
        None => (b"220 sink.b.test ESMTP\r\n".to_vec(), false),
        Some(l) if l.starts_with("EHLO") => {
            (b"250-sink.b.test\r\n250 PIPELINING\r\n".to_vec(), false)
        }
        Some("DATA") => (b"354 Go ahead\r\n".to_vec(), false),
        Some(".") => (b"250 2.0.0 Queued\r\n".to_vec(), false),
        Some("QUIT") => (b"221 2.0.0 Bye\r\n".to_vec(), true),
        Some(_) => (b"250 2.0.0 Ok\r\n".to_vec(), false),
    }
}

/// Submits `n` messages while the MX is down, then lets it come up and
/// flushes the queue; returns the sessions the MX saw.
fn deliver_backlog(label: &str, relay_keys: &str, n: usize) -> Vec<String> {
    let fake = free_port();
    let (dir, port, _server) = relay_with(label, fake, relay_keys);
    for _ in 0..n {
        submit(port);
    }
    let seen = fake_mx(fake, accepting);
    assert!(run(&dir, &["queue", "flush"], "").status.success());
    let start = Instant::now();
    loop {
        let done = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.matches("\r\n.\r\n").count())
            .sum::<usize>();
        if done >= n {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{done} of {n} delivered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    seen.lock().unwrap().clone()
}

/// As Postfix's connection cache: messages for one destination share a
/// session (MAIL after MAIL) instead of a connection each; with reuse off,
/// every message has its own.
#[test]
fn messages_for_one_destination_share_a_connection() {
    if !common::installed("python3") {
        return;
    }
    let reused = deliver_backlog("reuse", "per_domain = 1", 8);
    assert_eq!(reused.len(), 1, "one connection for 8 messages: {reused:?}");
    assert_eq!(reused[0].matches("MAIL FROM:<alice@a.test>").count(), 8);
    let single = deliver_backlog("no-reuse", "per_domain = 1\nmessages_per_connection = 1", 8);
    assert_eq!(single.len(), 8, "a connection per message");
    assert!(single.iter().all(|s| s.ends_with("QUIT\r\n")));
}

fn accepting_with_dsn(line: Option<&str>) -> (Vec<u8>, bool) {
    match line {
        Some(l) if l.starts_with("EHLO") => (
            b"250-sink.b.test\r\n250-PIPELINING\r\n250 DSN\r\n".to_vec(),
            false,
        ),
        other => accepting(other),
    }
}

/// RFC 3461 section 5.2: to a server without DSN, NOTIFY and the other DSN
/// parameters are not sent, and this server, the last that can report,
/// tells the sender the message was relayed; a server with DSN gets them and
/// reports itself. A final delivery here is reported as delivered.
#[test]
fn notify_success_is_answered_by_the_last_hop_that_can() {
    if !common::installed("python3") {
        return;
    }
    let fake = free_port();
    let seen = fake_mx(fake, accepting);
    let (dir, port, _server) = relay("relayed", fake);
    submit_to(port, "bob@b.test", "NOTIFY=SUCCESS ORCPT=rfc822;bob@b.test");
    let reports = common::wait_mail(&dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(reports.len(), 1, "a success report");
    let text = String::from_utf8_lossy(&reports[0]);
    assert!(
        text.contains("Subject: Successful Mail Delivery Report\r\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "Final-Recipient: rfc822; bob@b.test\r\nAction: relayed\r\nStatus: 2.0.0\r\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("Original-Recipient: rfc822;bob@b.test\r\n"),
        "{text}"
    );
    let sessions = seen.lock().unwrap().clone();
    assert!(
        sessions[0].contains("RCPT TO:<bob@b.test>\r\n"),
        "no NOTIFY or ORCPT: {sessions:?}"
    );

    let fake = free_port();
    let seen = fake_mx(fake, accepting_with_dsn);
    let (dir, port, _server) = relay("dsn-hop", fake);
    submit_to(port, "bob@b.test", "NOTIFY=SUCCESS");
    let start = Instant::now();
    while !seen.lock().unwrap().iter().any(|s| s.contains("\r\n.\r\n")) {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen.lock().unwrap()[0].contains("RCPT TO:<bob@b.test> NOTIFY=SUCCESS\r\n"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        common::mail(&dir, "a.test", "alice").is_empty(),
        "the next hop reports, not us"
    );

    // Delivered here: a report that says so.
    submit_to(port, "alice@a.test", "NOTIFY=SUCCESS");
    let got = common::wait_mail(&dir, "a.test", "alice", 2, Duration::from_secs(20));
    assert_eq!(got.len(), 2, "the message and its report");
    let report = got
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .find(|m| m.contains("report-type=delivery-status"))
        .unwrap();
    assert!(
        report.contains("Final-Recipient: rfc822; alice@a.test\r\nAction: delivered\r\n"),
        "{report}"
    );
}

/// RFC 5321 section 6.3, before relaying: a message that arrives with 100
/// Received fields is taken (the limit is 100), but with this server's own
/// it would leave with 101, so it bounces with 5.4.6 instead of going on.
#[test]
fn a_message_at_the_hop_limit_is_not_relayed_one_hop_further() {
    if !common::installed("python3") {
        return;
    }
    let fake = free_port();
    let seen = fake_mx(fake, accepting);
    let (dir, port, _server) = relay("hops-out", fake);
    let mut message = String::new();
    for i in 0..100 {
        use std::fmt::Write as _;
        let _ = write!(
            message,
            "Received: from h{i}.example by h{}.example; Tue, 1 Dec 2026 10:00:00 +0000\r\n",
            i + 1
        );
    }
    message.push_str("Subject: looping\r\n\r\nround and round\r\n");
    common::python(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1])); s.starttls(context=ctx); s.login("alice@a.test", "pw-for-tests")
s.sendmail("alice@a.test", ["bob@b.test"], sys.argv[2].encode()); s.quit()
"#,
        &[&port.to_string(), &message],
    );
    let bounce = common::wait_mail(&dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(bounce.len(), 1, "bounced");
    let text = String::from_utf8_lossy(&bounce[0]);
    assert!(
        text.contains("Action: failed\r\nStatus: 5.4.6\r\n"),
        "{text}"
    );
    assert!(seen.lock().unwrap().is_empty(), "never sent on");
}

/// Per authenticated user: messages and recipients per window, past which
/// MAIL gets 450 4.7.1 and RCPT 452 4.7.1, recovering after the window.
#[test]
fn per_user_message_and_recipient_rates() {
    if !common::installed("python3") {
        return;
    }
    let dir = temp_dir("user-rates");
    let port = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"127.0.0.1:{port}\"\n\
role = \"submission\"\n[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[limits]\nuser_message_rate = 2\nuser_recipient_rate = 3\nuser_rate_window_secs = 3\n\
[relay]\nsmarthost = \"127.0.0.1:{}\"\n",
        free_port()
    );
    std::fs::write(dir.join("postel.toml"), &config).unwrap();
    common::add_user(&dir, "alice@a.test", "pw-for-tests");
    let _server = serve(&dir, &config, local(port), true);
    let out = common::python(
        r#"
import smtplib, ssl, sys, time
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1])); s.starttls(context=ctx); s.login("alice@a.test", "pw-for-tests")
for i in range(3):
    print(s.mail("alice@a.test")); s.rset()
time.sleep(3.2)
print(s.mail("alice@a.test"))
for r in ["a@b.test", "b@b.test", "c@b.test", "d@b.test"]:
    print(s.rcpt(r))
s.quit()
"#,
        &[&port.to_string()],
    );
    assert_eq!(
        out,
        "(250, b'2.1.0 Sender OK')\n(250, b'2.1.0 Sender OK')\n(450, b'4.7.1 Too many messages, slow down')\n\
(250, b'2.1.0 Sender OK')\n(250, b'2.1.5 Recipient OK')\n(250, b'2.1.5 Recipient OK')\n(250, b'2.1.5 Recipient OK')\n\
(452, b'4.7.1 Too many recipients, slow down')\n"
    );
}
