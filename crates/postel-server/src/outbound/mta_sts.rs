//! MTA-STS (RFC 8461): a domain's published promise that its exchangers
//! take TLS with certificates valid for their names. The `_mta-sts` TXT
//! record says a policy exists and its id; the policy itself is fetched
//! over HTTPS from `mta-sts.DOMAIN`, cached for its `max_age` in the data
//! directory (so a restart does not forget an enforced policy), and
//! fetched again when the id changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use postel_mx::{Answer, HickoryResolver};

use super::tls_rpt::ResultType;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Longest policy body read (RFC 8461 section 3.3 suggests 64 KiB).
const MAX_POLICY: usize = 64 * 1024;
/// How long the whole fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// RFC 8461 section 3.2: at most one year.
const MAX_AGE: u64 = 31_557_600;

/// What a policy asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Deliver only to matching exchangers, over verified TLS.
    Enforce,
    /// Deliver as before; report what would have failed.
    Testing,
    /// No policy (a domain withdrawing one).
    None,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Policy {
    pub(crate) mode: Mode,
    /// The exchanger patterns: names, or `*.name` for one more label.
    pub(crate) mx: Vec<String>,
    pub(crate) max_age: u64,
}

impl Policy {
    /// Parses a policy body (RFC 8461 section 3.2).
    pub(crate) fn parse(text: &str) -> Result<Policy, String> {
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_owned()),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("mode {other:?}")),
                    });
                }
                "max_age" => {
                    let n: u64 = value.parse().map_err(|_| format!("max_age {value:?}"))?;
                    max_age = Some(n.min(MAX_AGE));
                }
                "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("not an STSv1 policy".into());
        }
        let mode = mode.ok_or("no mode")?;
        if mode != Mode::None && mx.is_empty() {
            return Err("no mx".into());
        }
        Ok(Policy {
            mode,
            mx,
            max_age: max_age.ok_or("no max_age")?,
        })
    }

    /// The policy as its lines, for a TLS report's `policy-string`.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mode = match self.mode {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        };
        let mut lines = vec!["version: STSv1".to_owned(), format!("mode: {mode}")];
        lines.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        lines.push(format!("max_age: {}", self.max_age));
        lines
    }

    /// Whether exchanger `host` is one the policy names (RFC 8461 section
    /// 4.1: a `*.` pattern stands for exactly one label).
    pub(crate) fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *p == host,
        })
    }
}

/// A cached policy with the id it was fetched under.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    id: String,
    policy: Policy,
    /// Seconds since the epoch after which it is gone.
    expires: u64,
}

/// The policies of the domains this server sends to.
pub(crate) struct MtaSts {
    cache: Mutex<HashMap<String, Cached>>,
    path: PathBuf,
    tls: Arc<rustls::ClientConfig>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The id of a `_mta-sts` TXT record set: exactly one record starting
/// with `v=STSv1` (RFC 8461 section 3.1), with an `id` of 1 to 32
/// alphanumerics.
fn record_id(records: &[Vec<u8>]) -> Option<String> {
    let text = std::str::from_utf8(super::versioned_record(records, b"v=STSv1")?).ok()?;
    text.split(';').find_map(|field| {
        let (k, v) = field.split_once('=')?;
        let v = v.trim();
        (k.trim() == "id"
            && (1..=32).contains(&v.len())
            && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| v.to_owned())
    })
}

impl MtaSts {
    /// The cache kept at `path` (read now, written on each change); HTTPS
    /// through `tls`, which must verify certificates.
    pub(crate) fn load(path: PathBuf, tls: Arc<rustls::ClientConfig>) -> MtaSts {
        let cache = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        MtaSts {
            cache: Mutex::new(cache),
            path,
            tls,
        }
    }

    fn cached(&self, domain: &str, now: u64) -> Option<Cached> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(domain).filter(|c| c.expires > now).cloned()
    }

