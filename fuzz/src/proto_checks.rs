//! The properties the grammar fuzz targets check. The same functions run in
//! `cargo test` over every committed corpus and regression file
//! (crates/postel-proto/tests/corpus.rs includes this file), so a crash found
//! here stays fixed.

use postel_proto::codec::{
    EhloReply, parse_capabilities, parse_command, parse_ehlo_reply, parse_reply,
};
use postel_proto::framing::{BodyOptions, DotDecoder, dot_stuff};
use postel_proto::{ParserOptions, Status};

/// The parser options a fuzz input selects with its first octet, so that every
/// leniency is explored too.
fn options(selector: u8) -> ParserOptions {
    let mut o = ParserOptions::STRICT;
    o.allow_bare_lf = selector & 1 != 0;
    o.allow_space_after_colon = selector & 2 != 0;
    o.allow_nonstandard_helo = selector & 4 != 0;
    o
}

/// Commands: parse every command in the buffer; each one written and parsed
/// again must give the same command, using all of the written octets.
pub fn check_commands(data: &[u8]) {
    let Some((&selector, mut input)) = data.split_first() else {
        return;
    };
    let opts = options(selector);
    while !input.is_empty() {
        match parse_command(input, &opts) {
            Ok(Status::Complete { value, consumed }) => {
                assert!(consumed > 0 && consumed <= input.len());
                let written = value.to_bytes();
                match parse_command(&written, &opts) {
                    Ok(Status::Complete {
                        value: again,
                        consumed: used,
                    }) => {
                        assert_eq!(
                            value,
                            again,
                            "written as {:?}",
                            String::from_utf8_lossy(&written)
                        );
                        assert_eq!(used, written.len());
                    }
                    other => panic!(
                        "{value:?} written as {:?} does not parse: {other:?}",
                        String::from_utf8_lossy(&written)
                    ),
                }
                let _ = value.clone().into_owned();
                input = &input[consumed..];
            }
            Ok(Status::Incomplete) => return,
            Err(bad) => {
                let _ = bad.error.reply();
                assert!(bad.consumed > 0 && bad.consumed <= input.len());
                if !bad.line_finished {
                    return;
                }
                input = &input[bad.consumed..];
            }
        }
    }
}

/// Replies: parse every reply; written and parsed again it must be equal. A 250
/// reply read as EHLO capabilities must survive the same round trip.
pub fn check_replies(data: &[u8]) {
    let Some((&selector, mut input)) = data.split_first() else {
        return;
    };
    let opts = options(selector);
    while !input.is_empty() {
        // The EHLO fast path agrees with the general parser, errors included.
        let general = parse_reply(input, &opts);
        let fast = parse_ehlo_reply(input, &opts);
        match (&general, &fast) {
            (
                Ok(Status::Complete { value, consumed }),
                Ok(Status::Complete {
                    value: e,
                    consumed: c,
                }),
            ) => {
                assert_eq!(consumed, c);
                match (parse_capabilities(value), e) {
                    (Ok(caps), EhloReply::Accepted(fast_caps)) => assert_eq!(&caps, fast_caps),
                    (Err(_), EhloReply::Refused(r)) => assert_eq!(value, r),
                    (a, b) => panic!("EHLO fast path disagrees: {a:?} / {b:?}"),
                }
            }
            (Ok(Status::Incomplete), Ok(Status::Incomplete)) => {}
            (Err(a), Err(b)) => assert_eq!(a, b),
            (a, b) => panic!("EHLO fast path disagrees: {a:?} / {b:?}"),
        }
        match general {
            Ok(Status::Complete { value, consumed }) => {
                assert!(consumed > 0 && consumed <= input.len());
                let written = value.to_bytes();
                let again = parse_reply(&written, &opts)
                    .ok()
                    .and_then(Status::complete)
                    .unwrap_or_else(|| panic!("{value:?} written as {written:?} does not parse"));
                assert_eq!(value, again.0);
                assert_eq!(again.1, written.len());
                if let Ok(caps) = parse_capabilities(&value)
                    && let Ok(reply) = caps.to_reply()
                {
                    let caps_again = parse_capabilities(&reply).expect("250 reply");
                    assert_eq!(caps, caps_again);
                }
                input = &input[consumed..];
            }
            Ok(Status::Incomplete) => return,
            Err(bad) => {
                assert!(bad.consumed > 0 && bad.consumed <= input.len());
                if !bad.line_finished {
                    return;
                }
                input = &input[bad.consumed..];
            }
        }
    }
}

