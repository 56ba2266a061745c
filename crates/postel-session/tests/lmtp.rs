//! The server state machine in LMTP mode (RFC 2033): LHLO, and one decision
//! and one reply per accepted recipient after the message.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postel_proto::types::{Domain, ForwardPath, Reply, ReplyCode};
use postel_session::server::{Event, Server, ServerConfig};

fn lmtp() -> ServerConfig {
    let mut c = ServerConfig::new(Domain::try_from("foo.edu").unwrap());
    c.lmtp = true;
    c.max_message_size = Some(1 << 20);
    c
}

fn local(to: &ForwardPath<'_>) -> String {
    to.mailbox()
        .map(|m| m.local_part().as_str().to_owned())
        .unwrap_or_default()
}

/// Feeds `input`; recipients named jones are refused at RCPT, and at the
/// end of the message green is over quota (452): RFC 2033 section 4.2's
/// example. Returns what the server sent.
fn drive(server: &mut Server, input: &[u8], decided: &mut Vec<String>) -> Vec<u8> {
    server.receive(input);
    while let Some(event) = server.poll() {
        match event {
            Event::Mail(m) => m.accept(server).unwrap(),
            Event::Rcpt(r) if local(&r.to) == "jones" => {
                let no = Reply::new(ReplyCode::try_from(550).unwrap(), None, "No such user here")
                    .unwrap();
                r.reject(server, no).unwrap();
            }
            Event::Rcpt(r) => r.accept(server).unwrap(),
            Event::LmtpMessage(m) => {
                decided.push(format!("{} {}", m.index, m.recipient));
                if local(&m.recipient) == "green" {
                    let full = Reply::new(
                        ReplyCode::try_from(452).unwrap(),
                        None,
                        "<green@foo.edu> is temporarily over quota",
                    )
                    .unwrap();
                    m.reject(server, full).unwrap();
                } else {
                    m.accept(server).unwrap();
                }
            }
            Event::Message(_) => panic!("an SMTP decision in LMTP mode"),
            _ => {}
        }
    }
    server.transmit()
}

const TRANSACTION: &[u8] =
    b"LHLO foo.edu\r\nMAIL FROM:<chris@bar.com>\r\nRCPT TO:<pat@foo.edu>\r\n\
RCPT TO:<jones@foo.edu>\r\nRCPT TO:<green@foo.edu>\r\nDATA\r\n";

const BODY: &[u8] = b"Blah blah blah...\r\n...etc. etc. etc.\r\n.\r\n";

#[test]
fn rfc2033_section_4_2_one_reply_per_accepted_recipient() {
    // Line by line, and pipelined in one buffer: the same replies.
    let whole = [TRANSACTION, BODY, b"QUIT\r\n"].concat();
    let mut by_line = Vec::new();
    let mut server = Server::new(lmtp());
    let mut decided = Vec::new();
    by_line.extend(server.transmit());
    for line in whole.split_inclusive(|&b| b == b'\n') {
        by_line.extend(drive(&mut server, line, &mut decided));
    }
    let mut server = Server::new(lmtp());
    let mut decided_whole = Vec::new();
    let mut at_once = server.transmit();
    at_once.extend(drive(&mut server, &whole, &mut decided_whole));
    assert_eq!(by_line, at_once);
    assert_eq!(decided, ["0 <pat@foo.edu>", "1 <green@foo.edu>"]);
    assert_eq!(decided, decided_whole);
    let text = String::from_utf8(by_line).unwrap();
    let after_data = &text[text.find("354 ").unwrap()..];
    assert_eq!(
        after_data,
        "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Message delivered\r\n\
452 <green@foo.edu> is temporarily over quota\r\n221 2.0.0 Bye\r\n"
    );
    assert!(
        text.contains("250-foo.edu\r\n"),
        "LHLO is answered like EHLO: {text}"
    );
}

#[test]
fn lmtp_refuses_helo_and_ehlo_and_smtp_refuses_lhlo() {
    let mut server = Server::new(lmtp());
    server.transmit();
    let mut d = Vec::new();
    assert_eq!(
        drive(&mut server, b"EHLO foo.edu\r\n", &mut d),
        b"500 5.5.1 This is LMTP: use LHLO\r\n"
    );
    assert_eq!(
        drive(&mut server, b"HELO foo.edu\r\n", &mut d),
        b"500 5.5.1 This is LMTP: use LHLO\r\n"
    );
    let mut smtp = Server::new(ServerConfig::new(Domain::try_from("mx.example").unwrap()));
    smtp.transmit();
    assert_eq!(
        drive(&mut smtp, b"LHLO foo.edu\r\n", &mut d),
        b"500 5.5.1 Command unrecognized\r\n"
    );
}

#[test]
fn data_without_an_accepted_recipient_is_503() {
    let mut server = Server::new(lmtp());
    server.transmit();
    let mut d = Vec::new();
    let out = drive(
        &mut server,
        b"LHLO foo.edu\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<jones@foo.edu>\r\nDATA\r\n",
        &mut d,
    );
    assert!(out.ends_with(b"550 No such user here\r\n503 5.5.1 No valid recipients\r\n"));
}

#[test]
fn bdat_gets_one_reply_per_recipient_after_the_last_chunk() {
    let mut server = Server::new(lmtp());
    server.transmit();
    let mut d = Vec::new();
    drive(&mut server, b"LHLO foo.edu\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<pat@foo.edu>\r\nRCPT TO:<green@foo.edu>\r\n", &mut d);
    let out = drive(
        &mut server,
        b"BDAT 6\r\nhello\nBDAT 3 LAST\r\nx\r\n",
        &mut d,
    );
    assert_eq!(
        out,
        b"250 2.0.0 6 octets received\r\n250 2.0.0 Message delivered\r\n452 <green@foo.edu> is temporarily over quota\r\n"
    );
}

#[test]
fn a_refused_message_is_refused_once_per_recipient() {
    let mut c = lmtp();
    c.max_message_size = Some(10);
    let mut server = Server::new(c);
    server.transmit();
    let mut d = Vec::new();
    drive(&mut server, TRANSACTION, &mut d);
    let out = drive(&mut server, BODY, &mut d);
    let one = b"552 5.3.4 Message size exceeds fixed maximum message size\r\n";
    assert_eq!(out, [&one[..], one].concat());
    assert!(d.is_empty(), "no decision for a refused message");
}
