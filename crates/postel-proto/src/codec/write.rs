//! Writers: every command and reply back to octets, so that parsing what was
//! written gives the same value.

use std::borrow::Cow;

use crate::types::{
    AuthParam, Capabilities, Command, EnhancedStatus, ForwardPath, InitialResponse, MailParameters,
    Mechanism, Notify, RcptParameters, Reply, ReplyCode, ReversePath, ValueError,
};

impl Command<'_> {
    /// Appends the command and its CRLF to `out`.
    ///
    /// ```
    /// use postel_proto::types::{Command, ForwardPath, Mailbox, RcptParameters};
    /// let to = ForwardPath::Mailbox(Mailbox::try_from("jane@example.org")?);
    /// let cmd = Command::Rcpt { to, params: RcptParameters::default() };
    /// assert_eq!(cmd.to_bytes(), b"RCPT TO:<jane@example.org>\r\n");
    /// # Ok::<(), postel_proto::types::ValueError>(())
    /// ```
    pub fn write(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing to a Vec cannot fail.
        let _ = match self {
            Command::Helo(h) => write!(out, "HELO {h}"),
            Command::Ehlo(h) => write!(out, "EHLO {h}"),
            Command::Lhlo(h) => write!(out, "LHLO {h}"),
            Command::Mail { from, params } => {
                write_reverse_path(out, from);
                write_mail_params(out, params);
                Ok(())
            }
            Command::Rcpt { to, params } => {
                write_forward_path(out, to);
                write_rcpt_params(out, params);
                Ok(())
            }
            Command::Data => write!(out, "DATA"),
            Command::Bdat { size, last: true } => write!(out, "BDAT {size} LAST"),
            Command::Bdat { size, last: false } => write!(out, "BDAT {size}"),
            Command::Rset => write!(out, "RSET"),
            Command::Noop(None) => write!(out, "NOOP"),
            Command::Noop(Some(t)) => write!(out, "NOOP {t}"),
            Command::Quit => write!(out, "QUIT"),
            Command::Vrfy(t) => write!(out, "VRFY {t}"),
            Command::Expn(t) => write!(out, "EXPN {t}"),
            Command::Help(None) => write!(out, "HELP"),
            Command::Help(Some(t)) => write!(out, "HELP {t}"),
            Command::StartTls => write!(out, "STARTTLS"),
            Command::Auth {
                mechanism,
                initial_response,
            } => {
                let _ = write!(out, "AUTH {mechanism}");
                match initial_response {
                    None => Ok(()),
                    Some(InitialResponse::Empty) => write!(out, " ="),
                    Some(InitialResponse::Base64(s)) => write!(out, " {}", s.expose()),
                }
            }
        };
        out.extend_from_slice(b"\r\n");
    }

    /// The command and its CRLF as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write(&mut out);
        out
    }
}

fn write_reverse_path(out: &mut Vec<u8>, from: &ReversePath<'_>) {
    use std::io::Write as _;
    let _ = write!(out, "MAIL FROM:{from}");
}

fn write_forward_path(out: &mut Vec<u8>, to: &ForwardPath<'_>) {
    use std::io::Write as _;
    let _ = write!(out, "RCPT TO:{to}");
}

fn write_mail_params(out: &mut Vec<u8>, p: &MailParameters<'_>) {
    use std::io::Write as _;
    if let Some(size) = p.size {
        let _ = write!(out, " SIZE={size}");
    }
    if let Some(body) = p.body {
        let _ = write!(out, " BODY={}", body.as_str());
    }
    if p.smtputf8 {
        out.extend_from_slice(b" SMTPUTF8");
    }
    match &p.auth {
        Some(AuthParam::Unknown) => out.extend_from_slice(b" AUTH=<>"),
        Some(AuthParam::Identity(x)) => {
            let _ = write!(out, " AUTH={x}");
        }
        None => {}
    }
    if let Some(ret) = p.ret {
        let _ = write!(out, " RET={}", ret.as_str());
    }
    if let Some(envid) = &p.envid {
        let _ = write!(out, " ENVID={envid}");
    }
    if p.requiretls {
        out.extend_from_slice(b" REQUIRETLS");
    }
    if let Some(pri) = p.mt_priority {
        let _ = write!(out, " MT-PRIORITY={}", pri.get());
    }
    write_other(out, &p.other);
}

