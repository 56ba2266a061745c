//! The retry schedule's bounds as properties, and DSNs read back by a MIME
//! parser.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mail_parser::{MessageParser, MimeHeaders};
use postel_proto::types::{EnhancedStatus, Mailbox, Notify, Reply, ReplyCode, ReversePath};
use postel_queue::dsn::{Action, Dsn, DsnRecipient, NoDsn, notify_wants, rfc5322_date};
use postel_queue::schedule::{NextStep, RetrySchedule};
use proptest::prelude::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

proptest! {
    #[test]
    fn retry_is_within_bounds_and_never_past_expiry(
        arrived in 0u64..4_000_000_000,
        age in 0u64..(6 * 24 * 3600),
        random in 0.0f64..1.0,
    ) {
        let s = RetrySchedule::default();
        let (arrived, now) = (at(arrived), at(arrived + age));
        match s.next_attempt(arrived, now, random) {
            NextStep::Expire => prop_assert!(now >= s.expiry(arrived)),
            NextStep::RetryAt(next) => {
                prop_assert!(next <= s.expiry(arrived), "never past expiry");
                prop_assert!(next <= now + s.max_backoff, "never later than the maximum");
                prop_assert!(next >= (now + s.min_backoff).min(s.expiry(arrived)), "never earlier than the minimum");
            }
        }
    }
}

#[test]
fn backoff_follows_the_age_of_the_message() {
    let mut s = RetrySchedule::default();
    s.jitter = 0.0;
    let arrived = at(1_000_000);
    let next = |age: u64| match s.next_attempt(arrived, at(1_000_000 + age), 0.5) {
        NextStep::RetryAt(t) => t.duration_since(at(1_000_000 + age)).unwrap().as_secs(),
        NextStep::Expire => u64::MAX,
    };
    assert_eq!(next(10), 300, "minimum");
    assert_eq!(next(1000), 1000, "the age");
    assert_eq!(next(100_000), 4000, "maximum");
    assert_eq!(next(5 * 24 * 3600), u64::MAX, "expired after 5 days");
    assert_eq!(
        next(5 * 24 * 3600 - 100),
        100,
        "the last retry lands on the expiry"
    );
}

#[test]
fn delay_warnings_are_sent_once_when_configured() {
    let mut s = RetrySchedule::default();
    assert!(
        !s.delay_warning_due(at(0), at(100_000), false),
        "off by default"
    );
    s.delay_warning = Some(Duration::from_secs(4 * 3600));
    assert!(!s.delay_warning_due(at(0), at(3600), false));
    assert!(s.delay_warning_due(at(0), at(5 * 3600), false));
    assert!(!s.delay_warning_due(at(0), at(5 * 3600), true));
}

