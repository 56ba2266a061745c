//! The text form of queued messages, shared by the backends that store
//! text: the envelope (written once) and one line per state change (a
//! recipient's state, hold, a delay warning sent), applied in order.

use std::time::{Duration, SystemTime};

use postel_proto::codec::{parse_command, parse_reply};
use postel_proto::types::{AuthParam, Command, MailParameters, RcptParameters, XText};
use postel_proto::{ParserOptions, Status};

use crate::model::{
    Arrival, AttemptResult, Message, NewMessage, NewRecipient, QueueId, Recipient, RecipientState,
    Stage,
};
use crate::queue::new_recipients;

pub(crate) fn secs(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

pub(crate) fn time(text: &str) -> Option<SystemTime> {
    let (s, n) = text.split_once('.')?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(s.parse().ok()?, n.parse().ok()?))
}

fn escape(text: &str) -> String {
    XText::encode(text.as_bytes()).as_str().to_owned()
}

fn unescape(text: &str) -> Option<String> {
    String::from_utf8(XText::try_from(text).ok()?.decode().into_owned()).ok()
}

/// Reads an envelope written by [`encode_envelope`]; every recipient pending
/// until records are applied with [`apply_line`]. `None` if it does not parse.
pub fn decode_envelope(id: &QueueId, env: &str) -> Option<Message> {
    let mut lines = env.split("\r\n");
    if lines.next()? != "postel-spool 1" {
        return None;
    }
    let created = time(lines.next()?.strip_prefix("created ")?)?;
    let expires = time(lines.next()?.strip_prefix("expires ")?)?;
    let arrival_line = lines.next()?.strip_prefix("arrival ")?;
    let mut a = arrival_line.split(' ');
    let field = |s: Option<&str>| -> Option<Option<String>> {
        match s? {
            "-" => Some(None),
            v => Some(Some(unescape(v)?)),
        }
    };
    let client = field(a.next())?.and_then(|c| c.parse().ok());
    let tls = a.next()? == "1";
    let helo = field(a.next())?;
    let auth_user = field(a.next())?;
    // Written only for a quarantined message; older envelopes end here.
    let quarantine = match a.next() {
        None => None,
        some => field(some)?,
    };
    let mut opts = ParserOptions::STRICT;
    opts.limits.command_line = 64 * 1024;
    let mail = format!("{}\r\n", lines.next()?);
    let Ok(Status::Complete {
        value: Command::Mail { from, params },
        ..
    }) = parse_command(mail.as_bytes(), &opts)
    else {
        return None;
    };
    let mut recipients_new = Vec::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        let rcpt = format!("{line}\r\n");
        let Ok(Status::Complete {
            value: Command::Rcpt { to, params },
            ..
        }) = parse_command(rcpt.as_bytes(), &opts)
        else {
            return None;
        };
        recipients_new.push(NewRecipient {
            address: to.into_owned(),
            orcpt: params
                .orcpt
                .as_ref()
                .map(|o| format!("{};{}", o.addr_type(), o.address().as_str())),
            notify: params.notify,
        });
    }
    if recipients_new.is_empty() {
        return None;
    }
    let envelope = NewMessage {
        return_path: from.into_owned(),
        envid: params
            .envid
            .as_ref()
            .map(|e| String::from_utf8_lossy(&e.decode()).into_owned()),
        ret: params.ret,
        body_type: params
            .body
            .unwrap_or(postel_proto::types::BodyType::SevenBit),
        smtputf8: params.smtputf8,
        requiretls: params.requiretls,
        arrival: Arrival {
            client,
            helo,
            auth_user,
            tls,
            quarantine,
        },
        recipients: recipients_new,
    };
    let held = envelope.arrival.quarantine.is_some();
    let message = Message {
        id: id.clone(),
        recipients: new_recipients(&envelope.recipients, created),
        envelope,
        created,
        expires,
        held,
        warned: false,
    };
    Some(message)
}

