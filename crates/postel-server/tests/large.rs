//! Large messages stream: one of 40 MB goes from a client through one
//! `postel` (submission, queue, SMTP relay) to another (mx, queue,
//! Maildir), byte for byte, while neither server's memory grows with it.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    PASSWORD, add_user, free_port, local, python, serve, temp_dir, wait_mail, without_trace,
};

/// The peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    common::status_kib(pid, "VmHWM")
}

#[test]
fn a_40_mb_message_is_relayed_byte_for_byte_in_bounded_memory() {
    let b_dir = temp_dir("large-b");
    let b_port = free_port();
    let b_config = format!(
        "hostname = \"mx.b.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{b_port}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"b.test\"\nmailboxes = [\"bob\"]\n[limits]\nmessage_size = 100000000\n"
    );
    let b = serve(&b_dir, &b_config, local(b_port), false);

    let a_dir = temp_dir("large-a");
    let (a_mx, a_sub) = (free_port(), free_port());
    let a_config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{a_sub}\"\nrole = \"submission\"\n\
[[listener]]\naddress = \"127.0.0.1:{a_mx}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"alice\"]\n\
[relay]\nsmarthost = \"127.0.0.1:{b_port}\"\n[queue]\npoll_ms = 200\n[limits]\nmessage_size = 100000000\n"
    );
    common::write_config(&a_dir, &a_config);
    add_user(&a_dir, "alice@a.test", PASSWORD);
    let a = serve(&a_dir, &a_config, local(a_mx), true);

    // Lines of every length up to 998, some starting with a dot, so that
    // dot-stuffing and chunk boundaries fall everywhere.
    let script = r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
lines = []
size, n = 0, 0
while size < 40_000_000:
    line = ("." if n % 7 == 0 else "") + ("%08d" % n) + "x" * (n % 990)
    lines.append(line)
    size += len(line) + 2
    n += 1
body = "\r\n".join(lines) + "\r\n"
msg = ("From: alice@a.test\r\nTo: bob@b.test\r\nSubject: large\r\n\r\n" + body).encode()
open(sys.argv[3], "wb").write(msg)
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=120) as s:
    s.starttls(context=ctx)
    s.login("alice@a.test", sys.argv[2])
    s.sendmail("alice@a.test", ["bob@b.test"], msg)
print(len(msg))
"#;
    // A small message first, so that each server's peak includes all it
    // needs besides the body (the password hash alone takes 19 MiB).
    common::submit(a_sub, "bob@b.test", "small", false);
    assert_eq!(
        wait_mail(&b_dir, "b.test", "bob", 1, Duration::from_secs(30)).len(),
        1
    );
    let before = [peak_rss_kib(a.pid()), peak_rss_kib(b.pid())];

    let sent_file = a_dir.join("sent.eml");
    let size: usize = python(
        script,
        &[&a_sub.to_string(), PASSWORD, sent_file.to_str().unwrap()],
    )
    .trim()
    .parse()
    .unwrap();
    assert!(size > 40_000_000);
    let got = wait_mail(&b_dir, "b.test", "bob", 2, Duration::from_secs(120));
    assert_eq!(got.len(), 2, "delivered to bob");
    let sent = std::fs::read(&sent_file).unwrap();
    let arrived = got
        .iter()
        .map(|m| without_trace(m))
        .find(|m| m.len() > 1_000_000)
        .expect("the large message");
    assert_eq!(arrived.len(), sent.len(), "the same length");
    assert!(arrived == sent.as_slice(), "the same octets");

    // Each server held a bounded buffer, not the message (which alone
    // would be 40 MB, and several times that as copies).
    for ((name, pid), before) in [("relay", a.pid()), ("receiver", b.pid())]
        .into_iter()
        .zip(before)
    {
        let peak = peak_rss_kib(pid);
        println!("{name}: peak RSS {before} KiB before, {peak} KiB with a {size}-octet message");
        assert!(
            peak < before + 8 * 1024,
            "{name} grew from {before} to {peak} KiB"
        );
    }
}
