//! Trace fields counted while a message streams past: the hop count that
//! stops mail loops (RFC 5321 section 6.3).
//!
//! Only the header section is looked at, field names one octet at a time,
//! values a SIMD search for the line end at a time (unless kept), with a
//! fixed amount of state, so the scanner costs nothing once the body starts
//! and never holds more than its small, capped record of `Delivered-To`
//! values, whatever the message.

/// The longest `Delivered-To` value kept, in octets: an RFC 5321 path.
const MAX_DELIVERED_TO_LEN: usize = 256;
/// `Delivered-To` values kept; a message with more is a loop anyway.
const MAX_DELIVERED_TO: usize = 64;
/// The longest field name worth reading: `delivered-to` and `received` fit.
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
    /// In a field body (or a line that is not a field).
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

    /// True once the empty line that ends the header section has passed.
    pub fn header_done(&self) -> bool {
        self.state == State::Body
    }

    /// Reads the next octets of the message.
    pub fn feed(&mut self, mut data: &[u8]) {
        while let Some((&b, rest)) = data.split_first() {
            match self.state {
                State::Body => return,
                // The value of a field whose value is not kept, or a line
                // that cannot be a field we count (a name too long, or with
                // white space in it): on to the next line at once.
                State::Value if self.field != Field::DeliveredTo => self.skip_line(&mut data),
                State::Name if self.name_len >= NAME_CAP || b == b' ' || b == b'\t' => {
                    self.skip_line(&mut data);
                }
                // A new field's name, whole in `data`: found in one search
                // rather than stepped through (a sixth of a session's time
                // on a line-by-line transaction, in perf).
                State::LineStart if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') => {
                    let window = &data[..data.len().min(NAME_CAP)];
                    match window
                        .iter()
                        .position(|&c| matches!(c, b':' | b' ' | b'\t' | b'\n'))
                    {
                        Some(p) => {
                            self.end_field();
                            match data[p] {
                                b':' => {
                                    self.field = self.classify(&data[..p]);
                                    self.state = State::Value;
                                    data = &data[p + 1..];
                                }
                                b'\n' => data = &data[p + 1..],
                                // White space in a name: not a field.
                                _ => {
                                    data = &data[p..];
                                    self.skip_line(&mut data);
                                }
                            }
                        }
                        // Longer than any name we count.
                        None if data.len() > NAME_CAP => {
                            self.end_field();
                            data = &data[NAME_CAP..];
                            self.skip_line(&mut data);
                        }
                        // The name goes on in the next input.
                        None => {
                            self.step(b);
                            data = rest;
                        }
                    }
                }
                _ => {
                    self.step(b);
                    data = rest;
                }
            }
        }
    }

    /// Past the end of the current line, or to the end of `data`; the
    /// line's field is one whose value is not kept.
    fn skip_line(&mut self, data: &mut &[u8]) {
        if let Some(p) = memchr::memchr(b'\n', data) {
            self.state = State::LineStart;
            *data = &data[p + 1..];
        } else {
            // The rest of the line, in the next input, is skipped too.
            self.state = State::Value;
            *data = &[];
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
                b'\n' => self.end_header(),
                _ => {
                    self.end_field();
                    self.name_len = 0;
                    self.state = State::Name;
                    self.step(b);
                }
            },
            State::EmptyCr => {
                if b == b'\n' {
                    self.end_header();
                } else {
                    self.end_field();
                    self.state = State::Value;
                }
            }
            State::Name => match b {
                b':' => {
                    let name = self.name;
                    self.field = self.classify(&name[..self.name_len]);
                    self.state = State::Value;
                }
                b'\n' => self.state = State::LineStart,
                _ => {
                    if self.name_len < NAME_CAP {
                        self.name[self.name_len] = b;
                    }
                    // One past the cap marks a name too long to be one we want.
                    self.name_len = (self.name_len + 1).min(NAME_CAP);
                }
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
            2,
            "X-Received and a space before the colon do not count"
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
    fn lines_that_are_not_counted_fields_are_skipped_whatever_the_split() {
        // "rec" then "eived:" across a split after a space is not a name.
        let t = scan(
            b"rec eived: x\r\nReceived: y\r\nmail exchange the relay\r\nDelivered-To: a@b\r\n\r\n",
        );
        assert_eq!(t.received(), 1);
        assert_eq!(t.delivered_to(), ["a@b"]);
        for split in 0..20 {
            let m = b"rec eived: x\r\nReceived: y\r\n\r\n";
            let mut t = TraceScanner::new();
            t.feed(&m[..split]);
            t.feed(&m[split..]);
            assert_eq!(t.received(), 1, "split at {split}");
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
