//! The checks at the end of data: every DKIM signature (RFC 6376, RFC 8463),
//! the ARC chain (RFC 8617) and DMARC (RFC 7489, with RFC 9989's tree walk
//! and test mode), written up as one Authentication-Results field (RFC 8601).

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult};

use crate::results::{MethodResult, authentication_results};

use crate::Authenticator;
use crate::spf::SessionSpf;

/// A method's result, as Authentication-Results names it (RFC 8601
/// section 2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Nothing to check (no signature, no record).
    None,
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// A signature that could not be judged (e.g. a malformed one).
    Neutral,
    /// A DNS failure that may clear up.
    TempError,
    /// A permanent error in the records or the signature.
    PermError,
}

impl Outcome {
    /// The result's name in Authentication-Results.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::None => "none",
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Neutral => "neutral",
            Outcome::TempError => "temperror",
            Outcome::PermError => "permerror",
        }
    }

    fn of_dkim(r: &DkimResult) -> Self {
        match r {
            DkimResult::Pass => Outcome::Pass,
            DkimResult::Neutral(_) => Outcome::Neutral,
            DkimResult::Fail(_) => Outcome::Fail,
            DkimResult::PermError(_) => Outcome::PermError,
            DkimResult::TempError(_) => Outcome::TempError,
            DkimResult::None => Outcome::None,
        }
    }

    fn of_dmarc(r: &DmarcResult) -> Self {
        match r {
            DmarcResult::Pass => Outcome::Pass,
            DmarcResult::Fail(_) => Outcome::Fail,
            DmarcResult::TempError(_) => Outcome::TempError,
            DmarcResult::PermError(_) => Outcome::PermError,
            DmarcResult::None => Outcome::None,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the author domain asks for mail that fails DMARC (its `p=`, or
/// `sp=` for a subdomain, one level lower under `t=y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DmarcPolicy {
    /// `none`, or no usable record.
    None,
    /// `quarantine`.
    Quarantine,
    /// `reject`.
    Reject,
}

/// One DKIM signature's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimCheck {
    /// The result.
    pub outcome: Outcome,
    /// The signing domain (`d=`), empty if the signature could not be read.
    pub domain: String,
    /// The selector (`s=`).
    pub selector: String,
    /// The algorithm (`a=`), e.g. `rsa-sha256`, `ed25519-sha256`.
    pub algorithm: String,
    /// Why it did not pass.
    pub reason: Option<String>,
}

/// The DMARC evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcCheck {
    /// The overall result: pass if SPF or DKIM passed aligned.
    pub outcome: Outcome,
    /// The author domain (the From header's).
    pub domain: String,
    /// What the domain asks for failing mail.
    pub policy: DmarcPolicy,
    /// Whether an aligned SPF pass took part.
    pub spf_aligned: bool,
    /// Whether an aligned DKIM pass took part.
    pub dkim_aligned: bool,
}

/// Everything checked at the end of data, and the header that records it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Each DKIM signature, in the message's order.
    pub dkim: Vec<DkimCheck>,
    /// The ARC chain (`none` without ARC sets).
    pub arc: Outcome,
    /// DMARC.
    pub dmarc: DmarcCheck,
    header: String,
}

impl Verdict {
    /// The Authentication-Results field, name to final CRLF, to prepend to
    /// the message.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The policy to apply: `Some` when DMARC failed and the domain asks
    /// for quarantine or rejection.
    pub fn dmarc_failure(&self) -> Option<DmarcPolicy> {
        match (self.dmarc.outcome, self.dmarc.policy) {
            (Outcome::Fail, p @ (DmarcPolicy::Quarantine | DmarcPolicy::Reject)) => Some(p),
            _ => None,
        }
    }

    /// Whether a DNS failure that may clear up kept DMARC from a verdict:
    /// its record could not be read, or it failed while a signature's key
    /// could not be read.
    pub fn temporary(&self) -> bool {
        self.dmarc.outcome == Outcome::TempError
            || (self.dmarc.outcome == Outcome::Fail
                && self.dkim.iter().any(|d| d.outcome == Outcome::TempError))
    }
}

impl Authenticator {
    /// Verifies a message as it arrived (header section and body, without
    /// this server's trace fields) from a session whose SPF checks were
    /// `spf`; `spf` is `None` for a session whose SPF was not checked.
    ///
    /// ```no_run
    /// # async fn f(message: &[u8]) -> Result<(), postel_auth::AuthError> {
    /// use postel_auth::{Authenticator, DmarcPolicy};
    /// use postel_mx::DnsConfig;
    ///
    /// let auth = Authenticator::new(&DnsConfig::default(), "mx.example.net")?;
    /// let ip = "192.0.2.1".parse().unwrap();
    /// let spf = auth.session_spf(ip, "mail.example.com", "alice@example.com").await;
    /// let verdict = auth.verify(message, Some(&spf)).await;
    /// if verdict.dmarc_failure() == Some(DmarcPolicy::Reject) {
    ///     println!("550 5.7.1 rejected by the domain's DMARC policy");
    /// }
    /// print!("{}", verdict.header());
    /// # Ok(()) }
    /// ```
    pub async fn verify(&self, message: &[u8], spf: Option<&SessionSpf>) -> Verdict {
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return self.unreadable(spf);
        };
        let dkim = self.inner.verify_dkim(&parsed).await;
        let arc = self.inner.verify_arc(&parsed).await;
        let no_spf = mail_auth::SpfOutput::new(String::new());
        let (spf_output, spf_domain) = match spf {
            Some(s) => (&s.mail_from_result.output, s.mail_from_domain()),
            None => (&no_spf, ""),
        };
        let dmarc = self
            .inner
            .verify_dmarc(DmarcParameters::new(&parsed, &dkim, spf_domain, spf_output))
            .await;

