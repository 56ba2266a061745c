//! The spool's file per message, for a body too large for the segment
//! log: the body as it arrived, the prefix, the envelope, then a footer
//! line with the three lengths.

use std::fs::File;

/// The last line of a message file: `#postel 1`, then the lengths of the
/// body, the prefix and the envelope, each as 16 hexadecimal digits.
pub(super) const FOOTER_LEN: usize = 62;

pub(super) fn footer(body: u64, prefix: u64, envelope: u64) -> String {
    format!("\n#postel 1 {body:016x} {prefix:016x} {envelope:016x}\n")
}

/// Reads a footer: the body's, the prefix's and the envelope's lengths.
pub(super) fn parse_footer(line: &[u8]) -> Option<[u64; 3]> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix("\n#postel 1 ")?.strip_suffix('\n')?;
    let mut parts = rest.split(' ');
    let mut next = || {
        parts
            .next()
            .filter(|p| p.len() == 16)
            .and_then(|p| u64::from_str_radix(p, 16).ok())
    };
    let lengths = [next()?, next()?, next()?];
    parts.next().is_none().then_some(lengths)
}

/// Where a message file's parts are: the body's length, and the prefix's
/// offset and length. `None` for a file that is not one.
pub(super) fn layout(file: &File) -> Option<(u64, u64, u64, u64)> {
    use std::os::unix::fs::FileExt as _;
    let len = file.metadata().ok()?.len();
    let footer_at = len.checked_sub(FOOTER_LEN as u64)?;
    let mut line = [0u8; FOOTER_LEN];
    file.read_exact_at(&mut line, footer_at).ok()?;
    let [body, prefix, envelope] = parse_footer(&line)?;
    let envelope_at = body.checked_add(prefix)?;
    (envelope_at.checked_add(envelope)? == footer_at).then_some((
        body,
        prefix,
        envelope_at,
        envelope,
    ))
}
