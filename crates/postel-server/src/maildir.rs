//! Local delivery into Maildir: write to `tmp/`, fsync, rename into `new/`,
//! fsync the directory. A name is unique by time, process, a counter and
//! the host name, as the Maildir conventions ask; a delivery from the queue
//! is named after its queue entry instead, so that delivering it again after
//! a crash (the file renamed, the queue not yet told) finds the file there
//! and writes no second copy.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// How a delivered file is named.
#[derive(Debug, Clone, Copy)]
pub enum Naming<'a> {
    /// A fresh unique name: every delivery is a new message.
    Unique,
    /// Named after the queue entry it comes from (its id, and when it was
    /// created): a second delivery of the same entry into the same Maildir
    /// is recognised and skipped.
    Once {
        /// The queue id.
        id: &'a str,
        /// When the entry was created, seconds since the epoch.
        created: u64,
    },
}

/// `/` and `:` cannot appear in the host part of a Maildir name.
fn host_part(hostname: &str) -> String {
    hostname
        .chars()
        .map(|c| match c {
            '/' => "\\057".to_owned(),
            ':' => "\\072".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// Delivers `parts` (written in order: trace headers, then the message) into
/// the Maildir at `dir`, creating it if needed. Returns the file in `new/`,
/// or, for [`Naming::Once`], the copy already there (in `new/`, or moved to
/// `cur/` by a mail client with no flags yet).
pub fn deliver(
    dir: &Path,
    hostname: &str,
    naming: Naming<'_>,
    parts: &[&[u8]],
) -> std::io::Result<PathBuf> {
    deliver_with(dir, hostname, naming, &mut |file| {
        parts.iter().try_for_each(|part| file.write_all(part))
    })
}

/// [`deliver`], with the file's contents written by `write`: a message
/// read from the queue a piece at a time.
pub fn deliver_with(
    dir: &Path,
    hostname: &str,
    naming: Naming<'_>,
    write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let host = host_part(hostname);
    let name = match naming {
        Naming::Unique => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            format!(
                "{}.M{}P{}Q{n}.{host}",
                now.as_secs(),
                now.subsec_micros(),
                std::process::id()
            )
        }
        Naming::Once { id, created } => {
            let name = format!("{created}.Q{id}.{host}");
            for existing in [
                dir.join("new").join(&name),
                dir.join("cur").join(format!("{name}:2,")),
            ] {
                if existing.exists() {
                    return Ok(existing);
                }
            }
            name
        }
    };
    let tmp = dir.join("tmp").join(&name);
    let result = (|| {
        // A left-over from a delivery that crashed before its rename is
        // written over.
        let file = match File::create(&tmp) {
            Ok(f) => f,
            // A mailbox's first message: the Maildir is made now.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                for sub in ["tmp", "new", "cur"] {
                    fs::create_dir_all(dir.join(sub))?;
                }
                File::create(&tmp)?
            }
            Err(e) => return Err(e),
        };
        // Small enough to be cheap to allocate for every delivery, large
        // enough for a typical message in one write; larger pieces of a
        // large one go past it straight to the file.
        let mut file = std::io::BufWriter::with_capacity(16 * 1024, file);
        write(&mut file)?;
        file.into_inner()
            .map_err(std::io::IntoInnerError::into_error)?
            .sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let new = dir.join("new").join(&name);
    fs::rename(&tmp, &new)?;
    sync_new(&dir.join("new"))?;
    Ok(new)
}

/// Makes a rename into a Maildir's `new/` durable, with one directory
/// fsync shared by the deliveries into that Maildir that run at the same
/// time.
fn sync_new(new: &Path) -> std::io::Result<()> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};
    static GROUPS: OnceLock<Mutex<HashMap<PathBuf, Arc<postel_queue::GroupSync>>>> =
        OnceLock::new();
    let group = {
        let mut groups = GROUPS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if groups.len() > 10_000 {
            // Only sharing is lost: a fresh group syncs on its own.
            groups.retain(|_, g| Arc::strong_count(g) > 1);
        }
        Arc::clone(groups.entry(new.to_path_buf()).or_default())
    };
    group.sync(new)
}

/// Delivers `body` into the Maildir at `dir` for the mailbox `address`,
/// behind the trace fields a mailbox keeps: Return-Path, then Delivered-To
/// naming the mailbox, so that mail which comes back to it is seen as a loop
/// (see [`delivered_before`]), as Postfix's local delivery does; then
/// `trace`, further fields the caller adds (a Received line).
pub fn deliver_for(
    dir: &Path,
    hostname: &str,
    naming: Naming<'_>,
    return_path: &str,
    address: &str,
    trace: &str,
    body: &[u8],
) -> std::io::Result<PathBuf> {
    let fields = format!("Return-Path: {return_path}\r\nDelivered-To: {address}\r\n{trace}");
    deliver(dir, hostname, naming, &[fields.as_bytes(), body])
}

/// True when one of a message's Delivered-To values names `address` (a
/// mailbox written `local@domain`, lower case): it was delivered there once
/// already, and is looping.
pub fn delivered_before(delivered_to: &[String], address: &str) -> bool {
    delivered_to
        .iter()
        .any(|v| v.trim_matches(['<', '>']).eq_ignore_ascii_case(address))
}

/// [`deliver_for`], with the message written by `write` after the trace
/// fields (Return-Path, Delivered-To, then `trace`), from `fields`.
pub fn deliver_from(
    dir: &Path,
    hostname: &str,
    naming: Naming<'_>,
    (return_path, address, trace): (&str, &str, &str),
    write: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<PathBuf> {
    let fields = format!("Return-Path: {return_path}\r\nDelivered-To: {address}\r\n{trace}");
    deliver_with(dir, hostname, naming, &mut |file| {
        file.write_all(fields.as_bytes())?;
        write(file)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn files(dir: &Path, sub: &str) -> usize {
        fs::read_dir(dir.join(sub)).unwrap().count()
    }

    #[test]
    fn a_queue_entry_is_delivered_once_wherever_its_copy_went() {
        let dir = std::env::temp_dir().join(format!("postel-maildir-once-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let once = Naming::Once {
            id: "0661ABC",
            created: 1_800_000_000,
        };
        let first = deliver(&dir, "mx.example", once, &[b"first"]).unwrap();
        let again = deliver(&dir, "mx.example", once, &[b"second"]).unwrap();
        assert_eq!(first, again);
        assert_eq!(
            (files(&dir, "new"), fs::read(&first).unwrap()),
            (1, b"first".to_vec())
        );
        // A mail client moved it to cur/: still delivered.
        let seen = dir.join("cur").join(format!(
            "{}:2,",
            first.file_name().unwrap().to_string_lossy()
        ));
        fs::rename(&first, &seen).unwrap();
        assert_eq!(
            deliver(&dir, "mx.example", once, &[b"third"]).unwrap(),
            seen
        );
        assert_eq!((files(&dir, "new"), files(&dir, "cur")), (0, 1));
        // Unique names are always new messages.
        deliver(&dir, "mx.example", Naming::Unique, &[b"a"]).unwrap();
        deliver(&dir, "mx.example", Naming::Unique, &[b"a"]).unwrap();
        assert_eq!(files(&dir, "new"), 2);
        let _ = fs::remove_dir_all(&dir);
    }
}
