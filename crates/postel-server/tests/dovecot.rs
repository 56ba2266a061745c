//! The way mail reaches people: submitted to postel, handed to a real
//! Dovecot over LMTP, and read back over IMAP with Python's imaplib.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{add_user, free_port, installed, local, python, run, serve, temp_dir, without_trace};
use postel_testkit::Dovecot;

const PASSWORD: &str = "pw-for-dovecot-tests";

/// postel for d.test with a submission listener, delivering d.test over
/// LMTP to `dovecot`; the mailboxes it accepts at RCPT are `mailboxes`.
fn postel(
    label: &str,
    dovecot: &Dovecot,
    mailboxes: &str,
) -> (std::path::PathBuf, u16, common::Process) {
    let tcp = format!("delivery = \"lmtp:{}\"", dovecot.lmtp);
    postel_with(label, mailboxes, &tcp)
}

/// The same, with more keys for the domain.
fn postel_with(
    label: &str,
    mailboxes: &str,
    domain_keys: &str,
) -> (std::path::PathBuf, u16, common::Process) {
    let dir = temp_dir(label);
    let submission = free_port();
    let config = format!(
        "hostname = \"mail.d.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{submission}\"\nrole = \"submission\"\n\
[[domain]]\nname = \"d.test\"\nmailboxes = [{mailboxes}]\n{domain_keys}\n\
[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n",
    );
    std::fs::write(dir.join("postel.toml"), &config).unwrap();
    add_user(&dir, "alice@d.test", PASSWORD);
    let process = serve(&dir, &config, local(submission), true);
    (dir, submission, process)
}

/// Submits `message` from alice to `to` over STARTTLS with AUTH.
fn submit(port: u16, to: &[&str], message: &[u8]) {
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.starttls(context=ctx); s.login("alice@d.test", sys.argv[2])
    s.sendmail("alice@d.test", sys.argv[4].split(","), bytes.fromhex(sys.argv[3]))
"#;
    use std::fmt::Write as _;
    let hex = message.iter().fold(String::new(), |mut h, b| {
        let _ = write!(h, "{b:02x}");
        h
    });
    python(script, &[&port.to_string(), PASSWORD, &hex, &to.join(",")]);
}

