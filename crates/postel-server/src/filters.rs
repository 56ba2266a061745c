//! The milters of one SMTP session: a connection to each configured
//! filter, driven through `postel-milter`'s session with the three
//! time-outs, and what their verdicts mean for the SMTP reply.

use std::time::Duration;

use postel_milter::edit::Message as Edited;
use postel_milter::{Awaiting, Change, Event, Milter, MilterError, Offer, Step, Verdict};
use postel_proto::types::Reply;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tracing::{info, warn};

use crate::config::{DefaultAction, MilterAddress, MilterConfig, Role};
use crate::inbound::reply;

/// A socket to a filter, TCP or Unix.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a filter is no longer talked to.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Protocol(#[from] MilterError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the filter closed the connection")]
    Closed,
}

/// What the filters' verdicts mean for the SMTP reply at a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No objection.
    Continue,
    /// Refuse with this reply (the recipient only, at RCPT).
    Refuse(Reply<'static>),
    /// Answer 250 and store nothing.
    Discard,
    /// Answer with this 421 and close the session.
    Close(Reply<'static>),
}

/// The end of the message after every filter: the outcome, the envelope
/// changes in order, and a quarantine reason.
#[derive(Debug, Default)]
pub(crate) struct MessageOutcome {
    pub(crate) outcome: Option<Outcome>,
    pub(crate) envelope: Vec<Change>,
    pub(crate) quarantine: Option<String>,
}

/// The macros known at each stage, as (name, value).
pub(crate) type Macros = Vec<(&'static str, String)>;

enum LinkState {
    Up {
        io: Box<dyn Io>,
        milter: Box<Milter>,
    },
    /// Failed; its default action applies from here on.
    Failed,
    /// Failed with the default action accept: left out.
    Off,
}

struct Link {
    config: MilterConfig,
    state: LinkState,
}

/// The filters of one session, in configuration order.
pub(crate) struct Filters {
    links: Vec<Link>,
}

fn refuse_default() -> Reply<'static> {
    reply(550, (5, 7, 1), "Command rejected")
}

fn tempfail_default() -> Reply<'static> {
    reply(451, (4, 7, 1), "Service unavailable - try again later")
}

fn closing() -> Reply<'static> {
    reply(421, (4, 7, 0), "Server closing connection")
}

impl Filters {
    /// No filters.
    pub(crate) fn none() -> Filters {
        Filters { links: Vec::new() }
    }

    /// Connects to and negotiates with each filter configured for `role`; a
    /// filter that cannot be reached is failed, and its default action
    /// applies to the session.
    pub(crate) async fn open(configs: &[MilterConfig], role: Role, max_message: u64) -> Filters {
        let mut links = Vec::new();
        for config in configs.iter().filter(|c| c.roles.contains(&role)) {
            let state =
                match tokio::time::timeout(config.connect_timeout, negotiate(config, max_message))
                    .await
                {
                    Ok(Ok((io, milter))) => LinkState::Up { io, milter },
                    Ok(Err(e)) => {
                        warn!(milter = %config.address, error = %e, "milter unavailable");
                        LinkState::Failed
                    }
                    Err(_) => {
                        warn!(milter = %config.address, "milter did not answer the negotiation");
                        LinkState::Failed
                    }
                };
            links.push(Link {
                config: config.clone(),
                state,
            });
        }
        Filters { links }
    }

    /// True when no filter is configured for the session.
    pub(crate) fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Asks every filter in turn; the first objection is the outcome.
    async fn ask<F>(&mut self, call: F) -> Outcome
    where
        F: Fn(&mut Milter) -> Result<Step, MilterError>,
    {
        for link in &mut self.links {
            let outcome = link.ask(&call).await;
            if outcome != Outcome::Continue {
                return outcome;
            }
        }
        Outcome::Continue
    }

    /// The connect event.
    pub(crate) async fn connect(&mut self, peer: std::net::SocketAddr, macros: &Macros) -> Outcome {
        let address = postel_milter::ConnectAddress::Inet(peer);
        let hostname = format!("[{}]", peer.ip());
        self.ask(|m| m.connect(&hostname, &address, &pairs(macros)))
            .await
    }

    /// HELO or EHLO.
    pub(crate) async fn helo(&mut self, name: &str, macros: &Macros) -> Outcome {
        self.ask(|m| m.helo(name, &pairs(macros))).await
    }

    /// MAIL: the sender in angle brackets, then the parameters.
    pub(crate) async fn mail(&mut self, args: &[String], macros: &Macros) -> Outcome {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ask(|m| m.mail(&args, &pairs(macros))).await
    }

    /// RCPT: the recipient in angle brackets, then the parameters.
    pub(crate) async fn rcpt(&mut self, args: &[String], macros: &Macros) -> Outcome {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ask(|m| m.rcpt(&args, &pairs(macros))).await
    }