/// Decodes `input` fed in pieces of the given sizes (cycled); returns the body,
/// the end, and the octets consumed in total.
fn decode_in_pieces(
    input: &[u8],
    pieces: &[usize],
    opts: BodyOptions,
) -> (Vec<u8>, Option<postel_proto::framing::DataEnd>, usize) {
    let mut dec = DotDecoder::new(opts);
    let mut body = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < input.len() {
        let n = pieces[k % pieces.len()].max(1).min(input.len() - pos);
        k += 1;
        if let Some(end) = dec.decode(&input[pos..pos + n], &mut |d| body.extend_from_slice(d)) {
            return (body, Some(end), pos + end.consumed);
        }
        pos += n;
    }
    (body, None, pos)
}

/// The DATA decoder: any split of the input gives the same body, end and
/// violation as decoding it whole; and any message, dot-stuffed by the encoder,
/// decodes back to itself with CRLF line endings.
pub fn check_data(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let mut opts = BodyOptions::default();
    opts.allow_bare_line_endings = selector & 1 != 0;
    if selector & 2 != 0 {
        opts.max_line = None;
    }
    if selector & 4 != 0 {
        opts.max_size = Some(u64::from(selector) * 4);
    }
    let whole = decode_in_pieces(input, &[input.len().max(1)], opts);
    // The copying decoder agrees with the sink one.
    let mut copied = Vec::new();
    let copied_end = DotDecoder::new(opts).decode_into(input, &mut copied);
    assert_eq!(copied_end, whole.1, "decode_into ends elsewhere");
    if whole.1.is_some_and(|e| e.violation.is_none()) {
        assert_eq!(copied, whole.0, "decode_into decodes otherwise");
    }
    let pieces: Vec<usize> = input
        .iter()
        .take(8)
        .map(|&b| usize::from(b % 80) + 1)
        .collect();
    let split = decode_in_pieces(input, if pieces.is_empty() { &[1] } else { &pieces }, opts);
    // After a violation the body is refused, so how much of it reached the sink
    // may differ; everything else must not.
    let summary = |e: Option<postel_proto::framing::DataEnd>| e.map(|e| (e.size, e.violation));
    assert_eq!(
        summary(whole.1),
        summary(split.1),
        "end depends on chunk boundaries"
    );
    assert_eq!(
        whole.2, split.2,
        "consumed octets depend on chunk boundaries"
    );
    if let Some(end) = whole.1 {
        assert!(end.size >= whole.0.len() as u64);
        if end.violation.is_none() {
            assert_eq!(whole.0, split.0, "body depends on chunk boundaries");
            assert_eq!(end.size, whole.0.len() as u64);
        }
    }

    // Round trip through the encoder.
    let encoded = dot_stuff(input);
    let mut clean = BodyOptions::default();
    clean.max_line = None;
    let (body, end, used) = decode_in_pieces(&encoded, &[input.len() % 97 + 1], clean);
    let end = end.expect("an encoded body always ends");
    assert_eq!(
        used,
        encoded.len(),
        "the terminator is the last thing written"
    );
    assert_eq!(end.violation, None);
    assert_eq!(body, normalize(input));
}

/// What the encoder promises to send: every CR, LF or CRLF as CRLF, and a final
/// CRLF unless the message is empty or already ends with one.
fn normalize(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 2);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' if input.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}
