//! The configuration file (TOML) and its checked form.
//!
//! Every key has a default, so an empty file (or none) is the embedded
//! default: 127.0.0.1:2525, data under `./postel-data/`, mail accepted for
//! `postmaster@localhost`, nothing relayed. `postel.example.toml` documents
//! each key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postel_proto::types::Domain;
use serde::Deserialize;

mod auth;
mod file;
mod milter;
mod tls_policy;
pub use auth::{AuthAction, AuthConfig};
use file::File;
pub use milter::{DefaultAction, MilterAddress, MilterConfig};
pub use tls_policy::{TlsMode, TlsPolicyOverride};

/// A configuration that cannot be used, naming the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value of the right type that cannot be used.
    #[error("configuration key `{key}`: {problem}")]
    Invalid {
        /// The key, dotted.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Port 25: mail for local domains from anyone; relays only for
    /// authenticated clients. STARTTLS offered when TLS is configured.
    Mx,
    /// Port 587: AUTH required, and STARTTLS before AUTH.
    Submission,
    /// Port 465: implicit TLS, AUTH required.
    Submissions,
    /// LMTP (RFC 2033) for postel as the final delivery agent behind another
    /// MTA: each recipient of a local domain into its Maildir, answered only
    /// once the message is durable there; no queue, no relaying. Loopback.
    Lmtp,
}

/// Where the queue lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueBackend {
    /// The filesystem spool under the data directory (the default).
    Spool,
    /// A PostgreSQL database that several servers may share.
    Postgres {
        /// libpq connection string or URL.
        url: String,
        /// Connections in the pool.
        pool_size: usize,
    },
}

/// A listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Where to listen.
    pub address: SocketAddr,
    /// What for.
    pub role: Role,
    /// With the PROXY protocol: the proxies allowed to connect, each
    /// sending a PROXY header first; anyone else is refused.
    pub proxy: Option<Vec<std::net::IpAddr>>,
}

/// A local domain and its mailboxes.
#[derive(Debug, Clone)]
pub struct LocalDomain {
    /// The domain, lower case.
    pub name: String,
    /// Local parts with a Maildir, lower case.
    pub mailboxes: Vec<String>,
    /// Local part to mailboxes of this domain.
    pub aliases: BTreeMap<String, Vec<String>>,
    /// The mailbox that gets mail for unknown local parts, if any.
    pub catch_all: Option<String>,
    /// Where its mail is delivered.
    pub delivery: LocalDelivery,
    /// How a recipient is checked at RCPT.
    pub recipients: RecipientCheck,
}

/// How a local domain's recipients are checked at RCPT time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientCheck {
    /// Against `mailboxes`, aliases and the catch-all: unknown ones get 550
    /// at once, so no bounce is ever sent to a forged sender (the default).
    Mailboxes,
    /// Any the LMTP server would take: asked with a probe RCPT over LMTP
    /// for each recipient not in the lists, its refusal passed on.
    Probe,
    /// Any local part; the LMTP server refuses unknown ones after the
    /// message, and they bounce.
    Any,
}

/// How a local domain's mail reaches its mailboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalDelivery {
    /// Written into Maildirs under the data directory.
    Maildir,
    /// Handed to a mailbox server over LMTP (RFC 2033), such as Dovecot.
    Lmtp(LmtpTarget),
}

/// An LMTP server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpTarget {
    /// `lmtp:HOST:PORT`.
    Tcp(String),
    /// `lmtp:unix:PATH`.
    Unix(PathBuf),
}

impl std::fmt::Display for LmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LmtpTarget::Tcp(a) => write!(f, "lmtp:{a}"),
            LmtpTarget::Unix(p) => write!(f, "lmtp:unix:{}", p.display()),
        }
    }
}

