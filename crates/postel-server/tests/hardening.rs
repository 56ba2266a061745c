//! The receiving side against an attacker on a plain socket: endless lines
//! (memory read from /proc while they arrive), duplicate recipients (files
//! counted in the Maildir), and mail loops by hop count and by Delivered-To.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use common::{Process, free_port, local, mail, serve, temp_dir, wait_mail};

/// A server for `a.test` (mailboxes alice and bob, alias `info` to bob) on
/// one mx listener.
struct Server {
    dir: PathBuf,
    mx: u16,
    process: Process,
}

fn server(label: &str, limits: &str) -> Server {
    let dir = temp_dir(label);
    let mx = free_port();
    let config = format!(
        r#"
hostname = "mail.a.test"
data_dir = "data"
[limits]
{limits}
[[listener]]
address = "127.0.0.1:{mx}"
role = "mx"
[[domain]]
name = "a.test"
mailboxes = ["alice", "bob"]
aliases = {{ info = ["bob"] }}
"#
    );
    let process = serve(&dir, &config, local(mx), false);
    Server { dir, mx, process }
}

/// A client on a plain socket that reads whole replies.
struct Smtp {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Smtp {
    fn connect(port: u16) -> Smtp {
        let stream = TcpStream::connect(local(port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut s = Smtp {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        };
        assert!(s.reply().starts_with("220 "));
        s
    }

    /// One reply, all its lines.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap() == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn send(&mut self, octets: &[u8]) {
        self.writer.write_all(octets).unwrap();
    }

    fn command(&mut self, line: &str) -> String {
        self.send(line.as_bytes());
        self.reply()
    }

    /// True once the server has closed the connection.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).is_ok() && rest.is_empty()
    }
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    common::status_kib(pid, "VmRSS")
}

/// Sends `total` octets of one line in 64 KiB writes; returns the peak
/// growth of the server's resident memory over `base`, in KiB.
fn send_line(s: &mut Smtp, pid: u32, total: usize, base: u64) -> u64 {
    let piece = vec![b'x'; 64 * 1024];
    let mut peak = 0;
    for i in 0..total / piece.len() {
        s.send(&piece);
        if i % 16 == 0 {
            peak = peak.max(rss_kib(pid).saturating_sub(base));
        }
    }
    peak.max(rss_kib(pid).saturating_sub(base))
}

#[test]
fn a_64_mib_body_line_is_refused_without_growing_memory() {
    let s = server("endless-body", "message_size = 209715200");
    let mut c = Smtp::connect(s.mx);
    c.command("EHLO attacker.example\r\n");
    assert!(
        c.command("MAIL FROM:<x@attacker.example>\r\n")
            .starts_with("250")
    );
    assert!(c.command("RCPT TO:<bob@a.test>\r\n").starts_with("250"));
    assert!(c.command("DATA\r\n").starts_with("354"));
    let base = rss_kib(s.process.pid());
    let growth = send_line(&mut c, s.process.pid(), 64 << 20, base);
    eprintln!("RSS grew by {growth} KiB while a 64 MiB body line arrived (from {base} KiB)");
    assert_eq!(
        c.command("\r\n.\r\n"),
        "552 5.3.4 Message contains a line longer than allowed\r\n"
    );
    assert!(
        growth < 8 * 1024,
        "memory grew by {growth} KiB while a 64 MiB line arrived"
    );
    assert_eq!(c.command("NOOP\r\n"), "250 2.0.0 OK\r\n", "still in step");
    std::thread::sleep(Duration::from_millis(300));
    assert!(mail(&s.dir, "a.test", "bob").is_empty());
}

#[test]
fn a_16_mib_command_line_gets_500_and_three_close_the_connection() {
    let s = server("endless-command", "");
    let mut c = Smtp::connect(s.mx);
    let base = rss_kib(s.process.pid());
    c.send(b"NOOP ");
    let growth = send_line(&mut c, s.process.pid(), 16 << 20, base);
    eprintln!("RSS grew by {growth} KiB while a 16 MiB command line arrived (from {base} KiB)");
    assert_eq!(c.command("\r\n"), "500 5.5.2 Line too long\r\n");
    assert!(
        growth < 4 * 1024,
        "memory grew by {growth} KiB while a 16 MiB line arrived"
    );
    let long = format!("NOOP {}\r\n", "y".repeat(5000));
    assert_eq!(c.command(&long), "500 5.5.2 Line too long\r\n");
    assert_eq!(c.command(&long), "500 5.5.2 Line too long\r\n");
    assert_eq!(
        c.reply(),
        "421 4.7.0 Too many over-long lines, closing transmission channel\r\n"
    );
    assert!(c.closed());
}

#[test]
fn duplicate_recipients_are_stored_once() {
    let s = server("duplicates", "");
    let mut c = Smtp::connect(s.mx);
    c.command("EHLO sender.example\r\n");
    assert!(
        c.command("MAIL FROM:<x@sender.example>\r\n")
            .starts_with("250")
    );
    // The same mailbox 53 times: as written, in other case, and by alias.
    for i in 0..53 {
        let to = match i % 3 {
            0 => "bob@a.test",
            1 => "BOB@A.Test",
            _ => "info@a.test",
        };
        assert_eq!(
            c.command(&format!("RCPT TO:<{to}>\r\n")),
            "250 2.1.5 Recipient OK\r\n",
            "RCPT {i}"
        );
    }
    assert_eq!(
        c.command("RCPT TO:<alice@a.test>\r\n"),
        "250 2.1.5 Recipient OK\r\n"
    );
    assert!(c.command("DATA\r\n").starts_with("354"));
    assert!(
        c.command("Subject: once\r\n\r\nhello\r\n.\r\n")
            .starts_with("250 2.0.0 Ok: queued as ")
    );
    assert_eq!(
        wait_mail(&s.dir, "a.test", "alice", 1, Duration::from_secs(20)).len(),
        1
    );
    wait_mail(&s.dir, "a.test", "bob", 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(mail(&s.dir, "a.test", "bob").len(), 1, "one copy for bob");
    assert_eq!(mail(&s.dir, "a.test", "alice").len(), 1);
    // RFC 6531: a UTF-8 address without SMTPUTF8 is 553 5.6.7.
    c.command("RSET\r\n");
    c.command("MAIL FROM:<x@sender.example>\r\n");
    assert_eq!(
        c.command("RCPT TO:<bjørn@a.test>\r\n"),
        "553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n"
    );
}

fn message_with_received(n: usize) -> String {
    use std::fmt::Write as _;
    let mut m = String::new();
    for i in 0..n {
        let _ = write!(
            m,
            "Received: from hop{i}.example by hop{}.example;\r\n\tTue, 1 Dec 2026 10:00:00 +0000\r\n",
            i + 1
        );
    }
    m.push_str("Subject: hops\r\n\r\nbody\r\n.\r\n");
    m
}

#[test]
fn a_message_with_more_than_100_received_fields_is_refused() {
    let s = server("hops", "");
    let mut c = Smtp::connect(s.mx);
    c.command("EHLO sender.example\r\n");
    for (n, expected) in [
        (
            150,
            "554 5.4.6 Too many Received header fields, mail loop\r\n",
        ),
        (
            1000,
            "554 5.4.6 Too many Received header fields, mail loop\r\n",
        ),
        (100, "250 2.0.0 Ok: queued as "),
    ] {
        assert!(
            c.command("MAIL FROM:<x@sender.example>\r\n")
                .starts_with("250")
        );
        assert!(c.command("RCPT TO:<bob@a.test>\r\n").starts_with("250"));
        assert!(c.command("DATA\r\n").starts_with("354"));
        let answer = c.command(&message_with_received(n));
        assert!(answer.starts_with(expected), "{n} Received: {answer}");
    }
    let got = wait_mail(&s.dir, "a.test", "bob", 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        mail(&s.dir, "a.test", "bob").len(),
        1,
        "only the 100-hop message"
    );
    assert!(String::from_utf8_lossy(&got[0]).contains("Received: from hop99.example"));
}

#[test]
fn mail_that_comes_back_to_its_mailbox_is_a_loop() {
    let s = server("delivered-to", "");
    let mut c = Smtp::connect(s.mx);
    c.command("EHLO sender.example\r\n");
    c.command("MAIL FROM:<x@sender.example>\r\n");
    c.command("RCPT TO:<info@a.test>\r\n");
    c.command("DATA\r\n");
    assert!(
        c.command("Subject: first\r\n\r\nhello\r\n.\r\n")
            .starts_with("250")
    );
    let got = wait_mail(&s.dir, "a.test", "bob", 1, Duration::from_secs(20));
    let delivered = String::from_utf8(got[0].clone()).unwrap();
    assert!(
        delivered.starts_with(
            "Return-Path: <x@sender.example>\r\nDelivered-To: bob@a.test\r\nReceived: "
        ),
        "{delivered}"
    );
    // The delivered message, forwarded back to bob by some other system.
    let body = delivered
        .split_once("\r\n")
        .map(|(_, rest)| rest)
        .unwrap()
        .replace("\r\n.", "\r\n..");
    c.command("MAIL FROM:<x@sender.example>\r\n");
    c.command("RCPT TO:<bob@a.test>\r\n");
    c.command("DATA\r\n");
    assert_eq!(
        c.command(&format!("{body}.\r\n")),
        "554 5.4.6 Mail loop: already delivered to this mailbox\r\n"
    );
    // To another mailbox it is no loop.
    c.command("MAIL FROM:<x@sender.example>\r\n");
    c.command("RCPT TO:<alice@a.test>\r\n");
    c.command("DATA\r\n");
    assert!(c.command(&format!("{body}.\r\n")).starts_with("250"));
    wait_mail(&s.dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(mail(&s.dir, "a.test", "bob").len(), 1);
}

/// RFC 5321 section 4.1.3: mail for `user@[our own address]` is local, for
/// anyone, like mail for our domains; for another address it is relaying.
#[test]
fn mail_to_our_own_address_literal_is_local() {
    let s = server("own-literal", "");
    let mut c = Smtp::connect(s.mx);
    c.command("EHLO sender.example\r\n");
    c.command("MAIL FROM:<x@sender.example>\r\n");
    assert_eq!(
        c.command("RCPT TO:<alice@[127.0.0.1]>\r\n"),
        "250 2.1.5 Recipient OK\r\n"
    );
    assert_eq!(
        c.command("RCPT TO:<nobody@[127.0.0.1]>\r\n"),
        "550 5.1.1 No such user here\r\n"
    );
    assert_eq!(
        c.command("RCPT TO:<alice@[192.0.2.1]>\r\n"),
        "550 5.7.1 Relay access denied\r\n"
    );
    c.command("DATA\r\n");
    assert!(
        c.command("Subject: literal\r\n\r\nhi\r\n.\r\n")
            .starts_with("250")
    );
    let got = wait_mail(&s.dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(got.len(), 1);
}

/// Postel as the final delivery agent behind another MTA: an `lmtp`
/// listener, driven by Python's smtplib.LMTP and by swaks as an LMTP
/// client. One reply per recipient after the message, each copy in its
/// Maildir; an unknown mailbox refused at RCPT; nothing relayed.
#[test]
fn the_lmtp_listener_answers_per_recipient_and_delivers_into_maildir() {
    if !common::installed("python3") || !common::installed("swaks") {
        return;
    }
    let dir = temp_dir("lmtp-listener");
    let port = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"127.0.0.1:{port}\"\nrole = \"lmtp\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\", \"bob\"]\n"
    );
    let _s = serve(&dir, &config, local(port), false);
    let out = common::python(
        r#"
import smtplib, sys
s = smtplib.LMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("mta.example")  # LMTP.ehlo sends LHLO
s.mail("sender@example.org")
for r in ["alice@a.test", "nobody@a.test", "bob@a.test", "someone@elsewhere.example"]:
    print(s.rcpt(r)[0])
s.putcmd("data"); print(s.getreply()[0])
s.send(b"Subject: over LMTP\r\n\r\nhello\r\n.\r\n")
print(s.getreply()); print(s.getreply())
s.quit()
"#,
        &[&port.to_string()],
    );
    assert_eq!(
        out,
        "250\n550\n250\n550\n354\n(250, b'2.0.0 <alice@a.test> delivered')\n(250, b'2.0.0 <bob@a.test> delivered')\n"
    );
    for who in ["alice", "bob"] {
        let got = mail(&dir, "a.test", who);
        assert_eq!(got.len(), 1, "{who}");
        let text = String::from_utf8_lossy(&got[0]);
        assert!(
            text.starts_with(&format!(
                "Return-Path: <sender@example.org>\r\nDelivered-To: {who}@a.test\r\nReceived: from mta.example ([127.0.0.1])\r\n\tby mail.a.test (Postel) with LMTP\r\n"
            )),
            "{text}"
        );
        assert!(
            text.ends_with("Subject: over LMTP\r\n\r\nhello\r\n"),
            "{text}"
        );
    }
    // swaks speaks LMTP too; an unknown mailbox alone is refused at RCPT.
    let swaks = std::process::Command::new("swaks")
        .args([
            "--protocol",
            "LMTP",
            "--server",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "--from",
            "sender@example.org",
            "--to",
            "bob@a.test,nobody@a.test",
        ])
        .args(["--header", "Subject: from swaks"])
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&swaks.stdout);
    assert!(
        transcript.contains("<-  220 mail.a.test LMTP ready"),
        "{transcript}"
    );
    assert!(
        transcript.contains("<** 550 5.1.1 No such user here"),
        "{transcript}"
    );
    assert!(
        transcript.contains("<-  250 2.0.0 <bob@a.test> delivered"),
        "{transcript}"
    );
    assert_eq!(mail(&dir, "a.test", "bob").len(), 2);
}

/// Anvil-style rates per client address, each driven past its limit with
/// Python's smtplib, and recovering once the window has passed.
#[test]
fn connection_message_and_recipient_rates_per_client_address() {
    if !common::installed("python3") {
        return;
    }
    let s = server(
        "rates",
        "connection_rate = 3\nmessage_rate = 2\nrecipient_rate = 3\nrate_window_secs = 2",
    );
    // The harness's own connection, made to see the server up, counts too.
    std::thread::sleep(Duration::from_millis(2100));
    let out = common::python(
        r#"
import smtplib, sys, time
port = int(sys.argv[1])
open_ = [smtplib.SMTP("127.0.0.1", port) for _ in range(3)]
try:
    smtplib.SMTP("127.0.0.1", port)
except smtplib.SMTPConnectError as e:
    print("4th connection", e.smtp_code, e.smtp_error.decode())
time.sleep(2.1)
s = open_[0]
s.ehlo("rates.example")
for _ in range(3):
    print(s.mail("x@rates.example")); s.rset()
time.sleep(2.1)
print(s.mail("x@rates.example"))
for r in ["bob@a.test", "bob@a.test", "alice@a.test", "alice@a.test"]:
    print(s.rcpt(r))
time.sleep(2.1)
print(s.rcpt("alice@a.test"))
"#,
        &[&s.mx.to_string()],
    );
    assert_eq!(
        out,
        "4th connection 421 4.7.0 Too many connections from your address, slow down\n\
(250, b'2.1.0 Sender OK')\n(250, b'2.1.0 Sender OK')\n(450, b'4.7.1 Too many messages, slow down')\n\
(250, b'2.1.0 Sender OK')\n(250, b'2.1.5 Recipient OK')\n(250, b'2.1.5 Recipient OK')\n\
(250, b'2.1.5 Recipient OK')\n(452, b'4.7.1 Too many recipients, slow down')\n(250, b'2.1.5 Recipient OK')\n"
    );
}

/// SIGHUP reads the configuration again: sessions that begin afterwards get
/// it, a session already open keeps the one it began with, and a file that
/// does not validate is refused while the running configuration stays.
#[test]
fn sighup_reloads_the_configuration_without_dropping_sessions() {
    let s = server("reload", "");
    let config = std::fs::read_to_string(s.dir.join("postel.toml")).unwrap();
    let hup = |pid: u32| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let wait_log = |needle: &str, count: usize| {
        let start = std::time::Instant::now();
        while s.process.log_text().matches(needle).count() < count {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no {needle:?} in the log"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut before = Smtp::connect(s.mx);
    before.command("EHLO before.example\r\n");
    let with_carol = config.replace(
        "mailboxes = [\"alice\", \"bob\"]",
        "mailboxes = [\"alice\", \"bob\", \"carol\"]",
    );
    assert_ne!(with_carol, config);
    std::fs::write(s.dir.join("postel.toml"), &with_carol).unwrap();
    hup(s.process.pid());
    wait_log("configuration reloaded", 1);
    let mut after = Smtp::connect(s.mx);
    after.command("EHLO after.example\r\n");
    after.command("MAIL FROM:<x@after.example>\r\n");
    assert_eq!(
        after.command("RCPT TO:<carol@a.test>\r\n"),
        "250 2.1.5 Recipient OK\r\n"
    );
    before.command("MAIL FROM:<x@before.example>\r\n");
    assert_eq!(
        before.command("RCPT TO:<carol@a.test>\r\n"),
        "550 5.1.1 No such user here\r\n",
        "the open session keeps its configuration"
    );
    std::fs::write(
        s.dir.join("postel.toml"),
        format!("{with_carol}\nrecipients = 0\n"),
    )
    .unwrap();
    hup(s.process.pid());
    wait_log("configuration reload refused", 1);
    let mut later = Smtp::connect(s.mx);
    later.command("EHLO later.example\r\n");
    later.command("MAIL FROM:<x@later.example>\r\n");
    assert_eq!(
        later.command("RCPT TO:<carol@a.test>\r\n"),
        "250 2.1.5 Recipient OK\r\n"
    );
}
