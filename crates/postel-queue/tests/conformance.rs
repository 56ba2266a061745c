//! The conformance suite against the memory backend.

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