/// The envelope as text: a version line, times, arrival facts, then the
/// MAIL and RCPT commands that carried it, so the SMTP grammar reads it back.
pub fn encode_envelope(message: &Message) -> String {
    let e = &message.envelope;
    let opt = |v: &Option<String>| v.as_deref().map_or_else(|| "-".to_owned(), escape);
    let mut text = format!(
        "postel-spool 1\r\ncreated {}\r\nexpires {}\r\narrival {} {} {} {}\r\n",
        secs(message.created),
        secs(message.expires),
        e.arrival
            .client
            .map_or_else(|| "-".to_owned(), |c| escape(&c.to_string())),
        u8::from(e.arrival.tls),
        opt(&e.arrival.helo),
        opt(&e.arrival.auth_user),
    );
    if let Some(reason) = &e.arrival.quarantine {
        // Before the line end the format string wrote.
        text.truncate(text.len() - 2);
        text.push(' ');
        text.push_str(&escape(reason));
        text.push_str("\r\n");
    }
    let mut params = MailParameters::default();
    params.body = Some(e.body_type);
    params.smtputf8 = e.smtputf8;
    params.requiretls = e.requiretls;
    params.ret = e.ret;
    params.envid = e.envid.as_ref().map(|v| XText::encode(v.as_bytes()));
    params.auth = None::<AuthParam<'static>>;
    let mail = Command::Mail {
        from: e.return_path.clone(),
        params,
    };
    text.push_str(&String::from_utf8_lossy(&mail.to_bytes()));
    for r in &e.recipients {
        let mut params = RcptParameters::default();
        params.notify = r.notify;
        params.orcpt = r.orcpt.as_deref().and_then(crate::model::orcpt_param);
        let rcpt = Command::Rcpt {
            to: r.address.clone(),
            params,
        };
        text.push_str(&String::from_utf8_lossy(&rcpt.to_bytes()));
    }
    text.push_str("\r\n");
    text
}

fn state_word(state: RecipientState) -> &'static str {
    match state {
        RecipientState::Pending => "pending",
        RecipientState::Delivered => "delivered",
        RecipientState::Failed { reported: false } => "failed",
        RecipientState::Failed { reported: true } => "failed-reported",
        RecipientState::Expired { reported: false } => "expired",
        RecipientState::Expired { reported: true } => "expired-reported",
    }
}

fn stage_word(stage: Stage) -> &'static str {
    match stage {
        Stage::Dns => "dns",
        Stage::Connect => "connect",
        Stage::Session => "session",
        Stage::Mail => "mail",
        Stage::Rcpt => "rcpt",
        Stage::Data => "data",
        Stage::Local => "local",
    }
}

/// One journal line for recipient `i`.
pub fn recipient_line(i: usize, r: &Recipient) -> String {
    let result = r.last_result.as_ref().map_or_else(
        || "-".to_owned(),
        |res| {
            format!(
                "{} {} {}",
                stage_word(res.stage),
                res.remote_host
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), escape),
                escape(&String::from_utf8_lossy(&res.reply.to_bytes()))
            )
        },
    );
    format!(
        "r {i} {} {} {} {} {result}\n",
        state_word(r.state),
        r.attempts,
        r.last_attempt.map_or_else(|| "-".to_owned(), secs),
        secs(r.next_attempt),
    )
}

