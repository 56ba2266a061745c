//! The [`Resolver`] on hickory-resolver: the system's name servers or given
//! ones, UDP with TCP fallback, with hickory's cache (positive answers no
//! longer than their TTL, negative ones per RFC 2308).
//!
//! hickory's resolver runs on tokio: call it from within a tokio runtime.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use hickory_proto::dnssec::{Proof, TrustAnchors};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::{DnsError, NetError};

use crate::resolver::{Answer, DnsFailure, MxRecord, Resolver};

/// A [`Resolver`] backed by hickory-resolver.
#[derive(Clone)]
pub struct HickoryResolver {
    inner: TokioResolver,
    validates: bool,
}

impl std::fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HickoryResolver")
    }
}

/// Why a resolver could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the DNS resolver: {0}")]
pub struct BuildError(String);

/// Which name servers to ask and how patiently: the one resolver
/// configuration every DNS user in a process shares (MX routing here, SPF,
/// DKIM and DMARC in postel-auth), so that a test or an operator points all
/// of them at the same servers.
///
/// ```
/// use postel_mx::DnsConfig;
/// use std::time::Duration;
///
/// let config = DnsConfig {
///     servers: vec!["127.0.0.1:5353".parse().unwrap()],
///     timeout: Duration::from_secs(2),
///     attempts: 1,
///     ..DnsConfig::default()
/// };
/// let (servers, options) = config.hickory().unwrap();
/// assert_eq!(servers.name_servers().len(), 1);
/// assert_eq!(options.timeout, Duration::from_secs(2));
/// assert_eq!(options.ndots, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Name servers (address and port), asked over UDP with TCP for
    /// truncated answers; empty for the system's (`/etc/resolv.conf`).
    pub servers: Vec<SocketAddr>,
    /// How long to wait for each answer.
    pub timeout: std::time::Duration,
    /// How many times to ask (at least once).
    pub attempts: usize,
    /// Whether [`HickoryResolver`] validates answers under DNSSEC (DANE
    /// needs it). Other users of the configuration ignore it.
    pub dnssec: Dnssec,
}

/// DNSSEC validation of a [`HickoryResolver`]'s answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Dnssec {
    /// Answers are taken as they come; every one is [`Security::Insecure`].
    #[default]
    Off,
    /// Every answer is validated: one whose signatures do not verify is
    /// [`DnsFailure::Bogus`], a validated one [`Security::Secure`], one from
    /// a zone proven unsigned [`Security::Insecure`].
    Validate {
        /// A file of DNSKEY records (zone file syntax) to trust; the root
        /// zone's published keys when `None`. Every key of a zone's
        /// DNSKEY set must be listed for a zone other than the root.
        trust_anchor: Option<PathBuf>,
    },
}

/// Whether an answer validated under DNSSEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Every record of the answer validated from a trust anchor.
    Secure,
    /// Not validated: the zone is unsigned, or validation is off.
    Insecure,
}

/// A TLSA record (RFC 6698 section 2.1): which certificate a TLS server
/// must present, as four fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// Certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// Selector: 0 the whole certificate, 1 its `SubjectPublicKeyInfo`.
    pub selector: u8,
    /// Matching type: 0 the selected octets, 1 their SHA-256, 2 SHA-512.
    pub matching: u8,
    /// The certificate association data.
    pub data: Vec<u8>,
}

impl Default for DnsConfig {
    /// The system's name servers, hickory's patience (5 s, 2 attempts).
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            timeout: std::time::Duration::from_secs(5),
            attempts: 2,
            dnssec: Dnssec::Off,
        }
    }
}

impl DnsConfig {
    /// The configuration as hickory-resolver takes it, with no search
    /// domains applied (`ndots` 0): every query is for an absolute name.
    pub fn hickory(&self) -> Result<(ResolverConfig, ResolverOpts), BuildError> {
        let (config, mut options) = if self.servers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| BuildError(e.to_string()))?
        } else {
            let mut config = ResolverConfig::default();
            for server in &self.servers {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                config.add_name_server(NameServerConfig::new(server.ip(), true, vec![udp, tcp]));
            }
            (config, ResolverOpts::default())
        };
        options.ndots = 0;
        if !self.servers.is_empty() {
            options.timeout = self.timeout;
            options.attempts = self.attempts.max(1);
        }
        Ok((config, options))
    }
}

impl HickoryResolver {
    /// A resolver with this configuration.
    pub fn new(config: &DnsConfig) -> Result<Self, BuildError> {
        let (servers, options) = config.hickory()?;
        let mut builder = TokioResolver::builder_with_config(
            servers,
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        )
        .with_options(options);
        let validates = match &config.dnssec {
            Dnssec::Off => false,
            Dnssec::Validate { trust_anchor } => {
                let anchors = match trust_anchor {
                    Some(path) => TrustAnchors::from_file(path)
                        .map_err(|e| BuildError(format!("{}: {e}", path.display())))?,
                    None => TrustAnchors::default(),
                };
                builder = builder.with_trust_anchor(std::sync::Arc::new(anchors));
                true
            }
        };
        let inner = builder.build().map_err(|e| BuildError(e.to_string()))?;
        Ok(HickoryResolver { inner, validates })
    }