    /// DATA, before its 354.
    pub(crate) async fn data(&mut self, macros: &Macros) -> Outcome {
        self.ask(|m| m.data(&pairs(macros))).await
    }

    /// The message, to each filter in turn: the header fields, the body in
    /// chunks, the end. Each filter's header and body changes are
    /// applied before the next filter sees the message.
    pub(crate) async fn message(
        &mut self,
        message: &mut Edited,
        macros: &Macros,
    ) -> MessageOutcome {
        let mut result = MessageOutcome::default();
        for link in &mut self.links {
            let outcome = link.message(message, macros, &mut result).await;
            if outcome != Outcome::Continue {
                result.outcome = Some(outcome);
                return result;
            }
        }
        result
    }

    /// The transaction ended without its end (RSET, a refusal, a new MAIL).
    pub(crate) async fn abort(&mut self) {
        for link in &mut self.links {
            if let LinkState::Up { io, milter } = &mut link.state {
                let sent = match milter.abort() {
                    Ok(()) => flush(io, milter).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = sent {
                    link.fail(&e);
                }
            }
        }
    }

    /// The session is over.
    pub(crate) async fn quit(&mut self) {
        for link in &mut self.links {
            if let LinkState::Up { io, milter } = &mut link.state {
                milter.quit();
                let _ = flush(io, milter).await;
                let _ = io.shutdown().await;
            }
        }
    }
}

impl Link {
    fn fail(&mut self, error: &LinkError) {
        warn!(milter = %self.config.address, error = %error, action = ?self.config.default_action, "milter failed");
        self.state = LinkState::Failed;
    }

    /// The outcome of a failed filter, from its default action.
    fn default_outcome(&mut self) -> Outcome {
        match self.config.default_action {
            DefaultAction::Accept => {
                self.state = LinkState::Off;
                Outcome::Continue
            }
            DefaultAction::Tempfail => Outcome::Refuse(tempfail_default()),
            DefaultAction::Reject => Outcome::Refuse(refuse_default()),
            DefaultAction::Close => Outcome::Close(closing()),
        }
    }

    /// One event: the filter's verdict, or its failure's default outcome.
    async fn ask<F>(&mut self, call: &F) -> Outcome
    where
        F: Fn(&mut Milter) -> Result<Step, MilterError>,
    {
        match self.step(call).await {
            Ok(v) => self.outcome(v),
            Err(Some(e)) => {
                self.fail(&e);
                self.default_outcome()
            }
            Err(None) => self.default_outcome(),
        }
    }

    /// Sends one event and waits for its verdict. `Err(None)`: the filter
    /// had already failed.
    async fn step<F>(&mut self, call: &F) -> Result<Verdict, Option<LinkError>>
    where
        F: Fn(&mut Milter) -> Result<Step, MilterError>,
    {
        let LinkState::Up { io, milter } = &mut self.state else {
            return match self.state {
                LinkState::Off => Ok(Verdict::Continue),
                _ => Err(None),
            };
        };
        let step = call(milter).map_err(|e| Some(e.into()))?;
        flush(io, milter).await.map_err(Some)?;
        match step {
            Step::Done(v) => Ok(v),
            Step::Wait => match wait(io, milter, &self.config).await.map_err(Some)? {
                Event::Verdict(v) => Ok(v),
                _ => Err(Some(LinkError::Protocol(MilterError::Unexpected(
                    "not a verdict",
                )))),
            },
        }
    }

    fn outcome(&mut self, verdict: Verdict) -> Outcome {
        match verdict {
            Verdict::Continue | Verdict::Accept => Outcome::Continue,
            Verdict::Reject => Outcome::Refuse(refuse_default()),
            Verdict::Tempfail => Outcome::Refuse(tempfail_default()),
            Verdict::Reply(r) => Outcome::Refuse(r),
            Verdict::Discard => Outcome::Discard,
            Verdict::Shutdown | Verdict::ConnectionFailure => {
                info!(milter = %self.config.address, "milter asked to close the session");
                self.state = LinkState::Off;
                Outcome::Close(closing())
            }
        }
    }

    /// The message phase with this filter; its changes are applied to
    /// `message` and gathered into `result`.
    async fn message(
        &mut self,
        message: &mut Edited,
        macros: &Macros,
        result: &mut MessageOutcome,
    ) -> Outcome {
        match self.message_events(message, macros).await {
            Ok(Ok(Some(end))) => {
                for change in &end.changes {
                    match change {
                        Change::AddHeader { .. }
                        | Change::InsertHeader { .. }
                        | Change::ChangeHeader { .. } => message.apply(change),
                        _ => result.envelope.push(change.clone()),
                    }
                }
                if let Some(body) = &end.body {
                    message.replace_body(body);
                }
                if let Some(reason) = end.quarantine {
                    info!(milter = %self.config.address, reason = %reason, "milter quarantined the message");
                    result.quarantine = Some(reason);
                }
                self.outcome(end.verdict)
            }
            Ok(Ok(None)) => Outcome::Continue,
            Ok(Err(objection)) => objection,
            Err(Some(e)) => {
                self.fail(&e);
                self.default_outcome()
            }
            Err(None) => self.default_outcome(),
        }
    }

