//! postel-proto beside smtp-proto 0.2.5 and lettre, on the same inputs, in one
//! run. Throughput is in bytes per second; the table at the end gives our time
//! over each peer's.

// A benchmark that meets unexpected input should stop loudly.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::hint::black_box;
use std::str::FromStr;

use criterion::{Criterion, Throughput};
use postel_benches::{
    CODE_ONLY_REPLY, COMMAND_MIX, EHLO_REPLY, SINGLE_REPLY, data_body, pipelined, print_ratios,
};
use postel_proto::codec::{
    EhloReply, parse_capabilities, parse_command, parse_ehlo_reply, parse_reply,
};
use postel_proto::framing::{BodyOptions, CommandReader, DotDecoder};
use postel_proto::{ParserOptions, Status};

const OURS: &str = "postel";
const SMTP_PROTO: &str = "smtp-proto";
const LETTRE: &str = "lettre";

/// Parses every command of a pipelined buffer; how many.
fn parse_all(buffer: &[u8], opts: &ParserOptions) -> usize {
    let mut rest = buffer;
    let mut n = 0;
    while let Ok(Status::Complete { value, consumed }) = parse_command(rest, opts) {
        black_box(&value);
        rest = &rest[consumed..];
        n += 1;
    }
    n
}

/// The same with smtp-proto.
fn peer_parse_all(buffer: &[u8]) -> usize {
    let mut it = buffer.iter();
    let mut n = 0;
    while it.len() > 0 {
        let r = smtp_proto::Request::parse(&mut it);
        assert!(r.is_ok());
        black_box(r).ok();
        n += 1;
    }
    n
}

fn commands(c: &mut Criterion) {
    let opts = ParserOptions::STRICT;
    for (name, line) in COMMAND_MIX {
        let mut g = c.benchmark_group(format!("command-{name}"));
        g.throughput(Throughput::Bytes(line.len() as u64));
        g.bench_function(OURS, |b| {
            b.iter(|| match parse_command(black_box(line), &opts) {
                Ok(Status::Complete { value, .. }) => {
                    black_box(&value);
                }
                _ => unreachable!(),
            });
        });
        g.bench_function(SMTP_PROTO, |b| {
            b.iter(|| {
                let r = smtp_proto::Request::parse(&mut black_box(line).iter());
                assert!(r.is_ok());
                black_box(r)
            });
        });
        g.finish();
    }

    let all = pipelined();
    let mut g = c.benchmark_group("command-pipelined");
    g.throughput(Throughput::Bytes(all.len() as u64));
    g.bench_function(OURS, |b| {
        b.iter(|| assert_eq!(parse_all(black_box(&all), &opts), COMMAND_MIX.len()));
    });
    g.bench_function(SMTP_PROTO, |b| {
        b.iter(|| assert_eq!(peer_parse_all(black_box(&all)), COMMAND_MIX.len()));
    });
    g.finish();

    // The same buffer arriving 16 octets at a time, through each crate's
    // buffering receiver.
    let mut g = c.benchmark_group("command-chunked-16");
    g.throughput(Throughput::Bytes(all.len() as u64));
    g.bench_function(OURS, |b| {
        let mut reader = CommandReader::new(opts);
        b.iter(|| {
            let mut n = 0;
            for chunk in black_box(&all[..]).chunks(16) {
                reader.feed(chunk);
                while let Some(cmd) = reader.next_command() {
                    black_box(cmd).ok();
                    n += 1;
                }
            }
            assert_eq!(n, COMMAND_MIX.len());
        });
    });
    g.bench_function(SMTP_PROTO, |b| {
        let mut receiver = smtp_proto::request::receiver::RequestReceiver::default();
        b.iter(|| {
            let mut n = 0;
            for chunk in black_box(&all[..]).chunks(16) {
                let mut it = chunk.iter();
                loop {
                    match receiver.ingest(&mut it) {
                        Ok(r) => {
                            black_box(r);
                            n += 1;
                        }
                        Err(smtp_proto::Error::NeedsMoreData { .. }) => break,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
            assert_eq!(n, COMMAND_MIX.len());
        });
    });
    g.finish();
}

fn replies(c: &mut Criterion) {
    let opts = ParserOptions::STRICT;
    for (name, input) in [
        ("single", SINGLE_REPLY),
        ("code-only-334", CODE_ONLY_REPLY),
        ("ehlo-8-lines", EHLO_REPLY),
    ] {
        let mut g = c.benchmark_group(format!("reply-{name}"));
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function(OURS, |b| {
            b.iter(|| {
                let r = parse_reply(black_box(input), &opts);
                assert!(matches!(r, Ok(Status::Complete { .. })));
                black_box(r)
            });
        });
        g.bench_function(SMTP_PROTO, |b| {
            b.iter(|| {
                let mut rx = smtp_proto::response::parser::ResponseReceiver::default();
                let r = rx.parse(&mut black_box(input).iter());
                assert!(r.is_ok());
                black_box(r)
            });
        });
        // lettre refuses the code-only reply, so it has no time for it.
        if lettre::transport::smtp::response::Response::from_str(
            std::str::from_utf8(input).unwrap_or_default(),
        )
        .is_ok()
        {
            let text = std::str::from_utf8(input).unwrap_or_default();
            g.bench_function(LETTRE, |b| {
                b.iter(|| {
                    let r = lettre::transport::smtp::response::Response::from_str(black_box(text));
                    assert!(r.is_ok());
                    black_box(r)
                });
            });
        }
        g.finish();
    }

    let mut g = c.benchmark_group("ehlo-capabilities");
    g.throughput(Throughput::Bytes(EHLO_REPLY.len() as u64));
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let r = parse_ehlo_reply(black_box(EHLO_REPLY), &opts);
            let Ok(Status::Complete {
                value: EhloReply::Accepted(caps),
                ..
            }) = r
            else {
                unreachable!()
            };
            assert!(caps.pipelining);
            black_box(caps)
        });
    });
    g.bench_function("postel-via-reply", |b| {
        b.iter(|| {
            let Ok(Status::Complete { value, .. }) = parse_reply(black_box(EHLO_REPLY), &opts)
            else {
                unreachable!()
            };
            let caps = parse_capabilities(&value);
            assert!(caps.as_ref().is_ok_and(|c| c.pipelining));
            black_box(caps.map(|c| c.size)).ok();
        });
    });
    g.bench_function(SMTP_PROTO, |b| {
        b.iter(|| {
            let r = smtp_proto::EhloResponse::parse(&mut black_box(EHLO_REPLY).iter());
            assert!(r.is_ok());
            black_box(r)
        });
    });
    g.bench_function(LETTRE, |b| {
        let text = std::str::from_utf8(EHLO_REPLY).unwrap_or_default();
        b.iter(|| {
            let r = lettre::transport::smtp::response::Response::from_str(black_box(text));
            let info = r.map(|r| lettre::transport::smtp::extension::ServerInfo::from_response(&r));
            assert!(matches!(info, Ok(Ok(_))));
            black_box(info)
        });
    });
    g.finish();
}

