//! Delivery status notifications (RFC 3464): the bounce and the delay warning
//! sent from the null sender to the return path.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use postel_proto::types::{EnhancedStatus, Notify, Reply, ReversePath};

/// What happened to a recipient, as a DSN's Action field says it
/// (RFC 3464 section 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Delivery failed for good.
    Failed,
    /// Still trying (a delay warning).
    Delayed,
    /// Delivered, reported because NOTIFY=SUCCESS asked for it.
    Delivered,
    /// Handed to a server that does not offer DSN, so this is the last
    /// report there will be (RFC 3461 section 5.2.2), for NOTIFY=SUCCESS.
    Relayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// Whether the sender asked to hear about this action (RFC 3461 section
/// 4.1): without NOTIFY, failures are reported (and delays, when the MTA sends
/// them); NOTIFY=NEVER reports nothing.
pub fn notify_wants(notify: Option<Notify>, action: Action) -> bool {
    match (notify, action) {
        (None, Action::Failed | Action::Delayed) => true,
        (None, Action::Delivered | Action::Relayed) => false,
        (Some(n), Action::Failed) => n.failure,
        (Some(n), Action::Delayed) => n.delay,
        (Some(n), Action::Delivered | Action::Relayed) => n.success,
    }
}

/// One recipient's part of a DSN.
#[derive(Debug, Clone)]
pub struct DsnRecipient {
    /// The address delivery was attempted to (Final-Recipient).
    pub final_recipient: String,
    /// ORCPT, when the client gave it (Original-Recipient), as `type;address`.
    pub original_recipient: Option<String>,
    /// What happened.
    pub action: Action,
    /// The status code (Status).
    pub status: EnhancedStatus,
    /// The remote server's reply, when there was one (Diagnostic-Code).
    pub diagnostic: Option<Reply<'static>>,
    /// The remote server (Remote-MTA).
    pub remote_mta: Option<String>,
    /// When the last attempt was made (Last-Attempt-Date).
    pub last_attempt: Option<SystemTime>,
}

/// Everything a DSN says.
#[derive(Debug, Clone)]
pub struct Dsn<'a> {
    /// This MTA's name (Reporting-MTA, and the From address's domain).
    pub reporting_mta: &'a str,
    /// Whom to tell: the original message's return path.
    pub return_path: &'a ReversePath<'static>,
    /// ENVID, decoded, when the client gave it (Original-Envelope-Id).
    pub envelope_id: Option<&'a str>,
    /// When the original message arrived (Arrival-Date).
    pub arrival: SystemTime,
    /// The recipients to report.
    pub recipients: &'a [DsnRecipient],
    /// The original message.
    pub original: &'a [u8],
    /// Return only the headers (RET=HDRS) rather than the whole message.
    pub headers_only: bool,
    /// The time of the report.
    pub now: SystemTime,
    /// A MIME boundary that does not occur in the message; random in practice.
    pub boundary: &'a str,
}

/// Why no DSN is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDsn {
    /// The original sender was null: a bounce never causes another
    /// (RFC 5321 section 4.5.5).
    NullSender,
    /// No recipient asked to be told.
    NotRequested,
}

