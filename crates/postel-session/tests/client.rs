//! The client against a scripted server that misbehaves as hostile or broken
//! MXs do: replies fed as bytes, what the client writes and reports compared
//! as bytes.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postel_proto::types::{
    BodyType, Domain, ForwardPath, MailParameters, Mailbox, Notify, Orcpt, RcptParameters, Reply,
    Ret, ReversePath, XText,
};
use postel_session::client::{
    Client, ClientConfig, ClientError, ClientEvent, Message, Outcome, RecipientResult, TlsPolicy,
};

fn message(to: &str) -> Message {
    Message {
        from: ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap()),
        params: MailParameters::default(),
        recipients: vec![(
            ForwardPath::Mailbox(Mailbox::try_from(to).unwrap().into_owned()),
            RcptParameters::default(),
        )],
        data: b"Subject: hi\r\n\r\nhello\r\n".to_vec().into(),
    }
}

fn client(tls: TlsPolicy) -> Client {
    let mut config = ClientConfig::new(Domain::try_from("out.example.org").unwrap());
    config.tls = tls;
    Client::new(config)
}

/// What the client did: every octet it wrote, its outcomes and failures.
#[derive(Default)]
struct Seen {
    wire: Vec<u8>,
    outcomes: Vec<Outcome>,
    failures: Vec<ClientError>,
    starttls: bool,
}

/// Feeds the server's `script` one reply at a time, collecting what the
/// client writes and reports.
fn run(client: &mut Client, script: &[&[u8]]) -> Seen {
    let mut seen = Seen::default();
    let drain = |client: &mut Client, seen: &mut Seen| {
        while let Some(event) = client.poll() {
            match event {
                ClientEvent::Delivered(o) => seen.outcomes.push(o),
                ClientEvent::Failed(e) => seen.failures.push(e),
                ClientEvent::StartTls => seen.starttls = true,
                _ => {}
            }
        }
        seen.wire.extend_from_slice(&client.transmit());
    };
    for reply in script {
        client.receive(reply);
        drain(client, &mut seen);
    }
    seen
}

fn only_result(seen: &Seen) -> &RecipientResult {
    assert_eq!(seen.outcomes.len(), 1, "one outcome");
    &seen.outcomes[0].recipients[0].1
}

fn bytes(reply: &Reply<'_>) -> Vec<u8> {
    reply.to_bytes()
}

const EHLO_TLS: &[u8] = b"250-mx.example.net\r\n250-PIPELINING\r\n250 STARTTLS\r\n";

/// RFC 3207: only 220 starts TLS. 421 to STARTTLS closes the session and the
/// mail waits; it must never go out in cleartext on that connection.
#[test]
fn starttls_answered_421_defers_and_sends_nothing_in_cleartext() {
    let mut c = client(TlsPolicy::Opportunistic);
    c.send(message("rcpt@example.net"));
    c.finish();
    let seen = run(
        &mut c,
        &[
            b"220 mx.example.net ESMTP\r\n",
            EHLO_TLS,
            b"421 4.3.2 Service shutting down\r\n",
        ],
    );
    assert_eq!(
        seen.wire, b"EHLO out.example.org\r\nSTARTTLS\r\n",
        "no MAIL after a 421"
    );
    let RecipientResult::Transient(r) = only_result(&seen) else {
        panic!("deferred")
    };
    assert_eq!(
        bytes(r),
        b"421 4.3.2 Service shutting down\r\n",
        "the MX's own reply"
    );
    assert!(matches!(seen.failures[..], [ClientError::TlsRefused(_)]));
    assert!(c.is_closed());
}

#[test]
fn starttls_answered_454_goes_on_in_cleartext_only_when_opportunistic() {
    let script: [&[u8]; 4] = [
        b"220 mx.example.net ESMTP\r\n",
        EHLO_TLS,
        b"454 4.7.0 TLS not available due to temporary reason\r\n",
        b"250 2.1.0 Ok\r\n",
    ];
    let mut c = client(TlsPolicy::Opportunistic);
    c.send(message("rcpt@example.net"));
    let seen = run(&mut c, &script);
    assert!(
        seen.wire.ends_with(
            b"STARTTLS\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n"
        ),
        "{}",
        String::from_utf8_lossy(&seen.wire)
    );
    let mut c = client(TlsPolicy::Required);
    c.send(message("rcpt@example.net"));
    let seen = run(&mut c, &script);
    assert_eq!(seen.wire, b"EHLO out.example.org\r\nSTARTTLS\r\n");
    assert!(matches!(only_result(&seen), RecipientResult::Transient(_)));
    // Any other refusal, even under opportunistic policy, ends the session.
    let mut c = client(TlsPolicy::Opportunistic);
    c.send(message("rcpt@example.net"));
    let seen = run(
        &mut c,
        &[
            b"220 mx.example.net ESMTP\r\n",
            EHLO_TLS,
            b"550 5.7.0 No\r\n",
        ],
    );
    assert_eq!(seen.wire, b"EHLO out.example.org\r\nSTARTTLS\r\n");
    let RecipientResult::Transient(r) = only_result(&seen) else {
        panic!("deferred, not bounced, for a TLS refusal")
    };
    assert_eq!(bytes(r), b"550 5.7.0 No\r\n");
}

