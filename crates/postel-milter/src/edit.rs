//! A message's header fields and body, split so that filters can be fed
//! them and their changes applied.
//!
//! ```
//! use postel_milter::{Change, edit::Message};
//!
//! let mut m = Message::parse(b"Subject: hi\r\nTo: b@example.net\r\n\r\nBody\r\n");
//! m.apply(&Change::ChangeHeader { index: 1, name: "subject".into(), value: "[spam] hi".into() });
//! m.apply(&Change::InsertHeader { index: 0, name: "X-Scanned".into(), value: "yes".into() });
//! assert_eq!(
//!     m.to_bytes(),
//!     b"X-Scanned: yes\r\nSubject: [spam] hi\r\nTo: b@example.net\r\n\r\nBody\r\n"
//! );
//! ```

use crate::types::Change;

/// One header field: its name and everything after the colon, as written
/// (folded lines joined by CR LF, no final CR LF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name.
    pub name: Vec<u8>,
    /// The value as it follows the colon.
    pub value: Vec<u8>,
}

/// A message as header fields and a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    fields: Vec<Field>,
    /// True when a blank line ended the header section.
    separator: bool,
    body: Vec<u8>,
}

impl Message {
    /// Splits a message (CR LF line ends). The header section ends at the
    /// blank line, or at the first line that is neither a field nor a
    /// continuation, which then begins the body, so nothing is lost.
    pub fn parse(message: &[u8]) -> Message {
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = 0;
        loop {
            let rest = &message[pos..];
            if rest.is_empty() {
                return Message {
                    fields,
                    separator: false,
                    body: Vec::new(),
                };
            }
            if rest.starts_with(b"\r\n") {
                return Message {
                    fields,
                    separator: true,
                    body: rest[2..].to_vec(),
                };
            }
            let end = memchr_crlf(rest).unwrap_or(rest.len());
            let line = &rest[..end];
            let next = (end + 2).min(rest.len());
            if matches!(line.first(), Some(b' ' | b'\t'))
                && let Some(last) = fields.last_mut()
            {
                last.value.extend_from_slice(b"\r\n");
                last.value.extend_from_slice(line);
            } else if let Some(colon) = line.iter().position(|&b| b == b':')
                && colon > 0
                && line[..colon].iter().all(|&b| (33..=126).contains(&b))
                && end < rest.len()
            {
                fields.push(Field {
                    name: line[..colon].to_vec(),
                    value: line[colon + 1..].to_vec(),
                });
            } else {
                return Message {
                    fields,
                    separator: false,
                    body: rest.to_vec(),
                };
            }
            pos += next;
        }
    }

    /// The header fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Replaces the body (a filter's replacement), with bare LF line ends
    /// made CR LF.
    pub fn replace_body(&mut self, body: &[u8]) {
        self.body = crlf(body);
        self.separator = true;
    }

    /// Applies a header change; envelope changes are the caller's and are
    /// ignored here. Values from a filter have LF line ends and no leading
    /// space; they are written with CR LF and one space after the colon. A
    /// changed field keeps its name as the message spelled it.
    pub fn apply(&mut self, change: &Change) {
        let field = |name: &str, value: &str| Field {
            name: name.as_bytes().to_vec(),
            value: {
                let mut v = Vec::with_capacity(value.len() + 1);
                if !value.starts_with([' ', '\t']) {
                    v.push(b' ');
                }
                v.extend_from_slice(&crlf(value.as_bytes()));
                v
            },
        };
        match change {
            Change::AddHeader { name, value } => self.fields.push(field(name, value)),
            Change::InsertHeader { index, name, value } => {
                let at =
                    usize::try_from(*index).map_or(self.fields.len(), |i| i.min(self.fields.len()));
                self.fields.insert(at, field(name, value));
            }
            Change::ChangeHeader { index, name, value } => {
                let nth = usize::try_from((*index).max(1)).unwrap_or(usize::MAX);
                let found = self
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.name.eq_ignore_ascii_case(name.as_bytes()))
                    .nth(nth - 1)
                    .map(|(i, _)| i);
                match (found, value.is_empty()) {
                    (Some(i), true) => {
                        self.fields.remove(i);
                    }
                    (Some(i), false) => self.fields[i].value = field(name, value).value,
                    // Changing a field that is not there adds it.
                    (None, false) => self.fields.push(field(name, value)),
                    (None, true) => {}
                }
            }
            Change::AddRecipient { .. }
            | Change::DeleteRecipient(_)
            | Change::ChangeSender { .. } => {}
        }
    }

    /// The message again.
    pub fn to_bytes(&self) -> Vec<u8> {
        let size = self
            .fields
            .iter()
            .map(|f| f.name.len() + f.value.len() + 3)
            .sum::<usize>();
        let mut out = Vec::with_capacity(size + 2 + self.body.len());
        for f in &self.fields {
            out.extend_from_slice(&f.name);
            out.push(b':');
            out.extend_from_slice(&f.value);
            out.extend_from_slice(b"\r\n");
        }
        if self.separator {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.body);
        out
    }
}

fn memchr_crlf(s: &[u8]) -> Option<usize> {
    s.windows(2).position(|w| w == b"\r\n")
}

/// Bare LF made CR LF; CR LF kept.
fn crlf(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 32);
    let mut prev = 0u8;
    for &b in s {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_write_are_inverse() {
        for m in [
            &b"A: 1\r\n continued\r\nB:2\r\n\r\nbody\r\n"[..],
            b"no header line\r\nbody\r\n",
            b"A: 1\r\n",
            b"",
            b"A: 1\r\n\r\n",
            b"A: 1\r\nnot a field\r\n",
        ] {
            assert_eq!(
                Message::parse(m).to_bytes(),
                m,
                "{:?}",
                String::from_utf8_lossy(m)
            );
        }
    }

    #[test]
    fn change_header_deletes_changes_and_adds() {
        let mut m = Message::parse(b"X: 1\r\nY: 2\r\nx: 3\r\n\r\n");
        m.apply(&Change::ChangeHeader {
            index: 2,
            name: "X".into(),
            value: "three".into(),
        });
        m.apply(&Change::ChangeHeader {
            index: 1,
            name: "Y".into(),
            value: String::new(),
        });
        m.apply(&Change::ChangeHeader {
            index: 1,
            name: "Z".into(),
            value: "a\n\tb".into(),
        });
        assert_eq!(m.to_bytes(), b"X: 1\r\nx: three\r\nZ: a\r\n\tb\r\n\r\n");
    }
}
