//! Durable enqueues per second on the filesystem spool, beside the raw rate of
//! the same disk for what one enqueue must at least do (write a file, fsync
//! it, fsync its directory), measured in the same run.

// A benchmark that meets unexpected input should stop loudly.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::fs::File;
use std::io::Write;
use std::time::SystemTime;

use criterion::{Criterion, Throughput};
use postel_benches::print_ratios;
use postel_queue::conformance::block_on;
use postel_queue::schedule::RetrySchedule;
use postel_queue::{Queue, SpoolQueue};

fn main() {
    let dir = std::env::temp_dir().join(format!("postel-queue-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("raw")).unwrap();
    let body = vec![b'x'; 4096];
    let spool = SpoolQueue::open(dir.join("spool"), RetrySchedule::default()).unwrap();
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("enqueue-4KiB");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.bench_function("spool", |b| {
        b.iter(|| {
            block_on(spool.enqueue(
                postel_benches::queue_message(),
                body.clone(),
                SystemTime::now(),
            ))
            .unwrap()
        });
    });
    // Eight writers at once: group commit lets them share directory fsyncs.
    let writers = 8u64;
    g.bench_function("spool-8-writers", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(writers);
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..writers {
                    s.spawn(|| {
                        for _ in 0..per {
                            block_on(spool.enqueue(
                                postel_benches::queue_message(),
                                body.clone(),
                                SystemTime::now(),
                            ))
                            .unwrap();
                        }
                    });
                }
            });
            // Time per message: the writers' messages over the elapsed time.
            #[allow(clippy::cast_precision_loss)] // Counts far below 2^52.
            start
                .elapsed()
                .mul_f64(iters as f64 / (per * writers) as f64)
        });
    });
    let mut n = 0u64;
    g.bench_function("fsync-ceiling", |b| {
        b.iter(|| {
            n += 1;
            let path = dir.join("raw").join(n.to_string());
            let mut f = File::create(&path).unwrap();
            f.write_all(&body).unwrap();
            f.sync_all().unwrap();
            File::open(dir.join("raw")).unwrap().sync_all().unwrap();
        });
    });
    g.finish();
    c.final_summary();
    print_ratios(&[
        ("enqueue-4KiB", "spool", &["fsync-ceiling"]),
        (
            "enqueue-4KiB",
            "spool-8-writers",
            &["fsync-ceiling", "spool"],
        ),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
}
