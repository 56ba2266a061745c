//! TLS for delivery between postel instances. REQUIRETLS (RFC 8689): a message submitted
//! with `MAIL FROM ... REQUIRETLS` is relayed only over TLS whose
//! certificate verifies for the exchanger's name, to a server that offers
//! REQUIRETLS; where that cannot be had it bounces with 5.7.30, the bounce
//! carrying the header fields only. Certificates come from openssl: a test
//! CA that the sender trusts through `[relay] ca_file`, and a self-signed
//! one it does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    Nsd, PASSWORD, add_user, free_port, installed, issue, local, python, serve, submit, temp_dir,
    wait_mail,
};

/// (ca.pem, cert, key) for `name`.
fn issued(dir: &Path, name: &str) -> (String, String, String) {
    let ca = issue(dir, &[("mx", &[name])]);
    let p = |f: &str| dir.join(f).display().to_string();
    (ca, p("mx.pem"), p("mx.key"))
}

/// A receiving postel for `domain` (mailbox `bob`) on `addr`, with the
/// certificate `tls` (`None`: a self-signed one).
fn receiver(
    label: &str,
    addr: SocketAddr,
    domain: &str,
    tls: Option<(&str, &str)>,
) -> (std::path::PathBuf, common::Process) {
    let dir = temp_dir(label);
    let tls_keys = tls.map_or(String::new(), |(cert, key)| {
        format!("[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n")
    });
    let config = format!(
        "hostname = \"mx.{domain}\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"{addr}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"{domain}\"\nmailboxes = [\"bob\"]\n{tls_keys}"
    );
    let process = serve(&dir, &config, addr, tls.is_none());
    (dir, process)
}

/// B (a certificate from the test CA, which A trusts) and C (self-signed)
/// on NSD's MX records, and A, a submission server relaying to them with
/// `policies` added to its configuration.
struct World {
    a_dir: std::path::PathBuf,
    b_dir: std::path::PathBuf,
    c_dir: std::path::PathBuf,
    submission: u16,
    _peers: (Nsd, common::Process, common::Process, common::Process),
}

fn world(label: &str, policies: &str) -> Option<World> {
    if !installed("python3") || !installed("openssl") {
        return None;
    }
    let certs = temp_dir(&format!("{label}-ca"));
    let (ca, cert, key) = issued(&certs, "mx.b.test");
    let zone = "$ORIGIN test.\n$TTL 1\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 1\n@ IN NS ns\n\
ns IN A 127.0.0.1\nb IN MX 10 mx.b\nmx.b IN A 127.0.0.2\nc IN MX 10 mx.c\nmx.c IN A 127.0.0.3\n";
    let nsd = Nsd::start(&[("test", Some(zone))])?;
    let port = free_port();
    let (b_dir, b) = receiver(
        &format!("{label}-b"),
        SocketAddr::from(([127, 0, 0, 2], port)),
        "b.test",
        Some((&cert, &key)),
    );
    let (c_dir, c) = receiver(
        &format!("{label}-c"),
        SocketAddr::from(([127, 0, 0, 3], port)),
        "c.test",
        None,
    );
    let a_dir = temp_dir(&format!("{label}-a"));
    let submission = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{submission}\"\nrole = \"submission\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nport = {port}\nca_file = \"{ca}\"\n[dns]\nservers = [\"{}\"]\ntimeout_secs = 2\n\
[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n{policies}",
        nsd.addr
    );
    common::write_config(&a_dir, &config);
    add_user(&a_dir, "alice@a.test", PASSWORD);
    let a = serve(&a_dir, &config, local(submission), true);
    Some(World {
        a_dir,
        b_dir,
        c_dir,
        submission,
        _peers: (nsd, a, b, c),
    })
}

