//! The session's side of mail authentication: SPF at MAIL, DKIM, ARC and
//! DMARC at the end of data with the policy of `[authentication]`, and
//! DKIM signing of what authenticated users send.

use postel_auth::{Authenticator, DmarcPolicy, SpfResult};
use postel_proto::types::{Reply, ReversePath};
use tracing::{info, warn};

use super::{Connection, Transaction, reply};
use crate::config::AuthAction;

impl Connection {
    /// The checks this session's mail gets: none for an authenticated
    /// client or a listener whose role is not checked.
    pub(super) fn checked(&self) -> Option<Authenticator> {
        if self.peer.user.is_some() || !self.config.authentication.checks(self.role) {
            return None;
        }
        self.shared.authenticator.clone()
    }

    /// SPF of the HELO and MAIL FROM identities (RFC 7208), kept with the
    /// transaction; the refusal when the policy asks for one.
    pub(super) async fn check_spf(
        &mut self,
        from: &ReversePath<'_>,
    ) -> Result<Option<postel_auth::SessionSpf>, Reply<'static>> {
        let Some(auth) = self.checked() else {
            return Ok(None);
        };
        let sender = match from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        let helo = self.peer.helo.as_deref().unwrap_or_default();
        let spf = auth.session_spf(self.peer.addr.ip(), helo, &sender).await;
        let policy = &self.config.authentication;
        if spf.temporary() && policy.tempfail_on_dns_failure {
            info!(client = %self.peer.addr, from = %sender, "SPF temperror: sender deferred");
            self.shared.metrics.refused("spf");
            return Err(reply(
                451,
                (4, 7, 24),
                "SPF check failed temporarily, try again later",
            ));
        }
        if spf.mail_from().result() == SpfResult::Fail && policy.spf_fail == AuthAction::Reject {
            info!(client = %self.peer.addr, from = %sender, "SPF fail: sender refused");
            self.shared.metrics.refused("spf");
            let text = match spf.mail_from().explanation() {
                Some(why) => format!(
                    "SPF: {} does not authorize this client: {why}",
                    spf.mail_from().domain()
                ),
                None => format!(
                    "SPF: {} does not authorize this client",
                    spf.mail_from().domain()
                ),
            };
            return Err(reply(550, (5, 7, 23), &text));
        }
        Ok(Some(spf))
    }

    /// DKIM, ARC and DMARC on the message as it arrived: its
    /// Authentication-Results kept with the transaction, forged fields with
    /// our authserv-id removed, and the DMARC policy applied.
    pub(super) async fn check_message(
        &mut self,
        txn: &mut Transaction,
    ) -> Result<(), Reply<'static>> {
        let Some(auth) = self.checked() else {
            return Ok(());
        };
        let verdict = auth.verify(txn.body.held(), txn.spf.as_ref()).await;
        if let Some(kept) = postel_auth::strip_own_results(txn.body.held(), auth.authserv_id()) {
            info!(client = %self.peer.addr, "forged Authentication-Results removed");
            txn.body = super::body::Body::Held(kept);
        }
        let policy = &self.config.authentication;
        let dmarc = &verdict.dmarc;
        info!(
            client = %self.peer.addr, dmarc = %dmarc.outcome, domain = %dmarc.domain,
            dkim = ?verdict.dkim.iter().map(|d| format!("{}:{}", d.domain, d.outcome)).collect::<Vec<_>>(),
            "authentication checked"
        );
        if verdict.temporary() && policy.tempfail_on_dns_failure {
            self.shared.metrics.refused("dmarc");
            return Err(reply(
                451,
                (4, 7, 1),
                "DMARC check failed temporarily, try again later",
            ));
        }
        let action = match verdict.dmarc_failure() {
            Some(DmarcPolicy::Reject) => policy.dmarc_reject,
            Some(DmarcPolicy::Quarantine) => policy.dmarc_quarantine,
            Some(DmarcPolicy::None) | None => AuthAction::Deliver,
        };
        match action {
            AuthAction::Reject => {
                info!(client = %self.peer.addr, domain = %dmarc.domain, "DMARC failure: message refused");
                self.shared.metrics.refused("dmarc");
                return Err(reply(
                    550,
                    (5, 7, 1),
                    &format!("Rejected by the DMARC policy of {}", dmarc.domain),
                ));
            }
            AuthAction::Hold => {
                txn.quarantine = Some(format!("DMARC policy of {}", dmarc.domain));
            }
            AuthAction::Deliver => {}
        }
        txn.auth_results = Some(verdict.header().to_owned());
        Ok(())
    }

    /// The DKIM-Signature fields for a message an authenticated user sent
    /// from a domain with keys; the refusal if signing failed.
    pub(super) fn sign(&self, txn: &mut Transaction) -> Result<(), Reply<'static>> {
        if self.peer.user.is_none() {
            return Ok(());
        }
        match self.config.dkim.sign(txn.body.held()) {
            Ok(signatures) => {
                txn.signatures = signatures;
                Ok(())
            }
            Err(e) => {
                warn!(client = %self.peer.addr, error = %e, "DKIM signing failed");
                Err(reply(451, (4, 3, 0), "Local error in processing"))
            }
        }
    }
}
