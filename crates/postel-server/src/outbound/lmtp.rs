//! Delivery to a mailbox server over LMTP (RFC 2033), for the local domains
//! whose `delivery` names one: a reply per recipient, on a connection kept
//! open across messages.

use postel_proto::types::{ForwardPath, Mailbox, Reply};
use postel_queue::model::{Message, Outcome, Stage};
use postel_session::client::{RecipientResult, TlsPolicy};
use tokio::net::{TcpStream, UnixStream};
use tracing::info;

use super::smtp::send_on;
use super::{CONNECT_TIMEOUT, Delivery, client_message, result};
use crate::config::LmtpTarget;
use crate::inbound::reply;
use crate::stream::Stream;

/// The recipients for one LMTP server: each queue recipient's index with the
/// mailbox addresses it resolves to.
pub(super) type Batch = Vec<(usize, Vec<String>)>;

impl Delivery {
    /// Delivers the recipients `indices` of `message`, each with the mailbox
    /// addresses it resolves to, to the LMTP server at `target`. A queue
    /// recipient is delivered when all its mailboxes are, retried when one
    /// is refused for now, bounced when one is refused for good.
    pub(super) async fn deliver_lmtp(
        &self,
        message: &Message,
        target: &LmtpTarget,
        recipients: &Batch,
        body: &super::source::Source<'_>,
    ) -> Vec<(usize, Outcome)> {
        let label = target.to_string();
        let indices: Vec<usize> = recipients.iter().map(|(i, _)| *i).collect();
        let mut out = client_message(message, &indices, body);
        // RCPT names the mailbox itself: an alias is resolved here, the LMTP
        // server knows only its users.
        let mut rcpts = Vec::new();
        let mut owners = Vec::new();
        for ((i, boxes), (_, params)) in recipients.iter().zip(&out.recipients) {
            for b in boxes {
                if let Ok(m) = Mailbox::try_from(b.as_str()) {
                    rcpts.push((ForwardPath::Mailbox(m.into_owned()), params.clone()));
                    owners.push(*i);
                }
            }
        }
        out.recipients = rcpts;
        let out = super::smtp::Outgoing {
            message: out,
            source: body,
        };
        let sent = match self.reuse(&label, &out, &message.id).await {
            Some(sent) => Ok(sent),
            None => match connect(target).await {
                Ok(stream) => {
                    let mut conn = self.open(stream, "localhost", &label, TlsPolicy::Never, true);
                    let sent = send_on(&mut conn, &out).await;
                    if sent.is_ok() {
                        self.park_or_close(&label, conn).await;
                    }
                    sent
                }
                Err(e) => {
                    info!(queue_id = %message.id, server = %label, error = %e, "LMTP connect failed");
                    let r = reply(
                        451,
                        (4, 4, 1),
                        &format!("LMTP server {label} not reachable: {e}"),
                    );
                    let deferred = Outcome::Deferred(result(Stage::Local, Some(label.clone()), r));
                    return indices.iter().map(|&i| (i, deferred.clone())).collect();
                }
            },
        };
        let results = match sent {
            Ok(sent) => sent.results,
            Err(e) => {
                let r = reply(
                    451,
                    (4, 4, 2),
                    &format!("LMTP session with {label} failed: {e}"),
                );
                vec![RecipientResult::Transient(r); owners.len()]
            }
        };
        indices
            .iter()
            .map(|&i| {
                let mine = owners
                    .iter()
                    .zip(&results)
                    .filter(|(o, _)| **o == i)
                    .map(|(_, r)| r);
                (i, worst(mine, &label))
            })
            .collect()
    }
}