/// `"maildir"`, `"lmtp:HOST:PORT"` or `"lmtp:unix:PATH"`.
fn delivery(text: &str) -> Option<LocalDelivery> {
    if text == "maildir" {
        return Some(LocalDelivery::Maildir);
    }
    let rest = text.strip_prefix("lmtp:")?;
    if let Some(path) = rest.strip_prefix("unix:") {
        return (!path.is_empty()).then(|| LocalDelivery::Lmtp(LmtpTarget::Unix(path.into())));
    }
    let (host, port) = rest.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    (!host.is_empty()).then(|| LocalDelivery::Lmtp(LmtpTarget::Tcp(rest.to_owned())))
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This host's name: greeting, EHLO, Received, bounces.
    pub hostname: Domain<'static>,
    /// Queue and Maildirs live here.
    pub data_dir: PathBuf,
    /// Users who may authenticate: `name:argon2-hash` lines.
    pub users_file: PathBuf,
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// PEM certificate chain and key, if TLS is configured.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Local domains.
    pub domains: Vec<LocalDomain>,
    /// Largest message accepted, octets.
    pub max_message_size: u64,
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections at once from one client address.
    pub max_connections_per_ip: usize,
    /// Rate limits per client address and per authenticated user.
    pub rates: crate::rate::RateLimits,
    /// Where the Prometheus metrics page is served, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Errors before the session is closed with 421.
    pub max_errors: usize,
    /// Most Received fields a message may carry on arrival and before it is
    /// relayed (RFC 5321 section 6.3).
    pub max_received: usize,
    /// Longest wait for a client, capping RFC 5321 section 4.5.3.2's 5 minutes.
    pub idle_timeout: Duration,
    /// The port remote deliveries connect to.
    pub relay_port: u16,
    /// Send every remote message through this host instead of MX.
    pub smarthost: Option<(String, u16)>,
    /// Most deliveries at once to one domain.
    pub per_domain: usize,
    /// Most deliveries at once.
    pub workers: usize,
    /// Verify remote certificates (off: opportunistic TLS, as MTAs do).
    pub verify_tls: bool,
    /// Trust anchors besides the system's, for verified TLS to exchangers
    /// (`[relay] ca_file`, PEM): a private CA.
    pub relay_ca_file: Option<PathBuf>,
    /// Send TLS-RPT reports (RFC 8460) to the domains that ask for them,
    /// once per this period; `None` for off (`[relay] tls_rpt`).
    pub tls_rpt: Option<Duration>,
    /// How long a remote server has for each reply, and for each write.
    pub relay_timeouts: postel_session::client::Timeouts,
    /// How long one outbound connection may last in all.
    pub connection_timeout: Duration,
    /// Messages one outbound connection carries before it is closed; 1
    /// turns connection reuse off.
    pub messages_per_connection: usize,
    /// How long an outbound connection waits, open, for the next message to
    /// its address.
    pub connection_idle: Duration,
    /// Name servers; empty means the system's.
    pub dns_servers: Vec<SocketAddr>,
    /// DNS timeout per attempt.
    pub dns_timeout: Duration,
    /// DNSSEC validation of outbound DNS answers (`[dns] dnssec`), which
    /// DANE needs.
    pub dnssec: postel_mx::Dnssec,
    /// How long a message may stay queued before it bounces.
    pub lifetime: Duration,
    /// Shortest retry interval.
    pub min_retry: Duration,
    /// Longest retry interval.
    pub max_retry: Duration,
    /// Warn the sender once a message has waited this long; `None`: never.
    pub delay_warning: Option<Duration>,
    /// How often idle workers look for due mail.
    pub poll: Duration,
    /// The queue backend.
    pub queue_backend: QueueBackend,
    /// How long a delivery worker's claim on a message lasts before another
    /// server may take it over.
    pub lease: Duration,
    /// This server's name among the servers sharing a queue: its leases
    /// carry it. Default: the host name.
    pub node: String,
    /// The filters every message of a listener's role is shown to, in order.
    pub milters: Vec<MilterConfig>,
    /// Per-domain TLS for delivery (`[[tls_policy]]`).
    pub tls_policies: Vec<TlsPolicyOverride>,
    /// The checks on arrival (`[authentication]`).
    pub authentication: AuthConfig,
    /// The keys outgoing mail is signed with (`[[dkim]]`).
    pub dkim: std::sync::Arc<postel_auth::Signer>,
    /// The file it was read from; `None` for the embedded default. SIGHUP
    /// reads it again.
    pub source: Option<PathBuf>,
}