impl Dsn<'_> {
    /// The DSN message, headers and body, CRLF line endings, ready to be
    /// enqueued from the null sender to [`Dsn::return_path`].
    pub fn to_message(&self) -> Result<Vec<u8>, NoDsn> {
        if matches!(self.return_path, ReversePath::Null) {
            return Err(NoDsn::NullSender);
        }
        if self.recipients.is_empty() {
            return Err(NoDsn::NotRequested);
        }
        let mut m = String::new();
        let failed = self.recipients.iter().any(|r| r.action == Action::Failed);
        let subject = if failed {
            "Undelivered Mail Returned to Sender"
        } else if self
            .recipients
            .iter()
            .all(|r| matches!(r.action, Action::Delivered | Action::Relayed))
        {
            "Successful Mail Delivery Report"
        } else {
            "Delayed Mail (still being retried)"
        };
        let to = self
            .return_path
            .mailbox()
            .map(ToString::to_string)
            .unwrap_or_default();
        let _ = write!(
            m,
            "From: Mail Delivery System <MAILER-DAEMON@{mta}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
Date: {date}\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{b}\"\r\n\r\n\
This is a MIME-encapsulated message.\r\n\r\n--{b}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n",
            mta = self.reporting_mta,
            date = rfc5322_date(self.now),
            b = self.boundary,
        );
        let _ = write!(
            m,
            "This is the mail system at host {}.\r\n\r\n",
            self.reporting_mta
        );
        if failed {
            m.push_str("Your message could not be delivered to one or more recipients.\r\n");
        } else {
            m.push_str("This is a report on the delivery of your message.\r\n");
        }
        for r in self.recipients {
            let mut line = format!("<{}>: {}", r.final_recipient, r.action.as_str());
            if let Some(d) = &r.diagnostic {
                let _ = write!(line, ": {d}");
            }
            m.push_str("\r\n");
            wrap_text(&mut m, &field_text(&line, true));
        }
        // RFC 3464's delivery-status part is 7-bit; an internationalized
        // recipient needs RFC 6533's global type, which carries UTF-8.
        let global = self
            .recipients
            .iter()
            .any(|r| !r.final_recipient.is_ascii());
        let _ = write!(
            m,
            "\r\n--{b}\r\nContent-Type: message/{kind}delivery-status\r\n\r\nReporting-MTA: dns; {mta}\r\n",
            b = self.boundary,
            kind = if global { "global-" } else { "" },
            mta = self.reporting_mta
        );
        if let Some(id) = self.envelope_id {
            let _ = write!(m, "Original-Envelope-Id: {}\r\n", field_text(id, false));
        }
        let _ = write!(m, "Arrival-Date: {}\r\n", rfc5322_date(self.arrival));
        self.recipient_fields(&mut m, global);
        let returned = if self.headers_only {
            "text/rfc822-headers"
        } else {
            "message/rfc822"
        };
        let _ = write!(
            m,
            "\r\n--{b}\r\nContent-Type: {returned}\r\n\r\n",
            b = self.boundary
        );
        let mut out = m.into_bytes();
        let original = if self.headers_only {
            headers_of(self.original)
        } else {
            self.original
        };
        out.extend_from_slice(original);
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("\r\n--{}--\r\n", self.boundary).as_bytes());
        Ok(out)
    }

    /// The per-recipient fields of the delivery-status part (RFC 3464 section
    /// 2.3): each value one line of text, no control characters, 7-bit unless
    /// `global`, the diagnostic folded to lines of at most 78 octets.
    fn recipient_fields(&self, m: &mut String, global: bool) {
        for r in self.recipients {
            m.push_str("\r\n");
            if let Some(o) = &r.original_recipient {
                let _ = write!(m, "Original-Recipient: {}\r\n", original_recipient(o));
            }
            let address_type = if r.final_recipient.is_ascii() {
                "rfc822"
            } else {
                "utf-8"
            };
            let _ = write!(
                m,
                "Final-Recipient: {address_type}; {}\r\nAction: {}\r\nStatus: {}\r\n",
                field_text(&r.final_recipient, global),
                r.action.as_str(),
                r.status
            );
            if let Some(host) = &r.remote_mta {
                let _ = write!(m, "Remote-MTA: dns; {}\r\n", field_text(host, false));
            }
            if let Some(d) = &r.diagnostic {
                let text = format!("smtp; {d}");
                fold_field(m, "Diagnostic-Code", &field_text(&text, global));
            }
            if let Some(t) = r.last_attempt {
                let _ = write!(m, "Last-Attempt-Date: {}\r\n", rfc5322_date(t));
            }
        }
    }
}

/// A field value as one line of text: controls (CR and LF above all, which
/// would start a field of their own) and, unless `utf8`, every non-ASCII
/// octet are written as `+XX`, as xtext does (RFC 3461 section 4).
fn field_text(value: &str, utf8: bool) -> std::borrow::Cow<'_, str> {
    let keep = |c: char| {
        if c.is_ascii() {
            !c.is_ascii_control()
        } else {
            utf8
        }
    };
    if value.chars().all(keep) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if keep(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "+{b:02X}");
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// ORCPT as stored, `addr-type;xtext`, for the Original-Recipient field: the
/// xtext decoded where that gives text, kept encoded otherwise.
fn original_recipient(orcpt: &str) -> String {
    let Some((kind, address)) = orcpt.split_once(';') else {
        return field_text(orcpt, false).into_owned();
    };
    let decoded = postel_proto::types::XText::try_from(address)
        .ok()
        .and_then(|x| String::from_utf8(x.decode().into_owned()).ok())
        .unwrap_or_else(|| address.to_owned());
    format!(
        "{};{}",
        field_text(kind, false),
        field_text(&decoded, false)
    )
}

/// Writes `text` as lines of at most 78 octets, broken at spaces.
fn wrap_text(m: &mut String, text: &str) {
    let mut line = 0;
    for word in text.split(' ') {
        if line > 0 && line + 1 + word.len() > 78 {
            m.push_str("\r\n   ");
            line = 3;
        } else if line > 0 {
            m.push(' ');
            line += 1;
        }
        m.push_str(word);
        line += word.len();
    }
    m.push_str("\r\n");
}

/// Writes `name: value` folded at spaces into lines of at most 78 octets
/// (RFC 5322 section 2.1.1); a word longer than a line stays whole, and
/// no word here exceeds the 998 octets a line may hold, since a reply line
/// is at most 512.
fn fold_field(m: &mut String, name: &str, value: &str) {
    const WIDTH: usize = 78;
    let mut line = name.len() + 1;
    m.push_str(name);
    m.push(':');
    // Each space stays: a fold goes before one, so unfolding (RFC 5322
    // section 2.2.3) gives the value back exactly.
    for word in value.split(' ') {
        if line + 1 + word.len() > WIDTH && line > name.len() + 1 {
            m.push_str("\r\n");
            line = 0;
        }
        m.push(' ');
        m.push_str(word);
        line += 1 + word.len();
    }
    m.push_str("\r\n");
}

/// The header section of a message, up to and including the blank line.
fn headers_of(message: &[u8]) -> &[u8] {
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message, |p| &message[..p + 4])
}

/// Year, month and day of the civil date `days` after 1970-01-01
/// (proleptic Gregorian).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `date-time` of RFC 3339 in UTC (`2026-12-01T00:00:00Z`), as JSON
/// reports write it.
pub fn rfc3339_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `date-time` of RFC 5322 section 3.3, in UTC.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month_name = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{weekday}, {day} {month_name} {year} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
