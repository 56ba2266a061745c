//! Byte classes of the SMTP ABNF (RFC 5321 section 4.1.2, RFC 6531 section 3.3) as
//! compile-time tables, and the small scanners both the validating constructors in
//! [`crate::types`] and the parsers in [`crate::codec`] share.

// Classes marked "+ UTF-8" include every octet from 0x80 up: RFC 6531 lets
// UTF-8 appear there, and UTF-8 validity is checked once per line. Folding that
// into the table keeps each scanner at one lookup per octet.

/// `ALPHA / DIGIT`, ASCII only.
const ALNUM: u16 = 1 << 0;
/// `Let-dig` + UTF-8.
const LET_DIG: u16 = 1 << 1;
/// `Let-dig / "-"` + UTF-8.
const LDH: u16 = 1 << 2;
/// `atext` of RFC 5322 section 3.2.3 + UTF-8.
const ATEXT: u16 = 1 << 3;
/// `qtextSMTP`: `%d32-33 / %d35-91 / %d93-126` + UTF-8.
const QTEXT: u16 = 1 << 4;
/// `xchar` of RFC 3461 section 4: `%d33-42 / %d44-60 / %d62-126`, ASCII only.
const XCHAR: u16 = 1 << 5;
/// `xchar` + UTF-8 (RFC 6533 allows it in ORCPT).
const XCHAR_UTF8: u16 = 1 << 6;
/// `esmtp-value` octets: `%d33-60 / %d62-126` + UTF-8.
const ESMTP_VALUE: u16 = 1 << 7;
/// `dcontent`: `%d33-90 / %d94-126`.
const DCONTENT: u16 = 1 << 8;
/// `textstring` of RFC 5321: `%d09 / %d32-126` + UTF-8.
const TEXT: u16 = 1 << 9;
/// `esmtp-keyword` octets after the first: `ALPHA / DIGIT / "-"`.
const KEYWORD: u16 = 1 << 10;

const fn build() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0usize;
    while i < 256 {
        #[allow(clippy::cast_possible_truncation)] // i < 256
        let b = i as u8;
        let mut c = 0u16;
        let alnum = b.is_ascii_alphanumeric();
        let utf8 = b >= 0x80;
        if alnum {
            c |= ALNUM | KEYWORD;
        }
        if b == b'-' {
            c |= KEYWORD;
        }
        if alnum || utf8 {
            c |= LET_DIG | LDH | ATEXT;
        }
        if b == b'-' {
            c |= LDH;
        }
        if matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'/'
                | b'='
                | b'?'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
        ) {
            c |= ATEXT;
        }
        if (b >= 32 && b <= 33) || (b >= 35 && b <= 91) || (b >= 93 && b <= 126) || utf8 {
            c |= QTEXT;
        }
        if (b >= 33 && b <= 42) || (b >= 44 && b <= 60) || (b >= 62 && b <= 126) {
            c |= XCHAR | XCHAR_UTF8;
        }
        if utf8 {
            c |= XCHAR_UTF8;
        }
        if (b >= 33 && b <= 60) || (b >= 62 && b <= 126) || utf8 {
            c |= ESMTP_VALUE;
        }
        if (b >= 33 && b <= 90) || (b >= 94 && b <= 126) {
            c |= DCONTENT;
        }
        if b == 9 || (b >= 32 && b <= 126) || utf8 {
            c |= TEXT;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CLASS: [u16; 256] = build();

#[inline]
fn is(b: u8, class: u16) -> bool {
    CLASS[b as usize] & class != 0
}

/// `Let-dig = ALPHA / DIGIT`, plus any non-ASCII octet (a U-label under RFC 6531).
#[inline]
pub(crate) fn is_let_dig(b: u8) -> bool {
    is(b, LET_DIG)
}

/// `ALPHA / DIGIT`, ASCII only.
#[inline]
pub(crate) fn is_alnum(b: u8) -> bool {
    is(b, ALNUM)
}

/// `atext`, plus UTF-8 octets (RFC 6531 `atext =/ UTF8-non-ascii`).
#[inline]
pub(crate) fn is_atext(b: u8) -> bool {
    is(b, ATEXT)
}

/// `qtextSMTP`, plus UTF-8 octets.
#[inline]
pub(crate) fn is_qtext(b: u8) -> bool {
    is(b, QTEXT)
}

/// `xchar` (RFC 3461), ASCII only.
#[inline]
pub(crate) fn is_xchar(b: u8) -> bool {
    is(b, XCHAR)
}

/// An `esmtp-value` octet, plus UTF-8 octets (RFC 6531 section 3.3).
#[inline]
pub(crate) fn is_esmtp_value(b: u8) -> bool {
    is(b, ESMTP_VALUE)
}

/// `dcontent` of a general address literal.
#[inline]
pub(crate) fn is_dcontent(b: u8) -> bool {
    is(b, DCONTENT)
}

/// A `textstring` octet, plus UTF-8 octets (RFC 6531 allows them in reply text).
#[inline]
pub(crate) fn is_text(b: u8) -> bool {
    is(b, TEXT)
}

/// Length of the longest prefix whose octets all satisfy `pred`.
#[inline]
pub(crate) fn span(input: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    input.iter().position(|&b| !pred(b)).unwrap_or(input.len())
}

/// Eight octets as one number, for the word-at-a-time scans.
pub(crate) const LO: u64 = 0x0101_0101_0101_0101;
pub(crate) const HI: u64 = 0x8080_8080_8080_8080;

/// Whether every octet of `b` is ASCII: the high bits of eight octets at a
/// time combined by OR, the last eight read overlapping the ones before.
/// `<[u8]>::is_ascii` checks what follows its 64-octet steps one octet at
/// a time, which was half of parsing a 100-octet RCPT line in perf.
#[inline]
pub(crate) fn is_ascii(b: &[u8]) -> bool {
    let word = |c: &[u8; 8]| u64::from_le_bytes(*c);
    let (words, rest) = b.as_chunks::<8>();
    let high = words.iter().fold(0, |h, w| h | word(w));
    let last = match b.last_chunk::<8>() {
        Some(w) if !rest.is_empty() => word(w),
        _ => rest.iter().fold(0, |h, &o| h | u64::from(o)),
    };
    (high | last) & HI == 0
}

/// A high bit in each octet of `w` equal to `b`, and possibly in octets
/// above the lowest such one: only the lowest set bit is exact.
#[inline(always)]
#[allow(clippy::inline_always)] // A few instructions in scanning loops.
pub(crate) fn octets_equal(w: u64, b: u8) -> u64 {
    let x = w ^ (LO * u64::from(b));
    x.wrapping_sub(LO) & !x & HI
}

/// A high bit in each octet of `w` below `n` (at most 128), and possibly in
/// octets above the lowest such one; octets of 0x80 and up never count.
#[inline(always)]
#[allow(clippy::inline_always)]
pub(crate) fn octets_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(LO * u64::from(n)) & !w & HI
}