#[test]
fn requiretls_goes_only_over_verified_tls_and_bounces_with_5_7_30() {
    let Some(w) = world("requiretls", "") else {
        return;
    };
    let (submission, a_dir, b_dir, c_dir) = (w.submission, &w.a_dir, &w.b_dir, &w.c_dir);

    // Offered only under TLS.
    let seen = submit(submission, "bob@b.test", "verified", true);
    assert_eq!(seen.trim(), "before False after True");
    let mail = wait_mail(b_dir, "b.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(mail.len(), 1, "delivered over verified TLS");
    let text = String::from_utf8_lossy(&mail[0]).into_owned();
    assert!(text.contains("with ESMTPS"), "{text}");

    // mx.c.test's certificate is its own: not verified, so not sent.
    submit(submission, "bob@c.test", "unverified", true);
    let bounces = wait_mail(a_dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(bounces.len(), 1, "bounced");
    let bounce = String::from_utf8_lossy(&bounces[0]).into_owned();
    assert!(bounce.contains("5.7.30"), "{bounce}");
    assert!(bounce.contains("Subject: unverified"), "{bounce}");
    assert!(
        !bounce.contains("the confidential body"),
        "headers only: {bounce}"
    );
    assert!(
        common::mail(c_dir, "c.test", "bob").is_empty(),
        "never sent to C"
    );

    // Without REQUIRETLS, opportunistic TLS takes C's certificate.
    submit(submission, "bob@c.test", "opportunistic", false);
    let mail = wait_mail(c_dir, "c.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(mail.len(), 1);
}

#[test]
fn operator_tls_policies_verify_defer_and_none() {
    let Some(w) = world(
        "tls-policy",
        "[[tls_policy]]\ndomain = \"b.test\"\nmode = \"none\"\n\
[[tls_policy]]\ndomain = \"c.test\"\nmode = \"verify\"\n",
    ) else {
        return;
    };
    // none: B offers STARTTLS, but the mail goes in plaintext.
    submit(w.submission, "bob@b.test", "plain", false);
    let mail = wait_mail(&w.b_dir, "b.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(mail.len(), 1);
    let text = String::from_utf8_lossy(&mail[0]).into_owned();
    assert!(
        text.contains("with ESMTP\r\n") || text.contains("with ESMTP;"),
        "{text}"
    );
    // verify: C's certificate does not verify: deferred, never sent, and
    // still queued after several retries (1 s apart).
    submit(w.submission, "bob@c.test", "must-verify", false);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        common::mail(&w.c_dir, "c.test", "bob").is_empty(),
        "never sent to C"
    );
    assert!(
        common::mail(&w.a_dir, "a.test", "alice").is_empty(),
        "deferred, not bounced"
    );
    let listed = common::run(&w.a_dir, &["queue", "list"], "");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("from <alice@a.test>") && listed.contains("pending 1/1"),
        "{listed}"
    );
    let shown = common::run(&w.a_dir, &["tls-policy", "check", "c.test"], "");
    assert!(String::from_utf8_lossy(&shown.stdout).contains("(tls_policy verify)"));
}

/// Serves `dir/HOST.txt` as `https://HOST/.well-known/mta-sts.txt` on
/// `ip`:443, with a certificate from the test CA; takes TLS reports
/// posted to `/tlsrpt` into `dir/posted-N.HOST.gz`.
fn policy_server(ip: &str, dir: &Path, cert: &str, key: &str) -> common::Process {
    let script = r#"
import http.server, os, ssl, sys
ip, root, cert, key = sys.argv[1:5]
class Policy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        path = os.path.join(root, host + ".txt")
        if self.path != "/.well-known/mta-sts.txt" or not os.path.exists(path):
            self.send_error(404); return
        body = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != "/tlsrpt" or self.headers.get("Content-Type") != "application/tlsrpt+gzip":
            self.send_error(400); return
        n = len([f for f in os.listdir(root) if f.startswith("posted-")])
        open(os.path.join(root, "posted-%d.%s.gz" % (n, host)), "wb").write(body)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer((ip, 443), Policy)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;
    let addr: SocketAddr = format!("{ip}:443").parse().unwrap();
    common::Process::start(
        Path::new("/usr/bin/python3"),
        &["-c", script, ip, &dir.display().to_string(), cert, key],
        dir,
        addr,
    )
}

const STS_ZONE: &str = "$ORIGIN test.\n$TTL 1\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 1\n@ IN NS ns\n\
ns IN A 127.0.0.1\n\
b IN MX 10 mx.b\nmx.b IN A 127.0.0.2\n_mta-sts.b IN TXT \"v=STSv1; id=1\"\nmta-sts.b IN A 127.0.0.4\n\
c IN MX 10 mx.c\nmx.c IN A 127.0.0.3\n_mta-sts.c IN TXT \"v=STSv1; id=1\"\nmta-sts.c IN A 127.0.0.4\n\
d IN MX 10 mx.d\nmx.d IN A 127.0.0.5\n_mta-sts.d IN TXT \"v=STSv1; id=1\"\nmta-sts.d IN A 127.0.0.4\n\
e IN MX 10 mx.e\nmx.e IN A 127.0.0.3\n_mta-sts.e IN TXT \"v=STSv1; id=1\"\nmta-sts.e IN A 127.0.0.4\n\
f IN MX 10 other.f\nother.f IN A 127.0.0.2\n_mta-sts.f IN TXT \"v=STSv1; id=1\"\nmta-sts.f IN A 127.0.0.4\n\
_smtp._tls.b IN TXT \"v=TLSRPTv1; rua=mailto:reports@a.test\"\n_smtp._tls.c IN TXT \"v=TLSRPTv1; rua=mailto:reports@a.test\"\n\
_smtp._tls.d IN TXT \"v=TLSRPTv1; rua=mailto:reports@a.test,https://reports.test/tlsrpt\"\n\
reports IN A 127.0.0.4\n\
_smtp._tls.e IN TXT \"v=TLSRPTv1; rua=mailto:reports@a.test\"\n\
g IN MX 10 mx.g\nmx.g IN A 127.0.0.3\n_mta-sts.g IN TXT \"v=STSv1; id=1\"\nmta-sts.g IN A 127.0.0.4\n\
_smtp._tls.g IN TXT \"v=TLSRPTv1; rua=mailto:reports@a.test\"\n\
h IN MX 10 mx.h\nmx.h IN A 127.0.0.3\n_mta-sts.h IN TXT \"v=STSv1; id=1\"\nmta-sts.h IN A 127.0.0.4\n\
_smtp._tls.h IN TXT \"v=TLSRPTv1; rua=mailto:reports@a.test\"\n";

fn enforce(mx: &str) -> String {
    format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 86400\n")
}

/// MTA-STS (RFC 8461) through the server: an enforced policy sends only
/// to the exchangers it names, over TLS whose certificate verifies, and
/// defers otherwise (a certificate for another name, STARTTLS missing, an
/// exchanger the policy does not name); testing mode delivers; the policy
/// survives a restart while the policy server is gone; a new id is
/// fetched again.
#[test]
#[allow(clippy::too_many_lines)] // One case after another, on one set-up.
fn mta_sts_policies_are_fetched_cached_and_enforced() {
    if !installed("python3") || !installed("openssl") {
        return;
    }
    let certs = temp_dir("sts-ca");
    let ca = issue(
        &certs,
        &[
            ("b", &["mx.b.test", "other.f.test"]),
            ("wrong", &["wrong.test"]),
            (
                "sts",
                &[
                    "mta-sts.b.test",
                    "mta-sts.c.test",
                    "mta-sts.d.test",
                    "mta-sts.e.test",
                    "mta-sts.f.test",
                    "mta-sts.h.test",
                    "reports.test",
                ],
            ),
        ],
    );
    let pem = |f: &str| certs.join(f).display().to_string();
    let policies = temp_dir("sts-policies");
    std::fs::write(policies.join("mta-sts.b.test.txt"), enforce("mx.b.test")).unwrap();
    std::fs::write(policies.join("mta-sts.c.test.txt"), enforce("*.c.test")).unwrap();
    std::fs::write(policies.join("mta-sts.d.test.txt"), enforce("mx.d.test")).unwrap();
    std::fs::write(
        policies.join("mta-sts.e.test.txt"),
        "version: STSv1\nmode: testing\nmx: mx.e.test\nmax_age: 86400\n",
    )
    .unwrap();
    std::fs::write(policies.join("mta-sts.f.test.txt"), enforce("mx.f.test")).unwrap();
    let mut https = policy_server("127.0.0.4", &policies, &pem("sts.pem"), &pem("sts.key"));
    let Some(nsd) = Nsd::start(&[("test", Some(STS_ZONE))]) else {
        return;
    };
    let port = free_port();
    let (b_dir, _b) = receiver(
        "sts-b",
        SocketAddr::from(([127, 0, 0, 2], port)),
        "b.test",
        Some((&pem("b.pem"), &pem("b.key"))),
    );
    // C (and E on the same address) holds a certificate from the CA, but
    // for another name.
    let c_dir = temp_dir("sts-c");
    let c_addr = SocketAddr::from(([127, 0, 0, 3], port));
    let c_config = format!(
        "hostname = \"mx.c.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"{c_addr}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"c.test\"\nmailboxes = [\"bob\"]\n[[domain]]\nname = \"e.test\"\nmailboxes = [\"bob\"]\n\
[[domain]]\nname = \"g.test\"\nmailboxes = [\"bob\"]\n[[domain]]\nname = \"h.test\"\nmailboxes = [\"bob\"]\n\
[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        pem("wrong.pem"),
        pem("wrong.key")
    );
    let _c = serve(&c_dir, &c_config, c_addr, false);
    // D offers no STARTTLS at all.
    let (d_dir, _d) = {
        let dir = temp_dir("sts-d");
        let addr = SocketAddr::from(([127, 0, 0, 5], port));
        let config = format!(
            "hostname = \"mx.d.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"{addr}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"d.test\"\nmailboxes = [\"bob\"]\n"
        );
        let p = serve(&dir, &config, addr, false);
        (dir, p)
    };

    let a_dir = temp_dir("sts-a");
    let submission = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{submission}\"\nrole = \"submission\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\", \"reports\"]\n\
[relay]\nport = {port}\nca_file = \"{ca}\"\ntls_rpt_interval_secs = 8\n[dns]\nservers = [\"{}\"]\ntimeout_secs = 2\n\
[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n",
        nsd.addr
    );
    common::write_config(&a_dir, &config);
    add_user(&a_dir, "alice@a.test", PASSWORD);
    let mut a = serve(&a_dir, &config, local(submission), true);

    // Enforced, named, verified: delivered over TLS.
    submit(submission, "bob@b.test", "sts-ok", false);
    let mail = wait_mail(&b_dir, "b.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(mail.len(), 1, "delivered under the policy");
    assert!(String::from_utf8_lossy(&mail[0]).contains("with ESMTPS"));
    // Testing mode: delivered, although the certificate is for another name.
    submit(submission, "bob@e.test", "sts-testing", false);
    let mail = wait_mail(&c_dir, "e.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(mail.len(), 1, "testing does not enforce");
    // The record says a policy exists, but none can be had: the policy
    // host's certificate is not for its name (g), there is no policy file
    // (h, 404). Delivered as without one, and the failed fetch reported.
    for domain in ["g", "h"] {
        submit(
            submission,
            &format!("bob@{domain}.test"),
            "sts-unfetchable",
            false,
        );
        let d = format!("{domain}.test");
        let mail = wait_mail(&c_dir, &d, "bob", 1, Duration::from_secs(20));
        assert_eq!(mail.len(), 1, "{d}: no policy, opportunistic TLS");
    }
    // Enforced: a certificate for another name, no STARTTLS, an exchanger
    // the policy does not name: each deferred, never sent.
    submit(submission, "bob@c.test", "sts-wrong-name", false);
    submit(submission, "bob@d.test", "sts-stripped", false);
    submit(submission, "bob@f.test", "sts-unnamed", false);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        common::mail(&c_dir, "c.test", "bob").is_empty(),
        "C: certificate for another name"
    );
    assert!(
        common::mail(&d_dir, "d.test", "bob").is_empty(),
        "D: no cleartext"
    );
    assert_eq!(
        common::mail(&b_dir, "f.test", "bob").len(),
        0,
        "F: exchanger not named"
    );
    assert!(
        common::mail(&a_dir, "a.test", "alice").is_empty(),
        "deferred, not bounced"
    );
    let log = a.log_text();
    assert!(
        log.contains("No exchanger of f.test matches its MTA-STS policy"),
        "{log}"
    );
    let check = common::run(&a_dir, &["tls-policy", "check", "c.test"], "");
    let check = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.contains("(MTA-STS enforce)") && check.contains("mx *.c.test"),
        "{check}"
    );

    // TLS-RPT: at the end of the period (8 s), a report per domain that
    // asks, through the queue to reports@a.test; checked against RFC 8460
    // section 4.4's fields. e.test's testing policy delivered, and its
    // report says what enforcing would have refused.
    let script = r#"
import email, gzip, json, sys
out = {}
for path in sys.argv[1:]:
    m = email.message_from_binary_file(open(path, "rb"))
    assert m.get_content_type() == "multipart/report", m.get_content_type()
    assert m.get_param("report-type") == "tlsrpt"
    part = [p for p in m.walk() if p.get_content_type() == "application/tlsrpt+gzip"][0]
    r = json.loads(gzip.decompress(part.get_payload(decode=True)))
    for key in ("organization-name", "date-range", "contact-info", "report-id", "policies"):
        assert key in r, key
    assert r["date-range"]["start-datetime"].endswith("Z") and r["date-range"]["end-datetime"].endswith("Z")
    p = r["policies"][0]
    assert p["policy"]["policy-type"] in ("sts", "no-policy-found"), p
    if p["policy"]["policy-type"] == "sts":
        assert isinstance(p["policy"]["policy-string"], list) and isinstance(p["policy"]["mx-host"], list)
    s = p["summary"]
    assert isinstance(s["total-successful-session-count"], int) and isinstance(s["total-failure-session-count"], int)
    kinds = sorted({d["result-type"] for d in p.get("failure-details", [])})
    for d in p.get("failure-details", []):
        assert d["failed-session-count"] > 0
        if not d["result-type"].startswith("sts-"):
            assert d["receiving-mx-hostname"] and d["receiving-ip"]
    assert m["TLS-Report-Domain"] == p["policy"]["policy-domain"]
    # A domain whose sessions fell in two periods has two reports: merged.
    ok, failed, seen = out.get(p["policy"]["policy-domain"], (False, False, []))
    out[p["policy"]["policy-domain"]] = (
        ok or s["total-successful-session-count"] > 0,
        failed or s["total-failure-session-count"] > 0,
        sorted(set(seen) | set(kinds)),
    )
print(json.dumps(out, sort_keys=True))
"#;
    // The sessions may fall in one period or two: wait until every domain
    // that asked has its report.
    let started = std::time::Instant::now();
    let seen = loop {
        let reports = common::mail(&a_dir, "a.test", "reports");
        let mut paths = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            let path = a_dir.join(format!("report-{i}.eml"));
            std::fs::write(&path, r).unwrap();
            paths.push(path.display().to_string());
        }
        let args: Vec<&str> = paths.iter().map(String::as_str).collect();
        let seen = if args.is_empty() {
            String::new()
        } else {
            python(script, &args)
        };
        if ["b.test", "c.test", "d.test", "e.test", "g.test", "h.test"]
            .iter()
            .all(|d| seen.contains(d))
            || started.elapsed() > Duration::from_secs(40)
        {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        seen.trim(),
        r#"{"b.test": [true, false, []], "c.test": [false, true, ["certificate-host-mismatch"]], "d.test": [false, true, ["starttls-not-supported"]], "e.test": [false, true, ["certificate-host-mismatch"]], "g.test": [true, true, ["sts-webpki-invalid"]], "h.test": [true, true, ["sts-policy-fetch-error"]]}"#
    );

    // d.test's record also names an https: address: the same report,
    // POSTed there.
    let posted: Vec<_> = std::fs::read_dir(&policies)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("posted-"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(!posted.is_empty(), "a report was posted");
    let domains = python(
        "import gzip, json, sys\nprint(sorted({json.loads(gzip.decompress(open(p, 'rb').read()))['policies'][0]['policy']['policy-domain'] for p in sys.argv[1:]}))",
        &posted.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(domains.trim(), "['d.test']", "{posted:?}");

    // The policy server goes away and A restarts: the cached policy holds.
    https.terminate(Duration::from_secs(2));
    a.terminate(Duration::from_secs(5));
    let cache = std::fs::read_to_string(a_dir.join("data/mta-sts.json")).unwrap();
    assert!(
        cache.contains("c.test") && cache.contains("enforce"),
        "{cache}"
    );
    let mut a = serve(&a_dir, &config, local(submission), true);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        common::mail(&c_dir, "c.test", "bob").is_empty(),
        "still enforced after a restart"
    );

    // A new id with a policy that names no exchanger of C but is in testing
    // mode: fetched again, and the waiting message goes.
    std::fs::write(
        policies.join("mta-sts.c.test.txt"),
        "version: STSv1\nmode: testing\nmx: *.c.test\nmax_age: 86400\n",
    )
    .unwrap();
    let _https = policy_server("127.0.0.4", &policies, &pem("sts.pem"), &pem("sts.key"));
    let zone = STS_ZONE.replace(
        "_mta-sts.c IN TXT \"v=STSv1; id=1\"",
        "_mta-sts.c IN TXT \"v=STSv1; id=2\"",
    );
    std::fs::write(
        nsd.dir.join("test.zone"),
        zone.replace("hostmaster.test. 1 ", "hostmaster.test. 2 "),
    )
    .unwrap();
    let pid = std::fs::read_to_string(nsd.dir.join("nsd.pid")).unwrap();
    assert!(
        Command::new("kill")
            .args(["-HUP", pid.trim()])
            .status()
            .unwrap()
            .success()
    );
    let mail = wait_mail(&c_dir, "c.test", "bob", 1, Duration::from_secs(30));
    assert_eq!(
        mail.len(),
        1,
        "the new policy was fetched: {}",
        a.log_text()
    );
    a.terminate(Duration::from_secs(5));
}
