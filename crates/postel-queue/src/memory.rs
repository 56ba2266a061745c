//! The in-memory backend: for tests and for embedders who do not need
//! durability. Everything is lost when the process ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::model::{Message, NewMessage, QueueId, Recipient, RecipientState};
use crate::queue::{Claim, Lease, Queue, QueueError, RecoveryReport, new_recipients};
use crate::schedule::RetrySchedule;

#[derive(Debug)]
struct Entry {
    message: Message,
    body: Arc<Vec<u8>>,
    /// (token, expiry) of the live or last lease.
    lease: Option<(u64, SystemTime)>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<QueueId, Entry>,
    next_token: u64,
    seq: u32,
}

/// A queue held in memory.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    schedule: RetrySchedule,
    state: Mutex<State>,
}

impl MemoryQueue {
    /// An empty queue with this retry schedule (for message lifetimes).
    pub fn new(schedule: RetrySchedule) -> Self {
        MemoryQueue {
            schedule,
            state: Mutex::new(State::default()),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        // A poisoned lock means a panic elsewhere; the data is still consistent
        // because every change below is applied whole.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }
}

/// A message being received into a [`MemoryQueue`].
#[derive(Debug, Default)]
pub struct MemoryIncoming(Vec<u8>);

/// A body being read from a [`MemoryQueue`].
#[derive(Debug)]
pub struct MemoryBody {
    body: Arc<Vec<u8>>,
    at: usize,
}

impl Queue for MemoryQueue {
    type Incoming = MemoryIncoming;
    type Body = MemoryBody;

    async fn begin(&self, _now: SystemTime) -> Result<MemoryIncoming, QueueError> {
        Ok(MemoryIncoming::default())
    }

    async fn append(&self, incoming: &mut MemoryIncoming, chunk: &[u8]) -> Result<(), QueueError> {
        incoming.0.extend_from_slice(chunk);
        Ok(())
    }

    async fn abort(&self, _incoming: MemoryIncoming) -> Result<(), QueueError> {
        Ok(())
    }

    async fn open_body(&self, id: &QueueId) -> Result<MemoryBody, QueueError> {
        self.with(|s| {
            let entry = s
                .entries
                .get(id)
                .ok_or_else(|| QueueError::NotFound(id.clone()))?;
            Ok(MemoryBody {
                body: Arc::clone(&entry.body),
                at: 0,
            })
        })
    }

    fn body_size(&self, body: &MemoryBody) -> u64 {
        body.body.len() as u64
    }

    async fn read_body(&self, body: &mut MemoryBody, buf: &mut [u8]) -> Result<usize, QueueError> {
        Ok(crate::read_slice(&body.body, &mut body.at, buf))
    }

    async fn commit(
        &self,
        incoming: MemoryIncoming,
        message: NewMessage,
        prefix: Vec<u8>,
        now: SystemTime,
    ) -> Result<QueueId, QueueError> {
        if message.recipients.is_empty() {
            return Err(QueueError::NoRecipients);
        }
        let body = if prefix.is_empty() {
            incoming.0
        } else {
            let mut all = prefix;
            all.extend_from_slice(&incoming.0);
            all
        };
        self.with(|s| {
            s.seq = s.seq.wrapping_add(1);
            let mut id = QueueId::new(now, s.seq);
            while s.entries.contains_key(&id) {
                s.seq = s.seq.wrapping_add(1);
                id = QueueId::new(now, s.seq);
            }
            let recipients = new_recipients(&message.recipients, now);
            let stored = Message {
                id: id.clone(),
                held: message.arrival.quarantine.is_some(),
                envelope: message,
                created: now,
                expires: self.schedule.expiry(now),
                warned: false,
                recipients,
            };
            s.entries.insert(
                id.clone(),
                Entry {
                    message: stored,
                    body: Arc::new(body),
                    lease: None,
                },
            );
            Ok(id)
        })
    }

    async fn claim(
        &self,
        _worker: &str,
        now: SystemTime,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, QueueError> {
        self.with(|s| {
            let mut claims = Vec::new();
            let mut token = s.next_token;
            for entry in s.entries.values_mut() {
                if claims.len() >= limit {
                    break;
                }
                let leased = entry.lease.is_some_and(|(_, until)| until > now);
                if leased || !entry.message.is_due(now) {
                    continue;
                }
                token += 1;
                let lease = Lease {
                    id: entry.message.id.clone(),
                    token,
                    expires: now + lease_for,
                };
                entry.lease = Some((token, lease.expires));
                claims.push(Claim {
                    lease,
                    message: entry.message.clone(),
                });
            }
            s.next_token = token;
            Ok(claims)
        })
    }

    async fn extend(
        &self,
        lease: &Lease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, QueueError> {
        self.with(|s| {
            let entry = s
                .entries
                .get_mut(&lease.id)
                .ok_or_else(|| QueueError::NotFound(lease.id.clone()))?;
            match entry.lease {
                Some((token, _)) if token == lease.token => {
                    let expires = now + lease_for;
                    entry.lease = Some((token, expires));
                    Ok(Lease {
                        expires,
                        ..lease.clone()
                    })
                }
                _ => Err(QueueError::StaleLease(lease.id.clone())),
            }
        })
    }

    async fn complete(
        &self,
        lease: Lease,
        recipients: Vec<Recipient>,
        warned: bool,
    ) -> Result<(), QueueError> {
        self.with(|s| {
            let entry = s
                .entries
                .get_mut(&lease.id)
                .ok_or_else(|| QueueError::NotFound(lease.id.clone()))?;
            if !matches!(entry.lease, Some((token, _)) if token == lease.token) {
                return Err(QueueError::StaleLease(lease.id.clone()));
            }
            if recipients.len() != entry.message.recipients.len() {
                return Err(QueueError::StaleLease(lease.id.clone()));
            }
            entry.message.recipients = recipients;
            entry.message.warned |= warned;
            // The token stays, so the same lease cannot complete twice; the
            // expiry is cleared, so the message may be claimed again.
            entry.lease = Some((lease.token, SystemTime::UNIX_EPOCH));
            if entry.message.is_done() {
                s.entries.remove(&lease.id);
            }
            Ok(())
        })
    }

    async fn mark_reported(&self, id: &QueueId, recipients: &[usize]) -> Result<(), QueueError> {
        self.with(|s| {
            let entry = s
                .entries
                .get_mut(id)
                .ok_or_else(|| QueueError::NotFound(id.clone()))?;
            for &i in recipients {
                if let Some(r) = entry.message.recipients.get_mut(i) {
                    r.state = match r.state {
                        RecipientState::Failed { .. } => RecipientState::Failed { reported: true },
                        RecipientState::Expired { .. } => {
                            RecipientState::Expired { reported: true }
                        }
                        other => other,
                    };
                }
            }
            if entry.message.is_done() {
                s.entries.remove(id);
            }
            Ok(())
        })
    }

    async fn body(&self, id: &QueueId) -> Result<Vec<u8>, QueueError> {
        self.with(|s| {
            s.entries
                .get(id)
                .map(|e| e.body.as_ref().clone())
                .ok_or_else(|| QueueError::NotFound(id.clone()))
        })
    }

    async fn list(&self) -> Result<Vec<Message>, QueueError> {
        self.with(|s| Ok(s.entries.values().map(|e| e.message.clone()).collect()))
    }

    async fn show(&self, id: &QueueId) -> Result<Message, QueueError> {
        self.with(|s| {
            s.entries
                .get(id)
                .map(|e| e.message.clone())
                .ok_or_else(|| QueueError::NotFound(id.clone()))
        })
    }

    async fn set_held(&self, id: &QueueId, held: bool) -> Result<(), QueueError> {
        self.with(|s| {
            let entry = s
                .entries
                .get_mut(id)
                .ok_or_else(|| QueueError::NotFound(id.clone()))?;
            entry.message.held = held;
            Ok(())
        })
    }

    async fn delete(&self, id: &QueueId) -> Result<(), QueueError> {
        self.with(|s| {
            s.entries
                .remove(id)
                .map(|_| ())
                .ok_or_else(|| QueueError::NotFound(id.clone()))
        })
    }

    async fn requeue(&self, id: &QueueId, now: SystemTime) -> Result<(), QueueError> {
        self.with(|s| {
            let entry = s
                .entries
                .get_mut(id)
                .ok_or_else(|| QueueError::NotFound(id.clone()))?;
            for r in &mut entry.message.recipients {
                if r.state == RecipientState::Pending {
                    r.next_attempt = now;
                }
            }
            Ok(())
        })
    }

    async fn recover(&self, now: SystemTime) -> Result<RecoveryReport, QueueError> {
        self.with(|s| {
            let mut released = 0;
            for entry in s.entries.values_mut() {
                if entry.lease.is_some_and(|(_, until)| until > now) {
                    released += 1;
                    entry.lease = entry.lease.map(|(t, _)| (t, SystemTime::UNIX_EPOCH));
                }
            }
            Ok(RecoveryReport {
                messages: s.entries.len(),
                leases_released: released,
                quarantined: Vec::new(),
            })
        })
    }
}
