//! Property tests: anything the API can build is written and parsed back to
//! itself; bodies survive the dot-encoder and decoder at any chunking; and no
//! input makes a parser panic.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;

use postel_proto::codec::{parse_capabilities, parse_command, parse_reply, parse_sasl_line};
use postel_proto::framing::{BodyOptions, CommandReader, DotDecoder, dot_stuff};
use postel_proto::types::{
    AddressLiteral, AuthParam, BodyType, Command, Domain, EnhancedStatus, ForwardPath, HeloName,
    InitialResponse, LocalPart, MailParameters, Mailbox, Mechanism, MtPriority, Notify, Orcpt,
    Parameter, RcptParameters, Reply, ReplyCode, Ret, ReversePath, Text, XText,
};
use postel_proto::{ParserOptions, Status};
use proptest::prelude::*;

fn domain() -> impl Strategy<Value = Domain<'static>> {
    let label = prop_oneof![
        8 => "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?",
        1 => Just("bücher".to_string()),
        1 => Just("例子".to_string()),
    ];
    prop::collection::vec(label, 1..4)
        .prop_map(|labels| Domain::try_from(labels.join(".")).unwrap())
}

fn literal() -> impl Strategy<Value = AddressLiteral<'static>> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| AddressLiteral::Ipv4(o.into())),
        any::<u128>().prop_map(|v| AddressLiteral::Ipv6(v.into())),
        ("x-[a-z]{1,5}", "[!-Z^-~]{1,10}").prop_map(|(tag, content)| {
            AddressLiteral::try_from(format!("[{tag}:{content}]").as_str())
                .unwrap()
                .into_owned()
        }),
    ]
}

fn local_part() -> impl Strategy<Value = LocalPart<'static>> {
    let atom = "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}";
    prop_oneof![
        4 => prop::collection::vec(atom, 1..4).prop_map(|a| a.join(".")),
        1 => r#""([ !#-\[\]-~]|\\[ -~]){0,12}""#,
        1 => Just("用户".to_string()),
    ]
    .prop_filter_map("within 64 octets", |s| LocalPart::try_from(s).ok())
}

fn mailbox() -> impl Strategy<Value = Mailbox<'static>> {
    (
        local_part(),
        prop_oneof![
            4 => domain().prop_map(postel_proto::types::Host::Domain),
            1 => literal().prop_map(|l| postel_proto::types::Host::Literal(Box::new(l))),
        ],
    )
        .prop_map(|(l, h)| Mailbox::new(l, h))
}

/// xtext whose octets are text (no controls), as AUTH= and ORCPT need.
fn xtext() -> impl Strategy<Value = XText<'static>> {
    prop::collection::vec(
        any::<u8>().prop_filter("a control", |&b| b >= 0x20 && b != 0x7f),
        1..12,
    )
    .prop_map(|raw| XText::encode(&raw))
}

/// xtext of printable US-ASCII, as ENVID needs (RFC 3461 section 4.4).
fn envid() -> impl Strategy<Value = XText<'static>> {
    prop::collection::vec(0x20u8..0x7f, 1..30).prop_map(|raw| XText::encode(&raw))
}

fn mail_params() -> impl Strategy<Value = MailParameters<'static>> {
    (
        (
            prop::option::of(any::<u64>()),
            prop::option::of(prop_oneof![
                Just(BodyType::SevenBit),
                Just(BodyType::EightBitMime),
                Just(BodyType::BinaryMime)
            ]),
            any::<bool>(),
            prop::option::of(prop_oneof![
                Just(AuthParam::Unknown),
                xtext().prop_map(AuthParam::Identity)
            ]),
        ),
        (
            prop::option::of(prop_oneof![Just(Ret::Full), Just(Ret::Hdrs)]),
            prop::option::of(envid()),
            any::<bool>(),
            prop::option::of((-9i8..=9).prop_map(|p| MtPriority::try_from(p).unwrap())),
            prop::collection::vec(other_param(), 0..3),
        ),
    )
        .prop_map(
            |((size, body, smtputf8, auth), (ret, envid, requiretls, mt_priority, other))| {
                let mut p = MailParameters::default();
                p.size = size;
                p.body = body;
                p.smtputf8 = smtputf8;
                p.auth = auth;
                p.ret = ret;
                p.envid = envid;
                p.requiretls = requiretls;
                p.mt_priority = mt_priority;
                p.other = other.into();
                p
            },
        )
}