    /// Uses the system's configuration (`/etc/resolv.conf`), with no search
    /// domains applied: every query is for an absolute name.
    pub fn system() -> Result<Self, BuildError> {
        Self::new(&DnsConfig::default())
    }

    /// Uses the given name servers (address and port), over UDP with TCP for
    /// truncated answers, with hickory's default timeout (5 s, 2 attempts).
    pub fn with_servers(servers: &[SocketAddr]) -> Result<Self, BuildError> {
        Self::with_servers_and_timeout(servers, std::time::Duration::from_secs(5), 2)
    }

    /// Like [`HickoryResolver::with_servers`], with the time to wait for each
    /// answer and the number of attempts.
    pub fn with_servers_and_timeout(
        servers: &[SocketAddr],
        timeout: std::time::Duration,
        attempts: usize,
    ) -> Result<Self, BuildError> {
        Self::new(&DnsConfig {
            servers: servers.to_vec(),
            timeout,
            attempts,
            dnssec: Dnssec::Off,
        })
    }

    /// Follows the CNAME chain from `name`, at most 8 links; the last name.
    async fn canonical_name(&self, name: &str) -> Result<String, DnsFailure> {
        let mut current = name.to_owned();
        let mut seen = vec![current.clone()];
        for _ in 0..8 {
            let absolute = format!("{current}.");
            let target = match self
                .inner
                .lookup(absolute.as_str(), RecordType::CNAME)
                .await
            {
                Ok(lookup) => lookup.answers().iter().find_map(|r| match &r.data {
                    RData::CNAME(c) => Some(canonical(&c.0.to_ascii())),
                    _ => None,
                }),
                Err(e) => match negative(&e, &current) {
                    Negative::Failure(f) => return Err(f),
                    _ => None,
                },
            };
            let Some(target) = target else {
                return Ok(current);
            };
            if seen.contains(&target) {
                return Err(DnsFailure::CnameChain);
            }
            seen.push(target.clone());
            current = target;
        }
        Err(DnsFailure::CnameChain)
    }

    async fn ask(&self, name: &str, rtype: RecordType) -> Result<(String, Vec<RData>), Negative> {
        let absolute = format!("{name}.");
        match self.inner.lookup(absolute.as_str(), rtype).await {
            Ok(lookup) => {
                let records = lookup.answers();
                let owner = records
                    .iter()
                    .rev()
                    .find(|r| r.record_type() == rtype)
                    .map_or_else(|| name.to_owned(), |r| canonical(&r.name.to_ascii()));
                let data = records
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                Ok((owner, data))
            }
            Err(e) => Err(negative(&e, name)),
        }
    }
}

/// A negative or failed answer.
enum Negative {
    NoData(String),
    NoSuchName,
    Failure(DnsFailure),
}

fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn negative(e: &NetError, name: &str) -> Negative {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => match no.response_code {
            ResponseCode::NXDomain => Negative::NoSuchName,
            ResponseCode::NoError => Negative::NoData(name.to_owned()),
            ResponseCode::ServFail => Negative::Failure(DnsFailure::ServerFailure),
            ResponseCode::Refused => Negative::Failure(DnsFailure::Refused),
            ResponseCode::FormErr => Negative::Failure(DnsFailure::FormatError),
            other => Negative::Failure(DnsFailure::Other(other.to_string())),
        },
        NetError::Dns(DnsError::Nsec { response, .. }) => {
            if response.response_code == ResponseCode::NXDomain {
                Negative::NoSuchName
            } else {
                Negative::NoData(name.to_owned())
            }
        }
        NetError::Dns(DnsError::DnssecBogus) => Negative::Failure(DnsFailure::Bogus),
        NetError::Dns(DnsError::ResponseCode(code)) => Negative::Failure(match *code {
            ResponseCode::ServFail => DnsFailure::ServerFailure,
            ResponseCode::Refused => DnsFailure::Refused,
            ResponseCode::FormErr => DnsFailure::FormatError,
            other => DnsFailure::Other(other.to_string()),
        }),
        other => {
            let text = other.to_string();
            Negative::Failure(if text.contains("timed out") || text.contains("timeout") {
                DnsFailure::Timeout
            } else {
                DnsFailure::Other(text)
            })
        }
    }
}

impl Negative {
    fn into_answer<T>(self) -> Result<Answer<T>, DnsFailure> {
        match self {
            Negative::NoData(name) => Ok(Answer::NoData { name }),
            Negative::NoSuchName => Ok(Answer::NoSuchName),
            Negative::Failure(f) => Err(f),
        }
    }
}

