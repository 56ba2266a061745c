//! # postel-queue
//!
//! What every queue backend shares: the retry schedule ([`schedule`]) and
//! delivery status notifications ([`dsn`], RFC 3464). Both are pure: time and
//! randomness are arguments, so every behaviour is testable without waiting.
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

pub mod dsn;
pub mod schedule;