/// The messages in `user`'s INBOX, read over IMAP.
fn inbox(dovecot: &Dovecot, user: &str, password: &str) -> Vec<Vec<u8>> {
    let script = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
m.select("INBOX")
typ, data = m.search(None, "ALL")
for n in data[0].split():
    typ, parts = m.fetch(n, "(RFC822)")
    print(parts[0][1].hex())
m.logout()
"#;
    let out = python(script, &[&dovecot.imap.port().to_string(), user, password]);
    out.lines()
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

/// Waits until `user`'s INBOX holds at least `n` messages.
fn wait_inbox(dovecot: &Dovecot, user: &str, password: &str, n: usize) -> Vec<Vec<u8>> {
    let start = Instant::now();
    loop {
        let got = inbox(dovecot, user, password);
        if got.len() >= n || start.elapsed() > Duration::from_secs(30) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Dovecot with users alice and bob (IMAP passwords alice-imap and
/// bob-imap); `None`, with the reason printed, when a peer is missing.
fn dovecot() -> Option<Dovecot> {
    if !installed("python3") {
        return None;
    }
    Dovecot::start(&[("alice@d.test", "alice-imap"), ("bob@d.test", "bob-imap")])
}

const MESSAGE: &[u8] = b"From: alice@d.test\r\nTo: bob@d.test\r\nSubject: through Dovecot\r\n\r\n\
first line\r\n.a line that starts with a dot\r\n8-bit: caf\xc3\xa9\r\n\r\nlast line\r\n";

#[test]
fn mail_reaches_the_imap_inbox_and_a_refused_recipient_bounces() {
    let Some(dovecot) = dovecot() else {
        return;
    };
    // carol is a mailbox to postel but no user to Dovecot, which refuses her.
    let (_dir, port, server) = postel("dovecot-chain", &dovecot, "\"alice\", \"bob\", \"carol\"");
    submit(port, &["bob@d.test", "carol@d.test"], MESSAGE);
    let got = wait_inbox(&dovecot, "bob@d.test", "bob-imap", 1);
    assert_eq!(got.len(), 1, "in bob's INBOX: {}", server.log_text());
    assert_eq!(
        String::from_utf8_lossy(without_trace(&got[0])),
        String::from_utf8_lossy(MESSAGE),
        "octet for octet"
    );
    let bounces = wait_inbox(&dovecot, "alice@d.test", "alice-imap", 1);
    assert_eq!(bounces.len(), 1, "one bounce: {}", server.log_text());
    let bounce = String::from_utf8_lossy(&bounces[0]);
    assert!(
        bounce.contains(
            "Final-Recipient: rfc822; carol@d.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ),
        "{bounce}"
    );
    assert!(
        bounce.contains("Diagnostic-Code: smtp; 550 5.1.1"),
        "{bounce}"
    );
    assert!(
        !bounce.contains("bob@d.test\r\nAction"),
        "only carol bounces: {bounce}"
    );
}

#[test]
fn with_dovecot_down_mail_waits_and_is_delivered_once_when_it_is_back() {
    let Some(mut dovecot) = dovecot() else {
        return;
    };
    let (dir, port, server) = postel("dovecot-down", &dovecot, "\"alice\", \"bob\"");
    dovecot.stop();
    submit(port, &["bob@d.test"], MESSAGE);
    std::thread::sleep(Duration::from_secs(2));
    let listed = String::from_utf8_lossy(&run(&dir, &["queue", "list"], "").stdout).into_owned();
    let id = listed.split_whitespace().next().unwrap().to_owned();
    let shown =
        String::from_utf8_lossy(&run(&dir, &["queue", "show", &id], "").stdout).into_owned();
    assert!(shown.contains("<bob@d.test> pending"), "{shown}");
    assert!(
        shown.contains("451 4.4.1 LMTP server lmtp:127.0.0.1:"),
        "{shown}"
    );
    dovecot.restart();
    let got = wait_inbox(&dovecot, "bob@d.test", "bob-imap", 1);
    assert_eq!(
        got.len(),
        1,
        "delivered when Dovecot is back: {}",
        server.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(inbox(&dovecot, "bob@d.test", "bob-imap").len(), 1, "once");
}

/// recipients = "probe": the RCPT check asks Dovecot, so a user known only
/// to Dovecot is taken and an unknown one gets Dovecot's own 550 at RCPT,
/// not a bounce; with Dovecot down the client is told to try later.
#[test]
fn a_probe_rcpt_asks_dovecot_at_rcpt_time() {
    let Some(mut dovecot) = dovecot() else {
        return;
    };
    let keys = format!(
        "delivery = \"lmtp:{}\"\nrecipients = \"probe\"",
        dovecot.lmtp
    );
    let (_dir, port, _server) = postel_with("dovecot-probe", "\"alice\"", &keys);
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20); s.starttls(context=ctx); s.login("alice@d.test", sys.argv[2])
s.mail("alice@d.test")
for r in sys.argv[3:]:
    print(s.rcpt(r))
s.rset(); s.quit()
"#;
    let out = python(
        script,
        &[&port.to_string(), PASSWORD, "bob@d.test", "nobody@d.test"],
    );
    assert_eq!(
        out,
        "(250, b'2.1.5 Recipient OK')\n(550, b\"5.1.1 <nobody@d.test> User doesn't exist: nobody@d.test\")\n"
    );
    dovecot.stop();
    let out = python(script, &[&port.to_string(), PASSWORD, "bob@d.test"]);
    assert_eq!(
        out,
        "(451, b'4.4.1 Cannot verify the recipient now, try again later')\n"
    );
}

/// `delivery = "lmtp:unix:PATH"`: the same chain over Dovecot's LMTP socket.
#[test]
fn delivery_over_dovecots_unix_socket() {
    let Some(dovecot) = dovecot() else {
        return;
    };
    let keys = format!(
        "delivery = \"lmtp:unix:{}\"",
        dovecot.lmtp_socket().display()
    );
    let (_dir, port, server) = postel_with("dovecot-unix", "\"alice\", \"bob\"", &keys);
    submit(port, &["bob@d.test"], MESSAGE);
    let got = wait_inbox(&dovecot, "bob@d.test", "bob-imap", 1);
    assert_eq!(got.len(), 1, "in bob's INBOX: {}", server.log_text());
    assert_eq!(without_trace(&got[0]), MESSAGE);
}
