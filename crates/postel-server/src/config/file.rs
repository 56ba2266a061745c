//! The configuration file as written: the TOML keys, each with its
//! default, before they are checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::Role;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(clippy::struct_field_names)] // The keys of the file.
pub(super) struct File {
    pub(super) hostname: Option<String>,
    pub(super) data_dir: PathBuf,
    pub(super) users_file: Option<PathBuf>,
    pub(super) listener: Vec<ListenerFile>,
    pub(super) tls: Option<TlsFile>,
    pub(super) domain: Vec<DomainFile>,
    pub(super) limits: LimitsFile,
    pub(super) relay: RelayFile,
    pub(super) dns: DnsFile,
    pub(super) queue: QueueFile,
    pub(super) metrics: MetricsFile,
    pub(super) milter: Vec<super::milter::MilterFile>,
    pub(super) authentication: super::auth::AuthFile,
    pub(super) dkim: Vec<super::auth::DkimFile>,
    pub(super) tls_policy: Vec<super::tls_policy::TlsPolicyFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct MetricsFile {
    pub(super) address: Option<String>,
}

impl Default for File {
    fn default() -> Self {
        File {
            hostname: None,
            data_dir: PathBuf::from("postel-data"),
            users_file: None,
            listener: vec![ListenerFile {
                address: "127.0.0.1:2525".into(),
                role: Role::Mx,
                proxy_protocol: false,
                trusted_proxies: Vec::new(),
            }],
            tls: None,
            domain: vec![DomainFile {
                name: "localhost".into(),
                mailboxes: vec!["postmaster".into()],
                aliases: BTreeMap::new(),
                catch_all: None,
                delivery: None,
                recipients: None,
            }],
            limits: LimitsFile::default(),
            relay: RelayFile::default(),
            dns: DnsFile::default(),
            queue: QueueFile::default(),
            metrics: MetricsFile::default(),
            milter: Vec::new(),
            authentication: super::auth::AuthFile::default(),
            dkim: Vec::new(),
            tls_policy: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListenerFile {
    pub(super) address: String,
    pub(super) role: Role,
    #[serde(default)]
    pub(super) proxy_protocol: bool,
    #[serde(default)]
    pub(super) trusted_proxies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DomainFile {
    pub(super) name: String,
    #[serde(default)]
    pub(super) mailboxes: Vec<String>,
    #[serde(default)]
    pub(super) aliases: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub(super) catch_all: Option<String>,
    #[serde(default)]
    pub(super) delivery: Option<String>,
    #[serde(default)]
    pub(super) recipients: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct LimitsFile {
    pub(super) message_size: u64,
    pub(super) recipients: usize,
    pub(super) connections: usize,
    pub(super) connections_per_ip: usize,
    pub(super) errors: usize,
    pub(super) idle_timeout_secs: u64,
    pub(super) connection_rate: u32,
    pub(super) message_rate: u32,
    pub(super) recipient_rate: u32,
    pub(super) rate_window_secs: u64,
    pub(super) user_message_rate: u32,
    pub(super) user_recipient_rate: u32,
    pub(super) user_rate_window_secs: u64,
    pub(super) received_headers: usize,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            message_size: 35 * 1024 * 1024,
            recipients: 100,
            connections: 200,
            connections_per_ip: 50,
            errors: 10,
            idle_timeout_secs: 300,
            connection_rate: 0,
            message_rate: 0,
            recipient_rate: 0,
            rate_window_secs: 60,
            user_message_rate: 0,
            user_recipient_rate: 0,
            user_rate_window_secs: 3600,
            received_headers: 100,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RelayFile {
    pub(super) port: u16,
    pub(super) smarthost: Option<String>,
    pub(super) per_domain: usize,
    pub(super) workers: usize,
    pub(super) verify_tls: bool,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) tls_rpt: bool,
    pub(super) tls_rpt_interval_secs: u64,
    pub(super) greeting_timeout_secs: u64,
    pub(super) mail_timeout_secs: u64,
    pub(super) rcpt_timeout_secs: u64,
    pub(super) data_timeout_secs: u64,
    pub(super) data_block_timeout_secs: u64,
    pub(super) final_dot_timeout_secs: u64,
    pub(super) connection_timeout_secs: u64,
    pub(super) messages_per_connection: usize,
    pub(super) connection_idle_secs: u64,
}

impl Default for RelayFile {
    fn default() -> Self {
        RelayFile {
            port: 25,
            smarthost: None,
            per_domain: 10,
            workers: 20,
            verify_tls: false,
            ca_file: None,
            tls_rpt: true,
            tls_rpt_interval_secs: 86_400,
            greeting_timeout_secs: 300,
            mail_timeout_secs: 300,
            rcpt_timeout_secs: 300,
            data_timeout_secs: 120,
            data_block_timeout_secs: 180,
            final_dot_timeout_secs: 600,
            connection_timeout_secs: 3600,
            messages_per_connection: 100,
            connection_idle_secs: 5,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct DnsFile {
    pub(super) servers: Vec<String>,
    pub(super) timeout_secs: Option<u64>,
    pub(super) dnssec: bool,
    pub(super) trust_anchor: Option<std::path::PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct QueueFile {
    pub(super) backend: String,
    pub(super) url: Option<String>,
    pub(super) pool_size: usize,
    pub(super) lease_secs: u64,
    pub(super) node: Option<String>,
    pub(super) lifetime_secs: u64,
    pub(super) min_retry_secs: u64,
    pub(super) max_retry_secs: u64,
    pub(super) delay_warning_secs: u64,
    pub(super) poll_ms: u64,
}

impl Default for QueueFile {
    fn default() -> Self {
        QueueFile {
            backend: "spool".into(),
            url: None,
            pool_size: 8,
            lease_secs: 600,
            node: None,
            lifetime_secs: 5 * 24 * 3600,
            min_retry_secs: 300,
            max_retry_secs: 4000,
            delay_warning_secs: 0,
            poll_ms: 1000,
        }
    }
}
