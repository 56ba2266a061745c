//! # postel-queue
//!
//! A mail queue that never loses an accepted message: the [`Queue`] trait that
//! servers and tools program against, the logic every backend shares (the
//! retry [`schedule`], [`apply_outcomes`], and failure reports as RFC 3464
//! [`dsn`]s), and backends: [`MemoryQueue`], the durable filesystem [`SpoolQueue`] (a
//! segment log with group commit for small messages, a file each for large ones);
//! `postel-queue-postgres` beside it stores the queue in `PostgreSQL`. Bodies go
//! in and come out in pieces ([`Queue::begin`], [`Queue::read_body`]), so no
//! backend needs a whole message in memory. Time and randomness are arguments throughout,
//! so every behaviour is testable without waiting. [`conformance`] is the one
//! test suite every backend must pass.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use postel_queue::schedule::{NextStep, RetrySchedule};
//!
//! let schedule = RetrySchedule::default();
//! let arrived = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
//! let now = arrived + Duration::from_secs(60);
//! // A young message waits the minimum of 5 minutes (no jitter at random = 0.5).
//! assert_eq!(schedule.next_attempt(arrived, now, 0.5), NextStep::RetryAt(now + Duration::from_secs(300)));
//! ```
#![forbid(unsafe_code)]

pub mod conformance;
pub mod dsn;
mod memory;
pub mod model;
mod queue;
pub mod record;
pub mod schedule;
mod spool;
mod sync;

pub use memory::{MemoryBody, MemoryIncoming, MemoryQueue};
pub use queue::{
    Bounce, Claim, Lease, Queue, QueueError, QueueStats, RecoveryReport, apply_outcomes, bounce,
    delay_warning, new_recipients, read_slice, report_failures, report_failures_with,
    success_report,
};
pub use spool::{SpoolBody, SpoolIncoming, SpoolQueue, WriteStep};
pub use sync::GroupSync;