/// A transaction as Postfix pipelines it to a server with many recipients
/// at one domain: MAIL, 50 RCPT, DATA, in one buffer.
fn postfix_transaction() -> (Vec<u8>, usize) {
    let mut t = b"MAIL FROM:<newsletter@lists.example.org> SIZE=48213 BODY=8BITMIME\r\n".to_vec();
    for i in 0..50 {
        t.extend_from_slice(format!("RCPT TO:<subscriber.{i:03}@example.net>\r\n").as_bytes());
    }
    t.extend_from_slice(b"DATA\r\n");
    (t, 52)
}

/// Four BDAT chunks of 1 MiB, the last with LAST (RFC 3030), as one stream.
fn bdat_stream() -> (Vec<u8>, usize) {
    const CHUNK: usize = 1 << 20;
    let body = data_body(4 * CHUNK, false);
    let mut s = Vec::with_capacity(body.len() + 100);
    for (i, chunk) in body.chunks(CHUNK).take(4).enumerate() {
        let last = if i == 3 { " LAST" } else { "" };
        s.extend_from_slice(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        s.extend_from_slice(chunk);
    }
    (s, 4 * CHUNK)
}

fn transactions(c: &mut Criterion) {
    let opts = ParserOptions::STRICT;
    let (txn, commands) = postfix_transaction();
    let mut g = c.benchmark_group("transaction-50-rcpt");
    g.throughput(Throughput::Bytes(txn.len() as u64));
    g.bench_function(OURS, |b| {
        b.iter(|| assert_eq!(parse_all(black_box(&txn), &opts), commands));
    });
    g.bench_function(SMTP_PROTO, |b| {
        b.iter(|| assert_eq!(peer_parse_all(black_box(&txn)), commands));
    });
    g.finish();

    // Each crate's BDAT command parser and chunk reader, copying the chunks
    // into one message buffer.
    let (stream, size) = bdat_stream();
    let mut g = c.benchmark_group("bdat-4x1MiB");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(30);
    let mut out = Vec::with_capacity(size);
    g.bench_function(OURS, |b| {
        b.iter(|| {
            out.clear();
            let mut rest = black_box(&stream[..]);
            while !rest.is_empty() {
                let Ok(Status::Complete { value, consumed }) = parse_command(rest, &opts) else {
                    panic!("not a command");
                };
                let postel_proto::types::Command::Bdat { size, .. } = value else {
                    panic!("not BDAT");
                };
                rest = &rest[consumed..];
                let mut chunk = postel_proto::framing::BdatReader::new(size);
                let (data, done) = chunk.read(rest);
                assert!(done);
                out.extend_from_slice(data);
                rest = &rest[data.len()..];
            }
            assert_eq!(out.len(), size);
        });
    });
    g.bench_function(SMTP_PROTO, |b| {
        b.iter(|| {
            out.clear();
            let mut it = black_box(&stream[..]).iter();
            while it.len() > 0 {
                let Ok(smtp_proto::Request::Bdat {
                    chunk_size,
                    is_last,
                }) = smtp_proto::Request::parse(&mut it)
                else {
                    panic!("not BDAT");
                };
                let mut rx = smtp_proto::request::receiver::BdatReceiver::new(chunk_size, is_last);
                assert!(rx.ingest(&mut it, &mut out));
            }
            assert_eq!(out.len(), size);
        });
    });
    g.finish();
}

fn data(c: &mut Criterion) {
    const SIZE: usize = 4 << 20;
    for (name, dotted) in [("data-4MiB-plain", false), ("data-4MiB-dotted", true)] {
        let body = data_body(SIZE, dotted);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.sample_size(30);
        let mut out = Vec::with_capacity(body.len());
        g.bench_function("copy", |b| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(&body));
                black_box(out.len())
            });
        });
        let mut opts = BodyOptions::default();
        opts.max_line = None;
        // The decoder copying into a vector itself, checking and copying each
        // block in one pass.
        g.bench_function(OURS, |b| {
            b.iter(|| {
                out.clear();
                let mut dec = DotDecoder::new(opts);
                let end = dec.decode_into(black_box(&body), &mut out);
                assert!(end.is_some_and(|e| e.violation.is_none()));
                black_box(out.len())
            });
        });
        // The same copy done by a sink the decoder hands borrowed slices to.
        g.bench_function("postel-sink", |b| {
            b.iter(|| {
                out.clear();
                let mut dec = DotDecoder::new(opts);
                let end = dec.decode(black_box(&body), &mut |d| out.extend_from_slice(d));
                assert!(end.is_some_and(|e| e.violation.is_none()));
                black_box(out.len())
            });
        });
        // The same decoding with a sink that takes the borrowed slices without
        // copying them (as a caller writing them straight to a file would):
        // the decoder's own cost, beside the copy it spares.
        g.bench_function("postel-zero-copy", |b| {
            b.iter(|| {
                let mut n = 0usize;
                let mut dec = DotDecoder::new(opts);
                let end = dec.decode(black_box(&body), &mut |d| n += black_box(d).len());
                assert!(end.is_some_and(|e| e.violation.is_none()));
                black_box(n)
            });
        });
        let mut strict = BodyOptions::default();
        strict.max_line = Some(1000);
        g.bench_function("postel-line-limit", |b| {
            b.iter(|| {
                out.clear();
                let mut dec = DotDecoder::new(strict);
                let end = dec.decode_into(black_box(&body), &mut out);
                assert!(end.is_some_and(|e| e.violation.is_none()));
                black_box(out.len())
            });
        });
        g.bench_function(SMTP_PROTO, |b| {
            b.iter(|| {
                out.clear();
                let mut rx = smtp_proto::request::receiver::DataReceiver::new();
                assert!(rx.ingest(&mut black_box(&body).iter(), &mut out));
                black_box(out.len())
            });
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    commands(&mut c);
    replies(&mut c);
    transactions(&mut c);
    data(&mut c);
    c.final_summary();

    let mut rows: Vec<(String, &str, Vec<&str>)> = COMMAND_MIX
        .iter()
        .map(|(n, _)| (format!("command-{n}"), OURS, vec![SMTP_PROTO]))
        .collect();
    rows.push(("command-pipelined".into(), OURS, vec![SMTP_PROTO]));
    rows.push(("command-chunked-16".into(), OURS, vec![SMTP_PROTO]));
    rows.push(("transaction-50-rcpt".into(), OURS, vec![SMTP_PROTO]));
    rows.push(("bdat-4x1MiB".into(), OURS, vec![SMTP_PROTO]));
    for r in [
        "reply-single",
        "reply-code-only-334",
        "reply-ehlo-8-lines",
        "ehlo-capabilities",
    ] {
        rows.push((r.into(), OURS, vec![SMTP_PROTO, LETTRE]));
    }
    for d in ["data-4MiB-plain", "data-4MiB-dotted"] {
        rows.push((d.into(), OURS, vec!["copy", SMTP_PROTO]));
        rows.push((d.into(), "postel-sink", vec!["copy", SMTP_PROTO]));
        rows.push((d.into(), "postel-line-limit", vec!["copy"]));
        rows.push((d.into(), "postel-zero-copy", vec!["copy"]));
    }
    let rows: Vec<(&str, &str, &[&str])> = rows
        .iter()
        .map(|(g, o, p)| (g.as_str(), *o, p.as_slice()))
        .collect();
    print_ratios(&rows);
}