#[test]
fn dates_follow_rfc5322() {
    assert_eq!(rfc5322_date(at(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
    // Checked against `date -u -R -d @SECONDS`.
    assert_eq!(
        rfc5322_date(at(1_795_454_100)),
        "Mon, 23 Nov 2026 17:15:00 +0000"
    );
    assert_eq!(
        rfc5322_date(at(951_782_400)),
        "Tue, 29 Feb 2000 00:00:00 +0000"
    );
}

#[test]
fn notify_decides_who_hears() {
    let never = Some(Notify::NEVER);
    let success = Some(Notify {
        success: true,
        failure: false,
        delay: false,
    });
    assert!(notify_wants(None, Action::Failed) && !notify_wants(None, Action::Delivered));
    assert!(!notify_wants(never, Action::Failed));
    assert!(notify_wants(success, Action::Delivered) && !notify_wants(success, Action::Failed));
}

fn sample<'a>(
    return_path: &'a ReversePath<'static>,
    recipients: &'a [DsnRecipient],
    original: &'a [u8],
    headers_only: bool,
) -> Dsn<'a> {
    Dsn {
        reporting_mta: "mx.example.org",
        return_path,
        envelope_id: Some("QQ314159"),
        arrival: at(1_795_450_000),
        recipients,
        original,
        headers_only,
        now: at(1_795_454_100),
        boundary: "postel-boundary-1234",
    }
}

#[test]
fn bounce_reads_back_as_a_multipart_report() {
    let from = ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap());
    let reply = Reply::new(
        ReplyCode::try_from(550).unwrap(),
        EnhancedStatus::new(5, 1, 1),
        "No such user",
    )
    .unwrap();
    let recipients = [DsnRecipient {
        final_recipient: "gone@example.net".into(),
        original_recipient: Some("rfc822;Gone@example.net".into()),
        action: Action::Failed,
        status: EnhancedStatus::new(5, 1, 1).unwrap(),
        diagnostic: Some(reply),
        remote_mta: Some("mx.example.net".into()),
        last_attempt: Some(at(1_795_454_000)),
    }];
    let original = b"Subject: hello\r\nFrom: sender@example.org\r\n\r\nthe body\r\n";
    let bytes = sample(&from, &recipients, original, false)
        .to_message()
        .unwrap();
    let parsed = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("Undelivered Mail Returned to Sender")
    );
    let ct = parsed.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert_eq!(parsed.parts.len(), 4, "the multipart and its three parts");
    let status = String::from_utf8_lossy(parsed.parts[2].contents());
    for field in [
        "Reporting-MTA: dns; mx.example.org",
        "Original-Envelope-Id: QQ314159",
        "Original-Recipient: rfc822;Gone@example.net",
        "Final-Recipient: rfc822; gone@example.net",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx.example.net",
        "Diagnostic-Code: smtp; 550 5.1.1 No such user",
        "Last-Attempt-Date: Mon, 23 Nov 2026 17:13:20 +0000",
    ] {
        assert!(status.contains(field), "{field} in {status}");
    }
    let returned = String::from_utf8_lossy(parsed.parts[3].contents());
    assert!(
        returned.contains("the body"),
        "RET=FULL returns the message: {returned}"
    );

    let bytes = sample(&from, &recipients, original, true)
        .to_message()
        .unwrap();
    let parsed = MessageParser::default().parse(&bytes).unwrap();
    let returned = String::from_utf8_lossy(parsed.parts[3].contents());
    assert!(
        returned.contains("Subject: hello") && !returned.contains("the body"),
        "RET=HDRS: {returned}"
    );
}

#[test]
fn no_bounce_for_the_null_sender() {
    let recipients = [DsnRecipient {
        final_recipient: "x@example.net".into(),
        original_recipient: None,
        action: Action::Failed,
        status: EnhancedStatus::new(5, 0, 0).unwrap(),
        diagnostic: None,
        remote_mta: None,
        last_attempt: None,
    }];
    assert_eq!(
        sample(&ReversePath::Null, &recipients, b"", false).to_message(),
        Err(NoDsn::NullSender)
    );
    let from = ReversePath::Mailbox(Mailbox::try_from("s@example.org").unwrap());
    assert_eq!(
        sample(&from, &[], b"", false).to_message(),
        Err(NoDsn::NotRequested)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any set of recipients, statuses, diagnostics and original message
    /// comes back out of a MIME parser: one per-recipient block each, with
    /// its fields, and the original message intact.
    #[test]
    fn dsn_round_trips_through_a_mime_parser(
        rcpts in proptest::collection::vec(
            ("[a-z][a-z0-9.]{0,12}", "[a-z]{1,10}", 4u8..=5, 0u16..8, 0u16..20, "[A-Za-z ]{1,40}", proptest::option::of("[a-z]{1,8}")),
            1..6,
        ),
        envid in proptest::option::of("[A-Za-z0-9]{1,20}"),
        body_lines in proptest::collection::vec("[ -~]{0,70}", 0..20),
        headers_only in proptest::bool::ANY,
    ) {
        let from = ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap());
        let recipients: Vec<DsnRecipient> = rcpts
            .iter()
            .map(|(local, domain, class, subject, detail, text, remote)| {
                let status = EnhancedStatus::new(*class, *subject, *detail).unwrap();
                let code = if *class == 4 { 451 } else { 550 };
                DsnRecipient {
                    final_recipient: format!("{local}@{domain}.example"),
                    original_recipient: Some(format!("rfc822;{local}@{domain}.example")),
                    action: Action::Failed,
                    status,
                    diagnostic: Some(
                        Reply::new(ReplyCode::try_from(code).unwrap(), Some(status), text.trim().to_owned() + ".")
                            .unwrap(),
                    ),
                    remote_mta: remote.as_ref().map(|r| format!("{r}.example")),
                    last_attempt: Some(at(1_795_454_000)),
                }
            })
            .collect();
        let mut original = b"Subject: original\r\nFrom: sender@example.org\r\n\r\n".to_vec();
        for line in &body_lines {
            original.extend_from_slice(line.as_bytes());
            original.extend_from_slice(b"\r\n");
        }
        let mut dsn = sample(&from, &recipients, &original, headers_only);
        dsn.envelope_id = envid.as_deref();
        let bytes = dsn.to_message().unwrap();
        let parsed = MessageParser::default().parse(&bytes).unwrap();
        let ct = parsed.content_type().unwrap();
        prop_assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
        prop_assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        prop_assert_eq!(parsed.parts.len(), 4);
        let raw_status = parsed.parts[2].contents();
        // RFC 3464: the status part is 7-bit text in lines of at most 998
        // octets; long fields are folded.
        prop_assert!(raw_status.is_ascii());
        prop_assert!(raw_status.split(|&b| b == b'\n').all(|l| l.len() <= 998));
        let status = String::from_utf8_lossy(raw_status).replace("\r\n ", " ");
        if let Some(id) = &envid {
            let line = format!("Original-Envelope-Id: {id}");
            prop_assert!(status.contains(&line));
        }
        // One block per recipient after the per-message block.
        let blocks: Vec<&str> = status.split("\r\n\r\n").filter(|b| !b.trim().is_empty()).collect();
        prop_assert_eq!(blocks.len(), recipients.len() + 1, "{}", status);
        for (block, r) in blocks[1..].iter().zip(&recipients) {
            let final_line = format!("Final-Recipient: rfc822; {}", r.final_recipient);
            let status_line = format!("Status: {}", r.status);
            let diag_line = format!("Diagnostic-Code: smtp; {}", r.diagnostic.as_ref().unwrap());
            prop_assert!(block.contains(&final_line), "{}", block);
            prop_assert!(block.contains("Action: failed"));
            prop_assert!(block.contains(&status_line), "{}", block);
            prop_assert!(block.contains(&diag_line), "{}", block);
            if let Some(remote) = &r.remote_mta {
                let remote_line = format!("Remote-MTA: dns; {remote}");
                prop_assert!(block.contains(&remote_line));
            }
        }
        let returned = parsed.parts[3].contents();
        if headers_only {
            prop_assert!(String::from_utf8_lossy(returned).contains("Subject: original"));
        } else {
            prop_assert_eq!(returned, &original[..]);
        }
    }
}

