//! RCPT: where each recipient's mail goes (the relay policy: local
//! mailboxes for anyone, anything else only for authenticated clients),
//! the LMTP probe of a recipient, and the filters' word on it.

use postel_proto::types::{ForwardPath, Host, Reply};
use postel_queue::model::NewRecipient;
use postel_session::server::{RcptRequest, Server};
use tracing::info;

use super::filter::command_args;
use super::{Connection, Destination, remote_destination, reply};
use crate::filters::Outcome;

impl Connection {
    /// Where mail for `to` goes, as `mailbox@domain` for local mailboxes and
    /// the address for others, or the refusal: local domains' known mailboxes
    /// for anyone, anything else only for authenticated clients.
    pub(super) fn relay_policy(&self, to: &ForwardPath<'_>) -> Result<Destination, Reply<'static>> {
        let mailboxes = |local: &crate::config::LocalDomain, part: &str| -> Vec<String> {
            let extra = self.users.local_parts(&local.name);
            local
                .resolve(part, &extra)
                .into_iter()
                .map(|b| format!("{b}@{}", local.name))
                .collect()
        };
        let local = |domain: Option<&crate::config::LocalDomain>, part: &str| {
            let boxes = domain.map(|d| mailboxes(d, part)).unwrap_or_default();
            if boxes.is_empty() {
                Err(reply(550, (5, 1, 1), "No such user here"))
            } else {
                Ok(Destination::Local(boxes))
            }
        };
        let relay = || {
            if self.peer.user.is_some() {
                to.mailbox()
                    .map(|m| Destination::Remote(remote_destination(m)))
                    .ok_or_else(|| reply(550, (5, 7, 1), "Relay access denied"))
            } else {
                Err(reply(550, (5, 7, 1), "Relay access denied"))
            }
        };
        let first = self.config.domains.first();
        match to {
            // RFC 5321 section 4.5.1: postmaster is always accepted.
            ForwardPath::Postmaster => Ok(Destination::Local(
                first
                    .map(|d| mailboxes(d, "postmaster"))
                    .unwrap_or_default(),
            )),
            ForwardPath::Mailbox(m) => {
                let part = m.local_part().unquoted();
                match m.host() {
                    Host::Domain(d) => match self.config.local_domain(d.as_str()) {
                        Some(domain) => local(Some(domain), &part),
                        None => relay(),
                    },
                    // Mail to `user@[our address]` is local (RFC 5321
                    // section 4.1.3), for the first domain's mailboxes.
                    Host::Literal(l)
                        if l.ip()
                            .is_some_and(|ip| self.shared.own_addresses.contains(&ip)) =>
                    {
                        local(first, &part)
                    }
                    Host::Literal(_) => relay(),
                }
            }
        }
    }

    /// The relay policy: local domains' known mailboxes for anyone; anything
    /// else only for authenticated clients. Never an open relay.
    pub(super) async fn recipient(
        &mut self,
        server: &mut Server,
        r: RcptRequest,
    ) -> std::io::Result<()> {
        let misuse = |e: String| std::io::Error::other(e);
        if let Some(refusal) = self.over_rate(false) {
            return r.reject(server, refusal).map_err(|e| misuse(e.to_string()));
        }
        let verdict = match (self.relay_policy(&r.to), self.probe_target(&r.to)) {
            (Ok(Destination::Local(boxes)), Some(target)) => {
                let helo = self.config.hostname.to_string();
                crate::outbound::probe_lmtp(&target, &boxes, &helo)
                    .await
                    .map(|()| Destination::Local(boxes))
            }
            (verdict, _) => verdict,
        };
        let verdict = verdict.map(|d| match d {
            Destination::Local(boxes) => (boxes, true),
            Destination::Remote(address) => (vec![address], false),
        });
        if let (Ok((_, local)), false) = (&verdict, self.filters.is_empty()) {
            let command = postel_proto::types::Command::Rcpt {
                to: r.to.clone(),
                params: r.params.clone(),
            };
            let args = command_args(&command, r.to.to_string());
            match self.filter_rcpt(&args, &r.to, *local).await {
                Outcome::Continue => {}
                Outcome::Discard => self.txn.discard = true,
                Outcome::Refuse(refusal) => {
                    info!(client = %self.peer.addr, to = %r.to, reply = %refusal, "recipient refused by a filter");
                    self.shared.metrics.refused("filter");
                    return r.reject(server, refusal).map_err(|e| misuse(e.to_string()));
                }
                Outcome::Close(reply) => {
                    server.shutdown_with(&reply);
                    return Ok(());
                }
            }
        }
        match verdict {
            Ok((destinations, _))
                if !destinations.is_empty()
                    && destinations
                        .iter()
                        .all(|d| self.txn.destinations.contains(d)) =>
            {
                // A recipient whose mail goes where an earlier one's already
                // does is answered 250 but stored once, as Postfix's duplicate
                // filter does: 100 RCPTs for one mailbox must not mean 100
                // copies of the message on disk.
                info!(client = %self.peer.addr, to = %r.to, "duplicate recipient collapsed");
                r.accept(server).map_err(|e| misuse(e.to_string()))
            }
            Ok((destinations, local)) => {
                if local {
                    self.txn
                        .local_mailboxes
                        .extend(destinations.iter().cloned());
                }
                self.txn.destinations.extend(destinations);
                self.txn.recipients.push(NewRecipient {
                    address: r.to.clone(),
                    // Kept as xtext: decoding it lossily would relay and
                    // report a different address than the client gave.
                    orcpt: r
                        .params
                        .orcpt
                        .as_ref()
                        .map(|o| format!("{};{}", o.addr_type(), o.address().as_str())),
                    notify: r.params.notify,
                });
                r.accept(server).map_err(|e| misuse(e.to_string()))
            }
            Err(refusal) => {
                info!(client = %self.peer.addr, to = %r.to, reply = %refusal, "recipient refused");
                let reason = match refusal.enhanced().map(|e| e.to_string()).as_deref() {
                    Some("5.7.1") => "relay",
                    Some("5.1.1") => "unknown_user",
                    _ => "policy",
                };
                self.shared.metrics.refused(reason);
                r.reject(server, refusal).map_err(|e| misuse(e.to_string()))
            }
        }
    }

    /// The LMTP server to ask about a recipient of a domain whose check is
    /// a probe.
    pub(super) fn probe_target(&self, to: &ForwardPath<'_>) -> Option<crate::config::LmtpTarget> {
        let Host::Domain(d) = to.mailbox()?.host() else {
            return None;
        };
        let config = &self.config;
        let local = config.local_domain(d.as_str())?;
        match (&local.delivery, local.recipients) {
            (crate::config::LocalDelivery::Lmtp(t), crate::config::RecipientCheck::Probe) => {
                Some(t.clone())
            }
            _ => None,
        }
    }
}
