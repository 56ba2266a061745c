//! The metrics page, checked by Prometheus's own `promtool check metrics`,
//! with its counters moving as a client drives the server.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, installed, local, python, serve, temp_dir, wait_mail};

/// GETs the page at `port`; its body.
fn scrape(port: u16) -> String {
    // The page listens a moment after the SMTP listeners do.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(local(port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("metrics page: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    body.to_owned()
}

/// The value of the sample named exactly `name` (labels included).
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn the_metrics_page_passes_promtool_and_counts_what_happens() {
    if !installed("python3") || !installed("promtool") {
        return;
    }
    let dir = temp_dir("metrics");
    let (mx, metrics) = (free_port(), free_port());
    let config = format!(
        "hostname = \"mail.a.test\"\ndata_dir = \"data\"\n[[listener]]\naddress = \"127.0.0.1:{mx}\"\nrole = \"mx\"\n\
[[domain]]\nname = \"a.test\"\nmailboxes = [\"bob\"]\n[metrics]\naddress = \"127.0.0.1:{metrics}\"\n"
    );
    let _server = serve(&dir, &config, local(mx), false);
    let before = scrape(metrics);
    assert_eq!(sample(&before, "postel_messages_accepted_total"), Some(0.0));
    python(
        r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("metrics.example")
s.mail("someone@elsewhere.example")
print(s.rcpt("victim@elsewhere.example"), s.rcpt("nobody@a.test"), s.rcpt("bob@a.test"))
print(s.data(b"Subject: counted\r\n\r\nhello\r\n"))
s.quit()
"#,
        &[&mx.to_string()],
    );
    wait_mail(&dir, "a.test", "bob", 1, Duration::from_secs(20));
    let start = Instant::now();
    let page = loop {
        let page = scrape(metrics);
        let delivered = sample(
            &page,
            "postel_deliveries_total{outcome=\"delivered\",transport=\"maildir\"}",
        );
        if delivered == Some(1.0) || start.elapsed() > Duration::from_secs(10) {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let expect = [
        ("postel_messages_accepted_total", 1.0),
        ("postel_received_bytes_total", 27.0),
        ("postel_messages_refused_total{reason=\"relay\"}", 1.0),
        (
            "postel_messages_refused_total{reason=\"unknown_user\"}",
            1.0,
        ),
        (
            "postel_deliveries_total{outcome=\"delivered\",transport=\"maildir\"}",
            1.0,
        ),
        ("postel_replies_total{class=\"5xx\"}", 2.0),
        ("postel_replies_total{class=\"3xx\"}", 1.0),
        ("postel_delivery_latency_seconds_count", 1.0),
        ("postel_commands_total{verb=\"RCPT\"}", 3.0),
        ("postel_commands_total{verb=\"MAIL\"}", 1.0),
        ("postel_commands_total{verb=\"QUIT\"}", 1.0),
    ];
    for (name, value) in expect {
        assert_eq!(sample(&page, name), Some(value), "{name} in\n{page}");
    }
    assert!(sample(&page, "postel_connections_total{role=\"mx\"}").unwrap() >= 2.0);
    assert_eq!(sample(&page, "postel_queue_messages"), Some(0.0));
}
