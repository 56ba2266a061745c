//! # postel-queue-postgres
//!
//! The [`postel_queue::Queue`] trait on PostgreSQL, so that several servers
//! share one queue: a message is delivered by one worker at a time, a dead
//! worker's claims lapse and are taken over, and a stale worker's result is
//! refused by a fencing token.
//!
//! The schema, created by [`PostgresQueue::connect`] (migrations under an
//! advisory lock, so concurrent starts are safe):
//!
//! - `postel_schedule`: the narrow hot table: message id, next due time, hold
//!   flag, lease owner, lease expiry, lease token. Claims read and update only
//!   this table, with `FOR UPDATE SKIP LOCKED`, in one short transaction.
//! - `postel_messages`: the envelope (the text form of
//!   [`postel_queue::record`]), creation and expiry times, the warned flag.
//! - `postel_recipients`: one row per recipient with its state record.
//! - `postel_bodies`: the message bytes (bytea), apart so the hot table stays
//!   small.
//!
//! A completion checks the lease token and writes every recipient and the
//! next due time in one transaction. Delivery itself runs outside any
//! transaction. `NOTIFY postel_queue` on every enqueue wakes idle workers
//! ([`PostgresQueue::notifications`]); polling stays the source of truth.
//!
//! ```no_run
//! # async fn run() -> Result<(), postel_queue::QueueError> {
//! use postel_queue::Queue;
//! let queue = postel_queue_postgres::PostgresQueue::connect(
//!     "host=127.0.0.1 port=5432 user=postel dbname=postel",
//!     8,
//!     postel_queue::schedule::RetrySchedule::default(),
//! )
//! .await?;
//! let report = queue.recover(std::time::SystemTime::now()).await?;
//! println!("{} messages queued", report.messages);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use postel_queue::model::{Message, NewMessage, QueueId, Recipient, RecipientState};
use postel_queue::record;
use postel_queue::schedule::RetrySchedule;
use postel_queue::{Claim, Lease, Queue, QueueError, RecoveryReport};
use tokio::sync::Notify;
use tokio_postgres::NoTls;

const MIGRATIONS: &[&str] = &[
    "
CREATE SEQUENCE postel_queue_seq;
CREATE TABLE postel_messages (
    id       text PRIMARY KEY,
    envelope text NOT NULL,
    created  timestamptz NOT NULL,
    expires  timestamptz NOT NULL,
    warned   boolean NOT NULL DEFAULT false
);
CREATE TABLE postel_bodies (
    id   text PRIMARY KEY REFERENCES postel_messages ON DELETE CASCADE,
    body bytea NOT NULL
);
CREATE TABLE postel_recipients (
    id     text NOT NULL REFERENCES postel_messages ON DELETE CASCADE,
    idx    integer NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (id, idx)
);
CREATE TABLE postel_schedule (
    id            text PRIMARY KEY REFERENCES postel_messages ON DELETE CASCADE,
    next_due      timestamptz NOT NULL,
    held          boolean NOT NULL DEFAULT false,
    lease_owner   text,
    lease_expires timestamptz,
    lease_token   bigint NOT NULL DEFAULT 0
);
CREATE INDEX postel_schedule_due ON postel_schedule (next_due) WHERE NOT held;
",
    "
CREATE TABLE postel_body_chunks (
    id   text NOT NULL,
    seq  integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (id, seq)
);
ALTER TABLE postel_messages ADD COLUMN chunked boolean NOT NULL DEFAULT false;
",
];

/// How much of a body is stored per row: appends are gathered to this
/// size, so a body is never one giant value in memory or in a row.
const CHUNK: usize = 256 * 1024;

/// A message being received into a [`PostgresQueue`]: its body goes to
/// the database a chunk at a time, under the id it will have.
#[derive(Debug)]
pub struct PostgresIncoming {
    /// Numbered when its first chunk is stored, or at the commit: a small
    /// message costs no extra round trip.
    id: Option<QueueId>,
    /// When it began; its id's time.
    began: SystemTime,
    /// The next chunk's number; 0 is the prefix, written at the commit.
    seq: i32,
    pending: Vec<u8>,
}