impl Config {
    /// The operator's TLS mode for delivery to `domain`, if one is set.
    pub fn tls_mode(&self, domain: &str) -> Option<TlsMode> {
        tls_policy::lookup(&self.tls_policies, domain)
    }

    /// The name servers every DNS user asks (`[dns]`).
    pub fn dns(&self) -> postel_mx::DnsConfig {
        postel_mx::DnsConfig {
            servers: self.dns_servers.clone(),
            timeout: self.dns_timeout,
            attempts: 2,
            dnssec: self.dnssec.clone(),
        }
    }

    /// The embedded default, as if from an empty file, except that mail
    /// is not authenticated: it takes mail for `postmaster@localhost` on a
    /// loopback port, from this machine's own programs, and must work on a
    /// machine without DNS.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::check(File {
            authentication: auth::AuthFile::off(),
            ..File::default()
        })
    }

    /// Reads and checks a file. Relative paths in it are relative to the
    /// current directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Checks TOML text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Config::check(file)
    }

    #[allow(clippy::too_many_lines)] // One check per key, in file order.
    fn check(file: File) -> Result<Config, ConfigError> {
        let hostname = match file.hostname {
            Some(h) => h,
            None => system_hostname(),
        };
        let hostname = Domain::try_from(hostname.as_str())
            .map(Domain::into_owned)
            .map_err(|e| invalid("hostname", format!("{hostname:?} is not a domain: {e}")))?;
        if file.listener.is_empty() {
            return Err(invalid("listener", "at least one listener is needed"));
        }
        let mut listeners = Vec::new();
        for (i, l) in file.listener.iter().enumerate() {
            let address = l.address.parse().map_err(|_| {
                invalid(
                    format!("listener[{i}].address"),
                    format!("{:?} is not an address:port", l.address),
                )
            })?;
            if l.role == Role::Lmtp && !std::net::SocketAddr::ip(&address).is_loopback() {
                // LMTP has no authentication and delivers for anyone who can
                // connect: only the MTA on this machine may.
                return Err(invalid(
                    format!("listener[{i}].address"),
                    format!("an lmtp listener must be on loopback, not {address}"),
                ));
            }
            let proxy = if l.proxy_protocol {
                let mut trusted = Vec::new();
                for (j, t) in l.trusted_proxies.iter().enumerate() {
                    trusted.push(t.parse().map_err(|_| {
                        invalid(
                            format!("listener[{i}].trusted_proxies[{j}]"),
                            format!("{t:?} is not an IP address"),
                        )
                    })?);
                }
                if trusted.is_empty() {
                    return Err(invalid(
                        format!("listener[{i}].trusted_proxies"),
                        "proxy_protocol needs the proxies' addresses",
                    ));
                }
                Some(trusted)
            } else {
                None
            };
            listeners.push(Listener {
                address,
                role: l.role,
                proxy,
            });
        }
        let mut domains = Vec::new();
        for (i, d) in file.domain.iter().enumerate() {
            let key = |k: &str| format!("domain[{i}].{k}");
            let name = d.name.to_ascii_lowercase();
            Domain::try_from(name.as_str())
                .map_err(|e| invalid(key("name"), format!("{name:?} is not a domain: {e}")))?;
            let mailboxes: Vec<String> = d.mailboxes.iter().map(|m| m.to_lowercase()).collect();
            for m in &mailboxes {
                if m.is_empty() || m.contains(['/', '\\', '\0']) || m.starts_with('.') {
                    return Err(invalid(
                        key("mailboxes"),
                        format!("{m:?} cannot name a Maildir"),
                    ));
                }
            }
            let mut aliases = BTreeMap::new();
            for (from, to) in &d.aliases {
                for t in to {
                    if !mailboxes.contains(&t.to_lowercase()) {
                        return Err(invalid(
                            key(&format!("aliases.{from}")),
                            format!("{t:?} is not a mailbox of {name}"),
                        ));
                    }
                }
                aliases.insert(
                    from.to_lowercase(),
                    to.iter().map(|t| t.to_lowercase()).collect(),
                );
            }
            let catch_all = d.catch_all.as_ref().map(|c| c.to_lowercase());
            if let Some(c) = &catch_all
                && !mailboxes.contains(c)
            {
                return Err(invalid(
                    key("catch_all"),
                    format!("{c:?} is not a mailbox of {name}"),
                ));
            }
            let delivery = match &d.delivery {
                None => LocalDelivery::Maildir,
                Some(t) => self::delivery(t).ok_or_else(|| {
                    invalid(
                        key("delivery"),
                        format!(
                            "{t:?} is not \"maildir\", \"lmtp:HOST:PORT\" or \"lmtp:unix:PATH\""
                        ),
                    )
                })?,
            };
            let lmtp = matches!(delivery, LocalDelivery::Lmtp(_));
            let recipients = match d.recipients.as_deref() {
                None | Some("mailboxes") => RecipientCheck::Mailboxes,
                Some("probe") if lmtp => RecipientCheck::Probe,
                Some("any") if lmtp => RecipientCheck::Any,
                Some(other) => {
                    return Err(invalid(
                        key("recipients"),
                        format!(
                            "{other:?}: \"mailboxes\", or \"probe\" or \"any\" with LMTP delivery"
                        ),
                    ));
                }
            };
            domains.push(LocalDomain {
                name,
                mailboxes,
                aliases,
                catch_all,
                delivery,
                recipients,
            });
        }
        let smarthost = match &file.relay.smarthost {
            None => None,
            Some(s) => {
                let (host, port) = match s.rsplit_once(':') {
                    Some((h, p)) => (
                        h.to_owned(),
                        p.parse().map_err(|_| {
                            invalid("relay.smarthost", format!("{p:?} is not a port"))
                        })?,
                    ),
                    None => (s.clone(), file.relay.port),
                };
                Some((host, port))
            }
        };
        let mut dns_servers = Vec::new();
        for (i, s) in file.dns.servers.iter().enumerate() {
            let addr = s
                .parse::<SocketAddr>()
                .or_else(|_| {
                    s.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    invalid(
                        format!("dns.servers[{i}]"),
                        format!("{s:?} is not an address"),
                    )
                })?;
            dns_servers.push(addr);
        }
        if file.limits.recipients == 0 {
            return Err(invalid("limits.recipients", "must be at least 1"));
        }
        if file.limits.received_headers < 100 {
            // RFC 5321 section 6.3: a limit, if any, of at least 100.
            return Err(invalid("limits.received_headers", "must be at least 100"));
        }
        if file.relay.workers == 0 || file.relay.per_domain == 0 {
            return Err(invalid("relay.workers", "must be at least 1"));
        }
        if file.queue.min_retry_secs > file.queue.max_retry_secs {
            return Err(invalid(
                "queue.min_retry_secs",
                "must not exceed queue.max_retry_secs",
            ));
        }
        let tls = file.tls.map(|t| (t.cert, t.key));
        let queue_backend = match (file.queue.backend.as_str(), &file.queue.url) {
            ("spool", None) => QueueBackend::Spool,
            ("spool", Some(_)) => {
                return Err(invalid(
                    "queue.url",
                    "only the postgres backend takes a url",
                ));
            }
            ("postgres", Some(url)) => QueueBackend::Postgres {
                url: url.clone(),
                pool_size: file.queue.pool_size.max(1),
            },
            ("postgres", None) => {
                return Err(invalid("queue.url", "the postgres backend needs a url"));
            }
            (other, _) => {
                return Err(invalid(
                    "queue.backend",
                    format!("{other:?} is not \"spool\" or \"postgres\""),
                ));
            }
        };
        let node = file
            .queue
            .node
            .clone()
            .unwrap_or_else(|| hostname.to_string());
        let config = Config {
            hostname,
            users_file: file
                .users_file
                .unwrap_or_else(|| file.data_dir.join("users")),
            data_dir: file.data_dir,
            listeners,
            tls,
            domains,
            max_message_size: file.limits.message_size,
            max_recipients: file.limits.recipients,
            max_connections: file.limits.connections.max(1),
            metrics: match &file.metrics.address {
                None => None,
                Some(a) => Some(a.parse().map_err(|_| {
                    invalid("metrics.address", format!("{a:?} is not an address:port"))
                })?),
            },
            max_connections_per_ip: file.limits.connections_per_ip.max(1),
            rates: {
                let l = &file.limits;
                crate::rate::RateLimits {
                    connections: l.connection_rate,
                    messages: l.message_rate,
                    recipients: l.recipient_rate,
                    window: Duration::from_secs(l.rate_window_secs.max(1)),
                    user_messages: l.user_message_rate,
                    user_recipients: l.user_recipient_rate,
                    user_window: Duration::from_secs(l.user_rate_window_secs.max(1)),
                }
            },
            max_errors: file.limits.errors.max(1),
            max_received: file.limits.received_headers,
            idle_timeout: Duration::from_secs(file.limits.idle_timeout_secs.max(1)),
            relay_port: file.relay.port,
            smarthost,
            per_domain: file.relay.per_domain,
            workers: file.relay.workers,
            verify_tls: file.relay.verify_tls,
            relay_ca_file: file.relay.ca_file.clone(),
            tls_rpt: file
                .relay
                .tls_rpt
                .then(|| Duration::from_secs(file.relay.tls_rpt_interval_secs.max(1))),
            relay_timeouts: {
                let secs = |s: u64| Duration::from_secs(s.max(1));
                let r = &file.relay;
                let mut t = postel_session::client::Timeouts::default();
                t.greeting = secs(r.greeting_timeout_secs);
                t.mail = secs(r.mail_timeout_secs);
                t.rcpt = secs(r.rcpt_timeout_secs);
                t.data = secs(r.data_timeout_secs);
                t.data_block = secs(r.data_block_timeout_secs);
                t.final_dot = secs(r.final_dot_timeout_secs);
                t
            },
            connection_timeout: Duration::from_secs(file.relay.connection_timeout_secs.max(1)),
            messages_per_connection: file.relay.messages_per_connection.max(1),
            connection_idle: Duration::from_secs(file.relay.connection_idle_secs),
            dns_servers,
            dns_timeout: Duration::from_secs(file.dns.timeout_secs.unwrap_or(5).max(1)),
            dnssec: match (file.dns.dnssec, file.dns.trust_anchor) {
                (false, None) => postel_mx::Dnssec::Off,
                (false, Some(_)) => {
                    return Err(invalid("dns.trust_anchor", "needs dns.dnssec = true"));
                }
                (true, trust_anchor) => postel_mx::Dnssec::Validate { trust_anchor },
            },
            lifetime: Duration::from_secs(file.queue.lifetime_secs),
            min_retry: Duration::from_secs(file.queue.min_retry_secs),
            max_retry: Duration::from_secs(file.queue.max_retry_secs),
            delay_warning: (file.queue.delay_warning_secs > 0)
                .then(|| Duration::from_secs(file.queue.delay_warning_secs)),
            poll: Duration::from_millis(file.queue.poll_ms.max(10)),
            queue_backend,
            lease: Duration::from_secs(file.queue.lease_secs.max(1)),
            node,
            milters: milter::check(file.milter)?,
            tls_policies: tls_policy::check(file.tls_policy)?,
            authentication: auth::check(file.authentication)?,
            dkim: auth::signer(&file.dkim)?,
            source: None,
        };
        Ok(config)
    }

    /// The local domain `domain` (lower case), if it is one.
    pub fn local_domain(&self, domain: &str) -> Option<&LocalDomain> {
        self.domains
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(domain))
    }

    /// The queue directory.
    pub fn queue_dir(&self) -> PathBuf {
        self.data_dir.join("queue")
    }

    /// The Maildir of a mailbox.
    pub fn maildir(&self, domain: &str, mailbox: &str) -> PathBuf {
        self.data_dir.join("mail").join(domain).join(mailbox)
    }

    /// The control socket of a running server.
    pub fn control_socket(&self) -> PathBuf {
        self.data_dir.join("control.sock")
    }
}

