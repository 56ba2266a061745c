//! The message body on its way in: written to the queue as it arrives, in
//! pieces of at most [`FLUSH_AT`] octets, so that a connection holds a
//! bounded buffer however large the message. Only when a check needs the
//! whole message at once (a milter, the DKIM, ARC and DMARC checks, DKIM
//! signing) is the body held in memory, up to the message size limit.

use postel_queue::{Queue, QueueError};

use crate::backend::{AnyIncoming, AnyQueue};

/// How much of a streamed body is gathered before it is written.
pub(super) const FLUSH_AT: usize = 128 * 1024;

/// The body of the transaction.
#[derive(Default)]
pub(super) enum Body {
    /// Nothing yet, and nothing decided.
    #[default]
    Empty,
    /// Held whole, for the checks that read the whole message.
    Held(Vec<u8>),
    /// Going to the queue: `pending` is what is not written yet.
    Streamed {
        incoming: AnyIncoming,
        pending: Vec<u8>,
        len: usize,
    },
    /// Writing failed; the rest is dropped and the end of data is refused.
    Failed(QueueError),
}

impl Body {
    /// The octets received so far.
    pub(super) fn len(&self) -> usize {
        match self {
            Body::Empty | Body::Failed(_) => 0,
            Body::Held(b) => b.len(),
            Body::Streamed { len, .. } => *len,
        }
    }

    /// The held body; empty when it is streamed.
    pub(super) fn held(&self) -> &[u8] {
        match self {
            Body::Held(b) => b,
            _ => &[],
        }
    }

    /// Takes in the next piece: held, or begun and written to `queue`.
    pub(super) async fn push(&mut self, queue: &AnyQueue, hold: bool, data: &[u8]) {
        match self {
            Body::Failed(_) => {}
            Body::Held(b) => b.extend_from_slice(data),
            Body::Empty if hold => *self = Body::Held(data.to_vec()),
            Body::Empty => match queue.begin(std::time::SystemTime::now()).await {
                Ok(incoming) => {
                    let mut pending = Vec::with_capacity(FLUSH_AT);
                    pending.extend_from_slice(data);
                    *self = Body::Streamed {
                        incoming,
                        pending,
                        len: data.len(),
                    };
                }
                Err(e) => *self = Body::Failed(e),
            },
            Body::Streamed {
                incoming,
                pending,
                len,
            } => {
                *len += data.len();
                pending.extend_from_slice(data);
                if pending.len() < FLUSH_AT {
                    return;
                }
                let result = queue.append(incoming, pending).await;
                pending.clear();
                if let Err(e) = result {
                    self.discard(queue).await;
                    *self = Body::Failed(e);
                }
            }
        }
    }

    /// What the queue is to commit: the body begun and written to the
    /// end, whether it was streamed or held.
    pub(super) async fn finish(self, queue: &AnyQueue) -> Result<AnyIncoming, QueueError> {
        let now = std::time::SystemTime::now();
        let (mut incoming, rest) = match self {
            Body::Failed(e) => return Err(e),
            Body::Streamed {
                incoming, pending, ..
            } => (incoming, pending),
            Body::Held(whole) => (queue.begin(now).await?, whole),
            Body::Empty => (queue.begin(now).await?, Vec::new()),
        };
        match queue.append(&mut incoming, &rest).await {
            Ok(()) => Ok(incoming),
            Err(e) => {
                let _ = queue.abort(incoming).await;
                Err(e)
            }
        }
    }

    /// Throws the body away, and what of it the queue has.
    pub(super) async fn discard(&mut self, queue: &AnyQueue) {
        if let Body::Streamed { incoming, .. } = std::mem::take(self) {
            let _ = queue.abort(incoming).await;
        }
    }
}