/// A body being read from a [`PostgresQueue`], a stored chunk at a time.
#[derive(Debug)]
pub struct PostgresBody {
    id: String,
    /// The stored chunks come next from this number; `None` for a body
    /// stored whole (before chunks) and already in `current`.
    next: Option<i32>,
    current: Vec<u8>,
    at: usize,
    size: u64,
}

/// An arbitrary key for the migration lock.
const MIGRATION_LOCK: i64 = 0x706f_7374_656c;

fn db(context: &'static str) -> impl Fn(tokio_postgres::Error) -> QueueError {
    move |e| QueueError::Storage {
        context,
        message: e
            .as_db_error()
            .map_or_else(|| e.to_string(), ToString::to_string),
    }
}

#[allow(clippy::needless_pass_by_value)] // The shape `map_err` wants.
fn pool_error(e: deadpool_postgres::PoolError) -> QueueError {
    QueueError::Storage {
        context: "getting a database connection",
        message: e.to_string(),
    }
}

/// The queue on PostgreSQL.
#[derive(Clone)]
pub struct PostgresQueue {
    pool: Pool,
    schedule: RetrySchedule,
    owner: Option<String>,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for PostgresQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresQueue")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// When a message is next due: now for an unreported failure, else its
/// earliest pending recipient; `None` once it is done.
fn next_due(message: &Message) -> Option<SystemTime> {
    let unreported = message.recipients.iter().any(|r| {
        matches!(
            r.state,
            RecipientState::Failed { reported: false }
                | RecipientState::Expired { reported: false }
        )
    });
    if unreported {
        return Some(SystemTime::UNIX_EPOCH);
    }
    message.next_due()
}

fn record_of(i: usize, r: &Recipient) -> String {
    record::recipient_line(i, r).trim_end().to_owned()
}

impl PostgresQueue {
    /// Connects with a pool of `pool_size` connections and brings the schema
    /// up to date. `url` is a libpq connection string or URL.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        schedule: RetrySchedule,
    ) -> Result<Self, QueueError> {
        let config: tokio_postgres::Config = url.parse().map_err(db("reading the database URL"))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| QueueError::Storage {
                context: "building the connection pool",
                message: e.to_string(),
            })?;
        let queue = PostgresQueue {
            pool,
            schedule,
            owner: None,
            notify: Arc::new(Notify::new()),
        };
        queue.migrate().await?;
        queue.listen(config);
        Ok(queue)
    }

    /// Makes [`Queue::recover`] release only the leases of `owner` (the
    /// worker name this process claims with): with several servers on one
    /// database, a restarting server must not release the others' leases.
    /// Without it, recovery releases every live lease, as for a queue that
    /// one process owns.
    #[must_use]
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Woken when any server enqueues a message (LISTEN/NOTIFY). A hint only:
    /// poll as well.
    pub fn notifications(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }

    async fn migrate(&self) -> Result<(), QueueError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client
            .transaction()
            .await
            .map_err(db("starting the migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db("locking for the migration"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS postel_migrations (version integer PRIMARY KEY)",
        )
        .await
        .map_err(db("creating the migrations table"))?;
        let done: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM postel_migrations",
                &[],
            )
            .await
            .map_err(db("reading the schema version"))?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
            if version <= done {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(db("migrating the schema"))?;
            tx.execute(
                "INSERT INTO postel_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(db("recording the schema version"))?;
        }
        tx.commit().await.map_err(db("committing the migration"))
    }

    /// A connection of its own that LISTENs and wakes [`Self::notifications`].
    fn listen(&self, config: tokio_postgres::Config) {
        let notify = Arc::clone(&self.notify);
        tokio::spawn(async move {
            loop {
                if let Ok((client, mut connection)) = config.connect(NoTls).await {
                    let messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    let driver = {
                        let notify = Arc::clone(&notify);
                        async move {
                            use futures_util::StreamExt as _;
                            let mut messages = std::pin::pin!(messages);
                            while let Some(Ok(m)) = messages.next().await {
                                if matches!(m, tokio_postgres::AsyncMessage::Notification(_)) {
                                    notify.notify_waiters();
                                    notify.notify_one();
                                }
                            }
                        }
                    };
                    let listen = async {
                        let _ = client.batch_execute("LISTEN postel_queue").await;
                        // Keep the client (and so the session) alive.
                        std::future::pending::<()>().await;
                    };
                    tokio::select! {
                        () = driver => {}
                        () = listen => {}
                    }
                }
                // The connection broke: polling covers the gap; try again.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn load<C: GenericClient>(
        client: &C,
        ids: &[String],
    ) -> Result<Vec<Message>, QueueError> {
        let rows = client
            .query(
                "SELECT m.id, m.envelope, m.warned, s.held, \
                        array_agg(r.record ORDER BY r.idx) \
                 FROM postel_messages m \
                 JOIN postel_schedule s ON s.id = m.id \
                 JOIN postel_recipients r ON r.id = m.id \
                 WHERE m.id = ANY($1) \
                 GROUP BY m.id, m.envelope, m.warned, s.held \
                 ORDER BY m.id",
                &[&ids],
            )
            .await
            .map_err(db("reading messages"))?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.get(0);
            let envelope: String = row.get(1);
            let qid = QueueId::parse(&id).ok_or_else(|| QueueError::Storage {
                context: "reading messages",
                message: format!("bad id {id:?}"),
            })?;
            let mut message =
                record::decode_envelope(&qid, &envelope).ok_or_else(|| QueueError::Storage {
                    context: "reading messages",
                    message: format!("unreadable envelope of {id}"),
                })?;
            message.warned = row.get(2);
            message.held = row.get(3);
            let records: Vec<String> = row.get(4);
            for line in &records {
                if record::apply_line(&mut message, line).is_none() {
                    return Err(QueueError::Storage {
                        context: "reading messages",
                        message: format!("unreadable recipient record of {id}"),
                    });
                }
            }
            messages.push(message);
        }
        Ok(messages)
    }

    async fn load_one<C: GenericClient>(client: &C, id: &QueueId) -> Result<Message, QueueError> {
        Self::load(client, &[id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| QueueError::NotFound(id.clone()))
    }

    /// Writes the recipients and the next due time, or removes a finished
    /// message.
    async fn store<C: GenericClient>(
        client: &C,
        message: &Message,
        changed: &[usize],
    ) -> Result<(), QueueError> {
        let id = message.id.to_string();
        let Some(due) = next_due(message).filter(|_| !message.is_done()) else {
            client
                .execute("DELETE FROM postel_messages WHERE id = $1", &[&id])
                .await
                .map_err(db("removing a finished message"))?;
            client
                .execute("DELETE FROM postel_body_chunks WHERE id = $1", &[&id])
                .await
                .map_err(db("removing a finished body"))?;
            return Ok(());
        };
        for &i in changed {
            let Some(r) = message.recipients.get(i) else {
                continue;
            };
            let idx = i32::try_from(i).unwrap_or(i32::MAX);
            client
                .execute(
                    "UPDATE postel_recipients SET record = $3 WHERE id = $1 AND idx = $2",
                    &[&id, &idx, &record_of(i, r)],
                )
                .await
                .map_err(db("writing a recipient"))?;
        }
        client
            .execute(
                "UPDATE postel_schedule SET next_due = $2 WHERE id = $1",
                &[&id, &due],
            )
            .await
            .map_err(db("scheduling a message"))?;
        Ok(())
    }

    /// Changes a message under its row lock, in one transaction: `change`
    /// returns the recipients it touched.
    async fn edit(
        &self,
        id: &QueueId,
        context: &'static str,
        change: impl FnOnce(&mut Message) -> Vec<usize>,
    ) -> Result<(), QueueError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(db(context))?;
        tx.execute(
            "SELECT 1 FROM postel_schedule WHERE id = $1 FOR UPDATE",
            &[&id.to_string()],
        )
        .await
        .map_err(db(context))?;
        let mut message = Self::load_one(&tx, id).await?;
        let changed = change(&mut message);
        Self::store(&tx, &message, &changed).await?;
        tx.commit().await.map_err(db(context))
    }

    async fn exists<C: GenericClient>(client: &C, id: &QueueId) -> Result<(), QueueError> {
        let n = client
            .execute(
                "SELECT 1 FROM postel_messages WHERE id = $1",
                &[&id.to_string()],
            )
            .await
            .map_err(db("finding a message"))?;
        if n == 0 {
            return Err(QueueError::NotFound(id.clone()));
        }
        Ok(())
    }
}

/// A new message's id: the time it began, and the next number of the
/// shared sequence.
async fn number<C: GenericClient>(client: &C, began: SystemTime) -> Result<QueueId, QueueError> {
    let seq: i64 = client
        .query_one("SELECT nextval('postel_queue_seq')", &[])
        .await
        .map_err(db("numbering a message"))?
        .get(0);
    Ok(QueueId::new(
        began,
        u32::try_from(seq & 0x00ff_ffff).unwrap_or(0),
    ))
}

impl PostgresQueue {
    async fn store_chunk(&self, id: &str, seq: i32, data: &[u8]) -> Result<(), QueueError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "INSERT INTO postel_body_chunks (id, seq, data) VALUES ($1, $2, $3)",
                &[&id, &seq, &data],
            )
            .await
            .map_err(db("storing a body chunk"))?;
        Ok(())
    }
}