/// `span(input, |b| is(b, XCHAR_UTF8))`, eight octets at a time: an xchar
/// is anything but the controls, SP, `+`, `=` and DEL (UTF-8 included).
pub(crate) fn span_xchar(input: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(chunk) = input.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*chunk);
        let stop = octets_below(w, 33)
            | octets_equal(w, b'=')
            | octets_equal(w, b'+')
            | octets_equal(w, 0x7f);
        if stop != 0 {
            return pos + (stop.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    pos + span(&input[pos..], |b| is(b, XCHAR_UTF8))
}

/// `span(input, is_esmtp_value)`, eight octets at a time: an esmtp-value
/// octet is anything but the controls, SP, `=` and DEL.
pub(crate) fn span_esmtp_value(input: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(chunk) = input.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*chunk);
        let stop = octets_below(w, 33) | octets_equal(w, b'=') | octets_equal(w, 0x7f);
        if stop != 0 {
            return pos + (stop.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    pos + span(&input[pos..], is_esmtp_value)
}

/// Checks `sub-domain *("." sub-domain)` where
/// `sub-domain = Let-dig [Ldh-str]` (RFC 5321 section 4.1.2), each label at most
/// 63 octets (RFC 1035 section 2.3.4). Returns the length of the longest valid
/// domain prefix, or `None` if the input does not start with one.
pub(crate) fn scan_domain(input: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let label = &input[pos..];
        if !label.first().is_some_and(|&b| is_let_dig(b)) {
            return None;
        }
        let len = span(label, |b| is(b, LDH));
        if len > 63 || label[len - 1] == b'-' {
            return None;
        }
        pos += len;
        if input.get(pos) == Some(&b'.') && input.get(pos + 1).is_some_and(|&b| is_let_dig(b)) {
            pos += 1;
        } else {
            return Some(pos);
        }
    }
}

/// Checks `Dot-string = Atom *("." Atom)`; returns the prefix length or `None`.
pub(crate) fn scan_dot_string(input: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let len = span(&input[pos..], is_atext);
        if len == 0 {
            return None;
        }
        pos += len;
        if input.get(pos) == Some(&b'.') && input.get(pos + 1).is_some_and(|&b| is_atext(b)) {
            pos += 1;
        } else {
            return Some(pos);
        }
    }
}

