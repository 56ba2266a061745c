//! The Authentication-Results field (RFC 8601): written here, one method
//! result per line; and removed when it claims to be ours (section 5): a
//! field with this server's authserv-id that arrived from outside is a
//! forgery.

/// One method's result in an Authentication-Results field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// `spf`, `dkim`, `arc`, `dmarc`.
    pub method: &'static str,
    /// `pass`, `fail`, `none`, ...
    pub result: &'static str,
    /// Why, for a result that is not a pass.
    pub reason: Option<String>,
    /// The properties, `ptype.property` and value (`header.d`,
    /// `smtp.mailfrom`, ...).
    pub properties: Vec<(&'static str, String)>,
}

/// The field, name to final CRLF: `authserv_id`, then each result on a line
/// of its own (`none` when there are none). Values that are not a token or
/// an address are written as quoted strings.
///
/// ```
/// use postel_auth::results::{MethodResult, authentication_results};
///
/// let spf = MethodResult {
///     method: "spf",
///     result: "pass",
///     reason: None,
///     properties: vec![("smtp.mailfrom", "alice@example.com".into())],
/// };
/// assert_eq!(
///     authentication_results("mx.example.net", &[spf]),
///     "Authentication-Results: mx.example.net;\r\n\tspf=pass smtp.mailfrom=alice@example.com\r\n"
/// );
/// assert_eq!(
///     authentication_results("mx.example.net", &[]),
///     "Authentication-Results: mx.example.net; none\r\n"
/// );
/// ```
pub fn authentication_results(authserv_id: &str, results: &[MethodResult]) -> String {
    let mut field = format!("Authentication-Results: {authserv_id}");
    if results.is_empty() {
        field.push_str("; none\r\n");
        return field;
    }
    for r in results {
        field.push_str(";\r\n\t");
        field.push_str(r.method);
        field.push('=');
        field.push_str(r.result);
        if let Some(reason) = &r.reason {
            field.push_str(" reason=");
            field.push_str(&quoted(reason));
        }
        for (name, value) in &r.properties {
            field.push(' ');
            field.push_str(name);
            field.push('=');
            field.push_str(&pvalue(value));
        }
    }
    field.push_str("\r\n");
    field
}

/// A value as RFC 8601 section 2.2 allows it: as is when it is a token or
/// `local-part@domain` of atoms, else a quoted string.
fn pvalue(value: &str) -> String {
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let plain = !value.is_empty()
        && match value.split_once('@') {
            Some((local, domain)) => {
                local.chars().all(atext) && !domain.is_empty() && domain.chars().all(atext)
            }
            None => value.chars().all(atext),
        };
    if plain {
        value.to_owned()
    } else {
        quoted(value)
    }
}

fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // Line ends and controls have no place in a field.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The message without the Authentication-Results fields whose authserv-id
/// is `authserv_id` (compared without regard to case); `None` when there
/// are none, so that the common case copies nothing. Only the header
/// section is looked at; a message without one is returned unchanged.
///
/// ```
/// let message = b"Authentication-Results: mx.example.net; dkim=pass\r\n\
///     Authentication-Results: other.example; spf=fail\r\n\
///     Subject: hi\r\n\r\nbody\r\n";
/// let kept = postel_auth::strip_own_results(message, "MX.example.net").unwrap();
/// assert_eq!(
///     kept,
///     b"Authentication-Results: other.example; spf=fail\r\nSubject: hi\r\n\r\nbody\r\n"
/// );
/// assert!(postel_auth::strip_own_results(&kept, "mx.example.net").is_none());
/// ```
pub fn strip_own_results(message: &[u8], authserv_id: &str) -> Option<Vec<u8>> {
    let mut drop = Vec::new();
    let mut at = 0;
    while at < message.len() {
        let Some(end) = field_end(message, at) else {
            break;
        };
        let field = &message[at..end];
        if field == b"\r\n" || field == b"\n" {
            break;
        }
        if is_own(field, authserv_id) {
            drop.push(at..end);
        }
        at = end;
    }
    if drop.is_empty() {
        return None;
    }
    let mut kept = Vec::with_capacity(message.len());
    let mut from = 0;
    for range in drop {
        kept.extend_from_slice(&message[from..range.start]);
        from = range.end;
    }
    kept.extend_from_slice(&message[from..]);
    Some(kept)
}

