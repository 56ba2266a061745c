//! # postel-server
//!
//! The reference server behind the `postel` binary: postel-session on tokio
//! sockets with rustls, postel-queue's spool (or PostgreSQL) for durability,
//! postel-mx for routing, and Maildir for local mail. Protocol rules live in
//! the session crate, ordering in mx, durability in queue; this crate wires
//! them to sockets, signals and a configuration file.
//!
//! ```text
//!  client --587/465/25--> inbound (session::Server, relay policy, AUTH)
//!                            | 250 only after the queue has it
//!                            v
//!                          queue (spool | postgres) <--- postel queue ... (control socket)
//!                            | claim with a lease
//!                            v
//!                          outbound workers --local--> Maildir (tmp/, fsync, new/)
//!                            |   \--remote--> mx::route -> session::Client -> next MX on failure
//!                            v
//!                          complete per recipient; retry on the schedule; DSN on failure
//! ```
//!
//! | What | RFC |
//! |------|-----|
//! | SMTP, Received and Return-Path trace fields, timeouts | 5321 (4.4, 4.5.3.2) |
//! | submission on 587, implicit TLS on 465 | 6409, 8314 |
//! | STARTTLS (pipelined plaintext discarded) | 3207 |
//! | AUTH PLAIN and LOGIN, only after TLS | 4954, 4616 |
//! | protocol names in Received (ESMTPS, ESMTPSA) | 3848 |
//! | MX routing, null MX | 5321 (5.1), 7505 |
//! | bounces and delay warnings | 3464, 3461 |
//! | enhanced status codes | 3463 |
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = postel_server::config::Config::embedded()?;
//! postel_server::serve(config, false).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The configuration is checked before anything starts; a bad key stops the
//! start with its name:
//!
//! ```
//! use postel_server::config::Config;
//! let err = Config::parse("[limits]\nrecipients = 0\n", "postel.toml".as_ref()).unwrap_err();
//! assert_eq!(err.to_string(), "configuration key `limits.recipients`: must be at least 1");
//! ```

