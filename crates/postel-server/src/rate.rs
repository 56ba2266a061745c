//! Rate limits in the manner of Postfix's anvil: how many connections,
//! messages and recipients one client address, or one authenticated user,
//! may start per time unit. Counts live in memory, per key and per fixed
//! window; a window that has passed counts from zero again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What is counted, and for whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Counted {
    /// Connections from a client address.
    Connection(IpAddr),
    /// MAIL commands from a client address.
    Message(IpAddr),
    /// RCPT commands from a client address.
    Recipient(IpAddr),
    /// MAIL commands by an authenticated user.
    UserMessage(String),
    /// RCPT commands by an authenticated user.
    UserRecipient(String),
}

/// The limits: events per window; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Connections per client address per `window`.
    pub connections: u32,
    /// Messages per client address per `window`.
    pub messages: u32,
    /// Recipients per client address per `window`.
    pub recipients: u32,
    /// The window for client addresses: 60 s, as anvil's
    /// `anvil_rate_time_unit`.
    pub window: Duration,
    /// Messages per authenticated user per `user_window`.
    pub user_messages: u32,
    /// Recipients per authenticated user per `user_window`.
    pub user_recipients: u32,
    /// The window for users: an hour.
    pub user_window: Duration,
}

/// The counters.
pub(crate) struct RateCounter {
    limits: std::sync::RwLock<RateLimits>,
    counts: Mutex<HashMap<Counted, (Instant, u32)>>,
}

/// Counters kept before the expired ones are swept out.
const SWEEP_AT: usize = 10_000;

impl RateCounter {
    pub(crate) fn new(limits: RateLimits) -> Self {
        RateCounter {
            limits: std::sync::RwLock::new(limits),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// New limits, from a reloaded configuration; the counts go on.
    pub(crate) fn set_limits(&self, limits: RateLimits) {
        *self
            .limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// Counts one event at `now`; false when it is past the limit (the
    /// event is counted all the same, as anvil does).
    pub(crate) fn allow(&self, what: Counted, now: Instant) -> bool {
        let l = *self
            .limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let l = &l;
        let (limit, window) = match what {
            Counted::Connection(_) => (l.connections, l.window),
            Counted::Message(_) => (l.messages, l.window),
            Counted::Recipient(_) => (l.recipients, l.window),
            Counted::UserMessage(_) => (l.user_messages, l.user_window),
            Counted::UserRecipient(_) => (l.user_recipients, l.user_window),
        };
        if limit == 0 {
            return true;
        }
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.len() >= SWEEP_AT {
            let longest = l.window.max(l.user_window);
            counts.retain(|_, (start, _)| now.duration_since(*start) < longest);
        }
        let entry = counts.entry(what).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_and_window() {
        let limits = RateLimits {
            connections: 2,
            messages: 0,
            recipients: 0,
            window: Duration::from_secs(60),
            user_messages: 1,
            user_recipients: 0,
            user_window: Duration::from_secs(3600),
        };
        let c = RateCounter::new(limits);
        let t = Instant::now();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        assert!(c.allow(Counted::Connection(a), t));
        assert!(c.allow(Counted::Connection(a), t));
        assert!(
            !c.allow(Counted::Connection(a), t),
            "the third in the window"
        );
        assert!(c.allow(Counted::Connection(b), t), "another address");
        assert!(
            c.allow(Counted::Connection(a), t + Duration::from_secs(60)),
            "a new window"
        );
        assert!(c.allow(Counted::Message(a), t), "no limit");
        assert!(c.allow(Counted::UserMessage("u".into()), t));
        assert!(!c.allow(
            Counted::UserMessage("u".into()),
            t + Duration::from_secs(3599)
        ));
    }
}
