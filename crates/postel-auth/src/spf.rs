//! SPF (RFC 7208): the results of `check_host()` for the two identities of
//! an SMTP session, HELO and MAIL FROM.

use std::net::IpAddr;

use mail_auth::spf::verify::SpfParameters;

use crate::Authenticator;

/// The result of one SPF check (RFC 7208 section 2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpfResult {
    /// No record, or no valid domain to check.
    None,
    /// The domain says nothing about this client.
    Neutral,
    /// The client is authorized.
    Pass,
    /// The client is not authorized.
    Fail,
    /// Probably not authorized (`~all`).
    SoftFail,
    /// A DNS failure that may clear up: try later.
    TempError,
    /// The domain's records cannot be interpreted.
    PermError,
}

impl SpfResult {
    /// The result's name in RFC 7208 and in Authentication-Results (RFC 8601
    /// section 2.7.2).
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

impl std::fmt::Display for SpfResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<mail_auth::SpfResult> for SpfResult {
    fn from(r: mail_auth::SpfResult) -> Self {
        match r {
            mail_auth::SpfResult::Pass => SpfResult::Pass,
            mail_auth::SpfResult::Fail => SpfResult::Fail,
            mail_auth::SpfResult::SoftFail => SpfResult::SoftFail,
            mail_auth::SpfResult::Neutral => SpfResult::Neutral,
            mail_auth::SpfResult::TempError => SpfResult::TempError,
            mail_auth::SpfResult::PermError => SpfResult::PermError,
            mail_auth::SpfResult::None => SpfResult::None,
        }
    }
}

/// One identity's check: the result and what came with it.
#[derive(Debug, Clone)]
pub struct Spf {
    pub(crate) output: mail_auth::SpfOutput,
    /// Why the record was refused, for a `permerror` found here.
    pub(crate) problem: Option<String>,
}

impl Spf {
    fn none(domain: &str) -> Spf {
        Spf {
            output: mail_auth::SpfOutput::new(domain.to_owned())
                .with_result(mail_auth::SpfResult::None),
            problem: None,
        }
    }

    /// The result.
    pub fn result(&self) -> SpfResult {
        self.output.result().into()
    }

    /// The domain that was checked.
    pub fn domain(&self) -> &str {
        self.output.domain()
    }

    /// Why the domain's record was refused (`permerror`), when this crate
    /// found it malformed.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// The domain's explanation of a `fail` (its `exp=` modifier, expanded).
    pub fn explanation(&self) -> Option<&str> {
        self.output.explanation()
    }
}

/// The SPF checks of one transaction: the HELO identity, and the MAIL FROM
/// identity (for the null reverse-path, the HELO identity stands for it,
/// as RFC 7208 section 2.4 says).
#[derive(Debug, Clone)]
pub struct SessionSpf {
    pub(crate) ip: IpAddr,
    pub(crate) helo: String,
    pub(crate) helo_result: Spf,
    pub(crate) mail_from: String,
    pub(crate) mail_from_result: Spf,
}

impl SessionSpf {
    /// The client the checks were for.
    pub fn client(&self) -> IpAddr {
        self.ip
    }

    /// The HELO identity's check.
    pub fn helo(&self) -> &Spf {
        &self.helo_result
    }

    /// The MAIL FROM identity's check.
    pub fn mail_from(&self) -> &Spf {
        &self.mail_from_result
    }

    /// The domain the MAIL FROM check was for: the reverse-path's, or the
    /// HELO name's for the null reverse-path.
    pub fn mail_from_domain(&self) -> &str {
        self.mail_from
            .rsplit_once('@')
            .map_or(self.helo.as_str(), |(_, d)| d)
    }

    /// Whether either check ended in a DNS failure that may clear up.
    pub fn temporary(&self) -> bool {
        self.helo_result.result() == SpfResult::TempError
            || self.mail_from_result.result() == SpfResult::TempError
    }
}

/// Why `record` is not an SPF record RFC 7208's grammar accepts (section
/// 12), or `None` when it is one: the check made before a domain's record
/// is evaluated.
///
/// ```
/// use postel_auth::spf::record_problem;
///
/// assert_eq!(record_problem(b"v=spf1 ip4:192.0.2.0/24 mx -all"), None);
/// assert!(record_problem(b"v=spf1 ip4:192.0.2.0/33 -all").is_some());
/// assert!(record_problem(b"v=spf1 a:example.-com").is_some());
/// assert!(record_problem(b"v=spf2 -all").is_some());
/// ```
pub fn record_problem(record: &[u8]) -> Option<String> {
    if crate::spf_syntax::spf_records(&[record.to_vec()]).is_empty() {
        return Some("not an SPF record: it does not start with v=spf1".into());
    }
    crate::spf_syntax::check(record).err().map(|e| e.0)
}

/// Whether `domain` is a name `check_host()` can look up: RFC 7208 section
/// 4.3 gives `none` without a query for one that is not a fully qualified
/// domain name (an address literal, an empty or over-long label, no dot).
fn checkable(domain: &str) -> bool {
    let name = domain.strip_suffix('.').unwrap_or(domain);
    name.len() <= 253
        && name.contains('.')
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63)
        && !name.starts_with('[')
}