pub mod backend;
pub mod config;
pub mod control;
mod filters;
mod inbound;
mod lmtp;
pub mod maildir;
mod metrics;
mod outbound;
mod proxy;
mod rate;
pub use rate::RateLimits;
mod state;
mod stream;
pub mod tls;
pub mod users;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use postel_queue::Queue;
use postel_queue::schedule::RetrySchedule;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::config::{Config, Role};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not bind.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The queue could not be opened.
    #[error("queue: {0}")]
    Queue(#[from] postel_queue::QueueError),
    /// The users file is unusable.
    #[error(transparent)]
    Users(#[from] users::UsersError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A submission listener without a certificate.
    #[error(
        "configuration key `listener`: a {0:?} listener needs TLS: set [tls] cert and key, or pass --dev-tls"
    )]
    NeedsTls(Role),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The DNS resolver for outbound delivery could not be built.
    #[error(transparent)]
    Resolver(#[from] postel_mx::BuildError),
    /// The resolver for the authentication checks could not be built.
    #[error("authentication checks: {0}")]
    Authentication(#[from] postel_auth::AuthError),
    /// A signal handler could not be installed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

/// How delivery to `domain` would use TLS, and why: the answer of
/// `postel tls-policy check`, the domain's MTA-STS policy looked up as
/// delivery would (through the cache in the data directory). `requiretls`
/// for a message sent with REQUIRETLS.
pub async fn tls_policy(
    config: &Config,
    domain: &str,
    requiretls: bool,
) -> Result<String, ServeError> {
    use std::fmt::Write as _;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let resolver = postel_mx::HickoryResolver::new(&config.dns())?;
    let sts = if requiretls || config.tls_mode(&domain).is_some() {
        None
    } else {
        let roots = outbound::trust_anchors(config);
        let tls = tls::client_config(true, roots);
        outbound::MtaSts::load(config.data_dir.join("mta-sts.json"), tls)
            .policy(&resolver, &domain)
            .await
    };
    let c = outbound::TlsChoice::decide(config, &domain, requiretls, sts.as_ref());
    let what = match (c.policy, c.verify) {
        (postel_session::client::TlsPolicy::Never, _) => "no TLS",
        (postel_session::client::TlsPolicy::Opportunistic, false) => {
            "STARTTLS when offered, any certificate; plaintext otherwise"
        }
        (postel_session::client::TlsPolicy::Opportunistic, true) => {
            "TLS with a certificate valid for the exchanger's name, to an exchanger offering REQUIRETLS; else bounced with 5.7.30"
        }
        (_, false) => "TLS required, any certificate; deferred without it",
        (_, true) => {
            "TLS required with a certificate valid for the exchanger's name; deferred without it"
        }
    };
    let mut out = format!("{domain}: {what} ({})", c.why);
    if resolver.validates() && config.smarthost.is_none() && config.tls_mode(&domain).is_none() {
        out.push('\n');
        out.push_str(&outbound::explain_dane(&resolver, &domain).await);
    }
    if let Some(p) = sts {
        let _ = write!(
            out,
            "\nMTA-STS: mode {:?}, max_age {}, mx {}",
            p.mode,
            p.max_age,
            p.mx.join(" ")
        );
    }
    Ok(out)
}

/// Binds every listener: each with its role and trusted proxies.
async fn bind(config: &Config) -> Result<Vec<BoundListener>, ServeError> {
    let mut listeners = Vec::new();
    for l in &config.listeners {
        let listener = TcpListener::bind(l.address)
            .await
            .map_err(|source| ServeError::Bind {
                address: l.address,
                source,
            })?;
        info!(address = %l.address, role = ?l.role, "listening");
        listeners.push((listener, l.role, l.proxy.clone()));
    }
    Ok(listeners)
}

type BoundListener = (TcpListener, Role, Option<Vec<std::net::IpAddr>>);

/// The checks on arrival, when they are on, under the configured
/// authserv-id or the host name.
fn authenticator(config: &Config) -> Result<Option<postel_auth::Authenticator>, ServeError> {
    if !config.authentication.enabled {
        return Ok(None);
    }
    let id = config
        .authentication
        .authserv_id
        .clone()
        .unwrap_or_else(|| config.hostname.to_string());
    Ok(Some(postel_auth::Authenticator::new(&config.dns(), id)?))
}

/// The retry schedule from the configuration.
pub fn schedule(config: &Config) -> RetrySchedule {
    let mut s = RetrySchedule::default();
    s.min_backoff = config.min_retry;
    s.max_backoff = config.max_retry;
    s.max_lifetime = config.lifetime;
    s.delay_warning = config.delay_warning;
    s
}

/// How long in-flight transactions may run on after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Runs the server until SIGTERM or SIGINT.
pub async fn serve(config: Config, dev_tls: bool) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let certs = match (&config.tls, dev_tls) {
        (Some((cert, key)), _) => Some(tls::Certificates::new(cert.clone(), key.clone())?),
        (None, true) => {
            let (cert, key) =
                tls::dev_certificate(&config.data_dir.join("dev-tls"), config.hostname.as_str())?;
            warn!("using a self-signed certificate (--dev-tls): for trying out only");
            Some(tls::Certificates::new(cert, key)?)
        }
        (None, false) => None,
    };
    if certs.is_none()
        && let Some(l) = config
            .listeners
            .iter()
            .find(|l| !matches!(l.role, Role::Mx | Role::Lmtp))
    {
        return Err(ServeError::NeedsTls(l.role));
    }
    let users = users::Users::load(&config.users_file)?;
    let schedule = schedule(&config);
    let queue = backend::open(&config).await?;
    let report = queue.recover(SystemTime::now()).await?;
    info!(
        messages = report.messages,
        leases_released = report.leases_released,
        quarantined = report.quarantined.len(),
        "queue recovered"
    );
    let listeners = bind(&config).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let authenticator = authenticator(&config)?;
    let shared = state::Shared::new(
        config,
        users,
        queue,
        schedule,
        certs,
        stop_rx,
        authenticator,
    );
    forward_notifications(&shared);
    let delivery = outbound::Delivery::new(Arc::clone(&shared))?;
    let workers = tokio::spawn(delivery.run());
    let control = tokio::spawn(control::serve(Arc::clone(&shared)));
    if let Some(address) = shared.config().metrics {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServeError::Bind { address, source })?;
        info!(%address, "metrics listening");
        tokio::spawn(metrics::serve(Arc::clone(&shared), listener));
    }
    let connections = Arc::new(Semaphore::new(shared.config().max_connections));
    let mut accept_tasks = Vec::new();
    for (listener, role, proxy) in listeners {
        accept_tasks.push(tokio::spawn(accept_loop(
            Arc::clone(&shared),
            Arc::clone(&connections),
            listener,
            (role, proxy),
        )));
    }
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Signals)?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                reload(&shared);
                if let Some(certs) = &shared.certs {
                    match certs.reload() {
                        Ok(()) => info!("certificates reloaded"),
                        Err(e) => error!(error = %e, "certificate reload failed; keeping the old one"),
                    }
                }
            }
        }
    }
    info!("stopping: no new connections; transactions in flight may finish");
    let _ = stop_tx.send(true);
    for task in &accept_tasks {
        task.abort();
    }
    let total = u32::try_from(shared.config().max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, connections.acquire_many(total)).await;
    if drained.is_err() {
        warn!("stopping with connections still open after the grace period");
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), workers).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), control).await;
    info!("stopped");
    Ok(())
}

