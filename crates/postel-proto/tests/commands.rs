//! Known-answer tests for the command grammar: RFC examples and the lines real
//! clients and MTAs send, each also written back and parsed again.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postel_proto::codec::{parse_command, parse_sasl_line};
use postel_proto::framing::CommandReader;
use postel_proto::types::{
    AuthParam, BodyType, Command, ForwardPath, HeloName, InitialResponse, MailParameters, Notify,
    Ret, ReversePath, SaslResponse,
};
use postel_proto::{CommandError, LineError, ParserOptions, Status};

/// Parses one complete line under `opts`, checks it used the whole input, and
/// checks the inverse: written and parsed again it is the same command.
fn parse_with(line: &[u8], opts: &ParserOptions) -> Command<'static> {
    let (cmd, used) = match parse_command(line, opts) {
        Ok(Status::Complete { value, consumed }) => (value, consumed),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
    };
    assert_eq!(used, line.len());
    let written = cmd.to_bytes();
    let again = parse_command(&written, opts).unwrap().complete().unwrap().0;
    assert_eq!(
        cmd,
        again,
        "written as {:?}",
        String::from_utf8_lossy(&written)
    );
    cmd.into_owned()
}

fn parse(line: &[u8]) -> Command<'static> {
    parse_with(line, &ParserOptions::STRICT)
}

fn error(line: &[u8]) -> CommandError {
    error_with(line, &ParserOptions::STRICT)
}

fn error_with(line: &[u8], opts: &ParserOptions) -> CommandError {
    match parse_command(line, opts) {
        Err(bad) => {
            assert_eq!(bad.consumed, line.len(), "whole bad line is dropped");
            bad.error
        }
        other => panic!("{:?} parsed: {other:?}", String::from_utf8_lossy(line)),
    }
}

fn reply_code(line: &[u8]) -> u16 {
    error(line).reply().code().get()
}

fn mailbox_of(path: &ReversePath<'_>) -> String {
    path.mailbox().map(ToString::to_string).unwrap_or_default()
}

#[test]
fn rfc5321_appendix_d1_transcript() {
    // The client side of the example in RFC 5321 appendix D.1.
    let lines: [&[u8]; 7] = [
        b"EHLO bar.com\r\n",
        b"MAIL FROM:<Smith@bar.com>\r\n",
        b"RCPT TO:<Jones@foo.com>\r\n",
        b"RCPT TO:<Green@foo.com>\r\n",
        b"RCPT TO:<Brown@foo.com>\r\n",
        b"DATA\r\n",
        b"QUIT\r\n",
    ];
    let verbs: Vec<_> = lines.iter().map(|l| parse(l).verb()).collect();
    assert_eq!(
        verbs,
        ["EHLO", "MAIL", "RCPT", "RCPT", "RCPT", "DATA", "QUIT"]
    );
    let Command::Mail { from, .. } = parse(lines[1]) else {
        panic!()
    };
    assert_eq!(mailbox_of(&from), "Smith@bar.com");
}

#[test]
fn rfc5321_appendix_d_verify_and_expand() {
    assert!(matches!(parse(b"VRFY Crispin\r\n"), Command::Vrfy(t) if t.as_str() == "Crispin"));
    assert!(
        matches!(parse(b"EXPN Example-People\r\n"), Command::Expn(t) if t.as_str() == "Example-People")
    );
    assert!(matches!(parse(b"HELP\r\n"), Command::Help(None)));
    assert!(matches!(parse(b"HELP MAIL\r\n"), Command::Help(Some(_))));
    assert!(matches!(parse(b"NOOP\r\n"), Command::Noop(None)));
    assert!(matches!(parse(b"RSET\r\n"), Command::Rset));
}

#[test]
fn source_routes_are_parsed_and_ignored() {
    // RFC 5321 section 4.1.2 and appendix C.
    let Command::Rcpt { to, .. } = parse(b"RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>\r\n")
    else {
        panic!()
    };
    assert_eq!(to.to_string(), "<userc@d.bar.org>");
    assert!(matches!(
        error(b"RCPT TO:<@hosta.int userc@d.bar.org>\r\n"),
        CommandError::Syntax { .. }
    ));
}