fn other_param() -> impl Strategy<Value = Parameter<'static>> {
    ("X-[A-Z0-9]{1,6}", prop::option::of("[!-<>-~]{1,8}"))
        .prop_map(|(k, v)| Parameter::new(k, v.map(Cow::Owned)).unwrap())
}

fn rcpt_params() -> impl Strategy<Value = RcptParameters<'static>> {
    (
        prop::option::of(
            any::<(bool, bool, bool)>().prop_map(|(success, failure, delay)| Notify {
                success,
                failure,
                delay,
            }),
        ),
        prop::option::of(xtext().prop_map(|x| Orcpt::new("rfc822", x).unwrap())),
        prop::collection::vec(other_param(), 0..3),
    )
        .prop_map(|(notify, orcpt, other)| {
            let mut p = RcptParameters::default();
            p.notify = notify;
            p.orcpt = orcpt;
            p.other = other.into();
            p
        })
}

fn text() -> impl Strategy<Value = Text<'static>> {
    "[ -~é]{0,30}[!-~]".prop_map(|s| Text::try_from(s).unwrap())
}

fn command() -> impl Strategy<Value = Command<'static>> {
    let helo = prop_oneof![
        domain().prop_map(HeloName::Domain),
        literal().prop_map(HeloName::Literal)
    ];
    prop_oneof![
        helo.clone().prop_map(Command::Helo),
        helo.clone().prop_map(Command::Lhlo),
        helo.prop_map(Command::Ehlo),
        (
            prop_oneof![1 => Just(ReversePath::Null), 4 => mailbox().prop_map(ReversePath::Mailbox)],
            mail_params()
        )
            .prop_map(|(from, params)| Command::Mail { from, params }),
        (
            prop_oneof![1 => Just(ForwardPath::Postmaster), 4 => mailbox().prop_map(ForwardPath::Mailbox)],
            rcpt_params()
        )
            .prop_map(|(to, params)| Command::Rcpt { to, params }),
        Just(Command::Data),
        (any::<u64>(), any::<bool>()).prop_map(|(size, last)| Command::Bdat { size, last }),
        Just(Command::Rset),
        Just(Command::Quit),
        Just(Command::StartTls),
        prop::option::of(text()).prop_map(Command::Noop),
        prop::option::of(text()).prop_map(Command::Help),
        text().prop_map(Command::Vrfy),
        text().prop_map(Command::Expn),
        (
            "[A-Z0-9_-]{1,20}",
            prop::option::of(prop_oneof![
                Just(InitialResponse::Empty),
                "[A-Za-z0-9+/]{1,40}={0,2}".prop_map(|s| InitialResponse::base64(s).unwrap())
            ])
        )
            .prop_map(|(m, initial_response)| Command::Auth {
                mechanism: Mechanism::try_from(m).unwrap(),
                initial_response,
            }),
    ]
}

fn reply() -> impl Strategy<Value = Reply<'static>> {
    (
        (2u16..=5, 0u16..=5, 0u16..=9),
        any::<bool>(),
        (0u16..1000, 0u16..1000),
        prop::collection::vec("[\t -~é]{0,60}", 1..5),
    )
        .prop_filter_map(
            "valid reply",
            |((a, b, c), with_enhanced, (s, d), lines)| {
                let code = ReplyCode::try_from(a * 100 + b * 10 + c).ok()?;
                let enhanced = if with_enhanced && a != 3 {
                    EnhancedStatus::new(u8::try_from(a).ok()?, s, d)
                } else {
                    None
                };
                Reply::multiline(code, enhanced, lines.into_iter().map(Cow::Owned).collect()).ok()
            },
        )
}