    /// The fields, the body, the end: `Ok(Err(outcome))` when the filter
    /// objected before the end.
    async fn message_events(
        &mut self,
        message: &Edited,
        macros: &Macros,
    ) -> Result<Result<Option<postel_milter::EndOfMessage>, Outcome>, Option<LinkError>> {
        match self.state {
            LinkState::Up { .. } => {}
            LinkState::Off => return Ok(Ok(None)),
            LinkState::Failed => return Err(None),
        }
        let macros = pairs(macros);
        let objection = |link: &mut Link, v: Verdict| match link.outcome(v) {
            Outcome::Continue => None,
            other => Some(other),
        };
        for field in message.fields() {
            let v = self
                .step(&|m: &mut Milter| m.header(&field.name, &field.value))
                .await?;
            if let Some(o) = objection(self, v) {
                return Ok(Err(o));
            }
        }
        let v = self
            .step(&|m: &mut Milter| m.end_of_headers(&macros))
            .await?;
        if let Some(o) = objection(self, v) {
            return Ok(Err(o));
        }
        let mut rest = message.body();
        while !rest.is_empty() {
            let taken = std::sync::atomic::AtomicUsize::new(0);
            let v = self
                .step(&|m: &mut Milter| {
                    let (step, used) = m.body(rest)?;
                    taken.store(used, std::sync::atomic::Ordering::Relaxed);
                    Ok(step)
                })
                .await?;
            let used = taken.load(std::sync::atomic::Ordering::Relaxed);
            if used == 0 {
                // The filter was left out part way (it failed over to accept).
                return Ok(Ok(None));
            }
            rest = &rest[used..];
            if let Some(o) = objection(self, v) {
                return Ok(Err(o));
            }
        }
        let LinkState::Up { io, milter } = &mut self.state else {
            return Ok(Ok(None));
        };
        let step = milter.end_of_message(&macros).map_err(|e| Some(e.into()))?;
        flush(io, milter).await.map_err(Some)?;
        match step {
            Step::Done(v) => Ok(objection(self, v).map_or(Ok(None), Err)),
            Step::Wait => match wait(io, milter, &self.config).await.map_err(Some)? {
                Event::EndOfMessage(end) => Ok(Ok(Some(end))),
                _ => Err(Some(
                    MilterError::Unexpected("not the end of the message").into(),
                )),
            },
        }
    }
}

fn pairs(macros: &Macros) -> Vec<(&str, &str)> {
    macros.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

async fn connect(address: &MilterAddress) -> std::io::Result<Box<dyn Io>> {
    Ok(match address {
        MilterAddress::Inet(host, port) => {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            let _ = tcp.set_nodelay(true);
            Box::new(tcp)
        }
        MilterAddress::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
    })
}

async fn negotiate(
    config: &MilterConfig,
    max_message: u64,
) -> Result<(Box<dyn Io>, Box<Milter>), LinkError> {
    let mut io = connect(&config.address).await?;
    let offer = Offer {
        // A replacement body may be as large as a message may be, and the
        // header changes a little more.
        max_changes: usize::try_from(max_message)
            .unwrap_or(usize::MAX)
            .saturating_add(1024 * 1024),
        ..Offer::for_version(config.protocol_version)
    };
    let mut milter = Box::new(Milter::new(offer));
    flush(&mut io, &mut milter).await?;
    match wait(&mut io, &mut milter, config).await? {
        Event::Negotiated => Ok((io, milter)),
        _ => Err(MilterError::Unexpected("not a negotiation").into()),
    }
}

async fn flush(io: &mut Box<dyn Io>, milter: &mut Milter) -> Result<(), LinkError> {
    let out = milter.transmit();
    if !out.is_empty() {
        io.write_all(&out).await?;
    }
    Ok(())
}

/// Reads until the filter's answer, each wait bounded by the time-out of
/// what is awaited; progress starts the wait over.
async fn wait(
    io: &mut Box<dyn Io>,
    milter: &mut Milter,
    config: &MilterConfig,
) -> Result<Event, LinkError> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match milter.poll()? {
            Some(Event::Progress) => continue,
            Some(event) => return Ok(event),
            None => {}
        }
        let limit = match milter.awaiting() {
            Some(Awaiting::Negotiation) => config.connect_timeout,
            Some(Awaiting::Content) => config.content_timeout,
            Some(Awaiting::Command) | None => config.command_timeout,
        };
        let n = tokio::time::timeout(limit, io.read(&mut buf))
            .await
            .map_err(|_| LinkError::Timeout(limit))??;
        if n == 0 {
            return Err(LinkError::Closed);
        }
        milter.receive(&buf[..n]);
    }
}
