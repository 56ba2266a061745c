//! TLS-RPT (RFC 8460): the sessions delivery opened to each recipient
//! domain, counted by outcome under the policy that applied, and once a
//! reporting period is over a report (RFC 8460 section 4) to each domain
//! that asks for one in its `_smtp._tls` TXT record, sent as mail through
//! the queue (section 5.3, `mailto:` addresses; `https:` ones are not
//! posted). The delivery side's counting and sending are here too.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use postel_queue::Queue as _;
use postel_queue::dsn::rfc3339_date as rfc3339;
use postel_queue::model::{NewMessage, NewRecipient};
use tracing::{info, warn};

use serde_json::{Value, json};

/// Why a session's TLS failed, as RFC 8460 section 4.3 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ResultType {
    /// The exchanger offered no STARTTLS where a policy wanted TLS.
    StarttlsNotSupported,
    /// The certificate is not valid for the exchanger's name.
    CertificateHostMismatch,
    /// The certificate has expired.
    CertificateExpired,
    /// The certificate does not chain to a trusted anchor.
    CertificateNotTrusted,
    /// Any other failure of the handshake or of validation.
    ValidationFailure,
    /// The certificate matches none of DANE's TLSA records.
    TlsaInvalid,
    /// The MTA-STS policy could not be fetched.
    StsPolicyFetchError,
    /// The MTA-STS policy fetched is not a policy.
    StsPolicyInvalid,
    /// The policy host's certificate did not verify.
    StsWebpkiInvalid,
}

impl ResultType {
    fn as_str(self) -> &'static str {
        match self {
            ResultType::StarttlsNotSupported => "starttls-not-supported",
            ResultType::CertificateHostMismatch => "certificate-host-mismatch",
            ResultType::CertificateExpired => "certificate-expired",
            ResultType::CertificateNotTrusted => "certificate-not-trusted",
            ResultType::ValidationFailure => "validation-failure",
            ResultType::TlsaInvalid => "tlsa-invalid",
            ResultType::StsPolicyFetchError => "sts-policy-fetch-error",
            ResultType::StsPolicyInvalid => "sts-policy-invalid",
            ResultType::StsWebpkiInvalid => "sts-webpki-invalid",
        }
    }

    /// The result type of a rustls handshake error, by its text (the
    /// Display and Debug forms both name the certificate error).
    pub(crate) fn of_tls_error(error: &str) -> ResultType {
        let e = error.to_ascii_lowercase().replace(' ', "");
        if e.contains("notvalidforname") {
            ResultType::CertificateHostMismatch
        } else if e.contains("expired") {
            ResultType::CertificateExpired
        } else if e.contains("unknownissuer") || e.contains("badsignature") {
            ResultType::CertificateNotTrusted
        } else {
            ResultType::ValidationFailure
        }
    }
}

/// The policy a domain's sessions ran under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyDesc {
    /// `sts`, `tlsa` or `no-policy-found`.
    pub(crate) kind: &'static str,
    /// The policy's lines (for `sts`).
    pub(crate) lines: Vec<String>,
    /// The exchanger patterns (for `sts`), the exchanger (for `tlsa`).
    pub(crate) mx: Vec<String>,
}

#[derive(Debug, Default)]
struct Counts {
    policy: Option<PolicyDesc>,
    successes: u64,
    /// (result type, exchanger, its address) -> sessions.
    failures: BTreeMap<(ResultType, String, String), u64>,
}

/// The counts of the period under way.
pub(crate) struct TlsRpt {
    period: Mutex<(SystemTime, HashMap<String, Counts>)>,
}

impl TlsRpt {
    pub(crate) fn new(now: SystemTime) -> TlsRpt {
        TlsRpt {
            period: Mutex::new((now, HashMap::new())),
        }
    }

    fn with(&self, domain: &str, policy: PolicyDesc, f: impl FnOnce(&mut Counts)) {
        let mut period = self
            .period
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = period.1.entry(domain.to_ascii_lowercase()).or_default();
        counts.policy = Some(policy);
        f(counts);
    }

    /// A session to `domain` that negotiated TLS as its policy asked.
    pub(crate) fn success(&self, domain: &str, policy: PolicyDesc) {
        self.with(domain, policy, |c| c.successes += 1);
    }

    /// A session to `domain` whose TLS failed.
    pub(crate) fn failure(
        &self,
        domain: &str,
        policy: PolicyDesc,
        why: ResultType,
        mx: &str,
        ip: &str,
    ) {
        self.with(domain, policy, |c| {
            *c.failures
                .entry((why, mx.to_owned(), ip.to_owned()))
                .or_default() += 1;
        });
    }

