//! `[[milter]]`: the filters each message is shown to, in order, as
//! Postfix's `smtpd_milters`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Role, invalid};

/// One filter as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MilterFile {
    address: String,
    #[serde(default = "default_roles")]
    roles: Vec<Role>,
    #[serde(default = "default_version")]
    protocol_version: u32,
    #[serde(default = "thirty")]
    connect_timeout_secs: u64,
    #[serde(default = "thirty")]
    command_timeout_secs: u64,
    #[serde(default = "three_hundred")]
    content_timeout_secs: u64,
    #[serde(default)]
    default_action: DefaultAction,
}

fn default_roles() -> Vec<Role> {
    vec![Role::Mx, Role::Submission, Role::Submissions]
}

fn default_version() -> u32 {
    6
}

fn thirty() -> u64 {
    30
}

fn three_hundred() -> u64 {
    300
}

/// Where a filter listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MilterAddress {
    /// `inet:host:port`.
    Inet(String, u16),
    /// `unix:/path`.
    Unix(PathBuf),
}

impl std::fmt::Display for MilterAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MilterAddress::Inet(h, p) => write!(f, "inet:{h}:{p}"),
            MilterAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// What happens when a filter cannot be reached, times out or breaks the
/// protocol (Postfix's `milter_default_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    /// Refuse for now with 451 4.7.1, at the stage it failed and after.
    #[default]
    Tempfail,
    /// Go on without the filter for the rest of the session.
    Accept,
    /// Refuse with 550 5.7.1.
    Reject,
    /// Close the session with 421 4.7.0.
    Close,
}

/// One filter, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilterConfig {
    /// Where it listens.
    pub address: MilterAddress,
    /// The listeners whose sessions it sees.
    pub roles: Vec<Role>,
    /// The protocol version offered (2 to 6).
    pub protocol_version: u32,
    /// Connecting and negotiating.
    pub connect_timeout: Duration,
    /// Each command event's answer.
    pub command_timeout: Duration,
    /// Each body chunk's and the end of message's answer.
    pub content_timeout: Duration,
    /// When it fails.
    pub default_action: DefaultAction,
}

pub(super) fn check(files: Vec<MilterFile>) -> Result<Vec<MilterConfig>, ConfigError> {
    let mut out = Vec::with_capacity(files.len());
    for (i, m) in files.into_iter().enumerate() {
        let key = |k: &str| format!("milter[{i}].{k}");
        let address = if let Some(path) = m.address.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(invalid(key("address"), "unix: needs a path"));
            }
            MilterAddress::Unix(PathBuf::from(path))
        } else if let Some(rest) = m.address.strip_prefix("inet:") {
            // inet:host:port, or Sendmail's inet:port@host.
            let (host, port) = match (rest.rsplit_once(':'), rest.split_once('@')) {
                (_, Some((port, host))) | (Some((host, port)), None) => (host, port),
                (None, None) => ("", rest),
            };
            let port: u16 = port
                .parse()
                .map_err(|_| invalid(key("address"), format!("{port:?} is not a port")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(invalid(key("address"), "inet: needs host:port"));
            }
            MilterAddress::Inet(host.to_owned(), port)
        } else {
            return Err(invalid(
                key("address"),
                format!("{:?} is not inet:host:port or unix:/path", m.address),
            ));
        };
        if !(2..=6).contains(&m.protocol_version) {
            return Err(invalid(key("protocol_version"), "must be 2 to 6"));
        }
        if m.roles.contains(&Role::Lmtp) {
            return Err(invalid(
                key("roles"),
                "LMTP delivery is not filtered; filter where the mail arrives",
            ));
        }
        let secs = |s: u64| Duration::from_secs(s.max(1));
        out.push(MilterConfig {
            address,
            roles: m.roles,
            protocol_version: m.protocol_version,
            connect_timeout: secs(m.connect_timeout_secs),
            command_timeout: secs(m.command_timeout_secs),
            content_timeout: secs(m.content_timeout_secs),
            default_action: m.default_action,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn parse(milter: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!("[[milter]]\n{milter}\n"),
            std::path::Path::new("t.toml"),
        )
    }

    #[test]
    fn addresses_defaults_and_refusals() {
        let c = parse("address = \"inet:127.0.0.1:8891\"").unwrap();
        let m = &c.milters[0];
        assert_eq!(m.address, MilterAddress::Inet("127.0.0.1".into(), 8891));
        assert_eq!(m.roles, [Role::Mx, Role::Submission, Role::Submissions]);
        assert_eq!(
            (m.connect_timeout, m.command_timeout, m.content_timeout),
            (
                Duration::from_secs(30),
                Duration::from_secs(30),
                Duration::from_secs(300)
            )
        );
        assert_eq!(
            (m.protocol_version, m.default_action),
            (6, DefaultAction::Tempfail)
        );
        let sendmail = parse("address = \"inet:11332@localhost\"").unwrap();
        assert_eq!(
            sendmail.milters[0].address,
            MilterAddress::Inet("localhost".into(), 11332)
        );
        let unix = parse("address = \"unix:/run/rspamd/milter.sock\"\ndefault_action = \"close\"")
            .unwrap();
        assert_eq!(
            unix.milters[0].address,
            MilterAddress::Unix("/run/rspamd/milter.sock".into())
        );
        assert_eq!(unix.milters[0].default_action, DefaultAction::Close);
        for (bad, key) in [
            ("address = \"tcp:1.2.3.4:25\"", "milter[0].address"),
            ("address = \"inet:host:port\"", "milter[0].address"),
            ("address = \"unix:\"", "milter[0].address"),
            (
                "address = \"inet:h:1\"\nprotocol_version = 7",
                "milter[0].protocol_version",
            ),
            (
                "address = \"inet:h:1\"\nroles = [\"lmtp\"]",
                "milter[0].roles",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
        assert!(parse("address = \"inet:h:1\"\ndefault_action = \"maybe\"").is_err());
    }
}