/// Connects to an LMTP server.
async fn connect(target: &LmtpTarget) -> std::io::Result<Stream> {
    let connect = async {
        match target {
            LmtpTarget::Tcp(addr) => TcpStream::connect(addr.as_str()).await.map(Stream::Plain),
            LmtpTarget::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// One queue recipient's outcome from its mailboxes' results: a permanent
/// refusal wins, then a transient one, and only all delivered is delivered.
fn worst<'a>(results: impl Iterator<Item = &'a RecipientResult>, label: &str) -> Outcome {
    let mut outcome: Option<Outcome> = None;
    let host = Some(label.to_owned());
    for r in results {
        let next = match r {
            RecipientResult::Permanent(r) => {
                Outcome::Failed(result(Stage::Local, host.clone(), r.clone()))
            }
            RecipientResult::Transient(r) => {
                Outcome::Deferred(result(Stage::Local, host.clone(), r.clone()))
            }
            RecipientResult::Delivered(r) => {
                Outcome::Delivered(result(Stage::Local, host.clone(), r.clone()))
            }
        };
        let rank = |o: &Outcome| match o {
            Outcome::Failed(_) => 3,
            Outcome::Deferred(_) => 2,
            _ => 1,
        };
        if outcome.as_ref().is_none_or(|o| rank(&next) > rank(o)) {
            outcome = Some(next);
        }
    }
    outcome.unwrap_or_else(|| {
        let r: Reply<'static> = reply(550, (5, 1, 1), "No such user here");
        Outcome::Failed(result(Stage::Local, host, r))
    })
}

/// Asks the LMTP server at `target` whether it takes each of `addresses`,
/// with LHLO, a null MAIL and one RCPT each, then QUIT: `Err` with the first
/// refusal, passed on as the reply to the client's RCPT, or a 451 when the
/// server cannot be asked now (the client tries again later).
pub(crate) async fn probe(
    target: &LmtpTarget,
    addresses: &[String],
    helo: &str,
) -> Result<(), Reply<'static>> {
    let unreachable = |e: &dyn std::fmt::Display| {
        info!(server = %target, error = %e, "LMTP probe failed");
        reply(
            451,
            (4, 4, 1),
            "Cannot verify the recipient now, try again later",
        )
    };
    let ask = async {
        let mut stream = connect(target).await?;
        let mut buf = Vec::new();
        next_reply(&mut stream, &mut buf).await?;
        let mut answers = Vec::new();
        let mut lines = vec![format!("LHLO {helo}\r\n"), "MAIL FROM:<>\r\n".to_owned()];
        lines.extend(addresses.iter().map(|a| format!("RCPT TO:<{a}>\r\n")));
        for line in &lines {
            stream.write_all(line.as_bytes()).await?;
            answers.push(next_reply(&mut stream, &mut buf).await?);
        }
        let _ = stream.write_all(b"QUIT\r\n").await;
        stream.shutdown().await;
        Ok::<_, std::io::Error>(answers)
    };
    let answers = match tokio::time::timeout(std::time::Duration::from_secs(30), ask).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Err(unreachable(&e)),
        Err(_) => return Err(unreachable(&"timed out")),
    };
    for (i, answer) in answers.into_iter().enumerate() {
        let positive = answer.code().is_positive();
        // LHLO or MAIL refused: the server is not fit to ask.
        if i < 2 && !positive {
            return Err(unreachable(&answer));
        }
        if !positive {
            return Err(answer);
        }
    }
    Ok(())
}

/// Reads one whole reply, at most 64 KiB.
async fn next_reply(stream: &mut Stream, buf: &mut Vec<u8>) -> std::io::Result<Reply<'static>> {
    use postel_proto::{ParserOptions, Status};
    let mut chunk = [0u8; 4096];
    loop {
        match postel_proto::codec::parse_reply(buf, &ParserOptions::STRICT) {
            Ok(Status::Complete { value, consumed }) => {
                let reply = value.into_owned();
                buf.drain(..consumed);
                return Ok(reply);
            }
            Ok(Status::Incomplete) if buf.len() < 64 * 1024 => {}
            Ok(Status::Incomplete) => return Err(std::io::Error::other("reply too long")),
            Err(bad) => return Err(std::io::Error::other(bad.error.to_string())),
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
