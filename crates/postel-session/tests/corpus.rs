//! Replays the committed server and client fuzz corpora and regressions
//! through the checks the fuzz targets run.

// The checks are the fuzz crate's code, held to its lints, and panic on
// purpose: a panic is a failed test.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::pedantic,
    clippy::panic,
    clippy::expect_used
)]

#[path = "../../../fuzz/src/server_checks.rs"]
mod checks;

#[path = "../../../fuzz/src/client_checks.rs"]
mod client_checks;

/// Runs every committed corpus and regression input of `target` through
/// `check`; how many there were.

#[test]
fn server_corpus() {
    assert!(postel_testkit::replay_fuzz_inputs("server", checks::check_server) > 0);
}

#[test]
fn client_corpus() {
    assert!(postel_testkit::replay_fuzz_inputs("client", client_checks::check_client) > 0);
}
