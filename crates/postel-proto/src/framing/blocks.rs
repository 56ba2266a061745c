//! The block kernels of the DATA decoder's fast path: which blocks are free
//! of bare line endings, and where their dotted lines are.
//!
//! Most blocks of a body are plain: every LF has its CR and no line starts
//! with a dot. [`plain`] tells those apart with lane-wise compares of the
//! block against itself one octet later, accumulated and tested once per
//! block. The others are looked at again by [`detail`], which keeps the
//! same compares per chunk as bit masks: whether a bare line ending is
//! there, and where the dotted lines start.

/// Octets checked at a time on the fast path.
pub(super) const BLOCK: usize = 256;
/// Octets compared into one mask: one vector of AVX2.
pub(super) const CHUNK: usize = 32;
/// Chunks in a block.
pub(super) const CHUNKS: usize = BLOCK / CHUNK;

/// Where the dots after an LF are in a block: per chunk, bit k where the
/// chunk's octet k is one.
pub(super) type Dots = [u32; CHUNKS];

/// What a close look at a block free of bare line endings finds, beside
/// its [`Dots`]. Small, so that it comes back in registers: the dots come
/// back through memory the callee writes a word at a time, and read back
/// the same way (a vector load of them would wait for the words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Detail {
    /// Whether a line of the block starts with a dot.
    pub(super) dotted: bool,
    /// Whether the block holds an LF.
    pub(super) lf: bool,
}

/// A close look at the `BLOCK` octets after `w[0]`, which is the octet
/// before them: `None` when they hold a bare CR or bare LF (or the first is
/// not the LF a CR in `w[0]` needs), else where the dots after an LF are
/// (written to `dots`) and whether there is an LF. A CR in the last octet
/// is left for what follows. The portable form, and the reference for
/// [`detail_avx2`].
pub(super) fn detail(w: &[u8; BLOCK + 1], dots: &mut Dots) -> Option<Detail> {
    *dots = [0; CHUNKS];
    let mut lf = false;
    for (k, pair) in w.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        if (a == b'\r') != (b == b'\n') {
            return None;
        }
        if a == b'\n' && b == b'.' {
            dots[k / CHUNK] |= 1 << (k % CHUNK);
        }
        lf |= b == b'\n';
    }
    Some(Detail {
        dotted: dots.iter().any(|&d| d != 0),
        lf,
    })
}

/// [`detail`] with AVX2: the compares of [`plain_avx2`], moved into masks.
/// Kept out of line: inlined, the compiler shares its compares with the
/// quick look's, keeping them on the stack for every block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
#[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)] // Bit patterns.
#[allow(clippy::cast_ptr_alignment)] // `loadu` takes unaligned pointers.
pub(super) fn detail_avx2(w: &[u8; BLOCK + 1], dots: &mut Dots) -> Option<Detail> {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256, _mm256_testz_si256,
        _mm256_xor_si256,
    };
    let (cr, lf, dot) = (
        _mm256_set1_epi8(b'\r' as i8),
        _mm256_set1_epi8(b'\n' as i8),
        _mm256_set1_epi8(b'.' as i8),
    );
    let mut bad = 0u32;
    let mut any = 0u32;
    let mut lfs = _mm256_setzero_si256();
    for (k, d) in dots.iter_mut().enumerate() {
        // SAFETY: as in `plain_avx2`: both 32-octet loads end within the
        // `BLOCK + 1` octets of `w`, unaligned loads need no alignment, and
        // the caller runs only where AVX2 is detected. A proptest below
        // checks the result against `detail`.
        #[allow(unsafe_code)]
        let (before, v) = unsafe {
            (
                _mm256_loadu_si256(w.as_ptr().add(CHUNK * k).cast::<__m256i>()),
                _mm256_loadu_si256(w.as_ptr().add(CHUNK * k + 1).cast::<__m256i>()),
            )
        };
        let is_lf = _mm256_cmpeq_epi8(v, lf);
        let odd = _mm256_xor_si256(_mm256_cmpeq_epi8(before, cr), is_lf);
        let dotted = _mm256_and_si256(_mm256_cmpeq_epi8(before, lf), _mm256_cmpeq_epi8(v, dot));
        bad |= _mm256_movemask_epi8(odd) as u32;
        *d = _mm256_movemask_epi8(dotted) as u32;
        any |= *d;
        lfs = _mm256_or_si256(lfs, is_lf);
    }
    (bad == 0).then_some(Detail {
        dotted: any != 0,
        lf: _mm256_testz_si256(lfs, lfs) == 0,
    })
}

/// A quick look at the `BLOCK` octets after `w[0]`, which is the octet
/// before them: whether they are plain, free of bare CR and bare LF and of
/// LF followed by `.`. The portable form, and the reference for
/// [`plain_avx2`].
///
/// Every adjacent pair `(a, b)` is checked at once: `a == CR` must equal
/// `b == LF`, and `a == LF` excludes `b == '.'`. The fold has no branches and
/// only lane-wise compares and ORs, so the compiler vectorizes it.
#[allow(clippy::inline_always)] // Part of the loop it serves.
#[inline(always)]
pub(super) fn plain(w: &[u8; BLOCK + 1]) -> bool {
    let odd = w[..BLOCK].iter().zip(&w[1..]).fold(0u8, |odd, (&a, &b)| {
        let bad = u8::from(a == b'\r') ^ u8::from(b == b'\n');
        let dotted = u8::from(a == b'\n') & u8::from(b == b'.');
        odd | bad | dotted
    });
    odd == 0
}

