//! One client connection: the postel-session server state machine on a
//! socket, with the relay policy, AUTH against the users file, STARTTLS, and
//! the queue as the place a message must reach before the 250.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postel_proto::types::{BodyType, EnhancedStatus, Mechanism, Reply, ReplyCode, ReversePath};
use postel_queue::model::NewRecipient;
use postel_session::server::{Event, MailRequest, MessageRequest, Server, ServerConfig};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::config::Role;
use crate::filters::{Filters, Outcome};
use crate::state::Shared;
use crate::stream::Stream;

mod auth;
mod body;
mod filter;
mod rcpt;
mod store;

use filter::{MessageVerdict, command_args};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// A reply of our own. Text that could not be a reply line (a control
/// character, or longer than a line holds, as an error message from the
/// outside world may be) is cleaned up rather than lost; a wrong constant
/// falls back to a plain 451 4.5.0.
pub(crate) fn reply(code: u16, status: (u8, u16, u16), text: &str) -> Reply<'static> {
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.len() > 400 {
        let mut end = 400;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    ReplyCode::new(code)
        .and_then(|c| Reply::new(c, EnhancedStatus::new(status.0, status.1, status.2), clean).ok())
        .unwrap_or(Reply::TRANSIENT_PROTOCOL_ERROR)
}

/// Where a recipient's mail goes.
enum Destination {
    /// Local mailboxes, as `mailbox@domain` after alias resolution.
    Local(Vec<String>),
    /// A remote address, as [`remote_destination`] writes it.
    Remote(String),
}

/// Where mail for a remote mailbox goes, for duplicate detection: the
/// domain compares without case, the local part exactly (RFC 5321 section
/// 2.4 leaves its case to the receiving host).
fn remote_destination(m: &postel_proto::types::Mailbox<'_>) -> String {
    format!(
        "{}@{}",
        m.local_part().as_str(),
        m.host().to_string().to_ascii_lowercase()
    )
}

/// The transaction being collected.
#[derive(Default)]
#[allow(clippy::struct_excessive_bools)] // MAIL's two flags and the filters' two marks, each on its own.
struct Transaction {
    from: Option<ReversePath<'static>>,
    envid: Option<String>,
    ret: Option<postel_proto::types::Ret>,
    body_type: Option<BodyType>,
    smtputf8: bool,
    recipients: Vec<NewRecipient>,
    /// Where the accepted recipients' mail goes: `mailbox@domain` for local
    /// mailboxes after alias resolution, the address for remote ones.
    destinations: std::collections::HashSet<String>,
    /// The local ones of those, which a `Delivered-To` loop check looks at.
    local_mailboxes: std::collections::HashSet<String>,
    body: body::Body,
    /// A filter discarded the message: answer 250, store nothing.
    discard: bool,
    /// A filter quarantined it, for this reason.
    quarantine: Option<String>,
    /// The filters were asked about DATA (BDAT has no such moment: they are
    /// asked at the end instead).
    data_filtered: bool,
    /// MAIL FROM asked for REQUIRETLS (RFC 8689).
    requiretls: bool,
    /// The SPF checks made at MAIL.
    spf: Option<postel_auth::SessionSpf>,
    /// The Authentication-Results field to store above the trace field.
    auth_results: Option<String>,
    /// The DKIM-Signature fields of a message this server signed.
    signatures: Option<String>,
}

/// What the connection knows about its client.
struct Peer {
    addr: SocketAddr,
    helo: Option<String>,
    extended: bool,
    user: Option<String>,
    tls: bool,
}

/// The session settings every listener shares: the name and the limits.
pub(crate) fn session_base(c: &crate::config::Config) -> ServerConfig {
    let mut config = ServerConfig::new(c.hostname.clone());
    config.max_message_size = Some(c.max_message_size);
    config.max_recipients = c.max_recipients;
    config.max_errors = c.max_errors;
    config.max_received = Some(c.max_received);
    config
}

fn session_config(shared: &Shared, c: &crate::config::Config, role: Role) -> ServerConfig {
    let mut config = session_base(c);
    let tls = shared.certs.is_some();
    config.starttls = tls && role != Role::Submissions;
    // Relayed only over verified TLS; LMTP hands mail to its final store.
    config.requiretls = tls && role != Role::Lmtp;
    config.auth_mechanisms = vec![Mechanism::PLAIN, Mechanism::LOGIN];
    config.allow_auth_without_tls = false;
    config.require_auth = role != Role::Mx;
    // With filters, DATA waits for them before its 354.
    config.decide_data = c.milters.iter().any(|m| m.roles.contains(&role));
    config
}

