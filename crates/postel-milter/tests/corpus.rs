//! Replays the committed fuzz corpus and regression inputs of the milter
//! target through the check it runs, so `cargo test` keeps every fixed
//! crash fixed.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code, unreachable_pub, missing_docs, clippy::pedantic)]
#[path = "../../../fuzz/src/milter_checks.rs"]
mod checks;

#[test]
fn milter_corpus() {
    assert!(
        postel_testkit::replay_fuzz_inputs("milter", checks::check_milter) > 0,
        "the corpus is committed"
    );
}
