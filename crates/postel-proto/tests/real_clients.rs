//! A real client against the grammar: Python's smtplib submits a message to a
//! minimal loopback responder built only from this crate (command reader,
//! reply writer, DATA decoder). Every line smtplib sends must parse, every
//! reply it gets must satisfy it, and the message must arrive byte for byte.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command as Process;
use std::time::Duration;

use postel_proto::framing::{BodyOptions, CommandReader, DotDecoder};
use postel_proto::types::{Capabilities, Command, EnhancedStatus, Mechanism, Reply, ReplyCode};
use postel_proto::{CommandError, ParserOptions};

/// What the responder saw.
#[derive(Debug, Default)]
struct Seen {
    verbs: Vec<&'static str>,
    errors: Vec<CommandError>,
    mail_size: Option<u64>,
    notify_failure: bool,
    message: Vec<u8>,
}

fn reply(code: u16, text: &'static str) -> Reply<'static> {
    Reply::new(ReplyCode::try_from(code).unwrap(), None, text).unwrap()
}

/// Serves one SMTP session on `stream` with the grammar alone, accepting
/// everything. Returns what it saw.
fn serve(mut stream: TcpStream) -> Seen {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut seen = Seen::default();
    let mut out = Vec::new();
    reply(220, "postel.test ESMTP").write(&mut out);
    stream.write_all(&out).unwrap();
    let mut reader = CommandReader::new(ParserOptions::STRICT);
    let mut buf = [0u8; 4096];
    let mut body: Option<DotDecoder> = None;
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            return seen;
        }
        let mut input = buf[..n].to_vec();
        if let Some(decoder) = body.as_mut() {
            let end = decoder.decode(&input, &mut |d| seen.message.extend_from_slice(d));
            let Some(end) = end else { continue };
            assert_eq!(end.violation, None);
            body = None;
            out.clear();
            Reply::OK.write(&mut out);
            stream.write_all(&out).unwrap();
            input.drain(..end.consumed);
        }
        reader.feed(&input);
        out.clear();
        loop {
            let next = reader.next_command();
            let Some(next) = next else { break };
            let cmd = match next {
                Ok(cmd) => cmd,
                Err(e) => {
                    e.reply().write(&mut out);
                    seen.errors.push(e);
                    continue;
                }
            };
            seen.verbs.push(cmd.verb());
            match cmd {
                Command::Ehlo(_) => {
                    let mut caps = Capabilities::default();
                    caps.greeting = Cow::Borrowed("postel.test");
                    caps.pipelining = true;
                    caps.size = Some(Some(10_000_000));
                    caps.eight_bit_mime = true;
                    caps.enhanced_status_codes = true;
                    caps.dsn = true;
                    caps.auth = Some(vec![Mechanism::PLAIN, Mechanism::LOGIN]);
                    caps.to_reply().unwrap().write(&mut out);
                }
                Command::Auth { .. } => Reply::new(
                    ReplyCode::try_from(235).unwrap(),
                    EnhancedStatus::new(2, 7, 0),
                    "Authentication successful",
                )
                .unwrap()
                .write(&mut out),
                Command::Mail { params, .. } => {
                    seen.mail_size = params.size;
                    Reply::OK.write(&mut out);
                }
                Command::Rcpt { params, .. } => {
                    seen.notify_failure = params.notify.is_some_and(|n| n.failure);
                    Reply::OK.write(&mut out);
                }
                Command::Data => {
                    reply(354, "End data with <CR><LF>.<CR><LF>").write(&mut out);
                    let mut decoder = DotDecoder::new(BodyOptions::default());
                    let rest = reader.take_buffered();
                    match decoder.decode(&rest, &mut |d| seen.message.extend_from_slice(d)) {
                        Some(end) => {
                            Reply::OK.write(&mut out);
                            reader.feed(&rest[end.consumed..]);
                        }
                        None => body = Some(decoder),
                    }
                    if body.is_some() {
                        break;
                    }
                }
                Command::Quit => {
                    Reply::BYE.write(&mut out);
                    stream.write_all(&out).unwrap();
                    let _ = stream.shutdown(Shutdown::Write);
                    return seen;
                }
                _ => Reply::OK.write(&mut out),
            }
        }
        stream.write_all(&out).unwrap();
    }
}

const SCRIPT: &str = r#"
import smtplib, sys
port = int(sys.argv[1])
msg = (b"Subject: smtplib test\r\n\r\n"
       b"first line\r\n"
       b".a line that starts with a dot\r\n"
       b"..two dots\r\n"
       b"caf\xc3\xa9\r\n")
with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    s.ehlo("client.example")
    s.login("user", "secret")
    s.sendmail("sender@example.org", ["rcpt@example.net"], msg,
               mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
"#;

#[test]
fn python_smtplib_session_parses_and_delivers() {
    if Process::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || serve(listener.accept().unwrap().0));
    let out = Process::new("python3")
        .args(["-c", SCRIPT, &port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = server.join().unwrap();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    assert_eq!(seen.verbs, ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]);
    // smtplib declares SIZE itself when the server offers it.
    assert!(seen.mail_size.is_some_and(|s| s > 0));
    assert!(seen.notify_failure);
    assert_eq!(
        seen.message,
        b"Subject: smtplib test\r\n\r\nfirst line\r\n.a line that starts with a dot\r\n..two dots\r\ncaf\xc3\xa9\r\n"
    );
}
