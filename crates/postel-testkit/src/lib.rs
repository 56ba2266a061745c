//! Test support: start real peers on loopback and stop them by PID.
//!
//! - [`Nsd`]: NSD serving zones on a free loopback port.
//! - [`dns::DnsServer`]: a name server in the test process, for zones a
//!   test builds (malformed records, time-outs).
//! - [`Process`]: a server process (the `postel` binary) that is sent
//!   SIGTERM, then SIGKILL, when dropped.
//!
//! Tools that are missing make the caller skip with a printed reason, or
//! fail when `POSTEL_REQUIRE_PEERS` is set; `.ci/run` installs them and sets
//! it, so in CI nothing is skipped.

// ok: test support (a dev-dependency only) panics on purpose: a panic is a
// failed test; no server handling a peer runs this code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::missing_panics_doc,
    clippy::format_push_string
)]

pub mod dns;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when `tool` is on the PATH; prints why a test is skipped otherwise.
/// With `POSTEL_REQUIRE_PEERS` set (as `.ci/run` sets it), a missing tool
/// fails the test instead: in CI every peer must have run.
pub fn installed(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip(tool);
    }
    found
}

/// Reports a missing peer: a skip locally, a failure where peers are required.
fn skip(tool: &str) {
    assert!(
        std::env::var_os("POSTEL_REQUIRE_PEERS").is_none(),
        "{tool} is required (POSTEL_REQUIRE_PEERS is set) but not installed"
    );
    eprintln!("skipped: {tool} is not installed (.ci/run installs it)");
}

/// Runs `check` over every committed fuzz input of `target` (the corpus
/// and the regressions under `fuzz/`), so `cargo test` keeps every fixed
/// crash fixed; how many inputs there were. A check that panics fails
/// with the input's path.
pub fn replay_fuzz_inputs(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            n += 1;
        }
    }
    n
}

/// Debian's own Python (`/usr/bin/python3`, not the first on the PATH),
/// when it can import `module` (from Debian's `package`); otherwise a skip,
/// or a failure where peers are required.
pub fn debian_python(module: &str, package: &str) -> Option<PathBuf> {
    let python = PathBuf::from("/usr/bin/python3");
    let found = python.exists()
        && Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
    if found {
        Some(python)
    } else {
        skip(package);
        None
    }
}

