//! Filters through the running server: a real libmilter filter (Debian's
//! pymilter, `postel-testkit`'s test filter) with one behaviour per case,
//! Python's smtplib as the client, and the delivered Maildir file compared
//! octet for octet; and scripted filters that fail in the ways real ones do.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use common::{free_port, local, python, run, serve, temp_dir, wait_mail, without_trace};
use postel_testkit::PyMilter;

/// Sends one message with smtplib and prints each reply as `stage code text`.
const CLIENT: &str = r#"
import smtplib, sys
port, sender, rcpts, path = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4]
message = open(path, "rb").read()
s = smtplib.SMTP("127.0.0.1", port, timeout=30)
try:
    code, text = s.ehlo("client.a.test")
    print("ehlo", code)
    code, text = s.mail(sender)
    print("mail", code, text.decode())
    ok = 0
    for r in rcpts:
        code, text = s.rcpt(r)
        print("rcpt", r, code, text.decode())
        ok += code == 250
    if code // 100 == 2 or ok:
        try:
            code, text = s.data(message)
            print("data", code, text.decode())
        except smtplib.SMTPDataError as e:
            print("data", e.smtp_code, e.smtp_error.decode())
    s.quit()
except smtplib.SMTPServerDisconnected:
    print("disconnected")
"#;

const MESSAGE: &[u8] = b"From: Alice <alice@a.test>\r\nTo: bob@a.test\r\nSubject: hello\r\n\
X-Remove: me\r\nMessage-ID: <m1@a.test>\r\n\r\nFirst line\r\n.leading dot\r\nlast line\r\n";

struct Setup {
    dir: PathBuf,
    port: u16,
    _server: common::Process,
}

/// postel for a.test on an MX listener with one `[[milter]]` at `milter`.
fn postel(label: &str, milter: &str, milter_keys: &str) -> Setup {
    postel_with(
        label,
        &format!("[[milter]]\naddress = \"{milter}\"\n{milter_keys}\n"),
    )
}

/// The same with `milters` as the `[[milter]]` sections.
fn postel_with(label: &str, milters: &str) -> Setup {
    let dir = temp_dir(label);
    let port = free_port();
    let config = format!(
        "hostname = \"mx.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{port}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\", \"bob\", \"carol\", \"refused\"]\n\
{milters}\
[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 100\n"
    );
    let server = serve(&dir, &config, local(port), false);
    Setup {
        dir,
        port,
        _server: server,
    }
}

impl Setup {
    fn send_as(&self, sender: &str, rcpts: &str, message: &[u8]) -> String {
        let path = self.dir.join(format!("msg-{}.eml", free_port()));
        std::fs::write(&path, message).unwrap();
        python(
            CLIENT,
            &[
                &self.port.to_string(),
                sender,
                rcpts,
                path.to_str().unwrap(),
            ],
        )
    }

    fn send(&self, rcpts: &str, message: &[u8]) -> String {
        self.send_as("alice@a.test", rcpts, message)
    }

    fn delivered(&self, mailbox: &str, n: usize) -> Vec<Vec<u8>> {
        wait_mail(&self.dir, "a.test", mailbox, n, Duration::from_secs(15))
    }

    /// What a mailbox holds now, after the queue had a moment to deliver.
    fn none_for(&self, mailbox: &str) -> bool {
        std::thread::sleep(Duration::from_millis(500));
        common::mail(&self.dir, "a.test", mailbox).is_empty()
    }