/// The system's host name, or `localhost`.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty() && Domain::try_from(s.as_str()).is_ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

impl LocalDomain {
    /// The mailboxes mail for `local` goes to: itself, an alias's targets, or
    /// the catch-all; empty for an unknown local part. `extra` are users of
    /// the users file at this domain, who have mailboxes too.
    pub fn resolve(&self, local: &str, extra: &[String]) -> Vec<String> {
        let local = local.to_lowercase();
        let known = self.resolve_known(&local, extra);
        if known.is_empty() && self.recipients != RecipientCheck::Mailboxes && !local.is_empty() {
            // The LMTP server is the judge of this local part.
            return vec![local];
        }
        known
    }

    fn resolve_known(&self, local: &str, extra: &[String]) -> Vec<String> {
        let local = local.to_owned();
        if self.mailboxes.contains(&local) || extra.contains(&local) {
            return vec![local];
        }
        if let Some(targets) = self.aliases.get(&local) {
            return targets.clone();
        }
        if local == "postmaster" {
            // RFC 5321 section 4.5.1: postmaster must be accepted; without a
            // mailbox or alias of its own it goes to the first mailbox.
            if let Some(first) = self.mailboxes.first() {
                return vec![first.clone()];
            }
        }
        self.catch_all.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../../../../postel.example.toml");
        let c = Config::parse(text, Path::new("postel.example.toml")).unwrap();
        assert_eq!(c.listeners.len(), 3);
        assert_eq!(c.domains[0].resolve("INFO", &[]), ["alice", "bob"]);
        assert_eq!(c.domains[0].resolve("postmaster", &[]), ["alice"]);
        assert!(c.domains[0].resolve("nobody", &[]).is_empty());
    }

