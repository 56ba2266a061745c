//! Octets received and not yet read.

/// The session's input: a buffer with a read position, so that reading a
/// command off the front does not move the pipelined octets behind it. The
/// unread octets move to the front only when more arrive and the read part
/// is at least as long as the unread one, so each octet moves at most once
/// on average.
#[derive(Debug, Default)]
pub(super) struct Input {
    buf: Vec<u8>,
    /// Octets of `buf` already read.
    start: usize,
}

impl Input {
    /// What is left to read.
    pub(super) fn unread(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(super) fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    /// Marks the first `n` unread octets (at most all of them) as read.
    pub(super) fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.clear();
        }
    }

    /// Drops everything unread.
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Appends octets received.
    pub(super) fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::Input;

    #[test]
    fn reads_in_order_across_compaction() {
        let mut input = Input::default();
        let mut expected = Vec::new();
        let mut read = Vec::new();
        for round in 0u8..50 {
            let data: Vec<u8> = (0..=(round % 7)).map(|i| round ^ i).collect();
            expected.extend_from_slice(&data);
            input.extend(&data);
            assert!(input.buf.len() <= 2 * input.unread().len(), "round {round}");
            let n = usize::from(round % 5).min(input.unread().len());
            read.extend_from_slice(&input.unread()[..n]);
            input.consume(n);
        }
        read.extend_from_slice(input.unread());
        assert_eq!(read, expected);
        input.consume(usize::MAX);
        assert!(input.is_empty() && input.unread().is_empty());
    }
}
