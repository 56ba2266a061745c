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
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn server_corpus() {
    assert!(replay("server", checks::check_server) > 0);
}

#[test]
fn client_corpus() {
    assert!(replay("client", client_checks::check_client) > 0);
}
