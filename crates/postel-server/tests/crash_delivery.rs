//! Exactly once across crashes: clients send while the server is killed
//! with SIGKILL and restarted, again and again; afterwards every message
//! that got its 250 is in the Maildir exactly once, and none twice.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, local, mail, serve, temp_dir};

/// Sends one message on a fresh connection; true when its end got 250.
fn send(port: u16, id: &str) -> bool {
    let Ok(stream) = TcpStream::connect(local(port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut reply = || -> Option<String> {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(line);
            }
        }
    };
    let mut step = |out: &str, want: &str| -> Option<()> {
        if !out.is_empty() {
            w.write_all(out.as_bytes()).ok()?;
        }
        reply()?.starts_with(want).then_some(())
    };
    let body = format!(
        "From: <alice@a.test>\r\nTo: <bob@a.test>\r\nMessage-ID: <{id}@a.test>\r\n\
Subject: crash test\r\n\r\n{}\r\n.\r\n",
        "line of the body\r\n".repeat(20)
    );
    let sent = (|| {
        step("", "220")?;
        step("EHLO client.a.test\r\n", "250")?;
        step("MAIL FROM:<alice@a.test>\r\n", "250")?;
        step("RCPT TO:<bob@a.test>\r\n", "250")?;
        step("DATA\r\n", "354")?;
        step(&body, "250")
    })();
    sent.is_some()
}

#[test]
fn sigkill_under_load_loses_nothing_and_duplicates_nothing() {
    let dir = temp_dir("crash-delivery");
    let port = free_port();
    let config = format!(
        "hostname = \"mx.a.test\"\ndata_dir = \"data\"\n\
[[listener]]\naddress = \"127.0.0.1:{port}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"bob\"]\n\
[queue]\nmin_retry_secs = 1\nmax_retry_secs = 1\npoll_ms = 50\n"
    );
    let mut server = serve(&dir, &config, local(port), false);
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (accepted, stop) = (Arc::clone(&accepted), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("c{c}-{n}");
                    n += 1;
                    if send(port, &id) {
                        accepted.lock().unwrap().push(id);
                    } else {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    let kills = 6;
    for k in 0..kills {
        // Long enough for mail to be accepted and delivered between kills,
        // at a different point of the work each time.
        std::thread::sleep(Duration::from_millis(400 + 130 * k));
        server.kill();
        server = serve(&dir, &config, local(port), false);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > 50,
        "load: only {} accepted",
        accepted.len()
    );
    // Everything queued is delivered by the last run.
    let start = Instant::now();
    let counts = loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for m in mail(&dir, "a.test", "bob") {
            let text = String::from_utf8_lossy(&m).into_owned();
            let id = text
                .split("Message-ID: <")
                .nth(1)
                .and_then(|r| r.split('@').next())
                .unwrap()
                .to_owned();
            *counts.entry(id).or_default() += 1;
        }
        let all_in = accepted.iter().all(|id| counts.contains_key(id));
        if all_in || start.elapsed() > Duration::from_secs(30) {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let lost: Vec<_> = accepted
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    drop(server);
    assert!(lost.is_empty(), "lost after 250: {lost:?}");
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    eprintln!(
        "{kills} kills, {} accepted with 250, {} in the Maildir, 0 lost, 0 twice",
        accepted.len(),
        counts.len()
    );
}
