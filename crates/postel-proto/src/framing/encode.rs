//! Dot-stuffing on the sending side (RFC 5321 section 4.5.2): the inverse of
//! the [`DotDecoder`](super::DotDecoder).

/// Streaming dot-stuffer for the sending side: doubles each `.` that starts a
/// line, turns any bare CR or LF into CRLF (so the output can never be read two
/// ways), and [`DotEncoder::finish`] ends the body with CRLF `.` CRLF.
///
/// ```
/// use postel_proto::framing::DotEncoder;
/// let mut out = Vec::new();
/// let mut enc = DotEncoder::new();
/// enc.encode(b".hidden\nline", &mut out);
/// enc.finish(&mut out);
/// assert_eq!(out, b"..hidden\r\nline\r\n.\r\n");
/// ```
#[derive(Debug, Clone)]
pub struct DotEncoder {
    line_start: bool,
    after_cr: bool,
}

impl Default for DotEncoder {
    fn default() -> Self {
        DotEncoder::new()
    }
}

impl DotEncoder {
    /// An encoder at the start of a body.
    pub fn new() -> Self {
        DotEncoder {
            line_start: true,
            after_cr: false,
        }
    }

    /// Appends the stuffed form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 3);
        let mut run = 0;
        for (i, &b) in input.iter().enumerate() {
            match b {
                b'\n' => {
                    out.extend_from_slice(&input[run..i]);
                    if !self.after_cr {
                        out.push(b'\r');
                    }
                    out.push(b'\n');
                    run = i + 1;
                    self.after_cr = false;
                    self.line_start = true;
                    continue;
                }
                _ if self.after_cr => {
                    // The CR before this octet was bare: complete it.
                    out.extend_from_slice(&input[run..i]);
                    out.push(b'\n');
                    run = i;
                    self.after_cr = false;
                    self.line_start = true;
                }
                _ => {}
            }
            if b == b'\r' {
                self.after_cr = true;
                self.line_start = false;
                continue;
            }
            if self.line_start && b == b'.' {
                out.extend_from_slice(&input[run..i]);
                out.push(b'.');
                run = i;
            }
            self.line_start = false;
        }
        out.extend_from_slice(&input[run..]);
    }

    /// Ends the body: completes a pending CR or an unterminated last line, then
    /// appends `.` CRLF.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.after_cr {
            out.push(b'\n');
        } else if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = DotEncoder::new();
    }
}

/// Dot-stuffs a whole message and appends the terminator.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut enc = DotEncoder::new();
    enc.encode(message, &mut out);
    enc.finish(&mut out);
    out
}
