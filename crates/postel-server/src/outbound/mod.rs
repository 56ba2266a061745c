//! Delivery workers: claim due messages from the queue, deliver local
//! recipients into Maildir and remote ones over SMTP to the exchangers
//! postel-mx orders, record each recipient's outcome, and bounce failures.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use postel_mx::{HickoryResolver, RouteOptions, route};
use postel_proto::types::{ForwardPath, Host, Reply};
use postel_queue::model::{AttemptResult, Message, Outcome, RecipientState, Stage};
use postel_queue::{Claim, Queue, apply_outcomes, report_failures_with};
use postel_session::client::RecipientResult;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::{info, warn};

mod lmtp;
mod local;
mod reports;
pub(crate) use lmtp::probe as probe_lmtp;
mod dane;
mod https;
mod mta_sts;
mod policy;
mod smtp;
mod source;
mod tls_rpt;
pub(crate) use dane::explain as explain_dane;
pub(crate) use mta_sts::MtaSts;
pub(crate) use policy::{TlsChoice, trust_anchors};

use crate::inbound::reply;
use crate::state::Shared;
use smtp::client_message;

/// Connecting to an exchanger (RFC 5321 section 4.5.3.2 leaves it open;
/// Postfix waits 30 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The delivery side of the server.
pub(crate) struct Delivery {
    shared: Arc<Shared>,
    resolver: Option<HickoryResolver>,
    tls: Arc<rustls::ClientConfig>,
    /// TLS that verifies the exchanger's certificate (PKIX), whatever
    /// `verify_tls` says: for messages that asked for REQUIRETLS.
    verified: Arc<rustls::ClientConfig>,
    /// The same anchors as a verifier, for MTA-STS testing's notes.
    observer: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    /// The MTA-STS policies of the domains mail goes to.
    mta_sts: mta_sts::MtaSts,
    /// The TLS sessions of the reporting period under way.
    tls_rpt: tls_rpt::TlsRpt,
    all: Arc<Semaphore>,
    domains: Mutex<HashMap<String, Arc<Semaphore>>>,
    worker: String,
    /// Open sessions waiting for the next message to their address.
    parked: Mutex<HashMap<String, Vec<smtp::Parked>>>,
}

/// The one record of a TXT set that starts with `version` (`v=STSv1`,
/// `v=TLSRPTv1`): none, or more than one, is no record at all (RFC 8461
/// section 3.1, RFC 8460 section 3).
fn versioned_record<'a>(records: &'a [Vec<u8>], version: &[u8]) -> Option<&'a [u8]> {
    let mut found = records.iter().filter(|r| r.starts_with(version));
    let one = found.next()?;
    found.next().is_none().then_some(one.as_slice())
}

/// A random number in `0.0..1.0`.
fn random_unit() -> f64 {
    #[allow(clippy::cast_precision_loss)] // 53 bits of randomness are plenty.
    let r = (next_random() >> 11) as f64 / (1u64 << 53) as f64;
    r
}

fn random_index(n: usize) -> usize {
    usize::try_from(next_random() % (n.max(1) as u64)).unwrap_or(0)
}