/// A loopback port that was free a moment ago (UDP and TCP).
///
/// Ports come from below Linux's ephemeral range (32768 and up), where the
/// source ports of the many outbound connections the tests make are taken:
/// a port picked there can be held by a client socket by the time a fake
/// peer binds it. Within one process no port is handed out twice; the
/// starting point depends on the process id, so test binaries run one after
/// another start apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        let port = u16::try_from(FIRST + offset).unwrap();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// Starts a peer: in a process group of its own (a peer that signals its
/// whole group when it stops must not reach the other tests' processes),
/// no input, no output, standard error to `stderr` (or nowhere).
fn spawn_peer(command: &mut Command, stderr: Option<&Path>) -> Child {
    let err = match stderr {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Waits until every one of `addrs` accepts connections. Panics, with the
/// `logs`, when `child` exits first or `limit` passes.
fn wait_listening(
    child: &mut Child,
    what: &str,
    addrs: &[SocketAddr],
    logs: &[&Path],
    limit: Duration,
) {
    let start = Instant::now();
    while !addrs.iter().all(|a| TcpStream::connect(a).is_ok()) {
        if let Ok(Some(status)) = child.try_wait() {
            let text: String = logs
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
            panic!("{what} exited with {status}: {text}");
        }
        assert!(start.elapsed() < limit, "{what} did not start");
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// A fresh directory under the system's temporary directory.
pub fn temp_dir(label: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("postel-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL.
fn stop(child: &mut Child, grace: Duration) {
    // A child already reaped may have had its PID given to another process.
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let start = Instant::now();
    while start.elapsed() < grace {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// NSD on a loopback port; stopped by its PID when dropped.
pub struct Nsd {
    child: Child,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    /// Its working directory.
    pub dir: PathBuf,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(2));
    }
}

impl Nsd {
    /// Serves each `(zone name, zone file text)`; a zone with `None` text is
    /// configured without a file, so NSD answers SERVFAIL for it. `None` when
    /// NSD is not installed.
    pub fn start(zones: &[(&str, Option<&str>)]) -> Option<Nsd> {
        let nsd = ["/usr/sbin/nsd", "/usr/local/sbin/nsd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let Some(nsd) = nsd else {
            skip("nsd");
            return None;
        };
        let port = free_port();
        let dir = temp_dir("nsd");
        let d = dir.display();
        let mut conf = format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  username: \"\"\n  database: \"\"\n  \
zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  logfile: \"{d}/nsd.log\"\n  \
xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  verbosity: 1\n\
remote-control:\n  control-enable: no\n"
        );
        for (name, text) in zones {
            let file = format!("{name}.zone");
            if let Some(text) = text {
                std::fs::write(dir.join(&file), text).unwrap();
            }
            conf.push_str(&format!("zone:\n  name: {name}\n  zonefile: {file}\n"));
        }
        std::fs::write(dir.join("nsd.conf"), conf).unwrap();
        let child = spawn_peer(
            Command::new(nsd)
                .args(["-d", "-c"])
                .arg(dir.join("nsd.conf")),
            None,
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // NSD answers TCP once it serves; wait for that, at most 10 seconds.
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nsd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Nsd { child, addr, dir })
    }
}

/// A server process listening on `addr`; SIGTERM then SIGKILL when dropped.
pub struct Process {
    child: Option<Child>,
    /// The address it was waited on.
    pub addr: SocketAddr,
    /// Standard error, captured to this file.
    pub log: PathBuf,
}

impl Process {
    /// Starts `program args` in `dir` and waits (at most 60 s) until `addr`
    /// accepts connections.
    pub fn start(program: &Path, args: &[&str], dir: &Path, addr: SocketAddr) -> Process {
        let log = dir.join(format!("server-{}.log", addr.port()));
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        // Each peer in a process group of its own, so that no peer's signal
        // to its group reaches another test's processes.
        let mut child = Command::new(program)
            .process_group(0)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        wait_listening(
            &mut child,
            "server",
            &[addr],
            &[&log],
            Duration::from_secs(60),
        );
        Process {
            child: Some(child),
            addr,
            log,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, no warning: a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait up to `grace`; the exit status if it exited.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        stop(&mut child, grace);
        child.try_wait().ok().flatten()
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, Duration::from_secs(5));
        }
    }
}

/// A fresh, empty PostgreSQL database on the server that
/// `POSTEL_TEST_DATABASE_URL` names (`.ci/with-postgres` starts one and sets
/// it); its connection string. `None`, with the reason printed, when no
/// server is configured, unless `POSTEL_REQUIRE_DATABASE` is set (as
/// `.ci/run` does): then a missing server fails the test.
pub fn fresh_database(label: &str) -> Option<String> {
    let Ok(base) = std::env::var("POSTEL_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("POSTEL_REQUIRE_DATABASE").is_none(),
            "POSTEL_REQUIRE_DATABASE is set but POSTEL_TEST_DATABASE_URL is not"
        );
        eprintln!(
            "skipped: no PostgreSQL (run the tests under .ci/with-postgres, or set POSTEL_TEST_DATABASE_URL)"
        );
        return None;
    };
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("postel_{label}_{}_{n}", std::process::id());
    let psql = ["/usr/bin/psql"]
        .into_iter()
        .map(PathBuf::from)
        .chain(
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin/psql")),
        )
        .find(|p| p.exists())
        .expect("psql is installed with PostgreSQL");
    let out = Command::new(psql)
        .arg(&base)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "creating {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = if base.contains("dbname=") {
        base.split_whitespace()
            .map(|kv| {
                if kv.starts_with("dbname=") {
                    format!("dbname={name}")
                } else {
                    kv.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        format!("{base} dbname={name}")
    };
    Some(url)
}

/// A Dovecot 2.3 (Debian's dovecot-core, dovecot-lmtpd, dovecot-imapd)
/// serving LMTP and IMAP on free loopback ports, its users from a
/// passwd-file and their Maildirs under a fresh directory; stopped when
/// dropped. The process runs in the foreground (`dovecot -F`) as a child.
pub struct Dovecot {
    child: Option<Child>,
    /// The LMTP listener.
    pub lmtp: SocketAddr,
    /// The IMAP listener.
    pub imap: SocketAddr,
    /// Its directory: configuration, users, logs, and `mail/`.
    pub dir: PathBuf,
}

impl Dovecot {
    /// Starts Dovecot with `users` as (address, password) pairs; `None`
    /// when it is not installed.
    pub fn start(users: &[(&str, &str)]) -> Option<Dovecot> {
        let Some(binary) = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        else {
            skip("dovecot");
            return None;
        };
        let dir = temp_dir("dovecot");
        let text = |args: &[&str]| {
            let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let root = text(&["id", "-u"]) == "0";
        // As root, mail is kept by nobody and Dovecot's own processes run as
        // its packaged users; otherwise everything runs as the caller.
        let (uid, gid) = if root {
            ("65534".to_owned(), "65534".to_owned())
        } else {
            (text(&["id", "-u"]), text(&["id", "-g"]))
        };
        let me = text(&["id", "-un"]);
        let (internal, login) = if root {
            ("dovecot", "dovenull")
        } else {
            (me.as_str(), me.as_str())
        };
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        for sub in ["run", "state"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        if root {
            let _ = Command::new("chown")
                .args([&format!("{uid}:{gid}"), mail.to_str().unwrap()])
                .status();
        }
        let mut passwd = String::new();
        for (user, password) in users {
            let home = mail.join(user);
            passwd.push_str(&format!(
                "{user}:{{PLAIN}}{password}:{uid}:{gid}::{}::\n",
                home.display()
            ));
        }
        std::fs::write(dir.join("users"), passwd).unwrap();
        let (lmtp_port, imap_port) = (free_port(), free_port());
        let d = dir.display();
        let conf = format!(
            "protocols = lmtp imap\nlisten = 127.0.0.1\nbase_dir = {d}/run\nstate_dir = {d}/state\n\
log_path = {d}/dovecot.log\nssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain\n\
mail_location = maildir:~/Maildir\nfirst_valid_uid = 1\ndefault_internal_user = {internal}\n\
default_login_user = {login}\n\
passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/users\n}}\n\
userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/users\n}}\n\
service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {lmtp_port}\n  }}\n\
  unix_listener lmtp-test {{\n    mode = 0666\n  }}\n}}\n\
service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap_port}\n  }}\n\
  inet_listener imaps {{\n    port = 0\n  }}\n}}\n"
        );
        std::fs::write(dir.join("dovecot.conf"), conf).unwrap();
        let mut child = spawn_peer(
            Command::new(binary)
                .args(["-F", "-c"])
                .arg(dir.join("dovecot.conf")),
            Some(&dir.join("foreground.log")),
        );
        let lmtp = SocketAddr::from(([127, 0, 0, 1], lmtp_port));
        let imap = SocketAddr::from(([127, 0, 0, 1], imap_port));
        wait_listening(
            &mut child,
            "dovecot",
            &[lmtp, imap],
            &[&dir.join("foreground.log"), &dir.join("dovecot.log")],
            Duration::from_secs(30),
        );
        Some(Dovecot {
            child: Some(child),
            lmtp,
            imap,
            dir,
        })
    }

    /// Stops it (SIGTERM, then SIGKILL); its listeners close.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, Duration::from_secs(5));
        }
    }

    /// Starts it again on the same ports with the same users and mail.
    pub fn restart(&mut self) {
        self.stop();
        let binary = ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap();
        let child = spawn_peer(
            Command::new(binary)
                .args(["-F", "-c"])
                .arg(self.dir.join("dovecot.conf")),
            None,
        );
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(self.lmtp).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "dovecot did not restart"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// What it logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    /// Its LMTP Unix socket.
    pub fn lmtp_socket(&self) -> PathBuf {
        self.dir.join("run").join("lmtp-test")
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The test filter (`milter/filter.py`) on Debian's pymilter, which runs on
/// the real libmilter, listening on a free loopback port with one
/// behaviour; stopped when dropped. Every event it sees is a JSON line in
/// [`PyMilter::events`].
pub struct PyMilter {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl PyMilter {
    /// Starts the filter with `behaviour` (see the script); `None` when
    /// Debian's python3-milter is not installed.
    pub fn start(behaviour: &str) -> Option<PyMilter> {
        let python = debian_python("Milter", "python3-milter")?;
        let python = python.as_path();
        let dir = temp_dir("pymilter");
        let log = dir.join("events.jsonl");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("milter/filter.py");
        let mut child = spawn_peer(
            Command::new(python)
                .arg(script)
                .arg(port.to_string())
                .arg(behaviour)
                .arg(&log),
            Some(&dir.join("stderr.log")),
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_listening(
            &mut child,
            "filter",
            &[addr],
            &[&dir.join("stderr.log")],
            Duration::from_secs(30),
        );
        Some(PyMilter {
            child: Some(child),
            addr,
            log,
        })
    }

    /// The events seen so far, one JSON object per line.
    pub fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for PyMilter {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, Duration::from_secs(2));
        }
    }
}

/// `OpenDKIM` (Debian's opendkim) as a signing and verifying milter for one
/// domain, with a fresh key, on a free loopback port; stopped when dropped.
pub struct OpenDkim {
    child: Option<Child>,
    /// Its milter address.
    pub addr: SocketAddr,
    /// The DKIM key record's value (`v=DKIM1; ... p=...`) to publish at
    /// `SELECTOR._domainkey.DOMAIN`.
    pub record: String,
}

impl OpenDkim {
    /// Starts `OpenDKIM` signing mail from `domain` with `selector`; `None`
    /// when it is not installed.
    pub fn start(domain: &str, selector: &str) -> Option<OpenDkim> {
        let (Some(opendkim), Some(genkey)) = (
            ["/usr/sbin/opendkim"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists()),
            ["/usr/sbin/opendkim-genkey", "/usr/bin/opendkim-genkey"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists()),
        ) else {
            skip("opendkim");
            return None;
        };
        let dir = temp_dir("opendkim");
        let status = Command::new(genkey)
            .args(["-s", selector, "-d", domain, "-D"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "opendkim-genkey failed");
        // The record as opendkim-genkey writes it, quoted and folded: the
        // quoted parts joined.
        let txt = std::fs::read_to_string(dir.join(format!("{selector}.txt"))).unwrap();
        let record: String = txt.split('"').skip(1).step_by(2).collect();
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "Syslog no\nMode sv\nDomain {domain}\nSelector {selector}\n\
KeyFile {d}/{selector}.private\nSocket inet:{port}@127.0.0.1\n\
Canonicalization relaxed/relaxed\nPidFile {d}/pid\nAutoRestart no\nBackground no\n\
RequireSafeKeys false\n"
        );
        std::fs::write(dir.join("opendkim.conf"), conf).unwrap();
        let mut child = spawn_peer(
            Command::new(opendkim)
                .arg("-f")
                .arg("-x")
                .arg(dir.join("opendkim.conf")),
            Some(&dir.join("stderr.log")),
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_listening(
            &mut child,
            "opendkim",
            &[addr],
            &[&dir.join("stderr.log")],
            Duration::from_secs(30),
        );
        Some(OpenDkim {
            child: Some(child),
            addr,
            record,
        })
    }
}

impl Drop for OpenDkim {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, Duration::from_secs(2));
        }
    }
}

/// rspamd (Debian's rspamd) with its proxy worker in milter mode and a
/// scanning worker behind it, on free loopback ports, under a fresh
/// directory; network checks fail fast (DNS points at a closed port).
/// Stopped when dropped.
pub struct Rspamd {
    child: Option<Child>,
    /// The proxy worker's milter address.
    pub addr: SocketAddr,
}

impl Rspamd {
    /// Starts rspamd; `None` when it is not installed.
    pub fn start() -> Option<Rspamd> {
        let Some(binary) = ["/usr/bin/rspamd", "/usr/sbin/rspamd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        else {
            skip("rspamd");
            return None;
        };
        let dir = temp_dir("rspamd");
        let conf = dir.join("conf");
        for sub in ["conf/override.d", "conf/local.d", "run", "db", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let (milter, scanner) = (free_port(), free_port());
        let write = |name: &str, text: String| std::fs::write(conf.join(name), text).unwrap();
        write(
            "override.d/worker-proxy.inc",
            format!(
                "bind_socket = \"127.0.0.1:{milter}\";\nmilter = yes;\ntimeout = 120s;\n\
upstream \"local\" {{\n  default = yes;\n  hosts = \"127.0.0.1:{scanner}\";\n}}\n\
count = 1;\nmax_retries = 5;\ndiscard_on_reject = false;\nquarantine_on_reject = false;\n\
spam_header = \"X-Spam\";\nreject_message = \"Spam message rejected\";\n"
            ),
        );
        write(
            "override.d/worker-normal.inc",
            format!("bind_socket = \"127.0.0.1:{scanner}\";\ncount = 1;\n"),
        );
        write(
            "override.d/worker-controller.inc",
            "enabled = false;\n".into(),
        );
        write(
            "override.d/logging.inc",
            format!(
                "type = \"file\";\nfilename = \"{}\";\nlevel = \"info\";\n",
                dir.join("log/rspamd.log").display()
            ),
        );
        write(
            "local.d/options.inc",
            "dns {\n  nameserver = [\"127.0.0.1:9\"];\n  timeout = 1s;\n  retransmits = 1;\n}\n"
                .into(),
        );
        write(
            "local.d/milter_headers.conf",
            "extended_spam_headers = true;\nskip_local = false;\nskip_authenticated = false;\n"
                .into(),
        );
        let var = |name: &str, sub: &str| format!("--var={name}={}", dir.join(sub).display());
        let mut command = Command::new(binary);
        command.args(["-f", "-c", "/etc/rspamd/rspamd.conf"]);
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if root {
            // As root, rspamd refuses to run its workers unless told.
            command.arg("-i");
        }
        command
            .arg(var("LOCAL_CONFDIR", "conf"))
            .arg(var("RUNDIR", "run"))
            .arg(var("DBDIR", "db"))
            .arg(var("LOGDIR", "log"));
        let mut child = spawn_peer(&mut command, Some(&dir.join("stderr.log")));
        let addr = SocketAddr::from(([127, 0, 0, 1], milter));
        let scan = SocketAddr::from(([127, 0, 0, 1], scanner));
        wait_listening(
            &mut child,
            "rspamd",
            &[addr, scan],
            &[&dir.join("log/rspamd.log")],
            Duration::from_secs(120),
        );
        Some(Rspamd {
            child: Some(child),
            addr,
        })
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, Duration::from_secs(5));
        }
    }
}