/// A malformed reply is recorded as what it is, a local diagnosis, and never
/// as a 421 the MX did not send.
#[test]
fn a_malformed_reply_is_recorded_as_a_local_diagnosis() {
    let mut c = client(TlsPolicy::Opportunistic);
    c.send(message("rcpt@example.net"));
    let seen = run(
        &mut c,
        &[
            b"220 mx.example.net ESMTP\r\n",
            b"25O-mx.example.net\r\n250 OK\r\n",
        ],
    );
    let RecipientResult::Transient(r) = only_result(&seen) else {
        panic!("deferred")
    };
    assert_eq!(
        bytes(r),
        b"451 4.5.0 Protocol error: malformed reply (invalid reply code)\r\n"
    );
    assert!(seen.failures[0].is_local());
}

/// A server that never ends its EHLO reply is cut off at the cap: the client
/// holds at most the cap, however the flood is split.
#[test]
fn a_reply_flood_is_refused_within_the_cap() {
    for piece in [1usize, 7, 4096] {
        let mut c = client(TlsPolicy::Opportunistic);
        c.send(message("rcpt@example.net"));
        let mut seen = run(&mut c, &[b"220 mx.example.net ESMTP\r\n"]);
        let flood =
            b"250-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
                .repeat(16 << 20 >> 7);
        let mut fed = 0;
        for chunk in flood.chunks(piece) {
            if c.is_closed() {
                break;
            }
            c.receive(chunk);
            fed += chunk.len();
            while let Some(event) = c.poll() {
                if let ClientEvent::Failed(e) = event {
                    seen.failures.push(e);
                }
            }
        }
        assert!(
            matches!(
                seen.failures[..],
                [ClientError::ReplyTooLong {
                    octets: 65536,
                    lines: 256
                }]
            ),
            "{:?}",
            seen.failures
        );
        assert!(
            fed <= 64 * 1024 + piece,
            "{fed} octets read before giving up"
        );
    }
    // A single line without end: the reply line limit.
    let mut c = client(TlsPolicy::Opportunistic);
    c.send(message("rcpt@example.net"));
    let endless = vec![b'2'; 100_000];
    let seen = run(&mut c, &[b"220 mx.example.net ESMTP\r\n", &endless]);
    assert!(matches!(seen.failures[..], [ClientError::Protocol(_)]));
}

fn dsn_message() -> Message {
    let mut m = message("rcpt@example.net");
    m.params.ret = Some(Ret::Hdrs);
    m.params.envid = Some(XText::try_from("QQ314159").unwrap());
    m.params.body = Some(BodyType::EightBitMime);
    let mut r = RcptParameters::default();
    r.notify = Some(Notify {
        success: true,
        failure: true,
        delay: false,
    });
    r.orcpt = Some(Orcpt::new("rfc822", XText::try_from("rcpt@example.net").unwrap()).unwrap());
    m.recipients[0].1 = r;
    m
}

/// RFC 3461 section 5.2 and RFC 6152: parameters the server did not
/// advertise are not sent; with them advertised they are.
#[test]
fn parameters_follow_what_the_server_advertised() {
    let mut c = client(TlsPolicy::Never);
    c.send(dsn_message());
    let seen = run(
        &mut c,
        &[
            b"220 mx.example.net ESMTP\r\n",
            b"250-mx.example.net\r\n250 PIPELINING\r\n",
        ],
    );
    assert_eq!(
        seen.wire,
        b"EHLO out.example.org\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n"
    );
    let mut c = client(TlsPolicy::Never);
    c.send(dsn_message());
    let seen = run(
        &mut c,
        &[
            b"220 mx.example.net ESMTP\r\n",
            b"250-mx.example.net\r\n250-PIPELINING\r\n250-DSN\r\n250 8BITMIME\r\n",
        ],
    );
    assert_eq!(
        seen.wire,
        b"EHLO out.example.org\r\nMAIL FROM:<sender@example.org> BODY=8BITMIME RET=HDRS ENVID=QQ314159\r\nRCPT TO:<rcpt@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;rcpt@example.net\r\nDATA\r\n"
    );
}

