//! The end of a transaction: the message with this server's fields in
//! front (Authentication-Results, DKIM-Signature, Received) into the
//! queue, and the reply that says so.

use std::time::SystemTime;

use postel_proto::types::{BodyType, Reply};
use postel_queue::model::{Arrival, NewMessage, NewRecipient};
use postel_queue::{Queue, QueueError};
use tracing::{info, warn};

use super::{Connection, Transaction, reply};

impl Connection {
    /// Stores the message; the reply to the end of data.
    pub(super) async fn enqueue(&mut self, txn: Transaction) -> Reply<'static> {
        let Some(from) = txn.from else {
            return reply(503, (5, 5, 1), "No transaction");
        };
        let now = SystemTime::now();
        let received = self.received_header(&txn.recipients, now);
        // Newest first: the results of our checks, our signatures, our
        // trace field, then the message as it came.
        let results = txn.auth_results.as_deref().unwrap_or_default();
        let signatures = txn.signatures.as_deref().unwrap_or_default();
        let prefix = [results, signatures, received.as_str()]
            .concat()
            .into_bytes();
        let size = txn.body.len();
        let rcpts: Vec<String> = txn
            .recipients
            .iter()
            .map(|r| r.address.to_string())
            .collect();
        let message = NewMessage {
            return_path: from.clone(),
            envid: txn.envid,
            ret: txn.ret,
            body_type: txn.body_type.unwrap_or(BodyType::SevenBit),
            smtputf8: txn.smtputf8,
            requiretls: txn.requiretls,
            arrival: Arrival {
                client: Some(self.peer.addr.ip()),
                helo: self.peer.helo.clone(),
                auth_user: self.peer.user.clone(),
                tls: self.peer.tls,
                quarantine: txn.quarantine,
            },
            recipients: txn.recipients,
        };
        let queue = &self.shared.queue;
        let stored = match txn.body.finish(queue).await {
            // A message in a spool file of its own is fsynced in place:
            // keep that off the threads that drive the other connections.
            // Anything else waits for its sync as a future.
            Ok(incoming) if incoming.commit_blocks() => tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(queue.commit(incoming, message, prefix, now))
            }),
            Ok(incoming) => queue.commit(incoming, message, prefix, now).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(id) => {
                self.messages += 1;
                self.shared.metrics.messages_accepted.inc();
                self.shared.metrics.received_bytes.inc_by(size as u64);
                info!(
                    queue_id = %id, client = %self.peer.addr, from = %from,
                    to = %rcpts.join(","), size, "queued"
                );
                self.shared.wake.notify_one();
                reply(250, (2, 0, 0), &format!("Ok: queued as {id}"))
            }
            Err(QueueError::Full) => {
                self.shared.metrics.refused("queue_full");
                warn!(client = %self.peer.addr, from = %from, "queue full: message refused");
                reply(452, (4, 3, 1), "Insufficient system storage")
            }
            Err(e) => {
                warn!(client = %self.peer.addr, from = %from, error = %e, "queue failed: message refused");
                reply(451, (4, 3, 0), "Local error in processing")
            }
        }
    }

    /// The trace header of RFC 5321 section 4.4, with the protocol names of
    /// RFC 3848.
    fn received_header(&self, recipients: &[NewRecipient], now: SystemTime) -> String {
        let helo = self.peer.helo.as_deref().unwrap_or("unknown");
        let protocol = match (self.peer.extended, self.peer.tls, self.peer.user.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, false, true) => "ESMTPA",
            (true, true, false) => "ESMTPS",
            (true, true, true) => "ESMTPSA",
        };
        let for_clause = match recipients {
            [one] => format!("\r\n\tfor {}", one.address),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ([{}])\r\n\tby {} (Postel) with {protocol}{for_clause};\r\n\t{}\r\n",
            self.peer.addr.ip(),
            self.config.hostname,
            postel_queue::dsn::rfc5322_date(now)
        )
    }
}
