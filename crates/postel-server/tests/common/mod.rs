//! Shared by the server's tests: start `postel` with a configuration in a
//! fresh directory, on loopback, and read what lands in its Maildirs.

#![allow(dead_code, unused_imports, unreachable_pub)] // Each test file uses a different part.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use postel_testkit::{Nsd, Process, free_port, installed, temp_dir};

/// The binary under test.
pub fn postel() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_postel"))
}

/// Writes `config` to `dir/postel.toml`. A test that is not about mail
/// authentication has its checks off, so that its mail from made-up
/// domains never waits for DNS.
pub fn write_config(dir: &Path, config: &str) {
    let config = if config.contains("[authentication]") {
        config.to_owned()
    } else {
        // First, as an inline table: what follows keeps its place.
        format!("authentication = {{ enabled = false }}\n{config}")
    };
    std::fs::write(dir.join("postel.toml"), config).unwrap();
}

/// Writes `config` to `dir/postel.toml` and starts `postel serve` there,
/// waiting until `addr` accepts.
pub fn serve(dir: &Path, config: &str, addr: SocketAddr, dev_tls: bool) -> Process {
    write_config(dir, config);
    let mut args = vec!["serve", "--config", "postel.toml"];
    if dev_tls {
        args.push("--dev-tls");
    }
    Process::start(&postel(), &args, dir, addr)
}

/// Runs `postel ARGS --config postel.toml` in `dir`, with `stdin`.
pub fn run(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(postel())
        .args(args)
        .args(["--config", "postel.toml"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Adds a user with a password through the CLI.
pub fn add_user(dir: &Path, name: &str, password: &str) {
    let out = run(dir, &["user", "add", name], &format!("{password}\n"));
    assert!(out.status.success(), "{out:?}");
}

/// The messages in a Maildir's `new/`, oldest name first.
pub fn mail(dir: &Path, domain: &str, mailbox: &str) -> Vec<Vec<u8>> {
    let new = dir.join("data/mail").join(domain).join(mailbox).join("new");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&new)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Waits until a Maildir holds at least `n` messages.
pub fn wait_mail(
    dir: &Path,
    domain: &str,
    mailbox: &str,
    n: usize,
    limit: Duration,
) -> Vec<Vec<u8>> {
    let start = Instant::now();
    loop {
        let m = mail(dir, domain, mailbox);
        if m.len() >= n || start.elapsed() > limit {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The message without the trace fields every hop put in front of it
/// (Return-Path, Delivered-To, Received, each with its continuation lines).
pub fn without_trace(message: &[u8]) -> &[u8] {
    let mut rest = message;
    loop {
        let traced = [&b"Return-Path:"[..], b"Delivered-To:", b"Received:"]
            .iter()
            .any(|n| rest.starts_with(n));
        if !traced {
            return rest;
        }
        let mut end = 0;
        loop {
            let Some(nl) = rest[end..].iter().position(|&b| b == b'\n') else {
                return rest;
            };
            end += nl + 1;
            if !rest[end..].starts_with(b"\t") && !rest[end..].starts_with(b" ") {
                break;
            }
        }
        rest = &rest[end..];
    }
}

/// Runs a Python script with arguments; panics with its output on failure.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A loopback address with a free port.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs openssl in `dir`; it must succeed.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA (`ca.pem`), and the certificates it issued, one per `(file, names)`:
/// `file.pem` and `file.key`, valid for each name.
pub fn issue(dir: &Path, certs: &[(&str, &[&str])]) -> String {
    if !dir.join("ca.pem").exists() {
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
    }
    for (file, names) in certs {
        let (key, csr, pem, ext) = (
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.pem"),
            format!("{file}.ext"),
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={}", names[0]),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        std::fs::write(
            dir.join(&ext),
            format!("subjectAltName={}\n", san.join(",")),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }
    dir.join("ca.pem").display().to_string()
}

/// The password of `alice@a.test` in the tests that submit as her.
pub const PASSWORD: &str = "s3cret-for-tests";

/// Submits one message to `to`, with REQUIRETLS when `require`; what the
/// server said about the extension after STARTTLS, and before it.
pub fn submit(port: u16, to: &str, subject: &str, require: bool) -> String {
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

/// A memory figure of a process from `/proc/PID/status`, in KiB: `VmRSS`
/// (resident now) or `VmHWM` (the peak).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
