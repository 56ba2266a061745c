//! The queue the configuration selects: the filesystem spool (the default)
//! or PostgreSQL, behind the one [`Queue`] trait.

use std::time::{Duration, SystemTime};

use postel_queue::model::{Message, NewMessage, QueueId, Recipient};
use postel_queue::{
    Claim, Lease, Queue, QueueError, RecoveryReport, SpoolBody, SpoolIncoming, SpoolQueue,
};
use postel_queue_postgres::{PostgresBody, PostgresIncoming, PostgresQueue};

use crate::config::{Config, QueueBackend};

/// One of the queue backends.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // One per server, never moved about.
pub enum AnyQueue {
    /// The filesystem spool under the data directory.
    Spool(SpoolQueue),
    /// A PostgreSQL database shared by several servers.
    Postgres(PostgresQueue),
}

/// Opens the configured queue.
pub async fn open(config: &Config) -> Result<AnyQueue, QueueError> {
    let schedule = crate::schedule(config);
    match &config.queue_backend {
        QueueBackend::Spool => Ok(AnyQueue::Spool(SpoolQueue::open(
            config.queue_dir(),
            schedule,
        )?)),
        QueueBackend::Postgres { url, pool_size } => Ok(AnyQueue::Postgres(
            PostgresQueue::connect(url, *pool_size, schedule)
                .await?
                .with_owner(config.node.clone()),
        )),
    }
}

macro_rules! each {
    ($self:ident, $q:ident => $e:expr) => {
        match $self {
            AnyQueue::Spool($q) => $e,
            AnyQueue::Postgres($q) => $e,
        }
    };
}

/// A message being received into either backend.
#[derive(Debug)]
pub enum AnyIncoming {
    /// Into the spool.
    Spool(SpoolIncoming),
    /// Into PostgreSQL.
    Postgres(PostgresIncoming),
}

impl AnyIncoming {
    /// Whether committing it blocks the calling thread (see
    /// [`SpoolIncoming::commit_blocks`]); PostgreSQL's commit is async I/O.
    pub fn commit_blocks(&self) -> bool {
        match self {
            AnyIncoming::Spool(i) => i.commit_blocks(),
            AnyIncoming::Postgres(_) => false,
        }
    }
}

/// A body being read from either backend.
#[derive(Debug)]
pub enum AnyBody {
    /// From the spool.
    Spool(SpoolBody),
    /// From PostgreSQL.
    Postgres(PostgresBody),
}

fn mismatch() -> QueueError {
    QueueError::Storage {
        context: "matching a message to its backend",
        message: "a message of one backend handed to the other".into(),
    }
}

impl Queue for AnyQueue {
    type Incoming = AnyIncoming;
    type Body = AnyBody;

    async fn begin(&self, now: SystemTime) -> Result<AnyIncoming, QueueError> {
        match self {
            AnyQueue::Spool(q) => q.begin(now).await.map(AnyIncoming::Spool),
            AnyQueue::Postgres(q) => q.begin(now).await.map(AnyIncoming::Postgres),
        }
    }

    async fn append(&self, incoming: &mut AnyIncoming, chunk: &[u8]) -> Result<(), QueueError> {
        match (self, incoming) {
            (AnyQueue::Spool(q), AnyIncoming::Spool(i)) => q.append(i, chunk).await,
            (AnyQueue::Postgres(q), AnyIncoming::Postgres(i)) => q.append(i, chunk).await,
            _ => Err(mismatch()),
        }
    }

    async fn commit(
        &self,
        incoming: AnyIncoming,
        message: NewMessage,
        prefix: Vec<u8>,
        now: SystemTime,
    ) -> Result<QueueId, QueueError> {
        match (self, incoming) {
            (AnyQueue::Spool(q), AnyIncoming::Spool(i)) => q.commit(i, message, prefix, now).await,
            (AnyQueue::Postgres(q), AnyIncoming::Postgres(i)) => {
                q.commit(i, message, prefix, now).await
            }
            _ => Err(mismatch()),
        }
    }

    async fn abort(&self, incoming: AnyIncoming) -> Result<(), QueueError> {
        match (self, incoming) {
            (AnyQueue::Spool(q), AnyIncoming::Spool(i)) => q.abort(i).await,
            (AnyQueue::Postgres(q), AnyIncoming::Postgres(i)) => q.abort(i).await,
            _ => Err(mismatch()),
        }
    }

    async fn open_body(&self, id: &QueueId) -> Result<AnyBody, QueueError> {
        match self {
            AnyQueue::Spool(q) => q.open_body(id).await.map(AnyBody::Spool),
            AnyQueue::Postgres(q) => q.open_body(id).await.map(AnyBody::Postgres),
        }
    }

    fn body_size(&self, body: &AnyBody) -> u64 {
        match (self, body) {
            (AnyQueue::Spool(q), AnyBody::Spool(b)) => q.body_size(b),
            (AnyQueue::Postgres(q), AnyBody::Postgres(b)) => q.body_size(b),
            _ => 0,
        }
    }

    async fn read_body(&self, body: &mut AnyBody, buf: &mut [u8]) -> Result<usize, QueueError> {
        match (self, body) {
            (AnyQueue::Spool(q), AnyBody::Spool(b)) => q.read_body(b, buf).await,
            (AnyQueue::Postgres(q), AnyBody::Postgres(b)) => q.read_body(b, buf).await,
            _ => Err(mismatch()),
        }
    }

    async fn claim(
        &self,
        worker: &str,
        now: SystemTime,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, QueueError> {
        each!(self, q => q.claim(worker, now, lease_for, limit).await)
    }

    async fn extend(
        &self,
        lease: &Lease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, QueueError> {
        each!(self, q => q.extend(lease, now, lease_for).await)
    }

    async fn complete(
        &self,
        lease: Lease,
        recipients: Vec<Recipient>,
        warned: bool,
    ) -> Result<(), QueueError> {
        each!(self, q => q.complete(lease, recipients, warned).await)
    }

    async fn mark_reported(&self, id: &QueueId, recipients: &[usize]) -> Result<(), QueueError> {
        each!(self, q => q.mark_reported(id, recipients).await)
    }

    async fn list(&self) -> Result<Vec<Message>, QueueError> {
        each!(self, q => q.list().await)
    }

    async fn show(&self, id: &QueueId) -> Result<Message, QueueError> {
        each!(self, q => q.show(id).await)
    }

    async fn set_held(&self, id: &QueueId, held: bool) -> Result<(), QueueError> {
        each!(self, q => q.set_held(id, held).await)
    }

    async fn delete(&self, id: &QueueId) -> Result<(), QueueError> {
        each!(self, q => q.delete(id).await)
    }

    async fn requeue(&self, id: &QueueId, now: SystemTime) -> Result<(), QueueError> {
        each!(self, q => q.requeue(id, now).await)
    }

    async fn recover(&self, now: SystemTime) -> Result<RecoveryReport, QueueError> {
        each!(self, q => q.recover(now).await)
    }
}