fn write_rcpt_params(out: &mut Vec<u8>, p: &RcptParameters<'_>) {
    use std::io::Write as _;
    if let Some(n) = p.notify {
        out.extend_from_slice(b" NOTIFY=");
        write_notify(out, n);
    }
    if let Some(o) = &p.orcpt {
        let _ = write!(out, " ORCPT={};{}", o.addr_type(), o.address());
    }
    write_other(out, &p.other);
}

fn write_notify(out: &mut Vec<u8>, n: Notify) {
    if n.is_never() {
        out.extend_from_slice(b"NEVER");
        return;
    }
    let mut sep = "";
    for (on, name) in [
        (n.success, "SUCCESS"),
        (n.failure, "FAILURE"),
        (n.delay, "DELAY"),
    ] {
        if on {
            out.extend_from_slice(sep.as_bytes());
            out.extend_from_slice(name.as_bytes());
            sep = ",";
        }
    }
}

fn write_other(out: &mut Vec<u8>, other: &[crate::types::Parameter<'_>]) {
    for p in other {
        out.push(b' ');
        out.extend_from_slice(p.keyword().as_bytes());
        if let Some(v) = p.value() {
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
        }
    }
}

impl Reply<'_> {
    /// Appends the reply, every line with its code, `-` on all but the last, and
    /// the enhanced status code on each line (RFC 2034 section 4).
    pub fn write(&self, out: &mut Vec<u8>) {
        let code = self.code().get();
        // A ReplyCode is 200..=559, so each digit fits.
        let digit = |d: u16| b'0' + u8::try_from(d % 10).unwrap_or(0);
        let digits = [digit(code / 100), digit(code / 10), digit(code)];
        let lines = self.lines();
        if lines.is_empty() {
            out.extend_from_slice(&digits);
            out.extend_from_slice(b"\r\n");
            return;
        }
        let enhanced = self.enhanced().map(EnhancedStatus::render);
        for (i, line) in lines.iter().enumerate() {
            out.extend_from_slice(&digits);
            out.push(if i + 1 == lines.len() { b' ' } else { b'-' });
            if let Some((e, n)) = &enhanced {
                out.extend_from_slice(&e[..*n]);
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The reply as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.write(&mut out);
        out
    }
}

impl Capabilities<'_> {
    /// Appends the EHLO reply advertising these capabilities: the octets
    /// [`Capabilities::to_reply`] then [`Reply::write`] give, without
    /// building the reply. On an error nothing is appended.
    ///
    /// ```
    /// use postel_proto::types::Capabilities;
    /// let mut caps = Capabilities::default();
    /// caps.greeting = "mx.example.org".into();
    /// caps.pipelining = true;
    /// caps.size = Some(Some(1000));
    /// let mut out = Vec::new();
    /// caps.write_reply(&mut out)?;
    /// assert_eq!(out, b"250-mx.example.org\r\n250-SIZE 1000\r\n250 PIPELINING\r\n");
    /// assert_eq!(out, caps.to_reply()?.to_bytes());
    /// # Ok::<(), postel_proto::types::ValueError>(())
    /// ```
    pub fn write_reply(&self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        let start = out.len();
        let written = self.write_lines(out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    fn write_lines(&self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        let mut last = ehlo_line(out, EhloLine::Greeting, |o| {
            o.extend_from_slice(self.greeting.as_bytes());
        })?;
        match self.size {
            Some(Some(n)) => {
                last = ehlo_line(out, EhloLine::Keyword, |o| {
                    o.extend_from_slice(b"SIZE ");
                    push_decimal(o, n);
                })?;
            }
            Some(None) => {
                last = ehlo_line(out, EhloLine::Keyword, |o| o.extend_from_slice(b"SIZE"))?;
            }
            None => {}
        }
        if let Some(mechs) = &self.auth
            && !mechs.is_empty()
        {
            // Mechanism names are checked; a long list may pass the limit.
            last = ehlo_line(out, EhloLine::Text, |o| {
                o.extend_from_slice(b"AUTH");
                for m in mechs {
                    o.push(b' ');
                    o.extend_from_slice(m.as_str().as_bytes());
                }
            })?;
        }
        for (_, keyword) in self.flags().iter().filter(|(on, _)| *on) {
            last = ehlo_line(out, EhloLine::Keyword, |o| {
                o.extend_from_slice(keyword.as_bytes());
            })?;
        }
        for c in &self.other {
            last = ehlo_line(out, EhloLine::Text, |o| {
                o.extend_from_slice(c.as_str().as_bytes());
            })?;
        }
        // Every line went out as a continuation; the last one is not.
        out[last] = b' ';
        Ok(())
    }

    /// The keywords without parameters, with whether each is advertised,
    /// in the order the EHLO reply gives them.
    fn flags(&self) -> [(bool, &'static str); 10] {
        [
            (self.pipelining, "PIPELINING"),
            (self.eight_bit_mime, "8BITMIME"),
            (self.smtputf8, "SMTPUTF8"),
            (self.chunking, "CHUNKING"),
            (self.binary_mime, "BINARYMIME"),
            (self.starttls, "STARTTLS"),
            (self.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
            (self.dsn, "DSN"),
            (self.requiretls, "REQUIRETLS"),
            (self.help, "HELP"),
        ]
    }

    /// The EHLO reply advertising these capabilities, greeting first.
    pub fn to_reply(&self) -> Result<Reply<'static>, ValueError> {
        let mut lines: Vec<Cow<'static, str>> = vec![Cow::Owned(self.greeting.to_string())];
        let flags = self.flags();
        match self.size {
            Some(Some(n)) => lines.push(Cow::Owned(format!("SIZE {n}"))),
            Some(None) => lines.push(Cow::Borrowed("SIZE")),
            None => {}
        }
        if let Some(mechs) = &self.auth
            && !mechs.is_empty()
        {
            let names: Vec<&str> = mechs.iter().map(Mechanism::as_str).collect();
            lines.push(Cow::Owned(format!("AUTH {}", names.join(" "))));
        }
        lines.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, k)| Cow::Borrowed(*k)),
        );
        lines.extend(self.other.iter().map(|c| Cow::Owned(c.as_str().to_owned())));
        Reply::multiline(ReplyCode::OK, None, lines)
    }
}

/// What an EHLO reply line holds, and so how it is checked.
#[derive(Clone, Copy)]
enum EhloLine {
    /// The first line, free text: checked as a reply's first line.
    Greeting,
    /// Text from a value: checked as a reply line.
    Text,
    /// A keyword the writer spells itself: nothing to check.
    Keyword,
}

/// Appends one line of an EHLO reply as a continuation, `250-` and the text
/// `text` writes, checked as `kind` says; returns where its `-` is.
fn ehlo_line(
    out: &mut Vec<u8>,
    kind: EhloLine,
    text: impl FnOnce(&mut Vec<u8>),
) -> Result<usize, ValueError> {
    out.extend_from_slice(b"250-");
    let separator = out.len() - 1;
    let start = out.len();
    text(out);
    match kind {
        EhloLine::Greeting => Reply::check_line(ReplyCode::OK, None, &out[start..], true)?,
        EhloLine::Text => Reply::check_line(ReplyCode::OK, None, &out[start..], false)?,
        EhloLine::Keyword => {}
    }
    out.extend_from_slice(b"\r\n");
    Ok(separator)
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}
