//! Known-answer tests for replies and EHLO capabilities.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;

use postel_proto::codec::{parse_capabilities, parse_reply};
use postel_proto::types::{Capabilities, Capability, EnhancedStatus, Mechanism, Reply, ReplyCode};
use postel_proto::{LineError, ParserOptions, ReplyError, Status};

fn parse(input: &[u8]) -> Reply<'static> {
    let (reply, used) = parse_reply(input, &ParserOptions::STRICT)
        .unwrap()
        .complete()
        .unwrap_or_else(|| panic!("incomplete: {:?}", String::from_utf8_lossy(input)));
    assert_eq!(used, input.len());
    let written = reply.to_bytes();
    let again = parse_reply(&written, &ParserOptions::STRICT)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(again, (reply.clone(), written.len()));
    reply.into_owned()
}

fn error(input: &[u8]) -> ReplyError {
    parse_reply(input, &ParserOptions::STRICT)
        .unwrap_err()
        .error
}

#[test]
fn single_line_with_and_without_enhanced_code() {
    let r = parse(b"250 2.1.5 Recipient OK\r\n");
    assert_eq!(r.code().get(), 250);
    assert_eq!(r.enhanced(), EnhancedStatus::new(2, 1, 5));
    assert_eq!(r.lines(), ["Recipient OK"]);
    assert_eq!(r.to_bytes(), b"250 2.1.5 Recipient OK\r\n");

    let r = parse(b"220 mx.example.org ESMTP ready\r\n");
    assert_eq!(r.enhanced(), None);
    assert_eq!(r.lines(), ["mx.example.org ESMTP ready"]);
    // An enhanced code of another class is text (RFC 3463 section 2).
    let r = parse(b"250 5.0.0 odd\r\n");
    assert_eq!((r.enhanced(), r.lines()[0].as_ref()), (None, "5.0.0 odd"));
}

/// lettre rejects the code-only `334` that servers send in AUTH exchanges
/// (RFC 4954 section 4 allows an empty challenge, and servers omit the space).
#[test]
fn code_only_334_reply_is_accepted() {
    let r = parse(b"334\r\n");
    assert_eq!(r.code(), ReplyCode::AUTH_CONTINUE);
    assert!(r.lines().is_empty());
    assert_eq!(r.to_bytes(), b"334\r\n");
    let r = parse(b"334 \r\n");
    assert_eq!(r.lines(), [""]);
}

/// smtp-proto 0.2.5 accepts a multiline reply whose lines carry different codes;
/// RFC 5321 section 4.2.1 requires the same code on every line.
#[test]
fn multiline_reply_with_changing_code_is_refused() {
    assert_eq!(
        error(b"250-first\r\n251 second\r\n"),
        ReplyError::InconsistentCode {
            first: 250,
            later: 251
        }
    );
}

#[test]
fn multiline_with_enhanced_codes_on_each_line() {
    let r = parse(b"550-5.1.1 The email account that you tried to reach does not exist.\r\n550-5.1.1 Please try\r\n550 5.1.1 again. x\r\n");
    assert_eq!(r.enhanced(), EnhancedStatus::new(5, 1, 1));
    assert_eq!(r.lines().len(), 3);
    assert_eq!(r.lines()[2], "again. x");
    assert!(r.code().is_permanent());
}

#[test]
fn malformed_replies() {
    assert_eq!(error(b"25 ok\r\n"), ReplyError::BadCode);
    assert_eq!(error(b"abc ok\r\n"), ReplyError::BadCode);
    assert_eq!(error(b"199 ok\r\n"), ReplyError::BadCode);
    assert_eq!(error(b"260 ok\r\n"), ReplyError::BadCode);
    assert_eq!(error(b"250_ok\r\n"), ReplyError::BadSeparator);
    assert_eq!(error(b"250 a\x01b\r\n"), ReplyError::BadText);
    assert_eq!(error(b"250 ok\n"), ReplyError::Line(LineError::BareLf));
    let long = format!("250 {}\r\n", "x".repeat(600));
    assert_eq!(
        error(long.as_bytes()),
        ReplyError::Line(LineError::TooLong { max: 512 })
    );
    assert_eq!(
        parse_reply(b"250-more to come\r\n250", &ParserOptions::STRICT),
        Ok(Status::Incomplete)
    );
}

#[test]
fn latin1_greeting_is_readable() {
    let (r, _) = parse_reply(b"220 caf\xe9 ready\r\n", &ParserOptions::STRICT)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(r.lines(), ["caf? ready"]);
}

