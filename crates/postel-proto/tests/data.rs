//! The DATA body codec: transparency, the end-of-data marker, and every SMTP
//! smuggling variant, each a named test.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postel_proto::framing::{
    BdatReader, BodyOptions, BodyViolation, DataEnd, DotDecoder, dot_stuff,
};

/// Decodes `input` whole and in every piece size up to 9; all must agree.
fn decode_with(input: &[u8], opts: BodyOptions) -> (Vec<u8>, Option<DataEnd>, usize) {
    let mut results = Vec::new();
    for piece in [input.len().max(1), 1, 2, 3, 5, 9] {
        let mut dec = DotDecoder::new(opts);
        let mut body = Vec::new();
        let mut outcome = (None, input.len());
        for (i, chunk) in input.chunks(piece).enumerate() {
            if let Some(end) = dec.decode(chunk, &mut |d| body.extend_from_slice(d)) {
                outcome = (
                    Some(DataEnd {
                        consumed: i * piece + end.consumed,
                        ..end
                    }),
                    i * piece + end.consumed,
                );
                break;
            }
        }
        // The same pieces through `decode_into`.
        let mut dec = DotDecoder::new(opts);
        let mut copied = Vec::new();
        let mut copied_end = None;
        for (i, chunk) in input.chunks(piece).enumerate() {
            if let Some(end) = dec.decode_into(chunk, &mut copied) {
                copied_end = Some(DataEnd {
                    consumed: i * piece + end.consumed,
                    ..end
                });
                break;
            }
        }
        assert_eq!(copied_end, outcome.0, "decode_into ends elsewhere");
        if outcome.0.is_some_and(|e| e.violation.is_none()) {
            assert_eq!(copied, body, "decode_into decodes otherwise");
        }
        results.push((body, outcome.0, outcome.1));
    }
    for r in &results[1..] {
        assert_eq!(r.1, results[0].1, "end differs by piece size");
        if results[0].1.is_some_and(|e| e.violation.is_none()) {
            assert_eq!(r.0, results[0].0, "body differs by piece size");
        }
    }
    results.swap_remove(0)
}

fn decode(input: &[u8]) -> (Vec<u8>, Option<DataEnd>, usize) {
    decode_with(input, BodyOptions::default())
}

