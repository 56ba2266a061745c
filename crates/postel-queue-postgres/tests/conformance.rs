//! The postel-queue conformance suite, unchanged, against PostgreSQL: each
//! check on a fresh database of the server `.ci/with-postgres` starts.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postel_queue::conformance;
use postel_queue::schedule::RetrySchedule;
use postel_queue_postgres::PostgresQueue;

fn run<F, Fut>(label: &str, check: F)
where
    F: FnOnce(PostgresQueue) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run_at(label, |q, _| check(q));
}

/// [`run`], with the database's address for a check that looks inside.
fn run_at<F, Fut>(label: &str, check: F)
where
    F: FnOnce(PostgresQueue, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(url) = postel_testkit::fresh_database(label) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let q = PostgresQueue::connect(&url, 4, RetrySchedule::default())
            .await
            .unwrap();
        check(q, url).await;
    });
}

#[test]
fn enqueue_and_claim() {
    run("claim", |q| async move {
        conformance::enqueue_and_claim(&q).await;
    });
}

#[test]
fn lease_expiry_takeover_and_fencing() {
    run("fencing", |q| async move {
        conformance::lease_expiry_takeover_and_fencing(&q).await;
    });
}

#[test]
fn partial_success_retry_and_bounce() {
    run("partial", |q| async move {
        conformance::partial_success_retry_and_bounce(&q).await;
    });
}

#[test]
fn expiry_and_dsn() {
    run("expiry", |q| async move {
        conformance::expiry_and_dsn(&q).await;
    });
}

#[test]
fn hold_release_delete_requeue() {
    run("hold", |q| async move {
        conformance::hold_release_delete_requeue(&q).await;
    });
}

#[test]
fn recovery() {
    run(
        "recovery",
        |q| async move { conformance::recovery(&q).await },
    );
}

#[test]
fn stats() {
    run("stats", |q| async move { conformance::stats(&q).await });
}

#[test]
fn requiretls_is_kept() {
    run("requiretls", |q| async move {
        conformance::requiretls_is_kept(&q).await;
    });
}

#[test]
fn quarantined_on_arrival() {
    run("quarantine", |q| async move {
        conformance::quarantined_on_arrival(&q).await;
    });
}

#[test]
fn streamed_body_round_trips() {
    run("streamed", |q| async move {
        conformance::streamed_body_round_trips(&q).await;
    });
}

#[test]
fn aborted_body_leaves_nothing() {
    run_at("aborted", |q, url| async move {
        conformance::aborted_body_leaves_nothing(&q).await;
        // The 300 KiB body was more than one chunk: the first was stored
        // before the abort, and must be gone.
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let rows: i64 = client
            .query_one("SELECT count(*) FROM postel_body_chunks", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "an aborted body left chunks");
    });
}

#[test]
fn large_body_round_trips() {
    run("large", |q| async move {
        conformance::large_body_round_trips(&q).await;
    });
}

#[test]
fn migrations_are_idempotent_and_concurrent_starts_are_safe() {
    let Some(url) = postel_testkit::fresh_database("migrate") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let starts = (0..4).map(|_| {
            let url = url.clone();
            async move { PostgresQueue::connect(&url, 2, RetrySchedule::default()).await }
        });
        for q in futures_join(starts).await {
            q.unwrap();
        }
    });
}

async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut handles = Vec::new();
    for f in futures {
        handles.push(tokio::spawn(f));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