/// [`plain`] with AVX2: per 32 octets, two loads (the octets, and the ones
/// before them), four compares and three logic operations into an
/// accumulator tested once per block. Measured here against one compare
/// set per octet with the neighbour taken from masks (AVX-512 or AVX2
/// move-masks) or from a lane shuffle, this was the fastest: about the
/// speed of a plain copy.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::cast_possible_wrap)] // Bit patterns.
#[allow(clippy::cast_ptr_alignment)] // `loadu` takes unaligned pointers.
pub(super) fn plain_avx2(w: &[u8; BLOCK + 1]) -> bool {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_or_si256,
        _mm256_set1_epi8, _mm256_setzero_si256, _mm256_testz_si256, _mm256_xor_si256,
    };
    let (cr, lf, dot) = (
        _mm256_set1_epi8(b'\r' as i8),
        _mm256_set1_epi8(b'\n' as i8),
        _mm256_set1_epi8(b'.' as i8),
    );
    let mut odd = _mm256_setzero_si256();
    for k in 0..CHUNKS {
        // SAFETY: `w` is `BLOCK + 1` readable octets and `CHUNK * k + 33` is
        // at most that, so both 32-octet loads are in bounds; unaligned loads
        // need no alignment, and the caller runs only where AVX2 is
        // detected. A proptest below checks the result against `plain`.
        #[allow(unsafe_code)]
        let (before, v) = unsafe {
            (
                _mm256_loadu_si256(w.as_ptr().add(CHUNK * k).cast::<__m256i>()),
                _mm256_loadu_si256(w.as_ptr().add(CHUNK * k + 1).cast::<__m256i>()),
            )
        };
        let bad = _mm256_xor_si256(_mm256_cmpeq_epi8(before, cr), _mm256_cmpeq_epi8(v, lf));
        let dotted = _mm256_and_si256(_mm256_cmpeq_epi8(before, lf), _mm256_cmpeq_epi8(v, dot));
        odd = _mm256_or_si256(odd, _mm256_or_si256(bad, dotted));
    }
    _mm256_testz_si256(odd, odd) == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The quick and the close look find what the octet rule finds on
        /// every pair of neighbours, the octet before the block included: a
        /// CR that lacks its LF or an LF its CR, and an LF followed by a
        /// dot; the AVX2 forms agree with the portable ones. The blocks are
        /// made of CRLF, dots and text, with now and then a bare CR or LF,
        /// so both outcomes are common.
        #[test]
        fn a_block_look_is_the_octet_rule(pieces in proptest::collection::vec(
            proptest::prop_oneof![
                200 => proptest::strategy::Just(&b"\r\n"[..]),
                100 => proptest::strategy::Just(&b"."[..]),
                200 => proptest::strategy::Just(&b"text"[..]),
                1 => proptest::strategy::Just(&b"\r"[..]),
                1 => proptest::strategy::Just(&b"\n"[..]),
            ],
            0..200,
        )) {
            let mut w: Vec<u8> = pieces.concat();
            w.resize(BLOCK + 1, b'x');
            let Some(window) = w.first_chunk::<{ BLOCK + 1 }>() else {
                return Err(proptest::test_runner::TestCaseError::fail("length"));
            };
            let bad = w.windows(2).any(|p| (p[0] == b'\r') != (p[1] == b'\n'));
            let dotted = w.windows(2).any(|p| p[0] == b'\n' && p[1] == b'.');
            let quick = plain(window);
            proptest::prop_assert_eq!(quick, !bad && !dotted);
            let mut dots = [0; CHUNKS];
            let close = detail(window, &mut dots);
            proptest::prop_assert_eq!(close.is_none(), bad);
            if let Some(found) = close {
                for k in 0..BLOCK {
                    let at = w[k] == b'\n' && w[k + 1] == b'.';
                    proptest::prop_assert_eq!(dots[k / CHUNK] >> (k % CHUNK) & 1 == 1, at);
                }
                proptest::prop_assert_eq!(found.lf, w[1..].contains(&b'\n'));
                proptest::prop_assert_eq!(found.dotted, dotted);
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                let mut fast_dots = [u32::MAX; CHUNKS];
                // SAFETY: AVX2 is detected just above.
                #[allow(unsafe_code)]
                let (fast_quick, fast_close) =
                    unsafe { (plain_avx2(window), detail_avx2(window, &mut fast_dots)) };
                proptest::prop_assert_eq!(fast_quick, quick);
                proptest::prop_assert_eq!(fast_close, close);
                if close.is_some() {
                    proptest::prop_assert_eq!(fast_dots, dots);
                }
            }
        }
    }
}