/// Asserts the body does not end where a lenient receiver would end it.
fn no_end(input: &[u8]) {
    let (_, end, _) = decode(input);
    assert_eq!(
        end,
        None,
        "{:?} must not end the body",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn simple_body_ends_at_crlf_dot_crlf_and_leaves_the_rest() {
    let input = b"Subject: test\r\n\r\nHello\r\n.\r\nQUIT\r\n";
    let (body, end, used) = decode(input);
    assert_eq!(body, b"Subject: test\r\n\r\nHello\r\n");
    assert_eq!(&input[used..], b"QUIT\r\n");
    assert_eq!(end.unwrap().violation, None);
    assert_eq!(end.unwrap().size, body.len() as u64);
}

#[test]
fn empty_body() {
    let (body, end, used) = decode(b".\r\n");
    assert!(body.is_empty());
    assert_eq!((used, end.unwrap().size), (3, 0));
}

#[test]
fn transparency_dots_are_removed_rfc5321_section_4_5_2() {
    let (body, _, _) = decode(b"..\r\n...x\r\n.y\r\nmid.dle\r\n.\r\n");
    assert_eq!(body, b".\r\n..x\r\ny\r\nmid.dle\r\n");
}

#[test]
fn smuggling_lf_dot_lf_is_not_the_end() {
    no_end(b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\n");
    let (_, end, _) = decode(b"a\n.\nb\r\n.\r\n");
    assert!(matches!(
        end.unwrap().violation,
        Some(BodyViolation::BareLineEnding { offset: 1 })
    ));
}

#[test]
fn smuggling_cr_dot_cr_is_not_the_end() {
    no_end(b"body\r.\rMAIL FROM:<evil@example.org>\r\n");
}

#[test]
fn smuggling_lf_dot_crlf_is_not_the_end() {
    no_end(b"body\n.\r\nMAIL FROM:<evil@example.org>\r\n");
}

#[test]
fn smuggling_crlf_dot_lf_is_not_the_end() {
    no_end(b"body\r\n.\nMAIL FROM:<evil@example.org>\r\n");
}

#[test]
fn smuggling_cr_dot_crlf_is_not_the_end() {
    no_end(b"body\r.\r\nMAIL FROM:<evil@example.org>\r\n");
}

#[test]
fn smuggling_crlf_dot_cr_is_not_the_end() {
    no_end(b"body\r\n.\rMAIL FROM:<evil@example.org>\r\n");
}

#[test]
fn smuggling_crlf_dot_null_crlf_is_not_the_end() {
    no_end(b"body\r\n.\x00\r\nMAIL FROM:<evil@example.org>\r\n");
}

#[test]
fn smuggling_bare_lf_is_reported_even_when_the_real_end_follows() {
    let (_, end, _) = decode(b"line\nmore\r\n.\r\n");
    assert!(matches!(
        end.unwrap().violation,
        Some(BodyViolation::BareLineEnding { .. })
    ));
    assert_eq!(end.unwrap().violation.unwrap().reply().code().get(), 550);
    let (_, end, _) = decode(b"line\rmore\r\n.\r\n");
    assert!(matches!(
        end.unwrap().violation,
        Some(BodyViolation::BareLineEnding { offset: 4 })
    ));
}

#[test]
fn bare_line_endings_pass_as_data_when_allowed_and_still_never_end() {
    let mut opts = BodyOptions::default();
    opts.allow_bare_line_endings = true;
    let (body, end, _) = decode_with(b"a\n.\nb\r\n.\r\n", opts);
    assert_eq!(body, b"a\n.\nb\r\n", "no unstuffing after a bare LF");
    assert_eq!(end.unwrap().violation, None);
}

#[test]
fn terminator_split_across_every_boundary() {
    // decode() already feeds pieces of 1, 2, 3, 5 and 9 octets.
    let mut input = b"x".repeat(200);
    input.extend_from_slice(b"\r\n.\r\nNEXT");
    let (body, end, used) = decode(&input);
    assert_eq!(body.len(), 202);
    assert_eq!(used, 205);
    assert!(end.unwrap().violation.is_none());
}

#[test]
fn long_bodies_through_the_fast_path() {
    let mut message = Vec::new();
    for i in 0..500 {
        if i % 7 == 0 {
            message.extend_from_slice(b".leading dot line\r\n");
        }
        message.extend_from_slice(
            format!("line {i} of a message with some text in it\r\n").as_bytes(),
        );
    }
    let encoded = dot_stuff(&message);
    let (body, end, used) = decode(&encoded);
    assert_eq!(body, message);
    assert_eq!(used, encoded.len());
    assert_eq!(end.unwrap().size, message.len() as u64);
}

#[test]
fn size_limit_stops_the_sink_but_finds_the_end() {
    let mut opts = BodyOptions::default();
    opts.max_size = Some(10);
    let (body, end, used) = decode_with(b"0123456789abcdef\r\n.\r\nQUIT\r\n", opts);
    assert!(body.len() <= 10);
    assert_eq!(used, 21);
    assert_eq!(
        end.unwrap().violation,
        Some(BodyViolation::TooLarge { max: 10 })
    );
    assert_eq!(end.unwrap().violation.unwrap().reply().code().get(), 552);
}

#[test]
fn line_limit_of_rfc5321_section_4_5_3_1_6() {
    let ok = [vec![b'a'; 998], b"\r\n.\r\n".to_vec()].concat();
    assert_eq!(decode(&ok).1.unwrap().violation, None);
    let dotted = [b"..".to_vec(), vec![b'a'; 997], b"\r\n.\r\n".to_vec()].concat();
    assert_eq!(
        decode(&dotted).1.unwrap().violation,
        None,
        "the transparency dot is not counted"
    );
    let long = [vec![b'a'; 1000], b"\r\n.\r\n".to_vec()].concat();
    assert!(matches!(
        decode(&long).1.unwrap().violation,
        Some(BodyViolation::LineTooLong { max: 1000, .. })
    ));
    let mut off = BodyOptions::default();
    off.max_line = None;
    assert_eq!(decode_with(&long, off).1.unwrap().violation, None);
}

#[test]
fn an_over_long_line_is_reported_where_it_crosses_the_limit() {
    // 1000 octets and CRLF is the longest line (1001 with a transparency
    // dot); the 1002nd octet of a line is the first one past the limit,
    // whatever the chunking, and whether it is text, CR or LF.
    let body = [b"ok\r\n".to_vec(), vec![b'a'; 5000], b"\r\n.\r\n".to_vec()].concat();
    let (_, end, _) = decode(&body);
    assert_eq!(
        end.unwrap().violation,
        Some(BodyViolation::LineTooLong {
            offset: 4 + 1001,
            max: 1000
        })
    );
    let at_lf = [vec![b'a'; 1000], b"\r\n.\r\n".to_vec()].concat();
    assert_eq!(
        decode(&at_lf).1.unwrap().violation,
        Some(BodyViolation::LineTooLong {
            offset: 1001,
            max: 1000
        })
    );
}

#[test]
fn an_over_long_line_among_many_plain_blocks_is_found_where_it_crosses() {
    // Kilobytes of short lines around one line of 1500 octets, then dotted
    // lines: the fast path checks runs of plain blocks at once and keeps
    // only a bound of the line length, which must still find the octet
    // where the long line crossed the limit, as octet-wise decoding does.
    let short: Vec<u8> = (0..400)
        .flat_map(|i| format!("short line {i:04} of plain text\r\n").into_bytes())
        .collect();
    let dotted: Vec<u8> = (0..100)
        .flat_map(|i| format!("..dotted line {i}\r\n").into_bytes())
        .collect();
    let body = [
        &short[..],
        &[b'b'; 1500][..],
        b"\r\n",
        &short[..],
        &dotted[..],
        b".\r\n",
    ]
    .concat();
    let (_, end, used) = decode(&body);
    assert_eq!(used, body.len());
    assert_eq!(
        end.unwrap().violation,
        Some(BodyViolation::LineTooLong {
            offset: short.len() as u64 + 1001,
            max: 1000
        })
    );
    // Without the long line, the same body decodes to its lines, unstuffed.
    let clean = [&short[..], &dotted[..], b".\r\n"].concat();
    let (decoded, end, _) = decode(&clean);
    assert_eq!(end.unwrap().violation, None);
    let unstuffed: Vec<u8> = (0..100)
        .flat_map(|i| format!(".dotted line {i}\r\n").into_bytes())
        .collect();
    assert_eq!(decoded, [&short[..], &unstuffed[..]].concat());
}

#[test]
fn an_endless_line_stops_reaching_the_sink_at_the_limit() {
    // A line that never ends must not be buffered until SIZE: after the
    // limit the decoder only looks for the terminator.
    let mut dec = DotDecoder::new(BodyOptions::default());
    let mut passed = 0usize;
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..256 {
        assert!(dec.decode(&chunk, &mut |d| passed += d.len()).is_none());
    }
    assert!(
        passed <= 64 * 1024,
        "{passed} octets of a 16 MiB line reached the sink"
    );
    assert!(matches!(
        dec.violation(),
        Some(BodyViolation::LineTooLong { offset: 1001, .. })
    ));
    let end = dec.decode(b"\r\n.\r\nQUIT\r\n", &mut |_| {}).unwrap();
    assert_eq!(end.consumed, 5, "still in step with the terminator");
    assert!(matches!(
        end.violation,
        Some(BodyViolation::LineTooLong { .. })
    ));
}

#[test]
fn encoder_stuffs_and_terminates() {
    assert_eq!(dot_stuff(b""), b".\r\n");
    assert_eq!(dot_stuff(b"a"), b"a\r\n.\r\n");
    assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
    assert_eq!(dot_stuff(b"x\r\n.\r\ny"), b"x\r\n..\r\ny\r\n.\r\n");
    // Bare line endings are sent as CRLF, so no receiver can read them two ways.
    assert_eq!(dot_stuff(b"a\n.\nb\rc"), b"a\r\n..\r\nb\r\nc\r\n.\r\n");
}

#[test]
fn bdat_chunks_have_no_line_structure() {
    let mut r = BdatReader::new(7);
    assert_eq!(r.read(b"a\r\n.\r"), (&b"a\r\n.\r"[..], false));
    assert_eq!(r.read(b"\n\x00RSET\r\n"), (&b"\n\x00"[..], true));
    assert_eq!(r.remaining(), 0);
    let mut empty = BdatReader::new(0);
    assert_eq!(empty.read(b"QUIT\r\n"), (&b""[..], true));
}

/// Decodes `input` fed in the pieces `cuts` gives (repeated), or line by
/// line when `cuts` is empty; returns the body, the end and the violation
/// seen so far.
fn decode_in_pieces(
    input: &[u8],
    cuts: &[usize],
    opts: BodyOptions,
) -> (Vec<u8>, Option<DataEnd>, Option<BodyViolation>) {
    let mut pieces = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < input.len() {
        let n = if cuts.is_empty() {
            input[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(input.len() - pos, |p| p + 1)
        } else {
            cuts[k % cuts.len()].min(input.len() - pos)
        };
        pieces.push(&input[pos..pos + n]);
        pos += n;
        k += 1;
    }
    let mut dec = DotDecoder::new(opts);
    let mut body = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        if let Some(end) = dec.decode_into(piece, &mut body) {
            let end = DataEnd {
                consumed: fed + end.consumed,
                ..end
            };
            return (body, Some(end), dec.violation());
        }
        fed += piece.len();
    }
    let violation = dec.violation();
    (body, None, violation)
}

proptest::proptest! {
    /// Bodies of short lines, dotted lines, empty lines, bare line endings,
    /// lines past the limit and near-terminators decode alike whole, line
    /// by line and in random pieces: the same octets, end and violation.
    #[test]
    fn line_by_line_and_pieces_decode_as_whole(
        lines in proptest::collection::vec(proptest::prop_oneof![
            4 => "[ -~]{0,90}\r\n",
            2 => "\\.[ -~]{0,40}\r\n",
            1 => proptest::strategy::Just("\r\n".to_owned()),
            1 => proptest::strategy::Just(".\r".to_owned()),
            1 => proptest::strategy::Just(".\n".to_owned()),
            1 => "[a-z]{0,9}\n",
            1 => "[a-z]{0,9}\r[a-z]{0,9}\r\n",
            1 => "x{990,1010}\r\n",
        ], 0..40),
        end in proptest::prop_oneof![
            proptest::strategy::Just(&b".\r\nQUIT\r\n"[..]),
            proptest::strategy::Just(&b".\r"[..]),
            proptest::strategy::Just(&b""[..]),
        ],
        cuts in proptest::collection::vec(1usize..300, 1..12),
        allow_bare in proptest::bool::ANY,
    ) {
        let mut input: Vec<u8> = lines.concat().into_bytes();
        input.extend_from_slice(end);
        let mut opts = BodyOptions::default();
        opts.allow_bare_line_endings = allow_bare;
        let whole = decode_in_pieces(&input, &[input.len().max(1)], opts);
        let by_line = decode_in_pieces(&input, &[], opts);
        let pieces = decode_in_pieces(&input, &cuts, opts);
        proptest::prop_assert_eq!(by_line.1, whole.1);
        proptest::prop_assert_eq!(pieces.1, whole.1);
        proptest::prop_assert_eq!(by_line.2, whole.2);
        proptest::prop_assert_eq!(pieces.2, whole.2);
        if whole.2.is_none() {
            proptest::prop_assert_eq!(&by_line.0, &whole.0);
            proptest::prop_assert_eq!(&pieces.0, &whole.0);
        }
    }
}
