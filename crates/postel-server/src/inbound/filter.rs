//! The session's side of the milters: the macros each stage sends, the
//! filters' verdicts as SMTP replies, and their envelope changes applied
//! to the transaction.

use postel_milter::Change;
use postel_milter::edit::Message as Edited;
use postel_proto::codec::parse_command;
use postel_proto::types::{Command, ForwardPath, Host, ReversePath};
use postel_proto::{ParserOptions, Status};
use postel_queue::model::NewRecipient;
use tracing::{info, warn};

use super::{Connection, Destination, Transaction, remote_destination};
use crate::filters::{Macros, MessageOutcome, Outcome};

/// What the filters decided about the message at its end.
pub(super) enum MessageVerdict {
    /// Store it (changed as the filters asked).
    Store(Box<Transaction>),
    /// Answer 250, store nothing.
    Discard,
    /// Refuse with this reply.
    Refuse(postel_proto::types::Reply<'static>),
    /// Answer with this 421 and close.
    Close(postel_proto::types::Reply<'static>),
}

/// The arguments of MAIL or RCPT as a filter gets them: the path in angle
/// brackets, then each parameter as the command carried it.
pub(super) fn command_args(command: &Command<'_>, path: String) -> Vec<String> {
    let line = String::from_utf8_lossy(&command.to_bytes()).into_owned();
    let rest = line
        .trim_end_matches("\r\n")
        .split_once(path.as_str())
        .map_or("", |(_, r)| r);
    std::iter::once(path)
        .chain(rest.split(' ').filter(|p| !p.is_empty()).map(str::to_owned))
        .collect()
}

impl Connection {
    fn base_macros(&self) -> Macros {
        vec![
            ("j", self.config.hostname.to_string()),
            ("{daemon_name}", "postel".to_owned()),
            ("v", format!("Postel {}", env!("CARGO_PKG_VERSION"))),
            ("_", format!("[{}]", self.peer.addr.ip())),
            ("{client_addr}", self.peer.addr.ip().to_string()),
            ("{client_port}", self.peer.addr.port().to_string()),
        ]
    }

    /// The connect event, before the greeting is sent.
    pub(super) async fn filter_connect(&mut self) -> Outcome {
        let macros = self.base_macros();
        self.filters.connect(self.peer.addr, &macros).await
    }

    /// HELO or EHLO.
    pub(super) async fn filter_helo(&mut self, name: &str) -> Outcome {
        let mut macros = self.base_macros();
        if self.peer.tls {
            macros.push(("{tls_version}", "TLS".to_owned()));
        }
        self.filters.helo(name, &macros).await
    }

    fn auth_macros(&self, macros: &mut Macros) {
        if let Some(user) = &self.peer.user {
            macros.push(("{auth_type}", "PLAIN".to_owned()));
            macros.push(("{auth_authen}", user.clone()));
        }
    }

    /// MAIL, with the sender's address, host and mailer.
    pub(super) async fn filter_mail(&mut self, args: &[String], from: &ReversePath<'_>) -> Outcome {
        let mut macros = self.base_macros();
        self.auth_macros(&mut macros);
        if let ReversePath::Mailbox(m) = from {
            macros.push(("{mail_addr}", m.to_string()));
            macros.push(("{mail_host}", m.host().to_string()));
        }
        macros.push((
            "{mail_mailer}",
            if self.peer.user.is_some() {
                "local"
            } else {
                "smtp"
            }
            .to_owned(),
        ));
        self.filters.mail(args, &macros).await
    }

    /// RCPT, with the recipient's address, host and mailer.
    pub(super) async fn filter_rcpt(
        &mut self,
        args: &[String],
        to: &ForwardPath<'_>,
        local: bool,
    ) -> Outcome {
        let mut macros = self.base_macros();
        if let Some(m) = to.mailbox() {
            macros.push(("{rcpt_addr}", m.to_string()));
            macros.push(("{rcpt_host}", m.host().to_string()));
        }
        macros.push((
            "{rcpt_mailer}",
            if local { "local" } else { "smtp" }.to_owned(),
        ));
        self.filters.rcpt(args, &macros).await
    }

    /// DATA, before its 354.
    pub(super) async fn filter_data(&mut self) -> Outcome {
        let mut macros = self.base_macros();
        self.auth_macros(&mut macros);
        self.filters.data(&macros).await
    }

    /// The message through every filter; the transaction as changed.
    pub(super) async fn filter_message(&mut self, mut txn: Transaction) -> MessageVerdict {
        if !txn.discard && !txn.data_filtered {
            match self.filter_data().await {
                Outcome::Continue => {}
                Outcome::Discard => txn.discard = true,
                Outcome::Refuse(r) => return MessageVerdict::Refuse(r),
                Outcome::Close(r) => return MessageVerdict::Close(r),
            }
        }
        if txn.discard {
            return MessageVerdict::Discard;
        }
        let mut message = Edited::parse(txn.body.held());
        let mut macros = self.base_macros();
        self.auth_macros(&mut macros);
        let MessageOutcome {
            outcome,
            envelope,
            quarantine,
        } = self.filters.message(&mut message, &macros).await;
        match outcome {
            None | Some(Outcome::Continue) => {}
            Some(Outcome::Discard) => return MessageVerdict::Discard,
            Some(Outcome::Refuse(r)) => return MessageVerdict::Refuse(r),
            Some(Outcome::Close(r)) => return MessageVerdict::Close(r),
        }
        for change in envelope {
            self.apply_envelope(&mut txn, &change);
        }
        if txn.recipients.is_empty() {
            info!(client = %self.peer.addr, "filters removed every recipient: message discarded");
            return MessageVerdict::Discard;
        }
        txn.body = super::body::Body::Held(message.to_bytes());
        txn.quarantine = quarantine;
        MessageVerdict::Store(Box::new(txn))
    }

    fn apply_envelope(&self, txn: &mut Transaction, change: &Change) {
        let opts = ParserOptions::STRICT;
        let line = |verb: &str, address: &str, parameters: &Option<String>| {
            let mut l = format!("{verb}:{address}");
            if let Some(p) = parameters {
                l.push(' ');
                l.push_str(p);
            }
            l.push_str("\r\n");
            l
        };
        match change {
            Change::AddRecipient {
                address,
                parameters,
            } => {
                let text = line("RCPT TO", address, parameters);
                let Ok(Status::Complete {
                    value: Command::Rcpt { to, params },
                    ..
                }) = parse_command(text.as_bytes(), &opts)
                else {
                    warn!(address = %address, "a filter added a recipient that does not parse: ignored");
                    return;
                };
                let to = to.into_owned();
                let Some(destinations) = self.filter_destination(&to) else {
                    warn!(address = %address, "a filter added a local recipient that does not exist: ignored");
                    return;
                };
                info!(client = %self.peer.addr, to = %to, "recipient added by a filter");
                txn.destinations.extend(destinations);
                txn.recipients.push(NewRecipient {
                    address: to,
                    orcpt: params
                        .orcpt
                        .as_ref()
                        .map(|o| format!("{};{}", o.addr_type(), o.address().as_str())),
                    notify: params.notify,
                });
            }
            Change::DeleteRecipient(address) => {
                let bare = |s: &str| {
                    s.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_ascii_lowercase()
                };
                let gone = bare(address);
                let before = txn.recipients.len();
                txn.recipients
                    .retain(|r| bare(&r.address.to_string()) != gone);
                if txn.recipients.len() < before {
                    info!(client = %self.peer.addr, to = %address, "recipient removed by a filter");
                }
            }
            Change::ChangeSender {
                address,
                parameters,
            } => {
                let text = line("MAIL FROM", address, parameters);
                if let Ok(Status::Complete {
                    value: Command::Mail { from, .. },
                    ..
                }) = parse_command(text.as_bytes(), &opts)
                {
                    info!(client = %self.peer.addr, from = %from, "sender changed by a filter");
                    txn.from = Some(from.into_owned());
                } else {
                    warn!(address = %address, "a filter's new sender does not parse: ignored");
                }
            }
            _ => {}
        }
    }

    /// Where a recipient a filter added goes: a local mailbox, or anywhere
    /// else (the operator's filter may relay); `None` for an unknown local
    /// mailbox.
    fn filter_destination(&self, to: &ForwardPath<'_>) -> Option<Vec<String>> {
        match self.relay_policy(to) {
            Ok(Destination::Local(boxes)) => Some(boxes),
            Ok(Destination::Remote(d)) => Some(vec![d]),
            Err(_) => {
                let m = to.mailbox()?;
                let local = match m.host() {
                    Host::Domain(d) => self.config.local_domain(d.as_str()).is_some(),
                    Host::Literal(_) => false,
                };
                (!local).then(|| vec![remote_destination(m)])
            }
        }
    }
}
