//! The queue the configuration selects: the filesystem spool (the default)
//! or PostgreSQL, behind the one [`Queue`] trait.

use std::time::{Duration, SystemTime};

use postel_queue::model::{Message, NewMessage, QueueId, Recipient};
use postel_queue::{Claim, Lease, Queue, QueueError, RecoveryReport, SpoolQueue};
use postel_queue_postgres::PostgresQueue;

use crate::config::{Config, QueueBackend};

/// One of the queue backends.
#[derive(Debug)]
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

impl Queue for AnyQueue {
    async fn enqueue(
        &self,
        message: NewMessage,
        body: Vec<u8>,
        now: SystemTime,
    ) -> Result<QueueId, QueueError> {
        each!(self, q => q.enqueue(message, body, now).await)
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

    async fn body(&self, id: &QueueId) -> Result<Vec<u8>, QueueError> {
        each!(self, q => q.body(id).await)
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
