//! The route to a domain: which hosts to try, in which order, at which
//! addresses (RFC 5321 section 5.1, RFC 7505).

use std::net::IpAddr;

use postel_proto::types::{AddressLiteral, EnhancedStatus, Host, ReplyCode};

use crate::resolver::{Answer, DnsFailure, MxRecord, Resolver};

/// Which address families to use, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 addresses first, then IPv6.
    Ipv4First,
    /// IPv6 addresses first, then IPv4.
    Ipv6First,
    /// IPv4 only.
    Ipv4Only,
    /// IPv6 only.
    Ipv6Only,
}

/// A null MX mixed with real MX records (RFC 7505 section 3 says a domain must
/// not publish both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixedNullMx {
    /// Treat the domain as accepting no mail.
    Strict,
    /// Ignore the null record and use the others.
    Lenient,
}

/// Options of the route look-up. Defaults follow Postfix where RFC 5321 leaves
/// the choice open.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RouteOptions {
    /// Address family policy. Default: IPv6 first (RFC 6724 ordering).
    pub family: Family,
    /// Most addresses to return over all hosts: 5 (Postfix `smtp_mx_address_limit`).
    pub max_addresses: usize,
    /// Hosts that get an address before any host gets a second one: 2 (Postfix
    /// `smtp_mx_session_limit`), so one host with many addresses cannot take
    /// every attempt.
    pub min_hosts: usize,
    /// Use an exchange that is written as an IP address. RFC 5321 section 5.1
    /// forbids it; off by default.
    pub allow_ip_exchange: bool,
    /// The policy for a null MX among real records. Default: strict.
    pub mixed_null_mx: MixedNullMx,
    /// Treat REFUSED and FORMERR as temporary (default) rather than permanent.
    pub refused_is_temporary: bool,
    /// This host's own names, when relaying: exchangers at or after our own
    /// preference are dropped (RFC 5321 section 5.1), lower case.
    pub local_names: Vec<String>,
    /// This host's own addresses, for the same rule.
    pub local_addresses: Vec<IpAddr>,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            family: Family::Ipv6First,
            max_addresses: 5,
            min_hosts: 2,
            allow_ip_exchange: false,
            mixed_null_mx: MixedNullMx::Strict,
            refused_is_temporary: true,
            local_names: Vec::new(),
            local_addresses: Vec::new(),
        }
    }
}

/// One host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchanger {
    /// Its name (ASCII, lower case), or the address literal as written.
    pub name: String,
    /// MX preference; 0 for the implicit MX.
    pub preference: u16,
    /// Addresses to connect to, in order.
    pub addresses: Vec<IpAddr>,
}

/// Where the mail goes: the hosts in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The hosts, best first; each has at least one address.
    pub exchangers: Vec<Exchanger>,
    /// True when the domain had no MX and its own address is used.
    pub implicit: bool,
}

/// Why there is no route. [`RouteError::is_permanent`] says whether to bounce
/// (permanent) or wait (temporary); the status code is what to report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// NXDOMAIN: the domain does not exist.
    #[error("domain {domain} does not exist")]
    NoSuchDomain {
        /// The domain.
        domain: String,
    },
    /// RFC 7505 null MX: the domain accepts no mail.
    #[error("domain {domain} accepts no mail (null MX)")]
    NullMx {
        /// The domain.
        domain: String,
    },
    /// Every exchanger is this host or worse: the mail would loop.
    #[error("mail for {domain} loops back to this host")]
    Loop {
        /// The domain.
        domain: String,
    },
    /// No exchanger has a usable address.
    #[error("no usable address for the mail exchangers of {domain}")]
    NoAddress {
        /// The domain.
        domain: String,
        /// Whether some look-up failed temporarily.
        temporary: bool,
    },
    /// A DNS failure: try again later.
    #[error("DNS failure for {domain}: {failure}")]
    Dns {
        /// The name being looked up.
        domain: String,
        /// What failed.
        failure: DnsFailure,
        /// Whether to retry (REFUSED and FORMERR can be set to permanent).
        temporary: bool,
    },
    /// The domain is not a valid name.
    #[error("invalid domain {domain}")]
    InvalidDomain {
        /// The domain.
        domain: String,
    },
}

