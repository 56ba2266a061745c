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
