//! The PostgreSQL queue beside the filesystem spool, in the same run:
//! durable enqueues of a 4 KiB message, and claim-plus-complete cycles (one
//! delivery recorded), each with 1 and with 8 concurrent callers.
//!
//! ```text
//! .ci/with-postgres cargo bench -p postel-benches --bench queue-backends
//! ```
//!
//! Without `POSTEL_TEST_DATABASE_URL` (which `.ci/with-postgres` sets) only
//! the spool is measured.

// A benchmark that meets unexpected input should stop loudly.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput};
use postel_benches::print_ratios;
use postel_proto::types::Reply;
use postel_queue::model::{AttemptResult, Outcome, Stage};
use postel_queue::schedule::RetrySchedule;
use postel_queue::{Queue, SpoolQueue, apply_outcomes};
use postel_queue_postgres::PostgresQueue;

/// Runs `op` `iters` times over `callers` concurrent tasks; the time per op.
fn concurrent<Q, F, Fut>(
    rt: &tokio::runtime::Runtime,
    q: &Arc<Q>,
    callers: u64,
    iters: u64,
    op: F,
) -> Duration
where
    Q: Queue + 'static,
    F: Fn(Arc<Q>) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per = iters.div_ceil(callers);
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let q = Arc::clone(q);
            tasks.push(tokio::spawn(async move {
                for _ in 0..per {
                    op(Arc::clone(&q)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^52.
    start
        .elapsed()
        .mul_f64(iters as f64 / (per * callers) as f64)
}

async fn enqueue<Q: Queue>(q: Arc<Q>) {
    q.enqueue(
        postel_benches::queue_message(),
        vec![b'x'; 4096],
        SystemTime::now(),
    )
    .await
    .unwrap();
}

/// Claims one due message and records it delivered; enqueues one first so
/// there is always work.
async fn cycle<Q: Queue>(q: Arc<Q>) {
    enqueue(Arc::clone(&q)).await;
    let now = SystemTime::now();
    for claim in q
        .claim("bench", now, Duration::from_secs(60), 1)
        .await
        .unwrap()
    {
        let mut m = claim.message.clone();
        let result = AttemptResult {
            stage: Stage::Data,
            remote_host: None,
            reply: Reply::OK,
        };
        apply_outcomes(
            &mut m,
            &[(0, Outcome::Delivered(result))],
            &RetrySchedule::default(),
            now,
            0.5,
        );
        q.complete(claim.lease, m.recipients, false).await.unwrap();
    }
}

fn main() {
    // Eight threads: the spool's calls block, so each caller needs one.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("postel-backends-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spool = Arc::new(SpoolQueue::open(&dir, RetrySchedule::default()).unwrap());
    let pg = std::env::var("POSTEL_TEST_DATABASE_URL").ok().map(|url| {
        Arc::new(
            rt.block_on(PostgresQueue::connect(&url, 16, RetrySchedule::default()))
                .unwrap(),
        )
    });
    if pg.is_none() {
        eprintln!("no POSTEL_TEST_DATABASE_URL: measuring the spool only (use .ci/with-postgres)");
    }
    let mut c = Criterion::default().configure_from_args();
    for (group, callers) in [("enqueue-4KiB-1", 1u64), ("enqueue-4KiB-8", 8)] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        g.sample_size(10);
        g.bench_function("spool", |b| {
            b.iter_custom(|iters| concurrent(&rt, &spool, callers, iters, enqueue));
        });
        if let Some(pg) = &pg {
            g.bench_function("postgres", |b| {
                b.iter_custom(|iters| concurrent(&rt, pg, callers, iters, enqueue));
            });
        }
        g.finish();
    }
    for (group, callers) in [
        ("enqueue-claim-complete-1", 1u64),
        ("enqueue-claim-complete-8", 8),
    ] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        g.sample_size(10);
        g.bench_function("spool", |b| {
            b.iter_custom(|iters| concurrent(&rt, &spool, callers, iters, cycle));
        });
        if let Some(pg) = &pg {
            g.bench_function("postgres", |b| {
                b.iter_custom(|iters| concurrent(&rt, pg, callers, iters, cycle));
            });
        }
        g.finish();
    }
    c.final_summary();
    if pg.is_some() {
        print_ratios(&[
            ("enqueue-4KiB-1", "postgres", &["spool"]),
            ("enqueue-4KiB-8", "postgres", &["spool"]),
            ("enqueue-claim-complete-1", "postgres", &["spool"]),
            ("enqueue-claim-complete-8", "postgres", &["spool"]),
        ]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