impl Queue for PostgresQueue {
    type Incoming = PostgresIncoming;
    type Body = PostgresBody;

    async fn begin(&self, now: SystemTime) -> Result<PostgresIncoming, QueueError> {
        Ok(PostgresIncoming {
            id: None,
            began: now,
            seq: 1,
            pending: Vec::new(),
        })
    }

    async fn append(
        &self,
        incoming: &mut PostgresIncoming,
        mut chunk: &[u8],
    ) -> Result<(), QueueError> {
        while !chunk.is_empty() {
            let room = CHUNK - incoming.pending.len();
            let (now, later) = chunk.split_at(room.min(chunk.len()));
            incoming.pending.extend_from_slice(now);
            chunk = later;
            if incoming.pending.len() == CHUNK {
                let id = if let Some(id) = &incoming.id {
                    id.clone()
                } else {
                    let client = self.pool.get().await.map_err(pool_error)?;
                    let id = number(&client, incoming.began).await?;
                    incoming.id = Some(id.clone());
                    id
                };
                self.store_chunk(id.as_str(), incoming.seq, &incoming.pending)
                    .await?;
                incoming.seq += 1;
                incoming.pending.clear();
            }
        }
        Ok(())
    }

    async fn abort(&self, incoming: PostgresIncoming) -> Result<(), QueueError> {
        if let Some(id) = &incoming.id {
            let client = self.pool.get().await.map_err(pool_error)?;
            client
                .execute(
                    "DELETE FROM postel_body_chunks WHERE id = $1",
                    &[&id.as_str()],
                )
                .await
                .map_err(db("removing an aborted body"))?;
        }
        Ok(())
    }