/// Serves one connection to its end.
pub(crate) async fn serve(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr, role: Role) {
    let _ = tcp.set_nodelay(true);
    let mut stream = Stream::Plain(tcp);
    let snapshot = shared.config();
    let config =
        shared.session_settings(&snapshot, role, || session_config(&shared, &snapshot, role));
    let mut server = if role == Role::Submissions {
        let Some(certs) = &shared.certs else { return };
        let Some(tcp) = stream.take_plain() else {
            return;
        };
        let handshakes = &shared.metrics.tls_handshakes;
        let count = |result| {
            handshakes
                .get_or_create(&crate::metrics::ResultLabel { result })
                .inc()
        };
        match Box::pin(tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            certs.acceptor().accept(tcp),
        ))
        .await
        {
            Ok(Ok(tls)) => {
                count("ok");
                stream = Stream::Tls(Box::new(tls));
            }
            Ok(Err(e)) => {
                count("failed");
                info!(client = %peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                count("failed");
                info!(client = %peer, "TLS handshake timed out");
                return;
            }
        }
        Server::new_tls(config)
    } else {
        Server::new(config)
    };
    info!(client = %peer, ?role, "connect");
    let mut conn = Connection {
        config: snapshot,
        users: shared.users(),
        shared: Arc::clone(&shared),
        peer: Peer {
            addr: peer,
            helo: None,
            extended: false,
            user: None,
            tls: role == Role::Submissions,
        },
        txn: Transaction::default(),
        messages: 0,
        role,
        filters: Filters::none(),
        refusal: None,
    };
    if !conn.config.milters.is_empty() {
        let c = Arc::clone(&conn.config);
        conn.filters = Box::pin(Filters::open(&c.milters, role, c.max_message_size)).await;
        match Box::pin(conn.filter_connect()).await {
            Outcome::Continue | Outcome::Discard => {}
            // As Postfix does with a restriction on the client: the session
            // goes on and each MAIL gets the refusal.
            Outcome::Refuse(r) => conn.refusal = Some(r),
            Outcome::Close(r) => server.shutdown_with(&r),
        }
    }
    // A bug that panics while serving ends this session with 421, as RFC
    // 5321 section 3.8 asks of a server that must close, instead of a
    // silently dropped connection; other sessions run on regardless.
    let result = {
        let mut session = Box::pin(conn.run(&mut server, &mut stream));
        std::future::poll_fn(|cx| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                session.as_mut().poll(cx)
            })) {
                Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
                Ok(std::task::Poll::Ready(r)) => std::task::Poll::Ready(Ok(r)),
                Err(panic) => std::task::Poll::Ready(Err(panic)),
            }
        })
        .await
    };
    let result = if let Ok(r) = result {
        r
    } else {
        warn!(client = %peer, "session panicked; closing with 421");
        let _ = stream
            .write_all(b"421 4.3.0 Internal error, closing connection\r\n")
            .await;
        Err(std::io::Error::other("session panicked"))
    };
    // A connection that ended mid-message leaves nothing in the queue.
    conn.txn.body.discard(&shared.queue).await;
    shared.metrics.commands_of(&server);
    Box::pin(conn.filters.quit()).await;
    stream.shutdown().await;
    match result {
        Ok(()) => info!(client = %peer, messages = conn.messages, "disconnect"),
        Err(e) => info!(client = %peer, messages = conn.messages, error = %e, "disconnect"),
    }
}

struct Connection {
    shared: Arc<Shared>,
    /// The configuration and users as they were when the session began: a
    /// reload applies to the sessions that begin after it.
    config: Arc<crate::config::Config>,
    users: Arc<crate::users::Users>,
    peer: Peer,
    txn: Transaction,
    messages: usize,
    /// What the listener is for.
    role: Role,
    /// The session's milters.
    filters: Filters,
    /// A filter's refusal at connect or HELO, given to each MAIL.
    refusal: Option<Reply<'static>>,
}