/// The end of the field that starts at `at`: past its last line's line end
/// and every continuation line. `None` past the end of the message.
fn field_end(message: &[u8], at: usize) -> Option<usize> {
    let mut end = at + memchr_lf(&message[at..])? + 1;
    if matches!(message[at], b'\r' | b'\n') {
        return Some(end);
    }
    while matches!(message.get(end), Some(b' ' | b'\t')) {
        end += memchr_lf(&message[end..])? + 1;
    }
    Some(end)
}

fn memchr_lf(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

fn is_own(field: &[u8], authserv_id: &str) -> bool {
    const NAME: &[u8] = b"authentication-results";
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = field[..colon].trim_ascii_end();
    if !name.eq_ignore_ascii_case(NAME) {
        return false;
    }
    let value = skip_cfws(&field[colon + 1..]);
    let id_len = value
        .iter()
        .position(|&b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n' | b'('))
        .unwrap_or(value.len());
    value[..id_len].eq_ignore_ascii_case(authserv_id.as_bytes())
}

/// Skips folding white space and comments (nested, with quoted pairs).
fn skip_cfws(mut s: &[u8]) -> &[u8] {
    loop {
        match s.first() {
            Some(b' ' | b'\t' | b'\r' | b'\n') => s = &s[1..],
            Some(b'(') => {
                let mut depth = 0usize;
                let mut i = 0;
                while i < s.len() {
                    match s[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                s = s.get(i + 1..).unwrap_or_default();
            }
            _ => return s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{pvalue, strip_own_results};

    #[test]
    fn values_are_quoted_when_they_must_be() {
        assert_eq!(pvalue("example.com"), "example.com");
        assert_eq!(pvalue("a.b+c@example.com"), "a.b+c@example.com");
        assert_eq!(pvalue("two words"), "\"two words\"");
        assert_eq!(pvalue("\"q\"@x"), "\"\\\"q\\\"@x\"");
        assert_eq!(pvalue("a;b"), "\"a;b\"");
        assert_eq!(pvalue(""), "\"\"");
        assert_eq!(pvalue("x\r\ny"), "\"x  y\"");
    }

    #[test]
    fn folded_commented_and_foreign_fields() {
        let m = b"Received: x\r\n\
            authentication-results: (forged) mx.example.net;\r\n\
            \tdkim=pass header.d=bank.example\r\n\
            Authentication-Results: mx.example.net.evil; spf=pass\r\n\
            Authentication-Results:mx.example.net;none\r\n\
            Subject: s\r\n\
            \r\n\
            Authentication-Results: mx.example.net; in the body\r\n";
        let kept = strip_own_results(m, "mx.example.net").unwrap();
        assert_eq!(
            kept,
            b"Received: x\r\n\
            Authentication-Results: mx.example.net.evil; spf=pass\r\n\
            Subject: s\r\n\
            \r\n\
            Authentication-Results: mx.example.net; in the body\r\n"
        );
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for m in [
            &b""[..],
            b"\r\n",
            b"Authentication-Results",
            b"Authentication-Results: mx.example.net",
            b"Authentication-Results: (unclosed mx.example.net\r\n",
            b" \r\nAuthentication-Results: mx.example.net\r\n",
            b"Authentication-Results: \\",
        ] {
            let _ = strip_own_results(m, "mx.example.net");
        }
        assert_eq!(
            strip_own_results(b"Authentication-Results: mx.example.net", "mx.example.net"),
            None,
            "a field without its line end is not a field"
        );
    }
}
