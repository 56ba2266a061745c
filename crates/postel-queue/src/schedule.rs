//! When to try a deferred message again, and when to give up. Pure: time and
//! randomness are arguments.

use std::time::{Duration, SystemTime};

/// The retry schedule, with Postfix's proven defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetrySchedule {
    /// Shortest wait between attempts: 5 minutes (Postfix `minimal_backoff_time`).
    pub min_backoff: Duration,
    /// Longest wait between attempts: 4000 s, about 67 minutes (Postfix
    /// `maximal_backoff_time`).
    pub max_backoff: Duration,
    /// How long a message may wait in all before it bounces: 5 days (RFC 5321
    /// section 4.5.4.1 asks for at least 4 to 5; Postfix `maximal_queue_lifetime`).
    pub max_lifetime: Duration,
    /// Send a delay warning once a message is this old; `None` sends none
    /// (Postfix `delay_warning_time`, off by default).
    pub delay_warning: Option<Duration>,
    /// Spread of the wait, as a fraction of it (0.1 is up to 10% either way),
    /// so that messages deferred together do not all return at once.
    pub jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            min_backoff: Duration::from_secs(300),
            max_backoff: Duration::from_secs(4000),
            max_lifetime: Duration::from_secs(5 * 24 * 3600),
            delay_warning: None,
            jitter: 0.1,
        }
    }
}

/// What to do after a temporary failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try again at this time.
    RetryAt(SystemTime),
    /// The message is too old: bounce it.
    Expire,
}

impl RetrySchedule {
    /// When the message that arrived at `arrived` should next be tried, after a
    /// temporary failure at `now`. The wait is the message's age, clamped to
    /// `min_backoff..=max_backoff`, spread by `jitter` (`random` in `0.0..1.0`),
    /// and never past the message's expiry.
    pub fn next_attempt(&self, arrived: SystemTime, now: SystemTime, random: f64) -> NextStep {
        let expiry = arrived + self.max_lifetime;
        if now >= expiry {
            return NextStep::Expire;
        }
        let age = now.duration_since(arrived).unwrap_or_default();
        let base = age.clamp(self.min_backoff, self.max_backoff.max(self.min_backoff));
        let spread = (random.clamp(0.0, 1.0) * 2.0 - 1.0) * self.jitter.clamp(0.0, 1.0);
        let wait = base
            .mul_f64(1.0 + spread)
            .clamp(self.min_backoff, self.max_backoff.max(self.min_backoff));
        NextStep::RetryAt((now + wait).min(expiry))
    }

    /// When a message that could not be tried because of our own rate or
    /// concurrency limit should come back: soon, and it does not count as an
    /// attempt.
    pub fn after_local_limit(&self, now: SystemTime) -> SystemTime {
        now + self.min_backoff / 5
    }

    /// True when a delay warning is due for a message that arrived at `arrived`
    /// and has not been warned about yet.
    pub fn delay_warning_due(
        &self,
        arrived: SystemTime,
        now: SystemTime,
        already_warned: bool,
    ) -> bool {
        !already_warned
            && self
                .delay_warning
                .is_some_and(|w| now.duration_since(arrived).unwrap_or_default() >= w)
    }

    /// When the message that arrived at `arrived` expires.
    pub fn expiry(&self, arrived: SystemTime) -> SystemTime {
        arrived + self.max_lifetime
    }
}