#[test]
fn null_sender_postmaster_and_their_limits() {
    assert_eq!(
        parse(b"MAIL FROM:<>\r\n"),
        Command::Mail {
            from: ReversePath::Null,
            params: MailParameters::default()
        }
    );
    assert!(matches!(
        parse(b"RCPT TO:<postMASTER>\r\n"),
        Command::Rcpt {
            to: ForwardPath::Postmaster,
            ..
        }
    ));
    assert!(matches!(
        parse(b"RCPT TO:<Postmaster@example.org>\r\n"),
        Command::Rcpt {
            to: ForwardPath::Mailbox(_),
            ..
        }
    ));
    assert!(matches!(
        error(b"MAIL FROM:<Postmaster>\r\n"),
        CommandError::Syntax { .. }
    ));
}

/// smtp-proto 0.2.5 reads `RCPT TO:<>` and `RCPT TO:<Postmaster>` as the same
/// thing; `<>` is not a forward path at all (RFC 5321 section 4.1.1.3).
#[test]
fn rcpt_null_path_is_not_postmaster() {
    assert!(matches!(
        parse(b"RCPT TO:<Postmaster>\r\n"),
        Command::Rcpt {
            to: ForwardPath::Postmaster,
            ..
        }
    ));
    let e = error(b"RCPT TO:<>\r\n");
    assert!(matches!(e, CommandError::Syntax { verb: "RCPT", .. }));
    assert_eq!(e.reply().code().get(), 501);
}

/// smtp-proto 0.2.5 accepts command lines ended by a bare LF; that ambiguity is
/// what SMTP smuggling builds on, so it is refused unless allowed by option.
#[test]
fn bare_lf_command_line_is_refused() {
    assert_eq!(error(b"QUIT\n"), CommandError::Line(LineError::BareLf));
    assert_eq!(error(b"QU\rIT\r\n"), CommandError::Line(LineError::BareCr));
    assert_eq!(reply_code(b"QUIT\n"), 500);
    let mut lenient = ParserOptions::STRICT;
    lenient.allow_bare_lf = true;
    assert_eq!(parse_with(b"QUIT\n", &lenient), Command::Quit);
}

