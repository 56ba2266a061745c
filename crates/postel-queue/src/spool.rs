//! The filesystem spool: the embedded, durable default.
//!
//! One file set per message, so damage stays within one message:
//! `<id>.body` (the message), `<id>.env` (the envelope, written as the MAIL and
//! RCPT commands that carried it, so the SMTP grammar reads it back) and
//! `<id>.log` (an append-only journal of recipient states). Enqueue writes the
//! body and envelope to `tmp/`, fsyncs them, renames them into place (body
//! first: a message exists once its envelope does) and fsyncs the directory;
//! only then does it return. Each completion appends to the journal and
//! fsyncs it. Files that cannot be read are moved to `corrupt/` at startup,
//! with a line on standard error naming them; the spool never starts empty in
//! their place. Leases live in memory: one process owns a spool.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
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
    commit: GroupCommit,
    hook: FaultHook,
}

/// A point on the spool's write path, reported to a fault hook (see
/// [`SpoolQueue::set_fault_hook`]) so crash tests can stop the process
/// exactly there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteStep {
    /// The body is written to `tmp/`, not yet synced.
    BodyWritten,
    /// The body in `tmp/` is synced.
    BodySynced,
    /// The envelope is written to `tmp/`, not yet synced.
    EnvelopeWritten,
    /// The envelope in `tmp/` is synced.
    EnvelopeSynced,
    /// The body is renamed into the spool.
    BodyRenamed,
    /// The envelope is renamed into the spool: the message exists once the
    /// directory is synced.
    EnvelopeRenamed,
    /// The spool directory is synced: the enqueue is durable.
    DirectorySynced,
    /// A journal entry is written, not yet synced.
    JournalWritten,
    /// The journal entry is synced.
    JournalSynced,
}

