//! The filesystem spool: the embedded, durable default.
//!
//! Two places for a message, chosen by its size, both append-only:
//!
//! - **The segment log** (`seg-<n>.log`, see `segment.rs`) takes the
//!   small messages, those whose body is at most 128 KiB, which is
//!   nearly all mail. [`Queue::commit`] appends one record (the body, the
//!   prefix, the envelope, a checksum) to the current segment and waits
//!   for an fdatasync that it shares with every commit that appended
//!   while the previous fdatasync ran (group commit); only then does it
//!   return. Later state changes (a delivery attempt, a bounce reported,
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
//!   128 KiB while it arrives: the first [`Queue::append`] past that
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
//! Reading back, a record cut short by a crash or damaged later stops the
//! reading of its segment: what precedes it stands, what follows is
//! copied to `corrupt/` and reported; a message file that cannot be read
//! is moved to `corrupt/`. Each gets a line on standard error and a place
//! in [`RecoveryReport::quarantined`]; the spool never starts empty in
//! their place. What is left in `tmp/` at startup never got its 250, and
//! is removed. Leases live in memory: one process owns a spool. Spools
//! written in the older layout (`<id>.env` beside `<id>.body`) are read
//! as before.

mod file;
mod segment;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::model::{Message, NewMessage, QueueId, Recipient, RecipientState};
use crate::queue::{Claim, Lease, Queue, QueueError, RecoveryReport, new_recipients};
use crate::record;
use crate::schedule::RetrySchedule;
use file::{footer, layout};
use segment::{HEADER_LEN, Location};

/// Bodies up to this size (prefix not counted) go into the segment log;
/// larger ones into a file of their own as they arrive.
const SMALL: usize = 128 * 1024;

/// A segment longer than this is closed and a new one begun.
const SEGMENT_LIMIT: u64 = 64 * 1024 * 1024;

/// The oldest segment is compacted (its live messages moved forward, then
/// the file removed) once this few of its messages are still queued.
const MOVE_UP_TO: usize = 1024;