#[test]
fn constructors_refuse_what_would_not_read_back() {
    let ok = ReplyCode::OK;
    assert!(
        Reply::new(ok, EnhancedStatus::new(5, 0, 0), "x").is_err(),
        "class mismatch"
    );
    assert!(Reply::new(ok, None, "2.0.0 looks enhanced").is_err());
    assert!(Reply::new(ok, None, "line\r\nbreak").is_err());
    assert!(Reply::new(ok, None, "x".repeat(510)).is_err());
    assert!(ReplyCode::try_from(600).is_err() && ReplyCode::try_from(270).is_err());
    assert!(
        Reply::new(
            ReplyCode::START_MAIL_INPUT,
            None,
            "End data with <CR><LF>.<CR><LF>"
        )
        .is_ok()
    );
}

#[test]
fn error_replies_are_well_formed() {
    for r in [
        Reply::OK,
        Reply::BYE,
        Reply::BAD_SEQUENCE,
        Reply::LINE_TOO_LONG,
        Reply::MESSAGE_TOO_BIG,
    ] {
        let bytes = r.to_bytes();
        assert_eq!(parse(&bytes), r);
        assert_eq!(r.enhanced().unwrap().class(), r.code().class());
    }
}

#[test]
fn ehlo_capabilities() {
    let reply = parse(
        b"250-mx.google.com at your service, [192.0.2.7]\r\n\
250-SIZE 157286400\r\n\
250-8BITMIME\r\n\
250-STARTTLS\r\n\
250-ENHANCEDSTATUSCODES\r\n\
250-PIPELINING\r\n\
250-CHUNKING\r\n\
250-auth login plain xoauth2\r\n\
250-AUTH=LOGIN\r\n\
250-X-EXPS GSSAPI\r\n\
250 SMTPUTF8\r\n",
    );
    let caps = parse_capabilities(&reply).unwrap();
    assert_eq!(caps.greeting, "mx.google.com at your service, [192.0.2.7]");
    assert_eq!(caps.size, Some(Some(157_286_400)));
    assert!(caps.eight_bit_mime && caps.starttls && caps.enhanced_status_codes);
    assert!(caps.pipelining && caps.chunking && caps.smtputf8);
    assert!(!caps.dsn && !caps.binary_mime);
    assert!(
        caps.offers_auth("XOAUTH2") && caps.offers_auth("PLAIN") && !caps.offers_auth("CRAM-MD5")
    );
    let other: Vec<_> = caps.other.iter().map(Capability::keyword).collect();
    assert_eq!(other, ["AUTH=LOGIN", "X-EXPS"]);
    // Written back and read again: the same set.
    let again = caps.to_reply().unwrap();
    assert_eq!(parse_capabilities(&again).unwrap(), caps);
}

#[test]
fn ehlo_reply_of_one_line_and_size_without_limit() {
    let reply = parse(b"250 tiny.example\r\n");
    let caps = parse_capabilities(&reply).unwrap();
    assert_eq!(
        (caps.greeting.as_ref(), caps.pipelining),
        ("tiny.example", false)
    );
    let reply = parse(b"250-x\r\n250 SIZE\r\n");
    assert_eq!(parse_capabilities(&reply).unwrap().size, Some(None));
    assert_eq!(
        parse_capabilities(&parse(b"502 5.5.1 no\r\n")),
        Err(ReplyError::NotEhlo { code: 502 })
    );
}

#[test]
fn capabilities_built_by_hand() {
    let mut caps = Capabilities::default();
    caps.greeting = Cow::Borrowed("postel.example");
    caps.pipelining = true;
    caps.size = Some(Some(35_882_577));
    caps.auth = Some(vec![Mechanism::PLAIN, Mechanism::LOGIN]);
    caps.other.push(Capability::new("X-CUSTOM on").unwrap());
    let bytes = caps.to_reply().unwrap().to_bytes();
    assert_eq!(
        bytes,
        b"250-postel.example\r\n250-SIZE 35882577\r\n250-AUTH PLAIN LOGIN\r\n250-PIPELINING\r\n250 X-CUSTOM on\r\n"
    );
    assert!(
        Capability::new("PIPELINING").is_err(),
        "known keywords have fields"
    );
}

#[test]
fn a_line_without_the_repeated_enhanced_code_must_fit_with_it() {
    // Written back, every line carries the code (RFC 2034), so a line that
    // omits it counts as if it had it.
    // 4 + 500 octets of line, 6 of "2.0.0 " and CRLF: exactly 512.
    let fits = [&b"250-2.0.0 a\r\n250-"[..], &[b'x'; 500], b"\r\n250 b\r\n"].concat();
    let r = parse(&fits);
    assert_eq!(r.lines()[1].len(), 500);
    let too_long = [&b"250-2.0.0 a\r\n250-"[..], &[b'x'; 501], b"\r\n250 b\r\n"].concat();
    assert_eq!(
        error(&too_long),
        ReplyError::Line(LineError::TooLong { max: 512 })
    );
}
