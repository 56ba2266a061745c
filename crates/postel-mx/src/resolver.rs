//! The DNS questions the MX algorithm asks, as a trait, so that callers and
//! tests can plug in another resolver.

use std::future::Future;
use std::net::IpAddr;

/// The answer to one question for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// Records of the asked type. `name` is the owner after following CNAMEs:
    /// the name that replaces the domain for what follows (RFC 5321 section 5.1).
    Records {
        /// The canonical name.
        name: String,
        /// The records, in the order the server gave them.
        records: Vec<T>,
    },
    /// The name exists but has no record of this type (NOERROR, NODATA).
    NoData {
        /// The canonical name.
        name: String,
    },
    /// The name does not exist (NXDOMAIN).
    NoSuchName,
}

/// A DNS failure that says nothing about the name: the question may succeed later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsFailure {
    /// SERVFAIL.
    #[error("server failure")]
    ServerFailure,
    /// REFUSED.
    #[error("query refused")]
    Refused,
    /// FORMERR.
    #[error("format error")]
    FormatError,
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// DNSSEC validation failed: the answer's signatures do not verify
    /// from the trust anchor (RFC 4035 section 5.5, "bogus").
    #[error("DNSSEC validation failed")]
    Bogus,
    /// A CNAME chain that loops or is too long.
    #[error("CNAME chain loops or is too long")]
    CnameChain,
    /// The network or the resolver failed otherwise.
    #[error("{0}")]
    Other(String),
}

/// An MX record: preference and exchange, the exchange as an absolute name
/// without the final dot (`"."` for the null MX of RFC 7505 becomes `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxRecord {
    /// Lower is preferred.
    pub preference: u16,
    /// The exchanger's name, lower case, ASCII (A-labels), no final dot.
    pub exchange: String,
}

/// What the MX algorithm needs from DNS. Names are absolute, ASCII and lower
/// case; implementations must not apply search domains.
pub trait Resolver: Send + Sync {
    /// MX records of `name`.
    fn mx(&self, name: &str) -> impl Future<Output = Result<Answer<MxRecord>, DnsFailure>> + Send;
    /// A records of `name`.
    fn ipv4(&self, name: &str) -> impl Future<Output = Result<Answer<IpAddr>, DnsFailure>> + Send;
    /// AAAA records of `name`.
    fn ipv6(&self, name: &str) -> impl Future<Output = Result<Answer<IpAddr>, DnsFailure>> + Send;
}
