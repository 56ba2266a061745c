//! One LMTP connection (RFC 2033): postel as the final delivery agent behind
//! another MTA. Each accepted recipient's copy goes into its Maildir, and its
//! reply is sent only once the file is durable there; nothing is queued and
//! nothing relayed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use postel_proto::types::{ForwardPath, Host, Reply};
use postel_session::server::{Event, LmtpMessageRequest, RcptRequest, Server};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::Role;
use crate::inbound::reply;
use crate::state::Shared;
use crate::stream::Stream;

/// The mailboxes (domain, mailbox) a recipient's mail goes to; empty when it
/// is not a known local address.
fn mailboxes(
    config: &crate::config::Config,
    users: &crate::users::Users,
    to: &ForwardPath<'_>,
) -> Vec<(String, String)> {
    let (domain, local) = match to {
        ForwardPath::Postmaster => match config.domains.first() {
            Some(d) => (d, "postmaster".to_owned()),
            None => return Vec::new(),
        },
        ForwardPath::Mailbox(m) => match m.host() {
            Host::Domain(d) => match config.local_domain(d.as_str()) {
                Some(d) => (d, m.local_part().unquoted().into_owned()),
                None => return Vec::new(),
            },
            Host::Literal(_) => return Vec::new(),
        },
    };
    let extra = users.local_parts(&domain.name);
    domain
        .resolve(&local, &extra)
        .into_iter()
        .map(|b| (domain.name.clone(), b))
        .collect()
}

/// Serves one LMTP connection to its end.
pub(crate) async fn serve(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let snapshot = shared.config();
    let config = shared.session_settings(&snapshot, Role::Lmtp, || {
        let mut config = crate::inbound::session_base(&snapshot);
        config.lmtp = true;
        config.greeting = std::borrow::Cow::Borrowed("LMTP ready");
        config
    });
    let mut server = Server::new(config);
    let mut stream = Stream::Plain(tcp);
    let mut conn = Lmtp {
        users: shared.users(),
        config: snapshot,
        peer,
        helo: None,
        from: String::new(),
        body: Vec::new(),
        delivered: 0,
    };
    info!(client = %peer, role = "lmtp", "connect");
    let result = conn.run(&mut server, &mut stream).await;
    shared.metrics.commands_of(&server);
    stream.shutdown().await;
    match result {
        Ok(()) => info!(client = %peer, delivered = conn.delivered, "disconnect"),
        Err(e) => info!(client = %peer, delivered = conn.delivered, error = %e, "disconnect"),
    }
}

struct Lmtp {
    /// The configuration and users as they were when the session began.
    config: Arc<crate::config::Config>,
    users: Arc<crate::users::Users>,
    peer: SocketAddr,
    helo: Option<String>,
    from: String,
    body: Vec<u8>,
    delivered: usize,
}

impl Lmtp {
    async fn run(&mut self, server: &mut Server, stream: &mut Stream) -> std::io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        let misuse = |e: String| std::io::Error::other(e);
        loop {
            while let Some(event) = server.poll() {
                match event {
                    Event::Hello { name, .. } => self.helo = Some(name.to_string()),
                    Event::Mail(m) => {
                        self.from = m.from.to_string();
                        self.body.clear();
                        m.accept(server).map_err(|e| misuse(e.to_string()))?;
                    }
                    Event::Rcpt(r) => self.recipient(server, r)?,
                    Event::Body(data) => self.body.extend_from_slice(&data),
                    Event::LmtpMessage(m) => {
                        // Each reply waits for its recipient's fsync: an
                        // LMTP 250 is a final delivery.
                        let answer = tokio::task::block_in_place(|| self.deliver(&m));
                        m.accept_with(server, answer)
                            .map_err(|e| misuse(e.to_string()))?;
                    }
                    Event::MessageAborted(why) => {
                        info!(client = %self.peer, reason = %why, "message refused");
                        self.body.clear();
                    }
                    Event::Reset => self.body.clear(),
                    _ => {}
                }
            }
            stream.write_all(&server.transmit()).await?;
            if server.is_closed() {
                return Ok(());
            }
            let idle = self.config.idle_timeout;
            let wait = server.timeout().map_or(idle, |t| t.min(idle));
            let Ok(n) = tokio::time::timeout(wait, stream.read(&mut buf)).await else {
                server.shutdown();
                continue;
            };
            let n = n?;
            if n == 0 {
                return Ok(());
            }
            server.receive(&buf[..n]);
        }
    }

    /// Only the local domains' mailboxes: an LMTP server relays nothing.
    fn recipient(&mut self, server: &mut Server, r: RcptRequest) -> std::io::Result<()> {
        let misuse = |e: String| std::io::Error::other(e);
        if mailboxes(&self.config, &self.users, &r.to).is_empty() {
            info!(client = %self.peer, to = %r.to, "recipient refused");
            r.reject(server, reply(550, (5, 1, 1), "No such user here"))
                .map_err(|e| misuse(e.to_string()))
        } else {
            r.accept(server).map_err(|e| misuse(e.to_string()))
        }
    }

    /// Writes this recipient's copy into its Maildir(s); the reply to send.
    fn deliver(&mut self, m: &LmtpMessageRequest) -> Reply<'static> {
        let boxes = mailboxes(&self.config, &self.users, &m.recipient);
        let looped = boxes
            .iter()
            .any(|(d, b)| crate::maildir::delivered_before(&m.delivered_to, &format!("{b}@{d}")));
        if looped {
            return reply(
                554,
                (5, 4, 6),
                "Mail loop: already delivered to this mailbox",
            );
        }
        let host = self.config.hostname.to_string();
        let received = format!(
            "Received: from {} ([{}])\r\n\tby {host} (Postel) with LMTP\r\n\tfor {};\r\n\t{}\r\n",
            self.helo.as_deref().unwrap_or("unknown"),
            self.peer.ip(),
            m.recipient,
            postel_queue::dsn::rfc5322_date(SystemTime::now())
        );
        for (domain, mailbox) in &boxes {
            let dir = self.config.maildir(domain, mailbox);
            let address = format!("{mailbox}@{domain}");
            let delivered = crate::maildir::deliver_for(
                &dir,
                &host,
                crate::maildir::Naming::Unique,
                &self.from,
                &address,
                &received,
                &self.body,
            );
            if let Err(e) = delivered {
                warn!(client = %self.peer, mailbox = %dir.display(), error = %e, "LMTP delivery failed");
                return reply(451, (4, 3, 0), "Mailbox not writable, try again later");
            }
        }
        self.delivered += 1;
        info!(client = %self.peer, to = %m.recipient, size = m.size, "delivered over LMTP");
        reply(250, (2, 0, 0), &format!("{} delivered", m.recipient))
    }
}