impl WriteStep {
    /// Every step, in write order.
    pub const ALL: [WriteStep; 9] = [
        WriteStep::BodyWritten,
        WriteStep::BodySynced,
        WriteStep::EnvelopeWritten,
        WriteStep::EnvelopeSynced,
        WriteStep::BodyRenamed,
        WriteStep::EnvelopeRenamed,
        WriteStep::DirectorySynced,
        WriteStep::JournalWritten,
        WriteStep::JournalSynced,
    ];
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

/// Group commit of the spool directory: enqueues that finish their renames
/// while a directory fsync runs share the next one, so concurrent writers
/// pay for fewer fsyncs than messages.
#[derive(Debug, Default)]
struct GroupCommit {
    state: Mutex<CommitState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct CommitState {
    /// Renames registered so far.
    requested: u64,
    /// Renames known durable.
    durable: u64,
    /// A directory fsync is running.
    running: bool,
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
            commit: GroupCommit::default(),
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

    /// Writes `data` to a new file and fsyncs it, reporting both steps.
    fn write_synced(
        &self,
        path: &Path,
        data: &[u8],
        steps: [WriteStep; 2],
    ) -> Result<(), QueueError> {
        let mut f = File::create(path).map_err(storage("creating a spool file"))?;
        f.write_all(data).map_err(storage("writing a spool file"))?;
        self.step(steps[0]);
        f.sync_all().map_err(storage("syncing a spool file"))?;
        self.step(steps[1]);
        Ok(())
    }

    /// Makes every rename done before this call durable, sharing the
    /// directory fsync with concurrent callers (group commit).
    fn commit_dir(&self) -> Result<(), QueueError> {
        let mut s = self.commit_state();
        s.requested += 1;
        let mine = s.requested;
        loop {
            if s.durable >= mine {
                return Ok(());
            }
            if s.running {
                s = self
                    .commit
                    .done
                    .wait(s)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            // Every rename registered so far happened before this fsync.
            let covers = s.requested;
            s.running = true;
            drop(s);
            let result = sync_dir(&self.dir);
            s = self.commit_state();
            s.running = false;
            if result.is_ok() {
                s.durable = s.durable.max(covers);
            }
            self.commit.done.notify_all();
            result?;
        }
    }

    fn commit_state(&self) -> std::sync::MutexGuard<'_, CommitState> {
        self.commit
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let entries = fs::read_dir(&self.dir).map_err(storage("reading the spool"))?;
        for entry in entries {
            let path = entry.map_err(storage("reading the spool"))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(id) = name.strip_suffix(".env").and_then(QueueId::parse) else {
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
            for ext in ["env", "body", "log"] {
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
        // A body without an envelope is an enqueue that never completed.
        for entry in fs::read_dir(&self.dir)
            .map_err(storage("reading the spool"))?
            .flatten()
        {
            let path = entry.path();
            if let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".body"))
                .and_then(QueueId::parse)
                && !state.messages.contains_key(&id)
            {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(quarantined)
    }

    fn read_message(&self, id: &QueueId) -> Option<Message> {
        let env = fs::read_to_string(self.path(id, "env")).ok()?;
        if !self.path(id, "body").exists() {
            return None;
        }
        let mut message = record::decode_envelope(id, &env)?;
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
        // The envelope goes first: without it the message no longer exists.
        for ext in ["env", "log", "body"] {
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
    async fn enqueue(
        &self,
        message: NewMessage,
        body: Vec<u8>,
        now: SystemTime,
    ) -> Result<QueueId, QueueError> {
        if message.recipients.is_empty() {
            return Err(QueueError::NoRecipients);
        }
        let id = {
            let mut state = self.lock();
            loop {
                state.seq = state.seq.wrapping_add(1);
                let id = QueueId::new(now, state.seq);
                if !state.messages.contains_key(&id) && !self.path(&id, "env").exists() {
                    break id;
                }
            }
        };
        let stored = Message {
            id: id.clone(),
            recipients: new_recipients(&message.recipients, now),
            held: message.arrival.quarantine.is_some(),
            envelope: message,
            created: now,
            expires: self.schedule.expiry(now),
            warned: false,
        };
        let tmp = self.dir.join("tmp");
        // Data first, synced; then the names. tmp/ itself needs no fsync:
        // the files' data is on disk, and only the renamed names matter.
        self.write_synced(
            &tmp.join(format!("{id}.body")),
            &body,
            [WriteStep::BodyWritten, WriteStep::BodySynced],
        )?;
        self.write_synced(
            &tmp.join(format!("{id}.env")),
            record::encode_envelope(&stored).as_bytes(),
            [WriteStep::EnvelopeWritten, WriteStep::EnvelopeSynced],
        )?;
        fs::rename(tmp.join(format!("{id}.body")), self.path(&id, "body"))
            .map_err(storage("renaming a body"))?;
        self.step(WriteStep::BodyRenamed);
        fs::rename(tmp.join(format!("{id}.env")), self.path(&id, "env"))
            .map_err(storage("renaming an envelope"))?;
        self.step(WriteStep::EnvelopeRenamed);
        self.commit_dir()?;
        self.step(WriteStep::DirectorySynced);
        self.lock().messages.insert(id.clone(), stored);
        Ok(id)
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
        self.append_journal(&lease.id, &lines)?;
        let mut state = self.lock();
        if let Some((_, until)) = state.leases.get_mut(&lease.id) {
            *until = SystemTime::UNIX_EPOCH;
        }
        let done = state.messages.get_mut(&lease.id).is_some_and(|m| {
            m.recipients = recipients;
            m.warned |= warned;
            m.is_done()
        });
        if done {
            state.messages.remove(&lease.id);
            drop(state);
            self.remove(&lease.id, false)?;
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

    async fn body(&self, id: &QueueId) -> Result<Vec<u8>, QueueError> {
        if !self.lock().messages.contains_key(id) {
            return Err(QueueError::NotFound(id.clone()));
        }
        fs::read(self.path(id, "body")).map_err(storage("reading a body"))
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
