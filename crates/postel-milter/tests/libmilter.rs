//! The session against the real libmilter (Debian's pymilter running
//! `postel-testkit`'s test filter), over a blocking socket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use postel_milter::{
    Actions, Change, ConnectAddress, EndOfMessage, Event, Milter, Offer, Step, Steps, Verdict,
};
use postel_testkit::PyMilter;

/// Sends what is queued and reads until the filter has answered.
fn answer(milter: &mut Milter, socket: &mut TcpStream) -> Event {
    socket.write_all(&milter.transmit()).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match milter.poll().unwrap() {
            Some(Event::Progress) | None => {}
            Some(event) => return event,
        }
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "the filter closed the connection");
        milter.receive(&buf[..n]);
    }
}

fn step(milter: &mut Milter, socket: &mut TcpStream, step: Step) -> Verdict {
    match step {
        Step::Done(v) => v,
        Step::Wait => match answer(milter, socket) {
            Event::Verdict(v) => v,
            other => panic!("not a verdict: {other:?}"),
        },
    }
}

fn open(behaviour: &str) -> Option<(PyMilter, Milter, TcpStream)> {
    let filter = PyMilter::start(behaviour)?;
    let mut socket = TcpStream::connect(filter.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut milter = Milter::new(Offer::default());
    assert_eq!(answer(&mut milter, &mut socket), Event::Negotiated);
    Some((filter, milter, socket))
}

const MESSAGE: &[u8] =
    b"Subject: hello\r\nX-Remove: me\r\nFrom: <alice@a.test>\r\n\r\nBody line\r\n";

/// One message through the filter: its verdict at the end.
fn message(milter: &mut Milter, socket: &mut TcpStream, body: &[u8]) -> EndOfMessage {
    let client = ConnectAddress::Inet("127.0.0.1:40000".parse().unwrap());
    let macros = [("j", "mx.a.test"), ("{daemon_name}", "postel")];
    let s = milter.connect("localhost", &client, &macros).unwrap();
    assert_eq!(step(milter, socket, s), Verdict::Continue);
    let s = milter.helo("client.a.test", &[]).unwrap();
    assert_eq!(step(milter, socket, s), Verdict::Continue);
    let s = milter
        .mail(
            &["<alice@a.test>", "SIZE=100"],
            &[("i", "QID1"), ("{mail_addr}", "alice@a.test")],
        )
        .unwrap();
    assert_eq!(step(milter, socket, s), Verdict::Continue);
    let s = milter
        .rcpt(&["<bob@a.test>"], &[("{rcpt_addr}", "bob@a.test")])
        .unwrap();
    assert_eq!(step(milter, socket, s), Verdict::Continue);
    let s = milter.data(&[]).unwrap();
    assert_eq!(step(milter, socket, s), Verdict::Continue);
    let parsed = postel_milter::edit::Message::parse(body);
    for f in parsed.fields() {
        let s = milter.header(&f.name, &f.value).unwrap();
        assert_eq!(step(milter, socket, s), Verdict::Continue);
    }
    let s = milter.end_of_headers(&[]).unwrap();
    assert_eq!(step(milter, socket, s), Verdict::Continue);
    let mut rest = parsed.body();
    while !rest.is_empty() {
        let (s, used) = milter.body(rest).unwrap();
        rest = &rest[used..];
        assert_eq!(step(milter, socket, s), Verdict::Continue);
    }
    assert_eq!(milter.end_of_message(&[("i", "QID1")]).unwrap(), Step::Wait);
    match answer(milter, socket) {
        Event::EndOfMessage(end) => end,
        other => panic!("not the end of the message: {other:?}"),
    }
}

#[test]
fn libmilter_sees_every_event_with_its_macros() {
    let Some((filter, mut milter, mut socket)) = open("record") else {
        return;
    };
    let end = message(&mut milter, &mut socket, MESSAGE);
    assert_eq!(end.verdict, Verdict::Accept);
    assert!(end.changes.is_empty() && end.body.is_none());
    // An unknown command, refused by the filter with its own reply.
    let s = milter.unknown(b"XYZZY now").unwrap();
    let Verdict::Reply(r) = step(&mut milter, &mut socket, s) else {
        panic!("not the filter's reply")
    };
    assert_eq!(r.to_string(), "502 5.5.2 Unknown to the filter too");
    // The next SMTP session on the same connection (QUIT-NC).
    milter.restart().unwrap();
    assert_eq!(
        message(&mut milter, &mut socket, MESSAGE).verdict,
        Verdict::Accept
    );
    // A transaction given up (RSET) after its recipient: ABORT.
    let s = milter.mail(&["<carol@a.test>"], &[]).unwrap();
    assert_eq!(step(&mut milter, &mut socket, s), Verdict::Continue);
    let s = milter.rcpt(&["<bob@a.test>"], &[]).unwrap();
    assert_eq!(step(&mut milter, &mut socket, s), Verdict::Continue);
    milter.abort().unwrap();
    milter.quit();
    socket.write_all(&milter.transmit()).unwrap();
    drop(socket);
    std::thread::sleep(Duration::from_millis(300));
    let events = filter.events().join("\n");
    for expected in [
        r#""event": "connect", "args": ["localhost", "127.0.0.1"], "macros": {"j": "mx.a.test", "{daemon_name}": "postel"}"#,
        r#""event": "hello", "args": ["client.a.test"]"#,
        r#""event": "envfrom", "args": ["<alice@a.test>", "SIZE=100"], "macros": {"i": "QID1", "{mail_addr}": "alice@a.test"}"#,
        r#""event": "envrcpt", "args": ["<bob@a.test>"], "macros": {"{rcpt_addr}": "bob@a.test"}"#,
        r#""event": "header", "args": ["Subject", "hello"]"#,
        r#""event": "eom", "args": ["Body line\r\n"], "macros": {"i": "QID1"}"#,
        r#""event": "unknown", "args": ["XYZZY now"]"#,
        r#""event": "envfrom", "args": ["<carol@a.test>"]"#,
        r#"{"event": "envrcpt", "args": ["<bob@a.test>"], "macros": {}}
{"event": "abort""#,
        r#""event": "close""#,
    ] {
        assert!(events.contains(expected), "{expected}\nnot in\n{events}");
    }
}

#[test]
fn libmilter_changes_come_back_in_order() {
    let Some((_filter, mut milter, mut socket)) = open("headers") else {
        return;
    };
    let end = message(&mut milter, &mut socket, MESSAGE);
    assert_eq!(
        end.changes,
        vec![
            Change::AddHeader {
                name: "X-Added".into(),
                value: "at the end".into()
            },
            Change::InsertHeader {
                index: 0,
                name: "X-Inserted".into(),
                value: "at the top".into()
            },
            Change::ChangeHeader {
                index: 1,
                name: "Subject".into(),
                value: "changed subject".into()
            },
            Change::ChangeHeader {
                index: 1,
                name: "X-Remove".into(),
                value: String::new()
            },
            Change::AddHeader {
                name: "X-Folded".into(),
                value: "first\n\tsecond".into()
            },
        ]
    );
    let mut edited = postel_milter::edit::Message::parse(MESSAGE);
    for c in &end.changes {
        edited.apply(c);
    }
    assert_eq!(
        String::from_utf8(edited.to_bytes()).unwrap(),
        "X-Inserted: at the top\r\nSubject: changed subject\r\nFrom: <alice@a.test>\r\n\
X-Added: at the end\r\nX-Folded: first\r\n\tsecond\r\n\r\nBody line\r\n"
    );
}

#[test]
fn libmilter_asks_for_fewer_events_and_gets_them() {
    let Some((filter, mut milter, mut socket)) = open("fewer") else {
        return;
    };
    let steps = milter.negotiated().unwrap().steps;
    assert!(
        steps.contains(Steps::NO_HELO | Steps::NO_HEADERS | Steps::NO_REPLY_RCPT),
        "{steps:?}"
    );
    assert!(
        milter
            .negotiated()
            .unwrap()
            .actions
            .contains(Actions::ADD_HEADERS)
    );
    assert_eq!(
        milter.helo("client.a.test", &[]).unwrap(),
        Step::Done(Verdict::Continue)
    );
    let end = message(&mut milter, &mut socket, MESSAGE);
    assert_eq!(end.verdict, Verdict::Accept);
    let events = filter.events().join("\n");
    assert!(!events.contains(r#""event": "hello""#) && !events.contains(r#""event": "header""#));
    assert!(events.contains(r#""event": "envrcpt""#), "{events}");
    // SETSYMLIST: of the macros known at MAIL, only the one it chose.
    assert!(
        events.contains(r#""event": "envfrom", "args": ["<alice@a.test>", "SIZE=100"], "macros": {"{mail_addr}": "alice@a.test"}}"#),
        "{events}"
    );
}

#[test]
fn libmilter_reply_text_and_body_replacement_and_envelope_changes() {
    for (behaviour, check) in [
        ("reject-body", "reply"),
        ("replace-body", "body"),
        ("add-rcpt", "add"),
        ("add-rcpt-par", "add-par"),
        ("del-rcpt", "del"),
        ("chgfrom", "from"),
        ("quarantine", "quarantine"),
        ("discard", "discard"),
    ] {
        let Some((_filter, mut milter, mut socket)) = open(behaviour) else {
            return;
        };
        let body = b"Subject: x\r\n\r\nplease REJECTME\r\n";
        let end = message(&mut milter, &mut socket, body);
        match check {
            "reply" => {
                let Verdict::Reply(r) = &end.verdict else {
                    panic!("{end:?}")
                };
                assert_eq!(r.to_string(), "550 5.7.1 Marker found in the body");
            }
            "body" => assert_eq!(
                end.body.as_deref(),
                Some(&b"Replaced body\r\nsecond line\r\n"[..])
            ),
            "add" => assert_eq!(
                end.changes,
                [Change::AddRecipient {
                    address: "<carol@a.test>".into(),
                    parameters: None
                }]
            ),
            "add-par" => assert_eq!(
                end.changes,
                [Change::AddRecipient {
                    address: "<carol@a.test>".into(),
                    parameters: Some("NOTIFY=NEVER".into())
                }]
            ),
            "del" => assert_eq!(
                end.changes,
                [Change::DeleteRecipient("<bob@a.test>".into())]
            ),
            "from" => assert_eq!(
                end.changes,
                [Change::ChangeSender {
                    address: "<changed@a.test>".into(),
                    parameters: None
                }]
            ),
            "quarantine" => {
                assert_eq!(end.quarantine.as_deref(), Some("held by the test filter"));
            }
            _ => assert_eq!(end.verdict, Verdict::Discard),
        }
    }
}

#[test]
fn an_older_protocol_version_is_offered_and_spoken() {
    let Some(filter) = PyMilter::start("headers") else {
        return;
    };
    let mut socket = TcpStream::connect(filter.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut milter = Milter::new(Offer::for_version(2));
    assert_eq!(answer(&mut milter, &mut socket), Event::Negotiated);
    let n = milter.negotiated().unwrap();
    assert_eq!(n.version, 2, "the filter speaks the version offered");
    assert!(
        Actions::from_bits(0x3f).contains(n.actions),
        "{:?}",
        n.actions
    );
    let end = message(&mut milter, &mut socket, MESSAGE);
    assert_eq!(end.verdict, Verdict::Accept);
    assert_eq!(end.changes.len(), 5, "{:?}", end.changes);
}
