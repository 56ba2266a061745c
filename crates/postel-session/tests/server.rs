//! The server state machine driven in memory: RFC transcripts, every
//! sequencing rule, limits, STARTTLS, AUTH, DATA and BDAT.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postel_proto::codec::parse_reply;
use postel_proto::framing::BodyViolation;
use postel_proto::types::{Domain, ForwardPath, Mechanism, Reply, ReplyCode};
use postel_proto::{ParserOptions, Status};
use postel_session::sasl::encode_base64;
use postel_session::server::{Event, MisuseReason, Server, ServerConfig};

fn config() -> ServerConfig {
    ServerConfig::new(Domain::try_from("mx.example.org").unwrap())
}

/// Drives a server: feeds input, answers decisions with a policy, and records
/// the reply codes and what the application saw.
struct Harness {
    server: Server,
    /// Recipients whose local part is "reject" are refused with 550.
    log: Vec<String>,
    body: Vec<u8>,
}

impl Harness {
    fn new(config: ServerConfig) -> Self {
        let mut h = Harness {
            server: Server::new(config),
            log: Vec::new(),
            body: Vec::new(),
        };
        let greeting = h.replies();
        assert_eq!(greeting, [220]);
        h
    }

    /// Feeds `input`, handles every event, returns the reply codes sent.
    fn send(&mut self, input: &[u8]) -> Vec<u16> {
        self.server.receive(input);
        self.pump();
        self.replies()
    }

    fn pump(&mut self) {
        while let Some(event) = self.server.poll() {
            match event {
                Event::Hello { extended, .. } => self.log.push(format!("hello {extended}")),
                Event::Mail(m) => {
                    self.log.push(format!("mail {}", m.from));
                    m.accept(&mut self.server).unwrap();
                }
                Event::Rcpt(r) => {
                    self.log.push(format!("rcpt {}", r.to));
                    let refuse = matches!(&r.to, ForwardPath::Mailbox(m) if m.local_part().as_str() == "reject");
                    if refuse {
                        let no =
                            Reply::new(ReplyCode::try_from(550).unwrap(), None, "no such user")
                                .unwrap();
                        r.reject(&mut self.server, no).unwrap();
                    } else {
                        r.accept(&mut self.server).unwrap();
                    }
                }
                Event::Body(data) => self.body.extend_from_slice(&data),
                Event::Message(m) => {
                    self.log
                        .push(format!("message {} {}", m.size, m.recipients));
                    m.accept(&mut self.server).unwrap();
                }
                Event::MessageAborted(v) => self.log.push(format!("aborted {v:?}")),
                Event::Reset => self.log.push("reset".into()),
                Event::StartTls => self.log.push("starttls".into()),
                Event::Auth(a) => {
                    let ok = a.credentials.password.expose() == "secret";
                    self.log.push(format!(
                        "auth {} {}",
                        a.mechanism, a.credentials.authentication_id
                    ));
                    if ok {
                        a.accept(&mut self.server).unwrap();
                    } else {
                        let no =
                            Reply::new(ReplyCode::try_from(535).unwrap(), None, "bad").unwrap();
                        a.reject(&mut self.server, no).unwrap();
                    }
                }
                Event::Closed => self.log.push("closed".into()),
                other => panic!("unexpected event {other:?}"),
            }
        }
    }

    /// Parses everything transmitted: every reply must be well-formed.
    fn replies(&mut self) -> Vec<u16> {
        let out = self.server.transmit();
        let mut rest = &out[..];
        let mut codes = Vec::new();
        while !rest.is_empty() {
            match parse_reply(rest, &ParserOptions::STRICT) {
                Ok(Status::Complete { value, consumed }) => {
                    codes.push(value.code().get());
                    rest = &rest[consumed..];
                }
                other => panic!(
                    "bad reply bytes {:?}: {other:?}",
                    String::from_utf8_lossy(rest)
                ),
            }
        }
        codes
    }
}

