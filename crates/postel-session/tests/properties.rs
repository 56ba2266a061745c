//! Property tests: any sequence of commands, valid or not, split anywhere,
//! never panics the server, and every reply is well-formed with a code that
//! fits the command it answers.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postel_proto::codec::parse_reply;
use postel_proto::types::{Domain, Mechanism};
use postel_proto::{ParserOptions, Status};
use postel_session::server::{Event, Server, ServerConfig};
use proptest::prelude::*;

fn line() -> impl Strategy<Value = (Vec<u8>, &'static [u16])> {
    // Each line with the codes that may answer it; 421 may answer anything
    // once the error limit is reached.
    prop_oneof![
        Just((b"EHLO c.example\r\n".to_vec(), &[250][..])),
        Just((b"HELO c.example\r\n".to_vec(), &[250][..])),
        Just((b"MAIL FROM:<a@b.example>\r\n".to_vec(), &[250, 503][..])),
        Just((
            b"MAIL FROM:<a@b.example> SIZE=99999999\r\n".to_vec(),
            &[552, 503][..]
        )),
        Just((b"MAIL FROM:<> X-NEW=1\r\n".to_vec(), &[555, 503][..])),
        Just((b"RCPT TO:<x@y.example>\r\n".to_vec(), &[250, 452, 503][..])),
        Just((b"RCPT TO:<>\r\n".to_vec(), &[501][..])),
        // When DATA is refused, the body lines are read as (bad) commands.
        Just((
            b"DATA\r\nbody\r\n.\r\n".to_vec(),
            &[354, 250, 503, 554, 500][..]
        )),
        Just((b"BDAT 4 LAST\r\nbody".to_vec(), &[250, 503, 554][..])),
        Just((b"RSET\r\n".to_vec(), &[250][..])),
        Just((b"NOOP\r\n".to_vec(), &[250][..])),
        Just((b"VRFY x\r\n".to_vec(), &[252][..])),
        Just((b"STARTTLS\r\n".to_vec(), &[502][..])),
        Just((b"AUTH PLAIN\r\n*\r\n".to_vec(), &[538, 500][..])), // "*" is then a bad command
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|mut v| {
            v.retain(|&b| b != b'\n');
            v.extend_from_slice(b"\r\n");
            (
                v,
                &[
                    500, 501, 502, 503, 504, 530, 538, 250, 252, 214, 221, 354, 452, 552, 553, 554,
                    555,
                ][..],
            )
        }),
    ]
}

fn server() -> Server {
    let mut c = ServerConfig::new(Domain::try_from("p.example").unwrap());
    c.max_message_size = Some(1000);
    c.max_recipients = 2;
    c.auth_mechanisms = vec![Mechanism::PLAIN];
    Server::new(c)
}

fn drive(server: &mut Server) {
    while let Some(event) = server.poll() {
        let _ = match event {
            Event::Mail(m) => m.accept(server).is_ok(),
            Event::Rcpt(r) => r.accept(server).is_ok(),
            Event::Message(m) => m.accept(server).is_ok(),
            Event::Auth(a) => a.accept(server).is_ok(),
            _ => true,
        };
    }
}

/// What an application sees of a session: the replies, the events other
/// than body chunks in order, and each message's body octets.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    replies: Vec<u8>,
    events: Vec<String>,
    bodies: Vec<Vec<u8>>,
}

fn run(input: &[u8], cuts: &[usize]) -> Seen {
    let mut s = server();
    let mut seen = Seen {
        replies: s.transmit(),
        ..Seen::default()
    };
    let mut body = Vec::new();
    let (mut pos, mut k) = (0, 0);
    while pos < input.len() && !s.is_closed() {
        let n = cuts[k % cuts.len()].min(input.len() - pos);
        k += 1;
        s.receive(&input[pos..pos + n]);
        pos += n;
        while let Some(event) = s.poll() {
            match event {
                Event::Body(b) => body.extend_from_slice(&b),
                Event::Mail(m) => m.accept(&mut s).unwrap(),
                Event::Rcpt(r) => r.accept(&mut s).unwrap(),
                Event::Message(m) => {
                    seen.events
                        .push(format!("message {} {}", m.size, m.received));
                    seen.bodies.push(std::mem::take(&mut body));
                    m.accept(&mut s).unwrap();
                }
                Event::Auth(a) => a.accept(&mut s).unwrap(),
                other => {
                    // A refused message's octets so far are dropped: how
                    // many came before the refusal depends on the split.
                    if matches!(other, Event::MessageAborted(_)) {
                        body.clear();
                    }
                    seen.events.push(format!("{other:?}"));
                }
            }
        }
        seen.replies.extend(s.transmit());
    }
    seen
}

/// A DATA command and a body of plain, dotted, empty and long lines.
fn data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"Received: from a\r\n".to_vec()),
            Just(b"..dotted\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"bare\nLF\r\n".to_vec()),
            Just(vec![b'x'; 1200]),
            "[ -~]{0,300}\r\n".prop_map(String::into_bytes),
        ],
        0..20,
    )
    .prop_map(|lines| {
        let mut v = b"DATA\r\n".to_vec();
        for line in lines {
            v.extend(line);
        }
        v.extend_from_slice(b"\r\n.\r\n");
        v
    })
}

fn codes(out: &[u8]) -> Vec<u16> {
    let mut rest = out;
    let mut codes = Vec::new();
    while !rest.is_empty() {
        match parse_reply(rest, &ParserOptions::STRICT) {
            Ok(Status::Complete { value, consumed }) => {
                codes.push(value.code().get());
                rest = &rest[consumed..];
            }
            other => panic!(
                "malformed reply {:?}: {other:?}",
                String::from_utf8_lossy(rest)
            ),
        }
    }
    codes
}

proptest! {
    #[test]
    fn replies_fit_the_commands(lines in prop::collection::vec(line(), 0..30)) {
        let mut s = server();
        s.transmit();
        for (bytes, allowed) in &lines {
            if s.is_closed() {
                break;
            }
            s.receive(bytes);
            drive(&mut s);
            for code in codes(&s.transmit()) {
                prop_assert!(code == 421 || allowed.contains(&code), "{code} for {:?}", String::from_utf8_lossy(bytes));
            }
        }
    }

    #[test]
    fn any_split_never_panics(lines in prop::collection::vec(line(), 0..30), cuts in prop::collection::vec(1usize..50, 1..20)) {
        let input: Vec<u8> = lines.iter().flat_map(|(b, _)| b.clone()).collect();
        let mut s = server();
        let mut out = s.transmit();
        let mut pos = 0;
        let mut k = 0;
        while pos < input.len() {
            let n = cuts[k % cuts.len()].min(input.len() - pos);
            k += 1;
            s.receive(&input[pos..pos + n]);
            pos += n;
            drive(&mut s);
            out.extend(s.transmit());
        }
        codes(&out);
    }

    /// However the input is split, the application sees the same replies,
    /// events and body octets as when it arrives whole.
    #[test]
    fn any_split_gives_the_same_session(
        parts in prop::collection::vec(prop_oneof![
            3 => line().prop_map(|(b, _)| b),
            1 => Just(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n".to_vec()),
            2 => data(),
        ], 0..12),
        cuts in prop::collection::vec(1usize..400, 1..20),
    ) {
        let mut input = b"EHLO c.example\r\n".to_vec();
        input.extend(parts.concat());
        let whole = run(&input, &[input.len()]);
        let split = run(&input, &cuts);
        prop_assert_eq!(whole, split);
    }
}