#[test]
fn delay_warning_names_the_pending_recipients_only() {
    use postel_proto::types::{BodyType, ForwardPath};
    use postel_queue::model::{
        Arrival, Message, NewMessage, NewRecipient, QueueId, Recipient, RecipientState,
    };
    let rcpt = |a: &'static str, state, notify| Recipient {
        address: ForwardPath::Mailbox(Mailbox::try_from(a).unwrap()),
        orcpt: None,
        notify,
        state,
        attempts: 3,
        last_attempt: Some(at(1_795_454_000)),
        next_attempt: at(1_795_455_000),
        last_result: None,
    };
    let never = Notify::NEVER;
    let recipients = vec![
        rcpt("waiting@example.net", RecipientState::Pending, None),
        rcpt("done@example.net", RecipientState::Delivered, None),
        rcpt("quiet@example.net", RecipientState::Pending, Some(never)),
    ];
    let message = Message {
        id: QueueId::new(at(1_795_450_000), 1),
        envelope: NewMessage {
            return_path: ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap()),
            envid: None,
            ret: None,
            body_type: BodyType::SevenBit,
            smtputf8: false,
            requiretls: false,
            arrival: Arrival::default(),
            recipients: recipients
                .iter()
                .map(|r| NewRecipient {
                    address: r.address.clone(),
                    orcpt: None,
                    notify: r.notify,
                })
                .collect(),
        },
        created: at(1_795_450_000),
        expires: at(1_795_450_000 + 5 * 86400),
        held: false,
        warned: false,
        recipients,
    };
    let body = b"Subject: slow\r\n\r\nthe body stays home\r\n";
    let (envelope, bytes) =
        postel_queue::delay_warning(&message, body, "mx.example.org", at(1_795_464_400), "b-1")
            .unwrap();
    assert_eq!(envelope.return_path, ReversePath::Null);
    let parsed = MessageParser::default().parse(&bytes).unwrap();
    assert_eq!(parsed.subject(), Some("Delayed Mail (still being retried)"));
    let status = String::from_utf8_lossy(parsed.parts[2].contents()).into_owned();
    assert!(status.contains("Final-Recipient: rfc822; waiting@example.net"));
    assert!(status.contains("Action: delayed") && status.contains("Status: 4.0.0"));
    assert!(!status.contains("done@example.net") && !status.contains("quiet@example.net"));
    let returned = String::from_utf8_lossy(parsed.parts[3].contents());
    assert!(returned.contains("Subject: slow") && !returned.contains("the body stays home"));
}

