//! `[authentication]`: the SPF, DKIM, ARC and DMARC checks on arrival and
//! what their results do; `[[dkim]]`: the keys outgoing mail is signed with.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::{ConfigError, Role, invalid};

/// `[authentication]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct AuthFile {
    enabled: bool,
    roles: Vec<Role>,
    authserv_id: Option<String>,
    spf_fail: String,
    dmarc_reject: String,
    dmarc_quarantine: String,
    dns_failure: String,
}

impl Default for AuthFile {
    fn default() -> Self {
        AuthFile {
            enabled: true,
            roles: vec![Role::Mx],
            authserv_id: None,
            spf_fail: "record".into(),
            dmarc_reject: "reject".into(),
            dmarc_quarantine: "deliver".into(),
            dns_failure: "tempfail".into(),
        }
    }
}

impl AuthFile {
    /// The checks off.
    pub(super) fn off() -> AuthFile {
        AuthFile {
            enabled: false,
            ..AuthFile::default()
        }
    }
}

/// One `[[dkim]]` key as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DkimFile {
    domain: String,
    selector: String,
    key: PathBuf,
}

/// What to do with a message whose check came out one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAction {
    /// Refuse it (5xx).
    Reject,
    /// Accept it and hold it in the queue (`postel queue show` lists it).
    Hold,
    /// Accept and deliver it, the result recorded in its header.
    Deliver,
}

/// The checked `[authentication]` section.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Whether mail arriving on `roles` is checked (authenticated sessions
    /// never are).
    pub enabled: bool,
    /// The listener roles whose mail is checked.
    pub roles: Vec<Role>,
    /// The name results are recorded under; the host name by default.
    pub authserv_id: Option<String>,
    /// An SPF `fail` of MAIL FROM: [`AuthAction::Deliver`] (recorded only)
    /// or [`AuthAction::Reject`] at MAIL.
    pub spf_fail: AuthAction,
    /// A DMARC failure under `p=reject`.
    pub dmarc_reject: AuthAction,
    /// A DMARC failure under `p=quarantine`.
    pub dmarc_quarantine: AuthAction,
    /// A DNS failure that keeps a check from its result: refused with 451
    /// (`true`), or accepted with `temperror` recorded.
    pub tempfail_on_dns_failure: bool,
}

impl AuthConfig {
    /// Whether a session on a listener of `role` is checked.
    pub fn checks(&self, role: Role) -> bool {
        self.enabled && self.roles.contains(&role)
    }
}

fn action(
    key: &str,
    value: &str,
    allowed: &[(&str, AuthAction)],
) -> Result<AuthAction, ConfigError> {
    allowed
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, a)| *a)
        .ok_or_else(|| {
            let names: Vec<String> = allowed.iter().map(|(n, _)| format!("{n:?}")).collect();
            invalid(
                format!("authentication.{key}"),
                format!("{value:?} is not one of {}", names.join(", ")),
            )
        })
}

pub(super) fn check(file: AuthFile) -> Result<AuthConfig, ConfigError> {
    use AuthAction::{Deliver, Hold, Reject};
    if file.roles.contains(&Role::Lmtp) {
        return Err(invalid(
            "authentication.roles",
            "lmtp hands over mail this server has already checked",
        ));
    }
    let dns_failure = match file.dns_failure.as_str() {
        "tempfail" => true,
        "accept" => false,
        other => {
            return Err(invalid(
                "authentication.dns_failure",
                format!("{other:?} is not \"tempfail\" or \"accept\""),
            ));
        }
    };
    Ok(AuthConfig {
        enabled: file.enabled,
        roles: file.roles,
        authserv_id: file.authserv_id,
        spf_fail: action(
            "spf_fail",
            &file.spf_fail,
            &[("record", Deliver), ("reject", Reject)],
        )?,
        dmarc_reject: action(
            "dmarc_reject",
            &file.dmarc_reject,
            &[("reject", Reject), ("quarantine", Hold), ("off", Deliver)],
        )?,
        dmarc_quarantine: action(
            "dmarc_quarantine",
            &file.dmarc_quarantine,
            &[("deliver", Deliver), ("hold", Hold), ("reject", Reject)],
        )?,
        tempfail_on_dns_failure: dns_failure,
    })
}

/// Reads every `[[dkim]]` key into one signer.
pub(super) fn signer(keys: &[DkimFile]) -> Result<Arc<postel_auth::Signer>, ConfigError> {
    let mut signer = postel_auth::Signer::default();
    for (i, k) in keys.iter().enumerate() {
        signer
            .load(&k.domain, &k.selector, &k.key)
            .map_err(|e| invalid(format!("dkim[{i}]"), e.to_string()))?;
    }
    Ok(Arc::new(signer))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_check_mx_and_refusals_name_the_key() {
        assert!(
            !Config::embedded().unwrap().authentication.enabled,
            "the embedded default does not check"
        );
        let c = parse("").unwrap();
        assert!(c.authentication.checks(super::Role::Mx));
        assert!(!c.authentication.checks(super::Role::Submission));
        assert!(c.authentication.tempfail_on_dns_failure);
        assert_eq!(c.authentication.dmarc_reject, super::AuthAction::Reject);
        let e = parse("[authentication]\ndmarc_reject = \"maybe\"").unwrap_err();
        assert!(e.contains("authentication.dmarc_reject"), "{e}");
        let e = parse("[authentication]\nroles = [\"lmtp\"]").unwrap_err();
        assert!(e.contains("authentication.roles"), "{e}");
        let e =
            parse("[[dkim]]\ndomain = \"example.com\"\nselector = \"s\"\nkey = \"/nonexistent\"")
                .unwrap_err();
        assert!(e.contains("dkim[0]") && e.contains("/nonexistent"), "{e}");
    }
}
