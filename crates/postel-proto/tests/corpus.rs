//! Replays every committed fuzz corpus and regression input through the checks
//! the fuzz targets run, so `cargo test` keeps every fixed crash fixed.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code, unreachable_pub, missing_docs, clippy::pedantic)]
#[path = "../../../fuzz/src/proto_checks.rs"]
mod checks;

#[test]
fn command_corpus() {
    assert!(postel_testkit::replay_fuzz_inputs("command", checks::check_commands) > 0);
}

#[test]
fn reply_corpus() {
    assert!(postel_testkit::replay_fuzz_inputs("reply", checks::check_replies) > 0);
}

#[test]
fn data_corpus() {
    assert!(postel_testkit::replay_fuzz_inputs("data", checks::check_data) > 0);
}
