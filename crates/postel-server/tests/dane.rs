//! DANE for delivery (RFC 7672), against NSD serving a zone signed by
//! ldns-signzone and validated from the trust anchor the sender is given:
//! TLSA 3 1 1 and 2 0 1 records that match deliver over TLS; a record that
//! matches nothing, TLSA records whose signatures do not verify, and an
//! exchanger that does not offer STARTTLS defer the mail, never sending it
//! in cleartext; the next exchanger is tried; a name without TLSA records
//! and a zone proven unsigned fall back to opportunistic TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Nsd, PASSWORD, add_user, free_port, installed, issue, serve, submit, temp_dir};

/// The lower-case hex SHA-256 of what `pipeline` (a shell pipeline run in
/// `dir`) writes.
fn sha256_of(dir: &Path, pipeline: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("{pipeline} | openssl dgst -sha256 -r")])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{pipeline}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.split_whitespace().next().unwrap().to_owned();
    assert_eq!(hex.len(), 64, "{text}");
    hex
}

/// Signs `zone` (origin `test.`) with a fresh key in `dir`: the signed
/// text, with the RRSIG of `corrupt`'s records altered, and the trust
/// anchor file.
fn sign(dir: &Path, zone: &str, corrupt: &str) -> (String, String) {
    std::fs::write(dir.join("test.zone"), zone).unwrap();
    let key = Command::new("ldns-keygen")
        .args(["-a", "ECDSAP256SHA256", "-k", "test"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(key.status.success(), "{key:?}");
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let signed = Command::new("ldns-signzone")
        .args(["-n", "test.zone", &key])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(signed.status.success(), "{signed:?}");
    let text = std::fs::read_to_string(dir.join("test.zone.signed")).unwrap();
    let mut altered = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first() == Some(&corrupt) && fields.get(3) == Some(&"RRSIG") {
                altered = true;
                let (head, sig) = line.rsplit_once(' ').unwrap();
                let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
                return format!("{head} {flipped}{}", &sig[1..]);
            }
            line.to_owned()
        })
        .collect();
    assert!(altered, "no RRSIG for {corrupt}");
    let anchor = std::fs::read_to_string(dir.join(format!("{key}.key"))).unwrap();
    let anchor_file = dir.join("anchor.key");
    // The key file's comment is not zone file syntax for every reader.
    let anchor = anchor.split(';').next().unwrap().trim().to_owned();
    std::fs::write(&anchor_file, format!("{anchor}\n")).unwrap();
    (lines.join("\n") + "\n", anchor_file.display().to_string())
}

/// A receiving postel on `addr` for `domains` (mailbox `bob` each), with
/// the certificate chain `tls`, or none: no STARTTLS.
fn receiver(label: &str, addr: SocketAddr, domains: &[&str], tls: Option<(&str, &str)>) -> Rx {
    use std::fmt::Write as _;
    let dir = temp_dir(label);
    let mut config = format!(
        "hostname = \"mx.{label}.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"{addr}\"\nrole = \"mx\"\n"
    );
    for d in domains {
        let _ = write!(
            config,
            "[[domain]]\nname = \"{d}\"\nmailboxes = [\"bob\"]\n"
        );
    }
    if let Some((cert, key)) = tls {
        let _ = write!(config, "[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n");
    }
    let process = serve(&dir, &config, addr, false);
    Rx { dir, process }
}

struct Rx {
    dir: std::path::PathBuf,
    process: common::Process,
}

impl Rx {
    fn got(&self, domain: &str) -> Vec<String> {
        common::mail(&self.dir, domain, "bob")
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    }
}

/// The signed zone `test.` (one domain per case, TLSA records made from
/// the certificates in `certs`), the unsigned `plain.test.`, the trust
/// anchor file, and the TLSA 3 1 1 data of the exchangers' certificate.
fn zones(certs: &Path) -> (String, String, String, String) {
    let ee = sha256_of(
        certs,
        "openssl x509 -in mx.pem -noout -pubkey | openssl pkey -pubin -outform DER",
    );
    let ta = sha256_of(certs, "openssl x509 -in ca.pem -outform DER");
    let other = "00".repeat(32);

    let zone = format!(
        "$ORIGIN test.\n$TTL 300\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n\
@ IN NS ns\nns IN A 127.0.0.1\n\
ee IN MX 10 mx.ee\nmx.ee IN A 127.0.0.2\n_25._tcp.mx.ee IN TLSA 3 1 1 {ee}\n\
ta IN MX 10 mx.ta\nmx.ta IN A 127.0.0.2\n_25._tcp.mx.ta IN TLSA 2 0 1 {ta}\n\
wrong IN MX 10 mx.wrong\nmx.wrong IN A 127.0.0.2\n_25._tcp.mx.wrong IN TLSA 3 1 1 {other}\n\
fallback IN MX 10 mx.wrong\nfallback IN MX 20 mx.ee\n\
bogus IN MX 10 mx.bogus\nmx.bogus IN A 127.0.0.2\n_25._tcp.mx.bogus IN TLSA 3 1 1 {ee}\n\
strip IN MX 10 mx.strip\nmx.strip IN A 127.0.0.3\n_25._tcp.mx.strip IN TLSA 3 1 1 {ee}\n\
none IN MX 10 mx.none\nmx.none IN A 127.0.0.3\n\
plain IN NS ns\n"
    );
    let (signed, anchor) = sign(certs, &zone, "_25._tcp.mx.bogus.test.");
    // Delegated without a DS record: proven unsigned, so its TLSA record,
    // which would match nothing, does not count.
    let plain = format!(
        "$ORIGIN plain.test.\n$TTL 300\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n\
@ IN NS ns.test.\n@ IN MX 10 mx\nmx IN A 127.0.0.3\n_25._tcp.mx IN TLSA 3 1 1 {other}\n"
    );
    (signed, plain, anchor, ee)
}

