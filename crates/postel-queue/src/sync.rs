//! Group commit of a directory: callers that renamed or removed files in
//! it while a directory fsync ran share the next one, so concurrent
//! writers pay for fewer fsyncs than files.

use std::fs::File;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Shares directory fsyncs between concurrent callers: one
/// [`GroupSync::sync`] returns once every change its caller made in the
/// directory before calling is durable.
///
/// ```
/// let dir = std::env::temp_dir();
/// let group = postel_queue::GroupSync::default();
/// std::fs::write(dir.join("group-sync-example"), b"x")?;
/// group.sync(&dir)?; // the new name is on disk
/// # std::fs::remove_file(dir.join("group-sync-example"))?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct GroupSync {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Callers registered so far.
    requested: u64,
    /// Callers known durable.
    durable: u64,
    /// A directory fsync is running.
    running: bool,
}

impl GroupSync {
    /// Makes every change to `dir` made before this call durable: by an
    /// fsync of its own, or by one that started after this call began.
    /// Use one `GroupSync` per directory.
    pub fn sync(&self, dir: &Path) -> std::io::Result<()> {
        self.share(|| File::open(dir).and_then(|d| d.sync_all()))
    }

    /// The same for any sync: returns once `sync` has run, here or in a
    /// concurrent caller, after this call began. Use one `GroupSync` per
    /// thing synced.
    pub fn share(&self, sync: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
        // Run at most once: after its own run a caller is durable, or the
        // run failed and it returns.
        let mut sync = Some(sync);
        let mut s = self.lock();
        s.requested += 1;
        let mine = s.requested;
        loop {
            if s.durable >= mine {
                return Ok(());
            }
            if s.running {
                s = self.done.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Every caller registered so far changed the directory before
            // this fsync starts.
            let covers = s.requested;
            s.running = true;
            drop(s);
            let result = sync.take().map_or(Ok(()), |f| f());
            s = self.lock();
            s.running = false;
            if result.is_ok() {
                s.durable = s.durable.max(covers);
            }
            self.done.notify_all();
            result?;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
