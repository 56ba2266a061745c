//! What mail authentication costs per message, beside a plain copy of the
//! same octets: DKIM signing (ed25519-sha256, rsa-sha256, both as the
//! server signs), and verifying a message with both signatures plus its
//! DMARC evaluation (the resolver's cache answering, as it does for a
//! sender seen before). Messages of 4 KiB and 256 KiB.

// A benchmark that meets unexpected input should stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use postel_auth::{Algorithm, Authenticator, DnsConfig, Outcome, Signer, generate};
use postel_testkit::dns::{DnsServer, Rr, Zone};

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n\
Subject: A report\r\nDate: Tue, 01 Dec 2026 12:00:00 +0000\r\n\
Message-ID: <report@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain\r\n\r\n"
        .to_vec();
    let line = b"The quarterly figures are attached below, line after line of them.\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let ed = generate(Algorithm::Ed25519).unwrap();
    let rsa = generate(Algorithm::Rsa).unwrap();
    let one = |domain: &str, selector: &str, pem: &str| {
        let mut s = Signer::default();
        s.add(domain, selector, pem).unwrap();
        s
    };
    let ed_signer = one("example.com", "ed", &ed.private_pem);
    let rsa_signer = one("example.com", "rsa", &rsa.private_pem);
    let mut both = one("example.com", "ed", &ed.private_pem);
    both.add("example.com", "rsa", &rsa.private_pem).unwrap();

    let mut zone = Zone::default();
    for (name, record) in [
        ("ed._domainkey.example.com", &ed.dns_record),
        ("rsa._domainkey.example.com", &rsa.dns_record),
    ] {
        zone.add(
            name,
            Rr::Txt(record.as_bytes().chunks(255).map(<[u8]>::to_vec).collect()),
        );
    }
    zone.add(
        "_dmarc.example.com",
        Rr::Txt(vec![b"v=DMARC1; p=reject".to_vec()]),
    );
    let server = DnsServer::start(zone);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = runtime.block_on(async {
        let dns = DnsConfig {
            servers: vec![server.addr],
            timeout: Duration::from_secs(2),
            attempts: 1,
            ..Default::default()
        };
        Authenticator::new(&dns, "mx.example.net").unwrap()
    });

    for size in [4 * 1024, 256 * 1024] {
        let m = message(size);
        let signed = [both.sign(&m).unwrap().unwrap().as_bytes(), &m].concat();
        let verdict = runtime.block_on(auth.verify(&signed, None));
        assert!(
            verdict.dkim.iter().all(|d| d.outcome == Outcome::Pass),
            "{}",
            verdict.header()
        );
        let mut g = c.benchmark_group(format!("auth-{}KiB", size / 1024));
        g.throughput(Throughput::Bytes(m.len() as u64));
        g.bench_function("copy", |b| b.iter(|| black_box(black_box(&m).clone())));
        g.bench_function("sign-ed25519", |b| {
            b.iter(|| black_box(ed_signer.sign(black_box(&m)).unwrap()));
        });
        g.bench_function("sign-rsa", |b| {
            b.iter(|| black_box(rsa_signer.sign(black_box(&m)).unwrap()));
        });
        g.bench_function("sign-both", |b| {
            b.iter(|| black_box(both.sign(black_box(&m)).unwrap()));
        });
        g.bench_function("verify-both-and-dmarc", |b| {
            b.iter(|| black_box(runtime.block_on(auth.verify(black_box(&signed), None))));
        });
        g.finish();
    }
    c.final_summary();
    drop(server);
}
