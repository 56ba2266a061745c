//! The filesystem spool: the embedded, durable default.
//!
//! Two places for a message, chosen by its size, both append-only:
//!
//! - **The segment log** (`seg-<n>.log`, see `segment.rs`) takes the
//!   small messages, those whose body is at most 128 KiB, which is
//!   nearly all mail. [`Queue::commit`](crate::Queue::commit) appends one record (the body, the
//!   prefix, the envelope, a checksum) to the current segment and waits
//!   for an fdatasync that it shares with every commit that appended
//!   while the previous fdatasync ran (group commit); only then does it
//!   return. The fdatasyncs run on a thread of the log's own
//!   (`flush.rs`), and a commit waits for its one as a future, so an
//!   async caller's thread is never blocked or handed off for it. Later state changes (a delivery attempt, a bounce reported,
//!   hold, delete) are records in the same log, synced the same way. No
//!   file is created per message: on this machine's disk an
//!   append+fdatasync costs about half a create+fdatasync, and the file
//!   system's work to create and delete files dominated the server's CPU
//!   time under load. Each run appends to a segment of its own; a
//!   segment past 64 MiB is closed and a new one begun. The oldest
//!   segment is removed once none of its messages is queued; the last
//!   few (up to 1024) are first appended again, their state folded in,
//!   once a newer segment has filled behind them, so that a message that
//!   waits for days keeps only itself on disk.
//! - **A file per message** (`<id>.msg`) takes a body that grows past
//!   128 KiB while it arrives: the first [`Queue::append`](crate::Queue::append) past that
//!   creates it in `tmp/` and every later one writes to it, so a body is
//!   never held in memory beyond those 128 KiB. The file holds the body,
//!   the prefix, the envelope (written as the MAIL and RCPT commands that
//!   carried it, so the SMTP grammar reads it back) and a one-line footer
//!   with the three lengths; the commit fsyncs it, renames it into place
//!   and fsyncs the directory (shared the same way). Its state changes go
//!   to `<id>.log`, an append-only journal created at the first attempt
//!   that leaves something to retry or report; a message finished at once
//!   is just removed, the removal made durable by a shared directory
//!   fsync.
//!
//! Reading back, a damaged record stops the reading of its segment: what
//! precedes it stands, what follows is copied to `corrupt/` and reported;
//! a message file that cannot be read is moved to `corrupt/`. Each gets a
//! line on standard error and a place in
//! [`RecoveryReport::quarantined`](crate::RecoveryReport::quarantined);
//! the spool never starts empty in their place. A record that runs past
//! the end of its segment is an append the process was killed inside (a
//! `write` stops between pages on SIGKILL): it was never acknowledged,
//! since that waits for a sync after the write, so it is copied to
//! `corrupt/`, cut off and reported on standard error, but not
//! quarantined. What is left in `tmp/` at startup never got its 250, and
//! is removed. Leases live in memory: one process owns a spool. Spools
//! written in the older layout (`<id>.env` beside `<id>.body`) are read
//! as before.

mod compact;
mod file;
mod flush;
mod ops;
mod recovery;
mod segment;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::model::{Message, QueueId};
use crate::queue::QueueError;
use crate::schedule::RetrySchedule;
use segment::Location;

/// Bodies up to this size (prefix not counted) go into the segment log;
/// larger ones into a file of their own as they arrive.
const SMALL: usize = 128 * 1024;

/// A segment longer than this is closed and a new one begun.
const SEGMENT_LIMIT: u64 = 64 * 1024 * 1024;

/// The oldest segment is compacted (its live messages moved forward, then
/// the file removed) once this few of its messages are still queued.
const MOVE_UP_TO: usize = 1024;

