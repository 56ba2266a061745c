//! REQUIRETLS (RFC 8689) between postel instances: a message submitted
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

use common::{Nsd, add_user, free_port, installed, local, python, serve, temp_dir, wait_mail};

const PASSWORD: &str = "s3cret-for-tests";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA, and a certificate it issued for `name`: (ca.pem, cert, key).
fn issued(dir: &Path, name: &str) -> (String, String, String) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Postel Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            "mx.key",
            "-out",
            "mx.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), format!("subjectAltName=DNS:{name}\n")).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "mx.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "mx.pem",
        ],
    );
    let p = |f: &str| dir.join(f).display().to_string();
    (p("ca.pem"), p("mx.pem"), p("mx.key"))
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

/// Submits one message to `to`, with REQUIRETLS when `require`; what the
/// server said about the extension after STARTTLS, and before it.
fn submit(port: u16, to: &str, subject: &str, require: bool) -> String {
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
port, password, to, subject, require = sys.argv[1:6]
with smtplib.SMTP("127.0.0.1", int(port), timeout=20) as s:
    s.ehlo()
    before = s.has_extn("requiretls")
    s.starttls(context=ctx)
    s.ehlo()
    after = s.has_extn("requiretls")
    s.login("alice@a.test", password)
    msg = ("From: alice@a.test\r\nTo: %s\r\nSubject: %s\r\n\r\nthe confidential body of %s\r\n"
           % (to, subject, subject)).encode()
    s.sendmail("alice@a.test", [to], msg, mail_options=["REQUIRETLS"] if require == "1" else [])
    print("before", before, "after", after)
"#;
    python(
        script,
        &[
            &port.to_string(),
            PASSWORD,
            to,
            subject,
            if require { "1" } else { "0" },
        ],
    )
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
