//! Keeping the segment log short: state changes of segment messages
//! recorded under the state lock, and the oldest segments removed once
//! their messages are gone.

use std::fs::File;

use super::segment::{self, HEADER_LEN, Location};
use super::{MOVE_UP_TO, SpoolQueue, State, WriteStep, storage};
use crate::model::QueueId;
use crate::queue::QueueError;
use crate::record;

impl SpoolQueue {
    /// Removes the oldest segments once nothing lives in them, moving the
    /// last few messages of the oldest forward first, so that a message
    /// that waits long keeps no more than its own records on disk. Only
    /// the oldest is ever removed: the records of a message are in its own
    /// segment or later ones, so they stay while it does.
    pub(super) fn compact(&self) -> Result<(), QueueError> {
        let current = self.log.current();
        while let Some(moved) = self.compact_step(current)? {
            if moved {
                self.log.sync().map_err(storage("syncing a segment"))?;
            }
        }
        Ok(())
    }

    /// [`SpoolQueue::compact`] for an async caller: the moved records'
    /// sync is awaited rather than waited for on the caller's thread.
    pub(super) async fn compact_async(&self) -> Result<(), QueueError> {
        let current = self.log.current();
        while let Some(moved) = self.compact_step(current)? {
            if moved {
                let ticket = self.log.last_ticket();
                self.log
                    .durable(ticket)
                    .await
                    .map_err(storage("syncing a segment"))?;
            }
        }
        Ok(())
    }

    /// One step of compaction below segment `current` (what is moved lands
    /// at or after it, and is not moved again in this pass): `None` when
    /// there is nothing to do, `Some(false)` when the oldest segment was
    /// removed, `Some(true)` when its stragglers were appended again and
    /// must be synced before the next step.
    fn compact_step(&self, current: u64) -> Result<Option<bool>, QueueError> {
        let mut state = self.lock();
        let Some((&oldest, &live)) = state.segments.iter().next() else {
            return Ok(None);
        };
        if oldest >= current {
            return Ok(None);
        }
        if live == 0 {
            state.segments.remove(&oldest);
            state.readers.remove(&oldest);
            drop(state);
            self.log
                .remove(oldest)
                .map_err(storage("removing a segment"))?;
            return Ok(Some(false));
        }
        // Stragglers move once a whole newer segment has filled
        // behind them: most messages are gone long before.
        if live > MOVE_UP_TO || oldest + 1 >= current {
            return Ok(None);
        }
        let ids: Vec<QueueId> = state
            .places
            .iter()
            .filter(|(_, at)| at.segment == oldest)
            .map(|(id, _)| id.clone())
            .collect();
        if ids.is_empty() {
            // Counted but not yet placed: a commit whose sync is
            // still running. Later.
            return Ok(None);
        }
        for id in ids {
            self.move_forward(&mut state, &id)?;
        }
        Ok(Some(true))
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
        let appended = self
            .log
            .append(&rec)
            .map_err(storage("writing a segment"))?;
        let segment = appended.segment;
        let start = appended.offset + HEADER_LEN;
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
    /// in memory change together; the caller then waits for the returned
    /// ticket ([`SpoolQueue::noted`]). `gone` says whether the message
    /// leaves the queue with it.
    pub(super) fn note(
        &self,
        state: &mut State,
        id: &QueueId,
        lines: Option<&str>,
        gone: bool,
    ) -> Result<u64, QueueError> {
        let rec = match lines {
            Some(lines) => segment::record(b'j', id, [lines.as_bytes(), b"", b""]),
            None => segment::record(b'd', id, [b"", b"", b""]),
        };
        let appended = self
            .log
            .append(&rec)
            .map_err(storage("writing a segment"))?;
        state.segments.entry(appended.segment).or_default();
        let ticket = appended.ticket;
        if gone {
            state.messages.remove(id);
            if let Some(at) = state.places.remove(id)
                && let Some(n) = state.segments.get_mut(&at.segment)
            {
                *n = n.saturating_sub(1);
            }
        }
        Ok(ticket)
    }

    /// Changes message `id` with `change`, which returns the journal lines
    /// that say so, and records them: in the segment log, or in the
    /// message's journal file. A message the change finishes leaves the
    /// queue.
    pub(super) async fn change(
        &self,
        id: &QueueId,
        change: impl FnOnce(&mut crate::model::Message) -> String,
    ) -> Result<(), QueueError> {
        let (lines, done, ticket) = {
            let mut state = self.lock();
            let message = state
                .messages
                .get_mut(id)
                .ok_or_else(|| QueueError::NotFound(id.clone()))?;
            let lines = change(message);
            let done = message.is_done();
            let ticket = if state.places.contains_key(id) {
                Some(self.note(&mut state, id, Some(&lines), done)?)
            } else {
                None
            };
            (lines, done, ticket)
        };
        if let Some(ticket) = ticket {
            return self.noted(ticket, done).await;
        }
        self.append_journal(id, &lines)?;
        if done {
            self.lock().messages.remove(id);
            self.remove(id, false)?;
        }
        Ok(())
    }

    /// After [`SpoolQueue::note`]: waits until its `ticket` is durable, and
    /// compacts when a message left.
    pub(super) async fn noted(&self, ticket: u64, gone: bool) -> Result<(), QueueError> {
        self.step(WriteStep::JournalWritten);
        self.log
            .durable(ticket)
            .await
            .map_err(storage("syncing a segment"))?;
        self.step(WriteStep::JournalSynced);
        if gone {
            self.compact_async().await?;
        }
        Ok(())
    }
}
