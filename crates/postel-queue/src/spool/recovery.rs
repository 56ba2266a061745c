//! Reading a spool back at startup: the segment log, oldest first, then
//! the files of the large messages and of the older layout; what cannot
//! be read is set aside and reported.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::Path;

use super::file::layout;
use super::{SpoolQueue, State, segment, storage};
use crate::model::{Message, QueueId};
use crate::queue::QueueError;
use crate::record;

impl SpoolQueue {
    /// Reads every message; unreadable ones go to `corrupt/`. Returns the ids
    /// set aside.
    pub(super) fn load(&self) -> Result<Vec<String>, QueueError> {
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
            if let Some(stop) = replay.stopped {
                let at = stop.at();
                let kept = self
                    .dir
                    .join("corrupt")
                    .join(format!("seg-{n:016x}.from-{at}"));
                let copied = copy_from(&path, at, &kept)
                    .err()
                    .map_or_else(String::new, |e| format!(" (copy failed: {e})"));
                match stop {
                    segment::Stop::Unfinished(_) => {
                        // Cut off, so that it is reported once, not at
                        // every start.
                        let cut = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|f| {
                                f.set_len(at)?;
                                f.sync_all()
                            })
                            .err()
                            .map_or_else(String::new, |e| format!(" (cutting it off failed: {e})"));
                        eprintln!(
                            "postel-queue: {} ends in an append that never finished, at offset {at}: it was never acknowledged and is dropped; a copy is in {}{copied}{cut}",
                            path.display(),
                            kept.display(),
                        );
                    }
                    segment::Stop::Damaged(_) => {
                        eprintln!(
                            "postel-queue: {} cannot be read after offset {at} (damaged); the rest is in {}{copied}",
                            path.display(),
                            kept.display(),
                        );
                        quarantined.push(format!("seg-{n:016x}@{at}"));
                    }
                }
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

    pub(super) fn read_message(&self, id: &QueueId) -> Option<Message> {
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
}

/// Copies `path` from offset `at` to its end into a new file `to`.
fn copy_from(path: &Path, at: u64, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut out = File::create(to)?;
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
    out.sync_all()
}
