//! Real clients against the running `postel` binary: swaks, Python's
//! smtplib and curl submit with STARTTLS or implicit TLS and AUTH, and the
//! message arrives in the Maildir byte for byte; and the attacks a server on
//! the internet meets, each a named test. Every server listens on loopback
//! and is stopped by its PID.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    Process, add_user, free_port, installed, local, mail, python, serve, temp_dir, wait_mail,
    without_trace,
};

const PASSWORD: &str = "correct horse 7";

/// A server for `a.test` (mailboxes alice and bob) with submission (587
/// role), submissions (465 role) and mx listeners, and a dev certificate.
struct Server {
    dir: std::path::PathBuf,
    submission: u16,
    submissions: u16,
    mx: u16,
    process: Process,
}

fn server(label: &str, extra: &str) -> Server {
    let dir = temp_dir(label);
    let (submission, submissions, mx) = (free_port(), free_port(), free_port());
    let config = format!(
        r#"
hostname = "mail.a.test"
data_dir = "data"
{extra}
[[listener]]
address = "127.0.0.1:{submission}"
role = "submission"
[[listener]]
address = "127.0.0.1:{submissions}"
role = "submissions"
[[listener]]
address = "127.0.0.1:{mx}"
role = "mx"
[[domain]]
name = "a.test"
mailboxes = ["alice", "bob"]
"#
    );
    common::write_config(&dir, &config);
    add_user(&dir, "alice@a.test", PASSWORD);
    let process = serve(&dir, &config, local(mx), true);
    Server {
        dir,
        submission,
        submissions,
        mx,
        process,
    }
}

/// A message with CRLF line endings, a dot-leading line, 8-bit text, and no
/// final empty line.
const MESSAGE: &[u8] = b"From: alice@a.test\r\nTo: bob@a.test\r\nSubject: byte for byte\r\n\r\nfirst line\r\n.a line that starts with a dot\r\n..two dots\r\n\r\nlast line\r\n";

fn assert_arrived(dir: &Path, n: usize) {
    let got = wait_mail(dir, "a.test", "bob", n, Duration::from_secs(20));
    assert_eq!(got.len(), n, "messages in bob's Maildir");
    let last = got.last().unwrap();
    assert_eq!(
        String::from_utf8_lossy(without_trace(last)),
        String::from_utf8_lossy(MESSAGE),
        "the message arrives byte for byte"
    );
    assert!(last.starts_with(
        b"Return-Path: <alice@a.test>\r\nDelivered-To: bob@a.test\r\nReceived: from "
    ));
}

#[test]
fn swaks_submits_with_starttls_and_auth() {
    if !installed("swaks") {
        return;
    }
    let s = server("swaks", "");
    let file = s.dir.join("message.eml");
    // swaks ends the data with CRLF . CRLF itself: the file holds the
    // message without its final line ending.
    std::fs::write(&file, &MESSAGE[..MESSAGE.len() - 2]).unwrap();
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", s.submission)])
        .args(["--tls", "--auth", "PLAIN", "--auth-user", "alice@a.test"])
        .args(["--auth-password", PASSWORD])
        .args(["--from", "alice@a.test", "--to", "bob@a.test"])
        .arg("--data")
        .arg(format!("@{}", file.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("250 2.0.0 Ok: queued as"), "{text}");
    assert_arrived(&s.dir, 1);
}

#[test]
fn smtplib_submits_with_starttls_and_with_implicit_tls() {
    if !installed("python3") {
        return;
    }
    let s = server("smtplib", "");
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
msg = sys.stdin.buffer.read()
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.ehlo()
    assert "auth" not in s.esmtp_features, "AUTH offered before TLS"
    s.starttls(context=ctx)
    s.login("alice@a.test", sys.argv[3])
    s.sendmail("alice@a.test", ["bob@a.test"], msg)
with smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=20) as s:
    s.login("alice@a.test", sys.argv[3])
    s.sendmail("alice@a.test", ["bob@a.test"], msg)
    try:
        s.login("alice@a.test", "wrong")
    except smtplib.SMTPException as e:
        print("second login refused:", e)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .args([
            &s.submission.to_string(),
            &s.submissions.to_string(),
            PASSWORD,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(MESSAGE)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_arrived(&s.dir, 2);
    // One line per queued message with its id, sender, recipients and size;
    // the password never appears.
    let log = s.process.log_text();
    let queued: Vec<&str> = log.lines().filter(|l| l.contains("queued")).collect();
    assert_eq!(queued.len(), 2, "{log}");
    assert!(queued.iter().all(|l| l.contains("queue_id=")
        && l.contains("from=<alice@a.test>")
        && l.contains("to=<bob@a.test>")
        && l.contains("size=")));
    assert!(log.contains("authenticated") && log.contains("user=alice@a.test"));
    assert!(!log.contains(PASSWORD), "a secret reached the log");
}

#[test]
fn wrong_password_is_refused_with_535() {
    if !installed("python3") {
        return;
    }
    let s = server("badauth", "");
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), context=ctx, timeout=20) as s:
    try:
        s.login("alice@a.test", "not the password")
        print("accepted")
    except smtplib.SMTPAuthenticationError as e:
        print(e.smtp_code, e.smtp_error.decode())
    code, _ = s.docmd("MAIL", "FROM:<alice@a.test>")
    print(code)
"#;
    let out = python(script, &[&s.submissions.to_string()]);
    assert!(out.starts_with("535 5.7.8"), "{out}");
    assert!(out.trim_end().ends_with("530"), "MAIL without AUTH: {out}");
}