/// Applies one journal line; `None` for a line that does not parse.
pub fn apply_line(message: &mut Message, line: &str) -> Option<()> {
    let mut w = line.split(' ');
    match w.next()? {
        "held" => message.held = w.next()? == "1",
        "warned" => message.warned = true,
        "r" => {
            let i: usize = w.next()?.parse().ok()?;
            let state = match w.next()? {
                "pending" => RecipientState::Pending,
                "delivered" => RecipientState::Delivered,
                "failed" => RecipientState::Failed { reported: false },
                "failed-reported" => RecipientState::Failed { reported: true },
                "expired" => RecipientState::Expired { reported: false },
                "expired-reported" => RecipientState::Expired { reported: true },
                _ => return None,
            };
            let attempts = w.next()?.parse().ok()?;
            let last_attempt = match w.next()? {
                "-" => None,
                t => Some(time(t)?),
            };
            let next_attempt = time(w.next()?)?;
            let last_result = match w.next()? {
                "-" => None,
                stage => {
                    let stage = match stage {
                        "dns" => Stage::Dns,
                        "connect" => Stage::Connect,
                        "session" => Stage::Session,
                        "mail" => Stage::Mail,
                        "rcpt" => Stage::Rcpt,
                        "data" => Stage::Data,
                        "local" => Stage::Local,
                        _ => return None,
                    };
                    let remote_host = match w.next()? {
                        "-" => None,
                        h => Some(unescape(h)?),
                    };
                    let bytes = unescape(w.next()?)?;
                    let Ok(Status::Complete { value, .. }) =
                        parse_reply(bytes.as_bytes(), &ParserOptions::STRICT)
                    else {
                        return None;
                    };
                    Some(AttemptResult {
                        stage,
                        remote_host,
                        reply: value.into_owned(),
                    })
                }
            };
            let r = message.recipients.get_mut(i)?;
            r.state = state;
            r.attempts = attempts;
            r.last_attempt = last_attempt;
            r.next_attempt = next_attempt;
            r.last_result = last_result;
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    // A failed assertion is a failed test.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use postel_proto::types::{ForwardPath, Mailbox, ReversePath};

    use super::{decode_envelope, encode_envelope};
    use crate::model::{Arrival, NewMessage, NewRecipient, QueueId, orcpt_param};

    /// A stored message with one recipient to a@example.net.
    fn stored(
        envid: Option<&str>,
        orcpt: Option<&str>,
        quarantine: Option<&str>,
    ) -> (QueueId, crate::model::Message) {
        let arrival = Arrival {
            quarantine: quarantine.map(str::to_owned),
            ..Arrival::default()
        };
        let new = NewMessage {
            return_path: ReversePath::Null,
            envid: envid.map(str::to_owned),
            ret: None,
            body_type: postel_proto::types::BodyType::SevenBit,
            smtputf8: false,
            requiretls: false,
            arrival,
            recipients: vec![NewRecipient {
                address: ForwardPath::Mailbox(Mailbox::try_from("a@example.net").unwrap()),
                orcpt: orcpt.map(str::to_owned),
                notify: None,
            }],
        };
        let id = QueueId::parse("06619062791132000001").unwrap();
        let now = std::time::SystemTime::UNIX_EPOCH;
        let message = crate::model::Message {
            id: id.clone(),
            recipients: crate::queue::new_recipients(&new.recipients, now),
            held: quarantine.is_some(),
            envelope: new,
            created: now,
            expires: now,
            warned: false,
        };
        (id, message)
    }

    #[test]
    fn a_quarantine_reason_survives_the_record_and_old_envelopes_still_read() {
        let (id, message) = stored(None, None, Some("virus: Eicar-Test-Signature \r\n x"));
        let text = encode_envelope(&message);
        assert_eq!(decode_envelope(&id, &text), Some(message.clone()));
        let old = text.replacen(" virus:+20Eicar-Test-Signature+20+0D+0A+20x", "", 1);
        assert_ne!(old, text);
        let read = decode_envelope(&id, &old).unwrap();
        assert!(read.envelope.arrival.quarantine.is_none() && !read.held);
    }

    /// ORCPT is kept as the client's xtext: `+FF` is no UTF-8, and a lossy
    /// decode would relay U+FFFD instead (RFC 3461 section 4.2).
    #[test]
    fn orcpt_octets_survive_the_record_and_the_next_hop() {
        let (id, message) = stored(Some("QQ314159"), Some("rfc822;a+FFb+2Bc@example.net"), None);
        let back = decode_envelope(&id, &encode_envelope(&message)).unwrap();
        let stored = back.recipients[0].orcpt.as_deref().unwrap();
        assert_eq!(stored, "rfc822;a+FFb+2Bc@example.net");
        let param = orcpt_param(stored).unwrap();
        assert_eq!(param.address().as_str(), "a+FFb+2Bc@example.net");
        assert_eq!(param.address().decode().as_ref(), b"a\xffb+c@example.net");
    }
}
