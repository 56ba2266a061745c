//! What every connection and worker shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use postel_queue::schedule::RetrySchedule;
use tokio::sync::{Notify, watch};

use crate::backend::AnyQueue;
use postel_session::server::ServerConfig;

use crate::config::{Config, Role};
use crate::tls::Certificates;
use crate::users::Users;

/// The running server's shared state.
pub(crate) struct Shared {
    /// The checked configuration, replaced whole by a reload: a session
    /// takes it once, at its start, and keeps what it took.
    config: std::sync::RwLock<Arc<Config>>,
    /// Users who may authenticate, replaced with the configuration.
    users: std::sync::RwLock<Arc<Users>>,
    /// The queue.
    pub(crate) queue: AnyQueue,
    /// The retry schedule the queue and workers use.
    pub(crate) schedule: RetrySchedule,
    /// The server certificate, when TLS is configured.
    pub(crate) certs: Option<Certificates>,
    /// Wakes idle delivery workers when mail arrives.
    pub(crate) wake: Notify,
    /// Becomes true when the server is stopping.
    pub(crate) stopping: watch::Receiver<bool>,
    /// This server's own addresses: its listeners', and every interface's
    /// when a listener is bound to the unspecified address. Mail routed to
    /// one of them would loop back (RFC 5321 section 5.1); `user@[one of
    /// them]` is local mail.
    pub(crate) own_addresses: Vec<IpAddr>,
    /// Connection, message and recipient rates.
    pub(crate) rates: crate::rate::RateCounter,
    /// What the metrics page shows.
    pub(crate) metrics: crate::metrics::Metrics,
    /// Open connections per client address.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// The SPF, DKIM, ARC and DMARC checks, when they are on. Built once:
    /// its resolver's cache outlives a reload.
    pub(crate) authenticator: Option<postel_auth::Authenticator>,
    /// Session settings built from the configuration now, one per role and
    /// shared by every session of that role, so that an idle connection
    /// holds only its own state.
    sessions: Mutex<Vec<SessionSettings>>,
}

/// The session settings of one role, and the configuration they come from.
struct SessionSettings {
    from: Arc<Config>,
    role: Role,
    settings: Arc<ServerConfig>,
}

/// The addresses of the listeners, with the interfaces' for an unspecified
/// one.
fn own_addresses(config: &Config) -> Vec<IpAddr> {
    let mut own: Vec<IpAddr> = Vec::new();
    for l in &config.listeners {
        let ip = l.address.ip();
        if ip.is_unspecified() {
            let interfaces = if_addrs::get_if_addrs().unwrap_or_default();
            own.extend(interfaces.iter().map(if_addrs::Interface::ip));
        } else {
            own.push(ip);
        }
    }
    own.sort_unstable();
    own.dedup();
    own
}

impl Shared {
    /// Puts the pieces together.
    pub(crate) fn new(
        config: Config,
        users: Users,
        queue: AnyQueue,
        schedule: RetrySchedule,
        certs: Option<Certificates>,
        stopping: watch::Receiver<bool>,
        authenticator: Option<postel_auth::Authenticator>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            own_addresses: own_addresses(&config),
            rates: crate::rate::RateCounter::new(config.rates),
            metrics: crate::metrics::Metrics::new(),
            config: std::sync::RwLock::new(Arc::new(config)),
            users: std::sync::RwLock::new(Arc::new(users)),
            queue,
            schedule,
            certs,
            wake: Notify::new(),
            stopping,
            per_ip: Mutex::new(HashMap::new()),
            authenticator,
            sessions: Mutex::new(Vec::new()),
        })
    }

    /// The configuration now.
    pub(crate) fn config(&self) -> Arc<Config> {
        Arc::clone(
            &self
                .config
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The session settings of `role` for `config`, built by `build` the first
    /// time and shared after that; those of an older configuration are
    /// dropped (sessions that took them keep them).
    pub(crate) fn session_settings(
        &self,
        config: &Arc<Config>,
        role: Role,
        build: impl FnOnce() -> ServerConfig,
    ) -> Arc<ServerConfig> {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = sessions
            .iter()
            .find(|s| s.role == role && Arc::ptr_eq(&s.from, config))
        {
            return Arc::clone(&s.settings);
        }
        sessions.retain(|s| Arc::ptr_eq(&s.from, config));
        let settings = Arc::new(build());
        sessions.push(SessionSettings {
            from: Arc::clone(config),
            role,
            settings: Arc::clone(&settings),
        });
        settings
    }

    /// The users now.
    pub(crate) fn users(&self) -> Arc<Users> {
        Arc::clone(
            &self
                .users
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Puts a new configuration and users file in place; sessions and
    /// deliveries already under way keep what they took.
    pub(crate) fn replace(&self, config: Config, users: Users) {
        self.rates.set_limits(config.rates);
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
        *self
            .users
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(users);
    }

    /// Counts a connection from `ip`; `None` when that address already has
    /// as many as allowed. The count drops with the guard.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
        let mut map = self
            .per_ip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(ip).or_insert(0);
        if *n >= self.config().max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(IpGuard {
            shared: Arc::clone(self),
            ip,
        })
    }
}

/// One counted connection.
pub(crate) struct IpGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut map = self
            .shared
            .per_ip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}
