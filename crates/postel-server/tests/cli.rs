//! The `postel` command line: help on every command, and a bad
//! configuration stops the start with a message naming the key.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{postel, temp_dir};

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["queue", "--help"],
        &["user", "--help"],
    ] {
        let out = Command::new(postel()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("postel"), "{args:?}: {text}");
    }
    let out = Command::new(postel()).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
}

fn start_error(config: &str) -> String {
    let dir = temp_dir("badconfig");
    common::write_config(&dir, config);
    let out = Command::new(postel())
        .args(["serve", "--config", "postel.toml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "the start fails with EX_CONFIG"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_bad_configuration_names_the_key() {
    let e = start_error("[limits]\nmesage_size = 10\n");
    assert!(e.contains("mesage_size"), "{e}");
    let e = start_error("[[listener]]\naddress = \"127.0.0.1\"\nrole = \"mx\"\n");
    assert!(e.contains("listener[0].address"), "{e}");
    let e = start_error("[[listener]]\naddress = \"127.0.0.1:0\"\nrole = \"submission\"\n");
    assert!(e.contains("listener") && e.contains("TLS"), "{e}");
}

#[test]
fn user_add_stores_a_hash_not_the_password() {
    let dir = temp_dir("useradd");
    std::fs::write(dir.join("postel.toml"), "data_dir = \"data\"\n").unwrap();
    common::add_user(&dir, "alice@localhost", "hunter2 but longer");
    common::add_user(&dir, "alice@localhost", "replaced password");
    let users = std::fs::read_to_string(dir.join("data/users")).unwrap();
    assert_eq!(users.lines().count(), 1, "replaced, not added: {users}");
    assert!(users.starts_with("alice@localhost:$argon2id$"), "{users}");
    assert!(!users.contains("replaced password"));
}

#[test]
fn version_and_json_logs() {
    let out = Command::new(postel()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("postel {}\n", env!("CARGO_PKG_VERSION"))
    );
    // With JSON logs every line the server writes is one JSON object.
    let dir = temp_dir("json-logs");
    let port = common::free_port();
    let config = format!(
        "data_dir = \"data\"\n[[listener]]\naddress = \"127.0.0.1:{port}\"\nrole = \"mx\"\n"
    );
    common::write_config(&dir, &config);
    let server = common::Process::start(
        &postel(),
        &["serve", "--config", "postel.toml", "--log-format", "json"],
        &dir,
        common::local(port),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"listening\"")),
        "{log}"
    );
    for line in lines {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    }
    let bad = Command::new(postel())
        .args(["serve", "--log-format", "xml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn completions_config_check_and_users() {
    let out = Command::new(postel())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("complete -F _postel") && script.contains("queue"),
        "{script}"
    );
    for args in [
        &["queue", "list", "--help"][..],
        &["user", "delete", "--help"],
        &["config", "check", "--help"],
    ] {
        let out = Command::new(postel()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
    }
    let dir = temp_dir("config-check");
    std::fs::write(
        dir.join("postel.toml"),
        "data_dir = \"data\"\n[limits]\nrecipients = 7\n",
    )
    .unwrap();
    let out = common::run(&dir, &["config", "check"], "");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("max_recipients: 7,"), "{text}");
    assert!(
        text.contains("max_connections_per_ip: 50,"),
        "defaults filled in: {text}"
    );
    std::fs::write(dir.join("postel.toml"), "[limits]\nrecipients = 0\n").unwrap();
    assert_eq!(
        common::run(&dir, &["config", "check"], "").status.code(),
        Some(78)
    );

    let dir = temp_dir("users-cli");
    std::fs::write(dir.join("postel.toml"), "data_dir = \"data\"\n").unwrap();
    common::add_user(&dir, "alice@localhost", "first password");
    common::add_user(&dir, "bob@localhost", "second password");
    let listed = common::run(&dir, &["user", "list"], "");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "alice@localhost\nbob@localhost\n"
    );
    assert!(
        common::run(&dir, &["user", "delete", "alice@localhost"], "")
            .status
            .success()
    );
    let listed = common::run(&dir, &["user", "list"], "");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "bob@localhost\n");
    assert_eq!(
        common::run(&dir, &["user", "delete", "nobody@localhost"], "")
            .status
            .code(),
        Some(65)
    );
}