    async fn open_body(&self, id: &QueueId) -> Result<PostgresBody, QueueError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let key = id.to_string();
        let chunked: bool = client
            .query_opt("SELECT chunked FROM postel_messages WHERE id = $1", &[&key])
            .await
            .map_err(db("opening a body"))?
            .map(|row| row.get(0))
            .ok_or_else(|| QueueError::NotFound(id.clone()))?;
        if chunked {
            let size: i64 = client
                .query_one(
                    "SELECT COALESCE(sum(length(data)), 0)::bigint FROM postel_body_chunks \
                     WHERE id = $1",
                    &[&key],
                )
                .await
                .map_err(db("measuring a body"))?
                .get(0);
            return Ok(PostgresBody {
                id: key,
                next: Some(0),
                current: Vec::new(),
                at: 0,
                size: u64::try_from(size).unwrap_or(0),
            });
        }
        let whole: Vec<u8> = client
            .query_opt("SELECT body FROM postel_bodies WHERE id = $1", &[&key])
            .await
            .map_err(db("reading a body"))?
            .map(|row| row.get(0))
            .ok_or_else(|| QueueError::NotFound(id.clone()))?;
        Ok(PostgresBody {
            id: key,
            next: None,
            size: whole.len() as u64,
            current: whole,
            at: 0,
        })
    }

    fn body_size(&self, body: &PostgresBody) -> u64 {
        body.size
    }

    async fn read_body(
        &self,
        body: &mut PostgresBody,
        buf: &mut [u8],
    ) -> Result<usize, QueueError> {
        while body.at >= body.current.len() {
            let Some(next) = body.next else {
                return Ok(0);
            };
            let client = self.pool.get().await.map_err(pool_error)?;
            let row = client
                .query_opt(
                    "SELECT seq, data FROM postel_body_chunks WHERE id = $1 AND seq >= $2 \
                     ORDER BY seq LIMIT 1",
                    &[&body.id, &next],
                )
                .await
                .map_err(db("reading a body chunk"))?;
            let Some(row) = row else {
                body.next = None;
                return Ok(0);
            };
            let seq: i32 = row.get(0);
            body.current = row.get(1);
            body.at = 0;
            body.next = Some(seq + 1);
        }
        Ok(postel_queue::read_slice(&body.current, &mut body.at, buf))
    }

    async fn commit(
        &self,
        incoming: PostgresIncoming,
        message: NewMessage,
        prefix: Vec<u8>,
        now: SystemTime,
    ) -> Result<QueueId, QueueError> {
        if message.recipients.is_empty() {
            return Err(QueueError::NoRecipients);
        }
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client
            .transaction()
            .await
            .map_err(db("starting an enqueue"))?;
        let id = match &incoming.id {
            Some(id) => id.clone(),
            None => number(&tx, incoming.began).await?,
        };
        let recipients = postel_queue::new_recipients(&message.recipients, now);
        let stored = Message {
            id: id.clone(),
            recipients,
            held: message.arrival.quarantine.is_some(),
            envelope: message,
            created: now,
            expires: self.schedule.expiry(now),
            warned: false,
        };
        let key = id.to_string();
        tx.execute(
            "INSERT INTO postel_messages (id, envelope, created, expires, chunked) \
             VALUES ($1, $2, $3, $4, true)",
            &[
                &key,
                &record::encode_envelope(&stored),
                &stored.created,
                &stored.expires,
            ],
        )
        .await
        .map_err(db("storing an envelope"))?;
        let insert = "INSERT INTO postel_body_chunks (id, seq, data) VALUES ($1, $2, $3)";
        tx.execute(insert, &[&key, &0i32, &prefix])
            .await
            .map_err(db("storing a body"))?;
        if !incoming.pending.is_empty() {
            tx.execute(insert, &[&key, &incoming.seq, &incoming.pending])
                .await
                .map_err(db("storing a body"))?;
        }
        let indices: Vec<i32> = (0..stored.recipients.len())
            .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
            .collect();
        let records: Vec<String> = stored
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| record_of(i, r))
            .collect();
        tx.execute(
            "INSERT INTO postel_recipients (id, idx, record) \
             SELECT $1, * FROM unnest($2::integer[], $3::text[])",
            &[&key, &indices, &records],
        )
        .await
        .map_err(db("storing recipients"))?;
        tx.execute(
            "INSERT INTO postel_schedule (id, next_due, held) VALUES ($1, $2, $3)",
            &[&key, &now, &stored.held],
        )
        .await
        .map_err(db("scheduling a message"))?;
        tx.batch_execute("NOTIFY postel_queue")
            .await
            .map_err(db("notifying workers"))?;
        tx.commit().await.map_err(db("committing an enqueue"))?;
        Ok(id)
    }

    async fn claim(
        &self,
        worker: &str,
        now: SystemTime,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, QueueError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let expires = now + lease_for;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let tx = client.transaction().await.map_err(db("starting a claim"))?;
        let rows = tx
            .query(
                "WITH due AS ( \
                     SELECT id FROM postel_schedule \
                     WHERE next_due <= $1 AND NOT held \
                       AND (lease_expires IS NULL OR lease_expires <= $1) \
                     ORDER BY next_due LIMIT $2 \
                     FOR UPDATE SKIP LOCKED) \
                 UPDATE postel_schedule s \
                 SET lease_owner = $3, lease_expires = $4, lease_token = s.lease_token + 1 \
                 FROM due WHERE s.id = due.id \
                 RETURNING s.id, s.lease_token",
                &[&now, &limit, &worker, &expires],
            )
            .await
            .map_err(db("claiming messages"))?;
        let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let messages = Self::load(&tx, &ids).await?;
        tx.commit().await.map_err(db("committing a claim"))?;
        let tokens: std::collections::HashMap<String, i64> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(messages
            .into_iter()
            .map(|message| {
                let token = tokens.get(message.id.as_str()).copied().unwrap_or(0);
                Claim {
                    lease: Lease {
                        id: message.id.clone(),
                        token: u64::try_from(token).unwrap_or(0),
                        expires,
                    },
                    message,
                }
            })
            .collect())
    }

    async fn extend(
        &self,
        lease: &Lease,
        now: SystemTime,
        lease_for: Duration,
    ) -> Result<Lease, QueueError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let expires = now + lease_for;
        let token = i64::try_from(lease.token).unwrap_or(-1);
        let n = client
            .execute(
                "UPDATE postel_schedule SET lease_expires = $3 \
                 WHERE id = $1 AND lease_token = $2 AND lease_owner IS NOT NULL",
                &[&lease.id.to_string(), &token, &expires],
            )
            .await
            .map_err(db("extending a lease"))?;
        if n == 0 {
            Self::exists(&client, &lease.id).await?;
            return Err(QueueError::StaleLease(lease.id.clone()));
        }
        Ok(Lease {
            expires,
            ..lease.clone()
        })
    }

    async fn complete(
        &self,
        lease: Lease,
        recipients: Vec<Recipient>,
        warned: bool,
    ) -> Result<(), QueueError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client
            .transaction()
            .await
            .map_err(db("starting a completion"))?;
        let id = lease.id.to_string();
        let row = tx
            .query_opt(
                "SELECT lease_token, lease_owner IS NOT NULL FROM postel_schedule \
                 WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(db("checking a lease"))?
            .ok_or_else(|| QueueError::NotFound(lease.id.clone()))?;
        let token: i64 = row.get(0);
        let held: bool = row.get(1);
        if u64::try_from(token).ok() != Some(lease.token) || !held {
            return Err(QueueError::StaleLease(lease.id.clone()));
        }
        let mut message = Self::load_one(&tx, &lease.id).await?;
        if recipients.len() != message.recipients.len() {
            return Err(QueueError::StaleLease(lease.id.clone()));
        }
        let changed: Vec<usize> = (0..recipients.len()).collect();
        message.recipients = recipients;
        message.warned |= warned;
        if message.warned {
            tx.execute(
                "UPDATE postel_messages SET warned = true WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(db("recording a delay warning"))?;
        }
        // The lease ends; its token stays, so it cannot complete twice.
        tx.execute(
            "UPDATE postel_schedule SET lease_owner = NULL, lease_expires = NULL WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(db("releasing a lease"))?;
        Self::store(&tx, &message, &changed).await?;
        tx.commit().await.map_err(db("committing a completion"))
    }

    async fn mark_reported(&self, id: &QueueId, recipients: &[usize]) -> Result<(), QueueError> {
        self.edit(id, "marking failures reported", |message| {
            for &i in recipients {
                if let Some(r) = message.recipients.get_mut(i) {
                    r.state = match r.state {
                        RecipientState::Failed { .. } => RecipientState::Failed { reported: true },
                        RecipientState::Expired { .. } => {
                            RecipientState::Expired { reported: true }
                        }
                        other => other,
                    };
                }
            }
            recipients.to_vec()
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Message>, QueueError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let ids: Vec<String> = client
            .query("SELECT id FROM postel_messages ORDER BY id", &[])
            .await
            .map_err(db("listing messages"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Self::load(&client, &ids).await
    }

    async fn show(&self, id: &QueueId) -> Result<Message, QueueError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        Self::load_one(&client, id).await
    }

    async fn set_held(&self, id: &QueueId, held: bool) -> Result<(), QueueError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let n = client
            .execute(
                "UPDATE postel_schedule SET held = $2 WHERE id = $1",
                &[&id.to_string(), &held],
            )
            .await
            .map_err(db("holding a message"))?;
        if n == 0 {
            return Err(QueueError::NotFound(id.clone()));
        }
        Ok(())
    }

    async fn delete(&self, id: &QueueId) -> Result<(), QueueError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let n = client
            .execute(
                "DELETE FROM postel_messages WHERE id = $1",
                &[&id.to_string()],
            )
            .await
            .map_err(db("deleting a message"))?;
        if n == 0 {
            return Err(QueueError::NotFound(id.clone()));
        }
        client
            .execute(
                "DELETE FROM postel_body_chunks WHERE id = $1",
                &[&id.to_string()],
            )
            .await
            .map_err(db("deleting a body"))?;
        Ok(())
    }

    async fn requeue(&self, id: &QueueId, now: SystemTime) -> Result<(), QueueError> {
        self.edit(id, "requeueing a message", |message| {
            let mut changed = Vec::new();
            for (i, r) in message.recipients.iter_mut().enumerate() {
                if r.state == RecipientState::Pending {
                    r.next_attempt = now;
                    changed.push(i);
                }
            }
            changed
        })
        .await
    }

    async fn recover(&self, now: SystemTime) -> Result<RecoveryReport, QueueError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let released = match &self.owner {
            Some(owner) => {
                client
                    .execute(
                        "UPDATE postel_schedule SET lease_owner = NULL, lease_expires = NULL \
                     WHERE lease_owner = $1 AND lease_expires > $2",
                        &[owner, &now],
                    )
                    .await
            }
            None => {
                client
                    .execute(
                        "UPDATE postel_schedule SET lease_owner = NULL, lease_expires = NULL \
                     WHERE lease_owner IS NOT NULL AND lease_expires > $1",
                        &[&now],
                    )
                    .await
            }
        }
        .map_err(db("releasing leases"))?;
        // Chunks of a body whose message never committed (a server that
        // crashed mid-message): old enough that no server still writes it.
        let day_ago = now
            .checked_sub(Duration::from_secs(24 * 3600))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let cutoff = QueueId::new(day_ago, 0).to_string();
        client
            .execute(
                "DELETE FROM postel_body_chunks c WHERE c.id < $1 \
                 AND NOT EXISTS (SELECT 1 FROM postel_messages m WHERE m.id = c.id)",
                &[&cutoff],
            )
            .await
            .map_err(db("removing unfinished bodies"))?;
        let messages: i64 = client
            .query_one("SELECT count(*) FROM postel_messages", &[])
            .await
            .map_err(db("counting messages"))?
            .get(0);
        Ok(RecoveryReport {
            messages: usize::try_from(messages).unwrap_or(0),
            leases_released: usize::try_from(released).unwrap_or(0),
            quarantined: Vec::new(),
        })
    }
}
