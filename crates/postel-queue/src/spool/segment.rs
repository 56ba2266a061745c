//! The spool's segment log: small messages and their state changes,
//! appended to one shared file, so that an enqueue costs an append and a
//! share of one fdatasync instead of a file of its own.
//!
//! A segment, `seg-<n>.log`, is a run of records. Each starts with a line
//! of fixed length, `#<kind> <id> <a> <b> <c> <sum>` (three lengths and a
//! checksum, 16 hexadecimal digits each), then its payload:
//! - `m`: a message: the prefix (`a` octets), the body (`b`) and the
//!   envelope (`c`). A later `m` of the same id (a message moved forward
//!   by compaction, with its state folded in) replaces the earlier one.
//! - `j`: journal lines (`a` octets) for a message, applied in order.
//! - `d`: the message was deleted.
//!
//! The checksum (FNV-1a, 64 bits, over the header fields and the payload)
//! finds a damaged record: reading a segment stops there, and what follows
//! is reported and copied aside. A record that runs past the end of the
//! file is told apart: an append that never finished (see [`Stop`]).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::flush::Flusher;
use crate::GroupSync;
use crate::model::QueueId;

/// The length of a record's header line.
const HEADER: usize = 92;
/// The same, as a file offset.
pub(super) const HEADER_LEN: u64 = HEADER as u64;

/// Where a segment message's parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    /// The segment.
    pub(super) segment: u64,
    /// Offset and length of the prefix.
    pub(super) prefix: (u64, u64),
    /// Offset and length of the body.
    pub(super) body: (u64, u64),
}

/// A record read back.
#[derive(Debug)]
pub(super) enum Entry {
    /// A message, with its envelope.
    Message {
        id: QueueId,
        at: Location,
        envelope: String,
    },
    /// Journal lines for a message.
    Journal { id: QueueId, lines: String },
    /// A deletion.
    Deleted { id: QueueId },
}

fn fnv(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn header(kind: u8, id: &QueueId, lengths: [u64; 3], sum: u64) -> String {
    let [a, b, c] = lengths;
    format!(
        "#{} {id} {a:016x} {b:016x} {c:016x} {sum:016x}\n",
        char::from(kind)
    )
}

fn fields_sum(kind: u8, id: &QueueId, lengths: [u64; 3]) -> u64 {
    let [a, b, c] = lengths;
    let mut h = fnv(FNV_START, &[kind]);
    h = fnv(h, id.as_str().as_bytes());
    for n in [a, b, c] {
        h = fnv(h, &n.to_le_bytes());
    }
    h
}

/// A record: the header, then the payload parts in order.
pub(super) fn record(kind: u8, id: &QueueId, parts: [&[u8]; 3]) -> Vec<u8> {
    let lengths = parts.map(|p| p.len() as u64);
    let mut sum = fields_sum(kind, id, lengths);
    for p in parts {
        sum = fnv(sum, p);
    }
    let mut out = header(kind, id, lengths, sum).into_bytes();
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Parses a header line: kind, id, lengths, checksum.
fn parse_header(line: &[u8]) -> Option<(u8, QueueId, [u64; 3], u64)> {
    let text = std::str::from_utf8(line).ok()?.strip_suffix('\n')?;
    let mut w = text.split(' ');
    let kind = w.next()?.strip_prefix('#')?.as_bytes();
    let [kind] = kind else { return None };
    let id = QueueId::parse(w.next()?)?;
    let mut next = || {
        w.next()
            .filter(|p| p.len() == 16)
            .and_then(|p| u64::from_str_radix(p, 16).ok())
    };
    let lengths = [next()?, next()?, next()?];
    let sum = next()?;
    w.next().is_none().then_some((*kind, id, lengths, sum))
}

/// Why reading a segment stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The last record runs past the end of the file: an append that never
    /// finished (the process was killed inside its `write`). No caller was
    /// told it was stored, since that waits for a sync after the write.
    Unfinished(u64),
    /// A record whose header or checksum is wrong: damage.
    Damaged(u64),
}

impl Stop {
    /// The offset the record that stopped the reading starts at.
    pub(super) fn at(self) -> u64 {
        match self {
            Stop::Unfinished(at) | Stop::Damaged(at) => at,
        }
    }
}

/// What reading a segment found.
pub(super) struct Replay {
    pub(super) entries: Vec<Entry>,
    /// Where and why reading stopped before the end of the file.
    pub(super) stopped: Option<Stop>,
}

/// Reads segment `segment` at `path`, a record at a time, never more
/// than a chunk of it in memory.
pub(super) fn replay(path: &Path, segment: u64) -> std::io::Result<Replay> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut entries = Vec::new();
    let mut at = 0u64;
    let mut chunk = vec![0u8; 64 * 1024];
    while at < len {
        let stop = Replay {
            entries: Vec::new(),
            stopped: Some(Stop::Damaged(at)),
        };
        let unfinished = Replay {
            entries: Vec::new(),
            stopped: Some(Stop::Unfinished(at)),
        };
        let mut line = [0u8; HEADER];
        if at + HEADER_LEN > len {
            return Ok(Replay {
                entries,
                ..unfinished
            });
        }
        file.read_exact_at(&mut line, at)?;
        let Some((kind, id, lengths, sum)) = parse_header(&line) else {
            return Ok(Replay { entries, ..stop });
        };
        let payload = lengths.iter().try_fold(0u64, |t, n| t.checked_add(*n));
        let Some(end) = payload.and_then(|p| (at + HEADER_LEN).checked_add(p)) else {
            return Ok(Replay { entries, ..stop });
        };
        if end > len {
            return Ok(Replay {
                entries,
                ..unfinished
            });
        }
        // The checksum, read through in chunks.
        let mut h = fields_sum(kind, &id, lengths);
        let mut pos = at + HEADER_LEN;
        while pos < end {
            let n = usize::try_from((end - pos).min(chunk.len() as u64)).unwrap_or(chunk.len());
            let part = chunk.get_mut(..n).unwrap_or_default();
            file.read_exact_at(part, pos)?;
            h = fnv(h, part);
            pos += n as u64;
        }
        if h != sum {
            return Ok(Replay { entries, ..stop });
        }
        let [a, b, c] = lengths;
        let start = at + HEADER_LEN;
        let text = |offset: u64, n: u64| -> Option<String> {
            let mut buf = vec![0u8; usize::try_from(n).ok()?];
            file.read_exact_at(&mut buf, offset).ok()?;
            String::from_utf8(buf).ok()
        };
        let entry = match kind {
            b'm' => text(start + a + b, c).map(|envelope| Entry::Message {
                id,
                at: Location {
                    segment,
                    prefix: (start, a),
                    body: (start + a, b),
                },
                envelope,
            }),
            b'j' => text(start, a).map(|lines| Entry::Journal { id, lines }),
            b'd' => Some(Entry::Deleted { id }),
            _ => None,
        };
        let Some(entry) = entry else {
            return Ok(Replay { entries, ..stop });
        };
        entries.push(entry);
        at = end;
    }
    Ok(Replay {
        entries,
        stopped: None,
    })
}