/// With a shared queue, another server's enqueue wakes this one's idle
/// workers.
fn forward_notifications(shared: &Arc<state::Shared>) {
    if let backend::AnyQueue::Postgres(pg) = &shared.queue {
        info!(node = %shared.config().node, "queue on PostgreSQL");
        let notified = pg.notifications();
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            loop {
                notified.notified().await;
                shared.wake.notify_one();
            }
        });
    }
}

/// SIGHUP: reads the configuration file and the users file again and puts
/// them in place for the sessions and deliveries that begin from now on; a
/// file that does not validate is refused and the running configuration
/// stays. Listeners, the data directory and the queue backend are taken at
/// start only: a change to them is logged as needing a restart.
fn reload(shared: &state::Shared) {
    let old = shared.config();
    let Some(path) = old.source.clone() else {
        info!("reload: the embedded default has no file to read again");
        return;
    };
    let new = match config::Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "configuration reload refused; keeping the running one");
            return;
        }
    };
    let users = match users::Users::load(&new.users_file) {
        Ok(u) => u,
        Err(e) => {
            error!(error = %e, "configuration reload refused (users file); keeping the running one");
            return;
        }
    };
    let addresses = |c: &config::Config| {
        c.listeners
            .iter()
            .map(|l| (l.address, l.role, l.proxy.clone()))
            .collect::<Vec<_>>()
    };
    if addresses(&old) != addresses(&new)
        || old.data_dir != new.data_dir
        || old.queue_backend != new.queue_backend
        || old.metrics != new.metrics
    {
        warn!("reload: listener, data directory, queue or metrics changes need a restart");
    }
    info!(path = %path.display(), domains = new.domains.len(), "configuration reloaded");
    shared.replace(new, users);
}

async fn accept_loop(
    shared: Arc<state::Shared>,
    connections: Arc<Semaphore>,
    listener: TcpListener,
    (role, proxy): (Role, Option<Vec<std::net::IpAddr>>),
) {
    loop {
        let (mut tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            info!(client = %peer, "refused: too many connections");
            shared.metrics.refused_connection("too_many");
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                let _ = tcp
                    .write_all(b"421 4.7.0 Too many connections, try later\r\n")
                    .await;
            });
            continue;
        };
        if let Some(trusted) = &proxy
            && !trusted.contains(&peer.ip())
        {
            // Behind a proxy, only the proxy may connect: anyone else could
            // claim any client address in a header of their own.
            info!(client = %peer, "refused: not a trusted proxy");
            shared.metrics.refused_connection("untrusted_proxy");
            continue;
        }
        let shared = Arc::clone(&shared);
        let behind_proxy = proxy.is_some();
        // A panic ends only this connection's task; the permit and the
        // per-address count are released as the task unwinds.
        let task = tokio::spawn(async move {
            let _permit = permit;
            let mut client = peer;
            if behind_proxy {
                match proxy::read_header(&mut tcp).await {
                    Ok(Some(original)) => client = original,
                    Ok(None) => {}
                    Err(e) => {
                        info!(proxy = %peer, error = %e, "refused: bad PROXY header");
                        shared.metrics.refused_connection("proxy_header");
                        return;
                    }
                }
            }
            let now = std::time::Instant::now();
            if !shared
                .rates
                .allow(rate::Counted::Connection(client.ip()), now)
            {
                info!(client = %client, "refused: connection rate limit");
                shared.metrics.refused_connection("rate");
                use tokio::io::AsyncWriteExt as _;
                let _ = tcp
                    .write_all(b"421 4.7.0 Too many connections from your address, slow down\r\n")
                    .await;
                return;
            }
            let Some(guard) = shared.admit(client.ip()) else {
                info!(client = %client, "refused: too many connections from this address");
                shared.metrics.refused_connection("per_address");
                use tokio::io::AsyncWriteExt as _;
                let _ = tcp
                    .write_all(b"421 4.7.0 Too many connections from your address\r\n")
                    .await;
                return;
            };
            let _guard = guard;
            let m = &shared.metrics;
            let name = match role {
                Role::Mx => "mx",
                Role::Submission => "submission",
                Role::Submissions => "submissions",
                Role::Lmtp => "lmtp",
            };
            m.connections
                .get_or_create(&metrics::RoleLabel { role: name })
                .inc();
            m.connections_open.inc();
            let started = std::time::Instant::now();
            if role == Role::Lmtp {
                lmtp::serve(Arc::clone(&shared), tcp, client).await;
            } else {
                inbound::serve(Arc::clone(&shared), tcp, client, role).await;
            }
            shared.metrics.connections_open.dec();
            shared
                .metrics
                .session_duration
                .observe(started.elapsed().as_secs_f64());
        });
        tokio::spawn(async move {
            if let Err(e) = task.await
                && e.is_panic()
            {
                error!(client = %peer, "connection task panicked");
            }
        });
    }
}
