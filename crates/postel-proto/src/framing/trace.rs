//! Trace fields counted while a message streams past: the hop count that
//! stops mail loops (RFC 5321 section 6.3).
//!
//! Only the header section is looked at: each line's field name, then a
//! SIMD search for the line end (unless the value is kept). The section
//! ends at the empty line, or, as Postfix's cleanup has it, at the first
//! line that is neither a field nor a continuation: every hop prepends its
//! trace fields, so they all come before such a line. With a fixed amount
//! of state, the scanner costs nothing once the body starts and never holds
//! more than its small, capped record of `Delivered-To` values, whatever
//! the message.

/// The longest `Delivered-To` value kept, in octets: an RFC 5321 path.
const MAX_DELIVERED_TO_LEN: usize = 256;
/// `Delivered-To` values kept; a message with more is a loop anyway.
const MAX_DELIVERED_TO: usize = 64;
/// The longest field name kept: `delivered-to` and `received` fit, and a
/// longer name, kept cut short, matches neither.
const NAME_CAP: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a header line.
    LineStart,
    /// A CR at the start of a line: the empty line that ends the header if an
    /// LF follows.
    EmptyCr,
    /// In a field name.
    Name,
    /// White space after a field name: the obsolete form `Name :` of RFC
    /// 5322 section 4.5.
    NameSpace,
    /// In a field body.
    Value,
    /// The header section is over.
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Received,
    DeliveredTo,
    Other,
}

/// Octets a field name is made of (RFC 5322 section 3.6.8: printable
/// US-ASCII but the colon).
fn is_name_octet(b: u8) -> bool {
    matches!(b, 33..=57 | 59..=126)
}

/// Counts `Received` fields and keeps the `Delivered-To` values of a
/// message's header section, fed the message in pieces of any size.
///
/// ```
/// use postel_proto::framing::TraceScanner;
/// let mut trace = TraceScanner::new();
/// trace.feed(b"Received: from a by b;\r\n\tMon, 1 Jan 2024 00:00:00 +0000\r\nDelivered-");
/// trace.feed(b"To: jane@example.org\r\nreceived: from c\r\n\r\nReceived: in the body\r\n");
/// assert_eq!(trace.received(), 2);
/// assert_eq!(trace.delivered_to(), ["jane@example.org"]);
/// ```
#[derive(Debug, Clone)]
pub struct TraceScanner {
    state: State,
    name: [u8; NAME_CAP],
    name_len: usize,
    /// The field the current line (and its continuation lines) belongs to.
    field: Field,
    received: usize,
    delivered_to: Vec<String>,
    value: Vec<u8>,
}

impl Default for TraceScanner {
    fn default() -> Self {
        TraceScanner::new()
    }
}

impl TraceScanner {
    /// A scanner at the start of a message.
    pub fn new() -> Self {
        TraceScanner {
            state: State::LineStart,
            name: [0; NAME_CAP],
            name_len: 0,
            field: Field::Other,
            received: 0,
            delivered_to: Vec::new(),
            value: Vec::new(),
        }
    }

    /// `Received` fields in the header section so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// The `Delivered-To` values so far, unfolded and trimmed (at most 64, each
    /// at most 256 octets; longer ones are dropped).
    pub fn delivered_to(&self) -> &[String] {
        &self.delivered_to
    }

    /// True once the header section has ended: at its empty line, or at a
    /// line that is neither a field nor a continuation.
    pub fn header_done(&self) -> bool {
        self.state == State::Body
    }

    /// Reads the next octets of the message.
    pub fn feed(&mut self, mut data: &[u8]) {
        while let Some(&b) = data.first() {
            match self.state {
                State::Body => return,
                // The value of a field whose value is not kept: on to the
                // next line at once.
                State::Value if self.field != Field::DeliveredTo => {
                    match memchr::memchr(b'\n', data) {
                        Some(p) => {
                            self.state = State::LineStart;
                            data = &data[p + 1..];
                        }
                        None => return,
                    }
                }
                // The rest of a name, found in one search.
                State::Name => {
                    let n = data
                        .iter()
                        .position(|&c| !is_name_octet(c))
                        .unwrap_or(data.len());
                    self.push_name(&data[..n]);
                    let Some(&after) = data.get(n) else { return };
                    self.step(after);
                    data = &data[n + 1..];
                }
                _ => {
                    self.step(b);
                    data = &data[1..];
                }
            }
        }
    }

