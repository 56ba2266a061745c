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

#[test]
fn requiretls_goes_only_over_verified_tls_and_bounces_with_5_7_30() {
    if !installed("python3") || !installed("openssl") {
        return;
    }
    let certs = temp_dir("requiretls-ca");
    let (ca, cert, key) = issued(&certs, "mx.b.test");
    let zone = "$ORIGIN test.\n$TTL 1\n@ IN SOA ns.test. hostmaster.test. 1 3600 600 86400 1\n@ IN NS ns\n\
ns IN A 127.0.0.1\nb IN MX 10 mx.b\nmx.b IN A 127.0.0.2\nc IN MX 10 mx.c\nmx.c IN A 127.0.0.3\n";
    let Some(nsd) = Nsd::start(&[("test", Some(zone))]) else {
        return;
    };
    let port = free_port();
    let (b_dir, _b) = receiver(
        "requiretls-b",
        SocketAddr::from(([127, 0, 0, 2], port)),
        "b.test",
        Some((&cert, &key)),
    );
    let (c_dir, _c) = receiver(
        "requiretls-c",
        SocketAddr::from(([127, 0, 0, 3], port)),
        "c.test",
        None,
    );

    let a_dir = temp_dir("requiretls-a");
    let submission = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{submission}\"\nrole = \"submission\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nport = {port}\nca_file = \"{ca}\"\n[dns]\nservers = [\"{}\"]\ntimeout_secs = 2\n\
[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 200\n",
        nsd.addr
    );
    common::write_config(&a_dir, &config);
    add_user(&a_dir, "alice@a.test", PASSWORD);
    let _a = serve(&a_dir, &config, local(submission), true);

    // Offered only under TLS.
    let seen = submit(submission, "bob@b.test", "verified", true);
    assert_eq!(seen.trim(), "before False after True");
    let mail = wait_mail(&b_dir, "b.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(mail.len(), 1, "delivered over verified TLS");
    let text = String::from_utf8_lossy(&mail[0]).into_owned();
    assert!(text.contains("with ESMTPS"), "{text}");

    // mx.c.test's certificate is its own: not verified, so not sent.
    submit(submission, "bob@c.test", "unverified", true);
    let bounces = wait_mail(&a_dir, "a.test", "alice", 1, Duration::from_secs(20));
    assert_eq!(bounces.len(), 1, "bounced");
    let bounce = String::from_utf8_lossy(&bounces[0]).into_owned();
    assert!(bounce.contains("5.7.30"), "{bounce}");
    assert!(bounce.contains("Subject: unverified"), "{bounce}");
    assert!(
        !bounce.contains("the confidential body"),
        "headers only: {bounce}"
    );
    assert!(
        common::mail(&c_dir, "c.test", "bob").is_empty(),
        "never sent to C"
    );

    // Without REQUIRETLS, opportunistic TLS takes C's certificate.
    submit(submission, "bob@c.test", "opportunistic", false);
    let mail = wait_mail(&c_dir, "c.test", "bob", 1, Duration::from_secs(20));
    assert_eq!(mail.len(), 1);
}
