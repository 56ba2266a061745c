//! The conformance suite against the memory backend and the spool.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::expect_used)]

use postel_queue::schedule::RetrySchedule;
use postel_queue::{MemoryQueue, conformance};

fn queue() -> MemoryQueue {
    MemoryQueue::new(RetrySchedule::default())
}

#[test]
fn enqueue_and_claim() {
    conformance::block_on(conformance::enqueue_and_claim(&queue()));
}

#[test]
fn lease_expiry_takeover_and_fencing() {
    conformance::block_on(conformance::lease_expiry_takeover_and_fencing(&queue()));
}

#[test]
fn partial_success_retry_and_bounce() {
    conformance::block_on(conformance::partial_success_retry_and_bounce(&queue()));
}

#[test]
fn expiry_and_dsn() {
    conformance::block_on(conformance::expiry_and_dsn(&queue()));
}

#[test]
fn hold_release_delete_requeue() {
    conformance::block_on(conformance::hold_release_delete_requeue(&queue()));
}

#[test]
fn recovery() {
    conformance::block_on(conformance::recovery(&queue()));
}

#[test]
fn stats() {
    conformance::block_on(conformance::stats(&queue()));
}

#[test]
fn requiretls_is_kept() {
    conformance::block_on(conformance::requiretls_is_kept(&queue()));
}

#[test]
fn quarantined_on_arrival() {
    conformance::block_on(conformance::quarantined_on_arrival(&queue()));
}

/// The same suite against the filesystem spool, each check in a fresh
/// directory.
#[test]
fn streamed_body_round_trips() {
    conformance::block_on(conformance::streamed_body_round_trips(&queue()));
}

#[test]
fn aborted_body_leaves_nothing() {
    conformance::block_on(conformance::aborted_body_leaves_nothing(&queue()));
}

#[test]
fn large_body_round_trips() {
    conformance::block_on(conformance::large_body_round_trips(&queue()));
}

mod spool {
    use postel_queue::schedule::RetrySchedule;
    use postel_queue::{SpoolQueue, conformance};

    fn queue(name: &str) -> SpoolQueue {
        let dir = std::env::temp_dir().join(format!("postel-spool-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        SpoolQueue::open(&dir, RetrySchedule::default()).expect("spool opens")
    }

    #[test]
    fn enqueue_and_claim() {
        conformance::block_on(conformance::enqueue_and_claim(&queue("claim")));
    }

    #[test]
    fn lease_expiry_takeover_and_fencing() {
        conformance::block_on(conformance::lease_expiry_takeover_and_fencing(&queue(
            "lease",
        )));
    }

    #[test]
    fn partial_success_retry_and_bounce() {
        conformance::block_on(conformance::partial_success_retry_and_bounce(&queue(
            "partial",
        )));
    }

    #[test]
    fn expiry_and_dsn() {
        conformance::block_on(conformance::expiry_and_dsn(&queue("expiry")));
    }

    #[test]
    fn hold_release_delete_requeue() {
        conformance::block_on(conformance::hold_release_delete_requeue(&queue("ops")));
    }

    #[test]
    fn recovery() {
        conformance::block_on(conformance::recovery(&queue("recovery")));
    }

    #[test]
    fn stats() {
        conformance::block_on(conformance::stats(&queue("stats")));
    }

    #[test]
    fn requiretls_is_kept() {
        conformance::block_on(conformance::requiretls_is_kept(&queue("requiretls")));
    }

    #[test]
    fn quarantined_on_arrival() {
        conformance::block_on(conformance::quarantined_on_arrival(&queue("quarantine")));
    }

    #[test]
    fn streamed_body_round_trips() {
        conformance::block_on(conformance::streamed_body_round_trips(&queue("streamed")));
    }

    #[test]
    fn aborted_body_leaves_nothing() {
        let q = queue("aborted");
        conformance::block_on(conformance::aborted_body_leaves_nothing(&q));
        let dir = std::env::temp_dir().join(format!("postel-spool-{}-aborted", std::process::id()));
        let left: Vec<_> = std::fs::read_dir(dir.join("tmp")).expect("tmp/").collect();
        assert!(left.is_empty(), "files left in tmp/: {left:?}");
        // Only the segment log, with nothing in it.
        let files: Vec<_> = std::fs::read_dir(&dir)
            .expect("spool")
            .flatten()
            .filter(|e| e.path().is_file())
            .filter(|e| {
                let segment = e.file_name().to_string_lossy().starts_with("seg-");
                !segment || e.metadata().map_or(true, |m| m.len() > 0)
            })
            .map(|e| e.path())
            .collect();
        assert!(files.is_empty(), "an aborted message left {files:?}");
    }

    #[test]
    fn large_body_round_trips() {
        let q = queue("large");
        conformance::block_on(conformance::large_body_round_trips(&q));
    }
}
