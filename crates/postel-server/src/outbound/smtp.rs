//! One SMTP session to an exchanger: the postel-session client on a socket,
//! with STARTTLS, a deadline per stage and per connection, and the message
//! as the client sends it.

use std::sync::Arc;
use std::time::Duration;

use postel_proto::types::{BodyType, MailParameters, RcptParameters, XText};
use postel_queue::model::Message;
use postel_session::client::{
    Client, ClientConfig, ClientEvent, Message as ClientMessage, RecipientResult, TlsPolicy,
};
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::{CONNECT_TIMEOUT, Delivery};
use crate::stream::Stream;

impl Delivery {
    /// Delivers over the connection `tcp` to `addr`; a TLS handshake that
    /// fails under opportunistic policy is tried once more in plaintext on
    /// a new connection.
    pub(super) async fn exchange(
        &self,
        addr: std::net::SocketAddr,
        tcp: TcpStream,
        name: &str,
        label: &str,
        client_message: &ClientMessage,
        queue_id: &postel_queue::model::QueueId,
    ) -> Result<Vec<RecipientResult>, SessionFailure> {
        let policy = if self.shared.config.verify_tls {
            TlsPolicy::Required
        } else {
            TlsPolicy::Opportunistic
        };
        let mut session = self
            .session(tcp, name, client_message.clone(), policy)
            .await;
        if let Err(SessionFailure::Tls(e)) = &session
            && policy == TlsPolicy::Opportunistic
        {
            // A server whose TLS is broken is still reachable in
            // plaintext, as under opportunistic TLS it would have
            // been without STARTTLS: once, on a new connection.
            warn!(queue_id = %queue_id, host = %label, error = %e, "TLS failed; retrying in plaintext");
            session = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    self.session(tcp, name, client_message.clone(), TlsPolicy::Never)
                        .await
                }
                Ok(Err(e)) => Err(SessionFailure::Io(e)),
                Err(_) => Err(SessionFailure::Timeout("the connection")),
            };
        }
        session
    }

    /// Runs one client session delivering one message; a result per
    /// recipient, in order. Every reply has its stage's deadline, however the
    /// server trickles it, and the connection as a whole has one too.
    async fn session(
        &self,
        tcp: TcpStream,
        server_name: &str,
        message: ClientMessage,
        tls: TlsPolicy,
    ) -> Result<Vec<RecipientResult>, SessionFailure> {
        let _ = tcp.set_nodelay(true);
        let relay = &self.shared.config;
        let mut config = ClientConfig::new(relay.hostname.clone());
        config.tls = tls;
        config.timeouts = relay.relay_timeouts;
        let block = config.timeouts.data_block;
        let mut client = Client::new(config);
        client.send(message);
        client.finish();
        let mut stream = Stream::Plain(tcp);
        let mut results = None;
        let mut buf = vec![0u8; 16 * 1024];
        let total = tokio::time::Instant::now() + relay.connection_timeout;
        let mut stage = (u64::MAX, total);
        loop {
            while let Some(event) = client.poll() {
                match event {
                    ClientEvent::StartTls => {
                        let Some(tcp) = stream.take_plain() else {
                            return Err(SessionFailure::Io(std::io::Error::other(
                                "STARTTLS twice",
                            )));
                        };
                        let name = tls_server_name(server_name).map_err(SessionFailure::Io)?;
                        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
                        let tls = tokio::time::timeout(
                            Duration::from_secs(60),
                            connector.connect(name, tcp),
                        )
                        .await
                        .map_err(|_| SessionFailure::Tls("TLS handshake timed out".into()))?
                        .map_err(|e| SessionFailure::Tls(format!("TLS handshake failed: {e}")))?;
                        stream = Stream::Tls(Box::new(tls));
                        client.tls_established();
                    }
                    ClientEvent::Delivered(outcome) => {
                        results = Some(outcome.recipients.into_iter().map(|(_, r)| r).collect());
                    }
                    ClientEvent::Failed(e) => {
                        // The recipients carry the MX's reply, or our own
                        // diagnosis when it sent none worth recording.
                        info!(
                            host = %server_name, error = %e, local = e.is_local(),
                            diagnosis = %e.diagnosis(), "session failed"
                        );
                        if results.is_none() {
                            return Err(SessionFailure::Io(std::io::Error::other(e.to_string())));
                        }
                    }
                    ClientEvent::Closed | _ => {}
                }
            }
            let out = client.transmit();
            for piece in out.chunks(64 * 1024) {
                // RFC 5321 section 4.5.3.2.5: each write has its own limit.
                let deadline = total.min(tokio::time::Instant::now() + block);
                tokio::time::timeout_at(deadline, stream.write_all(piece))
                    .await
                    .map_err(|_| SessionFailure::Timeout("a write to the server"))?
                    .map_err(SessionFailure::Io)?;
            }
            if client.is_closed() {
                break;
            }
            if client.replies_read() != stage.0 {
                let limit = client.timeout().unwrap_or(Duration::from_secs(300));
                stage = (
                    client.replies_read(),
                    total.min(tokio::time::Instant::now() + limit),
                );
            }
            let awaiting = client.awaiting().unwrap_or("the server");
            let n = tokio::time::timeout_at(stage.1, stream.read(&mut buf))
                .await
                .map_err(|_| SessionFailure::Timeout(awaiting))?
                .map_err(SessionFailure::Io)?;
            if n == 0 {
                break;
            }
            client.receive(&buf[..n]);
        }
        stream.shutdown().await;
        results.ok_or_else(|| {
            SessionFailure::Io(std::io::Error::other(
                "connection closed before the message was done",
            ))
        })
    }
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
pub(super) fn client_message(message: &Message, indices: &[usize], body: &[u8]) -> ClientMessage {
    let e = &message.envelope;
    let mut params = MailParameters::default();
    params.body = match e.body_type {
        BodyType::SevenBit => None,
        other => Some(other),
    };
    params.smtputf8 = e.smtputf8;
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
        data: body.to_vec(),
    }
}
