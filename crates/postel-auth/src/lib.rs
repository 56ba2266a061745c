//! # postel-auth
//!
//! Mail authentication for an MTA, on the `mail-auth` crate: the checks a
//! receiving server makes and the signature a sending one adds.
//!
//! - On arrival: SPF of the HELO and MAIL FROM identities at MAIL
//!   ([`Authenticator::session_spf`], RFC 7208); at the end of data every
//!   DKIM signature (RFC 6376, ed25519 of RFC 8463), the ARC chain (RFC
//!   8617) and DMARC (RFC 7489) ([`Authenticator::verify`]), written up as
//!   one Authentication-Results field (RFC 8601) with this server's
//!   authserv-id. Fields with that id that came from outside are removed
//!   with [`strip_own_results`].
//! - On the way out: [`Signer`] signs with every key of the author's
//!   domain (ed25519-sha256 and rsa-sha256 side by side, as RFC 8463
//!   advises), relaxed/relaxed, From oversigned; [`generate`] makes a key
//!   and the TXT record to publish.
//!
//! DNS goes through hickory-resolver with the same [`DnsConfig`] as
//! postel-mx, so one setting points MX routing and authentication at the
//! same name servers.
//!
//! A check never fails as a Rust error: DNS failures are `temperror`
//! results, broken records `permerror`, and the caller decides (see
//! [`Verdict::temporary`]).
//!
//! ```no_run
//! # async fn f(message: &[u8]) -> Result<(), postel_auth::AuthError> {
//! use postel_auth::Authenticator;
//! use postel_mx::DnsConfig;
//!
//! let auth = Authenticator::new(&DnsConfig::default(), "mx.example.net")?;
//! let ip = "192.0.2.1".parse().unwrap();
//! let spf = auth.session_spf(ip, "mail.example.com", "alice@example.com").await;
//! let verdict = auth.verify(message, Some(&spf)).await;
//! let stored = [verdict.header().as_bytes(), message].concat();
//! # let _ = stored; Ok(()) }
//! ```

mod error;
pub mod results;
pub mod sign;
pub mod spf;
mod spf_syntax;
pub mod verify;

pub use error::AuthError;
pub use postel_mx::DnsConfig;
pub use results::strip_own_results;
pub use sign::{Algorithm, GeneratedKey, Signer, generate};
pub use spf::{SessionSpf, Spf, SpfResult};
pub use verify::{DkimCheck, DmarcCheck, DmarcPolicy, Outcome, Verdict};

use mail_auth::MessageAuthenticator;

/// The checks of a receiving server, with its resolver and its name.
#[derive(Clone)]
pub struct Authenticator {
    inner: MessageAuthenticator,
    authserv_id: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("authserv_id", &self.authserv_id)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator asking the name servers of `dns`, writing results
    /// as `authserv_id` (this server's host name, RFC 8601 section 2.5).
    /// Call it from within a tokio runtime.
    pub fn new(dns: &DnsConfig, authserv_id: impl Into<String>) -> Result<Self, AuthError> {
        let (servers, options) = dns
            .hickory()
            .map_err(|e| AuthError::Resolver(e.to_string()))?;
        let inner = MessageAuthenticator::new(servers, options)
            .map_err(|e| AuthError::Resolver(e.to_string()))?;
        Ok(Authenticator {
            inner,
            authserv_id: authserv_id.into(),
        })
    }

    /// The authserv-id results are written under.
    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }
}
