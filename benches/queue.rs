//! Durable enqueues per second on the filesystem spool, one writer and
//! eight, beside the raw rates of the same disk measured in the same run:
//! appending to one file and fdatasyncing it (what the segment log pays,
//! before sharing the fdatasync), and creating a file, fdatasyncing it and
//! fsyncing its directory (what a file per message pays).

// A benchmark that meets unexpected input should stop loudly.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput};
use postel_benches::print_ratios;
use postel_queue::conformance::block_on;
use postel_queue::schedule::RetrySchedule;
use postel_queue::{Queue, SpoolQueue};

const WRITERS: u64 = 8;

/// Runs `op` `iters` times spread over `writers` threads; the time per
/// operation, as criterion counts it.
fn spread(iters: u64, writers: u64, op: &(dyn Fn(u64) + Sync)) -> Duration {
    let per = iters.div_ceil(writers);
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            s.spawn(move || {
                for i in 0..per {
                    op(w * per + i);
                }
            });
        }
    });
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^52.
    start
        .elapsed()
        .mul_f64(iters as f64 / (per * writers) as f64)
}

fn create_sync(dir: &Path, n: u64, body: &[u8]) {
    let mut f = File::create(dir.join(n.to_string())).unwrap();
    f.write_all(body).unwrap();
    f.sync_data().unwrap();
    File::open(dir).unwrap().sync_all().unwrap();
}

fn main() {
    let dir = std::env::temp_dir().join(format!("postel-queue-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("raw")).unwrap();
    let body = vec![b'x'; 4096];
    let spool = SpoolQueue::open(dir.join("spool"), RetrySchedule::default()).unwrap();
    let enqueue = |_: u64| {
        block_on(spool.enqueue(
            postel_benches::queue_message(),
            body.clone(),
            SystemTime::now(),
        ))
        .unwrap();
    };
    let raw = dir.join("raw");
    let created = AtomicU64::new(0);
    let create = |_: u64| create_sync(&raw, created.fetch_add(1, Ordering::Relaxed), &body);
    let logs: Vec<File> = (0..WRITERS)
        .map(|w| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(raw.join(format!("log-{w}")))
                .unwrap()
        })
        .collect();
    let append = |i: u64| {
        // One log per writer, as a writer of its own would have.
        let log = &logs[usize::try_from(i % WRITERS).unwrap()];
        (&*log).write_all(&body).unwrap();
        log.sync_data().unwrap();
    };
    let mut c = Criterion::default().configure_from_args();
    for (group, writers) in [
        ("enqueue-4KiB-1-writer", 1),
        ("enqueue-4KiB-8-writers", WRITERS),
    ] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(1));
        g.sample_size(20);
        g.bench_function("spool", |b| b.iter_custom(|n| spread(n, writers, &enqueue)));
        g.bench_function("append+fdatasync", |b| {
            b.iter_custom(|n| spread(n, writers, &append));
        });
        g.bench_function("create+fdatasync+dir-fsync", |b| {
            b.iter_custom(|n| spread(n, writers, &create));
        });
        g.finish();
    }
    c.final_summary();
    print_ratios(&[
        (
            "enqueue-4KiB-1-writer",
            "spool",
            &["append+fdatasync", "create+fdatasync+dir-fsync"],
        ),
        (
            "enqueue-4KiB-8-writers",
            "spool",
            &["append+fdatasync", "create+fdatasync+dir-fsync"],
        ),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
}