/// RFC 6531 section 3.2: a message that needs SMTPUTF8 is not sent to a
/// server without it, and bounces with 5.6.7; an all-ASCII one goes without
/// the parameter.
#[test]
fn a_message_that_needs_smtputf8_bounces_where_it_is_not_offered() {
    let ehlo: &[u8] = b"250-mx.example.net\r\n250 PIPELINING\r\n";
    let mut m = message("用户@example.net");
    m.params.smtputf8 = true;
    let mut c = client(TlsPolicy::Never);
    c.send(m);
    let seen = run(&mut c, &[b"220 mx.example.net ESMTP\r\n", ehlo]);
    assert_eq!(seen.wire, b"EHLO out.example.org\r\n", "no MAIL");
    let RecipientResult::Permanent(r) = only_result(&seen) else {
        panic!("bounced")
    };
    assert_eq!(
        bytes(r),
        b"553 5.6.7 The message needs SMTPUTF8, which the server does not offer\r\n"
    );
    let mut m = message("rcpt@example.net");
    m.params.smtputf8 = true;
    let mut c = client(TlsPolicy::Never);
    c.send(m);
    let seen = run(&mut c, &[b"220 mx.example.net ESMTP\r\n", ehlo]);
    assert!(
        seen.wire
            .ends_with(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n")
    );
}

/// RFC 5321 section 5.1: a server that greets with this host's own name is
/// this host; the mail would loop, so it bounces with 5.4.6, unsent.
#[test]
fn a_server_with_our_own_name_is_a_loop() {
    for script in [
        [&b"220 out.example.org ESMTP\r\n"[..], b""],
        [
            b"220 mx.example.net ESMTP\r\n",
            b"250-OUT.example.org\r\n250 PIPELINING\r\n",
        ],
    ] {
        let mut c = client(TlsPolicy::Never);
        c.send(message("rcpt@example.net"));
        let seen = run(&mut c, &script);
        assert!(!seen.wire.windows(4).any(|w| w == b"MAIL"));
        let RecipientResult::Permanent(r) = only_result(&seen) else {
            panic!("bounced")
        };
        assert!(
            bytes(r).starts_with(b"554 5.4.6 Mail for this destination loops back to myself (")
        );
        assert!(matches!(seen.failures[..], [ClientError::LoopsBack(_)]));
    }
}

/// A session that breaks while a later message is under way reports that
/// message under its own index, once (it used to be reported as the next).
#[test]
fn a_failure_mid_message_reports_the_message_under_its_own_index() {
    let mut c = client(TlsPolicy::Never);
    c.send(message("one@example.net"));
    c.send(message("two@example.net"));
    let seen = run(
        &mut c,
        &[
            b"220 mx.example.net ESMTP\r\n",
            b"250-mx.example.net\r\n250 PIPELINING\r\n",
            b"250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 queued\r\n",
            b"25X broken\r\n",
        ],
    );
    let indices: Vec<usize> = seen.outcomes.iter().map(|o| o.message).collect();
    assert_eq!(indices, [0, 1]);
    assert!(matches!(
        seen.outcomes[0].recipients[0].1,
        RecipientResult::Delivered(_)
    ));
    assert!(matches!(
        seen.outcomes[1].recipients[0].1,
        RecipientResult::Transient(_)
    ));
}

/// An LMTP server's greeting, LHLO reply, and the pipelined replies to MAIL,
/// two RCPTs and DATA.
const LMTP_UP_TO_DATA: &[u8] =
    b"220 foo.edu LMTP server ready\r\n250-foo.edu\r\n250 PIPELINING\r\n\
250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n";

fn lmtp_client() -> Client {
    let mut config = ClientConfig::new(Domain::try_from("out.example.org").unwrap());
    config.tls = TlsPolicy::Never;
    config.lmtp = true;
    Client::new(config)
}

fn two_recipients() -> Message {
    let mut m = message("pat@foo.edu");
    m.recipients.push((
        ForwardPath::Mailbox(Mailbox::try_from("green@foo.edu").unwrap()),
        RcptParameters::default(),
    ));
    m
}

/// RFC 2033: LHLO, and after the message one reply per accepted recipient,
/// each its recipient's result.
#[test]
fn lmtp_gives_each_recipient_its_own_reply_after_the_message() {
    let mut c = lmtp_client();
    c.send(two_recipients());
    let seen = run(
        &mut c,
        &[
            LMTP_UP_TO_DATA,
            b"250 2.0.0 delivered\r\n452 4.2.2 <green@foo.edu> is temporarily over quota\r\n",
        ],
    );
    assert!(seen.wire.starts_with(b"LHLO out.example.org\r\n"));
    let results = &seen.outcomes[0].recipients;
    assert!(matches!(&results[0].1, RecipientResult::Delivered(_)));
    let RecipientResult::Transient(r) = &results[1].1 else {
        panic!("{results:?}")
    };
    assert_eq!(
        bytes(r),
        b"452 4.2.2 <green@foo.edu> is temporarily over quota\r\n"
    );
}

/// A connection lost half way through the replies after the message: the
/// recipients answered keep their reply, the rest are transient.
#[test]
fn lmtp_replies_cut_short_leave_the_rest_transient() {
    let mut c = lmtp_client();
    c.send(two_recipients());
    let seen = run(
        &mut c,
        &[
            LMTP_UP_TO_DATA,
            b"250 2.0.0 delivered\r\n",
            b"garbage instead of the second reply\r\n",
        ],
    );
    let results = &seen.outcomes[0].recipients;
    assert_eq!(seen.outcomes.len(), 1);
    assert!(
        matches!(&results[0].1, RecipientResult::Delivered(_)),
        "{results:?}"
    );
    assert!(
        matches!(&results[1].1, RecipientResult::Transient(_)),
        "{results:?}"
    );
}

/// RFC 8689 section 4.2.1: a REQUIRETLS message goes only over TLS to a
/// server that advertises REQUIRETLS; anywhere else it is not sent and
/// bounces with 5.7.30, never sent without the parameter.
#[test]
fn a_requiretls_message_goes_only_over_tls_to_a_server_that_offers_it() {
    let mut m = message("rcpt@example.net");
    m.params.requiretls = true;
    let refused =
        b"550 5.7.30 REQUIRETLS support required: the server does not offer it over TLS\r\n";
    // In cleartext, even where advertised.
    let mut c = client(TlsPolicy::Never);
    c.send(m.clone());
    let seen = run(
        &mut c,
        &[
            b"220 mx.example.net ESMTP\r\n",
            b"250-mx.example.net\r\n250-PIPELINING\r\n250 REQUIRETLS\r\n",
        ],
    );
    assert_eq!(seen.wire, b"EHLO out.example.org\r\n", "no MAIL");
    let RecipientResult::Permanent(r) = only_result(&seen) else {
        panic!("bounced")
    };
    assert_eq!(bytes(r), refused);
    // Over TLS to a server without it.
    let mut c = client(TlsPolicy::Required);
    c.send(m.clone());
    let mut seen = run(
        &mut c,
        &[
            b"220 mx.example.net ESMTP\r\n",
            EHLO_TLS,
            b"220 Go ahead\r\n",
        ],
    );
    assert!(seen.starttls);
    c.tls_established();
    let after = run(&mut c, &[b"250-mx.example.net\r\n250 PIPELINING\r\n"]);
    seen.wire.extend_from_slice(&after.wire);
    assert!(
        !String::from_utf8_lossy(&seen.wire).contains("MAIL"),
        "no MAIL"
    );
    let RecipientResult::Permanent(r) = only_result(&after) else {
        panic!("bounced")
    };
    assert_eq!(bytes(r), refused);
    // Over TLS to a server that offers it: sent with the parameter.
    let mut c = client(TlsPolicy::Required);
    c.send(m);
    let _ = run(
        &mut c,
        &[
            b"220 mx.example.net ESMTP\r\n",
            EHLO_TLS,
            b"220 Go ahead\r\n",
        ],
    );
    c.tls_established();
    let after = run(
        &mut c,
        &[b"250-mx.example.net\r\n250-PIPELINING\r\n250 REQUIRETLS\r\n"],
    );
    assert!(
        after
            .wire
            .starts_with(b"EHLO out.example.org\r\nMAIL FROM:<sender@example.org> REQUIRETLS\r\n"),
        "{}",
        String::from_utf8_lossy(&after.wire)
    );
}