impl RouteError {
    /// True when the mail cannot go there, ever: bounce it.
    pub fn is_permanent(&self) -> bool {
        match self {
            RouteError::NoSuchDomain { .. }
            | RouteError::NullMx { .. }
            | RouteError::Loop { .. }
            | RouteError::InvalidDomain { .. } => true,
            RouteError::NoAddress { temporary, .. } | RouteError::Dns { temporary, .. } => {
                !temporary
            }
        }
    }

    /// The reply code and enhanced status an MTA reports (RFC 3463, RFC 7505).
    pub fn status(&self) -> (ReplyCode, EnhancedStatus) {
        let (code, class, subject, detail) = match self {
            RouteError::NullMx { .. } => (556, 5, 1, 10),
            RouteError::NoSuchDomain { .. } | RouteError::InvalidDomain { .. } => (550, 5, 1, 2),
            RouteError::Loop { .. } => (554, 5, 4, 6),
            RouteError::NoAddress {
                temporary: false, ..
            } => (554, 5, 4, 4),
            RouteError::Dns {
                temporary: false, ..
            } => (554, 5, 4, 3),
            RouteError::NoAddress { .. } | RouteError::Dns { .. } => (451, 4, 4, 3),
        };
        let code = ReplyCode::new(code).unwrap_or(ReplyCode::OK); // ok: constants above
        let enhanced =
            EnhancedStatus::new(class, subject, detail).unwrap_or_else(|| unreachable!()); // ok: constants above
        (code, enhanced)
    }
}

/// Finds the route to `host`, the part of a recipient address after `@`.
///
/// `random` returns an index below its argument; it orders exchangers of equal
/// preference (RFC 5321 section 5.1 requires them in random order). Pass a
/// fixed function in tests.
pub async fn route<R: Resolver>(
    resolver: &R,
    host: &Host<'_>,
    options: &RouteOptions,
    random: &mut (dyn FnMut(usize) -> usize + Send),
) -> Result<Route, RouteError> {
    let domain = match host {
        // Rule 1: an address literal is used as is.
        Host::Literal(literal) => {
            let Some(ip) = literal.ip() else {
                return Err(RouteError::InvalidDomain {
                    domain: literal.to_string(),
                });
            };
            return Ok(Route {
                exchangers: vec![Exchanger {
                    name: AddressLiteral::from(ip).to_string(),
                    preference: 0,
                    addresses: vec![ip],
                }],
                implicit: true,
            });
        }
        Host::Domain(d) => ascii_name(d.as_str())?,
    };
    let dns_error = |name: &str, failure: DnsFailure| {
        let temporary = options.refused_is_temporary
            || !matches!(failure, DnsFailure::Refused | DnsFailure::FormatError);
        RouteError::Dns {
            domain: name.to_owned(),
            failure,
            temporary,
        }
    };
    // Rules 3 to 7: MX first, with its CNAME followed by the resolver.
    let (records, implicit) = match resolver.mx(&domain).await {
        Err(failure) => return Err(dns_error(&domain, failure)),
        Ok(Answer::NoSuchName) => return Err(RouteError::NoSuchDomain { domain }),
        Ok(Answer::NoData { name }) => (
            vec![MxRecord {
                preference: 0,
                exchange: name,
            }],
            true,
        ),
        Ok(Answer::Records { records, .. }) => (records, false),
    };
    let records = null_mx(records, options.mixed_null_mx).ok_or_else(|| RouteError::NullMx {
        domain: domain.clone(),
    })?;
    let mut ordered = order(records, random);

    // Rule 10: when relaying, only exchangers better than this host.
    let local_pref = ordered
        .iter()
        .filter(|r| {
            options
                .local_names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&r.exchange))
        })
        .map(|r| r.preference)
        .min();
    if let Some(local) = local_pref {
        ordered.retain(|r| r.preference < local);
        if ordered.is_empty() {
            return Err(RouteError::Loop { domain });
        }
    }

    // Rule 11: addresses per host, in family order, within the caps.
    let (hosts, any_temporary) = gather(resolver, ordered, options, domain.clone()).await?;
    let exchangers = cap(hosts, options);
    if exchangers.is_empty() {
        return Err(RouteError::NoAddress {
            domain,
            temporary: any_temporary,
        });
    }
    Ok(Route {
        exchangers,
        implicit,
    })
}