impl Resolver for HickoryResolver {
    async fn mx(&self, name: &str) -> Result<Answer<MxRecord>, DnsFailure> {
        // With no MX, the implicit MX is the name the CNAME chain ends at.
        let answer = self.ask(name, RecordType::MX).await;
        if let Err(Negative::NoData(_)) = answer {
            return Ok(Answer::NoData {
                name: self.canonical_name(name).await?,
            });
        }
        match answer {
            Ok((owner, data)) => {
                let records = data
                    .into_iter()
                    .filter_map(|d| match d {
                        RData::MX(mx) => Some(MxRecord {
                            preference: mx.preference,
                            exchange: canonical(&mx.exchange.to_ascii()),
                        }),
                        _ => None,
                    })
                    .collect();
                Ok(Answer::Records {
                    name: owner,
                    records,
                })
            }
            Err(n) => n.into_answer(),
        }
    }

    async fn ipv4(&self, name: &str) -> Result<Answer<IpAddr>, DnsFailure> {
        self.addresses(name, RecordType::A).await
    }

    async fn ipv6(&self, name: &str) -> Result<Answer<IpAddr>, DnsFailure> {
        self.addresses(name, RecordType::AAAA).await
    }
}

impl HickoryResolver {
    /// TXT records of `name`, each record's strings joined (RFC 7208
    /// section 3.3, RFC 8461 section 3.1 read them so).
    pub async fn txt(&self, name: &str) -> Result<Answer<Vec<u8>>, DnsFailure> {
        self.records(name, RecordType::TXT, |d| match d {
            RData::TXT(t) => Some(t.txt_data.concat()),
            _ => None,
        })
        .await
    }

    async fn addresses(&self, name: &str, rtype: RecordType) -> Result<Answer<IpAddr>, DnsFailure> {
        self.records(name, rtype, |d| match d {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .await
    }

    /// The records of `rtype` at `name`, each as `pick` reads it.
    async fn records<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(RData) -> Option<T>,
    ) -> Result<Answer<T>, DnsFailure> {
        match self.ask(name, rtype).await {
            Ok((owner, data)) => Ok(Answer::Records {
                name: owner,
                records: data.into_iter().filter_map(pick).collect(),
            }),
            Err(n) => n.into_answer(),
        }
    }
}

impl HickoryResolver {
    /// Whether answers are validated ([`Dnssec::Validate`]).
    pub fn validates(&self) -> bool {
        self.validates
    }

    /// Whether `name`'s MX records validated; `None` when it has none.
    pub async fn mx_security(&self, name: &str) -> Result<Option<Security>, DnsFailure> {
        Ok(self.secured(name, RecordType::MX).await?.map(|(s, _)| s))
    }

    /// Whether `name`'s address records validated, A if it has any, else
    /// AAAA; `None` when it has neither.
    pub async fn address_security(&self, name: &str) -> Result<Option<Security>, DnsFailure> {
        if let Some((security, _)) = self.secured(name, RecordType::A).await? {
            return Ok(Some(security));
        }
        Ok(self.secured(name, RecordType::AAAA).await?.map(|(s, _)| s))
    }

    /// The TLSA records at `name` (`_25._tcp.mx.example.net`), with
    /// whether they validated; none when the name has none. Records whose
    /// signatures do not verify are [`DnsFailure::Bogus`].
    pub async fn tlsa(&self, name: &str) -> Result<(Security, Vec<Tlsa>), DnsFailure> {
        let Some((security, data)) = self.secured(name, RecordType::TLSA).await? else {
            return Ok((Security::Insecure, Vec::new()));
        };
        let records = data
            .into_iter()
            .filter_map(|d| match d {
                RData::TLSA(t) => Some(Tlsa {
                    usage: t.cert_usage.into(),
                    selector: t.selector.into(),
                    matching: t.matching.into(),
                    data: t.cert_data,
                }),
                _ => None,
            })
            .collect();
        Ok((security, records))
    }

    /// The records of `rtype` at `name` and whether every record of the
    /// answer (CNAMEs included) validated; `None` for NODATA or NXDOMAIN.
    async fn secured(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<Option<(Security, Vec<RData>)>, DnsFailure> {
        let absolute = format!("{name}.");
        match self.inner.lookup(absolute.as_str(), rtype).await {
            Ok(lookup) => {
                let answers = lookup.answers();
                let data: Vec<RData> = answers
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                if data.is_empty() {
                    return Ok(None);
                }
                if answers.iter().any(|r| r.proof == Proof::Bogus) {
                    return Err(DnsFailure::Bogus);
                }
                let secure = self.validates
                    && answers
                        .iter()
                        .filter(|r| !matches!(r.data, RData::DNSSEC(_)))
                        .all(|r| r.proof == Proof::Secure);
                let security = if secure {
                    Security::Secure
                } else {
                    Security::Insecure
                };
                Ok(Some((security, data)))
            }
            Err(e) => match negative(&e, name) {
                Negative::NoData(_) | Negative::NoSuchName => Ok(None),
                Negative::Failure(f) => Err(f),
            },
        }
    }
}
