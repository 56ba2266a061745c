//! The MAIL and RCPT parameters a message is sent with, fitted to what the
//! server advertised: a parameter the server does not know makes a strict
//! server answer 555 and the whole message bounce.

use postel_proto::types::{BodyType, Capabilities, EnhancedStatus, Reply, ReplyCode};

use super::{Message, MessageBody};

/// Fits `message`'s parameters to `caps`, or says why the message cannot be
/// sent to this server at all (a permanent local refusal).
///
/// - DSN (RFC 3461 section 5.2): without the extension, RET, ENVID, NOTIFY
///   and ORCPT are dropped; the message goes on and this hop is the last
///   one that can report on it.
/// - 8BITMIME (RFC 6152): without it, `BODY=8BITMIME` is dropped and the
///   octets are sent as they are, as deployed MTAs do.
/// - BINARYMIME (RFC 3030) cannot be sent without CHUNKING and BINARYMIME:
///   554 5.6.3.
/// - SMTPUTF8 (RFC 6531 section 3.2): without it, a message with a UTF-8
///   address or header cannot be delivered (553 5.6.7); an all-ASCII one goes
///   without the parameter.
/// - AUTH= (RFC 4954 section 5) only to a server that offers AUTH;
///   MT-PRIORITY (RFC 6710) only where advertised.
/// - REQUIRETLS (RFC 8689 section 4.2.1): a message that asks for it goes
///   only over TLS to a server that advertises it; otherwise it cannot be
///   sent here (550 5.7.30). The certificate check is the TLS connector's:
///   give such messages to a client whose connector verifies.
pub(super) fn fit(
    message: &mut Message,
    caps: &Capabilities<'_>,
    tls: bool,
) -> Result<(), Reply<'static>> {
    if message.params.requiretls && !(tls && caps.requiretls) {
        return Err(refusal(
            550,
            (5, 7, 30),
            "REQUIRETLS support required: the server does not offer it over TLS",
        ));
    }
    let p = &mut message.params;
    if !caps.dsn {
        p.ret = None;
        p.envid = None;
        for (_, r) in &mut message.recipients {
            r.notify = None;
            r.orcpt = None;
        }
    }
    match p.body {
        Some(BodyType::EightBitMime) if !caps.eight_bit_mime => p.body = None,
        Some(BodyType::BinaryMime) if !(caps.chunking && caps.binary_mime) => {
            return Err(refusal(
                554,
                (5, 6, 3),
                "The server cannot take a BINARYMIME message",
            ));
        }
        _ => {}
    }
    if p.smtputf8 && !caps.smtputf8 {
        if needs_smtputf8(message) {
            return Err(refusal(
                553,
                (5, 6, 7),
                "The message needs SMTPUTF8, which the server does not offer",
            ));
        }
        message.params.smtputf8 = false;
    }
    let p = &mut message.params;
    if caps.auth.is_none() {
        p.auth = None;
    }
    let offers = |keyword: &str| {
        caps.other
            .iter()
            .any(|c| c.keyword().eq_ignore_ascii_case(keyword))
    };
    if !offers("MT-PRIORITY") {
        p.mt_priority = None;
    }
    Ok(())
}

/// True when an address or the header section holds UTF-8.
fn needs_smtputf8(message: &Message) -> bool {
    let from = message.from.mailbox().is_some_and(|m| !m.is_ascii());
    let to = message
        .recipients
        .iter()
        .any(|(r, _)| r.mailbox().is_some_and(|m| !m.is_ascii()));
    let header = match &message.data {
        MessageBody::Whole(data) => {
            let end = memchr::memmem::find(data, b"\r\n\r\n").unwrap_or(data.len());
            !data.get(..end).unwrap_or_default().is_ascii()
        }
        MessageBody::Streamed { utf8_header, .. } => *utf8_header,
    };
    from || to || header
}

fn refusal(code: u16, status: (u8, u16, u16), text: &'static str) -> Reply<'static> {
    ReplyCode::new(code)
        .and_then(|c| Reply::new(c, EnhancedStatus::new(status.0, status.1, status.2), text).ok())
        .unwrap_or(Reply::TRANSIENT_PROTOCOL_ERROR)
}