    fn step(&mut self, b: u8) {
        match self.state {
            State::LineStart => match b {
                b' ' | b'\t' => {
                    // A continuation line of the current field.
                    self.state = State::Value;
                    self.keep(b);
                }
                b'\r' => self.state = State::EmptyCr,
                _ if is_name_octet(b) => {
                    self.end_field();
                    self.name_len = 0;
                    self.push_name(&[b]);
                    self.state = State::Name;
                }
                // The empty line, or a line that cannot start a field.
                _ => self.end_header(),
            },
            // CR LF ends the header; CR and anything else is no field.
            State::EmptyCr => self.end_header(),
            State::Name | State::NameSpace => match b {
                b':' => {
                    let name = self.name;
                    self.field = self.classify(&name[..self.name_len]);
                    self.state = State::Value;
                }
                b' ' | b'\t' => self.state = State::NameSpace,
                // A name with white space in it, or a line without a colon.
                _ => self.end_header(),
            },
            State::Value => {
                if b == b'\n' {
                    self.state = State::LineStart;
                } else if b != b'\r' {
                    self.keep(b);
                }
            }
            State::Body => {}
        }
    }

    /// More octets of the current field name; only the first `NAME_CAP`
    /// are kept.
    fn push_name(&mut self, octets: &[u8]) {
        let n = octets.len().min(NAME_CAP - self.name_len);
        self.name[self.name_len..self.name_len + n].copy_from_slice(&octets[..n]);
        self.name_len += n;
    }

    /// The field a name ends; counts a `Received`.
    fn classify(&mut self, name: &[u8]) -> Field {
        if name.eq_ignore_ascii_case(b"received") {
            self.received += 1;
            Field::Received
        } else if name.eq_ignore_ascii_case(b"delivered-to") {
            Field::DeliveredTo
        } else {
            Field::Other
        }
    }

    fn keep(&mut self, b: u8) {
        if self.field == Field::DeliveredTo && self.value.len() <= MAX_DELIVERED_TO_LEN {
            self.value.push(b);
        }
    }

    /// The current field has ended: keep its value if it is a `Delivered-To`.
    fn end_field(&mut self) {
        if self.field == Field::DeliveredTo {
            let value = String::from_utf8_lossy(&self.value);
            let value = value.trim();
            if !value.is_empty()
                && self.value.len() <= MAX_DELIVERED_TO_LEN
                && self.delivered_to.len() < MAX_DELIVERED_TO
            {
                self.delivered_to.push(value.to_owned());
            }
        }
        self.value.clear();
        self.field = Field::Other;
    }

    fn end_header(&mut self) {
        self.end_field();
        self.state = State::Body;
    }
}

#[cfg(test)]
mod tests {
    use super::TraceScanner;

    fn scan(message: &[u8]) -> TraceScanner {
        let whole = {
            let mut t = TraceScanner::new();
            t.feed(message);
            t
        };
        let mut octets = TraceScanner::new();
        for b in message {
            octets.feed(std::slice::from_ref(b));
        }
        assert_eq!(whole.received(), octets.received());
        assert_eq!(whole.delivered_to(), octets.delivered_to());
        whole
    }

    #[test]
    fn counts_only_the_header_section() {
        let t = scan(
            b"Received: a\r\nX-Received: b\r\nReceived : c\r\nRECEIVED:d\r\n\r\nReceived: e\r\n",
        );
        assert_eq!(
            t.received(),
            3,
            "X-Received does not count; the obsolete space before the colon does"
        );
        assert!(t.header_done());
    }

    #[test]
    fn folded_delivered_to_is_unfolded() {
        let t = scan(b"Delivered-To:\r\n jane@example.org\r\nSubject: x\r\n\r\n");
        assert_eq!(t.delivered_to(), ["jane@example.org"]);
        let t = scan(b"Delivered-To: a@b\r\nDelivered-To: c@d");
        assert_eq!(
            t.delivered_to(),
            ["a@b"],
            "the last is kept only once its field ends"
        );
    }