        let checks: Vec<DkimCheck> = dkim.iter().map(DkimCheck::of).collect();
        let mut results = spf.map(spf_results).unwrap_or_default();
        if checks.is_empty() {
            results.push(MethodResult {
                method: "dkim",
                result: "none",
                reason: None,
                properties: Vec::new(),
            });
        }
        for (check, output) in checks.iter().zip(&dkim) {
            let mut properties = Vec::new();
            if let Some(sig) = output.signature() {
                properties.push(("header.d", sig.d.clone()));
                properties.push(("header.s", sig.s.clone()));
                properties.push(("header.a", check.algorithm.clone()));
                let b = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sig.b);
                properties.push(("header.b", b.chars().take(8).collect()));
            }
            results.push(MethodResult {
                method: "dkim",
                result: check.outcome.as_str(),
                reason: check.reason.clone(),
                properties,
            });
        }
        let arc_outcome = Outcome::of_dkim(arc.result());
        if !parsed.as_headers.is_empty() || !parsed.ams_headers.is_empty() {
            results.push(MethodResult {
                method: "arc",
                result: arc_outcome.as_str(),
                reason: error_of(arc.result()),
                properties: Vec::new(),
            });
        }
        let dmarc_outcome = Outcome::of_dmarc(&dmarc.result());
        let policy = match dmarc.policy() {
            mail_auth::dmarc::Policy::Reject => DmarcPolicy::Reject,
            mail_auth::dmarc::Policy::Quarantine => DmarcPolicy::Quarantine,
            mail_auth::dmarc::Policy::None | mail_auth::dmarc::Policy::Unspecified => {
                DmarcPolicy::None
            }
        };
        if !dmarc.domain().is_empty() {
            results.push(MethodResult {
                method: "dmarc",
                result: dmarc_outcome.as_str(),
                reason: None,
                properties: vec![
                    ("header.from", dmarc.domain().to_owned()),
                    ("policy.dmarc", policy_name(policy).to_owned()),
                ],
            });
        }
        let header = authentication_results(&self.authserv_id, &results);
        Verdict {
            dkim: checks,
            arc: arc_outcome,
            dmarc: DmarcCheck {
                outcome: dmarc_outcome,
                domain: dmarc.domain().to_owned(),
                policy,
                spf_aligned: *dmarc.spf_result() == DmarcResult::Pass,
                dkim_aligned: *dmarc.dkim_result() == DmarcResult::Pass,
            },
            header,
        }
    }

    /// The verdict on a message with no header section to read.
    fn unreadable(&self, spf: Option<&SessionSpf>) -> Verdict {
        let mut results = spf.map(spf_results).unwrap_or_default();
        results.push(MethodResult {
            method: "dkim",
            result: "permerror",
            reason: Some("no header section".into()),
            properties: Vec::new(),
        });
        Verdict {
            dkim: Vec::new(),
            arc: Outcome::None,
            dmarc: DmarcCheck {
                outcome: Outcome::None,
                domain: String::new(),
                policy: DmarcPolicy::None,
                spf_aligned: false,
                dkim_aligned: false,
            },
            header: authentication_results(&self.authserv_id, &results),
        }
    }
}

/// The SPF lines: MAIL FROM's (unless the reverse-path was null), HELO's.
fn spf_results(s: &SessionSpf) -> Vec<MethodResult> {
    let mut out = Vec::new();
    let line = |spf: &crate::spf::Spf, property: &'static str, value: &str| MethodResult {
        method: "spf",
        result: spf.result().as_str(),
        reason: spf.problem().map(str::to_owned),
        properties: vec![(property, value.to_owned())],
    };
    if !s.mail_from.is_empty() {
        out.push(line(&s.mail_from_result, "smtp.mailfrom", &s.mail_from));
    }
    if !s.helo.is_empty() {
        out.push(line(&s.helo_result, "smtp.helo", &s.helo));
    }
    out
}

fn policy_name(p: DmarcPolicy) -> &'static str {
    match p {
        DmarcPolicy::None => "none",
        DmarcPolicy::Quarantine => "quarantine",
        DmarcPolicy::Reject => "reject",
    }
}

fn error_of(r: &DkimResult) -> Option<String> {
    match r {
        DkimResult::Pass | DkimResult::None => None,
        DkimResult::Neutral(e)
        | DkimResult::Fail(e)
        | DkimResult::PermError(e)
        | DkimResult::TempError(e) => Some(e.to_string()),
    }
}

impl DkimCheck {
    fn of(d: &mail_auth::DkimOutput<'_>) -> DkimCheck {
        DkimCheck {
            outcome: Outcome::of_dkim(d.result()),
            reason: error_of(d.result()),
            domain: d.signature().map(|s| s.d.clone()).unwrap_or_default(),
            selector: d.signature().map(|s| s.s.clone()).unwrap_or_default(),
            algorithm: d
                .signature()
                .map(|s| algorithm_name(s.a).to_owned())
                .unwrap_or_default(),
        }
    }
}

fn algorithm_name(a: mail_auth::common::crypto::Algorithm) -> &'static str {
    use mail_auth::common::crypto::Algorithm;
    match a {
        Algorithm::RsaSha1 => "rsa-sha1",
        Algorithm::RsaSha256 => "rsa-sha256",
        Algorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}