/// What `tls-policy check` says of the cases.
fn explained(a_dir: &Path, ee: &str) {
    // What `tls-policy check` says of them.
    let check = |domain: &str| {
        let out = common::run(a_dir, &["tls-policy", "check", domain], "");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ee_check = check("ee.test");
    assert!(
        ee_check.contains(&format!("mx.ee.test: DANE, TLSA 3 1 1 {ee}")),
        "{ee_check}"
    );
    let bogus_check = check("bogus.test");
    assert!(
        bogus_check.contains("DNSSEC validation failed"),
        "{bogus_check}"
    );
    let plain_check = check("plain.test");
    assert!(plain_check.contains("not signed"), "{plain_check}");
}

#[test]
fn dane_authenticates_defers_and_falls_back() {
    for tool in ["python3", "openssl", "ldns-keygen", "ldns-signzone"] {
        if !installed(tool) {
            return;
        }
    }
    let certs = temp_dir("dane-ca");
    let names = ["mx.ee.test", "mx.ta.test", "mx.wrong.test", "mx.bogus.test"];
    issue(&certs, &[("mx", &names)]);
    let chain = certs.join("chain.pem");
    let pem = |f: &str| std::fs::read_to_string(certs.join(f)).unwrap();
    std::fs::write(&chain, pem("mx.pem") + &pem("ca.pem")).unwrap();
    let (signed, plain, anchor, ee) = zones(&certs);
    let Some(nsd) = Nsd::start(&[("test", Some(&signed)), ("plain.test", Some(&plain))]) else {
        return;
    };

    let port = free_port();
    let chain_path = chain.display().to_string();
    let key_path = certs.join("mx.key").display().to_string();
    let b = receiver(
        "dane-b",
        SocketAddr::from(([127, 0, 0, 2], port)),
        &[
            "ee.test",
            "ta.test",
            "wrong.test",
            "fallback.test",
            "bogus.test",
        ],
        Some((&chain_path, &key_path)),
    );
    let c = receiver(
        "dane-c",
        SocketAddr::from(([127, 0, 0, 3], port)),
        &["strip.test", "none.test", "plain.test"],
        None,
    );

    let a_dir = temp_dir("dane-a");
    let submission = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{submission}\"\nrole = \"submission\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nport = {port}\n\
[dns]\nservers = [\"{}\"]\ntimeout_secs = 2\ndnssec = true\ntrust_anchor = \"{anchor}\"\n\
[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n",
        nsd.addr
    );
    common::write_config(&a_dir, &config);
    add_user(&a_dir, "alice@a.test", PASSWORD);
    let a = serve(&a_dir, &config, common::local(submission), true);

    for domain in [
        "ee", "ta", "fallback", "wrong", "bogus", "strip", "none", "plain",
    ] {
        submit(submission, &format!("bob@{domain}.test"), domain, false);
    }
    let wait = |rx: &Rx, domain: &str| {
        common::wait_mail(&rx.dir, domain, "bob", 1, Duration::from_secs(20));
        rx.got(domain)
    };
    for domain in ["ee.test", "ta.test", "fallback.test"] {
        let got = wait(&b, domain);
        assert_eq!(got.len(), 1, "{domain}: delivered");
        assert!(
            got[0].contains("by mx.dane-b.test (Postel) with ESMTPS\r\n"),
            "{domain} over TLS: {}",
            got[0]
        );
    }
    for domain in ["none.test", "plain.test"] {
        let got = wait(&c, domain);
        assert_eq!(got.len(), 1, "{domain}: delivered without DANE");
        assert!(
            got[0].contains("by mx.dane-c.test (Postel) with ESMTP\r\n"),
            "in plaintext: {}",
            got[0]
        );
    }
    // Retried every second for a few seconds: still queued, never sent.
    std::thread::sleep(Duration::from_secs(4));
    assert!(b.got("wrong.test").is_empty(), "no TLSA record matches");
    assert!(b.got("bogus.test").is_empty(), "bogus TLSA records");
    assert!(c.got("strip.test").is_empty(), "never in cleartext");
    assert!(
        common::mail(&a_dir, "a.test", "alice").is_empty(),
        "deferred, not bounced"
    );
    let listed = common::run(&a_dir, &["queue", "list"], "");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert_eq!(listed.matches("pending 1/1").count(), 3, "{listed}");
    let log = a.log_text();
    assert!(log.contains("matches no TLSA record"), "{log}");
    assert!(log.contains("DNSSEC validation failed"), "{log}");

    explained(&a_dir, &ee);
    drop((b.process, c.process));
}