/// The filesystem spool.
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
    file: File,
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
    /// Use [`Queue::recover`] for the report.
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

    /// Reads every message; unreadable ones go to `corrupt/`. Returns the ids
    /// set aside.
    fn load(&self) -> Result<Vec<String>, QueueError> {
        let mut quarantined = Vec::new();
        let mut state = self.lock();
        state.messages.clear();
        state.leases.clear();
        state.places.clear();
        state.segments.clear();
        self.replay_segments(&mut state, &mut quarantined)?;
        // What is in tmp/ never got its 250; this process owns the spool.
        if let Ok(entries) = fs::read_dir(self.dir.join("tmp")) {
            for entry in entries.flatten() {
                let _ = fs::remove_file(entry.path());
            }
        }
        let entries = fs::read_dir(&self.dir).map_err(storage("reading the spool"))?;
        for entry in entries {
            let path = entry.map_err(storage("reading the spool"))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(id) = name
                .strip_suffix(".msg")
                .or_else(|| name.strip_suffix(".env"))
                .and_then(QueueId::parse)
            else {
                continue;
            };
            if let Some(message) = self.read_message(&id) {
                if message.is_done() {
                    // Finished before a crash cut its removal short.
                    self.remove(&id, false)?;
                } else {
                    state.messages.insert(id, message);
                }
                continue;
            }
            for ext in ["msg", "env", "body", "log"] {
                let from = self.path(&id, ext);
                if from.exists() {
                    let _ = fs::rename(&from, self.dir.join("corrupt").join(format!("{id}.{ext}")));
                }
            }
            eprintln!(
                "postel-queue: message {id} is unreadable; moved to {}",
                self.dir.join("corrupt").display()
            );
            quarantined.push(id.to_string());
        }
        // A body or journal without its message is an enqueue that never
        // completed (the older layout) or a removal cut short.
        for entry in fs::read_dir(&self.dir)
            .map_err(storage("reading the spool"))?
            .flatten()
        {
            let path = entry.path();
            if let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".body").or_else(|| n.strip_suffix(".log")))
                .and_then(QueueId::parse)
                && !state.messages.contains_key(&id)
                && !self.path(&id, "msg").exists()
                && !self.path(&id, "env").exists()
            {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(quarantined)
    }

    /// Reads the segment log, oldest first: each message as its last
    /// record left it. A segment that stops short (a record cut by a
    /// crash, or damaged) keeps what came before; the rest is copied to
    /// `corrupt/` and reported.
    fn replay_segments(
        &self,
        state: &mut State,
        quarantined: &mut Vec<String>,
    ) -> Result<(), QueueError> {
        let numbers = segment::list(&self.dir).map_err(storage("reading the spool"))?;
        for n in numbers {
            let path = segment::path(&self.dir, n);
            let replay = segment::replay(&path, n).map_err(storage("reading a segment"))?;
            state.segments.insert(n, 0);
            for entry in replay.entries {
                match entry {
                    segment::Entry::Message { id, at, envelope } => {
                        // A moved message carries its state after a NUL.
                        let (envelope, lines) =
                            envelope.split_once('\0').unwrap_or((&envelope, ""));
                        let Some(mut message) = record::decode_envelope(&id, envelope) else {
                            eprintln!(
                                "postel-queue: message {id} in {} is unreadable",
                                path.display()
                            );
                            quarantined.push(id.to_string());
                            continue;
                        };
                        for line in lines.split('\n') {
                            let _ = record::apply_line(&mut message, line);
                        }
                        state.messages.insert(id.clone(), message);
                        state.places.insert(id, at);
                    }
                    segment::Entry::Journal { id, lines } => {
                        if let Some(message) = state.messages.get_mut(&id) {
                            for line in lines.split('\n') {
                                let _ = record::apply_line(message, line);
                            }
                        }
                    }
                    segment::Entry::Deleted { id } => {
                        state.messages.remove(&id);
                        state.places.remove(&id);
                    }
                }
            }
            if let Some(at) = replay.stopped_at {
                let kept = self
                    .dir
                    .join("corrupt")
                    .join(format!("seg-{n:016x}.from-{at}"));
                let copied = File::open(&path).and_then(|f| {
                    use std::os::unix::fs::FileExt as _;
                    let len = f.metadata()?.len();
                    let mut out = File::create(&kept)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut pos = at;
                    while pos < len {
                        let n = f.read_at(&mut buf, pos)?;
                        if n == 0 {
                            break;
                        }
                        out.write_all(buf.get(..n).unwrap_or_default())?;
                        pos += n as u64;
                    }
                    Ok(())
                });
                eprintln!(
                    "postel-queue: {} cannot be read after offset {at} (cut short by a crash, or damaged); the rest is in {}{}",
                    path.display(),
                    kept.display(),
                    copied
                        .err()
                        .map_or_else(String::new, |e| format!(" (copy failed: {e})"))
                );
                quarantined.push(format!("seg-{n:016x}@{at}"));
            }
        }
        let done: Vec<QueueId> = state
            .places
            .keys()
            .filter(|id| state.messages.get(*id).is_none_or(Message::is_done))
            .cloned()
            .collect();
        for id in done {
            state.messages.remove(&id);
            state.places.remove(&id);
        }
        let State {
            places, segments, ..
        } = state;
        for at in places.values() {
            *segments.entry(at.segment).or_default() += 1;
        }
        Ok(())
    }

    /// Removes the oldest segments once nothing lives in them, moving the
    /// last few messages of the oldest forward first, so that a message
    /// that waits long keeps no more than its own records on disk. Only
    /// the oldest is ever removed: the records of a message are in its own
    /// segment or later ones, so they stay while it does.
    fn compact(&self) -> Result<(), QueueError> {
        // What is moved lands at or after this segment, and is not moved
        // again in this pass.
        let current = self.log.current();
        loop {
            let mut state = self.lock();
            let Some((&oldest, &live)) = state.segments.iter().next() else {
                return Ok(());
            };
            if oldest >= current {
                return Ok(());
            }
            if live == 0 {
                state.segments.remove(&oldest);
                drop(state);
                self.log
                    .remove(oldest)
                    .map_err(storage("removing a segment"))?;
                continue;
            }
            // Stragglers move once a whole newer segment has filled
            // behind them: most messages are gone long before.
            if live > MOVE_UP_TO || oldest + 1 >= current {
                return Ok(());
            }
            let ids: Vec<QueueId> = state
                .places
                .iter()
                .filter(|(_, at)| at.segment == oldest)
                .map(|(id, _)| id.clone())
                .collect();
            if ids.is_empty() {
                // The count was off: nothing lives there.
                state.segments.insert(oldest, 0);
                continue;
            }
            for id in ids {
                self.move_forward(&mut state, &id)?;
            }
            drop(state);
            self.log.sync().map_err(storage("syncing a segment"))?;
        }
    }

    /// Appends message `id` again, with its state folded in, and points
    /// to the new copy.
    fn move_forward(&self, state: &mut State, id: &QueueId) -> Result<(), QueueError> {
        use std::os::unix::fs::FileExt as _;
        let (Some(at), Some(message)) = (state.places.get(id).copied(), state.messages.get(id))
        else {
            return Ok(());
        };
        let file = File::open(segment::path(&self.dir, at.segment))
            .map_err(storage("reading a segment"))?;
        let read = |(offset, len): (u64, u64)| -> Result<Vec<u8>, QueueError> {
            let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
            file.read_exact_at(&mut buf, offset)
                .map_err(storage("reading a segment"))?;
            Ok(buf)
        };
        let (prefix, body) = (read(at.prefix)?, read(at.body)?);
        let mut state_text = record::encode_envelope(message);
        state_text.push('\0');
        for (i, r) in message.recipients.iter().enumerate() {
            state_text.push_str(&record::recipient_line(i, r));
        }
        state_text.push_str(if message.held { "held 1\n" } else { "held 0\n" });
        if message.warned {
            state_text.push_str("warned\n");
        }
        let rec = segment::record(b'm', id, [&prefix, &body, state_text.as_bytes()]);
        let (segment, offset) = self
            .log
            .append(&rec)
            .map_err(storage("writing a segment"))?;
        let start = offset + HEADER_LEN;
        let moved = Location {
            segment,
            prefix: (start, at.prefix.1),
            body: (start + at.prefix.1, at.body.1),
        };
        state.places.insert(id.clone(), moved);
        if let Some(n) = state.segments.get_mut(&at.segment) {
            *n = n.saturating_sub(1);
        }
        *state.segments.entry(segment).or_default() += 1;
        Ok(())
    }

    /// Appends journal `lines` (or, for `None`, a deletion) for segment
    /// message `id`, under the state lock, so that the record and the state
    /// in memory change together; the caller then syncs the log. `gone`
    /// says whether the message leaves the queue with it.
    fn note(
        &self,
        state: &mut State,
        id: &QueueId,
        lines: Option<&str>,
        gone: bool,
    ) -> Result<(), QueueError> {
        let rec = match lines {
            Some(lines) => segment::record(b'j', id, [lines.as_bytes(), b"", b""]),
            None => segment::record(b'd', id, [b"", b"", b""]),
        };
        let (segment, _) = self
            .log
            .append(&rec)
            .map_err(storage("writing a segment"))?;
        state.segments.entry(segment).or_default();
        if gone {
            state.messages.remove(id);
            if let Some(at) = state.places.remove(id)
                && let Some(n) = state.segments.get_mut(&at.segment)
            {
                *n = n.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// After [`SpoolQueue::note`]: makes it durable, and compacts when a
    /// message left.
    fn noted(&self, gone: bool) -> Result<(), QueueError> {
        self.step(WriteStep::JournalWritten);
        self.log.sync().map_err(storage("syncing a segment"))?;
        self.step(WriteStep::JournalSynced);
        if gone {
            self.compact()?;
        }
        Ok(())
    }

    fn read_message(&self, id: &QueueId) -> Option<Message> {
        let mut message = if let Ok(file) = File::open(self.path(id, "msg")) {
            use std::os::unix::fs::FileExt as _;
            let (_, _, at, len) = layout(&file)?;
            let mut env = vec![0u8; usize::try_from(len).ok()?];
            file.read_exact_at(&mut env, at).ok()?;
            record::decode_envelope(id, std::str::from_utf8(&env).ok()?)?
        } else {
            // The older layout: the envelope and the body in files of their own.
            let env = fs::read_to_string(self.path(id, "env")).ok()?;
            if !self.path(id, "body").exists() {
                return None;
            }
            record::decode_envelope(id, &env)?
        };
        if let Ok(log) = fs::read_to_string(self.path(id, "log")) {
            for line in log.split('\n') {
                // A torn last line from a crash mid-append is ignored.
                let _ = record::apply_line(&mut message, line);
            }
        }
        Some(message)
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

impl Queue for SpoolQueue {
    type Incoming = SpoolIncoming;
    type Body = SpoolBody;

    async fn begin(&self, now: SystemTime) -> Result<SpoolIncoming, QueueError> {
        // The counter makes the id unique in this run, the time across
        // runs; a clash with a queued message is skipped.
        let mut state = self.lock();
        let id = loop {
            state.seq = state.seq.wrapping_add(1);
            let id = QueueId::new(now, state.seq);
            if !state.messages.contains_key(&id) {
                break id;
            }
        };
        drop(state);
        Ok(SpoolIncoming {
            path: self.dir.join("tmp").join(format!("{id}.msg")),
            id,
            held: Held::Memory(Vec::new()),
            len: 0,
            committed: false,
        })
    }

    async fn append(&self, incoming: &mut SpoolIncoming, chunk: &[u8]) -> Result<(), QueueError> {
        match &mut incoming.held {
            Held::Memory(body) if body.len() + chunk.len() <= SMALL => {
                body.extend_from_slice(chunk);
            }
            Held::Memory(body) => {
                // Too large for the segment log: a file of its own.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&incoming.path)
                    .map_err(storage("creating a message file"))?;
                let written = file.write_all(body).and_then(|()| file.write_all(chunk));
                incoming.held = Held::File(file);
                written.map_err(storage("writing a message file"))?;
            }
            Held::File(file) => file
                .write_all(chunk)
                .map_err(storage("writing a message file"))?,
        }
        incoming.len += chunk.len() as u64;
        Ok(())
    }

    async fn abort(&self, incoming: SpoolIncoming) -> Result<(), QueueError> {
        drop(incoming);
        Ok(())
    }

    async fn commit(
        &self,
        mut incoming: SpoolIncoming,
        message: NewMessage,
        prefix: Vec<u8>,
        now: SystemTime,
    ) -> Result<QueueId, QueueError> {
        if message.recipients.is_empty() {
            return Err(QueueError::NoRecipients);
        }
        let id = incoming.id.clone();
        let stored = Message {
            id: id.clone(),
            recipients: new_recipients(&message.recipients, now),
            held: message.arrival.quarantine.is_some(),
            envelope: message,
            created: now,
            expires: self.schedule.expiry(now),
            warned: false,
        };
        let envelope = record::encode_envelope(&stored);
        let file = match &mut incoming.held {
            Held::Memory(body) => {
                let rec = segment::record(b'm', &id, [&prefix, body, envelope.as_bytes()]);
                let (segment, offset) = self
                    .log
                    .append(&rec)
                    .map_err(storage("writing a segment"))?;
                self.step(WriteStep::SegmentWritten);
                self.log.sync().map_err(storage("syncing a segment"))?;
                self.step(WriteStep::SegmentSynced);
                let start = offset + HEADER_LEN;
                let prefix_len = prefix.len() as u64;
                let at = Location {
                    segment,
                    prefix: (start, prefix_len),
                    body: (start + prefix_len, body.len() as u64),
                };
                let mut state = self.lock();
                state.messages.insert(id.clone(), stored);
                state.places.insert(id.clone(), at);
                *state.segments.entry(segment).or_default() += 1;
                return Ok(id);
            }
            Held::File(file) => file,
        };
        let mut tail = prefix;
        let prefix_len = tail.len() as u64;
        tail.extend_from_slice(envelope.as_bytes());
        tail.extend_from_slice(footer(incoming.len, prefix_len, envelope.len() as u64).as_bytes());
        file.write_all(&tail)
            .map_err(storage("writing a message file"))?;
        self.step(WriteStep::BodyWritten);
        // Data first, synced; then the name. tmp/ itself needs no fsync:
        // the file's data is on disk, and only the renamed name matters.
        file.sync_data()
            .map_err(storage("syncing a message file"))?;
        self.step(WriteStep::BodySynced);
        fs::rename(&incoming.path, self.path(&id, "msg"))
            .map_err(storage("renaming a message file"))?;
        incoming.committed = true;
        self.step(WriteStep::BodyRenamed);
        self.commit_dir()?;
        self.step(WriteStep::DirectorySynced);
        self.lock().messages.insert(id.clone(), stored);
        Ok(id)
    }

    async fn open_body(&self, id: &QueueId) -> Result<SpoolBody, QueueError> {
        let place = {
            let state = self.lock();
            if !state.messages.contains_key(id) {
                return Err(QueueError::NotFound(id.clone()));
            }
            state.places.get(id).copied()
        };
        if let Some(at) = place {
            // A segment removed meanwhile has moved the message forward:
            // look again.
            let file = match File::open(segment::path(&self.dir, at.segment)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let at = self.lock().places.get(id).copied();
                    let at = at.ok_or_else(|| QueueError::NotFound(id.clone()))?;
                    File::open(segment::path(&self.dir, at.segment))
                        .map_err(storage("opening a segment"))?
                }
                Err(e) => return Err(storage("opening a segment")(e)),
            };
            return Ok(SpoolBody {
                file,
                parts: [at.prefix, at.body],
                size: at.prefix.1 + at.body.1,
            });
        }
        match File::open(self.path(id, "msg")) {
            Ok(file) => {
                let (body, prefix, _, _) = layout(&file).ok_or_else(|| QueueError::Storage {
                    context: "reading a message file",
                    message: format!("{id}.msg has no valid footer"),
                })?;
                Ok(SpoolBody {
                    file,
                    parts: [(body, prefix), (0, body)],
                    size: body + prefix,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = File::open(self.path(id, "body")).map_err(storage("opening a body"))?;
                let len = file.metadata().map_err(storage("opening a body"))?.len();
                Ok(SpoolBody {
                    file,
                    parts: [(0, 0), (0, len)],
                    size: len,
                })
            }
            Err(e) => Err(storage("opening a message file")(e)),
        }
    }

    fn body_size(&self, body: &SpoolBody) -> u64 {
        body.size
    }

    async fn read_body(&self, body: &mut SpoolBody, buf: &mut [u8]) -> Result<usize, QueueError> {
        use std::os::unix::fs::FileExt as _;
        let Some(part) = body.parts.iter_mut().find(|(_, len)| *len > 0) else {
            return Ok(0);
        };
        let want = usize::try_from(part.1).map_or(buf.len(), |l| l.min(buf.len()));
        let Some(into) = buf.get_mut(..want) else {
            return Ok(0);
        };
        let n = body
            .file
            .read_at(into, part.0)
            .map_err(storage("reading a body"))?;
        if n == 0 && want > 0 {
            return Err(QueueError::Storage {
                context: "reading a body",
                message: "the message file is shorter than its footer says".into(),
            });
        }
        part.0 += n as u64;
        part.1 -= n as u64;
        Ok(n)
    }

    async fn claim(
        &self,
        _worker: &str,
        now: SystemTime,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, QueueError> {
        let mut state = self.lock();
        let mut claims = Vec::new();
        let mut token = state.next_token;
        // Stop at `limit`: a large backlog of due mail costs one claim no
        // more than the messages it returns.
        let leases = &state.leases;
        let due_ids: Vec<QueueId> = state
            .messages
            .values()
            .filter(|m| m.is_due(now))
            .filter(|m| leases.get(&m.id).is_none_or(|(_, until)| *until <= now))
            .take(limit)
            .map(|m| m.id.clone())
            .collect();
        for id in due_ids {
            token += 1;
            let lease = Lease {
                id: id.clone(),
                token,
                expires: now + lease_for,
            };
            state.leases.insert(id.clone(), (token, lease.expires));
            if let Some(message) = state.messages.get(&id) {
                claims.push(Claim {
                    lease,
                    message: message.clone(),
                });
            }
        }
        state.next_token = token;
        Ok(claims)
    }

    async fn extend(
        &self,
        lease: &Lease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, QueueError> {
        let mut state = self.lock();
        let exists = state.messages.contains_key(&lease.id);
        match state.leases.get_mut(&lease.id) {
            Some((token, until)) if *token == lease.token && exists => {
                *until = now + lease_for;
                Ok(Lease {
                    expires: *until,
                    ..lease.clone()
                })
            }
            _ => Err(QueueError::StaleLease(lease.id.clone())),
        }
    }

    async fn complete(
        &self,
        lease: Lease,
        recipients: Vec<Recipient>,
        warned: bool,
    ) -> Result<(), QueueError> {
        let lines = {
            let state = self.lock();
            let valid = matches!(state.leases.get(&lease.id), Some((t, _)) if *t == lease.token);
            let message = state
                .messages
                .get(&lease.id)
                .ok_or_else(|| QueueError::NotFound(lease.id.clone()))?;
            if !valid || recipients.len() != message.recipients.len() {
                return Err(QueueError::StaleLease(lease.id.clone()));
            }
            let mut lines: String = recipients
                .iter()
                .enumerate()
                .map(|(i, r)| record::recipient_line(i, r))
                .collect();
            if warned {
                lines.push_str("warned\n");
            }
            lines
        };
        let finished = recipients.iter().all(|r| {
            matches!(
                r.state,
                RecipientState::Delivered
                    | RecipientState::Failed { reported: true }
                    | RecipientState::Expired { reported: true }
            )
        });
        {
            let mut state = self.lock();
            if state.places.contains_key(&lease.id) {
                let valid =
                    matches!(state.leases.get(&lease.id), Some((t, _)) if *t == lease.token);
                if !valid {
                    return Err(QueueError::StaleLease(lease.id.clone()));
                }
                self.note(&mut state, &lease.id, Some(&lines), finished)?;
                if let Some((_, until)) = state.leases.get_mut(&lease.id) {
                    *until = SystemTime::UNIX_EPOCH;
                }
                if let Some(m) = state.messages.get_mut(&lease.id) {
                    m.recipients = recipients;
                    m.warned |= warned;
                }
                drop(state);
                return self.noted(finished);
            }
        }
        if finished {
            // Nothing more to say about it: its removal, made durable with
            // a directory fsync shared with concurrent commits and
            // removals, is the record (one file fewer created per message).
            self.lock().messages.remove(&lease.id);
            self.remove(&lease.id, false)?;
            self.step(WriteStep::Removed);
            self.commit_dir()?;
            self.step(WriteStep::DirectorySynced);
            return Ok(());
        }
        self.append_journal(&lease.id, &lines)?;
        let mut state = self.lock();
        if let Some((_, until)) = state.leases.get_mut(&lease.id) {
            *until = SystemTime::UNIX_EPOCH;
        }
        if let Some(m) = state.messages.get_mut(&lease.id) {
            m.recipients = recipients;
            m.warned |= warned;
        }
        Ok(())
    }

    async fn mark_reported(&self, id: &QueueId, recipients: &[usize]) -> Result<(), QueueError> {
        let (lines, done) = {
            let mut state = self.lock();
            let message = state
                .messages
                .get_mut(id)
                .ok_or_else(|| QueueError::NotFound(id.clone()))?;
            let mut lines = String::new();
            for &i in recipients {
                if let Some(r) = message.recipients.get_mut(i) {
                    r.state = match r.state {
                        RecipientState::Failed { .. } => RecipientState::Failed { reported: true },
                        RecipientState::Expired { .. } => {
                            RecipientState::Expired { reported: true }
                        }
                        other => other,
                    };
                    lines.push_str(&record::recipient_line(i, r));
                }
            }
            let done = message.is_done();
            if state.places.contains_key(id) {
                self.note(&mut state, id, Some(&lines), done)?;
                drop(state);
                return self.noted(done);
            }
            (lines, done)
        };
        self.append_journal(id, &lines)?;
        if done {
            self.lock().messages.remove(id);
            self.remove(id, false)?;
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Message>, QueueError> {
        Ok(self.lock().messages.values().cloned().collect())
    }

    async fn show(&self, id: &QueueId) -> Result<Message, QueueError> {
        self.lock()
            .messages
            .get(id)
            .cloned()
            .ok_or_else(|| QueueError::NotFound(id.clone()))
    }

    async fn set_held(&self, id: &QueueId, held: bool) -> Result<(), QueueError> {
        {
            let mut state = self.lock();
            if !state.messages.contains_key(id) {
                return Err(QueueError::NotFound(id.clone()));
            }
            if state.places.contains_key(id) {
                self.note(
                    &mut state,
                    id,
                    Some(&format!("held {}\n", u8::from(held))),
                    false,
                )?;
                if let Some(m) = state.messages.get_mut(id) {
                    m.held = held;
                }
                drop(state);
                return self.noted(false);
            }
        }
        self.append_journal(id, &format!("held {}\n", u8::from(held)))?;
        if let Some(m) = self.lock().messages.get_mut(id) {
            m.held = held;
        }
        Ok(())
    }

    async fn delete(&self, id: &QueueId) -> Result<(), QueueError> {
        {
            let mut state = self.lock();
            if !state.messages.contains_key(id) {
                return Err(QueueError::NotFound(id.clone()));
            }
            if state.places.contains_key(id) {
                self.note(&mut state, id, None, true)?;
                drop(state);
                return self.noted(true);
            }
            state.messages.remove(id);
        }
        self.remove(id, true)
    }

    async fn requeue(&self, id: &QueueId, now: SystemTime) -> Result<(), QueueError> {
        let lines = {
            let mut state = self.lock();
            let message = state
                .messages
                .get_mut(id)
                .ok_or_else(|| QueueError::NotFound(id.clone()))?;
            let mut lines = String::new();
            for (i, r) in message.recipients.iter_mut().enumerate() {
                if r.state == RecipientState::Pending {
                    r.next_attempt = now;
                    lines.push_str(&record::recipient_line(i, r));
                }
            }
            if state.places.contains_key(id) {
                self.note(&mut state, id, Some(&lines), false)?;
                drop(state);
                return self.noted(false);
            }
            lines
        };
        self.append_journal(id, &lines)
    }

    async fn recover(&self, now: SystemTime) -> Result<RecoveryReport, QueueError> {
        let live = self
            .lock()
            .leases
            .values()
            .filter(|(_, until)| *until > now)
            .count();
        let more = self.load()?;
        let mut state = self.lock();
        // A damaged segment stays where it is, and is found again.
        for q in more {
            if !state.quarantined.contains(&q) {
                state.quarantined.push(q);
            }
        }
        Ok(RecoveryReport {
            messages: state.messages.len(),
            leases_released: live,
            quarantined: state.quarantined.clone(),
        })
    }
}
