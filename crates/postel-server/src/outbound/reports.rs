//! The reports the delivery side sends besides bounces: success reports
//! (NOTIFY=SUCCESS) and delay warnings, each queued from the null sender.

use std::time::SystemTime;

use postel_queue::Queue as _;
use postel_queue::model::{Message, Outcome, Stage};
use tracing::{info, warn};

use super::Delivery;

impl Delivery {
    /// Queues the success report NOTIFY=SUCCESS asks for (RFC 3461): for a
    /// final delivery here, and for a hand-over to a server without DSN,
    /// after which nobody else will report (`relayed`). Queued before the
    /// outcome is recorded, so a crash repeats a report rather than losing it.
    pub(super) fn report_success(
        &self,
        message: &Message,
        outcomes: &[(usize, Outcome)],
        relayed: &[usize],
        body: &[u8],
        now: SystemTime,
    ) {
        use postel_queue::dsn::Action;
        let delivered: Vec<(usize, Action)> = outcomes
            .iter()
            .filter_map(|(i, o)| match o {
                Outcome::Delivered(a) if a.stage == Stage::Local => Some((*i, Action::Delivered)),
                Outcome::Delivered(_) if relayed.contains(i) => Some((*i, Action::Relayed)),
                _ => None,
            })
            .collect();
        if delivered.is_empty() {
            return;
        }
        let host = self.shared.config().hostname.to_string();
        let boundary = format!("{}/{}/success", message.id, host);
        let Some((envelope, report)) =
            postel_queue::success_report(message, &delivered, body, &host, now, &boundary)
        else {
            return;
        };
        let queue = &self.shared.queue;
        let queued = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(queue.enqueue(
                envelope,
                self.signed(report),
                now,
            ))
        });
        match queued {
            Ok(id) => {
                info!(queue_id = %message.id, report = %id, "success report queued");
                self.shared.wake.notify_one();
            }
            Err(e) => warn!(queue_id = %message.id, error = %e, "cannot queue the success report"),
        }
    }

    /// A report this server writes (bounce, delay warning, success report),
    /// DKIM-signed when its From domain, this host's name, or a parent of
    /// it has keys: receivers that check DMARC see it aligned. A signing
    /// failure leaves the report unsigned rather than lost.
    pub(super) fn signed(&self, report: Vec<u8>) -> Vec<u8> {
        match self.shared.config().dkim.sign(&report) {
            Ok(Some(fields)) => [fields.into_bytes(), report].concat(),
            Ok(None) => report,
            Err(e) => {
                warn!(error = %e, "cannot sign a report; it goes unsigned");
                report
            }
        }
    }

    /// Queues a delay warning (RFC 3464, Action delayed) before the message
    /// is marked as warned, so a crash repeats a warning rather than losing
    /// it. True when it is queued or nobody asked for it.
    pub(super) fn warn_delay(&self, message: &Message, now: SystemTime) -> bool {
        let queue = &self.shared.queue;
        let host = self.shared.config().hostname.to_string();
        let boundary = format!("{}/{}/delay", message.id, host);
        tokio::task::block_in_place(|| {
            let handle = tokio::runtime::Handle::current();
            let Ok(body) = handle.block_on(queue.body(&message.id)) else {
                return false;
            };
            let Some((envelope, report)) =
                postel_queue::delay_warning(message, &body, &host, now, &boundary)
            else {
                return true;
            };
            match handle.block_on(queue.enqueue(envelope, self.signed(report), now)) {
                Ok(id) => {
                    info!(queue_id = %message.id, warning = %id, "delay warning queued");
                    self.shared.wake.notify_one();
                    true
                }
                Err(e) => {
                    warn!(queue_id = %message.id, error = %e, "cannot queue the delay warning");
                    false
                }
            }
        })
    }
}