    #[test]
    fn the_embedded_default_is_a_local_server() {
        let c = Config::embedded().unwrap();
        assert_eq!(c.listeners[0].address.to_string(), "127.0.0.1:2525");
        assert_eq!(c.listeners[0].role, Role::Mx);
        assert_eq!(c.data_dir, PathBuf::from("postel-data"));
        assert_eq!(c.domains[0].name, "localhost");
    }

    #[test]
    fn errors_name_the_key() {
        let bad = |text: &str| {
            Config::parse(text, Path::new("t.toml"))
                .unwrap_err()
                .to_string()
        };
        assert!(bad("hostnme = \"x\"").contains("hostnme"), "unknown key");
        let e = bad("[[listener]]\naddress = \"nowhere\"\nrole = \"mx\"");
        assert!(e.contains("listener[0].address"), "{e}");
        let e = bad("[[listener]]\naddress = \"127.0.0.1:25\"\nrole = \"relay\"");
        assert!(e.contains("role") || e.contains("relay"), "{e}");
        let e =
            bad("[[domain]]\nname = \"a.test\"\nmailboxes = [\"a\"]\naliases = { x = [\"b\"] }");
        assert!(e.contains("domain[0].aliases.x"), "{e}");
        let e = bad("[dns]\nservers = [\"dns.example\"]");
        assert!(e.contains("dns.servers[0]"), "{e}");
        let e = bad("[limits]\nrecipients = 0");
        assert!(e.contains("limits.recipients"), "{e}");
        let e = bad("[queue]\nmin_retry_secs = 10\nmax_retry_secs = 5");
        assert!(e.contains("queue.min_retry_secs"), "{e}");
    }
}
