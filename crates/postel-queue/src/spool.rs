//! The filesystem spool: the embedded, durable default.
//!
//! One file per message, so damage stays within one message, and one
//! create and one fsync per message, which is what a disk does slowest
//! (on the machine the numbers below come from: about 5 600
//! append+fsync per second, but about 1 000 create+fsync):
//! `<id>.msg` holds the body as it arrived, then the trace fields written
//! at the end (the prefix, read back ahead of the body), then the envelope
//! (written as the MAIL and RCPT commands that carried it, so the SMTP
//! grammar reads it back), then a one-line footer with the three lengths.
//! [`Queue::begin`] creates the file in `tmp/` and every
//! [`Queue::append`] writes to it, so a body is never held in memory;
//! [`Queue::commit`] writes the rest, fsyncs the file, renames it into
//! place and fsyncs the directory, shared with every commit that renamed
//! while the previous directory fsync ran (group commit); only then does
//! it return. A second file, `<id>.log`, is the append-only journal of
//! recipient states, created at the first attempt that leaves a recipient
//! to retry or a failure to report; a message that is finished at once
//! needs none: its files are removed, and the removal is made durable by a
//! directory fsync shared the same way. Files that
//! cannot be read are moved to `corrupt/` at startup, with a line on
//! standard error naming them; the spool never starts empty in their
//! place. What is left in `tmp/` at startup is a message that never got
//! its 250, and is removed. Leases live in memory: one process owns a
//! spool. Spools written in the older layout (`<id>.env` beside
//! `<id>.body`) are read as before.
//!
//! A shared append-only log would save the create as well, at the price
//! of compaction; measured with `benches/queue.rs` against the disk's own
//! create+fsync and append+fsync rates, the one file per message with
//! group commit is what this crate keeps (see the crate's README for the
//! figures).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::model::{Message, NewMessage, QueueId, Recipient, RecipientState};
use crate::queue::{Claim, Lease, Queue, QueueError, RecoveryReport, new_recipients};
use crate::record;
use crate::schedule::RetrySchedule;

/// The filesystem spool.
#[derive(Debug)]
pub struct SpoolQueue {
    dir: PathBuf,
    schedule: RetrySchedule,
    state: Mutex<State>,
    commit: crate::GroupSync,
    hook: FaultHook,
}

/// A point on the spool's write path, reported to a fault hook (see
/// [`SpoolQueue::set_fault_hook`]) so crash tests can stop the process
/// exactly there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteStep {
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
    pub const ALL: [WriteStep; 7] = [
        WriteStep::BodyWritten,
        WriteStep::BodySynced,
        WriteStep::BodyRenamed,
        WriteStep::DirectorySynced,
        WriteStep::JournalWritten,
        WriteStep::JournalSynced,
        WriteStep::Removed,
    ];
}

/// The last line of a message file: `#postel 1`, then the lengths of the
/// body, the prefix and the envelope, each as 16 hexadecimal digits.
const FOOTER_LEN: usize = 62;

fn footer(body: u64, prefix: u64, envelope: u64) -> String {
    format!("\n#postel 1 {body:016x} {prefix:016x} {envelope:016x}\n")
}

/// Reads a footer: the body's, the prefix's and the envelope's lengths.
fn parse_footer(line: &[u8]) -> Option<[u64; 3]> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix("\n#postel 1 ")?.strip_suffix('\n')?;
    let mut parts = rest.split(' ');
    let mut next = || {
        parts
            .next()
            .filter(|p| p.len() == 16)
            .and_then(|p| u64::from_str_radix(p, 16).ok())
    };
    let lengths = [next()?, next()?, next()?];
    parts.next().is_none().then_some(lengths)
}

/// Where a message file's parts are: the body's length, and the prefix's
/// offset and length. `None` for a file that is not one.
fn layout(file: &File) -> Option<(u64, u64, u64, u64)> {
    use std::os::unix::fs::FileExt as _;
    let len = file.metadata().ok()?.len();
    let footer_at = len.checked_sub(FOOTER_LEN as u64)?;
    let mut line = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut line, footer_at).ok()?;
    let [body, prefix, envelope] = parse_footer(&line)?;
    let envelope_at = body.checked_add(prefix)?;
    (envelope_at.checked_add(envelope)? == footer_at).then_some((
        body,
        prefix,
        envelope_at,
        envelope,
    ))
}

/// A message being received into a [`SpoolQueue`]: a file in `tmp/`,
/// removed if the message is dropped before its commit.
#[derive(Debug)]
pub struct SpoolIncoming {
    id: QueueId,
    path: PathBuf,
    file: File,
    len: u64,
    committed: bool,
}

impl Drop for SpoolIncoming {
    fn drop(&mut self) {
        if !self.committed {
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
        let spool = SpoolQueue {
            dir,
            schedule,
            state: Mutex::new(State::default()),
            commit: crate::GroupSync::default(),
            hook: FaultHook::default(),
        };
        let quarantined = spool.load()?;
        spool.lock().quarantined = quarantined;
        Ok(spool)
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
        loop {
            let id = {
                let mut state = self.lock();
                state.seq = state.seq.wrapping_add(1);
                QueueId::new(now, state.seq)
            };
            if self.lock().messages.contains_key(&id)
                || self.path(&id, "msg").exists()
                || self.path(&id, "env").exists()
            {
                continue;
            }
            let path = self.dir.join("tmp").join(format!("{id}.msg"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(SpoolIncoming {
                        id,
                        path,
                        file,
                        len: 0,
                        committed: false,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(storage("creating a message file")(e)),
            }
        }
    }

    async fn append(&self, incoming: &mut SpoolIncoming, chunk: &[u8]) -> Result<(), QueueError> {
        incoming
            .file
            .write_all(chunk)
            .map_err(storage("writing a message file"))?;
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
        let mut tail = prefix;
        let prefix_len = tail.len() as u64;
        tail.extend_from_slice(envelope.as_bytes());
        tail.extend_from_slice(footer(incoming.len, prefix_len, envelope.len() as u64).as_bytes());
        incoming
            .file
            .write_all(&tail)
            .map_err(storage("writing a message file"))?;
        self.step(WriteStep::BodyWritten);
        // Data first, synced; then the name. tmp/ itself needs no fsync:
        // the file's data is on disk, and only the renamed name matters.
        incoming
            .file
            .sync_data()
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
        if !self.lock().messages.contains_key(id) {
            return Err(QueueError::NotFound(id.clone()));
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
            (lines, message.is_done())
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
        if !self.lock().messages.contains_key(id) {
            return Err(QueueError::NotFound(id.clone()));
        }
        self.append_journal(id, &format!("held {}\n", u8::from(held)))?;
        if let Some(m) = self.lock().messages.get_mut(id) {
            m.held = held;
        }
        Ok(())
    }

    async fn delete(&self, id: &QueueId) -> Result<(), QueueError> {
        if self.lock().messages.remove(id).is_none() {
            return Err(QueueError::NotFound(id.clone()));
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
        state.quarantined.extend(more);
        Ok(RecoveryReport {
            messages: state.messages.len(),
            leases_released: live,
            quarantined: state.quarantined.clone(),
        })
    }
}
