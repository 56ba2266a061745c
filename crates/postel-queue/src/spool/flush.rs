//! Group commit without a blocked caller: the segment log's fdatasyncs
//! run on a thread of their own, and a commit waits for the one that
//! covers its append as a future, so an async caller's thread serves other
//! work meanwhile instead of being handed off or parked.
//!
//! Appends are numbered (tickets, from 1, in file order). The flusher
//! thread sleeps until some caller waits for a ticket not yet durable,
//! then takes the current segment and the last ticket appended to it,
//! fdatasyncs, and marks every ticket up to that one done: durable, or
//! failed when the fdatasync failed. A failed ticket stays failed even if
//! a later fdatasync succeeds, since Linux may have dropped the pages the
//! failed one could not write. Tickets in a segment closed before the
//! sync were synced when it was closed (see `segment::Log::append`).

use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

/// What the flusher needs to know of the log: the file appended to now and
/// the last ticket appended, read together.
pub(super) type Snapshot = Box<dyn Fn() -> (Arc<File>, u64) + Send + Sync>;

/// The flusher thread and the state it shares with the waiters.
pub(super) struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("Flusher")
            .field("requested", &s.requested)
            .field("done", &s.done)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    /// The highest ticket a caller waits for.
    requested: u64,
    /// Every ticket up to this one is done (durable, or failed).
    done: u64,
    /// Ranges of tickets `(first, last)` whose fdatasync failed, oldest
    /// first, each with what the error said; adjacent ranges are merged, so
    /// a disk that keeps failing adds no entries.
    failed: Vec<(u64, u64, std::io::ErrorKind, String)>,
    /// The callers waiting now.
    waiting: Vec<Waker>,
    /// The log is gone: finish what is requested, then end.
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The outcome of a done ticket.
    fn outcome(&self, ticket: u64) -> std::io::Result<()> {
        // Recent failures are the likely ones; the list is short.
        match self
            .failed
            .iter()
            .rev()
            .find(|(first, last, ..)| (*first..=*last).contains(&ticket))
        {
            Some((_, _, kind, message)) => Err(std::io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }
}

impl Flusher {
    /// Starts the thread; `snapshot` tells it what to sync.
    pub(super) fn start(snapshot: Snapshot) -> std::io::Result<Flusher> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("postel-spool-sync".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&shared, &snapshot)
            })?;
        Ok(Flusher {
            shared,
            thread: Some(thread),
        })
    }

    /// Resolves once `ticket` is durable, or with the error of the
    /// fdatasync that should have made it so.
    pub(super) fn durable(&self, ticket: u64) -> Durable<'_> {
        Durable {
            shared: &self.shared,
            ticket,
        }
    }

    /// [`Flusher::durable`], blocking the calling thread.
    pub(super) fn wait(&self, ticket: u64) -> std::io::Result<()> {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut durable = self.durable(ticket);
        loop {
            if let Poll::Ready(result) = Pin::new(&mut durable).poll(&mut cx) {
                return result;
            }
            std::thread::park();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: one fdatasync per round, covering every append made before
/// the round began.
fn run(shared: &Shared, snapshot: &Snapshot) {
    loop {
        let mut state = shared.lock();
        while state.requested <= state.done && !state.stop {
            state = shared
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.requested <= state.done {
            return;
        }
        drop(state);
        let (file, last) = snapshot();
        let result = file.sync_data();
        let mut state = shared.lock();
        let first = state.done + 1;
        if last >= first {
            if let Err(e) = result {
                match state.failed.last_mut() {
                    Some((_, end, ..)) if *end + 1 == first => *end = last,
                    _ => state.failed.push((first, last, e.kind(), e.to_string())),
                }
            }
            state.done = last;
        }
        let waiting = std::mem::take(&mut state.waiting);
        drop(state);
        waiting.into_iter().for_each(Waker::wake);
    }
}

/// The future of [`Flusher::durable`].
pub(super) struct Durable<'a> {
    shared: &'a Shared,
    ticket: u64,
}

impl Future for Durable<'_> {
    type Output = std::io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.lock();
        if self.ticket <= state.done {
            return Poll::Ready(state.outcome(self.ticket));
        }
        if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            state.waiting.push(cx.waker().clone());
        }
        let ask = self.ticket > state.requested;
        state.requested = state.requested.max(self.ticket);
        drop(state);
        if ask {
            self.shared.work.notify_one();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // ok: a failed unwrap is a failed test.
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A flusher over `file`, whose last ticket is whatever `last` holds.
    fn flusher(file: File, last: &Arc<AtomicU64>) -> Flusher {
        let file = Arc::new(file);
        let last = Arc::clone(last);
        Flusher::start(Box::new(move || {
            (Arc::clone(&file), last.load(Ordering::SeqCst))
        }))
        .unwrap()
    }

    #[test]
    fn concurrent_waiters_all_become_durable() {
        let path = std::env::temp_dir().join(format!("postel-flush-{}", std::process::id()));
        let last = Arc::new(AtomicU64::new(0));
        let f = flusher(File::create(&path).unwrap(), &last);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let ticket = last.fetch_add(1, Ordering::SeqCst) + 1;
                        f.wait(ticket).unwrap();
                        assert!(f.shared.lock().done >= ticket);
                    }
                });
            }
        });
        assert_eq!(f.shared.lock().done, 400);
        drop(f);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_failed_sync_fails_the_tickets_it_covered_and_no_others() {
        // fdatasync of /dev/null fails (EINVAL) as a failing disk would.
        let last = Arc::new(AtomicU64::new(3));
        let failing = flusher(File::open("/dev/null").unwrap(), &last);
        for ticket in 1..=3 {
            assert!(failing.wait(ticket).is_err(), "ticket {ticket}");
        }
        // Still failed when asked again, and later tickets fail on their own.
        last.store(5, Ordering::SeqCst);
        assert!(failing.wait(2).is_err());
        assert!(failing.wait(5).is_err());
        // One merged range for the two failing rounds.
        assert_eq!(failing.shared.lock().failed.len(), 1);

        let path = std::env::temp_dir().join(format!("postel-flush-ok-{}", std::process::id()));
        let ok = flusher(File::create(&path).unwrap(), &last);
        assert!(ok.wait(5).is_ok());
        assert!(ok.wait(1).is_ok(), "a done ticket stays durable");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_dropped_log_finishes_what_was_asked() {
        let path = std::env::temp_dir().join(format!("postel-flush-drop-{}", std::process::id()));
        let last = Arc::new(AtomicU64::new(1));
        let f = flusher(File::create(&path).unwrap(), &last);
        let shared = Arc::clone(&f.shared);
        {
            let mut s = shared.lock();
            s.requested = 1;
        }
        f.shared.work.notify_one();
        drop(f); // joins the thread
        assert_eq!(shared.lock().done, 1);
        let _ = std::fs::remove_file(&path);
    }
}
