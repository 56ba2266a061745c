//! `[[tls_policy]]`: how mail to a domain uses TLS, set by the operator, as
//! Postfix's `smtp_tls_policy_maps`.

use serde::Deserialize;

use super::{ConfigError, invalid};

/// One override as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsPolicyFile {
    domain: String,
    mode: String,
}

/// How delivery to a domain uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never STARTTLS (`none`).
    None,
    /// STARTTLS when offered, any certificate, plaintext otherwise
    /// (`opportunistic`, the default on port 25).
    Opportunistic,
    /// TLS or nothing, any certificate (`encrypt`): deferred when the
    /// exchanger offers no STARTTLS.
    Encrypt,
    /// TLS or nothing, with a certificate that verifies for the exchanger's
    /// name (`verify`): deferred otherwise, never sent in cleartext.
    Verify,
}

impl TlsMode {
    /// The mode's name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Opportunistic => "opportunistic",
            TlsMode::Encrypt => "encrypt",
            TlsMode::Verify => "verify",
        }
    }
}

/// One checked override: `domain` is a name, or `.name` for its
/// subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicyOverride {
    /// The domain, lower case.
    pub domain: String,
    /// Its mode.
    pub mode: TlsMode,
}

/// The override for `domain`: an exact entry first, then the nearest
/// `.parent` entry.
pub(super) fn lookup(overrides: &[TlsPolicyOverride], domain: &str) -> Option<TlsMode> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if let Some(o) = overrides.iter().find(|o| o.domain == domain) {
        return Some(o.mode);
    }
    let mut rest = domain.as_str();
    while let Some((_, parent)) = rest.split_once('.') {
        let wildcard = format!(".{parent}");
        if let Some(o) = overrides.iter().find(|o| o.domain == wildcard) {
            return Some(o.mode);
        }
        rest = parent;
    }
    None
}

pub(super) fn check(file: Vec<TlsPolicyFile>) -> Result<Vec<TlsPolicyOverride>, ConfigError> {
    let mut out: Vec<TlsPolicyOverride> = Vec::new();
    for (i, p) in file.into_iter().enumerate() {
        let domain = p.domain.trim_end_matches('.').to_ascii_lowercase();
        let name = domain.strip_prefix('.').unwrap_or(&domain);
        if postel_proto::types::Domain::try_from(name).is_err() {
            return Err(invalid(
                format!("tls_policy[{i}].domain"),
                format!("{:?} is not a domain or .domain", p.domain),
            ));
        }
        if out.iter().any(|o| o.domain == domain) {
            return Err(invalid(
                format!("tls_policy[{i}].domain"),
                format!("{domain} has a policy already"),
            ));
        }
        let mode = match p.mode.as_str() {
            "none" => TlsMode::None,
            "opportunistic" => TlsMode::Opportunistic,
            "encrypt" => TlsMode::Encrypt,
            "verify" => TlsMode::Verify,
            other => {
                return Err(invalid(
                    format!("tls_policy[{i}].mode"),
                    format!("{other:?} is not none, opportunistic, encrypt or verify"),
                ));
            }
        };
        out.push(TlsPolicyOverride { domain, mode });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{TlsMode, lookup};
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn exact_then_nearest_parent_and_refusals() {
        let c = Config::parse(
            "[[tls_policy]]\ndomain = \"example.net\"\nmode = \"verify\"\n\
             [[tls_policy]]\ndomain = \".example.net\"\nmode = \"encrypt\"\n\
             [[tls_policy]]\ndomain = \"Legacy.Example.\"\nmode = \"none\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let p = &c.tls_policies;
        assert_eq!(lookup(p, "example.net"), Some(TlsMode::Verify));
        assert_eq!(lookup(p, "mx.a.example.net"), Some(TlsMode::Encrypt));
        assert_eq!(lookup(p, "legacy.example"), Some(TlsMode::None));
        assert_eq!(lookup(p, "other.example"), None);
        for (text, key) in [
            (
                "[[tls_policy]]\ndomain = \"x y\"\nmode = \"verify\"",
                "tls_policy[0].domain",
            ),
            (
                "[[tls_policy]]\ndomain = \"a.example\"\nmode = \"dane\"",
                "tls_policy[0].mode",
            ),
            (
                "[[tls_policy]]\ndomain = \"a.example\"\nmode = \"none\"\n[[tls_policy]]\ndomain = \"A.example\"\nmode = \"verify\"",
                "tls_policy[1].domain",
            ),
        ] {
            let e = Config::parse(text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}