    /// Ends the period at `now`: its start and each domain's report.
    pub(crate) fn take(
        &self,
        now: SystemTime,
        organization: &str,
        contact: &str,
    ) -> Vec<(String, String)> {
        let (start, counts) = {
            let mut period = self
                .period
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let start = period.0;
            period.0 = now;
            (start, std::mem::take(&mut period.1))
        };
        let mut reports: Vec<(String, String)> = counts
            .into_iter()
            .map(|(domain, c)| {
                let report = report(&domain, &c, (start, now), organization, contact);
                (domain, report)
            })
            .collect();
        reports.sort();
        reports
    }
}

/// The JSON report of RFC 8460 section 4.4 for one policy domain.
fn report(
    domain: &str,
    c: &Counts,
    (start, end): (SystemTime, SystemTime),
    organization: &str,
    contact: &str,
) -> String {
    let policy = c.policy.clone().unwrap_or(PolicyDesc {
        kind: "no-policy-found",
        lines: Vec::new(),
        mx: Vec::new(),
    });
    let failed: u64 = c.failures.values().sum();
    let details: Vec<Value> = c
        .failures
        .iter()
        .map(|((why, mx, ip), n)| {
            let mut detail = json!({
                "result-type": why.as_str(),
                "failed-session-count": n,
            });
            // A policy fetch that failed involved no exchanger.
            if !mx.is_empty() {
                detail["receiving-mx-hostname"] = json!(mx);
                detail["receiving-ip"] = json!(ip);
            }
            detail
        })
        .collect();
    let mut policy_json = json!({
        "policy-type": policy.kind,
        "policy-domain": domain,
    });
    // RFC 8460 section 4.4: the policy's lines or the TLSA records, and
    // the exchanger patterns or the exchanger.
    if matches!(policy.kind, "sts" | "tlsa") {
        policy_json["policy-string"] = json!(policy.lines);
        policy_json["mx-host"] = json!(policy.mx);
    }
    let secs = end
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "organization-name": organization,
        "date-range": {
            "start-datetime": rfc3339(start),
            "end-datetime": rfc3339(end),
        },
        "contact-info": contact,
        "report-id": format!("{secs}.{domain}@{organization}"),
        "policies": [{
            "policy": policy_json,
            "summary": {
                "total-successful-session-count": c.successes,
                "total-failure-session-count": failed,
            },
            "failure-details": details,
        }],
    })
    .to_string()
}

/// The policy of sessions under `sts`, or under none.
fn describe_sts(sts: Option<&super::mta_sts::Policy>) -> PolicyDesc {
    match sts {
        Some(p) => PolicyDesc {
            kind: "sts",
            lines: p.lines(),
            mx: p.mx.clone(),
        },
        None => PolicyDesc {
            kind: "no-policy-found",
            lines: Vec::new(),
            mx: Vec::new(),
        },
    }
}

/// The `mailto:` addresses of a `_smtp._tls` record set (RFC 8460 section
/// 3): exactly one record starting with `v=TLSRPTv1`.
pub(crate) fn mailto_addresses(records: &[Vec<u8>]) -> Vec<String> {
    report_uris(records, "mailto:")
        .into_iter()
        .map(|a| a.split('!').next().unwrap_or(&a).to_owned())
        .filter(|a| a.contains('@'))
        .collect()
}

/// The `https:` addresses of a `_smtp._tls` record set.
pub(crate) fn https_addresses(records: &[Vec<u8>]) -> Vec<String> {
    report_uris(records, "https:")
        .into_iter()
        .map(|u| format!("https:{u}"))
        .collect()
}

/// The `rua` URIs with `scheme`, the scheme taken off.
fn report_uris(records: &[Vec<u8>], scheme: &str) -> Vec<String> {
    let Some(one) = super::versioned_record(records, b"v=TLSRPTv1") else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(one);
    text.split(';')
        .filter_map(|f| f.trim().strip_prefix("rua="))
        .flat_map(|v| v.split(','))
        .filter_map(|uri| uri.trim().strip_prefix(scheme))
        .map(str::to_owned)
        .collect()
}

/// The report gzipped, as both ways of sending it carry it.
fn gzip(report: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(report.as_bytes());
    gz.finish().unwrap_or_default()
}