/// The status part of a DSN, as its octets.
fn status_part(dsn: &Dsn<'_>) -> String {
    let bytes = dsn.to_message().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let start = text.find("Reporting-MTA:").unwrap();
    let end = text[start..].find("\r\n--postel-boundary-1234").unwrap();
    text[start..start + end].to_owned()
}

fn failed(final_recipient: &str, orcpt: Option<&str>, diagnostic: Reply<'static>) -> DsnRecipient {
    DsnRecipient {
        final_recipient: final_recipient.into(),
        original_recipient: orcpt.map(Into::into),
        action: Action::Failed,
        status: EnhancedStatus::new(5, 0, 0).unwrap(),
        diagnostic: Some(diagnostic),
        remote_mta: None,
        last_attempt: None,
    }
}

/// A multiline reply becomes one Diagnostic-Code field, folded into lines
/// of at most 78 octets instead of one line of thousands (RFC 5322 allows 998).
#[test]
fn a_long_multiline_diagnostic_is_folded() {
    let from = ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap());
    let lines: Vec<std::borrow::Cow<'static, str>> = (0..3)
        .map(|i| format!("line {i} of a rather long refusal from the far side").into())
        .collect();
    let reply = Reply::multiline(
        ReplyCode::try_from(550).unwrap(),
        EnhancedStatus::new(5, 7, 1),
        lines,
    )
    .unwrap();
    let recipients = [failed("gone@example.net", None, reply)];
    let status = status_part(&sample(&from, &recipients, b"Subject: x\r\n\r\n", true));
    assert!(
        status.contains(
            "Diagnostic-Code: smtp; 550 5.7.1 line 0 of a rather long refusal from the far\r\n \
side line 1 of a rather long refusal from the far side line 2 of a rather\r\n \
long refusal from the far side\r\n"
        ),
        "{status}"
    );
    let long = Reply::multiline(
        ReplyCode::try_from(550).unwrap(),
        None,
        (0..60)
            .map(|i| format!("{i:03} {}", "x".repeat(90)).into())
            .collect(),
    )
    .unwrap();
    let recipients = [failed("gone@example.net", None, long)];
    let bytes = sample(&from, &recipients, b"Subject: x\r\n\r\n", true)
        .to_message()
        .unwrap();
    assert!(bytes.split(|&b| b == b'\n').all(|l| l.len() <= 998));
}

/// Control characters in a value (an ENVID or ORCPT that decoded to CR LF)
/// cannot add fields to the report; they are written as xtext.
#[test]
fn control_characters_cannot_add_fields_to_a_report() {
    let from = ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap());
    let reply = Reply::new(ReplyCode::try_from(550).unwrap(), None, "no").unwrap();
    let recipients = [failed(
        "gone@example.net",
        Some("rfc822;a+0D+0AAction:+20delivered@x"),
        reply,
    )];
    let mut dsn = sample(&from, &recipients, b"Subject: x\r\n\r\n", true);
    dsn.envelope_id = Some("id\r\nSubject: forged");
    assert_eq!(
        status_part(&dsn),
        "Reporting-MTA: dns; mx.example.org\r\nOriginal-Envelope-Id: id+0D+0ASubject: forged\r\n\
Arrival-Date: Mon, 23 Nov 2026 16:06:40 +0000\r\n\r\nOriginal-Recipient: rfc822;a+0D+0AAction: delivered@x\r\n\
Final-Recipient: rfc822; gone@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: smtp; 550 no\r\n"
    );
}

/// RFC 6533: a UTF-8 recipient is reported in message/global-delivery-status
/// with the utf-8 address type; an ASCII one keeps the 7-bit type.
#[test]
fn a_utf8_recipient_is_reported_in_a_global_delivery_status() {
    let from = ReversePath::Mailbox(Mailbox::try_from("sender@example.org").unwrap());
    let reply = Reply::new(ReplyCode::try_from(550).unwrap(), None, "no").unwrap();
    let recipients = [failed("用户@example.net", None, reply.clone())];
    let bytes = sample(&from, &recipients, b"Subject: x\r\n\r\n", true)
        .to_message()
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
    assert!(text.contains("Final-Recipient: utf-8; 用户@example.net\r\n"));
    let recipients = [failed("user@example.net", None, reply)];
    let bytes = sample(&from, &recipients, b"Subject: x\r\n\r\n", true)
        .to_message()
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("Content-Type: message/delivery-status\r\n"));
}
