//! The client reading its server's replies one octet per read, the worst a
//! trickling server can do: the cost must grow linearly with the reply's
//! length. A multi-line EHLO reply of 1 KiB and of 64 KiB, fed whole and one
//! octet at a time; prints the nanoseconds per octet of each, whose ratio is
//! the slope (1.0 is linear).

// A benchmark that meets unexpected input should stop loudly.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use postel_proto::types::Domain;
use postel_session::client::{Client, ClientConfig, ClientEvent, TlsPolicy};

/// A greeting and an EHLO reply of about `size` octets.
fn replies(size: usize) -> Vec<u8> {
    let mut r = b"220 mx.example.net ESMTP\r\n250-mx.example.net greets you\r\n".to_vec();
    let mut i = 0;
    while r.len() < size {
        r.extend_from_slice(format!("250-X-EXTENSION-{i:05} with some parameters\r\n").as_bytes());
        i += 1;
    }
    r.extend_from_slice(b"250 PIPELINING\r\n");
    r
}

/// Runs the client over `input` in pieces of `piece` octets; true once the
/// EHLO reply was read (the client then writes MAIL, or QUIT).
fn read(input: &[u8], piece: usize) -> usize {
    let mut config = ClientConfig::new(Domain::try_from("out.example.org").unwrap());
    config.tls = TlsPolicy::Never;
    config.max_reply_octets = 1 << 20;
    config.max_reply_lines = 1 << 14;
    let mut client = Client::new(config);
    client.finish();
    let mut written = 0;
    for chunk in input.chunks(piece) {
        client.receive(chunk);
        while let Some(event) = client.poll() {
            if let ClientEvent::Failed(e) = event {
                panic!("{e}");
            }
        }
        written += client.transmit().len();
    }
    assert!(client.capabilities().is_some_and(|c| c.pipelining));
    written
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut per_octet = Vec::new();
    for size in [1024usize, 64 * 1024] {
        let input = replies(size);
        let mut g = c.benchmark_group(format!("client-ehlo-reply-{}KiB", size / 1024));
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function("whole", |b| {
            b.iter(|| black_box(read(black_box(&input), input.len())));
        });
        g.bench_function("octet-by-octet", |b| {
            b.iter(|| black_box(read(black_box(&input), 1)));
        });
        g.finish();
        per_octet.push((size, input.len()));
    }
    c.final_summary();
    println!(
        "\n{:<28} {:>14} {:>14}",
        "input", "ns per octet", "vs 1 KiB"
    );
    let mut first = None;
    for (size, len) in per_octet {
        let group = format!("client-ehlo-reply-{}KiB", size / 1024);
        let Some(ns) = postel_benches::mean_ns(&group, "octet-by-octet") else {
            continue;
        };
        #[allow(clippy::cast_precision_loss)] // Lengths far below 2^52.
        let each = ns / len as f64;
        let base = *first.get_or_insert(each);
        println!("{group:<28} {each:>14.2} {:>14.2}", each / base);
    }
}