    #[test]
    fn a_line_that_is_no_field_ends_the_header_whatever_the_split() {
        for (message, received, delivered_to) in [
            // A name with white space in it.
            (
                &b"Received: x\r\nrec eived: x\r\nReceived: y\r\n\r\n"[..],
                1,
                0,
            ),
            // No colon on the line.
            (
                b"Delivered-To: a@b\r\nmail exchange the relay\r\nReceived: y\r\n",
                0,
                1,
            ),
            (b"Received: x\r\nReceived\r\nReceived: y\r\n", 1, 0),
            // An empty name, a control octet, eight-bit octets.
            (b"Received: x\r\n: y\r\nReceived: y\r\n", 1, 0),
            (b"Received: x\r\n\x01Received: y\r\n", 1, 0),
            (
                b"Received: x\r\nR\xc3\xa9ceived: y\r\nReceived: y\r\n",
                1,
                0,
            ),
            // A CR at the start of a line without its LF.
            (b"Received: x\r\n\rReceived: y\r\n", 1, 0),
            // A long name is a field all the same.
            (b"X-A-Field-Name-Of-Many-Octets: v\r\nReceived: y\r\n", 1, 0),
            // Continuation lines belong to their field.
            (
                b"Received: x\r\n\tby y\r\n  with z\r\nReceived: y\r\n",
                2,
                0,
            ),
        ] {
            for split in 0..message.len() {
                let mut t = TraceScanner::new();
                t.feed(&message[..split]);
                t.feed(&message[split..]);
                let m = String::from_utf8_lossy(message);
                assert_eq!(t.received(), received, "{m:?} split at {split}");
                assert_eq!(
                    t.delivered_to().len(),
                    delivered_to,
                    "{m:?} split at {split}"
                );
            }
        }
    }

    proptest::proptest! {
        /// Fed whole, in random pieces or an octet at a time (which never
        /// takes the name search), the scanner finds the same fields.
        #[test]
        fn any_split_finds_the_same_fields(
            pieces in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(&b"Received:"[..]),
                proptest::strategy::Just(&b"received: x"[..]),
                proptest::strategy::Just(&b"Delivered-To: a@b"[..]),
                proptest::strategy::Just(&b"delivered-to:"[..]),
                proptest::strategy::Just(&b"X-Long-Name-Of-Sixteen:"[..]),
                proptest::strategy::Just(&b"abcdefghijklmno:"[..]),
                proptest::strategy::Just(&b"abcdefghijklmnop:"[..]),
                proptest::strategy::Just(&b"mail exchange"[..]),
                proptest::strategy::Just(&b"word"[..]),
                proptest::strategy::Just(&b"abcdefghijklmnopq"[..]),
                proptest::strategy::Just(&b"\r\n"[..]),
                proptest::strategy::Just(&b"\n"[..]),
                proptest::strategy::Just(&b" "[..]),
                proptest::strategy::Just(&b"\t"[..]),
                proptest::strategy::Just(&b":"[..]),
                proptest::strategy::Just(&b"\r"[..]),
            ], 0..40),
            cuts in proptest::collection::vec(1usize..30, 1..10),
        ) {
            let message = pieces.concat();
            let whole = scan(&message);
            let mut split = TraceScanner::new();
            let (mut pos, mut k) = (0, 0);
            while pos < message.len() {
                let n = cuts[k % cuts.len()].min(message.len() - pos);
                split.feed(&message[pos..pos + n]);
                pos += n;
                k += 1;
            }
            proptest::prop_assert_eq!(whole.received(), split.received());
            proptest::prop_assert_eq!(whole.delivered_to(), split.delivered_to());
            proptest::prop_assert_eq!(whole.header_done(), split.header_done());
        }
    }

    #[test]
    fn long_values_and_names_are_bounded() {
        let mut m = b"Delivered-To: ".to_vec();
        m.extend(std::iter::repeat_n(b'x', 10_000));
        m.extend_from_slice(b"\r\nReceivedReceivedReceived: no\r\n\r\n");
        let t = scan(&m);
        assert!(t.delivered_to().is_empty());
        assert_eq!(t.received(), 0);
    }
}