/// Bodies made of the pieces that matter to transparency.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b".".to_vec()),
        Just(b"\r\n.".to_vec()),
        Just(b"\r\n.\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        "[ -~]{1,80}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 1..100),
    ];
    prop::collection::vec(piece, 0..60).prop_map(|p| p.concat())
}

fn decode_chunked(input: &[u8], cuts: &[usize]) -> (Vec<u8>, usize) {
    let mut opts = BodyOptions::default();
    opts.max_line = None;
    let mut dec = DotDecoder::new(opts);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < input.len() {
        let n = cuts
            .get(k)
            .copied()
            .unwrap_or(usize::MAX)
            .clamp(1, input.len() - pos);
        k += 1;
        if let Some(end) = dec.decode(&input[pos..pos + n], &mut |d| out.extend_from_slice(d)) {
            assert_eq!(end.violation, None);
            return (out, pos + end.consumed);
        }
        pos += n;
    }
    panic!("no end found in an encoded body");
}

proptest! {
    #[test]
    fn commands_round_trip(cmd in command()) {
        let written = cmd.to_bytes();
        let mut opts = ParserOptions::STRICT;
        // Generated parameters can make a line longer than 512 octets, which
        // RFC 1869 lets extensions do; parse with the raised limit servers use.
        opts.limits.command_line = 4096;
        match parse_command(&written, &opts) {
            Ok(Status::Complete { value, consumed }) => {
                prop_assert_eq!(&value, &cmd, "{}", String::from_utf8_lossy(&written));
                prop_assert_eq!(consumed, written.len());
            }
            other => prop_assert!(false, "{:?} -> {:?}", String::from_utf8_lossy(&written), other),
        }
    }

    #[test]
    fn replies_round_trip(r in reply()) {
        let written = r.to_bytes();
        let (parsed, used) = parse_reply(&written, &ParserOptions::STRICT).unwrap().complete().unwrap();
        prop_assert_eq!(used, written.len());
        prop_assert_eq!(parsed.into_owned(), r);
    }

    #[test]
    fn bodies_round_trip_at_any_chunking(
        message in body(),
        cuts in prop::collection::vec(1usize..200, 0..40),
    ) {
        let mut message = message;
        // The encoder sends bare CR and LF as CRLF; compare against that form.
        let normalized = {
            let mut e = dot_stuff(&message);
            e.truncate(e.len() - 3);
            let mut n = Vec::new();
            let mut dec = DotDecoder::new(BodyOptions::default());
            e.extend_from_slice(b".\r\n");
            let _ = dec.decode(&e, &mut |d| n.extend_from_slice(d));
            n
        };
        let encoded = dot_stuff(&message);
        let (decoded, used) = decode_chunked(&encoded, &cuts);
        prop_assert_eq!(used, encoded.len());
        prop_assert_eq!(&decoded, &normalized);
        // A CRLF-clean message that ends in CRLF comes back byte for byte.
        message.retain(|&b| b != b'\r' && b != b'\n');
        message.extend_from_slice(b"\r\n");
        let (decoded, _) = decode_chunked(&dot_stuff(&message), &cuts);
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn parsers_never_panic(input in prop::collection::vec(any::<u8>(), 0..600), selector in any::<u8>()) {
        let mut opts = ParserOptions::STRICT;
        opts.allow_bare_lf = selector & 1 != 0;
        opts.allow_space_after_colon = selector & 2 != 0;
        opts.allow_nonstandard_helo = selector & 4 != 0;
        let _ = parse_command(&input, &opts);
        let _ = parse_sasl_line(&input, &opts);
        if let Ok(Status::Complete { value, .. }) = parse_reply(&input, &opts) {
            let _ = parse_capabilities(&value).map(|c| c.to_reply());
        }
        let mut dec = DotDecoder::new(BodyOptions::default());
        let _ = dec.decode(&input, &mut |_| {});
        let mut reader = CommandReader::new(opts);
        for chunk in input.chunks(usize::from(selector % 17) + 1) {
            reader.feed(chunk);
            while reader.next_command().is_some() {}
        }
    }

    /// The EHLO reply written in place is the one built as a reply, or both
    /// refuse the capabilities (a greeting that is no reply text).
    #[test]
    fn capabilities_write_as_their_reply(
        keywords in prop::collection::vec(prop_oneof![
            Just("PIPELINING"), Just("SIZE"), Just("SIZE 35882577"), Just("8BITMIME"),
            Just("AUTH PLAIN LOGIN"), Just("AUTH"), Just("STARTTLS"), Just("DSN"),
            Just("CHUNKING"), Just("BINARYMIME"), Just("SMTPUTF8"), Just("HELP"),
            Just("ENHANCEDSTATUSCODES"), Just("REQUIRETLS"), Just("X-EXPS GSSAPI NTLM"),
            Just("VRFY"), Just("ETRN"), Just("DELIVERBY 60"),
        ], 0..12),
        greeting in prop_oneof![
            3 => "[a-z0-9.-]{1,40}( [ -~]{0,60})?",
            1 => "[ -~\t\r\né]{0,20}",
            1 => "2\\.[0-9]\\.[0-9] [a-z]{1,9}",
            1 => "[a-z]{500,520}",
        ],
    ) {
        let mut ehlo = String::from("250-mx.example.org\r\n");
        for k in &keywords {
            ehlo.push_str("250-");
            ehlo.push_str(k);
            ehlo.push_str("\r\n");
        }
        ehlo.push_str("250 HELP\r\n");
        let (reply, _) = parse_reply(ehlo.as_bytes(), &ParserOptions::STRICT).unwrap().complete().unwrap();
        let mut caps = parse_capabilities(&reply).unwrap();
        caps.greeting = greeting.into();
        let mut written = b"before".to_vec();
        match (caps.write_reply(&mut written), caps.to_reply()) {
            (Ok(()), Ok(r)) => {
                prop_assert_eq!(&written[..6], b"before");
                prop_assert_eq!(&written[6..], &r.to_bytes()[..]);
            }
            (Err(_), Err(_)) => prop_assert_eq!(&written, b"before"),
            (w, r) => prop_assert!(false, "write_reply {:?}, to_reply {:?}", w, r),
        }
    }

    #[test]
    fn smtp_shaped_garbage_never_panics(
        parts in prop::collection::vec(prop_oneof![
            Just("MAIL FROM:"), Just("RCPT TO:"), Just("<"), Just(">"), Just("@"), Just(" "),
            Just("\r\n"), Just("\n"), Just("\r"), Just("SIZE="), Just("NOTIFY="), Just("ORCPT="),
            Just("["), Just("]"), Just("IPv6:"), Just("\""), Just("\\"), Just("."), Just("250-"),
            Just("250 "), Just("2.0.0"), Just("EHLO"), Just("BDAT "), Just("AUTH "), Just("é"),
            Just("a"), Just("9"), Just(","), Just(":"), Just("+"), Just("="),
        ], 0..80)
    ) {
        let input = parts.concat();
        let mut rest = input.as_bytes();
        while let Ok(Status::Complete { consumed, .. }) | Err(postel_proto::Invalid { consumed, line_finished: true, .. }) =
            parse_command(rest, &ParserOptions::INTEROPERABLE)
        {
            rest = &rest[consumed..];
        }
        let _ = parse_reply(input.as_bytes(), &ParserOptions::STRICT);
    }
}

/// Asserts that every value in a parsed command passes its type's own
/// validator: the parser and the types share one definition of each rule.
fn assert_valid(cmd: &Command<'_>) {
    fn host(h: &postel_proto::types::Host<'_>) {
        use postel_proto::types::Host;
        match h {
            Host::Domain(d) => assert!(Domain::try_from(d.as_str()).is_ok(), "{d:?}"),
            Host::Literal(l) => {
                let s = l.to_string();
                assert!(AddressLiteral::try_from(s.as_str()).is_ok(), "{l:?}");
            }
        }
    }
    fn mailbox(m: &Mailbox<'_>) {
        let lp = m.local_part().as_str();
        assert!(LocalPart::try_from(lp).is_ok(), "{lp:?}");
        host(m.host());
        let s = m.to_string();
        assert!(Mailbox::try_from(s.as_str()).is_ok(), "{s:?}");
    }
    fn params(other: &[Parameter<'_>]) {
        for p in other {
            let rebuilt = Parameter::new(
                p.keyword().to_owned(),
                p.value().map(|v| Cow::Owned(v.to_owned())),
            );
            assert!(rebuilt.is_ok(), "{p:?}");
        }
    }
    match cmd {
        Command::Helo(name) | Command::Ehlo(name) | Command::Lhlo(name) => match name {
            HeloName::Domain(d) => assert!(Domain::try_from(d.as_str()).is_ok(), "{d:?}"),
            HeloName::Literal(l) => {
                let s = l.to_string();
                assert!(AddressLiteral::try_from(s.as_str()).is_ok(), "{l:?}");
            }
            HeloName::Nonstandard(n) => {
                let ok = postel_proto::types::NonstandardHelo::try_from(n.as_str()).is_ok();
                assert!(ok, "{n:?}");
            }
        },
        Command::Mail { from, params: p } => {
            if let Some(m) = from.mailbox() {
                mailbox(m);
            }
            if let Some(e) = &p.envid {
                assert!(XText::try_from(e.as_str()).is_ok(), "{e:?}");
            }
            if let Some(AuthParam::Identity(x)) = &p.auth {
                assert!(XText::try_from(x.as_str()).is_ok(), "{x:?}");
            }
            params(&p.other);
        }
        Command::Rcpt { to, params: p } => {
            if let ForwardPath::Mailbox(m) = to {
                mailbox(m);
            }
            if let Some(o) = &p.orcpt {
                let rebuilt = Orcpt::new(o.addr_type().to_owned(), o.address().clone());
                assert!(rebuilt.is_ok(), "{o:?}");
            }
            params(&p.other);
        }
        Command::Vrfy(t) | Command::Expn(t) | Command::Help(Some(t)) | Command::Noop(Some(t)) => {
            assert!(Text::try_from(t.as_str()).is_ok(), "{t:?}");
        }
        Command::Auth { mechanism, .. } => {
            assert!(
                Mechanism::try_from(mechanism.as_str()).is_ok(),
                "{mechanism:?}"
            );
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every value the parser hands out passes its type's validator, under
    /// every option set, for lines built from the terminals where the two
    /// could disagree: literals, long brackets, odd HELO names, xtext.
    #[test]
    fn parsed_values_pass_their_validators(
        verb in prop_oneof![
            Just("HELO "), Just("EHLO "), Just("LHLO "), Just("MAIL FROM:<a@"), Just("RCPT TO:<"),
            Just("VRFY "), Just("AUTH "), Just("MAIL FROM:<a@b.c> ENVID="),
            Just("RCPT TO:<a@b.c> ORCPT=rfc822;"), Just("MAIL FROM:<a@b.c> AUTH="),
        ],
        parts in prop::collection::vec(prop_oneof![
            Just("["), Just("]"), Just("IPv6:"), Just("Pv6:"), Just("x-tag:"), Just("92.0.2.1"),
            Just("444"), Just("::1"), Just("("), Just("((((((((((((((((((((((((((((((((((((((((("),
            Just("a"), Just("b.example"), Just("."), Just("-"), Just(":"), Just("_"), Just("@"),
            Just(">"), Just("<"), Just("\""), Just("\\"), Just("+2B"), Just("+0D"), Just("é"),
            Just(" "), Just("="), Just("X-P=1"), Just("Postmaster"),
        ], 0..60),
    ) {
        let line = format!("{verb}{}\r\n", parts.concat());
        parse_and_validate(&line);
    }

    /// General address literals of every length around the parser's limit,
    /// as HELO names and in paths.
    #[test]
    fn parsed_literals_pass_their_validators(
        verb in prop_oneof![Just("HELO "), Just("EHLO "), Just("RCPT TO:<a@")],
        tag in "[a-zA-Z0-9-]{1,8}",
        content in prop::collection::vec("[!-Z^-~]{1,60}", 0..10),
        close in prop_oneof![Just("]"), Just("]>"), Just("")],
    ) {
        parse_and_validate(&format!("{verb}[{tag}:{}{close}\r\n", content.concat()));
    }
}

fn parse_and_validate(line: &str) {
    let mut wide = ParserOptions::INTEROPERABLE;
    wide.limits.command_line = 4096;
    for opts in [ParserOptions::STRICT, ParserOptions::INTEROPERABLE, wide] {
        if let Ok(Status::Complete { value, .. }) = parse_command(line.as_bytes(), &opts) {
            assert_valid(&value);
        }
    }
}

/// What [`CommandReader`] must yield: the commands and errors of the whole
/// input parsed at once, an over-long line dropped up to its LF.
fn commands_of_whole(
    input: &[u8],
    opts: &ParserOptions,
) -> Vec<Result<postel_proto::types::Command<'static>, postel_proto::CommandError>> {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        match parse_command(rest, opts) {
            Ok(Status::Complete { value, consumed }) => {
                out.push(Ok(value.into_owned()));
                rest = &rest[consumed..];
            }
            Ok(Status::Incomplete) => break,
            Err(bad) => {
                out.push(Err(bad.error));
                let dropped = if bad.line_finished {
                    Some(0)
                } else {
                    postel_proto::framing::skip_line(&rest[bad.consumed..])
                };
                match dropped {
                    Some(n) => rest = &rest[bad.consumed + n..],
                    None => break,
                }
            }
        }
    }
    out
}

proptest! {
    /// The reader, fed in pieces of any size, yields what parsing the whole
    /// input yields: its search that skips a partial line's known octets
    /// changes nothing.
    #[test]
    fn the_reader_in_pieces_reads_like_the_whole(
        parts in prop::collection::vec(prop_oneof![
            Just("MAIL FROM:<a@b.example>"), Just("RCPT TO:<c@d.example> NOTIFY=NEVER"),
            Just("QUIT"), Just("NOOP"), Just("\r\n"), Just("\n"), Just("\r"), Just(" "),
            Just("x"), Just("DATA"), Just("é"),
        ], 0..60),
        long in prop::option::of(100usize..700),
        pieces in prop::collection::vec(1usize..40, 1..8),
    ) {
        let mut input = parts.concat().into_bytes();
        if let Some(n) = long {
            let at = input.len() / 2;
            input.splice(at..at, std::iter::repeat_n(b'y', n));
        }
        let opts = ParserOptions::STRICT;
        let expected = commands_of_whole(&input, &opts);
        let mut reader = CommandReader::new(opts);
        let mut got = Vec::new();
        let (mut pos, mut k) = (0, 0);
        while pos < input.len() {
            let n = pieces[k % pieces.len()].min(input.len() - pos);
            reader.feed(&input[pos..pos + n]);
            while let Some(c) = reader.next_command() {
                got.push(c.map(postel_proto::types::Command::into_owned));
            }
            pos += n;
            k += 1;
        }
        prop_assert_eq!(got, expected);
    }
}