/// A number for retry jitter and the order of equal MX records, which need
/// spread, not secrecy: a splitmix64 sequence per thread, seeded once from
/// the system's random source (reading `/dev/urandom` for every delivery
/// cost three system calls each).
fn next_random() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut b = [0u8; 8];
            if crate::users::fill_random(&mut b).is_err() {
                // No random source: the time and the thread still spread
                // the sequences apart.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                b = (u64::from(nanos) << 32 | u64::from(std::process::id())).to_le_bytes();
            }
            u64::from_le_bytes(b)
        });
    }
    STATE.with(|state| {
        let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// One log line per recipient attempted, as Postfix's delivery agents write.
fn log_outcomes(
    message: &Message,
    outcomes: &[(usize, Outcome)],
    metrics: &crate::metrics::Metrics,
) {
    let age = SystemTime::now().duration_since(message.created).ok();
    for (i, outcome) in outcomes {
        let Some(r) = message.recipients.get(*i) else {
            continue;
        };
        let (status, detail) = match outcome {
            Outcome::Delivered(a) => ("sent", a),
            Outcome::Deferred(a) => ("deferred", a),
            Outcome::Failed(a) => ("bounced", a),
            Outcome::LocalLimit => continue,
        };
        let transport = match (&detail.stage, detail.remote_host.as_deref()) {
            (Stage::Local, Some(h)) if h.starts_with("lmtp:") => "lmtp",
            (Stage::Local, _) => "maildir",
            _ => "smtp",
        };
        let outcome_name = match status {
            "sent" => "delivered",
            other => other,
        };
        metrics.delivery(outcome_name, transport, age);
        info!(
            queue_id = %message.id, to = %r.address, status,
            relay = detail.remote_host.as_deref().unwrap_or("local"),
            reply = %detail.reply, "delivery"
        );
    }
}

/// Each recipient's outcome from the exchanger `label`'s answers.
fn outcomes_of(
    indices: &[usize],
    results: Vec<RecipientResult>,
    label: &str,
) -> Vec<(usize, Outcome)> {
    let at = |stage, r| result(stage, Some(label.to_owned()), r);
    indices
        .iter()
        .zip(results)
        .map(|(&i, r)| {
            let outcome = match r {
                RecipientResult::Delivered(r) => Outcome::Delivered(at(Stage::Data, r)),
                RecipientResult::Transient(r) => Outcome::Deferred(at(Stage::Rcpt, r)),
                RecipientResult::Permanent(r) => Outcome::Failed(at(Stage::Rcpt, r)),
            };
            (i, outcome)
        })
        .collect()
}

fn result(stage: Stage, host: Option<String>, reply: Reply<'static>) -> AttemptResult {
    AttemptResult {
        stage,
        remote_host: host,
        reply,
    }
}

impl Delivery {
    /// Sets up the resolver and TLS client.
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Arc<Delivery>, postel_mx::BuildError> {
        let c = shared.config();
        let resolver = if c.smarthost.is_some() {
            None
        } else {
            Some(HickoryResolver::new(&c.dns())?)
        };
        let anchors = trust_anchors(&c);
        // None without a single anchor: nothing would verify then.
        let observer = crate::tls::verifier(anchors.clone()).ok();
        let verified = crate::tls::client_config(true, anchors);
        let tls = if c.verify_tls {
            Arc::clone(&verified)
        } else {
            crate::tls::client_config(false, rustls::RootCertStore::empty())
        };
        Ok(Arc::new(Delivery {
            all: Arc::new(Semaphore::new(c.workers)),
            domains: Mutex::new(HashMap::new()),
            parked: Mutex::new(HashMap::new()),
            worker: c.node.clone(),
            resolver,
            tls,
            mta_sts: mta_sts::MtaSts::load(c.data_dir.join("mta-sts.json"), Arc::clone(&verified)),
            tls_rpt: tls_rpt::TlsRpt::new(std::time::SystemTime::now()),
            verified,
            observer,
            shared,
        }))
    }

    /// Claims and delivers until the server stops.
    pub(crate) async fn run(self: Arc<Self>) {
        if let Some(period) = self.shared.config().tls_rpt {
            tokio::spawn(Arc::clone(&self).report_tls_every(period));
        }
        let mut stopping = self.shared.stopping.clone();
        loop {
            if *stopping.borrow() {
                return;
            }
            let free = self.all.available_permits();
            let claims = if free == 0 {
                Vec::new()
            } else {
                match self
                    .shared
                    .queue
                    .claim(
                        &self.worker,
                        SystemTime::now(),
                        self.shared.config().lease,
                        free,
                    )
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "queue claim failed");
                        Vec::new()
                    }
                }
            };
            if claims.is_empty() {
                tokio::select! {
                    () = self.shared.wake.notified() => {}
                    () = tokio::time::sleep(self.shared.config().poll) => {}
                    _ = stopping.changed() => {}
                }
                continue;
            }
            for claim in claims {
                let Ok(permit) = Arc::clone(&self.all).acquire_owned().await else {
                    return;
                };
                let me = Arc::clone(&self);
                tokio::spawn(async move {
                    me.deliver(claim).await;
                    drop(permit);
                    // A worker is free: mail that came while every worker
                    // was busy is claimed now, not at the next poll.
                    me.shared.wake.notify_one();
                });
            }
        }
    }

    /// One claimed message: every due recipient, then the outcomes, then any
    /// bounce.
    async fn deliver(&self, claim: Claim) {
        let Claim { lease, mut message } = claim;
        let now = SystemTime::now();
        let due: Vec<usize> = message
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == RecipientState::Pending && r.next_attempt <= now)
            .map(|(i, _)| i)
            .collect();
        let mut outcomes = Vec::new();
        let mut relayed = Vec::new();
        let mut head = None;
        if !due.is_empty() {
            match source::Source::open(&self.shared.queue, &message.id).await {
                Ok(body) => {
                    outcomes = self.attempt(&message, &due, &body, &mut relayed).await;
                    head = Some(body.head().to_vec());
                }
                Err(e) => warn!(queue_id = %message.id, error = %e, "cannot read the body"),
            }
        }
        let finished = SystemTime::now();
        apply_outcomes(
            &mut message,
            &outcomes,
            &self.shared.schedule,
            finished,
            random_unit(),
        );
        if let Some(head) = &head {
            self.report_success(&message, &outcomes, &relayed, head, finished);
        }
        log_outcomes(&message, &outcomes, &self.shared.metrics);
        let mut warned = message.warned;
        let still_pending = message
            .recipients
            .iter()
            .any(|r| r.state == RecipientState::Pending);
        if still_pending
            && self
                .shared
                .schedule
                .delay_warning_due(message.created, finished, warned)
        {
            warned = self.warn_delay(&message, finished);
        }
        let queue = &self.shared.queue;
        let recorded = queue
            .complete(lease, message.recipients.clone(), warned)
            .await;
        if let Err(e) = recorded {
            warn!(queue_id = %message.id, error = %e, "cannot record the outcome");
            return;
        }
        let owes_report = message.recipients.iter().any(|r| {
            matches!(
                r.state,
                RecipientState::Failed { reported: false }
                    | RecipientState::Expired { reported: false }
            )
        });
        if !owes_report {
            return;
        }
        let host = self.shared.config().hostname.to_string();
        let boundary = format!("{}/{}", message.id, host);
        let reported = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(report_failures_with(
                &self.shared.queue,
                &message,
                (&host, finished, &boundary),
                |report| self.signed(report),
            ))
        });
        match reported {
            Ok(Some(dsn)) => {
                info!(queue_id = %message.id, bounce = %dsn, "bounce queued");
                self.shared.wake.notify_one();
            }
            Ok(None) => {}
            Err(e) => warn!(queue_id = %message.id, error = %e, "cannot queue the bounce"),
        }
    }

    /// The local domain and local part a recipient's mail is for, if it is
    /// ours: a local domain, postmaster, or `user@[our own address]` (the
    /// first domain's).
    fn local_route<'c>(
        &self,
        config: &'c crate::config::Config,
        address: &ForwardPath<'_>,
    ) -> Option<(&'c crate::config::LocalDomain, String)> {
        let domains = &config.domains;
        match address {
            ForwardPath::Postmaster => domains.first().map(|d| (d, "postmaster".to_owned())),
            ForwardPath::Mailbox(m) => {
                let local = m.local_part().unquoted().into_owned();
                match m.host() {
                    Host::Domain(d) => config.local_domain(d.as_str()).map(|ld| (ld, local)),
                    Host::Literal(l)
                        if l.ip()
                            .is_some_and(|ip| self.shared.own_addresses.contains(&ip)) =>
                    {
                        domains.first().map(|ld| (ld, local))
                    }
                    Host::Literal(_) => None,
                }
            }
        }
    }

    /// Delivers the due recipients; one outcome each.
    async fn attempt(
        &self,
        message: &Message,
        due: &[usize],
        body: &source::Source<'_>,
        relayed: &mut Vec<usize>,
    ) -> Vec<(usize, Outcome)> {
        let config = self.shared.config();
        let mut outcomes = Vec::new();
        let mut remote: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        // Mailboxes written in this attempt: two recipients that resolve to
        // one mailbox (an alias and its target) get one copy.
        let mut written = std::collections::HashSet::new();
        let mut lmtp: BTreeMap<String, (crate::config::LmtpTarget, lmtp::Batch)> = BTreeMap::new();
        for &i in due {
            let Some(r) = message.recipients.get(i) else {
                continue;
            };
            let local = self.local_route(&config, &r.address);
            if let Some((domain, local_part)) = &local
                && let crate::config::LocalDelivery::Lmtp(target) = &domain.delivery
            {
                let extra = self.shared.users().local_parts(&domain.name);
                let boxes: Vec<String> = domain
                    .resolve(local_part, &extra)
                    .into_iter()
                    .map(|b| format!("{b}@{}", domain.name))
                    .filter(|a| written.insert(a.clone()))
                    .collect();
                if boxes.is_empty() && !domain.resolve(local_part, &extra).is_empty() {
                    // Every mailbox already has the message from this attempt.
                    let done = reply(250, (2, 0, 0), "Delivered with another recipient");
                    outcomes.push((i, Outcome::Delivered(result(Stage::Local, None, done))));
                    continue;
                }
                lmtp.entry(target.to_string())
                    .or_insert_with(|| (target.clone(), Vec::new()))
                    .1
                    .push((i, boxes));
            } else if let Some((domain, local_part)) = local {
                // Maildir writes fsync: off the I/O threads.
                let outcome = tokio::task::block_in_place(|| {
                    self.deliver_local(message, domain, &local_part, body, &mut written)
                });
                outcomes.push((i, outcome));
            } else if let Some(m) = r.address.mailbox() {
                remote
                    .entry(m.host().to_string().to_ascii_lowercase())
                    .or_default()
                    .push(i);
            }
        }
        let received = {
            let mut trace = postel_proto::framing::TraceScanner::new();
            // Received fields are in the header section.
            trace.feed(body.head());
            trace.received()
        };
        let max_hops = self.shared.config().max_received;
        for (target, recipients) in lmtp.into_values() {
            outcomes.extend(self.deliver_lmtp(message, &target, &recipients, body).await);
        }
        for (domain, indices) in remote {
            if received > max_hops {
                // RFC 5321 section 6.3: the loop ends here, with a bounce,
                // instead of one more hop.
                warn!(queue_id = %message.id, received, max = max_hops, "mail loop: not relayed");
                let r = Reply::TOO_MANY_HOPS;
                let o = Outcome::Failed(result(Stage::Local, None, r));
                outcomes.extend(indices.iter().map(|&i| (i, o.clone())));
                continue;
            }
            let limit =
                {
                    let mut map = self
                        .domains
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    Arc::clone(map.entry(domain.clone()).or_insert_with(|| {
                        Arc::new(Semaphore::new(self.shared.config().per_domain))
                    }))
                };
            let Ok(_permit) = limit.acquire_owned().await else {
                continue;
            };
            outcomes.extend(
                self.deliver_remote(message, &domain, &indices, body, relayed)
                    .await,
            );
        }
        outcomes
    }

    /// The hosts to try: the smarthost, or the MX plan.
    async fn targets(
        &self,
        domain: &str,
    ) -> Result<Vec<(String, Vec<SocketAddr>)>, (bool, Reply<'static>)> {
        let port = self.shared.config().relay_port;
        if let Some((host, port)) = &self.shared.config().smarthost {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map(Iterator::collect)
                .unwrap_or_default();
            if addrs.is_empty() {
                return Err((false, reply(451, (4, 4, 3), "Smarthost not found")));
            }
            return Ok(vec![(host.clone(), addrs)]);
        }
        let Some(resolver) = &self.resolver else {
            return Err((false, reply(451, (4, 3, 5), "No resolver")));
        };
        let host = Host::try_from(domain)
            .map_err(|_| (true, reply(550, (5, 1, 2), "Bad destination domain")))?;
        let mut options = RouteOptions::default();
        options.local_names = vec![
            self.shared
                .config()
                .hostname
                .to_string()
                .to_ascii_lowercase(),
        ];
        options
            .local_addresses
            .clone_from(&self.shared.own_addresses);
        let mut random = random_index;
        let started = std::time::Instant::now();
        let routed = route(resolver, &host, &options, &mut random).await;
        self.shared
            .metrics
            .dns_lookup
            .observe(started.elapsed().as_secs_f64());
        match routed {
            Ok(plan) => Ok(plan
                .exchangers
                .into_iter()
                .map(|e| {
                    let addrs = e
                        .addresses
                        .into_iter()
                        .map(|ip| SocketAddr::new(ip, port))
                        .collect();
                    (e.name, addrs)
                })
                .collect()),
            Err(e) => {
                let (code, status) = e.status();
                let text = e.to_string();
                let r = Reply::new(code, Some(status), text)
                    .unwrap_or_else(|_| reply(451, (4, 4, 3), "DNS failure"));
                Err((e.is_permanent(), r))
            }
        }
    }

    /// Connects to `addr`, or says why not in the reply to record.
    async fn connect(&self, addr: SocketAddr, name: &str) -> Result<TcpStream, Reply<'static>> {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => {
                info!(host = %name, %addr, error = %e, "connect failed");
                let text = format!("Connection to {name} [{}] failed", addr.ip());
                Err(reply(451, (4, 4, 1), &text))
            }
            Err(_) => {
                let text = format!("Connection to {name} [{}] timed out", addr.ip());
                Err(reply(451, (4, 4, 1), &text))
            }
        }
    }

    /// One attempt at one address: over a parked connection when the TLS
    /// choice lets the message share one (REQUIRETLS, an operator's policy
    /// or MTA-STS give it a connection of its own), else a fresh one; the
    /// reply to record when the address cannot be reached.
    async fn try_address(
        &self,
        addr: SocketAddr,
        (name, label): (&str, &str),
        client_message: &smtp::Outgoing<'_, '_>,
        choice: TlsChoice,
        queue_id: &postel_queue::model::QueueId,
    ) -> Result<Result<smtp::Sent, smtp::SessionFailure>, Reply<'static>> {
        if choice.shareable
            && let Some(sent) = self
                .reuse(&addr.to_string(), client_message, queue_id)
                .await
        {
            return Ok(Ok(sent));
        }
        let tcp = self.connect(addr, name).await?;
        Ok(self
            .exchange(addr, tcp, (name, label), client_message, choice, queue_id)
            .await)
    }

    /// Delivers `indices` of `message` to `domain`'s exchangers. Recipients
    /// handed to a server without DSN are added to `relayed`.
    async fn deliver_remote(
        &self,
        message: &Message,
        domain: &str,
        indices: &[usize],
        body: &source::Source<'_>,
        relayed: &mut Vec<usize>,
    ) -> Vec<(usize, Outcome)> {
        let all = |o: Outcome| indices.iter().map(|&i| (i, o.clone())).collect::<Vec<_>>();
        let targets = match self.targets(domain).await {
            Ok(t) => t,
            Err((true, r)) => return all(Outcome::Failed(result(Stage::Dns, None, r))),
            Err((false, r)) => return all(Outcome::Deferred(result(Stage::Dns, None, r))),
        };
        let client_message = smtp::Outgoing {
            message: client_message(message, indices, body),
            source: body,
        };
        let dane = match self.dane_hosts(domain, &targets).await {
            Ok(d) => d,
            Err(r) => return all(Outcome::Deferred(result(Stage::Dns, None, r))),
        };
        let (choice, targets, sts) = match self
            .tls_for(domain, message.envelope.requiretls, targets, &dane)
            .await
        {
            Ok(t) => t,
            Err(r) => return all(Outcome::Deferred(result(Stage::Connect, None, r))),
        };
        let mut last = reply(451, (4, 4, 1), "No answer from any mail exchanger");
        let mut last_host = None;
        for (name, addrs) in targets {
            let host_dane = dane.get(&name);
            if let Some(dane::HostDane::Failed(why)) = host_dane {
                // RFC 7672 section 2.2: never in cleartext; the next
                // exchanger, or later.
                info!(queue_id = %message.id, host = %name, why, "DANE look-up failed");
                last = reply(451, (4, 7, 5), why);
                last_host = Some(name.clone());
                continue;
            }
            let choice = host_dane.map_or_else(|| choice.clone(), |d| choice.under_dane(d));
            for addr in addrs {
                let label = format!("{name} [{}]", addr.ip());
                let attempt = self.try_address(
                    addr,
                    (&name, &label),
                    &client_message,
                    choice.clone(),
                    &message.id,
                );
                let session = match attempt.await {
                    Ok(session) => session,
                    Err(r) => {
                        last = r;
                        last_host = Some(name.clone());
                        continue;
                    }
                };
                self.count_tls(
                    domain,
                    (sts.as_ref(), choice.dane.as_deref()),
                    (&name, addr),
                    &session,
                );
                match session {
                    Ok(smtp::Sent { results, dsn, .. }) => {
                        // A connection that failed before any recipient got
                        // an answer of its own is worth the next host.
                        let all_transient = results
                            .iter()
                            .all(|r| matches!(r, RecipientResult::Transient(_)));
                        if all_transient && !results.is_empty() {
                            if let Some(RecipientResult::Transient(r)) = results.first() {
                                last = r.clone();
                            }
                            last_host = Some(label);
                            continue;
                        }
                        if !dsn {
                            relayed.extend(
                                indices
                                    .iter()
                                    .zip(&results)
                                    .filter(|(_, r)| matches!(r, RecipientResult::Delivered(_)))
                                    .map(|(&i, _)| i),
                            );
                        }
                        return outcomes_of(indices, results, &label);
                    }
                    Err(e) => {
                        info!(queue_id = %message.id, host = %label, error = %e, "session failed");
                        // RFC 3463 X.4.2: bad connection; our own finding,
                        // saying what went wrong.
                        last = reply(451, (4, 4, 2), &format!("Session with {label} failed: {e}"));
                        last_host = Some(label);
                    }
                }
            }
        }
        all(Outcome::Deferred(result(Stage::Connect, last_host, last)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_draws_stay_in_range_and_reach_every_value() {
        let mut seen = [0usize; 4];
        for _ in 0..4000 {
            let i = random_index(4);
            assert!(i < 4);
            seen[i] += 1;
        }
        // Each of four equal MX records is tried first about a quarter of
        // the time.
        assert!(seen.iter().all(|&n| (700..1300).contains(&n)), "{seen:?}");
        let units: Vec<f64> = (0..1000).map(|_| random_unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(units.iter().any(|&u| u < 0.1) && units.iter().any(|&u| u > 0.9));
        // Two threads draw different sequences.
        let other: Vec<u64> = std::thread::spawn(|| (0..4).map(|_| next_random()).collect())
            .join()
            .unwrap_or_default();
        let mine: Vec<u64> = (0..4).map(|_| next_random()).collect();
        assert_ne!(other, mine);
    }
}