/// The segment file of number `n`.
pub(super) fn path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:016x}.log"))
}

/// The numbers of the segments in `dir`, oldest first.
pub(super) fn list(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut found: Vec<u64> = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("seg-")?.strip_suffix(".log")?;
            (n.len() == 16).then(|| u64::from_str_radix(n, 16).ok())?
        })
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// The segment being appended to.
#[derive(Debug)]
struct Current {
    number: u64,
    file: Arc<File>,
    len: u64,
    /// The ticket of the last append (see [`Appended::ticket`]).
    ticket: u64,
}

/// Where an append went, and what to wait for to see it durable.
#[derive(Debug, Clone, Copy)]
pub(super) struct Appended {
    /// The segment.
    pub(super) segment: u64,
    /// The offset the record starts at.
    pub(super) offset: u64,
    /// Its number among all appends: durable once [`Log::durable`] of it
    /// resolves.
    pub(super) ticket: u64,
}

/// The appending side of the log.
#[derive(Debug)]
pub(super) struct Log {
    dir: PathBuf,
    current: Arc<Mutex<Current>>,
    flusher: Flusher,
    dir_sync: GroupSync,
    /// A segment longer than this is closed and a new one begun.
    limit: u64,
}

fn lock(current: &Mutex<Current>) -> MutexGuard<'_, Current> {
    current.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Log {
    /// Starts segment `number` in `dir`: a new file, durable in the
    /// directory before anything is appended.
    pub(super) fn create(dir: &Path, number: u64, limit: u64) -> std::io::Result<Log> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path(dir, number))?;
        File::open(dir)?.sync_all()?;
        let current = Arc::new(Mutex::new(Current {
            number,
            file: Arc::new(file),
            len: 0,
            ticket: 0,
        }));
        let flusher = Flusher::start(Box::new({
            let current = Arc::clone(&current);
            move || {
                let c = lock(&current);
                (Arc::clone(&c.file), c.ticket)
            }
        }))?;
        Ok(Log {
            dir: dir.to_path_buf(),
            current,
            flusher,
            dir_sync: GroupSync::default(),
            limit,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Current> {
        lock(&self.current)
    }

    /// The segment appended to now.
    pub(super) fn current(&self) -> u64 {
        self.lock().number
    }

    /// Sets the size past which a new segment begins.
    pub(super) fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Appends `record` (see [`record`]). Not durable until
    /// [`Log::durable`] of its ticket resolves, or [`Log::sync`] returns.
    pub(super) fn append(&self, record: &[u8]) -> std::io::Result<Appended> {
        let mut c = self.lock();
        if c.len >= self.limit {
            // What the old segment holds is made durable before the new
            // one takes appends, so one sync of the current segment covers
            // every append made before it.
            c.file.sync_data()?;
            let number = c.number + 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(path(&self.dir, number))?;
            self.dir_sync.sync(&self.dir)?;
            c.number = number;
            c.file = Arc::new(file);
            c.len = 0;
        }
        if let Err(e) = (&*c.file).write_all(record) {
            // Part of the record may be there (a disk that filled up):
            // nothing may follow it, or reading the segment back would
            // stop at it and miss what came after. Cut it off, or, if
            // that fails too, begin a new segment with the next append.
            if c.file.set_len(c.len).is_err() {
                c.len = u64::MAX;
            }
            return Err(e);
        }
        let offset = c.len;
        c.len += record.len() as u64;
        c.ticket += 1;
        Ok(Appended {
            segment: c.number,
            offset,
            ticket: c.ticket,
        })
    }

    /// Resolves once the append of `ticket` is durable: a share of one
    /// fdatasync with every append made while the previous one ran. The
    /// caller's thread is free meanwhile.
    pub(super) async fn durable(&self, ticket: u64) -> std::io::Result<()> {
        self.flusher.durable(ticket).await
    }

    /// The ticket of the last append so far.
    pub(super) fn last_ticket(&self) -> u64 {
        self.lock().ticket
    }

    /// Makes every append made before this call durable, blocking the
    /// calling thread.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        self.flusher.wait(self.last_ticket())
    }

    /// Removes a segment nothing lives in any more, durably.
    pub(super) fn remove(&self, number: u64) -> std::io::Result<()> {
        fs::remove_file(path(&self.dir, number))?;
        self.dir_sync.sync(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // ok: a failed unwrap is a failed test.
    use super::*;

    fn id(n: u32) -> QueueId {
        QueueId::new(std::time::SystemTime::UNIX_EPOCH, n)
    }

    /// An empty directory of this process for the test named by `tag`.
    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("postel-segment-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_failed_append_leaves_nothing_that_hides_later_records() {
        let dir = scratch("a");
        let log = Log::create(&dir, 0, 1 << 20).unwrap();
        log.append(&record(b'j', &id(1), [b"first\n", b"", b""]))
            .unwrap();
        // A handle that cannot write stands in for a full disk; writing
        // fails, and with it the cut (not open for writing either).
        let good = Arc::clone(&log.lock().file);
        log.lock().file = Arc::new(File::open(path(&dir, 0)).unwrap());
        assert!(
            log.append(&record(b'j', &id(2), [b"lost\n", b"", b""]))
                .is_err()
        );
        log.lock().file = good;
        // The next append goes to a new segment, since the cut failed.
        let third = log
            .append(&record(b'j', &id(3), [b"third\n", b"", b""]))
            .unwrap();
        assert_eq!(third.segment, 1);
        log.sync().unwrap();
        let ids = |n| {
            replay(&path(&dir, n), n)
                .unwrap()
                .entries
                .into_iter()
                .map(|e| match e {
                    Entry::Journal { id, .. } => id,
                    _ => unreachable!(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(0), [id(1)]);
        assert_eq!(ids(1), [id(3)]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_header_or_payload_stops_the_reading() {
        let dir = scratch("d");
        let mut data = record(b'j', &id(1), [b"one\n", b"", b""]);
        let second = data.len();
        data.extend(record(b'j', &id(2), [b"two\n", b"", b""]));
        for at in [second + 1, second + 30, data.len() - 2] {
            let mut bad = data.clone();
            bad[at] ^= 0x20;
            fs::write(path(&dir, 7), &bad).unwrap();
            let r = replay(&path(&dir, 7), 7).unwrap();
            assert_eq!(r.entries.len(), 1, "damage at {at}");
            assert_eq!(r.stopped, Some(Stop::Damaged(second as u64)));
        }
        fs::write(path(&dir, 7), &data).unwrap();
        let r = replay(&path(&dir, 7), 7).unwrap();
        assert_eq!((r.entries.len(), r.stopped), (2, None));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_cut_at_the_end_of_the_file_is_an_unfinished_append() {
        let dir = scratch("u");
        let mut data = record(b'j', &id(1), [b"one\n", b"", b""]);
        let second = data.len();
        data.extend(record(b'm', &id(2), [b"prefix", &[b'x'; 5000], b"env"]));
        // Cut inside the second header, and inside its payload.
        for cut in [second + 1, second + 91, second + 92, data.len() - 1] {
            fs::write(path(&dir, 3), &data[..cut]).unwrap();
            let r = replay(&path(&dir, 3), 3).unwrap();
            assert_eq!(r.entries.len(), 1, "cut at {cut}");
            assert_eq!(r.stopped, Some(Stop::Unfinished(second as u64)));
        }
        // Damage in a record that is all there is not mistaken for a cut.
        let mut bad = data.clone();
        bad[second + 200] ^= 1;
        fs::write(path(&dir, 3), &bad).unwrap();
        let r = replay(&path(&dir, 3), 3).unwrap();
        assert_eq!(r.stopped, Some(Stop::Damaged(second as u64)));
        let _ = fs::remove_dir_all(&dir);
    }
}
