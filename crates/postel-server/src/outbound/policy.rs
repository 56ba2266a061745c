//! Which TLS a delivery uses, and why: REQUIRETLS, the operator's
//! `[[tls_policy]]`, the domain's MTA-STS policy, `verify_tls`, in that
//! order; and the trust anchors verified TLS uses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use postel_proto::types::Reply;
use postel_session::client::TlsPolicy;

use super::{Delivery, mta_sts, reply};

/// How one delivery uses TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsChoice {
    /// What the client does about STARTTLS.
    pub(crate) policy: TlsPolicy,
    /// The certificate must verify for the exchanger's name.
    pub(crate) verify: bool,
    /// Accept any certificate but note whether it would verify (MTA-STS
    /// testing mode, for TLS-RPT).
    pub(crate) observe: bool,
    /// The connection may carry other messages to the same address: it
    /// was opened under the policy every message without an override gets.
    pub(crate) shareable: bool,
    /// DANE's TLSA records the certificate must match instead of the
    /// PKIX check (RFC 7672).
    pub(crate) dane: Option<Arc<Vec<postel_mx::Tlsa>>>,
    /// Why, for the log and `postel tls-policy check`.
    pub(crate) why: &'static str,
}

impl TlsChoice {
    /// The TLS that delivery of a message to `domain` uses: REQUIRETLS
    /// first (verified TLS, and the client refuses it without TLS, 5.7.30),
    /// then the operator's `[[tls_policy]]`, then the domain's MTA-STS
    /// policy (`sts`), then `verify_tls`.
    pub(crate) fn decide(
        config: &crate::config::Config,
        domain: &str,
        requiretls: bool,
        sts: Option<&mta_sts::Policy>,
    ) -> TlsChoice {
        use crate::config::TlsMode;
        let choice = |policy, verify, shareable, why| TlsChoice {
            policy,
            verify,
            observe: false,
            shareable,
            dane: None,
            why,
        };
        if requiretls {
            return choice(
                TlsPolicy::Opportunistic,
                true,
                false,
                "the message asked for REQUIRETLS",
            );
        }
        match config.tls_mode(domain) {
            Some(TlsMode::None) => choice(TlsPolicy::Never, false, false, "tls_policy none"),
            Some(TlsMode::Opportunistic) => choice(
                TlsPolicy::Opportunistic,
                false,
                false,
                "tls_policy opportunistic",
            ),
            Some(TlsMode::Encrypt) => {
                choice(TlsPolicy::Required, false, false, "tls_policy encrypt")
            }
            Some(TlsMode::Verify) => choice(TlsPolicy::Required, true, false, "tls_policy verify"),
            None if sts.is_some_and(|p| p.mode == mta_sts::Mode::Enforce) => {
                choice(TlsPolicy::Required, true, false, "MTA-STS enforce")
            }
            None if config.verify_tls => {
                choice(TlsPolicy::Required, true, true, "relay.verify_tls")
            }
            // Delivered as without a policy, on a connection of its own that
            // notes what enforcing would have refused, for TLS-RPT.
            None if sts.is_some_and(|p| p.mode == mta_sts::Mode::Testing) => TlsChoice {
                observe: true,
                ..choice(
                    TlsPolicy::Opportunistic,
                    false,
                    false,
                    "MTA-STS testing: not enforced",
                )
            },
            None => choice(TlsPolicy::Opportunistic, false, true, "the default"),
        }
    }
}

impl TlsChoice {
    /// The choice for an exchanger DANE governs: TLS is mandatory, and
    /// authenticated by the TLSA records when there are usable ones. DANE
    /// is verified TLS, as REQUIRETLS asks (RFC 8689 section 4.2.1); a
    /// REQUIRETLS message keeps the PKIX check where no record is usable.
    pub(crate) fn under_dane(&self, dane: &super::dane::HostDane) -> TlsChoice {
        use super::dane::HostDane;
        match dane {
            HostDane::Records(records) => TlsChoice {
                policy: TlsPolicy::Required,
                verify: false,
                observe: false,
                shareable: false,
                dane: Some(Arc::clone(records)),
                why: "DANE",
            },
            HostDane::Unusable if !self.verify => TlsChoice {
                policy: TlsPolicy::Required,
                verify: false,
                observe: false,
                shareable: false,
                dane: None,
                why: "DANE: no usable TLSA record, TLS unauthenticated",
            },
            _ => self.clone(),
        }
    }
}