#[test]
fn curl_submits_over_smtp_and_smtps() {
    if !installed("curl") {
        return;
    }
    let s = server("curl", "");
    let file = s.dir.join("message.eml");
    std::fs::write(&file, MESSAGE).unwrap();
    for url in [
        format!("smtp://127.0.0.1:{}", s.submission),
        format!("smtps://127.0.0.1:{}", s.submissions),
    ] {
        let out = Command::new("curl")
            .args(["--silent", "--show-error", "--insecure", "--ssl-reqd"])
            .args(["--url", &url])
            .args(["--user", &format!("alice@a.test:{PASSWORD}")])
            .args(["--mail-from", "alice@a.test", "--mail-rcpt", "bob@a.test"])
            .arg("--upload-file")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_arrived(&s.dir, 2);
}

/// One SMTP conversation over a plain socket: each line sent, and every
/// reply line read until the reply is complete.
const CONVERSE: &str = r#"
import socket, sys, time
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        line = f.readline()
        if not line:
            lines.append("EOF")
            break
        lines.append(line.decode().rstrip())
        if line[3:4] != b"-":
            break
    return lines[-1]
print(reply())
for raw in sys.argv[2:]:
    data = raw.encode().decode("unicode_escape").encode("latin-1")
    s.sendall(data)
    print(reply())
"#;

#[test]
fn open_relay_is_refused_and_unknown_users_get_550_5_1_1() {
    if !installed("python3") {
        return;
    }
    let s = server("relay", "");
    let out = python(
        CONVERSE,
        &[
            &s.mx.to_string(),
            "EHLO client.example\\r\\n",
            "MAIL FROM:<someone@elsewhere.example>\\r\\n",
            "RCPT TO:<victim@elsewhere.example>\\r\\n",
            // Not one of the server's own addresses (which would be local).
            "RCPT TO:<bob@[192.0.2.1]>\\r\\n",
            "RCPT TO:<nobody@a.test>\\r\\n",
            "RCPT TO:<bob@A.TEST>\\r\\n",
            "RCPT TO:<Postmaster>\\r\\n",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[3].starts_with("550 5.7.1"),
        "relay to a stranger: {out}"
    );
    assert!(
        lines[4].starts_with("550 5.7.1"),
        "relay by address literal: {out}"
    );
    assert!(
        lines[5].starts_with("550 5.1.1"),
        "unknown local user: {out}"
    );
    assert!(lines[6].starts_with("250"), "local user, any case: {out}");
    assert!(lines[7].starts_with("250"), "postmaster: {out}");
}

#[test]
fn starttls_command_injection_is_discarded() {
    if !installed("python3") {
        return;
    }
    let s = server("inject", "");
    // The MAIL after STARTTLS arrives in the same packet, in plaintext: it
    // must not be executed inside the TLS session (CVE-2011-0411).
    let script = r#"
import socket, ssl, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            return line.decode().rstrip()
print(reply())
s.sendall(b"EHLO x\r\n"); print(reply())
s.sendall(b"STARTTLS\r\nMAIL FROM:<injected@a.test>\r\n")
print(reply())
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s)
g = t.makefile("rb")
t.sendall(b"EHLO x\r\n")
lines = []
while True:
    line = g.readline().decode().rstrip()
    lines.append(line)
    if line[3:4] != "-":
        break
print(lines[0])
t.sendall(b"RCPT TO:<bob@a.test>\r\n")
print(g.readline().decode().rstrip())
"#;
    let out = python(script, &[&s.mx.to_string()]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[2].starts_with("220"), "STARTTLS accepted: {out}");
    assert!(
        lines[3].starts_with("250-") || lines[3].starts_with("250 "),
        "the first reply inside TLS answers EHLO: {out}"
    );
    assert!(
        lines[4].starts_with("503"),
        "no MAIL was executed, so RCPT is out of sequence: {out}"
    );
}

#[test]
fn smtp_smuggling_is_refused() {
    if !installed("python3") {
        return;
    }
    let s = server("smuggle", "");
    // A body ending with <LF>.<CR><LF>, then a second transaction that a lax
    // server would run as if the first message had ended (CVE-2023-51766).
    let out = python(
        CONVERSE,
        &[
            &s.mx.to_string(),
            "EHLO x\\r\\n",
            "MAIL FROM:<alice@a.test>\\r\\n",
            "RCPT TO:<bob@a.test>\\r\\n",
            "DATA\\r\\n",
            "Subject: first\\r\\n\\r\\nhello\\n.\\r\\nMAIL FROM:<forged@a.test>\\r\\nRCPT TO:<bob@a.test>\\r\\nDATA\\r\\nSubject: smuggled\\r\\n\\r\\nevil\\r\\n.\\r\\n",
            "QUIT\\r\\n",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[5].starts_with("550") || lines[5].starts_with("554") || lines[5].starts_with("500"),
        "the body with a bare LF is refused: {out}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = mail(&s.dir, "a.test", "bob");
    assert!(
        got.iter()
            .all(|m| !String::from_utf8_lossy(m).contains("Subject: smuggled")),
        "no smuggled message was delivered"
    );
    assert!(got.is_empty(), "nothing was delivered: {}", got.len());
}

#[test]
fn overlong_lines_get_500_and_the_session_goes_on() {
    if !installed("python3") {
        return;
    }
    let s = server("longline", "");
    let long_rcpt = format!("RCPT TO:<{}@a.test>\\r\\n", "x".repeat(600));
    let long_noop = format!("NOOP {}\\r\\n", "y".repeat(2000));
    let out = python(
        CONVERSE,
        &[
            &s.mx.to_string(),
            "EHLO x\\r\\n",
            "MAIL FROM:<alice@a.test>\\r\\n",
            &long_rcpt,
            &long_noop,
            "RCPT TO:<bob@a.test>\\r\\n",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[3].starts_with("500") || lines[3].starts_with("501"),
        "{out}"
    );
    assert!(lines[4].starts_with("500 5.5.2"), "{out}");
    assert!(lines[5].starts_with("250"), "the session continues: {out}");
}

#[test]
fn a_silent_client_is_dropped_with_421() {
    if !installed("python3") {
        return;
    }
    let s = server("slow", "[limits]\nidle_timeout_secs = 2\n");
    let script = r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = s.makefile("rb")
print(f.readline().decode().rstrip())
s.sendall(b"EHLO x\r\nMAIL FROM:<alice@a.test>\r\n")
start = time.time()
lines = [l.decode().rstrip() for l in f]
print(lines[-1])
print(round(time.time() - start))
"#;
    let out = python(script, &[&s.mx.to_string()]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].starts_with("421"), "{out}");
    let waited: u64 = lines[2].parse().unwrap();
    assert!(
        waited < 20,
        "closed after the idle timeout, not later: {out}"
    );
}

#[test]
fn a_connection_flood_is_limited() {
    if !installed("python3") {
        return;
    }
    let s = server(
        "flood",
        "[limits]\nconnections = 40\nconnections_per_ip = 5\n",
    );
    let script = r#"
import socket, sys
port = int(sys.argv[1])
socks = []
greetings = []
for i in range(30):
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    socks.append(c)
    greetings.append(c.makefile("rb").readline().decode()[:3])
print(greetings.count("220"), greetings.count("421"))
for c in socks:
    c.close()
import time; time.sleep(0.5)
c = socket.create_connection(("127.0.0.1", port), timeout=20)
print(c.makefile("rb").readline().decode()[:3])
"#;
    let out = python(script, &[&s.mx.to_string()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "5 25", "five served, the rest told 421: {out}");
    assert_eq!(lines[1], "220", "served again once they left: {out}");
}

#[test]
fn sighup_reloads_the_certificate() {
    if !installed("python3") || !installed("openssl") {
        return;
    }
    let dir = temp_dir("sighup");
    let make = |name: &str| {
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", &format!("/CN={name}")])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    make("first.a.test");
    let port = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
[[listener]]\naddress = \"127.0.0.1:{port}\"\nrole = \"submissions\"\n"
    );
    let server = serve(&dir, &config, local(port), false);
    let subject = || {
        python(
            r#"
import socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20) as raw:
    with ctx.wrap_socket(raw) as t:
        der = t.getpeercert(binary_form=True)
pem = open(sys.argv[2]).read()
print("same" if ssl.PEM_cert_to_DER_cert(pem) == der else "different")
"#,
            &[
                &port.to_string(),
                &dir.join("cert.pem").display().to_string(),
            ],
        )
    };
    assert_eq!(subject().trim(), "same");
    make("second.a.test");
    assert_eq!(subject().trim(), "different", "not reloaded before SIGHUP");
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(subject().trim(), "same", "the new certificate after SIGHUP");
}
