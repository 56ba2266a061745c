//! Mail authentication through the running server: DMARC policies,
//! alignment and missing records served by NSD, each case's
//! Authentication-Results compared field by field; forged results
//! removed; and end to end, mail submitted to one postel, signed, and
//! verified by another that is its domain's MX.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{Nsd, add_user, free_port, installed, local, python, run, serve, temp_dir, wait_mail};

const PASSWORD: &str = "s3cret-for-tests";

/// Generates a key with `postel dkim generate` in `dir`; the PEM file and
/// the zone line to publish.
fn generate_key(dir: &Path, domain: &str, selector: &str, algorithm: &str) -> (String, String) {
    if !dir.join("postel.toml").exists() {
        std::fs::write(dir.join("postel.toml"), "data_dir = \"data\"\n").unwrap();
    }
    let out = run(
        dir,
        &[
            "dkim",
            "generate",
            domain,
            "--selector",
            selector,
            "--algorithm",
            algorithm,
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("key = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("the key path")
        .to_owned();
    let record = text
        .lines()
        .find(|l| l.contains("._domainkey."))
        .expect("the TXT record")
        .to_owned();
    (dir.join(key).display().to_string(), record)
}

/// One Authentication-Results field, parsed: the authserv-id, then each
/// result as `method` (with `.helo` or `.mailfrom` for SPF) to its result
/// and properties.
#[derive(Debug)]
struct Results {
    id: String,
    methods: BTreeMap<String, (String, BTreeMap<String, String>)>,
}

fn results(message: &[u8]) -> Results {
    let text = String::from_utf8_lossy(message);
    let header = text.split("\r\n\r\n").next().unwrap();
    let unfolded = header.replace("\r\n\t", " ").replace("\r\n ", " ");
    let fields: Vec<&str> = unfolded
        .lines()
        .filter_map(|l| l.strip_prefix("Authentication-Results:"))
        .collect();
    assert_eq!(
        fields.len(),
        1,
        "one Authentication-Results field:\n{header}"
    );
    let mut parts = fields[0].split(';').map(str::trim);
    let id = parts.next().unwrap().to_owned();
    let mut methods = BTreeMap::new();
    for part in parts {
        let mut words = part.split_whitespace();
        let (method, result) = words.next().unwrap().split_once('=').unwrap();
        let props: BTreeMap<String, String> = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        let key = match method {
            "spf" if props.contains_key("smtp.helo") => "spf.helo".to_owned(),
            "spf" => "spf.mailfrom".to_owned(),
            "dkim" => props
                .get("header.s")
                .map_or_else(|| "dkim".to_owned(), |s| format!("dkim.{s}")),
            m => m.to_owned(),
        };
        methods.insert(key, (result.to_owned(), props));
    }
    Results { id, methods }
}

impl Results {
    fn result(&self, method: &str) -> &str {
        self.methods
            .get(method)
            .map_or("(absent)", |(r, _)| r.as_str())
    }

    fn property(&self, method: &str, property: &str) -> &str {
        self.methods
            .get(method)
            .and_then(|(_, p)| p.get(property))
            .map_or("(absent)", String::as_str)
    }
}

/// Sends one message from the address `source` (so SPF sees that client),
/// saying HELO `helo`; the server's reply to the end of data, or to
/// whatever command was refused.
fn send(to: SocketAddr, source: &str, helo: &str, from: &str, message: &[u8]) -> String {
    let script = r#"
import smtplib, sys
try:
    s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), local_hostname=sys.argv[4],
                     source_address=(sys.argv[3], 0), timeout=30)
    s.ehlo()
    code, text = s.mail(sys.argv[5])
    if code != 250:
        print(code, text.decode()); sys.exit(0)
    code, text = s.rcpt("bob@b.test")
    if code != 250:
        print(code, text.decode()); sys.exit(0)
    code, text = s.data(sys.stdin.buffer.read())
    print(code, text.decode())
    s.quit()
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([
            &to.ip().to_string(),
            &to.port().to_string(),
            source,
            helo,
            from,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), message).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn message(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: bob@b.test\r\nSubject: {subject}\r\n\
Date: Tue, 01 Dec 2026 12:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\n\r\nbody of {subject}\r\n"
    )
    .into_bytes()
}

/// The receiving server: mx for b.test on 127.0.0.2, checks on, DNS from
/// `nsd`.
fn receiver(nsd: &Nsd, extra: &str) -> (std::path::PathBuf, SocketAddr, common::Process) {
    let dir = temp_dir("auth-b");
    let addr = SocketAddr::from(([127, 0, 0, 2], free_port()));
    let config = format!(
        "hostname = \"mx.b.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"{addr}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"b.test\"\nmailboxes = [\"bob\"]\n[dns]\nservers = [\"{}\"]\ntimeout_secs = 2\n\
[authentication]\n{extra}\n",
        nsd.addr
    );
    let process = serve(&dir, &config, addr, false);
    (dir, addr, process)
}

const SOA: &str = "$ORIGIN test.\n$TTL 1\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 1\n@ IN NS ns\nns IN A 127.0.0.1\n";

#[test]
#[allow(clippy::too_many_lines)] // One DMARC case after another.
fn dmarc_policies_and_alignment_through_the_server() {
    if !installed("python3") {
        return;
    }
    let keys = temp_dir("auth-keys");
    let (key, record) = generate_key(&keys, "dkim.test", "sel", "ed25519");
    // 127.0.0.1 is authorized where SPF should pass; the clients that
    // should fail come from 127.0.0.9.
    let zone = format!(
        "{SOA}\
none IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n_dmarc.none IN TXT \"v=DMARC1; p=none\"\n\
quar IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n_dmarc.quar IN TXT \"v=DMARC1; p=quarantine\"\n\
rej IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n_dmarc.rej IN TXT \"v=DMARC1; p=reject; sp=none\"\n\
sub.rej IN A 192.0.2.1\nsub.rej IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
strict IN A 192.0.2.1\n_dmarc.strict IN TXT \"v=DMARC1; p=reject; aspf=s\"\n\
mail.strict IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
relaxed IN A 192.0.2.1\n_dmarc.relaxed IN TXT \"v=DMARC1; p=reject\"\n\
mail.relaxed IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
nodmarc IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
dkim IN TXT \"v=spf1 -all\"\n_dmarc.dkim IN TXT \"v=DMARC1; p=reject; adkim=s\"\n{record}\n"
    );
    let Some(nsd) = Nsd::start(&[("test", Some(&zone))]) else {
        return;
    };
    let (dir, b, _server) = receiver(&nsd, "");
    let mut delivered = 0;
    let mut check = |case: &str,
                     source: &str,
                     from: &str,
                     mail_from: &str,
                     body: Vec<u8>,
                     want: &[(&str, &str)],
                     reply: &str| {
        let got = send(b, source, "client.test", mail_from, &body);
        assert!(got.starts_with(reply), "{case}: {got}");
        if !reply.starts_with("250") {
            return;
        }
        delivered += 1;
        let mail = wait_mail(&dir, "b.test", "bob", delivered, Duration::from_secs(10));
        assert_eq!(mail.len(), delivered, "{case}: delivered");
        let r = results(mail.last().unwrap());
        assert_eq!(r.id, "mx.b.test", "{case}");
        for (method, result) in want {
            assert_eq!(r.result(method), *result, "{case}: {method} in {r:?}");
        }
        assert_eq!(
            r.property("dmarc", "header.from"),
            from.rsplit_once('@').map_or("(absent)", |(_, d)| d),
            "{case}: {r:?}"
        );
    };

    check(
        "p=none, SPF fail",
        "127.0.0.9",
        "a@none.test",
        "a@none.test",
        message("a@none.test", "none"),
        &[
            ("spf.mailfrom", "fail"),
            ("dkim", "none"),
            ("dmarc", "fail"),
        ],
        "250",
    );
    check(
        "p=quarantine, SPF fail: delivered, marked",
        "127.0.0.9",
        "a@quar.test",
        "a@quar.test",
        message("a@quar.test", "quar"),
        &[("spf.mailfrom", "fail"), ("dmarc", "fail")],
        "250",
    );
    check(
        "p=reject, SPF fail",
        "127.0.0.9",
        "a@rej.test",
        "a@rej.test",
        message("a@rej.test", "rej"),
        &[],
        "550 5.7.1",
    );
    check(
        "p=reject, SPF pass and aligned",
        "127.0.0.1",
        "a@rej.test",
        "a@rej.test",
        message("a@rej.test", "rej-ok"),
        &[("spf.mailfrom", "pass"), ("dmarc", "pass")],
        "250",
    );
    check(
        "sp=none for a subdomain",
        "127.0.0.9",
        "a@sub.rej.test",
        "a@sub.rej.test",
        message("a@sub.rej.test", "sub"),
        &[("spf.mailfrom", "fail"), ("dmarc", "fail")],
        "250",
    );
    check(
        "strict SPF alignment, organizational match only",
        "127.0.0.1",
        "a@strict.test",
        "bounce@mail.strict.test",
        message("a@strict.test", "strict"),
        &[],
        "550 5.7.1",
    );
    check(
        "relaxed SPF alignment",
        "127.0.0.1",
        "a@relaxed.test",
        "bounce@mail.relaxed.test",
        message("a@relaxed.test", "relaxed"),
        &[("spf.mailfrom", "pass"), ("dmarc", "pass")],
        "250",
    );
    check(
        "no DMARC record",
        "127.0.0.9",
        "a@nodmarc.test",
        "a@nodmarc.test",
        message("a@nodmarc.test", "nodmarc"),
        &[("spf.mailfrom", "fail"), ("dmarc", "none")],
        "250",
    );

    // DKIM-only alignment: SPF fails, the signature of dkim.test passes.
    let mut signer = postel_auth::Signer::default();
    signer.load("dkim.test", "sel", Path::new(&key)).unwrap();
    let unsigned = message("a@dkim.test", "dkim");
    let signed = [
        signer.sign(&unsigned).unwrap().unwrap().as_bytes(),
        &unsigned,
    ]
    .concat();
    check(
        "DKIM-only alignment",
        "127.0.0.9",
        "a@dkim.test",
        "a@dkim.test",
        signed.clone(),
        &[
            ("spf.mailfrom", "fail"),
            ("dkim.sel", "pass"),
            ("dmarc", "pass"),
        ],
        "250",
    );
    // Changed on the way: the signature breaks, and p=reject applies.
    let broken = String::from_utf8(signed)
        .unwrap()
        .replace("body of dkim", "body of spam")
        .into_bytes();
    check(
        "DKIM broken",
        "127.0.0.9",
        "a@dkim.test",
        "a@dkim.test",
        broken,
        &[],
        "550 5.7.1",
    );

    // A forged field with our authserv-id is removed; a foreign one stays.
    let forged = [
        b"Authentication-Results: mx.b.test; dmarc=pass header.from=rej.test\r\n".as_slice(),
        b"Authentication-Results: elsewhere.example; spf=pass\r\n",
        &message("a@nodmarc.test", "forged"),
    ]
    .concat();
    let got = send(b, "127.0.0.1", "client.test", "a@nodmarc.test", &forged);
    assert!(got.starts_with("250"), "{got}");
    delivered += 1;
    let mail = wait_mail(&dir, "b.test", "bob", delivered, Duration::from_secs(10));
    let text = String::from_utf8_lossy(mail.last().unwrap()).into_owned();
    assert_eq!(
        text.matches("Authentication-Results: mx.b.test").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("Authentication-Results: elsewhere.example; spf=pass\r\n"),
        "{text}"
    );
    assert!(!text.contains("header.from=rej.test"), "{text}");
    // Ours is above the Received field, below the delivery's own fields.
    assert!(
        text.starts_with("Return-Path: <a@nodmarc.test>\r\nDelivered-To: bob@b.test\r\nAuthentication-Results: mx.b.test;"),
        "{text}"
    );
    assert!(text.find("Received:") > text.find("Authentication-Results: mx.b.test"));
}

#[test]
fn policy_keys_hold_refuse_and_record() {
    if !installed("python3") {
        return;
    }
    let zone = format!(
        "{SOA}quar IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n_dmarc.quar IN TXT \"v=DMARC1; p=quarantine\"\n\
softly IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n"
    );
    // slow.test is configured without data: NSD answers SERVFAIL there.
    let Some(nsd) = Nsd::start(&[("test", Some(&zone)), ("slow.test", None)]) else {
        return;
    };
    let (dir, b, _server) = receiver(&nsd, "dmarc_quarantine = \"hold\"\nspf_fail = \"reject\"\n");
    // p=quarantine held in the queue, not delivered.
    let got = send(
        b,
        "127.0.0.1",
        "client.test",
        "a@softly.test",
        &message("a@quar.test", "held"),
    );
    assert!(got.starts_with("250"), "{got}");
    let shown = run(&dir, &["queue", "list"], "");
    let list = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(list.contains(" HELD"), "{list}");
    assert!(common::mail(&dir, "b.test", "bob").is_empty());
    // spf_fail = reject: refused at MAIL with the SPF code of RFC 7372.
    let got = send(
        b,
        "127.0.0.9",
        "client.test",
        "a@softly.test",
        &message("a@softly.test", "spf"),
    );
    assert!(got.starts_with("550 5.7.23"), "{got}");
    // A name whose servers do not answer: 451, never a silent pass.
    let got = send(
        b,
        "127.0.0.9",
        "client.test",
        "a@slow.test",
        &message("a@slow.test", "slow"),
    );
    assert!(got.starts_with("451 4.7.24"), "{got}");

    // dns_failure = accept: taken, and the failure recorded, not hidden.
    let (dir, b, _server) = receiver(&nsd, "dns_failure = \"accept\"\n");
    let got = send(
        b,
        "127.0.0.9",
        "client.test",
        "a@slow.test",
        &message("a@slow.test", "slow"),
    );
    assert!(got.starts_with("250"), "{got}");
    let mail = wait_mail(&dir, "b.test", "bob", 1, Duration::from_secs(10));
    let r = results(&mail[0]);
    assert_eq!(r.result("spf.mailfrom"), "temperror", "{r:?}");
    assert_eq!(r.result("dmarc"), "temperror", "{r:?}");
}

#[test]
fn submitted_mail_is_signed_by_one_postel_and_verified_by_the_other() {
    if !installed("python3") {
        return;
    }
    let a_dir = temp_dir("auth-a");
    let (ed_key, ed_record) = generate_key(&a_dir, "a.test", "ed", "ed25519");
    let (rsa_key, rsa_record) = generate_key(&a_dir, "a.test", "rsa", "rsa");
    let zone = format!(
        "{SOA}a IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\nmail.a IN TXT \"v=spf1 ip4:127.0.0.1 -all\"\n\
_dmarc.a IN TXT \"v=DMARC1; p=reject\"\n{ed_record}\n{rsa_record}\n\
b IN MX 10 mx.b\nmx.b IN A 127.0.0.2\n"
    );
    let Some(nsd) = Nsd::start(&[("test", Some(&zone))]) else {
        return;
    };
    let (b_dir, b, _b) = receiver(&nsd, "");
    let submission = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{submission}\"\nrole = \"submission\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nport = {}\n[dns]\nservers = [\"{}\"]\ntimeout_secs = 2\n\
[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n\
[authentication]\n\
[[dkim]]\ndomain = \"a.test\"\nselector = \"ed\"\nkey = \"{ed_key}\"\n\
[[dkim]]\ndomain = \"a.test\"\nselector = \"rsa\"\nkey = \"{rsa_key}\"\n",
        b.port(),
        nsd.addr
    );
    std::fs::write(a_dir.join("postel.toml"), &config).unwrap();
    add_user(&a_dir, "alice@a.test", PASSWORD);
    let _a = serve(&a_dir, &config, local(submission), true);
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.starttls(context=ctx)
    s.login("alice@a.test", sys.argv[2])
    msg = (b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: signed\r\n"
           b"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\nMessage-ID: <signed@a.test>\r\n\r\nhello Bob\r\n")
    s.sendmail("alice@a.test", ["bob@b.test"], msg)
"#;
    python(script, &[&submission.to_string(), PASSWORD]);
    let mail = wait_mail(&b_dir, "b.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(mail.len(), 1, "delivered to B");
    let r = results(&mail[0]);
    assert_eq!(r.result("spf.mailfrom"), "pass", "{r:?}");
    assert_eq!(r.result("spf.helo"), "pass", "{r:?}");
    assert_eq!(r.result("dkim.ed"), "pass", "{r:?}");
    assert_eq!(r.property("dkim.ed", "header.a"), "ed25519-sha256");
    assert_eq!(r.result("dkim.rsa"), "pass", "{r:?}");
    assert_eq!(r.property("dkim.rsa", "header.d"), "a.test");
    assert_eq!(r.result("dmarc"), "pass", "{r:?}");
    assert_eq!(r.property("dmarc", "header.from"), "a.test");
    assert_eq!(r.property("dmarc", "policy.dmarc"), "reject");

    // A bounce A writes (B has no such user) is signed for a.test too:
    // From MAILER-DAEMON@mail.a.test, signed by its parent's keys.
    python(
        &script.replace("[\"bob@b.test\"]", "[\"nobody@b.test\"]"),
        &[&submission.to_string(), PASSWORD],
    );
    let bounces = wait_mail(&a_dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(bounces.len(), 1, "the bounce reached alice");
    let bounce = String::from_utf8_lossy(&bounces[0]).into_owned();
    assert!(
        bounce.contains("From: Mail Delivery System <MAILER-DAEMON@mail.a.test>"),
        "{bounce}"
    );
    let bounce_header = bounce.split("\r\n\r\n").next().unwrap();
    assert_eq!(
        bounce_header.matches("DKIM-Signature: v=1;").count(),
        2,
        "{bounce}"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut dns = postel_mx::DnsConfig::default();
    (dns.servers, dns.timeout, dns.attempts) = (vec![nsd.addr], Duration::from_secs(2), 1);
    let verdict = runtime.block_on(async {
        let auth = postel_auth::Authenticator::new(&dns, "check.test").unwrap();
        auth.verify(common::without_trace(&bounces[0]), None).await
    });
    assert!(
        verdict
            .dkim
            .iter()
            .all(|d| d.outcome == postel_auth::Outcome::Pass && d.domain == "a.test"),
        "{}",
        verdict.header()
    );

    // The same From, sent to B directly from a client a.test does not
    // authorize: refused by a.test's policy.
    let got = send(
        b,
        "127.0.0.9",
        "forger.test",
        "alice@a.test",
        &message("alice@a.test", "forged"),
    );
    assert!(got.starts_with("550 5.7.1"), "{got}");
}
