//! Replays the committed server fuzz corpus and regressions through the check
//! the fuzz target runs.

#[allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::pedantic,
    clippy::panic,
    clippy::expect_used
)]
#[path = "../../../fuzz/src/server_checks.rs"]
mod checks;

#[allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::pedantic,
    clippy::panic,
    clippy::expect_used
)]
#[path = "../../../fuzz/src/client_checks.rs"]
mod client_checks;

#[test]
fn server_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in [root.join("corpus/server"), root.join("regressions/server")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| checks::check_server(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            n += 1;
        }
    }
    assert!(n > 0);
}

#[test]
fn client_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for dir in [root.join("corpus/client"), root.join("regressions/client")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| client_checks::check_client(&data));
            assert!(outcome.is_ok(), "{} fails its check", path.display());
            n += 1;
        }
    }
    assert!(n > 0);
}
