//! The queue operations on the spool: a message in (to the segment log,
//! or to a file of its own once it is large), its body out, and every
//! state change recorded before it is acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::file::{footer, layout};
use super::segment::{self, HEADER_LEN, Location};
use super::{Held, SMALL, SpoolBody, SpoolIncoming, SpoolQueue, WriteStep, storage};
use crate::model::{Message, NewMessage, QueueId, Recipient, RecipientState};
use crate::queue::{Claim, Lease, Queue, QueueError, RecoveryReport, new_recipients};
use crate::record;

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
                // Appended and counted in its segment under the state
                // lock, so that compaction never takes the segment away
                // while the sync runs.
                let appended = {
                    let mut state = self.lock();
                    let appended = self
                        .log
                        .append(&rec)
                        .map_err(storage("writing a segment"))?;
                    *state.segments.entry(appended.segment).or_default() += 1;
                    appended
                };
                let segment = appended.segment;
                self.step(WriteStep::SegmentWritten);
                if let Err(e) = self.log.durable(appended.ticket).await {
                    if let Some(n) = self.lock().segments.get_mut(&segment) {
                        *n = n.saturating_sub(1);
                    }
                    return Err(storage("syncing a segment")(e));
                }
                self.step(WriteStep::SegmentSynced);
                let start = appended.offset + HEADER_LEN;
                let prefix_len = prefix.len() as u64;
                let at = Location {
                    segment,
                    prefix: (start, prefix_len),
                    body: (start + prefix_len, body.len() as u64),
                };
                let mut state = self.lock();
                state.messages.insert(id.clone(), stored);
                state.places.insert(id.clone(), at);
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
        let found = {
            // The place and the handle under one lock: compaction moves a
            // message and forgets its old segment under the same lock, so
            // the segment found here is there to open.
            let mut state = self.lock();
            if !state.messages.contains_key(id) {
                return Err(QueueError::NotFound(id.clone()));
            }
            match state.places.get(id).copied() {
                Some(at) => {
                    let file = if let Some(file) = state.readers.get(&at.segment) {
                        Arc::clone(file)
                    } else {
                        let file = File::open(segment::path(&self.dir, at.segment))
                            .map_err(storage("opening a segment"))?;
                        let file = Arc::new(file);
                        state.readers.insert(at.segment, Arc::clone(&file));
                        file
                    };
                    Some((file, at))
                }
                None => None,
            }
        };
        if let Some((file, at)) = found {
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
                    file: Arc::new(file),
                    parts: [(body, prefix), (0, body)],
                    size: body + prefix,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let file = File::open(self.path(id, "body")).map_err(storage("opening a body"))?;
                let len = file.metadata().map_err(storage("opening a body"))?.len();
                Ok(SpoolBody {
                    file: Arc::new(file),
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
        let noted = {
            let mut state = self.lock();
            if state.places.contains_key(&lease.id) {
                let valid =
                    matches!(state.leases.get(&lease.id), Some((t, _)) if *t == lease.token);
                if !valid {
                    return Err(QueueError::StaleLease(lease.id.clone()));
                }
                let ticket = self.note(&mut state, &lease.id, Some(&lines), finished)?;
                if let Some((_, until)) = state.leases.get_mut(&lease.id) {
                    *until = SystemTime::UNIX_EPOCH;
                }
                if let Some(m) = state.messages.get_mut(&lease.id) {
                    m.recipients = recipients;
                    m.warned |= warned;
                }
                Ok(ticket)
            } else {
                Err(recipients)
            }
        };
        let recipients = match noted {
            Ok(ticket) => return self.noted(ticket, finished).await,
            Err(recipients) => recipients,
        };
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
        self.change(id, |message| {
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
            lines
        })
        .await
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
        self.change(id, |message| {
            message.held = held;
            format!("held {}\n", u8::from(held))
        })
        .await
    }

    async fn delete(&self, id: &QueueId) -> Result<(), QueueError> {
        let ticket = {
            let mut state = self.lock();
            if !state.messages.contains_key(id) {
                return Err(QueueError::NotFound(id.clone()));
            }
            if state.places.contains_key(id) {
                Some(self.note(&mut state, id, None, true)?)
            } else {
                state.messages.remove(id);
                None
            }
        };
        match ticket {
            Some(ticket) => self.noted(ticket, true).await,
            None => self.remove(id, true),
        }
    }

    async fn requeue(&self, id: &QueueId, now: SystemTime) -> Result<(), QueueError> {
        self.change(id, |message| {
            let mut lines = String::new();
            for (i, r) in message.recipients.iter_mut().enumerate() {
                if r.state == RecipientState::Pending {
                    r.next_attempt = now;
                    lines.push_str(&record::recipient_line(i, r));
                }
            }
            lines
        })
        .await
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
