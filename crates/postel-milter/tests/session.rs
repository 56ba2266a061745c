//! The session's rules with frames fed as bytes: what a filter may say when,
//! and the typed error for everything else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postel_milter::{
    Actions, ConnectAddress, Event, Milter, MilterError, Offer, Step, Steps, Verdict,
};
use proptest::prelude::*;

fn frame(code: u8, data: &[u8]) -> Vec<u8> {
    let mut f = u32::try_from(data.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    f.push(code);
    f.extend_from_slice(data);
    f
}

fn negotiation(version: u32, actions: Actions, steps: Steps) -> Vec<u8> {
    let mut d = version.to_be_bytes().to_vec();
    d.extend_from_slice(&actions.bits().to_be_bytes());
    d.extend_from_slice(&steps.bits().to_be_bytes());
    frame(b'O', &d)
}

fn ready(actions: Actions, steps: Steps) -> Milter {
    let mut m = Milter::new(Offer::default());
    let sent = m.transmit();
    assert_eq!(sent.len(), 17, "length, 'O', three numbers");
    assert_eq!(&sent[..9], &[0, 0, 0, 13, b'O', 0, 0, 0, 6]);
    m.receive(&negotiation(6, actions, steps));
    assert_eq!(m.poll().unwrap(), Some(Event::Negotiated));
    m
}

fn in_message(actions: Actions) -> Milter {
    let mut m = ready(actions, Steps::NONE);
    assert_eq!(m.mail(&["<a@a.test>"], &[]).unwrap(), Step::Wait);
    m.receive(&frame(b'c', b""));
    assert_eq!(m.poll().unwrap(), Some(Event::Verdict(Verdict::Continue)));
    m
}

#[test]
fn a_filter_asking_for_more_than_offered_is_refused() {
    let offer = Offer {
        actions: Actions::ADD_HEADERS,
        steps: Steps::NO_HELO,
        ..Offer::default()
    };
    let mut m = Milter::new(offer.clone());
    m.receive(&negotiation(6, Actions::CHANGE_BODY, Steps::NONE));
    assert_eq!(
        m.poll(),
        Err(MilterError::ActionsNotOffered {
            asked: Actions::CHANGE_BODY
        })
    );
    let mut m = Milter::new(offer.clone());
    m.receive(&negotiation(6, Actions::NONE, Steps::NO_BODY));
    assert_eq!(
        m.poll(),
        Err(MilterError::StepsNotOffered {
            asked: Steps::NO_BODY
        })
    );
    for version in [0, 1, 7] {
        let mut m = Milter::new(offer.clone());
        m.receive(&negotiation(version, Actions::NONE, Steps::NONE));
        assert_eq!(m.poll(), Err(MilterError::Version(version)));
    }
    // Version 2, as old filters speak it, is taken.
    let mut m = Milter::new(offer);
    m.receive(&negotiation(2, Actions::ADD_HEADERS, Steps::NONE));
    assert_eq!(m.poll(), Ok(Some(Event::Negotiated)));
}

#[test]
fn malformed_and_oversized_frames_are_typed_errors() {
    let cases: Vec<(Vec<u8>, MilterError)> = vec![
        (vec![0, 0, 0, 0], MilterError::Malformed("empty frame")),
        (
            vec![0, 1, 0, 0, b'b'],
            MilterError::FrameTooLong {
                len: 65_536,
                max: 2 * 65_535,
            },
        )
            .clone(),
        (frame(b'Z', b""), MilterError::UnknownResponse(b'Z')),
        (
            frame(b'y', b"250 ok\0"),
            MilterError::Malformed("reply code outside 4xx and 5xx"),
        ),
        (frame(b'y', b"550 ok"), MilterError::Malformed("reply text")),
        (
            frame(b'c', b"extra"),
            MilterError::Malformed("data after the last field"),
        ),
    ];
    for (input, expected) in cases {
        let mut m = in_message(Actions::ALL);
        assert_eq!(m.rcpt(&["<b@a.test>"], &[]).unwrap(), Step::Wait);
        m.receive(&input);
        let got = m.poll();
        if let MilterError::FrameTooLong { .. } = expected {
            // 65 536 fits the default limit of twice a chunk: not an error yet.
            assert_eq!(got, Ok(None));
            let mut m = Milter::new(Offer {
                max_frame: 1000,
                ..Offer::default()
            });
            m.receive(&[0, 0, 0x10, 0]);
            assert_eq!(
                m.poll(),
                Err(MilterError::FrameTooLong {
                    len: 4096,
                    max: 1000
                })
            );
            continue;
        }
        assert_eq!(got, Err(expected));
    }
}

#[test]
fn answers_out_of_place_are_refused() {
    // A change before the end of the message.
    let mut m = in_message(Actions::ALL);
    assert_eq!(m.rcpt(&["<b@a.test>"], &[]).unwrap(), Step::Wait);
    m.receive(&frame(b'h', b"X\0y\0"));
    assert!(matches!(m.poll(), Err(MilterError::Unexpected(_))));
    // A response nobody asked for.
    let mut m = ready(Actions::ALL, Steps::NONE);
    m.receive(&frame(b'c', b""));
    assert!(matches!(m.poll(), Err(MilterError::Unexpected(_))));
    // Skip outside the body, and where it was not negotiated.
    let mut m = in_message(Actions::ALL);
    assert_eq!(m.rcpt(&["<b@a.test>"], &[]).unwrap(), Step::Wait);
    m.receive(&frame(b's', b""));
    assert!(matches!(m.poll(), Err(MilterError::Unexpected(_))));
    // A change not negotiated.
    let mut m = in_message(Actions::ADD_HEADERS);
    assert_eq!(m.end_of_message(&[]).unwrap(), Step::Wait);
    m.receive(&frame(b'b', b"new body"));
    assert_eq!(
        m.poll(),
        Err(MilterError::ActionNotNegotiated(Actions::CHANGE_BODY))
    );
    // A header field that is not one.
    let mut m = in_message(Actions::ALL);
    assert_eq!(m.end_of_message(&[]).unwrap(), Step::Wait);
    m.receive(&frame(b'h', b"Bad: name\0value\0"));
    assert_eq!(m.poll(), Err(MilterError::Malformed("header name")));
    // Discard at connect.
    let mut m = ready(Actions::ALL, Steps::NONE);
    let client = ConnectAddress::Unknown;
    assert_eq!(m.connect("host", &client, &[]).unwrap(), Step::Wait);
    m.receive(&frame(b'd', b""));
    assert!(matches!(m.poll(), Err(MilterError::Unexpected(_))));
}

#[test]
fn changes_are_bounded_and_progress_restarts_the_wait() {
    let mut m = Milter::new(Offer {
        max_changes: 100,
        ..Offer::default()
    });
    let _ = m.transmit();
    m.receive(&negotiation(6, Actions::ALL, Steps::NONE));
    assert_eq!(m.poll().unwrap(), Some(Event::Negotiated));
    assert_eq!(m.mail(&["<a@a.test>"], &[]).unwrap(), Step::Wait);
    m.receive(&frame(b'c', b""));
    let _ = m.poll().unwrap();
    assert_eq!(m.end_of_message(&[]).unwrap(), Step::Wait);
    m.receive(&frame(b'p', b""));
    assert_eq!(m.poll().unwrap(), Some(Event::Progress));
    m.receive(&frame(b'b', &[b'x'; 60]));
    assert_eq!(m.poll().unwrap(), None);
    m.receive(&frame(b'b', &[b'x'; 60]));
    assert!(matches!(
        m.poll(),
        Err(MilterError::FrameTooLong { len: 120, max: 100 })
    ));
}

#[test]
fn left_out_and_unanswered_events_and_the_scope_of_a_verdict() {
    let mut m = ready(
        Actions::NONE,
        Steps::NO_HELO | Steps::NO_REPLY_RCPT | Steps::SKIP,
    );
    assert_eq!(m.helo("x", &[]).unwrap(), Step::Done(Verdict::Continue));
    assert!(m.transmit().is_empty(), "a left-out event is not sent");
    assert_eq!(m.mail(&["<a@a.test>"], &[]).unwrap(), Step::Wait);
    m.receive(&frame(b'c', b""));
    let _ = m.poll().unwrap();
    let _ = m.transmit();
    assert_eq!(
        m.rcpt(&["<b@a.test>"], &[]).unwrap(),
        Step::Done(Verdict::Continue)
    );
    assert_eq!(
        &m.transmit()[4..],
        b"R<b@a.test>\0",
        "an unanswered event is sent"
    );
    // Skip: the rest of the body is not sent.
    let (s, used) = m.body(&vec![b'a'; 70_000]).unwrap();
    assert_eq!((s, used), (Step::Wait, 65_535));
    m.receive(&frame(b's', b""));
    assert_eq!(m.poll().unwrap(), Some(Event::Verdict(Verdict::Continue)));
    let _ = m.transmit();
    assert_eq!(m.body(b"more").unwrap(), (Step::Done(Verdict::Continue), 4));
    assert!(m.transmit().is_empty());
    // A refused recipient leaves the message open; accept ends it.
    let mut m = in_message(Actions::NONE);
    assert_eq!(m.rcpt(&["<x@a.test>"], &[]).unwrap(), Step::Wait);
    m.receive(&frame(b'r', b""));
    assert_eq!(m.poll().unwrap(), Some(Event::Verdict(Verdict::Reject)));
    assert_eq!(m.rcpt(&["<y@a.test>"], &[]).unwrap(), Step::Wait);
    m.receive(&frame(b'a', b""));
    assert_eq!(m.poll().unwrap(), Some(Event::Verdict(Verdict::Accept)));
    let _ = m.transmit();
    assert_eq!(m.data(&[]).unwrap(), Step::Done(Verdict::Continue));
    assert_eq!(
        m.end_of_message(&[]).unwrap(),
        Step::Done(Verdict::Continue)
    );
    assert!(
        m.transmit().is_empty(),
        "nothing more for an accepted message"
    );
    // The next message goes to the filter again.
    assert_eq!(m.mail(&["<a@a.test>"], &[]).unwrap(), Step::Wait);
}

#[test]
fn values_with_nul_are_refused_before_sending() {
    let mut m = ready(Actions::NONE, Steps::NONE);
    let _ = m.transmit();
    assert_eq!(m.helo("bad\0name", &[]), Err(MilterError::Nul("HELO name")));
    assert!(m.transmit().is_empty());
    assert_eq!(m.helo("good", &[]).unwrap(), Step::Wait);
}

#[test]
fn header_values_go_out_with_lf_and_without_leading_space() {
    let mut m = in_message(Actions::NONE);
    let _ = m.transmit();
    assert_eq!(m.header(b"Subject", b" a\r\n\tb").unwrap(), Step::Wait);
    assert_eq!(&m.transmit()[4..], b"LSubject\0a\n\tb\0");
}

proptest! {
    /// Whatever a filter sends, split however the reads fall, the session
    /// returns events or an error, never panics, and the same ones.
    #[test]
    fn any_input_any_split_same_outcome(input in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
        let run = |parts: &[&[u8]]| {
            let mut m = in_message(Actions::ALL);
            let _ = m.end_of_message(&[]);
            let mut out = Vec::new();
            for p in parts {
                m.receive(p);
                loop {
                    match m.poll() {
                        Ok(Some(e)) => out.push(Ok(e)),
                        Ok(None) => break,
                        Err(e) => { out.push(Err(e)); return out; }
                    }
                }
            }
            out
        };
        let cut = cut.min(input.len());
        let whole = run(&[&input]);
        let split = run(&[&input[..cut], &input[cut..]]);
        prop_assert_eq!(whole, split);
    }
}

#[test]
fn shutdown_and_connection_failure_end_the_session_at_any_stage() {
    for code in [b'4', b'f'] {
        let mut m = ready(Actions::NONE, Steps::NONE);
        assert_eq!(m.helo("x", &[]).unwrap(), Step::Wait);
        m.receive(&frame(code, b""));
        let expected = if code == b'4' {
            Verdict::Shutdown
        } else {
            Verdict::ConnectionFailure
        };
        assert_eq!(m.poll().unwrap(), Some(Event::Verdict(expected.clone())));
        assert!(m.is_closed());
        assert!(matches!(
            m.mail(&["<a@a.test>"], &[]),
            Err(MilterError::Misuse(_))
        ));
        // And at the end of a message, with what was collected dropped.
        let mut m = in_message(Actions::ALL);
        assert_eq!(m.end_of_message(&[]).unwrap(), Step::Wait);
        m.receive(&frame(b'h', b"X\0y\0"));
        m.receive(&frame(code, b""));
        let Some(Event::EndOfMessage(end)) = m.poll().unwrap() else {
            panic!("not the end")
        };
        assert_eq!(end.verdict, expected);
        assert!(m.is_closed());
    }
}
