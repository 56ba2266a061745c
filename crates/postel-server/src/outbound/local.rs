//! Local delivery into Maildir, each mailbox once per attempt.

use postel_queue::model::{Message, Outcome, Stage};
use tracing::warn;

use super::{Delivery, result};
use crate::inbound::reply;

impl Delivery {
    /// Delivers one recipient of a local domain into its mailboxes' Maildirs.
    pub(super) fn deliver_local(
        &self,
        message: &Message,
        domain: &crate::config::LocalDomain,
        local_part: &str,
        body: &super::source::Source<'_>,
        written: &mut std::collections::HashSet<String>,
    ) -> Outcome {
        let extra = self.shared.users().local_parts(&domain.name);
        let boxes = domain.resolve(local_part, &extra);
        if boxes.is_empty() {
            return Outcome::Failed(result(
                Stage::Local,
                None,
                reply(550, (5, 1, 1), "No such user here"),
            ));
        }
        let return_path = match &message.envelope.return_path {
            postel_proto::types::ReversePath::Null => "<>".to_owned(),
            postel_proto::types::ReversePath::Mailbox(m) => format!("<{m}>"),
        };
        let config = self.shared.config();
        let host = config.hostname.to_string();
        for mailbox in boxes {
            let address = format!("{mailbox}@{}", domain.name);
            if !written.insert(address.clone()) {
                continue;
            }
            let dir = config.maildir(&domain.name, &mailbox);
            let id = message.id.to_string();
            let naming = crate::maildir::Naming::Once {
                id: &id,
                created: message
                    .created
                    .duration_since(std::time::SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            };
            let delivered = crate::maildir::deliver_from(
                &dir,
                &host,
                naming,
                (&return_path, &address, ""),
                &mut |out| body.write_blocking(out),
            );
            if let Err(e) = delivered {
                warn!(queue_id = %message.id, mailbox = %dir.display(), error = %e, "local delivery failed");
                return Outcome::Deferred(result(
                    Stage::Local,
                    None,
                    reply(451, (4, 3, 0), "Mailbox not writable"),
                ));
            }
        }
        Outcome::Delivered(result(
            Stage::Local,
            None,
            reply(250, (2, 0, 0), "Delivered to Maildir"),
        ))
    }
}
