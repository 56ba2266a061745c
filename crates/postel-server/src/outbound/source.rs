//! A queued message's body on its way out. A small one is read into memory
//! once; a large one stays in the queue and is read a piece at a time for
//! each copy sent (a Maildir file, an SMTP or LMTP session), so that a
//! delivery holds a bounded buffer whatever the message's size. Its header
//! section is kept either way, for what looks only at the header: the
//! count of Received fields, the SMTPUTF8 decision and success reports.

use std::io::Write;

use postel_queue::model::QueueId;
use postel_queue::{Queue, QueueError};
use postel_session::client::MessageBody;

use crate::backend::AnyQueue;

/// Bodies up to this size are read into memory whole.
const WHOLE_UP_TO: u64 = 256 * 1024;

/// How much is read from the queue at once.
pub(super) const PIECE: usize = 64 * 1024;

/// The most of a header section kept; a longer one is cut there, which
/// only makes the Received count and a report's copy shorter.
const HEAD_UP_TO: usize = 64 * 1024;

/// The body of one claimed message.
pub(super) struct Source<'q> {
    queue: &'q AnyQueue,
    id: QueueId,
    size: u64,
    /// The header section, with the blank line that ends it when it was
    /// found.
    head: Vec<u8>,
    /// The whole body, for a small one.
    whole: Option<Vec<u8>>,
}

impl<'q> Source<'q> {
    /// Opens the body of message `id`, reading what it keeps.
    pub(super) async fn open(queue: &'q AnyQueue, id: &QueueId) -> Result<Source<'q>, QueueError> {
        let mut body = queue.open_body(id).await?;
        let size = queue.body_size(&body);
        let whole = size <= WHOLE_UP_TO;
        if whole {
            // Read straight into a buffer of the right size.
            let mut all = vec![0u8; usize::try_from(size).unwrap_or(0)];
            let mut at = 0;
            while at < all.len() {
                let n = queue
                    .read_body(&mut body, all.get_mut(at..).unwrap_or_default())
                    .await?;
                if n == 0 {
                    break;
                }
                at += n;
            }
            all.truncate(at);
            let head_len = header_end(&all).unwrap_or(all.len()).min(HEAD_UP_TO);
            return Ok(Source {
                queue,
                id: id.clone(),
                size,
                head: all.get(..head_len).unwrap_or_default().to_vec(),
                whole: Some(all),
            });
        }
        let mut read = Vec::new();
        let mut piece = vec![0u8; PIECE];
        loop {
            let n = queue.read_body(&mut body, &mut piece).await?;
            if n == 0 {
                break;
            }
            read.extend_from_slice(piece.get(..n).unwrap_or_default());
            if header_end(&read).is_some() || read.len() >= HEAD_UP_TO {
                break;
            }
        }
        let head_len = header_end(&read).unwrap_or(read.len()).min(HEAD_UP_TO);
        read.truncate(head_len);
        Ok(Source {
            queue,
            id: id.clone(),
            size,
            head: read,
            whole: None,
        })
    }

    /// The header section (at most 64 KiB of it).
    pub(super) fn head(&self) -> &[u8] {
        &self.head
    }

    /// The body as the client takes it: whole when small, else in pieces
    /// fed by [`Source::pieces`].
    pub(super) fn message_body(&self) -> MessageBody {
        match &self.whole {
            Some(whole) => MessageBody::Whole(whole.clone()),
            None => MessageBody::Streamed {
                size: Some(self.size),
                utf8_header: !self.head.is_ascii(),
            },
        }
    }

    /// Reads the body from its start, a piece at a time.
    pub(super) fn pieces(&self) -> Pieces<'_, 'q> {
        Pieces {
            source: self,
            body: None,
            piece: Vec::new(),
            started: false,
        }
    }

    /// Writes the whole body to `out`, from a thread that may block (a
    /// Maildir write under `block_in_place`).
    pub(super) fn write_blocking(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let handle = tokio::runtime::Handle::current();
        let mut pieces = self.pieces();
        while let Some(piece) = handle
            .block_on(pieces.next())
            .map_err(|e| std::io::Error::other(e.to_string()))?
        {
            out.write_all(piece)?;
        }
        Ok(())
    }
}

/// The body of a [`Source`], read in order.
pub(super) struct Pieces<'s, 'q> {
    source: &'s Source<'q>,
    body: Option<crate::backend::AnyBody>,
    piece: Vec<u8>,
    started: bool,
}

impl Pieces<'_, '_> {
    /// The next piece; `None` at the end.
    pub(super) async fn next(&mut self) -> Result<Option<&[u8]>, QueueError> {
        if let Some(whole) = &self.source.whole {
            if self.started {
                return Ok(None);
            }
            self.started = true;
            return Ok(Some(whole));
        }
        let queue = self.source.queue;
        if !self.started {
            self.started = true;
            self.body = Some(queue.open_body(&self.source.id).await?);
            self.piece = vec![0u8; PIECE];
        }
        let Some(body) = self.body.as_mut() else {
            return Ok(None);
        };
        let n = queue.read_body(body, &mut self.piece).await?;
        if n == 0 {
            self.body = None;
            return Ok(None);
        }
        Ok(self.piece.get(..n))
    }
}

/// Where the header section ends: just after the blank line.
fn header_end(message: &[u8]) -> Option<usize> {
    if message.starts_with(b"\r\n") {
        return Some(2);
    }
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}