#[test]
fn rfc5321_appendix_d1_transaction() {
    let mut h = Harness::new(config());
    assert_eq!(h.send(b"EHLO bar.com\r\n"), [250]);
    assert_eq!(h.send(b"MAIL FROM:<Smith@bar.com>\r\n"), [250]);
    assert_eq!(h.send(b"RCPT TO:<Jones@foo.com>\r\n"), [250]);
    assert_eq!(h.send(b"RCPT TO:<Green@foo.com>\r\n"), [250]);
    assert_eq!(h.send(b"RCPT TO:<Brown@foo.com>\r\n"), [250]);
    assert_eq!(h.send(b"DATA\r\n"), [354]);
    assert_eq!(
        h.send(b"Blah blah blah...\r\n...etc. etc. etc.\r\n.\r\n"),
        [250]
    );
    assert_eq!(h.send(b"QUIT\r\n"), [221]);
    assert!(h.server.is_closed());
    assert_eq!(h.body, b"Blah blah blah...\r\n..etc. etc. etc.\r\n");
    assert_eq!(h.log.last().unwrap(), "closed");
    assert!(h.log.contains(&"message 37 3".to_string()));
}

#[test]
fn rfc2920_pipelined_group_is_answered_in_order() {
    // RFC 2920 section 3.1: one recipient refused, replies in one batch.
    let mut h = Harness::new(config());
    h.send(b"EHLO client.example\r\n");
    let codes = h.send(
        b"MAIL FROM:<mrose@dbc.mtview.ca.us>\r\nRCPT TO:<ned@innosoft.com>\r\nRCPT TO:<reject@innosoft.com>\r\nRCPT TO:<nobody@innosoft.com>\r\nDATA\r\n",
    );
    assert_eq!(codes, [250, 250, 550, 250, 354]);
    assert_eq!(h.send(b"Hi\r\n.\r\nQUIT\r\n"), [250, 221]);
    assert!(h.log.contains(&"message 4 2".to_string()));
}

#[test]
fn sequencing_rules_of_rfc5321_section_4_1_4() {
    let mut h = Harness::new(config());
    assert_eq!(
        h.send(b"MAIL FROM:<a@b.example>\r\n"),
        [503],
        "MAIL before EHLO"
    );
    assert_eq!(h.send(b"HELO client.example\r\n"), [250]);
    assert_eq!(
        h.send(b"RCPT TO:<a@b.example>\r\n"),
        [503],
        "RCPT before MAIL"
    );
    assert_eq!(h.send(b"DATA\r\n"), [503], "DATA before MAIL");
    assert_eq!(h.send(b"MAIL FROM:<a@b.example>\r\n"), [250]);
    assert_eq!(h.send(b"MAIL FROM:<a@b.example>\r\n"), [503], "nested MAIL");
    assert_eq!(h.send(b"DATA\r\n"), [554], "DATA with no valid recipient");
    assert_eq!(h.send(b"RCPT TO:<reject@b.example>\r\n"), [550]);
    assert_eq!(h.send(b"DATA\r\n"), [554]);
    assert_eq!(h.send(b"RSET\r\n"), [250]);
    assert_eq!(
        h.send(b"RCPT TO:<a@b.example>\r\n"),
        [503],
        "RSET ended the transaction"
    );
    assert_eq!(
        h.send(b"NOOP\r\nVRFY x\r\nEXPN y\r\nHELP\r\n"),
        [250, 252, 502, 214]
    );
    assert_eq!(h.send(b"FOO\r\n"), [500]);
    assert_eq!(h.send(b"MAIL FROM:<>\r\nRCPT TO:<>\r\n"), [250, 501]);
}