impl Connection {
    async fn run(&mut self, server: &mut Server, stream: &mut Stream) -> std::io::Result<()> {
        // Only a TLS session reads into a buffer of the connection's own
        // (see `Stream::read_with`); an idle connection holds none.
        let mut buf: Vec<u8> = Vec::new();
        let mut stopping = self.shared.stopping.clone();
        loop {
            while let Some(event) = server.poll() {
                // Boxed: the handling of an event needs far more state than
                // waiting for the client does, and an idle connection should
                // not carry it.
                Box::pin(self.handle(server, stream, event)).await?;
            }
            let sent = server.transmit();
            self.shared.metrics.count_replies(&sent);
            stream.write_all(&sent).await?;
            if server.is_closed() {
                return Ok(());
            }
            let in_message = self.txn.from.is_some();
            if *stopping.borrow() && !in_message {
                // Stopping: a client between transactions is told 421.
                server.shutdown();
                continue;
            }
            let idle = self.config.idle_timeout;
            let wait = server.timeout().map_or(idle, |t| t.min(idle));
            let read = stream.read_with(&mut buf, |data| server.receive(data));
            let n = tokio::select! {
                read = tokio::time::timeout(wait, read) => {
                    let Ok(n) = read else {
                        info!(client = %self.peer.addr, "timeout");
                        server.shutdown();
                        continue;
                    };
                    n?
                }
                _ = stopping.changed(), if !in_message => continue,
            };
            if n == 0 {
                return Ok(());
            }
        }
    }

    async fn handle(
        &mut self,
        server: &mut Server,
        stream: &mut Stream,
        event: Event,
    ) -> std::io::Result<()> {
        match event {
            Event::Hello { name, extended } => {
                self.peer.helo = Some(name.to_string());
                self.peer.extended = extended;
                self.reset_transaction().await;
                if !self.filters.is_empty() {
                    self.filters.abort().await;
                    match self.filter_helo(&name.to_string()).await {
                        Outcome::Continue | Outcome::Discard => {}
                        Outcome::Refuse(r) => self.refusal = Some(r),
                        Outcome::Close(r) => server.shutdown_with(&r),
                    }
                }
            }
            Event::Mail(m) => self.mail(server, m).await?,
            Event::Rcpt(r) => self.recipient(server, r).await?,
            Event::Data(d) => {
                let misuse = |e: String| std::io::Error::other(e);
                let outcome = if self.txn.discard {
                    Outcome::Continue
                } else {
                    self.filter_data().await
                };
                self.txn.data_filtered = true;
                match outcome {
                    Outcome::Continue => d.accept(server).map_err(|e| misuse(e.to_string()))?,
                    Outcome::Discard => {
                        self.txn.discard = true;
                        d.accept(server).map_err(|e| misuse(e.to_string()))?;
                    }
                    Outcome::Refuse(r) => {
                        info!(client = %self.peer.addr, reply = %r, "DATA refused by a filter");
                        self.shared.metrics.refused("filter");
                        d.reject(server, r).map_err(|e| misuse(e.to_string()))?;
                    }
                    Outcome::Close(r) => server.shutdown_with(&r),
                }
            }
            Event::Body(data) if !self.txn.discard => {
                let hold = matches!(self.txn.body, body::Body::Empty) && self.holds_whole();
                self.txn.body.push(&self.shared.queue, hold, &data).await;
            }
            Event::Message(m) => self.message(server, m).await?,
            Event::MessageAborted(why) => {
                info!(client = %self.peer.addr, reason = %why, "message refused");
                use postel_proto::framing::BodyViolation;
                self.shared.metrics.refused(match why {
                    BodyViolation::TooLarge { .. } => "size",
                    BodyViolation::BareLineEnding { .. } => "smuggling",
                    BodyViolation::TooManyHops { .. } => "loop",
                    _ => "line_length",
                });
                self.reset_transaction().await;
                self.filters.abort().await;
            }
            Event::Reset => {
                self.reset_transaction().await;
                self.filters.abort().await;
            }
            Event::StartTls => self.start_tls(server, stream).await?,
            Event::Auth(a) => self.authenticate(server, a).await?,
            _ => {}
        }
        Ok(())
    }

    /// Forgets the transaction, and what of its body the queue has.
    async fn reset_transaction(&mut self) {
        self.txn.body.discard(&self.shared.queue).await;
        self.txn = Transaction::default();
    }