/// What DANE says of each exchanger of a domain, by name; empty when it
/// says nothing (validation off, the operator's policy decides, or the
/// domain's MX records did not validate).
pub(crate) type DaneHosts = HashMap<String, super::dane::HostDane>;

/// The TLS delivery to a domain uses, the exchangers it may use, and the
/// MTA-STS policy that applied.
type TlsFor = (
    TlsChoice,
    Vec<(String, Vec<SocketAddr>)>,
    Option<mta_sts::Policy>,
);

/// The certificates verified TLS trusts: the system's, and `[relay]
/// ca_file`'s.
pub(crate) fn trust_anchors(c: &crate::config::Config) -> rustls::RootCertStore {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let files = std::iter::once(std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"))
        .chain(c.relay_ca_file.as_deref());
    for file in files {
        if let Ok(certs) = CertificateDer::pem_file_iter(file) {
            for cert in certs.flatten() {
                let _ = roots.add(cert);
            }
        }
    }
    roots
}

impl Delivery {
    /// The TLS delivery to `domain` uses, and the exchangers it may use:
    /// under an enforced MTA-STS policy only those the policy names (RFC
    /// 8461 section 4.1), the refusal when none is left. The domain's
    /// policy counts where neither the message (REQUIRETLS) nor the
    /// operator decided, and mail goes by MX.
    pub(super) async fn tls_for(
        &self,
        domain: &str,
        requiretls: bool,
        mut targets: Vec<(String, Vec<SocketAddr>)>,
        dane: &DaneHosts,
    ) -> Result<TlsFor, Reply<'static>> {
        let config = self.shared.config();
        // DANE takes precedence over MTA-STS (RFC 8461 section 2).
        let dane_applies = dane.values().any(super::dane::HostDane::applies);
        let sts = match &self.resolver {
            Some(resolver)
                if config.smarthost.is_none()
                    && !requiretls
                    && !dane_applies
                    && config.tls_mode(domain).is_none() =>
            {
                let (policy, failed) = self.mta_sts.policy_reporting(resolver, domain).await;
                if let Some(why) = failed {
                    self.count_fetch_failure(domain, policy.as_ref(), why);
                }
                policy
            }
            _ => None,
        };
        if let Some(policy) = sts.as_ref().filter(|p| p.mode == mta_sts::Mode::Enforce) {
            targets.retain(|(name, _)| policy.matches(name));
            if targets.is_empty() {
                let why = format!("No exchanger of {domain} matches its MTA-STS policy");
                return Err(reply(451, (4, 7, 5), &why));
            }
        }
        let choice = TlsChoice::decide(&config, domain, requiretls, sts.as_ref());
        Ok((choice, targets, sts))
    }
}

impl Delivery {
    /// What DANE says of each of `domain`'s exchangers (see [`DaneHosts`]);
    /// the reply to defer with when the domain's DNSSEC status cannot be
    /// had.
    pub(super) async fn dane_hosts(
        &self,
        domain: &str,
        targets: &[(String, Vec<SocketAddr>)],
    ) -> Result<DaneHosts, Reply<'static>> {
        let config = self.shared.config();
        let mut hosts = DaneHosts::new();
        let Some(resolver) = self.resolver.as_ref().filter(|r| r.validates()) else {
            return Ok(hosts);
        };
        if config.smarthost.is_some() || config.tls_mode(domain).is_some() {
            return Ok(hosts);
        }
        match super::dane::domain_secure(resolver, domain).await {
            Ok(true) => {}
            Ok(false) => return Ok(hosts),
            Err(e) => {
                let why = format!("DNSSEC status of {domain} unknown: {e}");
                return Err(reply(451, (4, 7, 5), &why));
            }
        }
        for (name, _) in targets {
            let dane = super::dane::for_host(resolver, name).await;
            hosts.insert(name.clone(), dane);
        }
        Ok(hosts)
    }
}