/// The report as mail (RFC 8460 section 5.3): multipart/report with the
/// JSON gzipped as application/tlsrpt+gzip.
pub(crate) fn message(
    from: &str,
    to: &str,
    domain: &str,
    submitter: &str,
    report: &str,
    now: SystemTime,
) -> Vec<u8> {
    let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, gzip(report));
    let lines: Vec<String> = body
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let boundary = format!("tlsrpt-{secs}");
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{secs}.{domain}@{submitter}>\r\n\
Date: {date}\r\nMessage-ID: <{secs}.{domain}@{submitter}>\r\nTLS-Report-Domain: {domain}\r\nTLS-Report-Submitter: {submitter}\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\"\r\n\r\n\
--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
This is an SMTP TLS report (RFC 8460) for {domain} from {submitter}.\r\n\r\n\
--{boundary}\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"{submitter}!{domain}!{secs}.json.gz\"\r\n\r\n{}\r\n--{boundary}--\r\n",
        lines.join("\r\n"),
        date = postel_queue::dsn::rfc5322_date(now),
    )
    .into_bytes()
}

impl super::Delivery {
    /// Counts a session to `domain` for TLS-RPT under the policy that
    /// applied: a success when it ran under TLS as asked; a failure when
    /// the handshake failed, or when a policy wanted TLS and none was had.
    pub(super) fn count_tls(
        &self,
        domain: &str,
        (sts, dane): (
            Option<&super::mta_sts::Policy>,
            Option<&Vec<postel_mx::Tlsa>>,
        ),
        (name, addr): (&str, SocketAddr),
        session: &Result<super::smtp::Sent, super::smtp::SessionFailure>,
    ) {
        let config = self.shared.config();
        if config.tls_rpt.is_none() || config.smarthost.is_some() {
            return;
        }
        let policy = match (dane, sts) {
            (Some(records), _) => PolicyDesc {
                kind: "tlsa",
                lines: super::dane::describe(records),
                mx: vec![name.to_owned()],
            },
            (None, sts) => describe_sts(sts),
        };
        let ip = addr.ip().to_string();
        let failed = |why| self.tls_rpt.failure(domain, policy.clone(), why, name, &ip);
        // A handshake that failed (with or without a plaintext retry), or
        // one MTA-STS testing would have refused.
        let handshake = match session {
            Ok(sent) => sent.tls_failed.as_deref(),
            Err(super::smtp::SessionFailure::Tls(e)) => Some(e.as_str()),
            Err(_) => return,
        };
        match (handshake, session) {
            (Some(e), _) if dane.is_some() && e.contains("TLSA") => failed(ResultType::TlsaInvalid),
            (Some(e), _) => failed(ResultType::of_tls_error(e)),
            (None, Ok(sent)) if sent.tls => self.tls_rpt.success(domain, policy.clone()),
            (None, _) if sts.is_some() || dane.is_some() => {
                failed(ResultType::StarttlsNotSupported);
            }
            (None, _) => {}
        }
    }

    /// A policy fetch for `domain` that failed, counted under the policy
    /// its sessions then use (`sts` from the cache, or none).
    pub(super) fn count_fetch_failure(
        &self,
        domain: &str,
        sts: Option<&super::mta_sts::Policy>,
        why: ResultType,
    ) {
        let config = self.shared.config();
        if config.tls_rpt.is_none() || config.smarthost.is_some() {
            return;
        }
        self.tls_rpt.failure(domain, describe_sts(sts), why, "", "");
    }

