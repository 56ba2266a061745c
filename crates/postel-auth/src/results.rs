//! Authentication-Results fields that claim to be ours (RFC 8601 section 5):
//! a field with this server's authserv-id that arrived from outside is a
//! forgery, and is removed before the message is stored.

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
    use super::strip_own_results;

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