    fn store(&self, domain: &str, cached: Cached) {
        let snapshot = {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.insert(domain.to_owned(), cached);
            serde_json::to_vec_pretty(&*cache).unwrap_or_default()
        };
        let tmp = self.path.with_extension("tmp");
        let written =
            std::fs::write(&tmp, &snapshot).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            warn!(path = %self.path.display(), error = %e, "cannot save the MTA-STS policies");
        }
    }

    /// The policy of `domain` now: the cached one while its id is the
    /// published one, a fresh fetch when the id changed, and the cached one
    /// again when the record or the fetch fails (RFC 8461 section 5.1).
    pub(crate) async fn policy(&self, resolver: &HickoryResolver, domain: &str) -> Option<Policy> {
        self.policy_reporting(resolver, domain).await.0
    }

    /// [`MtaSts::policy`], and how a fetch that was due failed, for
    /// TLS-RPT (RFC 8460 section 4.3.2).
    pub(crate) async fn policy_reporting(
        &self,
        resolver: &HickoryResolver,
        domain: &str,
    ) -> (Option<Policy>, Option<ResultType>) {
        let now = secs(SystemTime::now());
        let cached = self.cached(domain, now);
        let id = match resolver.txt(&format!("_mta-sts.{domain}")).await {
            Ok(Answer::Records { records, .. }) => record_id(&records),
            _ => None,
        };
        let Some(id) = id else {
            return (cached.map(|c| c.policy), None);
        };
        if let Some(c) = &cached
            && c.id == id
        {
            return (Some(c.policy.clone()), None);
        }
        match self.fetch(resolver, domain).await {
            Ok(policy) => {
                info!(domain, id, mode = ?policy.mode, "MTA-STS policy fetched");
                self.store(
                    domain,
                    Cached {
                        id,
                        policy: policy.clone(),
                        expires: now + policy.max_age,
                    },
                );
                (Some(policy), None)
            }
            Err((kind, e)) => {
                warn!(domain, error = %e, "MTA-STS policy fetch failed");
                (cached.map(|c| c.policy), Some(kind))
            }
        }
    }

    /// GET `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, bounded in
    /// size and time, no redirects, the certificate verified.
    async fn fetch(
        &self,
        resolver: &HickoryResolver,
        domain: &str,
    ) -> Result<Policy, (ResultType, String)> {
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.get(resolver, domain))
            .await
            .map_err(|_| "timed out".to_owned());
        match fetched {
            Ok(Ok(body)) => Policy::parse(&body).map_err(|e| (ResultType::StsPolicyInvalid, e)),
            Ok(Err(e)) if e.contains("certificate") => Err((ResultType::StsWebpkiInvalid, e)),
            Ok(Err(e)) | Err(e) => Err((ResultType::StsPolicyFetchError, e)),
        }
    }

    /// The policy body.
    async fn get(&self, resolver: &HickoryResolver, domain: &str) -> Result<String, String> {
        let host = format!("mta-sts.{domain}");
        let response = super::https::request(
            resolver,
            &self.tls,
            (&host, 443),
            ("GET", "/.well-known/mta-sts.txt", ""),
            &[],
            MAX_POLICY + 16 * 1024,
        )
        .await?;
        if response.status != 200 {
            return Err(format!("HTTP status {}", response.status));
        }
        let text_plain = response
            .field("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/plain"));
        if !text_plain {
            return Err("not text/plain".into());
        }
        let body = String::from_utf8_lossy(&response.body);
        if body.len() > MAX_POLICY {
            return Err("policy too long".into());
        }
        Ok(body.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::{Mode, Policy, record_id};

    #[test]
    fn policies_records_and_patterns() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.matches("MAIL.example.com."));
        assert!(p.matches("a.example.net"));
        assert!(!p.matches("a.b.example.net"), "one label only");
        assert!(!p.matches("example.net"));
        assert!(!p.matches("evil-mail.example.com"));
        assert_eq!(
            Policy::parse("version: STSv1\nmode: testing\nmx: m.example\nmax_age: 99999999999\n")
                .unwrap()
                .max_age,
            31_557_600
        );
        for bad in [
            "mode: enforce\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: sometimes\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.example\n",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            record_id(&[b"v=STSv1; id=20261201T1;".to_vec()]).as_deref(),
            Some("20261201T1")
        );
        assert_eq!(
            record_id(&[b"v=STSv1; id=a".to_vec(), b"v=STSv1; id=b".to_vec()]),
            None
        );
        assert_eq!(record_id(&[b"v=STSv1; id=no-dashes".to_vec()]), None);
        assert_eq!(record_id(&[b"v=spf1 -all".to_vec()]), None);
    }
}
