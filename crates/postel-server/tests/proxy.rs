//! postel behind a real `HAProxy` speaking the PROXY protocol, versions 2
//! (`send-proxy-v2`) and 1 (`send-proxy`): the original client's address is
//! what postel sees; untrusted peers and malformed headers are refused.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, installed, local, python, serve, temp_dir, wait_mail};

struct HaProxy(Child);

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `HAProxy` in front of 127.0.0.1:`backend`: `v2` sends PROXY v2, `v1` v1.
fn haproxy(dir: &std::path::Path, v2: u16, v1: u16, backend: u16) -> HaProxy {
    let conf = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
frontend f2\n  bind 127.0.0.1:{v2}\n  default_backend b2\n\
backend b2\n  server postel 127.0.0.1:{backend} send-proxy-v2\n\
frontend f1\n  bind 127.0.0.1:{v1}\n  default_backend b1\n\
backend b1\n  server postel 127.0.0.1:{backend} send-proxy\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(local(v2)).is_err() || TcpStream::connect(local(v1)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "haproxy did not start"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    HaProxy(child)
}

/// Sends one message to `port` from the source address `source`.
fn send_from(source: &str, port: u16, subject: &str) {
    let script = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[2]), source_address=(sys.argv[1], 0), timeout=20)
s.sendmail("someone@elsewhere.example", ["bob@a.test"], ("Subject: %s\r\n\r\nhello\r\n" % sys.argv[3]).encode())
s.quit()
"#;
    python(script, &[source, &port.to_string(), subject]);
}

/// What a peer gets from the server before it closes: empty when the
/// connection is closed without a greeting.
fn greeting_after(from: &str, port: u16, first: &[u8]) -> Vec<u8> {
    let script = r#"
import socket, sys
s = socket.socket(); s.settimeout(15); s.bind((sys.argv[1], 0)); s.connect(("127.0.0.1", int(sys.argv[2])))
s.sendall(bytes.fromhex(sys.argv[3]))
data = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
except socket.timeout:
    data += b"TIMEOUT"
except ConnectionResetError:
    pass
print(data.hex())
"#;
    let hex: String = first.iter().fold(String::new(), |mut h, b| {
        use std::fmt::Write as _;
        let _ = write!(h, "{b:02x}");
        h
    });
    let out = python(script, &[from, &port.to_string(), &hex]);
    let out = out.trim();
    (0..out.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&out[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn behind_haproxy_postel_sees_the_original_client() {
    if !installed("python3") || !installed("haproxy") {
        return;
    }
    let dir = temp_dir("proxy");
    let port = free_port();
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"127.0.0.1:{port}\"\nrole = \"mx\"\n\
proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"bob\"]\n"
    );
    // Waiting for the listener needs no PROXY header: a bare connect.
    let server = serve(&dir, &config, local(port), false);
    let (v2, v1) = (free_port(), free_port());
    let _haproxy = haproxy(&dir, v2, v1, port);
    send_from("127.0.0.2", v2, "through v2");
    send_from("127.0.0.3", v1, "through v1");
    let got = wait_mail(&dir, "a.test", "bob", 2, Duration::from_secs(20));
    assert_eq!(got.len(), 2);
    let texts: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let by_subject = |s: &str| texts.iter().find(|t| t.contains(s)).unwrap().clone();
    assert!(
        by_subject("through v2").contains("Received: from "),
        "{texts:?}"
    );
    assert!(
        by_subject("through v2").contains(" ([127.0.0.2])\r\n"),
        "{}",
        by_subject("through v2")
    );
    assert!(
        by_subject("through v1").contains(" ([127.0.0.3])\r\n"),
        "{}",
        by_subject("through v1")
    );
    let log = server.log_text();
    assert!(log.contains("client=127.0.0.2:"), "{log}");
    assert!(log.contains("client=127.0.0.3:"), "{log}");

    // Anyone but the proxy is refused, whatever header it would send.
    let untrusted = greeting_after(
        "127.0.0.4",
        port,
        b"PROXY TCP4 192.0.2.1 127.0.0.1 1 25\r\n",
    );
    assert_eq!(untrusted, b"", "closed without a greeting");
    // The proxy's address with a malformed or oversized header: closed.
    assert_eq!(
        greeting_after("127.0.0.1", port, b"PROXY TCP4 not-an-address\r\n"),
        b""
    );
    assert_eq!(greeting_after("127.0.0.1", port, &[b'P'; 300]), b"");
    assert_eq!(
        greeting_after("127.0.0.1", port, b"EHLO no.header.example\r\n"),
        b""
    );
    // A well-formed header by hand: the greeting follows.
    let ok = greeting_after(
        "127.0.0.1",
        port,
        b"PROXY TCP4 192.0.2.9 127.0.0.1 4000 25\r\nQUIT\r\n",
    );
    assert!(
        ok.starts_with(b"220 mail.a.test"),
        "{}",
        String::from_utf8_lossy(&ok)
    );
    assert!(server.log_text().contains("client=192.0.2.9:4000"));
}

/// A proxy that never finishes its header is cut off, not waited for.
#[test]
fn a_stalled_proxy_header_is_cut_off() {
    if !installed("python3") {
        return;
    }
    let dir = temp_dir("proxy-stall");
    let port = free_port();
    let config = format!(
        "data_dir = \"data\"\n[[listener]]\naddress = \"127.0.0.1:{port}\"\nrole = \"mx\"\n\
proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n"
    );
    let _server = serve(&dir, &config, local(port), false);
    let mut s = TcpStream::connect(local(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"PROXY TCP4 192.0.2.1").unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "closed after the header deadline"
    );
}