#[test]
fn ehlo_resets_the_transaction() {
    let mut h = Harness::new(config());
    h.send(b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n");
    assert_eq!(h.send(b"EHLO c.example\r\n"), [250]);
    assert!(h.log.iter().any(|l| l == "reset"));
    assert_eq!(h.send(b"RCPT TO:<a@b.example>\r\n"), [503]);
}

#[test]
fn ehlo_advertises_the_configured_extensions() {
    let mut c = config();
    c.max_message_size = Some(1000);
    c.starttls = true;
    c.auth_mechanisms = vec![Mechanism::PLAIN];
    let mut server = Server::new(c);
    server.transmit();
    server.receive(b"EHLO c.example\r\n");
    while server.poll().is_some() {}
    let out = String::from_utf8(server.transmit()).unwrap();
    for ext in [
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "CHUNKING",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "DSN",
    ] {
        assert!(out.contains(ext), "{ext} in {out}");
    }
    assert!(!out.contains("AUTH"), "no AUTH before TLS: {out}");
}

#[test]
fn size_is_checked_at_mail_and_during_the_body() {
    let mut c = config();
    c.max_message_size = Some(20);
    let mut h = Harness::new(c);
    h.send(b"EHLO c.example\r\n");
    assert_eq!(h.send(b"MAIL FROM:<a@b.example> SIZE=21\r\n"), [552]);
    assert_eq!(
        h.send(b"MAIL FROM:<a@b.example> SIZE=20\r\nRCPT TO:<x@y.example>\r\nDATA\r\n"),
        [250, 250, 354]
    );
    let codes = h.send(b"this body is longer than twenty octets\r\n.\r\nNOOP\r\n");
    assert_eq!(codes, [552, 250]);
    assert!(h.log.iter().any(|l| l.starts_with("aborted TooLarge")));
    assert_eq!(
        h.send(b"RCPT TO:<x@y.example>\r\n"),
        [503],
        "the transaction is over"
    );
}

#[test]
fn recipient_limit_gives_452() {
    let mut c = config();
    c.max_recipients = 2;
    let mut h = Harness::new(c);
    let codes = h.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<1@x.example>\r\nRCPT TO:<2@x.example>\r\nRCPT TO:<3@x.example>\r\n");
    assert_eq!(codes, [250, 250, 250, 250, 452]);
}

#[test]
fn too_many_errors_close_with_421() {
    let mut c = config();
    c.max_errors = 3;
    let mut h = Harness::new(c);
    assert_eq!(h.send(b"X\r\nY\r\nZ\r\nNOOP\r\n"), [500, 500, 500, 421]);
    assert!(h.server.is_closed());
    assert_eq!(
        h.send(b"NOOP\r\n"),
        Vec::<u16>::new(),
        "nothing after close"
    );
}

#[test]
fn shutdown_sends_421() {
    let mut h = Harness::new(config());
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
    h.server.shutdown();
    h.pump();
    assert_eq!(h.replies(), [421]);
    assert!(h.server.is_closed());
}

#[test]
fn starttls_drops_pipelined_plaintext_and_forgets_ehlo() {
    let mut c = config();
    c.starttls = true;
    let mut h = Harness::new(c);
    h.send(b"EHLO c.example\r\n");
    // CVE-2011-0411: the MAIL arrives in plaintext with STARTTLS.
    assert_eq!(
        h.send(b"STARTTLS\r\nMAIL FROM:<inject@evil.example>\r\n"),
        [220]
    );
    assert!(h.log.contains(&"starttls".to_string()));
    assert!(!h.log.iter().any(|l| l.contains("inject")));
    assert_eq!(
        h.send(b"MAIL FROM:<late@evil.example>\r\n"),
        Vec::<u16>::new(),
        "nothing is read during the handshake"
    );
    h.server.tls_established();
    assert!(h.server.is_tls());
    assert_eq!(
        h.send(b"MAIL FROM:<a@b.example>\r\n"),
        [503],
        "EHLO is forgotten (RFC 3207 section 4.2)"
    );
    assert_eq!(h.send(b"EHLO c.example\r\nSTARTTLS\r\n"), [250, 503]);
}

fn auth_config() -> ServerConfig {
    let mut c = config();
    c.auth_mechanisms = vec![Mechanism::PLAIN, Mechanism::LOGIN];
    c.starttls = true;
    c
}

fn after_tls(c: ServerConfig) -> Harness {
    let mut h = Harness {
        server: Server::new_tls(c),
        log: Vec::new(),
        body: Vec::new(),
    };
    h.replies();
    assert_eq!(h.send(b"EHLO c.example\r\n"), [250]);
    h
}

#[test]
fn auth_needs_tls_by_default() {
    let mut h = Harness::new(auth_config());
    h.send(b"EHLO c.example\r\n");
    let plain = encode_base64(b"\0user\0secret");
    assert_eq!(h.send(format!("AUTH PLAIN {plain}\r\n").as_bytes()), [538]);
}

#[test]
fn auth_plain_with_initial_response() {
    let mut h = after_tls(auth_config());
    let plain = encode_base64(b"\0user\0wrong");
    assert_eq!(h.send(format!("AUTH PLAIN {plain}\r\n").as_bytes()), [535]);
    let plain = encode_base64(b"\0user\0secret");
    assert_eq!(h.send(format!("AUTH PLAIN {plain}\r\n").as_bytes()), [235]);
    assert_eq!(
        h.send(format!("AUTH PLAIN {plain}\r\n").as_bytes()),
        [503],
        "already authenticated"
    );
    assert!(h.log.contains(&"auth PLAIN user".to_string()));
}

#[test]
fn auth_plain_and_login_exchanges() {
    let mut h = after_tls(auth_config());
    assert_eq!(h.send(b"AUTH PLAIN\r\n"), [334]);
    assert_eq!(
        h.send(format!("{}\r\n", encode_base64(b"\0user\0secret")).as_bytes()),
        [235]
    );

    let mut h = after_tls(auth_config());
    assert_eq!(h.send(b"AUTH LOGIN\r\n"), [334]);
    assert_eq!(
        h.send(format!("{}\r\n", encode_base64(b"user")).as_bytes()),
        [334]
    );
    assert_eq!(
        h.send(format!("{}\r\n", encode_base64(b"secret")).as_bytes()),
        [235]
    );
    assert!(h.log.contains(&"auth LOGIN user".to_string()));
}

#[test]
fn auth_failures() {
    let mut h = after_tls(auth_config());
    assert_eq!(h.send(b"AUTH CRAM-MD5\r\n"), [504]);
    assert_eq!(h.send(b"AUTH LOGIN\r\n*\r\n"), [334, 501], "cancelled");
    assert_eq!(h.send(b"AUTH PLAIN\r\nnot base64!\r\n"), [334, 501]);
    assert_eq!(
        h.send(b"AUTH PLAIN AAAA\r\n"),
        [501],
        "decodes but is not a PLAIN message"
    );
    let mut c = auth_config();
    c.require_auth = true;
    let mut h = after_tls(c);
    assert_eq!(h.send(b"MAIL FROM:<a@b.example>\r\n"), [530]);
}

#[test]
fn bare_line_endings_in_data_are_refused_and_never_end_the_body() {
    let mut h = Harness::new(config());
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\nDATA\r\n");
    // The smuggled MAIL after LF . LF stays inside the body.
    let codes = h.send(b"hi\n.\nMAIL FROM:<evil@x.example>\r\n.\r\n");
    assert_eq!(codes, [550]);
    assert!(
        h.log
            .iter()
            .any(|l| l.starts_with("aborted BareLineEnding"))
    );
    assert!(!h.log.iter().any(|l| l.contains("evil")));
}

#[test]
fn bdat_chunks() {
    let mut h = Harness::new(config());
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<x@y.example>\r\n");
    assert_eq!(h.send(b"BDAT 5\r\nab\r\nc"), [250]);
    assert_eq!(h.send(b"BDAT 3 LAST\r\n\x00.\nQUIT\r\n"), [250, 221]);
    assert_eq!(h.body, b"ab\r\nc\x00.\n");
    assert!(h.log.contains(&"message 8 1".to_string()));
}

#[test]
fn bdat_without_recipients_consumes_the_chunk() {
    let mut h = Harness::new(config());
    h.send(b"EHLO c\r\n");
    // The chunk's octets look like a command; they must not be read as one.
    assert_eq!(h.send(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n"), [503, 250]);
    assert!(!h.server.is_closed());
    let mut h = Harness::new(config());
    h.send(b"EHLO c\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<x@y.example>\r\n");
    assert_eq!(h.send(b"DATA\r\n"), [503], "BINARYMIME needs BDAT");
}

#[test]
fn parameters_not_advertised_get_555() {
    let mut c = config();
    c.dsn = false;
    c.smtputf8 = false;
    let mut h = Harness::new(c);
    h.send(b"EHLO c\r\n");
    assert_eq!(h.send(b"MAIL FROM:<a@b.example> RET=HDRS\r\n"), [555]);
    assert_eq!(h.send(b"MAIL FROM:<a@b.example> X-UNKNOWN=1\r\n"), [555]);
    assert_eq!(h.send("MAIL FROM:<ü@b.example>\r\n".as_bytes()), [553]);
    assert_eq!(
        h.send(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example> NOTIFY=NEVER\r\n"),
        [250, 555]
    );
}

#[test]
fn decision_handles_are_checked() {
    let mut a = Server::new(config());
    let mut b = Server::new(config());
    a.receive(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
    assert!(matches!(a.poll(), Some(Event::Hello { .. })));
    let Some(Event::Mail(mail)) = a.poll() else {
        panic!()
    };
    let err = mail.accept(&mut b).unwrap_err();
    assert_eq!(err.reason, MisuseReason::NotPending);
    let ok = Reply::OK;
    let err = err.handle.reject(&mut a, ok).unwrap_err();
    assert_eq!(err.reason, MisuseReason::NotARejection);
    err.handle.accept(&mut a).unwrap();
    assert!(
        String::from_utf8(a.transmit())
            .unwrap()
            .ends_with("250 2.1.0 Sender OK\r\n")
    );
}

#[test]
fn commands_wait_while_a_decision_is_open() {
    let mut server = Server::new(config());
    server.transmit();
    server.receive(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nNOOP\r\n");
    assert!(matches!(server.poll(), Some(Event::Hello { .. })));
    let Some(Event::Mail(mail)) = server.poll() else {
        panic!()
    };
    assert!(server.poll().is_none(), "NOOP waits for the MAIL decision");
    assert_eq!(server.timeout(), None, "the application holds the decision");
    let out = String::from_utf8(server.transmit()).unwrap();
    assert!(!out.contains("250 2.0.0 OK"), "{out}");
    mail.accept(&mut server).unwrap();
    assert!(server.poll().is_none());
    let out = String::from_utf8(server.transmit()).unwrap();
    assert!(
        out.ends_with("250 2.1.0 Sender OK\r\n250 2.0.0 OK\r\n"),
        "{out}"
    );
    assert_eq!(server.timeout(), Some(std::time::Duration::from_secs(300)));
}

#[test]
fn body_split_at_every_point() {
    let input: &[u8] = b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\nDATA\r\nline one\r\n..dot\r\n.\r\nQUIT\r\n";
    for split in 1..input.len() {
        let mut h = Harness::new(config());
        let mut codes = h.send(&input[..split]);
        codes.extend(h.send(&input[split..]));
        assert_eq!(codes, [250, 250, 250, 354, 250, 221], "split at {split}");
        assert_eq!(h.body, b"line one\r\n.dot\r\n");
    }
}

#[test]
fn over_long_lines_are_dropped_and_answered() {
    let mut h = Harness::new(config());
    let mut line = vec![b'N'; 2000];
    line.extend_from_slice(b"\r\nNOOP\r\n");
    assert_eq!(h.send(&line[..700]), [500]);
    assert_eq!(h.send(&line[700..]), [250]);
    assert_eq!(
        BodyViolation::TooLarge { max: 1 }.reply().code().get(),
        552,
        "the reply for an oversized body"
    );
}

#[test]
fn rfc5321_appendix_d3_verifying_and_sending() {
    // The client verifies, then sends (RFC 5321 appendix D.3).
    let mut h = Harness::new(config());
    assert_eq!(h.send(b"EHLO foo.com\r\n"), [250]);
    assert_eq!(h.send(b"VRFY Crispin\r\n"), [252]);
    assert_eq!(h.send(b"MAIL FROM:<Smith@foo.com>\r\n"), [250]);
    assert_eq!(h.send(b"RCPT TO:<Admin.MRC@foo.com>\r\n"), [250]);
    assert_eq!(h.send(b"DATA\r\n"), [354]);
    assert_eq!(
        h.send(b"Blah blah blah...\r\n...etc. etc. etc.\r\n.\r\n"),
        [250]
    );
    assert_eq!(h.send(b"QUIT\r\n"), [221]);
}

#[test]
fn rfc5321_appendix_d4_aborted_transaction() {
    // The client aborts with RSET after a refused recipient (RFC 5321 appendix D.4).
    let mut h = Harness::new(config());
    assert_eq!(h.send(b"EHLO foo.com\r\n"), [250]);
    assert_eq!(h.send(b"MAIL FROM:<Smith@foo.com>\r\n"), [250]);
    assert_eq!(h.send(b"RCPT TO:<reject.Jones@foo.com>\r\n"), [250]);
    assert_eq!(h.send(b"RCPT TO:<reject@foo.com>\r\n"), [550]);
    assert_eq!(h.send(b"RSET\r\n"), [250]);
    assert_eq!(h.send(b"QUIT\r\n"), [221]);
    assert!(h.log.contains(&"reset".to_string()));
    assert!(h.body.is_empty());
}

impl Harness {
    /// Feeds `input`, handles every event, returns the octets sent.
    fn send_bytes(&mut self, input: &[u8]) -> Vec<u8> {
        self.server.receive(input);
        self.pump();
        self.server.transmit()
    }
}

/// RFC 4954 section 4: `=` is an empty initial response, and an empty line
/// after `334 ` an empty response; for PLAIN both are a message without
/// credentials, which must fail and end the exchange, not be asked for again.
#[test]
fn auth_empty_plain_message_fails_and_ends_the_exchange() {
    let malformed = b"501 5.5.2 Malformed authentication response\r\n";
    let mut h = after_tls(auth_config());
    assert_eq!(h.send_bytes(b"AUTH PLAIN =\r\n"), malformed);
    assert_eq!(h.send_bytes(b"NOOP\r\n"), b"250 2.0.0 OK\r\n");
    assert_eq!(
        h.send_bytes(b"AUTH PLAIN\r\n"),
        b"334 \r\n",
        "with the space"
    );
    assert_eq!(h.send_bytes(b"\r\n"), malformed);
    assert_eq!(h.send_bytes(b"NOOP\r\n"), b"250 2.0.0 OK\r\n");
    assert!(!h.log.iter().any(|l| l.starts_with("auth")));
}

#[test]
fn over_long_command_lines_close_the_connection_after_three() {
    let mut h = Harness::new(config());
    let long = [vec![b'N'; 4000], b"\r\n".to_vec()].concat();
    assert_eq!(h.send(&long), [500]);
    assert_eq!(h.send(&long), [500]);
    assert_eq!(
        h.send_bytes(&long),
        b"500 5.5.2 Line too long\r\n421 4.7.0 Too many over-long lines, closing transmission channel\r\n"
    );
    assert!(h.server.poll().is_none());
    assert!(h.server.is_closed());
}

#[test]
fn an_endless_body_line_is_not_buffered_and_is_refused_at_the_end() {
    let mut h = Harness::new(config());
    h.send(b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
    let piece = vec![b'x'; 64 * 1024];
    for _ in 0..256 {
        h.send(&piece);
    }
    assert!(
        h.body.len() <= 64 * 1024,
        "{} octets of a 16 MiB line reached the application",
        h.body.len()
    );
    assert_eq!(
        h.send_bytes(b"\r\n.\r\nNOOP\r\n"),
        b"552 5.3.4 Message contains a line longer than allowed\r\n250 2.0.0 OK\r\n"
    );
    assert!(h.log.iter().any(|l| l.starts_with("aborted LineTooLong")));
}

fn message_with_received(n: usize) -> Vec<u8> {
    let mut m = Vec::new();
    for i in 0..n {
        m.extend_from_slice(
            format!(
                "Received: from hop{i} by hop{};\r\n\tTue, 1 Dec 2026 10:00:00 +0000\r\n",
                i + 1
            )
            .as_bytes(),
        );
    }
    m.extend_from_slice(b"Delivered-To: c@d.example\r\nSubject: loop\r\n\r\nReceived: in the body does not count\r\n");
    m
}

/// RFC 5321 section 6.3: a message with more Received fields than the limit
/// is in a loop and is refused at the end of data, by DATA or by BDAT.
#[test]
fn mail_loops_are_refused_by_their_hop_count() {
    let hops = b"554 5.4.6 Too many Received header fields, mail loop\r\n";
    for (n, refused) in [(100, false), (101, true), (1000, true)] {
        let mut h = Harness::new(config());
        h.send(b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
        let body = postel_proto::framing::dot_stuff(&message_with_received(n));
        let out = h.send_bytes(&body);
        if refused {
            assert_eq!(out, hops, "{n} Received fields");
            assert!(h.log.iter().any(|l| l.starts_with("aborted TooManyHops")));
        } else {
            assert_eq!(
                out, b"250 2.0.0 Message accepted\r\n",
                "{n} Received fields"
            );
        }
        let message = message_with_received(n);
        let mut h = Harness::new(config());
        h.send(b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
        let (first, second) = message.split_at(message.len() / 2);
        let mut bdat = format!("BDAT {}\r\n", first.len()).into_bytes();
        bdat.extend_from_slice(first);
        bdat.extend_from_slice(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
        bdat.extend_from_slice(second);
        let out = h.send_bytes(&bdat);
        let last = &out[out.iter().position(|&b| b == b'\n').unwrap() + 1..];
        if refused {
            assert_eq!(last, hops, "BDAT, {n} Received fields");
        } else {
            assert_eq!(last, b"250 2.0.0 Message accepted\r\n");
        }
    }
    let mut off = config();
    off.max_received = None;
    let mut h = Harness::new(off);
    h.send(b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
    let body = postel_proto::framing::dot_stuff(&message_with_received(150));
    assert_eq!(h.send(&body), [250]);
}

#[test]
fn the_message_decision_carries_the_trace_fields() {
    let mut server = Server::new(config());
    server
        .receive(b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
    server.receive(&postel_proto::framing::dot_stuff(&message_with_received(3)));
    let mut seen = None;
    while let Some(event) = server.poll() {
        match event {
            Event::Mail(m) => m.accept(&mut server).unwrap(),
            Event::Rcpt(r) => r.accept(&mut server).unwrap(),
            Event::Message(m) => {
                seen = Some((m.received, m.delivered_to.clone()));
                m.accept(&mut server).unwrap();
            }
            _ => {}
        }
    }
    assert_eq!(seen, Some((3, vec!["c@d.example".to_string()])));
}

/// RFC 6531 section 3.7.4.1: a UTF-8 address in a transaction without
/// SMTPUTF8 gets 553 5.6.7, for the recipient as for the sender.
#[test]
fn non_ascii_recipient_without_smtputf8_gets_553() {
    let mut h = Harness::new(config());
    h.send(b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n");
    assert_eq!(
        h.send_bytes("RCPT TO:<用户@d.example>\r\n".as_bytes()),
        b"553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n"
    );
    h.send(b"RSET\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\n");
    assert_eq!(h.send("RCPT TO:<用户@d.example>\r\n".as_bytes()), [250]);
}

/// RFC 4954 section 5: AUTH= from a client that has not authenticated is
/// treated as AUTH=<>; after AUTH it is handed on as given.
#[test]
fn auth_parameter_from_an_unauthenticated_client_is_ignored() {
    use postel_proto::types::AuthParam;
    fn auth_of(server: &mut Server, input: &[u8]) -> Option<AuthParam<'static>> {
        server.receive(input);
        let mut seen = None;
        while let Some(event) = server.poll() {
            match event {
                Event::Mail(m) => {
                    seen = m.params.auth.clone();
                    m.accept(server).unwrap();
                }
                Event::Auth(a) => a.accept(server).unwrap(),
                _ => {}
            }
        }
        seen
    }
    let mut server = Server::new_tls(auth_config());
    let mail = b"MAIL FROM:<a@b.example> AUTH=a@b.example\r\n";
    assert_eq!(
        auth_of(
            &mut server,
            &[b"EHLO c.example\r\n".as_slice(), mail].concat()
        ),
        Some(AuthParam::Unknown)
    );
    let plain = encode_base64(b"\0user\0secret");
    let mut server = Server::new_tls(auth_config());
    let input = [
        format!("EHLO c.example\r\nAUTH PLAIN {plain}\r\n").as_bytes(),
        mail,
    ]
    .concat();
    let Some(AuthParam::Identity(x)) = auth_of(&mut server, &input) else {
        panic!("the identity of an authenticated client")
    };
    assert_eq!(x.as_str(), "a@b.example");
}

/// With `decide_data`, DATA waits for the application before its 354: an
/// accepted DATA goes on as usual, pipelined input waits its turn, and a
/// refused one ends the transaction with the application's reply.
#[test]
fn data_can_be_decided_before_its_354() {
    let mut c = config();
    c.decide_data = true;
    let mut server = Server::new(c);
    let _ = server.transmit();
    server.receive(
        b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
    );
    let mut log = Vec::new();
    let mut refuse_next = false;
    let drive = |server: &mut Server, log: &mut Vec<String>, refuse: bool| {
        while let Some(event) = server.poll() {
            match event {
                Event::Mail(m) => m.accept(server).unwrap(),
                Event::Rcpt(r) => r.accept(server).unwrap(),
                Event::Data(d) => {
                    log.push("data".to_owned());
                    if refuse {
                        let no = Reply::new(
                            ReplyCode::try_from(550).unwrap(),
                            None,
                            "Refused by policy",
                        )
                        .unwrap();
                        d.reject(server, no).unwrap();
                    } else {
                        d.accept(server).unwrap();
                    }
                }
                Event::Body(b) => log.push(format!("body {}", b.len())),
                Event::Message(m) => {
                    log.push("message".to_owned());
                    m.accept(server).unwrap();
                }
                Event::Reset => log.push("reset".to_owned()),
                _ => {}
            }
        }
    };
    drive(&mut server, &mut log, refuse_next);
    let out = String::from_utf8(server.transmit()).unwrap();
    assert!(
        out.ends_with("250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Message accepted\r\n"),
        "{out}"
    );
    assert_eq!(log.first().map(String::as_str), Some("data"));
    assert_eq!(log.last().map(String::as_str), Some("message"));
    refuse_next = true;
    log.clear();
    server.receive(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    drive(&mut server, &mut log, refuse_next);
    let out = String::from_utf8(server.transmit()).unwrap();
    assert!(
        out.ends_with("250 2.1.5 Recipient OK\r\n550 Refused by policy\r\n"),
        "{out}"
    );
    assert_eq!(log, ["data", "reset"]);
    // The transaction is over: a new MAIL is taken, a bare DATA is not.
    server.receive(b"DATA\r\n");
    drive(&mut server, &mut log, false);
    assert!(
        String::from_utf8(server.transmit())
            .unwrap()
            .starts_with("503")
    );
}

/// RFC 8689 section 4.1: REQUIRETLS is offered and taken only under TLS.
#[test]
fn requiretls_is_offered_and_taken_only_under_tls() {
    let mut c = config();
    c.starttls = true;
    c.requiretls = true;
    let mut h = Harness::new(c.clone());
    let ehlo = String::from_utf8(h.send_bytes(b"EHLO c.example\r\n")).unwrap();
    assert!(!ehlo.contains("REQUIRETLS"), "{ehlo}");
    assert_eq!(h.send(b"MAIL FROM:<a@b.example> REQUIRETLS\r\n"), [555]);

    let mut h = Harness {
        server: Server::new_tls(c),
        log: Vec::new(),
        body: Vec::new(),
    };
    h.replies();
    let ehlo = String::from_utf8(h.send_bytes(b"EHLO c.example\r\n")).unwrap();
    assert!(
        ehlo.contains("250-REQUIRETLS\r\n") || ehlo.contains("250 REQUIRETLS\r\n"),
        "{ehlo}"
    );
    assert_eq!(h.send(b"MAIL FROM:<a@b.example> REQUIRETLS\r\n"), [250]);

    // Not configured: not offered, refused, even under TLS.
    let mut h = after_tls(config());
    assert_eq!(h.send(b"MAIL FROM:<a@b.example> REQUIRETLS\r\n"), [555]);
}
