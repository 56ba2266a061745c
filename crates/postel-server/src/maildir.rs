//! Local delivery into Maildir: write to `tmp/`, fsync, rename into `new/`,
//! fsync the directory; the name unique by time, process, a counter and the
//! host name, as the Maildir conventions ask.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Delivers `parts` (written in order: trace headers, then the message) into
/// the Maildir at `dir`, creating it if needed. Returns the file in `new/`.
pub fn deliver(dir: &Path, hostname: &str, parts: &[&[u8]]) -> std::io::Result<PathBuf> {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `/` and `:` cannot appear in the host part of a Maildir name.
    let host: String = hostname
        .chars()
        .map(|c| match c {
            '/' => "\\057".to_owned(),
            ':' => "\\072".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let name = format!(
        "{}.M{}P{}Q{n}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id()
    );
    let tmp = dir.join("tmp").join(&name);
    let result = (|| {
        let mut file = File::create_new(&tmp)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let new = dir.join("new").join(&name);
    fs::rename(&tmp, &new)?;
    File::open(dir.join("new"))?.sync_all()?;
    Ok(new)
}

/// Delivers `body` into the Maildir at `dir` for the mailbox `address`,
/// behind the trace fields a mailbox keeps: Return-Path, then Delivered-To
/// naming the mailbox, so that mail which comes back to it is seen as a loop
/// (see [`delivered_before`]), as Postfix's local delivery does; then
/// `trace`, further fields the caller adds (a Received line).
pub fn deliver_for(
    dir: &Path,
    hostname: &str,
    return_path: &str,
    address: &str,
    trace: &str,
    body: &[u8],
) -> std::io::Result<PathBuf> {
    let fields = format!("Return-Path: {return_path}\r\nDelivered-To: {address}\r\n{trace}");
    deliver(dir, hostname, &[fields.as_bytes(), body])
}

/// True when one of a message's Delivered-To values names `address` (a
/// mailbox written `local@domain`, lower case): it was delivered there once
/// already, and is looping.
pub fn delivered_before(delivered_to: &[String], address: &str) -> bool {
    delivered_to
        .iter()
        .any(|v| v.trim_matches(['<', '>']).eq_ignore_ascii_case(address))
}