#[test]
fn addresses_literals_and_quoted_local_parts() {
    let Command::Mail { from, .. } = parse(b"MAIL FROM:<\"john doe\"@[IPv6:2001:db8::1]>\r\n")
    else {
        panic!()
    };
    assert_eq!(mailbox_of(&from), "\"john doe\"@[IPv6:2001:db8::1]");
    let Command::Rcpt { to, .. } = parse(b"RCPT TO:<a@[192.0.2.1]>\r\n") else {
        panic!()
    };
    assert_eq!(to.to_string(), "<a@[192.0.2.1]>");
    assert!(matches!(
        parse(b"EHLO [x-tag:some-thing]\r\n"),
        Command::Ehlo(HeloName::Literal(_))
    ));
    for bad in [
        &b"RCPT TO:<a..b@example.org>\r\n"[..],
        b"RCPT TO:<a@-example.org>\r\n",
        b"RCPT TO:<a@[300.1.1.1]>\r\n",
        b"RCPT TO:<a@example.org\r\n",
        b"RCPT TO:a@example.org\r\n",
        b"RCPT TO:<@example.org>\r\n",
    ] {
        assert_eq!(reply_code(bad), 501, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn utf8_addresses_rfc6531() {
    let Command::Mail { from, params } =
        parse("MAIL FROM:<用户@例子.广告> SMTPUTF8\r\n".as_bytes())
    else {
        panic!()
    };
    assert!(params.smtputf8);
    assert!(!from.mailbox().unwrap().is_ascii());
    assert_eq!(
        error(b"RCPT TO:<\xff@example.org>\r\n"),
        CommandError::NotUtf8 { verb: "RCPT" }
    );
}

#[test]
fn mail_parameters_of_every_extension() {
    let line =
        b"MAIL FROM:<a@example.org> SIZE=10240 BODY=8BITMIME SMTPUTF8 AUTH=a+2Bb@example.org \
RET=HDRS ENVID=QQ314159 REQUIRETLS MT-PRIORITY=-4 X-VENDOR=yes XFLAG\r\n";
    let Command::Mail { params: p, .. } = parse(line) else {
        panic!()
    };
    assert_eq!(p.size, Some(10240));
    assert_eq!(p.body, Some(BodyType::EightBitMime));
    assert!(p.smtputf8 && p.requiretls);
    let Some(AuthParam::Identity(id)) = &p.auth else {
        panic!()
    };
    assert_eq!(&*id.decode(), b"a+b@example.org");
    assert_eq!(p.ret, Some(Ret::Hdrs));
    assert_eq!(p.envid.as_ref().unwrap().as_str(), "QQ314159");
    assert_eq!(p.mt_priority.unwrap().get(), -4);
    let other: Vec<_> = p.other.iter().map(|o| (o.keyword(), o.value())).collect();
    assert_eq!(other, [("X-VENDOR", Some("yes")), ("XFLAG", None)]);
    let Command::Mail { params, .. } = parse(b"MAIL FROM:<> AUTH=<> BODY=binarymime\r\n") else {
        panic!()
    };
    assert_eq!(params.auth, Some(AuthParam::Unknown));
    assert_eq!(params.body, Some(BodyType::BinaryMime));
}

#[test]
fn rcpt_dsn_parameters_rfc3461() {
    let Command::Rcpt { params, .. } =
        parse(b"RCPT TO:<c@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;c+40example.net\r\n")
    else {
        panic!()
    };
    assert_eq!(
        params.notify,
        Some(Notify {
            success: true,
            failure: false,
            delay: true
        })
    );
    let orcpt = params.orcpt.unwrap();
    assert_eq!(orcpt.addr_type(), "rfc822");
    assert_eq!(&*orcpt.address().decode(), b"c@example.net");
    let Command::Rcpt { params, .. } = parse(b"RCPT TO:<c@example.net> NOTIFY=NEVER\r\n") else {
        panic!()
    };
    assert!(params.notify.unwrap().is_never());
}

#[test]
fn parameter_errors_map_to_their_replies() {
    let cases: [(&[u8], u16); 11] = [
        (b"MAIL FROM:<a@b.c> SIZE=ten\r\n", 501),
        (b"MAIL FROM:<a@b.c> SIZE=99999999999999999999999\r\n", 501),
        (b"MAIL FROM:<a@b.c> SIZE=1 SIZE=2\r\n", 501),
        (b"MAIL FROM:<a@b.c> BODY=9BIT\r\n", 504),
        (b"MAIL FROM:<a@b.c> RET=ALL\r\n", 501),
        (b"MAIL FROM:<a@b.c> SMTPUTF8=yes\r\n", 555),
        (b"MAIL FROM:<a@b.c> MT-PRIORITY=12\r\n", 501),
        (b"MAIL FROM:<a@b.c> ENVID=a+zz\r\n", 501),
        (b"RCPT TO:<a@b.c> NOTIFY=NEVER,SUCCESS\r\n", 501),
        (b"RCPT TO:<a@b.c> ORCPT=rfc822\r\n", 501),
        (b"MAIL FROM:<a@b.c>  SIZE=1\r\n", 501),
    ];
    for (line, code) in cases {
        assert_eq!(reply_code(line), code, "{}", String::from_utf8_lossy(line));
    }
}

/// RFC 3461 section 4.4: an ENVID is at most 100 characters of printable
/// US-ASCII. A value that decodes to CR LF would become a line of its own in
/// a delivery report or a relayed MAIL command, so every xtext parameter
/// that ends up in text refuses controls.
#[test]
fn xtext_parameters_refuse_controls_and_over_long_envids() {
    let hundred = "x".repeat(100);
    let envid = format!("MAIL FROM:<a@b.c> ENVID={hundred}\r\n");
    assert!(parse(envid.as_bytes()) != Command::Quit);
    let too_long = format!("MAIL FROM:<a@b.c> ENVID={hundred}x\r\n");
    let refused: [&[u8]; 8] = [
        too_long.as_bytes(),
        b"MAIL FROM:<a@b.c> ENVID=a+0D+0ASubject:+20x\r\n",
        b"MAIL FROM:<a@b.c> ENVID=a+00\r\n",
        b"MAIL FROM:<a@b.c> ENVID=caf+C3+A9\r\n",
        b"MAIL FROM:<a@b.c> AUTH=a+0D+0A@b.c\r\n",
        b"MAIL FROM:<a@b.c> AUTH=a+00@b.c\r\n",
        b"RCPT TO:<a@b.c> ORCPT=rfc822;a+0D+0AAction:+20delivered\r\n",
        b"RCPT TO:<a@b.c> ORCPT=rfc822;a+7F@b.c\r\n",
    ];
    for line in refused {
        let e = error(line);
        assert!(
            matches!(e, CommandError::BadParameterValue { .. }),
            "{}: {e:?}",
            String::from_utf8_lossy(line)
        );
        let mut written = Vec::new();
        e.reply().write(&mut written);
        assert_eq!(
            written,
            b"501 5.5.4 Syntax error in parameters or arguments\r\n"
        );
    }
    let long_orcpt = format!("RCPT TO:<a@b.c> ORCPT=rfc822;{}\r\n", "a".repeat(494));
    let mut wide = ParserOptions::STRICT;
    wide.limits.command_line = 2048;
    assert!(matches!(
        error_with(long_orcpt.as_bytes(), &wide),
        CommandError::BadParameterValue { keyword: "ORCPT" }
    ));
    // UTF-8 stays allowed where RFC 6533 allows it.
    let Command::Rcpt { params, .. } = parse(b"RCPT TO:<a@b.c> ORCPT=utf-8;caf+C3+A9@b.c\r\n")
    else {
        panic!("RCPT")
    };
    assert_eq!(
        params.orcpt.unwrap().address().decode().as_ref(),
        "café@b.c".as_bytes()
    );
}

/// A general address literal longer than the parser looks for its `]` is not
/// an address literal for the parser, so it must not be one for the types
/// either: with nonstandard HELO names allowed it is one of those, and the
/// value passes its own validator (a fuzz find that broke the invariant).
#[test]
fn parser_and_types_agree_on_long_address_literals() {
    let long = format!("[Pv6:92.0.2.1444{}]", "(".repeat(300));
    let line = format!("HELO {long}\r\n");
    let Command::Helo(name) = parse_with(line.as_bytes(), &ParserOptions::INTEROPERABLE) else {
        panic!("HELO")
    };
    let HeloName::Nonstandard(n) = &name else {
        panic!("{name:?}")
    };
    assert!(postel_proto::types::NonstandardHelo::try_from(n.as_str()).is_ok());
    assert!(postel_proto::types::AddressLiteral::try_from(long.as_str()).is_err());
    assert!(matches!(
        error(line.as_bytes()),
        CommandError::Syntax { .. }
    ));
    let short = "[Pv6:92.0.2.1444((]";
    assert!(postel_proto::types::AddressLiteral::try_from(short).is_ok());
    let Command::Helo(HeloName::Literal(_)) = parse_with(
        format!("HELO {short}\r\n").as_bytes(),
        &ParserOptions::INTEROPERABLE,
    ) else {
        panic!("a literal")
    };
}

#[test]
fn verbs_and_keywords_are_case_insensitive() {
    // Python's smtplib sends lower-case verbs and keywords.
    assert!(matches!(
        parse(b"ehlo [127.0.1.1]\r\n"),
        Command::Ehlo(HeloName::Literal(_))
    ));
    let Command::Mail { params, .. } =
        parse(b"mail FROM:<a@example.org> size=12 body=8bitmime\r\n")
    else {
        panic!()
    };
    assert_eq!(
        (params.size, params.body),
        (Some(12), Some(BodyType::EightBitMime))
    );
    assert!(matches!(
        parse(b"rcpt TO:<b@example.org>\r\n"),
        Command::Rcpt { .. }
    ));
    assert_eq!(parse(b"data\r\n"), Command::Data);
    assert_eq!(parse(b"StartTLS\r\n"), Command::StartTls);
    assert_eq!(
        parse(b"bdat 10 last\r\n"),
        Command::Bdat {
            size: 10,
            last: true
        }
    );
}

#[test]
fn lines_sent_by_real_clients_and_mtas() {
    let corpus: [&[u8]; 20] = [
        // Thunderbird: address literal greeting, BODY before SIZE.
        b"EHLO [192.168.1.23]\r\n",
        b"MAIL FROM:<jane@example.org> BODY=8BITMIME SIZE=2471\r\n",
        // Outlook: NetBIOS-style name, AUTH LOGIN without initial response.
        b"EHLO DESKTOP-4JK2L3M\r\n",
        b"AUTH LOGIN\r\n",
        // Postfix: DSN parameters on every recipient.
        b"MAIL FROM:<bounce@mx.example.org> SIZE=5012 BODY=8BITMIME ENVID=a1b2 RET=HDRS\r\n",
        b"RCPT TO:<rcpt@example.net> NOTIFY=FAILURE ORCPT=rfc822;rcpt@example.net\r\n",
        b"MAIL FROM:<> SIZE=2001\r\n",
        // Exim: AUTH=<> when relaying for an unauthenticated sender.
        b"MAIL FROM:<a@example.com> SIZE=1337 AUTH=<>\r\n",
        b"RCPT TO:<b@example.com>\r\n",
        // swaks defaults.
        b"EHLO swaks.example\r\n",
        b"MAIL FROM:<root@swaks.example>\r\n",
        b"QUIT\r\n",
        // Python smtplib.
        b"ehlo client.example\r\n",
        b"mail FROM:<py@example.org> size=120\r\n",
        b"AUTH PLAIN AHVzZXIAc2VjcmV0\r\n",
        // curl.
        b"MAIL FROM:<curl@example.org> SIZE=9\r\n",
        // Gmail and Microsoft 365 send CHUNKING and STARTTLS.
        b"BDAT 86 LAST\r\n",
        b"STARTTLS\r\n",
        b"AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB2RjlkZnQ0cW1UYzJOdmIzUmxja0JoZEhSaGRtbHpkR0V1WTI5dENnPT0BAQ==\r\n",
        b"NOOP\r\n",
    ];
    for line in corpus {
        parse(line);
    }
    assert!(matches!(
        parse(b"AUTH PLAIN =\r\n"),
        Command::Auth {
            initial_response: Some(InitialResponse::Empty),
            ..
        }
    ));
}

#[test]
fn named_leniencies() {
    let interop = ParserOptions::INTEROPERABLE;
    // A space after the colon: refused when strict, accepted when allowed.
    assert!(matches!(
        error(b"MAIL FROM: <a@example.org>\r\n"),
        CommandError::Syntax { .. }
    ));
    let Command::Mail { from, .. } = parse_with(b"MAIL FROM: <a@example.org>\r\n", &interop) else {
        panic!()
    };
    assert_eq!(mailbox_of(&from), "a@example.org");
    // Windows machine names with underscores.
    assert!(matches!(
        error(b"EHLO my_pc\r\n"),
        CommandError::Syntax { verb: "EHLO", .. }
    ));
    assert!(matches!(
        parse_with(b"EHLO my_pc\r\n", &interop),
        Command::Ehlo(HeloName::Nonstandard(_))
    ));
    // Still never a bare LF.
    assert_eq!(
        error_with(b"NOOP\n", &interop),
        CommandError::Line(LineError::BareLf)
    );
}

#[test]
fn unknown_and_malformed_commands() {
    assert_eq!(reply_code(b"FOO\r\n"), 500);
    assert_eq!(reply_code(b"\r\n"), 500);
    assert_eq!(reply_code(b"MAILX FROM:<a@b>\r\n"), 501);
    assert_eq!(reply_code(b"DATAX\r\n"), 500);
    assert_eq!(reply_code(b"DATA now\r\n"), 501);
    assert_eq!(reply_code(b"EHLO\r\n"), 501);
    assert_eq!(reply_code(b"VRFY\r\n"), 501);
    assert_eq!(reply_code(b"BDAT\r\n"), 501);
    assert_eq!(reply_code(b"BDAT x\r\n"), 501);
    assert_eq!(reply_code(b"BDAT 1 FIRST\r\n"), 501);
    assert_eq!(reply_code(b"AUTH\r\n"), 501);
    assert_eq!(reply_code(b"AUTH PLAIN not*base64\r\n"), 501);
    assert_eq!(reply_code(b"AUTH THIS-MECHANISM-NAME-IS-TOO-LONG\r\n"), 501);
    assert_eq!(reply_code(b"NOOP \x01\r\n"), 501);
}

#[test]
fn limits_of_rfc5321_section_4_5_3_1() {
    let local = "a".repeat(65);
    let line = format!("RCPT TO:<{local}@example.org>\r\n");
    assert!(matches!(
        error(line.as_bytes()),
        CommandError::LocalPartTooLong {
            max: 64,
            len: 65,
            ..
        }
    ));
    let domain = format!("{}.org", vec!["b".repeat(60); 5].join("."));
    let line = format!("RCPT TO:<a@{domain}>\r\n");
    assert!(matches!(
        error(line.as_bytes()),
        CommandError::DomainTooLong { max: 255, .. }
    ));
    // 64 + 1 + 196 + 2 = 263 octets of path: each part within its limit, the path not.
    let domain = format!("{}.org", vec!["c".repeat(63); 3].join("."));
    let line = format!("RCPT TO:<{}@{domain}>\r\n", "a".repeat(64));
    assert!(matches!(
        error(line.as_bytes()),
        CommandError::PathTooLong { max: 256, .. }
    ));
    // Raised limits accept what the defaults refuse.
    let mut opts = ParserOptions::STRICT;
    opts.limits.path = 1000;
    parse_with(line.as_bytes(), &opts);
    // The command line limit counts CRLF.
    let noop = format!("NOOP {}\r\n", "x".repeat(505));
    assert_eq!(noop.len(), 512);
    parse(noop.as_bytes());
    let noop = format!("NOOP {}\r\n", "x".repeat(506));
    assert_eq!(
        error(noop.as_bytes()),
        CommandError::Line(LineError::TooLong { max: 512 })
    );
}

#[test]
fn sasl_lines_have_their_own_larger_limit() {
    let token = "A".repeat(12_000);
    let line = format!("{token}\r\n");
    let opts = ParserOptions::STRICT;
    assert!(parse_command(line.as_bytes(), &opts).is_err());
    let (resp, used) = parse_sasl_line(line.as_bytes(), &opts)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(used, line.len());
    assert!(matches!(resp, SaslResponse::Data(d) if d.expose().len() == 12_000));
    assert_eq!(
        parse_sasl_line(b"*\r\n", &opts)
            .unwrap()
            .complete()
            .unwrap()
            .0,
        SaslResponse::Cancel
    );
    let too_long = format!("{}\r\n", "A".repeat(12_287));
    let err = parse_sasl_line(too_long.as_bytes(), &opts).unwrap_err();
    assert_eq!(
        err.error,
        CommandError::Line(LineError::TooLong { max: 12_288 })
    );
    assert!(parse_sasl_line(b"not base64!\r\n", &opts).is_err());
}

#[test]
fn pipelined_commands_in_one_buffer_and_in_pieces() {
    let input = b"EHLO a.example\r\nMAIL FROM:<x@a.example>\r\nRCPT TO:<y@b.example>\r\nDATA\r\n";
    let mut rest = &input[..];
    let mut verbs = Vec::new();
    while let Status::Complete { value, consumed } =
        parse_command(rest, &ParserOptions::STRICT).unwrap()
    {
        verbs.push(value.verb());
        rest = &rest[consumed..];
    }
    assert_eq!(verbs, ["EHLO", "MAIL", "RCPT", "DATA"]);
    assert!(rest.is_empty());

    for piece in 1..8 {
        let mut reader = CommandReader::new(ParserOptions::STRICT);
        let mut verbs = Vec::new();
        for chunk in input.chunks(piece) {
            reader.feed(chunk);
            while let Some(cmd) = reader.next_command() {
                verbs.push(cmd.unwrap().verb());
            }
        }
        assert_eq!(verbs, ["EHLO", "MAIL", "RCPT", "DATA"], "pieces of {piece}");
    }
}

#[test]
fn reader_drops_an_over_long_line_and_recovers() {
    let mut reader = CommandReader::new(ParserOptions::STRICT);
    reader.feed(&[b'x'; 600]);
    assert_eq!(
        reader.next_command(),
        Some(Err(CommandError::Line(LineError::TooLong { max: 512 })))
    );
    reader.feed(&[b'y'; 3000]);
    assert_eq!(reader.next_command(), None);
    assert!(
        reader.buffered().is_empty(),
        "nothing of the long line is kept"
    );
    reader.feed(b"yyy\r\nQUIT\r\n");
    assert_eq!(reader.next_command(), Some(Ok(Command::Quit)));
}

#[test]
fn incomplete_input_asks_for_more() {
    for partial in [&b""[..], b"MAIL FROM:<a@b", b"QUIT\r"] {
        assert_eq!(
            parse_command(partial, &ParserOptions::STRICT),
            Ok(Status::Incomplete)
        );
    }
}

#[test]
fn auth_payload_is_redacted_in_debug_output() {
    let cmd = parse(b"AUTH PLAIN AHVzZXIAaHVudGVyMg==\r\n");
    let shown = format!("{cmd:?}");
    assert!(!shown.contains("AHVzZXIAaHVudGVyMg"), "{shown}");
}
