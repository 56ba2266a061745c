//! One SMTP session to an exchanger: the postel-session client on a socket,
//! with STARTTLS, a deadline per stage and per connection, and the message
//! as the client sends it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postel_proto::types::{BodyType, MailParameters, RcptParameters, XText};
use postel_queue::model::Message;
use postel_session::client::{
    Client, ClientConfig, ClientEvent, Message as ClientMessage, RecipientResult, TlsPolicy,
};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{CONNECT_TIMEOUT, Delivery};
use crate::stream::Stream;

/// An open session to one exchanger, between messages or during one.
pub(super) struct Connection {
    client: Client,
    stream: Stream,
    server_name: String,
    label: String,
    tls: Arc<rustls::ClientConfig>,
    /// Messages given to the client so far: the next one's outcome index.
    sent: usize,
    /// The deadline of the whole connection.
    total: tokio::time::Instant,
    /// The limit of each write.
    block: Duration,
    /// The replies read when the current stage's deadline was set, and it.
    stage: (u64, tokio::time::Instant),
}

/// A message to send: the client's form of it, and the queued body that
/// feeds it when it goes in pieces.
pub(super) struct Outgoing<'s, 'q> {
    /// The envelope and the body as the client takes it.
    pub(super) message: ClientMessage,
    /// The queued body.
    pub(super) source: &'s super::source::Source<'q>,
}

/// Where a parked connection is asked to hand itself over.
pub(super) type Parked = oneshot::Sender<oneshot::Sender<Connection>>;

impl Delivery {
    /// Delivers over a fresh connection `tcp` to `addr`; a TLS handshake
    /// that fails under opportunistic policy is tried once more in plaintext
    /// on a new connection. The connection is parked for the next message to
    /// the same address when reuse allows, and closed otherwise.
    pub(super) async fn exchange(
        &self,
        addr: SocketAddr,
        tcp: TcpStream,
        (name, label): (&str, &str),
        client_message: &Outgoing<'_, '_>,
        choice: super::TlsChoice,
        queue_id: &postel_queue::model::QueueId,
    ) -> Result<Sent, SessionFailure> {
        let policy = choice.policy;
        if !choice.shareable {
            info!(queue_id = %queue_id, host = %label, tls = choice.why, "TLS policy");
        }
        let mut conn = self.open(Stream::Plain(tcp), name, label, policy, false);
        let mut observed = None;
        if let Some(records) = &choice.dane {
            conn.tls = super::dane::DaneVerifier::client_config(Arc::clone(records));
        } else if choice.verify {
            conn.tls = Arc::clone(&self.verified);
        } else if let (true, Some(verifier)) = (choice.observe, &self.observer) {
            let (config, seen) = crate::tls::observing_client_config(Arc::clone(verifier));
            conn.tls = config;
            observed = Some(seen);
        }
        let mut session = send_on(&mut conn, client_message).await.map(|sent| {
            match observed.as_ref().and_then(|o| o.lock().ok()?.clone()) {
                Some(e) if sent.tls => Sent {
                    tls_failed: Some(e),
                    ..sent
                },
                _ => sent,
            }
        });
        if let Err(SessionFailure::Tls(e)) = &session
            && policy == TlsPolicy::Opportunistic
        {
            // A server whose TLS is broken is still reachable in
            // plaintext, as under opportunistic TLS it would have
            // been without STARTTLS: once, on a new connection.
            warn!(queue_id = %queue_id, host = %label, error = %e, "TLS failed; retrying in plaintext");
            let failed = e.clone();
            session = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    conn = self.open(Stream::Plain(tcp), name, label, TlsPolicy::Never, false);
                    send_on(&mut conn, client_message).await.map(|sent| Sent {
                        tls_failed: Some(failed),
                        ..sent
                    })
                }
                Ok(Err(e)) => Err(SessionFailure::Io(e)),
                Err(_) => Err(SessionFailure::Timeout("the connection")),
            };
        }
        if session.is_ok() && choice.shareable {
            self.park_or_close(&addr.to_string(), conn).await;
        } else {
            conn.stream.shutdown().await;
        }
        session
    }

    /// Delivers over a parked connection to `addr`, if there is one that the
    /// server has kept open; `None` when there is none or it failed before
    /// the message got an answer, so that a fresh connection is tried.
    pub(super) async fn reuse(
        &self,
        addr: &str,
        client_message: &Outgoing<'_, '_>,
        queue_id: &postel_queue::model::QueueId,
    ) -> Option<Sent> {
        while let Some(mut conn) = self.take_parked(addr).await {
            match send_on(&mut conn, client_message).await {
                Ok(results) => {
                    info!(queue_id = %queue_id, host = %conn.label, messages = conn.sent, "connection reused");
                    self.park_or_close(addr, conn).await;
                    return Some(results);
                }
                Err(e) => {
                    info!(queue_id = %queue_id, host = %conn.label, error = %e, "reused connection failed");
                    conn.stream.shutdown().await;
                }
            }
        }
        None
    }

    pub(super) fn open(
        &self,
        stream: Stream,
        name: &str,
        label: &str,
        tls: TlsPolicy,
        lmtp: bool,
    ) -> Connection {
        if let Stream::Plain(tcp) = &stream {
            let _ = tcp.set_nodelay(true);
        }
        let relay = self.shared.config();
        let mut config = ClientConfig::new(relay.hostname.clone());
        config.tls = tls;
        config.lmtp = lmtp;
        config.timeouts = relay.relay_timeouts;
        let total = tokio::time::Instant::now() + relay.connection_timeout;
        info!(host = %label, "connected");
        Connection {
            block: config.timeouts.data_block,
            client: Client::new(config),
            stream,
            server_name: name.to_owned(),
            label: label.to_owned(),
            tls: Arc::clone(&self.tls),
            sent: 0,
            total,
            stage: (u64::MAX, total),
        }
    }

    async fn take_parked(&self, addr: &str) -> Option<Connection> {
        loop {
            let entry = {
                let mut parked = self
                    .parked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                parked.get_mut(addr)?.pop()?
            };
            let (give, take) = oneshot::channel();
            if entry.send(give).is_ok()
                && let Ok(conn) = take.await
            {
                return Some(conn);
            }
        }
    }

    /// Keeps `conn` open for the next message to `addr` for the idle time,
    /// while it is good for more messages; closes it otherwise. A parked
    /// connection that the server speaks on or closes is dropped.
    pub(super) async fn park_or_close(&self, addr: &str, mut conn: Connection) {
        let relay = self.shared.config();
        if conn.client.is_closed()
            || conn.sent >= relay.messages_per_connection
            || tokio::time::Instant::now() + relay.connection_idle >= conn.total
        {
            close(&mut conn).await;
            return;
        }
        let (entry, ask) = oneshot::channel::<oneshot::Sender<Connection>>();
        {
            let mut parked = self
                .parked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let list = parked.entry(addr.to_owned()).or_default();
            list.retain(|p| !p.is_closed());
            list.push(entry);
        }
        let idle = relay.connection_idle;
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            enum Wake {
                Asked(oneshot::Sender<Connection>),
                Spoke,
                Idle,
            }
            let wake = tokio::select! {
                asked = ask => asked.map_or(Wake::Idle, Wake::Asked),
                _ = conn.stream.read(&mut buf) => Wake::Spoke,
                () = tokio::time::sleep(idle) => Wake::Idle,
            };
            match wake {
                Wake::Asked(give) => {
                    if let Err(mut conn) = give.send(conn) {
                        close(&mut conn).await;
                    }
                }
                // A server that talks or hangs up while idle (a 421 for its
                // own timeout) is not to be used again.
                Wake::Spoke => conn.stream.shutdown().await,
                Wake::Idle => close(&mut conn).await,
            }
        });
    }
}

