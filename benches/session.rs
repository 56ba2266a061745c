//! One whole server transaction through postel-session beside mailin 0.6's
//! `Session::process`, fed the same lines in the same run: EHLO, MAIL, five
//! RCPT, DATA with a 10 KiB body, QUIT. Also prints the memory of an idle
//! server session, since a server holds thousands.

// A benchmark that meets unexpected input should stop loudly.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, Throughput};
use postel_benches::{data_body, print_ratios};
use postel_proto::types::Domain;
use postel_session::server::{Event, Server, ServerConfig};

/// The transaction, one line per element, the body dot-stuffed.
fn lines() -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = vec![
        b"EHLO client.example.org\r\n".to_vec(),
        b"MAIL FROM:<sender@example.org> SIZE=10240 BODY=8BITMIME\r\n".to_vec(),
    ];
    for i in 0..5 {
        lines.push(format!("RCPT TO:<recipient{i}@example.net>\r\n").into_bytes());
    }
    lines.push(b"DATA\r\n".to_vec());
    let body = data_body(10 * 1024, true);
    let mut start = 0;
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            lines.push(body[start..=i].to_vec());
            start = i + 1;
        }
    }
    lines.push(b"QUIT\r\n".to_vec());
    lines
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new(Domain::try_from("mx.example.org").unwrap());
    c.max_message_size = Some(10 << 20);
    c
}

/// Runs the transaction through postel-session, returning reply octets.
fn postel(lines: &[Vec<u8>], whole: Option<&[u8]>) -> usize {
    let mut server = Server::new(config());
    let mut sent = server.transmit().len();
    let mut body = 0usize;
    let mut step = |server: &mut Server, input: &[u8]| {
        server.receive(input);
        while let Some(event) = server.poll() {
            match event {
                Event::Mail(m) => m.accept(server).unwrap(),
                Event::Rcpt(r) => r.accept(server).unwrap(),
                Event::Body(b) => body += b.len(),
                Event::Message(m) => m.accept(server).unwrap(),
                _ => {}
            }
        }
        server.transmit().len()
    };
    match whole {
        Some(input) => sent += step(&mut server, input),
        None => {
            for line in lines {
                sent += step(&mut server, line);
            }
        }
    }
    assert!(server.is_closed() && body > 10_000);
    sent
}

struct Sink(usize);

impl mailin::Handler for Sink {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0 += buf.len();
        Ok(())
    }
}

fn mailin(lines: &[Vec<u8>]) -> usize {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut session = mailin::SessionBuilder::new("mx.example.org").build(ip, Sink(0));
    let mut out = Vec::new();
    session.greeting().write_to(&mut out).unwrap();
    for line in lines {
        session.process(line).write_to(&mut out).unwrap();
    }
    out.len()
}

fn main() {
    let lines = lines();
    let whole: Vec<u8> = lines.concat();
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("server-transaction");
    g.throughput(Throughput::Bytes(whole.len() as u64));
    g.bench_function("postel", |b| {
        b.iter(|| black_box(postel(black_box(&lines), None)));
    });
    g.bench_function("postel-one-buffer", |b| {
        b.iter(|| black_box(postel(&lines, Some(black_box(&whole)))));
    });
    g.bench_function("mailin", |b| {
        b.iter(|| black_box(mailin(black_box(&lines))));
    });
    g.finish();
    c.final_summary();
    print_ratios(&[
        ("server-transaction", "postel", &["mailin"]),
        ("server-transaction", "postel-one-buffer", &["mailin"]),
    ]);

    // An idle session after its greeting: the struct plus what it holds on the heap.
    let mut idle = Server::new(config());
    let greeting = idle.transmit();
    println!(
        "\nidle server session: {} octets inline, its configuration shared through an Arc (greeting of {} octets already handed out; no input or body buffers allocated)",
        std::mem::size_of::<Server>(),
        greeting.len()
    );
}