/// Rules 10 and 11: each exchanger's addresses, stopping at this host when
/// it is found by address; whether any look-up failed temporarily.
async fn gather<R: Resolver>(
    resolver: &R,
    ordered: Vec<MxRecord>,
    options: &RouteOptions,
    domain: String,
) -> Result<(Vec<(MxRecord, Vec<IpAddr>)>, bool), RouteError> {
    let mut failed: Vec<u16> = Vec::new();
    let mut hosts: Vec<(MxRecord, Vec<IpAddr>)> = Vec::new();
    for record in ordered {
        match addresses(resolver, &record.exchange, options).await {
            Ok(addrs) => {
                if addrs.iter().any(|a| options.local_addresses.contains(a)) {
                    // This host, found by address: it and every exchanger
                    // not better than it would loop (rule 10).
                    let local = record.preference;
                    hosts.retain(|(r, _)| r.preference < local);
                    failed.retain(|p| *p < local);
                    if hosts.is_empty() {
                        return Err(if failed.is_empty() {
                            RouteError::Loop { domain }
                        } else {
                            RouteError::NoAddress {
                                domain,
                                temporary: true,
                            }
                        });
                    }
                    break;
                }
                if !addrs.is_empty() {
                    hosts.push((record, addrs));
                }
            }
            Err(_) => failed.push(record.preference),
        }
    }
    Ok((hosts, !failed.is_empty()))
}

/// Rule 2: the name as DNS compares it: ASCII (A-labels for IDNs), lower case,
/// absolute.
fn ascii_name(domain: &str) -> Result<String, RouteError> {
    let invalid = || RouteError::InvalidDomain {
        domain: domain.to_owned(),
    };
    let name = hickory_proto::rr::Name::from_utf8(domain).map_err(|_| invalid())?;
    let ascii = name.to_ascii().to_ascii_lowercase();
    Ok(ascii.trim_end_matches('.').to_owned())
}

/// Rule 7: a lone null MX means no mail; mixed with others, the policy decides.
fn null_mx(records: Vec<MxRecord>, policy: MixedNullMx) -> Option<Vec<MxRecord>> {
    let nulls = records.iter().filter(|r| r.exchange.is_empty()).count();
    match (nulls, policy) {
        (0, _) => Some(records),
        (_, MixedNullMx::Strict) => None,
        (n, MixedNullMx::Lenient) if n == records.len() => None,
        (_, MixedNullMx::Lenient) => Some(
            records
                .into_iter()
                .filter(|r| !r.exchange.is_empty())
                .collect(),
        ),
    }
}

/// Rule 9: by preference, lowest first; duplicates removed (keeping the best
/// preference); equal preferences shuffled with `random`.
pub fn order(
    records: Vec<MxRecord>,
    random: &mut (dyn FnMut(usize) -> usize + Send),
) -> Vec<MxRecord> {
    let mut records: Vec<MxRecord> = records
        .into_iter()
        .map(|r| MxRecord {
            preference: r.preference,
            exchange: r.exchange.to_ascii_lowercase(),
        })
        .collect();
    records.sort_by(|a, b| {
        a.preference
            .cmp(&b.preference)
            .then_with(|| a.exchange.cmp(&b.exchange))
    });
    let mut seen = std::collections::HashSet::new();
    records.retain(|r| seen.insert(r.exchange.clone()));
    // Fisher-Yates within each run of equal preference.
    let mut start = 0;
    while start < records.len() {
        let pref = records[start].preference;
        let end = start
            + records[start..]
                .iter()
                .take_while(|r| r.preference == pref)
                .count();
        for i in (start + 1..end).rev() {
            let j = start + random(i - start + 1) % (i - start + 1);
            records.swap(i, j);
        }
        start = end;
    }
    records
}