/// An IPv4-mapped IPv6 client is the IPv4 client it stands for (RFC 7208
/// section 5: `<ip>` is compared as the address family it really has).
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

impl Authenticator {
    /// `permerror` when `domain` publishes more than one SPF record (RFC
    /// 7208 section 4.5) or one its grammar refuses; `None` to evaluate
    /// (a DNS failure here is left to the evaluation, which reports it).
    /// The answer comes from the resolver's cache when mail-auth asks again.
    async fn record_refused(&self, domain: &str) -> Option<Spf> {
        use mail_auth::hickory_resolver::proto::rr::{Name, RData};
        let name = Name::from_str_relaxed(format!("{}.", domain.trim_end_matches('.'))).ok()?;
        let lookup = self.inner.0.txt_lookup(name).await.ok()?;
        let txt: Vec<Vec<u8>> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(t.txt_data.concat()),
                _ => None,
            })
            .collect();
        let why = match crate::spf_syntax::spf_records(&txt)[..] {
            [] => return None,
            [one] => crate::spf_syntax::check(one).err()?.0,
            _ => "more than one SPF record".to_owned(),
        };
        let output = mail_auth::SpfOutput::new(domain.to_owned())
            .with_result(mail_auth::SpfResult::PermError);
        Some(Spf {
            output,
            problem: Some(why),
        })
    }

    /// `check_host()` for the HELO identity (RFC 7208 section 2.3): the
    /// name `helo` checked for a client at `ip`, with
    /// `postmaster@helo` as `<sender>`.
    pub async fn check_helo(&self, ip: IpAddr, helo: &str) -> Spf {
        if !checkable(helo) {
            return Spf::none(helo);
        }
        if let Some(broken) = self.record_refused(helo).await {
            return broken;
        }
        let ip = unmapped(ip);
        let params = SpfParameters::verify_ehlo(ip, helo, &self.authserv_id);
        Spf {
            output: self.inner.verify_spf(params).await,
            problem: None,
        }
    }

    /// `check_host()` for the MAIL FROM identity (RFC 7208 section 2.4):
    /// the domain of `sender` checked for a client at `ip` that said
    /// `helo`; for the null reverse-path (`sender` empty), `helo`'s, with
    /// `postmaster@helo` as `<sender>`.
    pub async fn check_mail_from(&self, ip: IpAddr, helo: &str, sender: &str) -> Spf {
        if sender.is_empty() {
            return self.check_helo(ip, helo).await;
        }
        let domain = sender.rsplit_once('@').map_or(helo, |(_, d)| d);
        if !checkable(domain) {
            return Spf::none(domain);
        }
        if let Some(broken) = self.record_refused(domain).await {
            return broken;
        }
        let ip = unmapped(ip);
        let params = SpfParameters::verify_mail_from(ip, helo, &self.authserv_id, sender);
        Spf {
            output: self.inner.verify_spf(params).await,
            problem: None,
        }
    }

    /// The SPF checks of a transaction from `ip` that said `helo` and gave
    /// `mail_from` (empty for the null reverse-path) at MAIL.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), postel_auth::AuthError> {
    /// use postel_auth::{Authenticator, SpfResult};
    /// use postel_mx::DnsConfig;
    ///
    /// let auth = Authenticator::new(&DnsConfig::default(), "mx.example.net")?;
    /// let ip = "192.0.2.1".parse().unwrap();
    /// let spf = auth.session_spf(ip, "mail.example.com", "alice@example.com").await;
    /// if spf.mail_from().result() == SpfResult::Fail {
    ///     println!("not authorized: {:?}", spf.mail_from().explanation());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn session_spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> SessionSpf {
        let helo_result = self.check_helo(ip, helo).await;
        let mail_from_result = if mail_from.is_empty() {
            helo_result.clone()
        } else {
            self.check_mail_from(ip, helo, mail_from).await
        };
        SessionSpf {
            ip,
            helo: helo.to_owned(),
            helo_result,
            mail_from: mail_from.to_owned(),
            mail_from_result,
        }
    }
}
