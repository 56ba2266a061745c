//! Real clients against the sink built on postel-session: Python's smtplib
//! always, swaks and Postfix's smtp-source when installed (`.ci/run` installs
//! them). The server listens on loopback only and stops with the test.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::Command;
use std::sync::mpsc;

use postel_examples::{Received, sink_session};
use postel_testkit::installed;

/// Starts a sink on a loopback port; messages arrive on the channel. The
/// listener lives as long as the test process.
fn sink() -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let tx = tx.clone();
            let stream = stream.unwrap();
            std::thread::spawn(move || {
                let _ = sink_session(stream, |m| tx.send(m).unwrap());
            });
        }
    });
    (port, rx)
}

#[test]
fn python_smtplib() {
    if !installed("python3") {
        return;
    }
    let (port, rx) = sink();
    let script = r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.sendmail("me@example.org", ["you@example.org", "them@example.net"],
               b"Subject: hi\r\n\r\nhello\r\n.dot line\r\n",
               mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=FAILURE"])
"#;
    let out = Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    assert_eq!(m.from, "<me@example.org>");
    assert_eq!(m.to, ["<you@example.org>", "<them@example.net>"]);
    assert_eq!(m.data, b"Subject: hi\r\n\r\nhello\r\n.dot line\r\n");
}

#[test]
fn swaks_with_pipelining() {
    if !installed("swaks") {
        return;
    }
    let (port, rx) = sink();
    let out = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{port}"), "--pipeline"])
        .args([
            "--from",
            "a@example.org",
            "--to",
            "b@example.org,c@example.org",
        ])
        .args(["--body", "first\n.leading dot\nlast"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let m = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    assert_eq!(m.to, ["<b@example.org>", "<c@example.org>"]);
    let text = String::from_utf8(m.data).unwrap();
    assert!(
        text.contains("\r\n\r\nfirst\r\n.leading dot\r\nlast\r\n"),
        "{text}"
    );
}

#[test]
fn postfix_smtp_source_many_messages() {
    if !installed("smtp-source") {
        return;
    }
    let (port, rx) = sink();
    // 40 messages of 3000 octets, one per session, 4 sessions at a time, with
    // PIPELINING.
    let out = Command::new("smtp-source")
        .args([
            "-c",
            "-m",
            "40",
            "-s",
            "4",
            "-l",
            "3000",
            "-t",
            "x@example.org",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<_> = (0..40)
        .map(|_| rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap())
        .collect();
    assert!(
        got.iter().all(|m| m.data.len() >= 3000),
        "every message arrived whole"
    );
}
