//! The block kernels of the DATA decoder's fast path: which blocks are free
//! of bare line endings, and where their dotted lines are.

/// Octets checked at a time on the fast path.
pub(super) const BLOCK: usize = 256;
/// Octets of a chunk of a block: one vector of AVX2.
pub(super) const CHUNK: usize = 32;
/// Chunks in a block.
pub(super) const CHUNKS: usize = BLOCK / CHUNK;

/// Classifies the `BLOCK` octets after `w[0]`, which is the octet before them:
/// whether they are free of bare CR and bare LF, whether they hold an LF, and
/// whether they hold an LF followed by a dot.
///
/// Every adjacent pair `(a, b)` is checked at once: `a == CR` must equal
/// `b == LF`, otherwise a CR lacks its LF or an LF its CR. The fold has no
/// branches and only lane-wise compares and ORs, so the compiler vectorizes it
/// without `unsafe`.
#[allow(clippy::inline_always)] // Part of the AVX2-compiled loop.
#[inline(always)]
pub(super) fn scan_block(w: &[u8; BLOCK + 1]) -> (bool, bool, bool) {
    let (bad, lf, dot) =
        w[..BLOCK]
            .iter()
            .zip(&w[1..])
            .fold((0u8, 0u8, 0u8), |(bad, lf, dot), (&a, &b)| {
                let is_lf = u8::from(b == b'\n');
                let dot_line = u8::from(a == b'\n') & u8::from(b == b'.');
                (
                    bad | (u8::from(a == b'\r') ^ is_lf),
                    lf | is_lf,
                    dot | dot_line,
                )
            });
    (bad == 0, lf != 0, dot != 0)
}

/// Bit k set where `w[k]` is LF and `w[k + 1]` is `.`: the lines that start
/// with a dot among the 32 octets after `w[0]`. The portable form, and the
/// reference for [`dot_mask_avx2`].
pub(super) fn dot_mask(w: &[u8; CHUNK + 1]) -> u32 {
    let mut m = 0u32;
    for (k, pair) in w.windows(2).enumerate() {
        m |= u32::from(pair[0] == b'\n' && pair[1] == b'.') << k;
    }
    m
}

/// [`dot_mask`] with two AVX2 loads, two compares and one move-mask. Only
/// blocks that hold a dotted line are looked at this way, in place of the
/// substring search used before (a search call per dot was most of the
/// dotted benchmark).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)] // Bit patterns.
#[allow(clippy::cast_ptr_alignment)] // `loadu` takes unaligned pointers.
pub(super) fn dot_mask_avx2(w: &[u8; CHUNK + 1]) -> u32 {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_set1_epi8,
    };
    // SAFETY: `w` is 33 readable octets, so 32 from `w[0]` and 32 from
    // `w[1]` are in bounds; unaligned loads need no alignment, and the caller
    // runs only where AVX2 is detected. A proptest below checks the result
    // against `dot_mask`.
    #[allow(unsafe_code)]
    let (a, b) = unsafe {
        (
            _mm256_loadu_si256(w.as_ptr().cast::<__m256i>()),
            _mm256_loadu_si256(w.as_ptr().add(1).cast::<__m256i>()),
        )
    };
    let lf = _mm256_cmpeq_epi8(a, _mm256_set1_epi8(b'\n' as i8));
    let dot = _mm256_cmpeq_epi8(b, _mm256_set1_epi8(b'.' as i8));
    _mm256_movemask_epi8(_mm256_and_si256(lf, dot)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The AVX2 dot finder agrees with the portable one on any 33
        /// octets, most of them LF and `.`.
        #[test]
        fn the_avx2_dot_mask_is_the_portable_one(w in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just(b'\n'),
                proptest::strategy::Just(b'.'),
                proptest::strategy::Just(b'\r'),
                proptest::prelude::any::<u8>(),
            ],
            CHUNK + 1,
        )) {
            let Some(w) = w.first_chunk::<{ CHUNK + 1 }>() else {
                return Err(proptest::test_runner::TestCaseError::fail("length"));
            };
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is detected just above.
                #[allow(unsafe_code)]
                let fast = unsafe { dot_mask_avx2(w) };
                proptest::prop_assert_eq!(fast, dot_mask(w));
            }
            let expected = (0..CHUNK).fold(0u32, |m, k| {
                m | (u32::from(w[k] == b'\n' && w[k + 1] == b'.') << k)
            });
            proptest::prop_assert_eq!(dot_mask(w), expected);
        }
    }
}