/// Gives the client one more message and drives the session until that
/// message has its outcome: a result per recipient, in order.
pub(super) async fn send_on(
    conn: &mut Connection,
    out: &Outgoing<'_, '_>,
) -> Result<Sent, SessionFailure> {
    let index = conn.sent;
    conn.sent += 1;
    conn.client.send(out.message.clone());
    // The stage deadline starts when the new message is sent.
    conn.stage.0 = u64::MAX;
    let results = drive(conn, Some((index, out.source)))
        .await?
        .ok_or_else(|| {
            SessionFailure::Io(std::io::Error::other(
                "connection closed before the message was done",
            ))
        })?;
    let dsn = conn.client.capabilities().is_some_and(|c| c.dsn);
    Ok(Sent {
        results,
        dsn,
        tls: matches!(conn.stream, Stream::Tls(_)),
        tls_failed: None,
    })
}

/// What one message's session gave.
pub(super) struct Sent {
    /// A result per recipient, in order.
    pub(super) results: Vec<RecipientResult>,
    /// The server offered DSN: it reports on the message from here on, so
    /// a NOTIFY=SUCCESS is its to answer, not ours (RFC 3461 section 5.2).
    pub(super) dsn: bool,
    /// The session ran under TLS.
    pub(super) tls: bool,
    /// A first handshake failed, and this session is the plaintext retry.
    pub(super) tls_failed: Option<String>,
}

/// Says QUIT and waits for the answer, briefly.
async fn close(conn: &mut Connection) {
    conn.client.finish();
    let _ = tokio::time::timeout(Duration::from_secs(10), drive(conn, None)).await;
    conn.stream.shutdown().await;
    info!(host = %conn.label, messages = conn.sent, "connection closed");
}