/// The filesystem spool: durable before [`Queue::commit`](crate::Queue::commit)
/// returns, crash-safe at every write step ([`WriteStep`]).
///
/// Small messages (a body of at most 128 KiB) are records in a shared,
/// append-only segment log, made durable by an fdatasync that concurrent
/// commits share (group commit); a larger body streams into a file of its
/// own as it arrives. The log is the measured choice: on the 2-core
/// machine the benchmarks ran on, `benches/queue.rs` put one durable
/// enqueue of 4 KiB at 62 µs each with eight writers (0.56x the time of
/// the disk's own create+fdatasync+directory fsync, 0.96x its
/// append+fdatasync); and `benches/load.sh` put the server at 2 000 to
/// 3 000 messages a second accepted and delivered into a Maildir, 2.3
/// to 3.7 times a Postfix measured in the same runs, where one file per
/// message had given 1 300 (1.5 times). Creating and removing queue files
/// was most of the server's CPU time under that load.
///
/// The fdatasyncs run on a thread of the log's own, so a lone writer pays
/// for two thread wake-ups around each of them: 285 µs an enqueue with
/// one writer (0.85x create+fsync, 1.50x append+fdatasync; it was 141 µs
/// and 0.94x when the caller ran the fdatasync itself). In exchange no
/// caller's thread ever waits on the disk: under load the server made
/// 28% fewer context switches and used 16% less CPU per message.
#[derive(Debug)]
pub struct SpoolQueue {
    dir: PathBuf,
    schedule: RetrySchedule,
    state: Mutex<State>,
    commit: crate::GroupSync,
    log: segment::Log,
    hook: FaultHook,
}

/// A point on the spool's write path, reported to a fault hook (see
/// [`SpoolQueue::set_fault_hook`]) so crash tests can stop the process
/// exactly there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteStep {
    /// A small message is appended to the segment log, not yet synced.
    SegmentWritten,
    /// The segment log is synced: the enqueue of a small message is
    /// durable.
    SegmentSynced,
    /// The message file in `tmp/` is written whole (body, prefix,
    /// envelope, footer), not yet synced.
    BodyWritten,
    /// The message file in `tmp/` is synced.
    BodySynced,
    /// The message file is renamed into the spool: the message exists
    /// once the directory is synced.
    BodyRenamed,
    /// The spool directory is synced: the enqueue is durable.
    DirectorySynced,
    /// A journal entry is written, not yet synced.
    JournalWritten,
    /// The journal entry is synced.
    JournalSynced,
    /// A finished message's files are removed; the removal is durable once
    /// the directory is synced.
    Removed,
}

impl WriteStep {
    /// Every step, in write order.
    pub const ALL: [WriteStep; 9] = [
        WriteStep::SegmentWritten,
        WriteStep::SegmentSynced,
        WriteStep::BodyWritten,
        WriteStep::BodySynced,
        WriteStep::BodyRenamed,
        WriteStep::DirectorySynced,
        WriteStep::JournalWritten,
        WriteStep::JournalSynced,
        WriteStep::Removed,
    ];
}

/// A message being received into a [`SpoolQueue`]: a file in `tmp/`,
/// removed if the message is dropped before its commit.
#[derive(Debug)]
pub struct SpoolIncoming {
    id: QueueId,
    path: PathBuf,
    held: Held,
    len: u64,
    committed: bool,
}

impl SpoolIncoming {
    /// Whether [`Queue::commit`](crate::Queue::commit) of this message
    /// blocks the calling thread on the disk: a body in a file of its own
    /// is fsynced and renamed in place, while a message for the segment
    /// log is appended and then waits for the shared fdatasync as a future,
    /// its thread free meanwhile (only the occasional closing of a full
    /// segment blocks it).
    #[must_use]
    pub fn commit_blocks(&self) -> bool {
        matches!(self.held, Held::File(_))
    }
}

/// Where the body of a message being received is so far.
#[derive(Debug)]
enum Held {
    /// In memory, while it is small.
    Memory(Vec<u8>),
    /// In its file in `tmp/`, once it is not.
    File(File),
}

impl Drop for SpoolIncoming {
    fn drop(&mut self) {
        if !self.committed && matches!(self.held, Held::File(_)) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A body being read from a [`SpoolQueue`]: the prefix, then the body.
#[derive(Debug)]
pub struct SpoolBody {
    file: std::sync::Arc<File>,
    /// (offset, length) still to read, in order.
    parts: [(u64, u64); 2],
    /// The whole length.
    size: u64,
}

/// The fault hook: called at each [`WriteStep`].
#[derive(Default)]
struct FaultHook(Option<Box<dyn Fn(WriteStep) + Send + Sync>>);

impl std::fmt::Debug for FaultHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "FaultHook(set)"
        } else {
            "FaultHook(none)"
        })
    }
}