/// Rules 8 and 11: the addresses of one exchanger in family order. An
/// exchange written as an IP address is refused unless allowed. `Err` when a
/// look-up failed temporarily and nothing was found.
async fn addresses<R: Resolver>(
    resolver: &R,
    exchange: &str,
    options: &RouteOptions,
) -> Result<Vec<IpAddr>, DnsFailure> {
    if let Ok(ip) = exchange.parse::<IpAddr>() {
        return Ok(if options.allow_ip_exchange {
            vec![ip]
        } else {
            Vec::new()
        });
    }
    let (v4, v6) = match options.family {
        Family::Ipv4First | Family::Ipv6First => (true, true),
        Family::Ipv4Only => (true, false),
        Family::Ipv6Only => (false, true),
    };
    let mut failure = None;
    let mut collect = |answer: Result<Answer<IpAddr>, DnsFailure>| match answer {
        Ok(Answer::Records { records, .. }) => records,
        Ok(_) => Vec::new(),
        Err(f) => {
            failure = Some(f);
            Vec::new()
        }
    };
    let four = if v4 {
        collect(resolver.ipv4(exchange).await)
    } else {
        Vec::new()
    };
    let six = if v6 {
        collect(resolver.ipv6(exchange).await)
    } else {
        Vec::new()
    };
    let mut all = if options.family == Family::Ipv4First {
        [four, six].concat()
    } else {
        [six, four].concat()
    };
    let mut seen = std::collections::HashSet::new();
    all.retain(|a| seen.insert(*a));
    match failure {
        Some(f) if all.is_empty() => Err(f),
        _ => Ok(all),
    }
}

/// Rule 11's caps: at most `max_addresses` in all; the first `min_hosts` hosts
/// get one address each before any host gets a second; and when both families
/// are in use, neither crowds out the other: if one family was available but
/// none of its addresses made the cut, its first address takes the last place.
fn cap(hosts: Vec<(MxRecord, Vec<IpAddr>)>, options: &RouteOptions) -> Vec<Exchanger> {
    let max = options.max_addresses.max(1);
    // Chosen addresses as (host, address index), in the order they are tried.
    let mut take = vec![0usize; hosts.len()];
    let mut budget = max;
    for (i, (_, addrs)) in hosts.iter().enumerate().take(options.min_hosts) {
        if budget > 0 && !addrs.is_empty() {
            take[i] = 1;
            budget -= 1;
        }
    }
    for (i, (_, addrs)) in hosts.iter().enumerate() {
        let more = addrs.len().saturating_sub(take[i]).min(budget);
        take[i] += more;
        budget -= more;
    }
    let mut chosen: Vec<Vec<IpAddr>> = hosts
        .iter()
        .zip(&take)
        .map(|((_, addrs), &n)| addrs[..n].to_vec())
        .collect();
    if matches!(options.family, Family::Ipv4First | Family::Ipv6First) {
        for want_v4 in [true, false] {
            let is_family = |a: &IpAddr| a.is_ipv4() == want_v4;
            if chosen.iter().flatten().any(is_family) {
                continue;
            }
            let Some((host, addr)) = hosts
                .iter()
                .enumerate()
                .find_map(|(i, (_, addrs))| addrs.iter().find(|a| is_family(a)).map(|a| (i, *a)))
            else {
                continue;
            };
            // Free the last place, unless there is room, then give it away.
            if chosen.iter().map(Vec::len).sum::<usize>() >= max
                && let Some(last) = chosen.iter_mut().rev().find(|c| !c.is_empty())
            {
                last.pop();
            }
            chosen[host].push(addr);
        }
    }
    hosts
        .into_iter()
        .zip(chosen)
        .filter(|(_, c)| !c.is_empty())
        .map(|((record, _), addresses)| Exchanger {
            name: record.exchange,
            preference: record.preference,
            addresses,
        })
        .collect()
}
