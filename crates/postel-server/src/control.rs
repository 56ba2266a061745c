//! The operator's queue verbs. A running server owns its spool, so
//! `postel queue ...` sends the verb over a Unix socket in the data directory;
//! with no server running it opens the spool itself. Both run [`execute`].

use std::sync::Arc;
use std::time::SystemTime;

use postel_queue::model::{Message, QueueId, RecipientState};
use postel_queue::{Queue, QueueError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use std::fmt::Write as _;

use crate::state::Shared;

/// A queue verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// Every message, one line each.
    List,
    /// Counts: messages, held, recipients by state, the oldest arrival.
    Stats,
    /// One message in full.
    Show(String),
    /// Every message due now.
    Flush,
    /// Delete without a bounce.
    Delete(String),
    /// Hold.
    Hold(String),
    /// Release a held message.
    Release(String),
    /// Every message as a JSON object, one per line.
    ListJson,
    /// One message as a JSON object.
    ShowJson(String),
}

impl Verb {
    /// The line sent over the socket.
    pub fn to_line(&self) -> String {
        match self {
            Verb::List => "list".into(),
            Verb::Stats => "stats".into(),
            Verb::Flush => "flush".into(),
            Verb::Show(id) => format!("show {id}"),
            Verb::Delete(id) => format!("delete {id}"),
            Verb::Hold(id) => format!("hold {id}"),
            Verb::Release(id) => format!("release {id}"),
            Verb::ListJson => "list --json".into(),
            Verb::ShowJson(id) => format!("show --json {id}"),
        }
    }

    /// Reads a line back.
    pub fn parse(line: &str) -> Option<Verb> {
        let mut words = line.split_whitespace();
        let verb = words.next()?;
        let mut id = words.next().map(str::to_owned);
        if id.as_deref() == Some("--json") {
            id = words.next().map(str::to_owned);
            return match (verb, id) {
                ("list", None) => Some(Verb::ListJson),
                ("show", Some(id)) => Some(Verb::ShowJson(id)),
                _ => None,
            };
        }
        match (verb, id) {
            ("list", None) => Some(Verb::List),
            ("stats", None) => Some(Verb::Stats),
            ("flush", None) => Some(Verb::Flush),
            ("show", Some(id)) => Some(Verb::Show(id)),
            ("delete", Some(id)) => Some(Verb::Delete(id)),
            ("hold", Some(id)) => Some(Verb::Hold(id)),
            ("release", Some(id)) => Some(Verb::Release(id)),
            _ => None,
        }
    }
}

fn state_word(state: RecipientState) -> &'static str {
    match state {
        RecipientState::Pending => "pending",
        RecipientState::Delivered => "delivered",
        RecipientState::Failed { .. } => "failed",
        RecipientState::Expired { .. } => "expired",
    }
}

fn age(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    format!("{}m{:02}s", secs / 60, secs % 60)
}

fn summary(m: &Message) -> String {
    let pending = m
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Pending)
        .count();
    format!(
        "{} {} from {} age {} pending {}/{}{}\n",
        m.id,
        m.envelope.recipients.len(),
        m.envelope.return_path,
        age(m.created),
        pending,
        m.recipients.len(),
        if m.held { " HELD" } else { "" }
    )
}

/// A message for scripts: its envelope, and each recipient with its state,
/// attempts and last reply.
fn json(m: &Message) -> serde_json::Value {
    let recipients: Vec<serde_json::Value> = m
        .recipients
        .iter()
        .map(|r| {
            let last = r.last_result.as_ref();
            serde_json::json!({
                "address": r.address.to_string(),
                "state": state_word(r.state),
                "attempts": r.attempts,
                "last_reply": last.map(|l| l.reply.to_string()),
                "remote_host": last.and_then(|l| l.remote_host.clone()),
            })
        })
        .collect();
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    serde_json::json!({
        "id": m.id.to_string(),
        "from": m.envelope.return_path.to_string(),
        "created": secs(m.created),
        "expires": secs(m.expires),
        "held": m.held,
        "quarantine": m.envelope.arrival.quarantine,
        "recipients": recipients,
    })
}