    /// TLS-RPT: at the end of each `period`, its reports.
    pub(super) async fn report_tls_every(self: Arc<Self>, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.report_tls().await;
        }
    }

    /// Sends the reports of the period that ended, to each domain whose
    /// `_smtp._tls` record asks: to its `mailto:` addresses through the
    /// queue, from the null sender, DKIM-signed when our keys allow; to
    /// its `https:` addresses by POST (RFC 8460 section 5.3).
    async fn report_tls(&self) {
        let config = self.shared.config();
        let host = config.hostname.to_string();
        let now = std::time::SystemTime::now();
        let reports = self.tls_rpt.take(now, &host, &format!("postmaster@{host}"));
        let Some(resolver) = &self.resolver else {
            return;
        };
        for (domain, report) in reports {
            let Ok(postel_mx::Answer::Records { records, .. }) =
                resolver.txt(&format!("_smtp._tls.{domain}")).await
            else {
                continue;
            };
            for url in https_addresses(&records) {
                match self.post_report(resolver, &url, &report).await {
                    Ok(()) => info!(domain, url, "TLS report posted"),
                    Err(e) => warn!(domain, url, error = %e, "cannot post the TLS report"),
                }
            }
            self.mail_report(&domain, &mailto_addresses(&records), &report, now)
                .await;
        }
    }

    /// POSTs the gzipped report to `url` (RFC 8460 section 5.3.2), over
    /// TLS whose certificate verifies; any 2xx status is taken.
    async fn post_report(
        &self,
        resolver: &postel_mx::HickoryResolver,
        url: &str,
        report: &str,
    ) -> Result<(), String> {
        let (host, port, path) = super::https::parse_url(url).ok_or("not an https URL")?;
        let body = gzip(report);
        let extra = format!(
            "Content-Type: application/tlsrpt+gzip\r\nContent-Length: {}\r\n",
            body.len()
        );
        let posted = super::https::request(
            resolver,
            &self.verified,
            (&host, port),
            ("POST", &path, &extra),
            &body,
            64 * 1024,
        );
        let response = tokio::time::timeout(Duration::from_secs(30), posted)
            .await
            .map_err(|_| "timed out".to_owned())??;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(format!("HTTP status {}", response.status))
        }
    }

    /// Queues the report as mail to `to`.
    async fn mail_report(&self, domain: &str, to: &[String], report: &str, now: SystemTime) {
        let host = self.shared.config().hostname.to_string();
        let recipients: Vec<NewRecipient> = to
            .iter()
            .filter_map(|a| postel_proto::types::Mailbox::try_from(a.as_str()).ok())
            .map(|m| NewRecipient {
                address: postel_proto::types::ForwardPath::Mailbox(m.into_owned()),
                orcpt: None,
                notify: Some(postel_proto::types::Notify::NEVER),
            })
            .collect();
        if recipients.is_empty() {
            return;
        }
        let from = format!("TLS reports <postmaster@{host}>");
        let bytes = message(&from, &to.join(", "), domain, &host, report, now);
        let envelope = NewMessage {
            return_path: postel_proto::types::ReversePath::Null,
            envid: None,
            ret: None,
            body_type: postel_proto::types::BodyType::SevenBit,
            smtputf8: false,
            requiretls: false,
            arrival: postel_queue::model::Arrival::default(),
            recipients,
        };
        match self
            .shared
            .queue
            .enqueue(envelope, self.signed(bytes), now)
            .await
        {
            Ok(id) => {
                info!(domain, report = %id, "TLS report queued");
                self.shared.wake.notify_one();
            }
            Err(e) => warn!(domain, error = %e, "cannot queue the TLS report"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_dates_and_reports() {
        assert_eq!(
            mailto_addresses(&[b"v=TLSRPTv1; rua=mailto:a@example.com,https://r.example/x, mailto:b@example.com!10m".to_vec()]),
            ["a@example.com", "b@example.com"]
        );
        assert_eq!(
            https_addresses(&[
                b"v=TLSRPTv1; rua=mailto:a@example.com, https://r.example/x".to_vec()
            ]),
            ["https://r.example/x"]
        );
        assert!(
            mailto_addresses(&[
                b"v=TLSRPTv1; rua=mailto:a@x.example".to_vec(),
                b"v=TLSRPTv1; rua=mailto:b@x.example".to_vec()
            ])
            .is_empty()
        );
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_083_200)),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        let r = TlsRpt::new(SystemTime::UNIX_EPOCH);
        let sts = PolicyDesc {
            kind: "sts",
            lines: vec!["version: STSv1".into(), "mode: enforce".into()],
            mx: vec!["mx.b.example".into()],
        };
        r.success("B.example", sts.clone());
        r.failure(
            "b.example",
            sts.clone(),
            ResultType::CertificateHostMismatch,
            "mx.b.example",
            "192.0.2.1",
        );
        r.failure(
            "b.example",
            sts,
            ResultType::CertificateHostMismatch,
            "mx.b.example",
            "192.0.2.1",
        );
        let reports = r.take(
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400),
            "mx.a.example",
            "postmaster@a.example",
        );
        assert_eq!(reports.len(), 1);
        let v: Value = serde_json::from_str(&reports[0].1).unwrap();
        assert_eq!(
            v["policies"][0]["summary"]["total-successful-session-count"],
            1
        );
        assert_eq!(
            v["policies"][0]["summary"]["total-failure-session-count"],
            2
        );
        assert_eq!(
            v["policies"][0]["failure-details"][0]["result-type"],
            "certificate-host-mismatch"
        );
        assert_eq!(v["policies"][0]["policy"]["policy-domain"], "b.example");
        assert_eq!(v["date-range"]["end-datetime"], "1970-01-02T00:00:00Z");
        assert!(
            r.take(SystemTime::now(), "x", "y").is_empty(),
            "the period starts over"
        );
    }
}