    fn queue(&self, args: &[&str]) -> String {
        let out = run(&self.dir, args, "");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

fn with_filter(behaviour: &str) -> Option<(PyMilter, Setup)> {
    let filter = PyMilter::start(behaviour)?;
    let setup = postel(behaviour, &format!("inet:{}", filter.addr), "");
    Some((filter, setup))
}

/// The filter's events once the session's end reached it (its close
/// event), waiting at most 10 s.
fn events_after_close(filter: &PyMilter) -> String {
    let start = std::time::Instant::now();
    loop {
        let events = filter.events().join("\n");
        if events.contains(r#""event": "close""#) || start.elapsed() > Duration::from_secs(10) {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_message_the_filter_only_watches_arrives_unchanged_and_it_saw_every_event() {
    let Some((filter, setup)) = with_filter("record") else {
        return;
    };
    let replies = setup.send("bob@a.test", MESSAGE);
    assert!(
        replies.contains("data 250 2.0.0 Ok: queued as"),
        "{replies}"
    );
    let got = setup.delivered("bob", 1);
    assert_eq!(got.len(), 1);
    assert_eq!(text(without_trace(&got[0])), text(MESSAGE));
    let events = events_after_close(&filter);
    for expected in [
        r#""event": "connect", "args": ["[127.0.0.1]", "127.0.0.1"], "macros": {"j": "mx.a.test", "{daemon_name}": "postel""#,
        r#""event": "hello", "args": ["client.a.test"]"#,
        r#""event": "envfrom", "args": ["<alice@a.test>"], "macros": {"{mail_addr}": "alice@a.test", "{mail_host}": "a.test", "{mail_mailer}": "smtp"}"#,
        r#""event": "envrcpt", "args": ["<bob@a.test>"], "macros": {"{rcpt_addr}": "bob@a.test", "{rcpt_host}": "a.test", "{rcpt_mailer}": "local"}"#,
        r#""event": "header", "args": ["Subject", "hello"]"#,
        r#""event": "eoh""#,
        r#""event": "eom", "args": ["First line\r\n.leading dot\r\nlast line\r\n"]"#,
        r#""event": "close""#,
    ] {
        assert!(events.contains(expected), "{expected}\nnot in\n{events}");
    }
}

#[test]
fn refusals_at_connect_helo_mail_and_tempfail_refuse_every_mail() {
    for (behaviour, expected) in [
        (
            "reject-connect",
            "mail 554 5.7.1 Connection refused by filter",
        ),
        ("reject-helo", "mail 550 5.7.1 Command rejected"),
        ("reject-mail", "mail 550 5.7.1 Sender refused by filter"),
        (
            "tempfail",
            "mail 451 4.7.1 Service unavailable - try again later",
        ),
    ] {
        let Some((_filter, setup)) = with_filter(behaviour) else {
            return;
        };
        let replies = setup.send("bob@a.test", MESSAGE);
        assert!(replies.contains(expected), "{behaviour}: {replies}");
        assert!(!replies.contains("data"), "{behaviour}: {replies}");
        assert!(setup.none_for("bob"), "{behaviour}");
    }
}

#[test]
fn a_refused_recipient_is_that_recipient_only() {
    let Some((_filter, setup)) = with_filter("reject-rcpt") else {
        return;
    };
    let replies = setup.send("refused@a.test,bob@a.test", MESSAGE);
    assert!(
        replies.contains("rcpt refused@a.test 550 5.7.1 Recipient refused by filter"),
        "{replies}"
    );
    assert!(replies.contains("rcpt bob@a.test 250"), "{replies}");
    assert!(replies.contains("data 250"), "{replies}");
    assert_eq!(setup.delivered("bob", 1).len(), 1);
    assert!(setup.none_for("refused"));
}

#[test]
fn a_reject_at_the_end_carries_the_filters_own_reply() {
    let Some((_filter, setup)) = with_filter("reject-body") else {
        return;
    };
    let marked = [MESSAGE, b"REJECTME\r\n"].concat();
    let replies = setup.send("bob@a.test", &marked);
    assert!(
        replies.contains("data 550 5.7.1 Marker found in the body"),
        "{replies}"
    );
    let replies = setup.send("bob@a.test", MESSAGE);
    assert!(replies.contains("data 250"), "{replies}");
    let got = setup.delivered("bob", 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        common::mail(&setup.dir, "a.test", "bob").len(),
        1,
        "only the clean message"
    );
    assert_eq!(text(without_trace(&got[0])), text(MESSAGE));
}

#[test]
fn discard_answers_250_and_stores_nothing() {
    let Some((_filter, setup)) = with_filter("discard") else {
        return;
    };
    let replies = setup.send("bob@a.test", MESSAGE);
    assert!(replies.contains("data 250 2.0.0 Ok"), "{replies}");
    assert!(setup.none_for("bob"));
    assert_eq!(setup.queue(&["queue", "list"]).trim(), "0 messages");
}

#[test]
fn quarantine_holds_the_message_with_its_reason_until_released() {
    let Some((_filter, setup)) = with_filter("quarantine") else {
        return;
    };
    let replies = setup.send("bob@a.test", MESSAGE);
    assert!(
        replies.contains("data 250 2.0.0 Ok: queued as"),
        "{replies}"
    );
    assert!(setup.none_for("bob"), "held, not delivered");
    let list = setup.queue(&["queue", "list"]);
    assert!(list.contains(" HELD"), "{list}");
    let id = list.split_whitespace().next().unwrap().to_owned();
    let shown = setup.queue(&["queue", "show", &id]);
    assert!(
        shown.contains("quarantined: held by the test filter"),
        "{shown}"
    );
    setup.queue(&["queue", "release", &id]);
    let got = setup.delivered("bob", 1);
    assert_eq!(got.len(), 1, "released and delivered");
    assert_eq!(text(without_trace(&got[0])), text(MESSAGE));
}

#[test]
fn header_changes_are_applied_before_the_message_is_queued() {
    let Some((_filter, setup)) = with_filter("headers") else {
        return;
    };
    let replies = setup.send("bob@a.test", MESSAGE);
    assert!(replies.contains("data 250"), "{replies}");
    let got = setup.delivered("bob", 1);
    assert_eq!(got.len(), 1);
    let expected = "X-Inserted: at the top\r\nFrom: Alice <alice@a.test>\r\nTo: bob@a.test\r\n\
Subject: changed subject\r\nMessage-ID: <m1@a.test>\r\nX-Added: at the end\r\n\
X-Folded: first\r\n\tsecond\r\n\r\nFirst line\r\n.leading dot\r\nlast line\r\n";
    assert_eq!(text(without_trace(&got[0])), expected);
}

#[test]
fn a_replaced_body_is_what_is_delivered() {
    let Some((_filter, setup)) = with_filter("replace-body") else {
        return;
    };
    let replies = setup.send("bob@a.test", MESSAGE);
    assert!(replies.contains("data 250"), "{replies}");
    let got = setup.delivered("bob", 1);
    assert_eq!(got.len(), 1);
    let headers = &MESSAGE[..MESSAGE.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4];
    let expected = [headers, b"Replaced body\r\nsecond line\r\n"].concat();
    assert_eq!(text(without_trace(&got[0])), text(&expected));
}

#[test]
fn recipients_and_the_sender_change_as_the_filter_asks() {
    let Some((_filter, setup)) = with_filter("add-rcpt") else {
        return;
    };
    assert!(setup.send("bob@a.test", MESSAGE).contains("data 250"));
    assert_eq!(setup.delivered("bob", 1).len(), 1);
    let carol = setup.delivered("carol", 1);
    assert_eq!(carol.len(), 1, "added by the filter");
    assert_eq!(text(without_trace(&carol[0])), text(MESSAGE));

    let Some((_filter, setup)) = with_filter("del-rcpt") else {
        return;
    };
    assert!(
        setup
            .send("alice@a.test,bob@a.test", MESSAGE)
            .contains("data 250")
    );
    assert_eq!(setup.delivered("alice", 1).len(), 1);
    assert!(setup.none_for("bob"), "removed by the filter");

    let Some((_filter, setup)) = with_filter("chgfrom") else {
        return;
    };
    assert!(setup.send("bob@a.test", MESSAGE).contains("data 250"));
    let got = setup.delivered("bob", 1);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with(b"Return-Path: <changed@a.test>\r\n"),
        "{}",
        text(&got[0])
    );
}

#[test]
fn a_filter_that_asks_for_fewer_events_gets_only_those() {
    let Some((filter, setup)) = with_filter("fewer") else {
        return;
    };
    assert!(setup.send("bob@a.test", MESSAGE).contains("data 250"));
    assert_eq!(setup.delivered("bob", 1).len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    let events = events_after_close(&filter);
    assert!(events.contains(r#""event": "envrcpt""#), "{events}");
    assert!(events.contains(r#""event": "eom""#), "{events}");
    assert!(
        !events.contains(r#""event": "hello""#) && !events.contains(r#""event": "header""#),
        "{events}"
    );
}

/// A scripted filter: negotiates (or not), then answers each frame as
/// `answer` says, by the command octet; `None` closes the connection.
fn scripted(negotiate: Option<&'static [u8]>, answer: fn(u8) -> Option<&'static [u8]>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = stream;
                let read_frame = |s: &mut std::net::TcpStream| -> Option<u8> {
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len).ok()?;
                    let mut data = vec![0u8; u32::from_be_bytes(len) as usize];
                    s.read_exact(&mut data).ok()?;
                    data.first().copied()
                };
                if read_frame(&mut s).is_none() {
                    return;
                }
                let Some(negotiation) = negotiate else {
                    // Never answers: holds the connection open.
                    std::thread::sleep(Duration::from_secs(60));
                    return;
                };
                if s.write_all(negotiation).is_err() {
                    return;
                }
                while let Some(code) = read_frame(&mut s) {
                    if matches!(code, b'D' | b'A' | b'Q') {
                        continue;
                    }
                    match answer(code) {
                        Some(a) => {
                            if s.write_all(a).is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            });
        }
    });
    port
}

const NEGOTIATED: &[u8] = b"\0\0\0\x0dO\0\0\0\x06\0\0\0\0\0\0\0\0";

#[test]
fn a_filter_that_is_not_listening_gets_the_default_action() {
    let down = format!("inet:127.0.0.1:{}", free_port());
    for (keys, expected) in [
        ("", "mail 451 4.7.1 Service unavailable - try again later"),
        (
            "default_action = \"reject\"",
            "mail 550 5.7.1 Command rejected",
        ),
        ("default_action = \"close\"", "ehlo 421"),
        ("default_action = \"accept\"", "data 250"),
    ] {
        let setup = postel("milter-down", &down, keys);
        let replies = setup.send("bob@a.test", MESSAGE);
        assert!(replies.contains(expected), "{keys}: {replies}");
        if keys.contains("accept") {
            assert_eq!(setup.delivered("bob", 1).len(), 1, "{keys}");
        } else {
            assert!(setup.none_for("bob"), "{keys}");
        }
    }
}

#[test]
fn a_filter_that_never_answers_or_breaks_mid_message_loses_nothing() {
    let silent = scripted(None, |_| None);
    let closes_at_body = scripted(Some(NEGOTIATED), |code| {
        (code != b'B').then_some(&b"\0\0\0\x01c"[..])
    });
    let malformed = scripted(Some(b"\0\0\0\x05Zjunk"), |_| None);
    let bad_frame_at_end = scripted(Some(NEGOTIATED), |code| {
        Some(if code == b'E' {
            &b"\0\0\0\x03h\0\0"[..]
        } else {
            &b"\0\0\0\x01c"[..]
        })
    });
    for (port, keys, expected) in [
        (silent, "connect_timeout_secs = 1", "mail 451 4.7.1"),
        (closes_at_body, "", "data 451 4.7.1"),
        (malformed, "", "mail 451 4.7.1"),
        (bad_frame_at_end, "", "data 451 4.7.1"),
        (closes_at_body, "default_action = \"accept\"", "data 250"),
    ] {
        let setup = postel("milter-broken", &format!("inet:127.0.0.1:{port}"), keys);
        let replies = setup.send("bob@a.test", MESSAGE);
        assert!(replies.contains(expected), "{port} {keys}: {replies}");
        if expected.contains("250") {
            let got = setup.delivered("bob", 1);
            assert_eq!(got.len(), 1);
            assert_eq!(text(without_trace(&got[0])), text(MESSAGE), "unchanged");
        } else {
            assert!(setup.none_for("bob"), "nothing half-delivered");
            assert_eq!(
                setup.queue(&["queue", "list"]).trim(),
                "0 messages",
                "nothing queued"
            );
        }
        // The server is still up for the next session.
        assert!(setup.send("bob@a.test", MESSAGE).contains("ehlo 250"));
    }
}

/// dkimpy (Debian's python3-dkim) verifies a message with the key record
/// given, as if published in DNS.
const VERIFY: &str = r#"
import dkim, sys
message = open(sys.argv[1], "rb").read()
record = sys.argv[2].encode()
ok = dkim.verify(message, dnsfunc=lambda name, timeout=5: record)
print("pass" if ok else "fail")
"#;

#[test]
fn opendkim_signs_through_the_milter_and_dkimpy_verifies_the_delivered_file() {
    let Some(opendkim) = postel_testkit::OpenDkim::start("a.test", "sel") else {
        return;
    };
    let setup = postel("opendkim", &format!("inet:{}", opendkim.addr), "");
    let replies = setup.send("bob@a.test", MESSAGE);
    assert!(replies.contains("data 250"), "{replies}");
    let got = setup.delivered("bob", 1);
    assert_eq!(got.len(), 1);
    let delivered = text(without_trace(&got[0]));
    assert!(
        delivered.starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.test;"),
        "{delivered}"
    );
    assert!(delivered.ends_with(&text(MESSAGE)[..]), "{delivered}");
    let path = setup.dir.join("delivered.eml");
    std::fs::write(&path, &got[0]).unwrap();
    let verify = |file: &std::path::Path| {
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", VERIFY])
            .arg(file)
            .arg(&opendkim.record)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(verify(&path), "pass");
    // A changed body no longer verifies: the check is real.
    let changed = text(&got[0]).replace("last line", "Last line");
    let tampered = setup.dir.join("tampered.eml");
    std::fs::write(&tampered, changed).unwrap();
    assert_eq!(verify(&tampered), "fail");
}

/// rspamd's own test pattern (GTUBE), which it always rejects.
const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

#[test]
fn rspamd_rejects_gtube_and_adds_its_headers_to_a_plain_message() {
    let Some(rspamd) = postel_testkit::Rspamd::start() else {
        return;
    };
    let setup = postel("rspamd", &format!("inet:{}", rspamd.addr), "");
    let spam = [MESSAGE, GTUBE.as_bytes(), b"\r\n"].concat();
    let replies = setup.send("bob@a.test", &spam);
    assert!(
        replies.contains("data 554 5.7.1 Gtube pattern"),
        "{replies}"
    );
    let replies = setup.send("bob@a.test", MESSAGE);
    assert!(replies.contains("data 250"), "{replies}");
    let got = setup.delivered("bob", 1);
    assert_eq!(got.len(), 1, "only the plain message");
    let delivered = text(without_trace(&got[0]));
    assert!(
        delivered.contains("\r\nX-Rspamd-Action: no action\r\n"),
        "{delivered}"
    );
    assert!(
        delivered.contains("\r\nX-Spamd-Result: default: False"),
        "{delivered}"
    );
    assert!(
        delivered.ends_with("\r\n\r\nFirst line\r\n.leading dot\r\nlast line\r\n"),
        "{delivered}"
    );
}

#[test]
fn several_filters_run_in_order_each_seeing_the_previous_ones_changes() {
    let (Some(first), Some(second)) = (PyMilter::start("headers"), PyMilter::start("record"))
    else {
        return;
    };
    let setup = postel_with(
        "two-milters",
        &format!(
            "[[milter]]\naddress = \"inet:{}\"\n[[milter]]\naddress = \"inet:{}\"\n",
            first.addr, second.addr
        ),
    );
    assert!(setup.send("bob@a.test", MESSAGE).contains("data 250"));
    let got = setup.delivered("bob", 1);
    assert_eq!(got.len(), 1);
    assert!(text(&got[0]).contains("\r\nX-Added: at the end\r\n"));
    std::thread::sleep(Duration::from_millis(300));
    let seen = events_after_close(&second);
    assert!(
        seen.contains(r#""event": "header", "args": ["X-Inserted", "at the top"]"#)
            && seen.contains(r#""event": "header", "args": ["Subject", "changed subject"]"#),
        "the second filter sees the first one's changes: {seen}"
    );
    assert!(!seen.contains(r#""X-Remove""#), "{seen}");

    // A refusal by the first is the answer; the second is not asked.
    let (Some(refusing), Some(watching)) =
        (PyMilter::start("reject-mail"), PyMilter::start("record"))
    else {
        return;
    };
    let setup = postel_with(
        "two-milters-refused",
        &format!(
            "[[milter]]\naddress = \"inet:{}\"\n[[milter]]\naddress = \"inet:{}\"\n",
            refusing.addr, watching.addr
        ),
    );
    let replies = setup.send("bob@a.test", MESSAGE);
    assert!(
        replies.contains("mail 550 5.7.1 Sender refused by filter"),
        "{replies}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let seen = events_after_close(&watching);
    assert!(seen.contains(r#""event": "hello""#), "{seen}");
    assert!(!seen.contains(r#""event": "envfrom""#), "{seen}");
}

#[test]
fn a_filter_that_shuts_down_or_fails_the_connection_closes_the_session_with_421() {
    let shutdown = scripted(Some(NEGOTIATED), |code| {
        Some(if code == b'M' {
            &b"\0\0\0\x014"[..]
        } else {
            &b"\0\0\0\x01c"[..]
        })
    });
    let failure = scripted(Some(NEGOTIATED), |code| {
        Some(if code == b'E' {
            &b"\0\0\0\x01f"[..]
        } else {
            &b"\0\0\0\x01c"[..]
        })
    });
    for (port, expected) in [(shutdown, "mail 421 4.7.0"), (failure, "data 421 4.7.0")] {
        let setup = postel("milter-closes", &format!("inet:127.0.0.1:{port}"), "");
        let replies = setup.send("bob@a.test", MESSAGE);
        assert!(replies.contains(expected), "{replies}");
        assert!(setup.none_for("bob"), "nothing delivered");
        assert_eq!(setup.queue(&["queue", "list"]).trim(), "0 messages");
    }
}

/// DATA is put to the filters before its 354: a refusal there is the
/// answer to DATA itself, and no message octet is asked for. BDAT, which has
/// no such moment, is put to them at the end.
#[test]
fn a_refusal_at_data_answers_data_itself() {
    let Some((_filter, setup)) = with_filter("reject-data") else {
        return;
    };
    let stream = std::net::TcpStream::connect(local(setup.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut last_reply = |send: &[u8]| {
        use std::io::BufRead as _;
        w.write_all(send).unwrap();
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "closed");
            if line.as_bytes().get(3) == Some(&b' ') {
                return line;
            }
        }
    };
    assert!(last_reply(b"").starts_with("220"));
    assert!(last_reply(b"EHLO client.a.test\r\n").starts_with("250 "));
    assert!(last_reply(b"MAIL FROM:<alice@a.test>\r\n").starts_with("250"));
    assert!(last_reply(b"RCPT TO:<bob@a.test>\r\n").starts_with("250"));
    assert_eq!(
        last_reply(b"DATA\r\n"),
        "554 5.7.1 No message from you today\r\n",
        "instead of 354"
    );
    // The transaction is over; BDAT carries a message to the same refusal.
    assert!(last_reply(b"MAIL FROM:<alice@a.test>\r\n").starts_with("250"));
    assert!(last_reply(b"RCPT TO:<bob@a.test>\r\n").starts_with("250"));
    let body = b"Subject: x\r\n\r\nhi\r\n";
    let mut bdat = format!("BDAT {} LAST\r\n", body.len()).into_bytes();
    bdat.extend_from_slice(body);
    assert_eq!(last_reply(&bdat), "554 5.7.1 No message from you today\r\n");
    assert!(setup.none_for("bob"));
}
