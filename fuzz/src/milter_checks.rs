//! The milter session against whatever a filter may send: the first octet
//! chooses the limits and how the filter's octets are split into reads; the
//! rest is what the filter sends. The MTA side drives a whole session
//! (several messages), calling only what the session allows at each point.

use postel_milter::edit::Message;
use postel_milter::{ConnectAddress, Event, Milter, MilterError, Offer, Step};

const MESSAGE: &[u8] = b"Subject: a\r\nX-Two: b\r\n c\r\n\r\nbody line\r\n.dot\r\n";

/// Every frame the session queued is whole: a length that covers its data,
/// a known command octet, nothing left over.
fn check_frames(out: &[u8]) {
    let mut rest = out;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>().expect("a frame length");
        let len = u32::from_be_bytes(*len) as usize;
        assert!(
            len >= 1 && len <= tail.len(),
            "frame length {len} of {}",
            tail.len()
        );
        assert!(
            b"ODCHMRTLNBEUAQK".contains(&tail[0]),
            "command {:?}",
            tail[0]
        );
        rest = &tail[len..];
    }
}

/// One call of the MTA's side, in the order a session makes them.
fn call(m: &mut Milter, n: usize) -> Result<Step, MilterError> {
    let message = Message::parse(MESSAGE);
    match n % 11 {
        0 => m.connect(
            "[192.0.2.1]",
            &ConnectAddress::Inet("192.0.2.1:25".parse().expect("addr")),
            &[("j", "mx")],
        ),
        1 => m.helo("client", &[]),
        2 => m.mail(&["<a@example.org>", "SIZE=10"], &[("i", "Q1")]),
        3 => m.rcpt(&["<b@example.net>"], &[]),
        4 => m.data(&[]),
        5 => {
            let mut last = Step::Done(postel_milter::Verdict::Continue);
            for f in message.fields() {
                last = m.header(&f.name, &f.value)?;
                if last == Step::Wait {
                    return Ok(last);
                }
            }
            Ok(last)
        }
        6 => m.end_of_headers(&[]),
        7 => m.body(message.body()).map(|(s, _)| s),
        8 => m.end_of_message(&[]),
        9 => m.unknown(b"XYZZY 1"),
        _ => m
            .restart()
            .map(|()| Step::Done(postel_milter::Verdict::Continue)),
    }
}

/// Runs the session over `data`.
pub fn check_milter(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let offer = Offer {
        max_frame: 64 + usize::from(selector) * 32,
        max_changes: 2048,
        ..Offer::default()
    };
    let mut m = Milter::new(offer);
    check_frames(&m.transmit());
    let mut reads = input.chunks(usize::from(selector % 13) + 1);
    let mut next = 0usize;
    loop {
        match m.poll() {
            Err(_) => return,
            Ok(Some(Event::EndOfMessage(end))) => {
                let mut message = Message::parse(MESSAGE);
                for change in &end.changes {
                    message.apply(change);
                }
                if let Some(body) = &end.body {
                    message.replace_body(body);
                }
                let bytes = message.to_bytes();
                assert_eq!(
                    Message::parse(&bytes).to_bytes(),
                    bytes,
                    "an edited message reads back"
                );
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                if m.awaiting().is_none() && !m.is_closed() {
                    // Ready: the next call; several messages, then QUIT.
                    if next >= 40 {
                        m.quit();
                        check_frames(&m.transmit());
                        return;
                    }
                    let step = call(&mut m, next);
                    next += 1;
                    match step {
                        Ok(_) | Err(MilterError::Misuse(_)) => {}
                        Err(e) => panic!("a call the session allows failed: {e}"),
                    }
                    check_frames(&m.transmit());
                    continue;
                }
                let Some(read) = reads.next() else { return };
                m.receive(read);
            }
        }
    }
}