    /// Whether this session's messages are held whole in memory, for a
    /// check that reads the whole message: a milter, the DKIM, ARC and
    /// DMARC checks, or DKIM signing of what a user sends. Otherwise the
    /// body streams to the queue.
    fn holds_whole(&self) -> bool {
        !self.filters.is_empty()
            || (self.peer.user.is_some() && !self.config.dkim.is_empty())
            || self.checked().is_some()
    }

    /// MAIL: the connection's refusal, the rates, the filters.
    async fn mail(&mut self, server: &mut Server, m: MailRequest) -> std::io::Result<()> {
        let misuse = |e: String| std::io::Error::other(e);
        if let Some(refusal) = self.refusal.clone().or_else(|| self.over_rate(true)) {
            return m.reject(server, refusal).map_err(|e| misuse(e.to_string()));
        }
        let spf = match self.check_spf(&m.from).await {
            Ok(spf) => spf,
            Err(refusal) => return m.reject(server, refusal).map_err(|e| misuse(e.to_string())),
        };
        let mut discard = false;
        if !self.filters.is_empty() {
            let command = postel_proto::types::Command::Mail {
                from: m.from.clone(),
                params: m.params.clone(),
            };
            let args = command_args(&command, m.from.to_string());
            match self.filter_mail(&args, &m.from).await {
                Outcome::Continue => {}
                Outcome::Discard => discard = true,
                Outcome::Refuse(r) => {
                    info!(client = %self.peer.addr, from = %m.from, reply = %r, "sender refused by a filter");
                    self.shared.metrics.refused("filter");
                    return m.reject(server, r).map_err(|e| misuse(e.to_string()));
                }
                Outcome::Close(r) => {
                    server.shutdown_with(&r);
                    return Ok(());
                }
            }
        }
        self.txn.body.discard(&self.shared.queue).await;
        self.txn = Transaction {
            from: Some(m.from.clone()),
            // The parser takes only printable US-ASCII (RFC 3461
            // section 4.4), so the decoded value is exact.
            envid: m
                .params
                .envid
                .as_ref()
                .and_then(|e| String::from_utf8(e.decode().into_owned()).ok()),
            ret: m.params.ret,
            body_type: m.params.body,
            smtputf8: m.params.smtputf8,
            requiretls: m.params.requiretls,
            discard,
            spf,
            ..Transaction::default()
        };
        m.accept(server).map_err(|e| misuse(e.to_string()))?;
        Ok(())
    }

    /// The end of the message: the loop check, the filters, the queue.
    async fn message(&mut self, server: &mut Server, m: MessageRequest) -> std::io::Result<()> {
        let misuse = |e: String| std::io::Error::other(e);
        let txn = std::mem::take(&mut self.txn);
        let looped = txn
            .local_mailboxes
            .iter()
            .find(|a| crate::maildir::delivered_before(&m.delivered_to, a));
        if let Some(looped) = looped {
            // Mail that a mailbox of ours already received has come
            // back to it: a forwarding loop.
            info!(client = %self.peer.addr, delivered_to = %looped, "mail loop: message refused");
            self.shared.metrics.refused("loop");
            let answer = reply(
                554,
                (5, 4, 6),
                "Mail loop: already delivered to this mailbox",
            );
            return m.reject(server, answer).map_err(|e| misuse(e.to_string()));
        }
        let mut txn = txn;
        if let Err(refusal) = self.check_message(&mut txn).await {
            return m.reject(server, refusal).map_err(|e| misuse(e.to_string()));
        }
        let mut txn = if self.filters.is_empty() {
            txn
        } else {
            match self.filter_message(txn).await {
                MessageVerdict::Store(txn) => *txn,
                MessageVerdict::Discard => {
                    info!(client = %self.peer.addr, "message discarded by a filter");
                    let answer = reply(250, (2, 0, 0), "Ok");
                    return m
                        .accept_with(server, answer)
                        .map_err(|e| misuse(e.to_string()));
                }
                MessageVerdict::Refuse(r) => {
                    info!(client = %self.peer.addr, reply = %r, "message refused by a filter");
                    self.shared.metrics.refused("filter");
                    return m.reject(server, r).map_err(|e| misuse(e.to_string()));
                }
                MessageVerdict::Close(r) => {
                    server.shutdown_with(&r);
                    return Ok(());
                }
            }
        };
        if let Err(refusal) = self.sign(&mut txn) {
            return m.reject(server, refusal).map_err(|e| misuse(e.to_string()));
        }
        let answer = self.enqueue(txn).await;
        m.accept_with(server, answer)
            .map_err(|e| misuse(e.to_string()))?;
        Ok(())
    }