/// Drives the session: until message `want` has its outcome, or (`None`)
/// until the server closes. Every reply has its stage's deadline, however
/// the server trickles it, and the connection as a whole has one too.
async fn drive(
    conn: &mut Connection,
    message: Option<(usize, &super::source::Source<'_>)>,
) -> Result<Option<Vec<RecipientResult>>, SessionFailure> {
    let want = message.map(|(i, _)| i);
    let mut results = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(event) = conn.client.poll() {
            match event {
                ClientEvent::StartTls => {
                    let Some(tcp) = conn.stream.take_plain() else {
                        return Err(SessionFailure::Io(std::io::Error::other("STARTTLS twice")));
                    };
                    let name = tls_server_name(&conn.server_name).map_err(SessionFailure::Io)?;
                    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&conn.tls));
                    let tls =
                        tokio::time::timeout(Duration::from_secs(60), connector.connect(name, tcp))
                            .await
                            .map_err(|_| SessionFailure::Tls("TLS handshake timed out".into()))?
                            .map_err(|e| {
                                SessionFailure::Tls(format!("TLS handshake failed: {e}"))
                            })?;
                    conn.stream = Stream::Tls(Box::new(tls));
                    conn.client.tls_established();
                }
                ClientEvent::BodyWanted => {
                    let Some((_, source)) = message else {
                        conn.client.end_body();
                        continue;
                    };
                    flush(conn).await?;
                    let mut pieces = source.pieces();
                    while let Some(piece) = pieces
                        .next()
                        .await
                        .map_err(|e| SessionFailure::Io(std::io::Error::other(e.to_string())))?
                    {
                        conn.client.send_body(piece);
                        flush(conn).await?;
                    }
                    conn.client.end_body();
                }
                ClientEvent::Delivered(outcome) if Some(outcome.message) == want => {
                    results = Some(outcome.recipients.into_iter().map(|(_, r)| r).collect());
                }
                ClientEvent::Failed(e) => {
                    // The recipients carry the MX's reply, or our own
                    // diagnosis when it sent none worth recording.
                    info!(
                        host = %conn.label, error = %e, local = e.is_local(),
                        diagnosis = %e.diagnosis(), "session failed"
                    );
                    if results.is_none() && want.is_some() {
                        return Err(SessionFailure::Io(std::io::Error::other(e.to_string())));
                    }
                }
                _ => {}
            }
        }
        flush(conn).await?;
        if results.is_some() || conn.client.is_closed() {
            return Ok(results);
        }
        let client = &conn.client;
        if client.replies_read() != conn.stage.0 {
            let limit = client.timeout().unwrap_or(Duration::from_secs(300));
            conn.stage = (
                client.replies_read(),
                conn.total.min(tokio::time::Instant::now() + limit),
            );
        }
        let awaiting = client.awaiting().unwrap_or("the server");
        let n = tokio::time::timeout_at(conn.stage.1, conn.stream.read(&mut buf))
            .await
            .map_err(|_| SessionFailure::Timeout(awaiting))?
            .map_err(SessionFailure::Io)?;
        if n == 0 {
            return Ok(results);
        }
        conn.client.receive(&buf[..n]);
    }
}

/// Writes what the client has to send.
async fn flush(conn: &mut Connection) -> Result<(), SessionFailure> {
    let out = conn.client.transmit();
    for piece in out.chunks(64 * 1024) {
        // RFC 5321 section 4.5.3.2.5: each write has its own limit.
        let deadline = conn.total.min(tokio::time::Instant::now() + conn.block);
        tokio::time::timeout_at(deadline, conn.stream.write_all(piece))
            .await
            .map_err(|_| SessionFailure::Timeout("a write to the server"))?
            .map_err(SessionFailure::Io)?;
    }
    Ok(())
}

/// Why a session delivered nothing.
#[derive(Debug, thiserror::Error)]
pub(super) enum SessionFailure {
    /// The TLS handshake after STARTTLS failed: worth one more try in
    /// plaintext where the policy allows it.
    #[error("{0}")]
    Tls(String),
    /// A stage's deadline passed.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The connection broke.
    #[error("{0}")]
    Io(std::io::Error),
}

/// The name the TLS session checks the certificate against: an IP address
/// for an address literal (`user@[192.0.2.1]`, whose exchanger is the
/// literal itself), the host name otherwise.
fn tls_server_name(host: &str) -> std::io::Result<rustls::pki_types::ServerName<'static>> {
    if host.starts_with('[') {
        let ip = postel_proto::types::AddressLiteral::try_from(host)
            .ok()
            .and_then(|l| l.ip())
            .ok_or_else(|| std::io::Error::other(format!("{host} is not an IP literal")))?;
        return Ok(rustls::pki_types::ServerName::IpAddress(ip.into()));
    }
    rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The message as the client sends it, for the given recipients.
pub(super) fn client_message(
    message: &Message,
    indices: &[usize],
    body: &super::source::Source<'_>,
) -> ClientMessage {
    let e = &message.envelope;
    let mut params = MailParameters::default();
    params.body = match e.body_type {
        BodyType::SevenBit => None,
        other => Some(other),
    };
    params.smtputf8 = e.smtputf8;
    params.requiretls = e.requiretls;
    params.ret = e.ret;
    params.envid = e
        .envid
        .as_ref()
        .map(|id| XText::encode(id.as_bytes()).into_owned());
    let recipients = indices
        .iter()
        .filter_map(|&i| message.recipients.get(i))
        .map(|r| {
            let mut p = RcptParameters::default();
            p.notify = r.notify;
            p.orcpt = r
                .orcpt
                .as_deref()
                .and_then(postel_queue::model::orcpt_param);
            (r.address.clone(), p)
        })
        .collect();
    ClientMessage {
        from: e.return_path.clone(),
        params,
        recipients,
        data: body.message_body(),
    }
}
