//! Replays the committed fuzz corpus and regression inputs of the milter
//! target through the check it runs, so `cargo test` keeps every fixed
//! crash fixed.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code, unreachable_pub, missing_docs, clippy::pedantic)]
#[path = "../../../fuzz/src/milter_checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn milter_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in [root.join("corpus/milter"), root.join("regressions/milter")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| checks::check_milter(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            n += 1;
        }
    }
    assert!(n > 0, "the corpus is committed");
}