#[derive(Debug, Default)]
struct State {
    messages: BTreeMap<QueueId, Message>,
    /// Where the messages in the segment log are; the others have a file.
    places: HashMap<QueueId, Location>,
    /// The segments, and how many queued messages each holds.
    segments: BTreeMap<u64, usize>,
    /// Read handles of segments, opened at the first body read from each
    /// and dropped with the segment, so that a delivery costs no open.
    readers: HashMap<u64, std::sync::Arc<File>>,
    leases: BTreeMap<QueueId, (u64, SystemTime)>,
    next_token: u64,
    seq: u32,
    /// Messages set aside since the spool was opened.
    quarantined: Vec<String>,
}

fn storage(context: &'static str) -> impl Fn(std::io::Error) -> QueueError {
    move |e| {
        // ENOSPC and EDQUOT: the server answers 452 before it ever says 250.
        if matches!(e.raw_os_error(), Some(28 | 122)) {
            QueueError::Full
        } else {
            QueueError::Storage {
                context,
                message: e.to_string(),
            }
        }
    }
}

impl SpoolQueue {
    /// Opens (creating if needed) the spool in `dir` and reads every message.
    /// Use [`Queue::recover`](crate::Queue::recover) for the report.
    pub fn open(dir: impl AsRef<Path>, schedule: RetrySchedule) -> Result<Self, QueueError> {
        let dir = dir.as_ref().to_path_buf();
        for sub in ["", "tmp", "corrupt"] {
            fs::create_dir_all(dir.join(sub)).map_err(storage("creating the spool"))?;
        }
        // Each run appends to a segment of its own.
        let next = segment::list(&dir)
            .map_err(storage("reading the spool"))?
            .last()
            .map_or(0, |n| n + 1);
        let log = segment::Log::create(&dir, next, SEGMENT_LIMIT)
            .map_err(storage("starting a segment"))?;
        let spool = SpoolQueue {
            dir,
            schedule,
            state: Mutex::new(State::default()),
            commit: crate::GroupSync::default(),
            log,
            hook: FaultHook::default(),
        };
        let quarantined = spool.load()?;
        spool.lock().quarantined = quarantined;
        spool.compact()?;
        Ok(spool)
    }

    /// Sets the size past which the segment log begins a new segment
    /// (64 MiB unless set): smaller makes compaction happen sooner.
    pub fn set_segment_size(&mut self, octets: u64) {
        self.log.set_limit(octets);
    }

    /// Calls `hook` at every [`WriteStep`]: a crash test stops the process
    /// there (with `std::process::abort`, say) and checks what survives.
    pub fn set_fault_hook(&mut self, hook: impl Fn(WriteStep) + Send + Sync + 'static) {
        self.hook = FaultHook(Some(Box::new(hook)));
    }

    fn step(&self, step: WriteStep) {
        if let Some(hook) = &self.hook.0 {
            hook(step);
        }
    }

    /// Makes every rename and removal done before this call durable,
    /// sharing the directory fsync with concurrent callers (group commit).
    fn commit_dir(&self) -> Result<(), QueueError> {
        self.commit
            .sync(&self.dir)
            .map_err(storage("syncing the spool directory"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path(&self, id: &QueueId, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    fn append_journal(&self, id: &QueueId, lines: &str) -> Result<(), QueueError> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(id, "log"))
            .map_err(storage("opening a journal"))?;
        log.write_all(lines.as_bytes())
            .map_err(storage("writing a journal"))?;
        self.step(WriteStep::JournalWritten);
        log.sync_data().map_err(storage("syncing a journal"))?;
        self.step(WriteStep::JournalSynced);
        Ok(())
    }

    /// Removes a message's files. `durable` fsyncs the directory: needed when
    /// an operator deletes a message, whose files must not come back after a
    /// power loss; not when the message is done, because its journal already
    /// says so and [`SpoolQueue::open`] finishes the removal of a finished
    /// message it finds (one fsync per delivered message saved).
    fn remove(&self, id: &QueueId, durable: bool) -> Result<(), QueueError> {
        // The message file (or the older layout's envelope) goes first:
        // without it the message no longer exists.
        for ext in ["msg", "env", "log", "body"] {
            match fs::remove_file(self.path(id, ext)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(storage("removing a message")(e)),
            }
        }
        if durable {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(storage("syncing the spool directory"))
}
