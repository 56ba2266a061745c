//! The BDAT chunk reader (RFC 3030 section 2): exactly `size` octets follow the
//! command line, with no line structure, no dot-stuffing and no line limit.

/// Reads the octets of one BDAT chunk out of the input stream.
///
/// ```
/// use postel_proto::framing::BdatReader;
/// let mut r = BdatReader::new(5);
/// assert_eq!(r.read(b"hel"), (&b"hel"[..], false));
/// assert_eq!(r.read(b"loQUIT\r\n"), (&b"lo"[..], true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdatReader {
    remaining: u64,
}

impl BdatReader {
    /// A reader for a chunk of `size` octets.
    pub fn new(size: u64) -> Self {
        BdatReader { remaining: size }
    }

    /// Octets of the chunk still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Takes the chunk's octets from the front of `input`. Returns them (the
    /// amount consumed is their length) and whether the chunk is now complete;
    /// what follows a complete chunk is the next command.
    pub fn read<'a>(&mut self, input: &'a [u8]) -> (&'a [u8], bool) {
        let take = usize::try_from(self.remaining).map_or(input.len(), |r| r.min(input.len()));
        self.remaining -= take as u64;
        (&input[..take], self.remaining == 0)
    }
}