    /// The TLS handshake after STARTTLS's 220 (RFC 3207): the session starts
    /// over on the new stream.
    async fn start_tls(&mut self, server: &mut Server, stream: &mut Stream) -> std::io::Result<()> {
        let misuse = |e: String| std::io::Error::other(e);
        // The 220 goes out in plaintext before the handshake.
        stream.write_all(&server.transmit()).await?;
        let (Some(certs), Some(tcp)) = (&self.shared.certs, stream.take_plain()) else {
            return Err(misuse("STARTTLS without a certificate".into()));
        };
        let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, certs.acceptor().accept(tcp)).await;
        let result = if matches!(accepted, Ok(Ok(_))) {
            "ok"
        } else {
            "failed"
        };
        self.shared
            .metrics
            .tls_handshakes
            .get_or_create(&crate::metrics::ResultLabel { result })
            .inc();
        match accepted {
            Ok(Ok(tls)) => {
                *stream = Stream::Tls(Box::new(tls));
                server.tls_established();
                self.peer.user = None;
                self.peer.tls = true;
            }
            Ok(Err(e)) => return Err(misuse(format!("TLS handshake failed: {e}"))),
            Err(_) => return Err(misuse("TLS handshake timed out".into())),
        }
        Ok(())
    }

    /// Checks AUTH credentials against the users file.
    async fn authenticate(
        &mut self,
        server: &mut Server,
        a: postel_session::server::AuthRequest,
    ) -> std::io::Result<()> {
        let misuse = |e: String| std::io::Error::other(e);
        let name = a.credentials.authentication_id.clone();
        let password = a.credentials.password.expose().clone();
        let shared = Arc::clone(&self.shared);
        let check = name.clone();
        // The hash is slow on purpose: off the I/O threads.
        let ok = tokio::task::spawn_blocking(move || shared.users().verify(&check, &password))
            .await
            .unwrap_or(false);
        let authz_ok = a.credentials.authorization_id.is_empty()
            || a.credentials.authorization_id.eq_ignore_ascii_case(&name);
        if ok && authz_ok {
            info!(client = %self.peer.addr, user = %name, "authenticated");
            self.peer.user = Some(name.to_lowercase());
            a.accept(server).map_err(|e| misuse(e.to_string()))?;
        } else {
            warn!(client = %self.peer.addr, user = %name, "authentication failed");
            self.shared.metrics.refused("auth");
            a.reject(
                server,
                reply(535, (5, 7, 8), "Authentication credentials invalid"),
            )
            .map_err(|e| misuse(e.to_string()))?;
        }
        Ok(())
    }

    /// Counts a MAIL (`message`) or a RCPT against the client address's and
    /// the user's rates; the refusal when one is past its limit (Postfix's
    /// `smtpd_client_message_rate_limit` and `..._recipient_rate_limit`).
    fn over_rate(&self, message: bool) -> Option<Reply<'static>> {
        use crate::rate::Counted;
        let now = std::time::Instant::now();
        let ip = self.peer.addr.ip();
        let user = self.peer.user.clone();
        let (by_ip, by_user) = if message {
            (Counted::Message(ip), user.map(Counted::UserMessage))
        } else {
            (Counted::Recipient(ip), user.map(Counted::UserRecipient))
        };
        let rates = &self.shared.rates;
        let ip_ok = rates.allow(by_ip, now);
        let user_ok = by_user.is_none_or(|u| rates.allow(u, now));
        if ip_ok && user_ok {
            return None;
        }
        let what = if message { "messages" } else { "recipients" };
        warn!(client = %self.peer.addr, user = ?self.peer.user, what, "rate limit");
        self.shared.metrics.refused("rate");
        Some(if message {
            reply(450, (4, 7, 1), "Too many messages, slow down")
        } else {
            reply(452, (4, 7, 1), "Too many recipients, slow down")
        })
    }
}
