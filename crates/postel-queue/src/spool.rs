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

use postel_proto::codec::{parse_command, parse_reply};
use postel_proto::types::{AuthParam, Command, MailParameters, Orcpt, RcptParameters, XText};
use postel_proto::{ParserOptions, Status};

use crate::model::{
    Arrival, AttemptResult, Message, NewMessage, NewRecipient, QueueId, Recipient, RecipientState,
    Stage,
};
use crate::queue::{Claim, Lease, Queue, QueueError, RecoveryReport, new_recipients};
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

fn secs(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

fn time(text: &str) -> Option<SystemTime> {
    let (s, n) = text.split_once('.')?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(s.parse().ok()?, n.parse().ok()?))
}

fn escape(text: &str) -> String {
    XText::encode(text.as_bytes()).as_str().to_owned()
}

fn unescape(text: &str) -> Option<String> {
    String::from_utf8(XText::try_from(text).ok()?.decode().into_owned()).ok()
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
                state.messages.insert(id, message);
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
        let mut lines = env.split("\r\n");
        if lines.next()? != "postel-spool 1" {
            return None;
        }
        let created = time(lines.next()?.strip_prefix("created ")?)?;
        let expires = time(lines.next()?.strip_prefix("expires ")?)?;
        let arrival_line = lines.next()?.strip_prefix("arrival ")?;
        let mut a = arrival_line.split(' ');
        let field = |s: Option<&str>| -> Option<Option<String>> {
            match s? {
                "-" => Some(None),
                v => Some(Some(unescape(v)?)),
            }
        };
        let client = field(a.next())?.and_then(|c| c.parse().ok());
        let tls = a.next()? == "1";
        let helo = field(a.next())?;
        let auth_user = field(a.next())?;
        let mut opts = ParserOptions::STRICT;
        opts.limits.command_line = 64 * 1024;
        let mail = format!("{}\r\n", lines.next()?);
        let Ok(Status::Complete {
            value: Command::Mail { from, params },
            ..
        }) = parse_command(mail.as_bytes(), &opts)
        else {
            return None;
        };
        let mut recipients_new = Vec::new();
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            let rcpt = format!("{line}\r\n");
            let Ok(Status::Complete {
                value: Command::Rcpt { to, params },
                ..
            }) = parse_command(rcpt.as_bytes(), &opts)
            else {
                return None;
            };
            recipients_new.push(NewRecipient {
                address: to.into_owned(),
                orcpt: params.orcpt.as_ref().map(|o| {
                    format!(
                        "{};{}",
                        o.addr_type(),
                        String::from_utf8_lossy(&o.address().decode())
                    )
                }),
                notify: params.notify,
            });
        }
        if recipients_new.is_empty() {
            return None;
        }
        let envelope = NewMessage {
            return_path: from.into_owned(),
            envid: params
                .envid
                .as_ref()
                .map(|e| String::from_utf8_lossy(&e.decode()).into_owned()),
            ret: params.ret,
            body_type: params
                .body
                .unwrap_or(postel_proto::types::BodyType::SevenBit),
            smtputf8: params.smtputf8,
            arrival: Arrival {
                client,
                helo,
                auth_user,
                tls,
            },
            recipients: recipients_new,
        };
        let mut message = Message {
            id: id.clone(),
            recipients: new_recipients(&envelope.recipients, created),
            envelope,
            created,
            expires,
            held: false,
            warned: false,
        };
        if let Ok(log) = fs::read_to_string(self.path(id, "log")) {
            for line in log.split('\n') {
                // A torn last line from a crash mid-append is ignored.
                let _ = apply_journal(&mut message, line);
            }
        }
        Some(message)
    }

    fn write_envelope(message: &Message) -> String {
        let e = &message.envelope;
        let opt = |v: &Option<String>| v.as_deref().map_or_else(|| "-".to_owned(), escape);
        let mut text = format!(
            "postel-spool 1\r\ncreated {}\r\nexpires {}\r\narrival {} {} {} {}\r\n",
            secs(message.created),
            secs(message.expires),
            e.arrival
                .client
                .map_or_else(|| "-".to_owned(), |c| escape(&c.to_string())),
            u8::from(e.arrival.tls),
            opt(&e.arrival.helo),
            opt(&e.arrival.auth_user),
        );
        let mut params = MailParameters::default();
        params.body = Some(e.body_type);
        params.smtputf8 = e.smtputf8;
        params.ret = e.ret;
        params.envid = e.envid.as_ref().map(|v| XText::encode(v.as_bytes()));
        params.auth = None::<AuthParam<'static>>;
        let mail = Command::Mail {
            from: e.return_path.clone(),
            params,
        };
        text.push_str(&String::from_utf8_lossy(&mail.to_bytes()));
        for r in &e.recipients {
            let mut params = RcptParameters::default();
            params.notify = r.notify;
            params.orcpt = r.orcpt.as_ref().and_then(|o| {
                let (t, a) = o.split_once(';')?;
                Orcpt::new(t.to_owned(), XText::encode(a.as_bytes())).ok()
            });
            let rcpt = Command::Rcpt {
                to: r.address.clone(),
                params,
            };
            text.push_str(&String::from_utf8_lossy(&rcpt.to_bytes()));
        }
        text.push_str("\r\n");
        text
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

    fn remove(&self, id: &QueueId) -> Result<(), QueueError> {
        // The envelope goes first: without it the message no longer exists.
        for ext in ["env", "log", "body"] {
            match fs::remove_file(self.path(id, ext)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(storage("removing a message")(e)),
            }
        }
        sync_dir(&self.dir)
    }
}

fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(storage("syncing the spool directory"))
}

fn state_word(state: RecipientState) -> &'static str {
    match state {
        RecipientState::Pending => "pending",
        RecipientState::Delivered => "delivered",
        RecipientState::Failed { reported: false } => "failed",
        RecipientState::Failed { reported: true } => "failed-reported",
        RecipientState::Expired { reported: false } => "expired",
        RecipientState::Expired { reported: true } => "expired-reported",
    }
}

fn stage_word(stage: Stage) -> &'static str {
    match stage {
        Stage::Dns => "dns",
        Stage::Connect => "connect",
        Stage::Session => "session",
        Stage::Mail => "mail",
        Stage::Rcpt => "rcpt",
        Stage::Data => "data",
        Stage::Local => "local",
    }
}

/// One journal line for recipient `i`.
fn journal_line(i: usize, r: &Recipient) -> String {
    let result = r.last_result.as_ref().map_or_else(
        || "-".to_owned(),
        |res| {
            format!(
                "{} {} {}",
                stage_word(res.stage),
                res.remote_host
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), escape),
                escape(&String::from_utf8_lossy(&res.reply.to_bytes()))
            )
        },
    );
    format!(
        "r {i} {} {} {} {} {result}\n",
        state_word(r.state),
        r.attempts,
        r.last_attempt.map_or_else(|| "-".to_owned(), secs),
        secs(r.next_attempt),
    )
}

/// Applies one journal line; `None` for a line that does not parse.
fn apply_journal(message: &mut Message, line: &str) -> Option<()> {
    let mut w = line.split(' ');
    match w.next()? {
        "held" => message.held = w.next()? == "1",
        "warned" => message.warned = true,
        "r" => {
            let i: usize = w.next()?.parse().ok()?;
            let state = match w.next()? {
                "pending" => RecipientState::Pending,
                "delivered" => RecipientState::Delivered,
                "failed" => RecipientState::Failed { reported: false },
                "failed-reported" => RecipientState::Failed { reported: true },
                "expired" => RecipientState::Expired { reported: false },
                "expired-reported" => RecipientState::Expired { reported: true },
                _ => return None,
            };
            let attempts = w.next()?.parse().ok()?;
            let last_attempt = match w.next()? {
                "-" => None,
                t => Some(time(t)?),
            };
            let next_attempt = time(w.next()?)?;
            let last_result = match w.next()? {
                "-" => None,
                stage => {
                    let stage = match stage {
                        "dns" => Stage::Dns,
                        "connect" => Stage::Connect,
                        "session" => Stage::Session,
                        "mail" => Stage::Mail,
                        "rcpt" => Stage::Rcpt,
                        "data" => Stage::Data,
                        "local" => Stage::Local,
                        _ => return None,
                    };
                    let remote_host = match w.next()? {
                        "-" => None,
                        h => Some(unescape(h)?),
                    };
                    let bytes = unescape(w.next()?)?;
                    let Ok(Status::Complete { value, .. }) =
                        parse_reply(bytes.as_bytes(), &ParserOptions::STRICT)
                    else {
                        return None;
                    };
                    Some(AttemptResult {
                        stage,
                        remote_host,
                        reply: value.into_owned(),
                    })
                }
            };
            let r = message.recipients.get_mut(i)?;
            r.state = state;
            r.attempts = attempts;
            r.last_attempt = last_attempt;
            r.next_attempt = next_attempt;
            r.last_result = last_result;
        }
        _ => return None,
    }
    Some(())
}

fn due(message: &Message, now: SystemTime) -> bool {
    !message.held
        && message.recipients.iter().any(|r| match r.state {
            RecipientState::Pending => r.next_attempt <= now,
            RecipientState::Failed { reported } | RecipientState::Expired { reported } => !reported,
            RecipientState::Delivered => false,
        })
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
            envelope: message,
            created: now,
            expires: self.schedule.expiry(now),
            held: false,
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
            Self::write_envelope(&stored).as_bytes(),
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
        let due_ids: Vec<QueueId> = state
            .messages
            .values()
            .filter(|m| due(m, now))
            .map(|m| m.id.clone())
            .collect();
        for id in due_ids {
            if claims.len() >= limit {
                break;
            }
            if state.leases.get(&id).is_some_and(|(_, until)| *until > now) {
                continue;
            }
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
                .map(|(i, r)| journal_line(i, r))
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
            self.remove(&lease.id)?;
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
                    lines.push_str(&journal_line(i, r));
                }
            }
            (lines, message.is_done())
        };
        self.append_journal(id, &lines)?;
        if done {
            self.lock().messages.remove(id);
            self.remove(id)?;
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
        self.remove(id)
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
                    lines.push_str(&journal_line(i, r));
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
