//! Metrics for the operator, in the Prometheus text format on a listener of
//! their own (`[metrics] address`), encoded by the prometheus-client crate.
//!
//! Names (each prefixed `postel_`): `connections` (by role), `connections_open`,
//! `connections_refused` (by reason), `commands` (by verb), `replies` (by code class),
//! `messages_accepted`, `messages_refused` (by reason), `received_bytes`,
//! `deliveries` (by outcome and transport), `delivery_latency_seconds`,
//! `session_duration_seconds`, `tls_handshakes` (by result),
//! `dns_lookup_seconds`, `queue_messages`, `queue_oldest_seconds`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::state::Shared;

/// One label, `name="value"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Why {
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RoleLabel {
    pub(crate) role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct VerbLabel {
    pub(crate) verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ClassLabel {
    pub(crate) class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DeliveryLabels {
    pub(crate) outcome: &'static str,
    pub(crate) transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub(crate) result: &'static str,
}

/// Everything counted. Cheap to update from any task.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) connections: Family<RoleLabel, Counter>,
    pub(crate) connections_open: Gauge,
    pub(crate) connections_refused: Family<Why, Counter>,
    pub(crate) replies: Family<ClassLabel, Counter>,
    pub(crate) commands: Family<VerbLabel, Counter>,
    pub(crate) messages_accepted: Counter,
    pub(crate) messages_refused: Family<Why, Counter>,
    pub(crate) received_bytes: Counter,
    pub(crate) deliveries: Family<DeliveryLabels, Counter>,
    pub(crate) delivery_latency: Histogram,
    pub(crate) session_duration: Histogram,
    pub(crate) tls_handshakes: Family<ResultLabel, Counter>,
    pub(crate) dns_lookup: Histogram,
    queue_messages: Gauge,
    queue_oldest: Gauge<f64, AtomicU64>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("postel");
        let seconds = |start: f64| Histogram::new(exponential_buckets(start, 4.0, 10));
        let m = Metrics {
            connections: Family::default(),
            connections_open: Gauge::default(),
            connections_refused: Family::default(),
            replies: Family::default(),
            commands: Family::default(),
            messages_accepted: Counter::default(),
            messages_refused: Family::default(),
            received_bytes: Counter::default(),
            deliveries: Family::default(),
            delivery_latency: seconds(0.01),
            session_duration: seconds(0.01),
            tls_handshakes: Family::default(),
            dns_lookup: seconds(0.001),
            queue_messages: Gauge::default(),
            queue_oldest: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "connections",
            "Connections accepted, by listener role",
            m.connections.clone(),
        );
        r.register(
            "connections_open",
            "Connections open now",
            m.connections_open.clone(),
        );
        r.register(
            "connections_refused",
            "Connections refused, by reason",
            m.connections_refused.clone(),
        );
        r.register(
            "replies",
            "Replies sent to clients, by code class",
            m.replies.clone(),
        );
        r.register(
            "commands",
            "Client commands, by verb, counted as sessions end",
            m.commands.clone(),
        );
        r.register(
            "messages_accepted",
            "Messages queued and answered 250",
            m.messages_accepted.clone(),
        );
        r.register(
            "messages_refused",
            "Messages and recipients refused, by reason",
            m.messages_refused.clone(),
        );
        r.register(
            "received_bytes",
            "Message octets received",
            m.received_bytes.clone(),
        );
        r.register(
            "deliveries",
            "Delivery attempts per recipient, by outcome and transport",
            m.deliveries.clone(),
        );
        r.register(
            "delivery_latency_seconds",
            "From arrival to delivery",
            m.delivery_latency.clone(),
        );
        r.register(
            "session_duration_seconds",
            "Length of client sessions",
            m.session_duration.clone(),
        );
        r.register(
            "tls_handshakes",
            "Inbound TLS handshakes, by result",
            m.tls_handshakes.clone(),
        );
        r.register(
            "dns_lookup_seconds",
            "Time to route a domain with MX look-ups",
            m.dns_lookup.clone(),
        );
        r.register(
            "queue_messages",
            "Messages in the queue",
            m.queue_messages.clone(),
        );
        r.register(
            "queue_oldest_seconds",
            "Age of the oldest queued message",
            m.queue_oldest.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts the replies in octets sent to a client, by the class of each
    /// reply's code (the last line of a multiline reply counts once).
    pub(crate) fn count_replies(&self, sent: &[u8]) {
        for line in sent.split(|&b| b == b'\n') {
            if line.len() >= 4 && line[3] == b' ' {
                let class = match line[0] {
                    b'2' => "2xx",
                    b'3' => "3xx",
                    b'4' => "4xx",
                    b'5' => "5xx",
                    _ => continue,
                };
                self.replies.get_or_create(&ClassLabel { class }).inc();
            }
        }
    }

    /// The commands a session handled, added when it ends.
    pub(crate) fn commands_of(&self, server: &postel_session::server::Server) {
        for (verb, n) in server.command_counts() {
            self.commands.get_or_create(&VerbLabel { verb }).inc_by(n);
        }
    }

    /// A refusal of a message or recipient, by reason.
    pub(crate) fn refused(&self, reason: &'static str) {
        self.messages_refused.get_or_create(&Why { reason }).inc();
    }

    /// A refused connection, by reason.
    pub(crate) fn refused_connection(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&Why { reason })
            .inc();
    }

    /// One recipient's delivery attempt.
    pub(crate) fn delivery(
        &self,
        outcome: &'static str,
        transport: &'static str,
        age: Option<Duration>,
    ) {
        self.deliveries
            .get_or_create(&DeliveryLabels { outcome, transport })
            .inc();
        if let (Some(age), "delivered") = (age, outcome) {
            self.delivery_latency.observe(age.as_secs_f64());
        }
    }

    /// The page: the queue's figures taken now, then everything encoded.
    async fn page(&self, shared: &Shared) -> String {
        use postel_queue::Queue as _;
        let now = SystemTime::now();
        if let Ok(stats) = shared.queue.stats(now).await {
            self.queue_messages
                .set(i64::try_from(stats.messages).unwrap_or(i64::MAX));
            let age = stats
                .oldest
                .and_then(|t| now.duration_since(t).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            self.queue_oldest.set(age);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            warn!("cannot encode the metrics");
        }
        out
    }
}

/// The classic Prometheus text format (0.0.4) of an `OpenMetrics` page: a
/// counter family is named by its `_total` samples there, and there is no
/// `# EOF` or `# UNIT`.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Serves `GET /metrics` on `listener` until the server stops: a request of
/// at most 8 KiB read within 5 s, one response, then close.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((mut tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            let read = async {
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    let n = tcp.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                Ok::<_, std::io::Error>(())
            };
            if !matches!(
                tokio::time::timeout(Duration::from_secs(5), read).await,
                Ok(Ok(()))
            ) {
                return;
            }
            let response = if request.starts_with(b"GET /metrics ")
                || request.starts_with(b"GET /metrics\r")
            {
                let page = shared.metrics.page(&shared).await;
                // Scrapers that ask for OpenMetrics get it; anyone else, such
                // as promtool and older scrapers, the classic text format.
                let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let (kind, body) = if text.contains("application/openmetrics-text") {
                    ("application/openmetrics-text; version=1.0.0", page)
                } else {
                    ("text/plain; version=0.0.4", prometheus_text(&page))
                };
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: {kind}; charset=utf-8\r\n\
Content-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
            };
            let _ = tcp.write_all(response.as_bytes()).await;
            let _ = tcp.shutdown().await;
            info!(client = %peer, "metrics scraped");
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_named_by_their_samples_in_the_classic_format() {
        let page = "# HELP postel_x Things.\n# TYPE postel_x counter\npostel_x_total 3\n# HELP postel_g A gauge.\n# TYPE postel_g gauge\npostel_g 1\n# EOF\n";
        assert_eq!(
            super::prometheus_text(page),
            "# HELP postel_x_total Things.\n# TYPE postel_x_total counter\npostel_x_total 3\n# HELP postel_g A gauge.\n# TYPE postel_g gauge\npostel_g 1\n"
        );
    }
}
