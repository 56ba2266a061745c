//! Replays every committed fuzz corpus and regression input through the checks
//! the fuzz targets run, so `cargo test` keeps every fixed crash fixed.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code, unreachable_pub, missing_docs, clippy::pedantic)]
#[path = "../../../fuzz/src/proto_checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            n += 1;
        }
    }
    n
}

#[test]
fn command_corpus() {
    assert!(replay("command", checks::check_commands) > 0);
}

#[test]
fn reply_corpus() {
    assert!(replay("reply", checks::check_replies) > 0);
}

#[test]
fn data_corpus() {
    assert!(replay("data", checks::check_data) > 0);
}