/// Checks `Quoted-string = DQUOTE *QcontentSMTP DQUOTE` with
/// `quoted-pairSMTP = %d92 %d32-126`; returns the length including both quotes.
pub(crate) fn scan_quoted_string(input: &[u8]) -> Option<usize> {
    if input.first() != Some(&b'"') {
        return None;
    }
    let mut pos = 1;
    loop {
        pos += span(&input[pos..], is_qtext);
        match input.get(pos)? {
            b'"' => return Some(pos + 1),
            b'\\' if input.get(pos + 1).is_some_and(|&b| (32..=126).contains(&b)) => pos += 2,
            _ => return None,
        }
    }
}

/// Checks an RFC 3461 `xtext`: `*( xchar / hexchar )`, `hexchar = "+" 2(%x30-39 / %x41-46)`.
/// Returns the prefix length.
pub(crate) fn scan_xtext(input: &[u8]) -> usize {
    let mut pos = 0;
    loop {
        pos += span_xchar(&input[pos..]);
        if input.get(pos) == Some(&b'+')
            && input.get(pos + 1).is_some_and(|&b| is_upper_hex(b))
            && input.get(pos + 2).is_some_and(|&b| is_upper_hex(b))
        {
            pos += 3;
        } else {
            return pos;
        }
    }
}

#[inline]
pub(crate) fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

/// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`; returns the length.
pub(crate) fn scan_keyword(input: &[u8]) -> usize {
    if !input.first().is_some_and(|&b| is_alnum(b)) {
        return 0;
    }
    span(input, |b| is(b, KEYWORD))
}

/// Decimal digits to `u64`, `None` on overflow, empty input or a non-digit.
pub(crate) fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

/// Converts validated octets to `&str`. The scanners above admit non-ASCII
/// octets only where RFC 6531 allows UTF-8, so this is where UTF-8 is checked.
#[inline]
pub(crate) fn utf8(input: &[u8]) -> Option<&str> {
    std::str::from_utf8(input).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The word-at-a-time ASCII check is `<[u8]>::is_ascii`, for any
        /// length and any place of a high octet.
        #[test]
        fn the_word_ascii_check_is_is_ascii(
            len in 0usize..200,
            high in proptest::option::of((0usize..200, 0x80u8..=0xff)),
        ) {
            let mut b = vec![b'a'; len];
            if let Some((at, o)) = high && at < len {
                b[at] = o;
            }
            proptest::prop_assert_eq!(is_ascii(&b), b.is_ascii());
        }
    }

    #[test]
    fn domains() {
        assert_eq!(scan_domain(b"example.com"), Some(11));
        assert_eq!(scan_domain(b"a-b.c>"), Some(5));
        assert_eq!(scan_domain(b"a."), Some(1));
        assert_eq!(scan_domain(b"-a"), None);
        assert_eq!(scan_domain(b"a-"), None);
        assert_eq!(scan_domain(&[b'a'; 64]), None);
        assert_eq!(scan_domain(&[b'a'; 63]), Some(63));
    }

    #[test]
    fn local_parts() {
        assert_eq!(scan_dot_string(b"john.doe@x"), Some(8));
        assert_eq!(scan_dot_string(b".x"), None);
        assert_eq!(scan_dot_string(b"x..y"), Some(1));
        assert_eq!(scan_quoted_string(br#""a b\"c"@"#), Some(8));
        assert_eq!(scan_quoted_string(br#""abc"#), None);
    }

    #[test]
    fn xtext() {
        assert_eq!(scan_xtext(b"a+2Bb c"), 5);
        assert_eq!(scan_xtext(b"a+2b"), 1);
        assert_eq!(scan_xtext(b"a=b"), 1);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1a"), None);
    }

    #[test]
    fn the_word_scan_agrees_with_the_table() {
        // Every octet value at every offset of a 20-octet run, and a
        // pseudo-random mix.
        for at in 0..20 {
            for b in 0..=255u8 {
                let mut v = vec![b'a'; 20];
                v[at] = b;
                assert_eq!(
                    span_esmtp_value(&v),
                    span(&v, is_esmtp_value),
                    "{b} at {at}"
                );
            }
        }
        let mut seed = 0x9e37_79b9_u32;
        for _ in 0..20_000 {
            let v: Vec<u8> = (0..(seed % 40))
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    // Mostly value octets, now and then a stop.
                    let [_, octet, ..] = seed.to_le_bytes();
                    if seed.is_multiple_of(7) {
                        octet
                    } else {
                        b'!' + octet % 90
                    }
                })
                .collect();
            assert_eq!(span_esmtp_value(&v), span(&v, is_esmtp_value), "{v:?}");
            assert_eq!(span_xchar(&v), span(&v, |b| is(b, XCHAR_UTF8)), "{v:?}");
        }
    }
}