fn detail(m: &Message) -> String {
    let mut out = summary(m);
    if let Some(reason) = &m.envelope.arrival.quarantine {
        let _ = writeln!(out, "  quarantined: {reason}");
    }
    for r in &m.recipients {
        let _ = write!(
            out,
            "  {} {} attempts {}",
            r.address,
            state_word(r.state),
            r.attempts
        );
        if let Some(last) = &r.last_result {
            let _ = write!(
                out,
                " last {:?} {} {}",
                last.stage,
                last.remote_host.as_deref().unwrap_or("-"),
                last.reply
            );
        }
        out.push('\n');
    }
    out
}

fn id(text: &str) -> Result<QueueId, String> {
    QueueId::parse(text).ok_or_else(|| format!("not a queue id: {text}"))
}

/// Runs a verb on a queue; the text to print, or an error.
pub async fn execute<Q: Queue>(queue: &Q, verb: &Verb) -> Result<String, String> {
    let e = |e: QueueError| e.to_string();
    match verb {
        Verb::List => {
            let all = queue.list().await.map_err(e)?;
            let mut out: String = all.iter().map(summary).collect();
            let _ = writeln!(out, "{} messages", all.len());
            Ok(out)
        }
        Verb::Show(i) => Ok(detail(&queue.show(&id(i)?).await.map_err(e)?)),
        Verb::ListJson => {
            let all = queue.list().await.map_err(e)?;
            Ok(all.iter().fold(String::new(), |mut out, m| {
                let _ = writeln!(out, "{}", json(m));
                out
            }))
        }
        Verb::ShowJson(i) => Ok(format!(
            "{}\n",
            json(&queue.show(&id(i)?).await.map_err(e)?)
        )),
        Verb::Stats => {
            let s = queue.stats(SystemTime::now()).await.map_err(e)?;
            Ok(format!(
                "messages {}\nheld {}\nrecipients new {}\nrecipients due {}\nrecipients deferred {}\n\
                 failures to report {}\noldest {}\n",
                s.messages,
                s.held,
                s.pending_new,
                s.pending_due,
                s.deferred,
                s.failed_unreported,
                s.oldest.map_or_else(|| "-".to_owned(), age)
            ))
        }
        Verb::Flush => {
            let all = queue.list().await.map_err(e)?;
            let now = SystemTime::now();
            for m in &all {
                queue.requeue(&m.id, now).await.map_err(e)?;
            }
            Ok(format!("{} messages due now\n", all.len()))
        }
        Verb::Delete(i) => {
            queue.delete(&id(i)?).await.map_err(e)?;
            Ok(format!("{i} deleted\n"))
        }
        Verb::Hold(i) => {
            queue.set_held(&id(i)?, true).await.map_err(e)?;
            Ok(format!("{i} held\n"))
        }
        Verb::Release(i) => {
            queue.set_held(&id(i)?, false).await.map_err(e)?;
            Ok(format!("{i} released\n"))
        }
    }
}

/// Serves verbs on the control socket until the server stops. Only the
/// socket's owner can connect (mode 0600).
pub(crate) async fn serve(shared: Arc<Shared>) -> std::io::Result<()> {
    let path = shared.config().control_socket();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    let mut stopping = shared.stopping.clone();
    loop {
        let (conn, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = stopping.changed() => break,
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let (read, mut write) = conn.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match Verb::parse(&line) {
                Some(verb) => {
                    let r = execute(&shared.queue, &verb).await;
                    if verb == Verb::Flush {
                        shared.wake.notify_waiters();
                        shared.wake.notify_one();
                    }
                    match r {
                        Ok(text) => format!("ok\n{text}"),
                        Err(e) => format!("error\n{e}\n"),
                    }
                }
                None => "error\nunknown verb\n".into(),
            };
            let _ = write.write_all(answer.as_bytes()).await;
        });
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}
