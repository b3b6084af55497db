//! The transpose of one (batch row, head) pair's keys or values for the training attention:
//! `rows` rows of `d` features (strided, where they lie in the activation) → `[d, stride]`
//! row-major, the columns past `rows` zero, so that the score tiles read contiguous keys.
//!
//! Every pair transposes its keys in the forward and its keys and values in the backward;
//! done element by element that was a gather of one value per load (≈ 0.8 % of a training
//! step, issue #12). With AVX2 the rows move as 8 × 8 blocks through registers: eight loads,
//! 24 shuffles, eight stores per 64 values.

use crate::attention_pair::{Strided, sized};

/// Rows per transposed block (and values per vector).
const BLOCK: usize = 8;

/// `src` (`rows` rows of `d`) → `dst` `[d, stride]`, columns `rows..stride` zero; `FMA`
/// (only inside the AVX2 + FMA wrappers) selects the register-block version.
#[inline(always)]
pub(crate) fn transpose_padded<const FMA: bool>(
    src: Strided,
    rows: usize,
    d: usize,
    stride: usize,
    dst: &mut Vec<f32>,
) {
    assert!(
        stride >= rows && (rows == 0 || src.data.len() >= (rows - 1) * src.stride + d),
        "transpose: {rows} rows of {d} (stride {}) from {} values into stride {stride}",
        src.stride,
        src.data.len()
    );
    sized(dst, d * stride);
    let whole = rows / BLOCK * BLOCK;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if FMA {
        done = d / BLOCK * BLOCK;
        // SAFETY: `FMA = true` is only used where the CPU has AVX2; the assertion bounds the
        // source rows, `sized` the destination (`d · stride`, `stride ≥ rows`).
        unsafe { avx2::blocks(src, whole, done, stride, dst.as_mut_ptr()) };
    }
    for r0 in (0..whole).step_by(BLOCK) {
        let block: [&[f32]; BLOCK] = std::array::from_fn(|r| src.row(r0 + r, d));
        for t in done..d {
            let out = &mut dst[t * stride + r0..t * stride + r0 + BLOCK];
            for (o, row) in out.iter_mut().zip(&block) {
                *o = row[t];
            }
        }
    }
    for r in whole..rows {
        for (t, &x) in src.row(r, d).iter().enumerate() {
            dst[t * stride + r] = x;
        }
    }
    for t in 0..d {
        dst[t * stride + rows..(t + 1) * stride].fill(0.0);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, Strided};

    /// Rows `0..rows` (a multiple of 8) and features `0..features` (a multiple of 8) of `src`
    /// into `dst` `[·, stride]`, as 8 × 8 blocks.
    ///
    /// # Safety
    /// AVX2; `src` holds `rows` rows of at least `features` values, `o` points to
    /// `features · stride` writable values with `stride ≥ rows`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn blocks(
        src: Strided,
        rows: usize,
        features: usize,
        stride: usize,
        o: *mut f32,
    ) {
        let s = src.data.as_ptr();
        for r0 in (0..rows).step_by(BLOCK) {
            for t0 in (0..features).step_by(BLOCK) {
                // SAFETY: rows r0..r0 + 8 < rows and features t0..t0 + 8 ≤ features of `src`;
                // `dst` rows t0..t0 + 8 (< features) at columns r0..r0 + 8 (≤ rows ≤ stride).
                unsafe {
                    let r: [__m256; BLOCK] =
                        std::array::from_fn(|i| _mm256_loadu_ps(s.add((r0 + i) * src.stride + t0)));
                    let t: [__m256; BLOCK] = std::array::from_fn(|i| {
                        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
                        if i % 2 == 0 {
                            _mm256_unpacklo_ps(a, b)
                        } else {
                            _mm256_unpackhi_ps(a, b)
                        }
                    });
                    // (t0, t2), (t1, t3) for rows 0–3; (t4, t6), (t5, t7) for rows 4–7: each
                    // result holds four rows of one feature (low lane) and of feature + 4.
                    let q = |lo: __m256, hi: __m256, upper: bool| {
                        if upper {
                            _mm256_shuffle_ps::<0xEE>(lo, hi)
                        } else {
                            _mm256_shuffle_ps::<0x44>(lo, hi)
                        }
                    };
                    let top = [
                        q(t[0], t[2], false),
                        q(t[0], t[2], true),
                        q(t[1], t[3], false),
                        q(t[1], t[3], true),
                    ];
                    let bottom = [
                        q(t[4], t[6], false),
                        q(t[4], t[6], true),
                        q(t[5], t[7], false),
                        q(t[5], t[7], true),
                    ];
                    for j in 0..4 {
                        let low = _mm256_permute2f128_ps::<0x20>(top[j], bottom[j]);
                        let high = _mm256_permute2f128_ps::<0x31>(top[j], bottom[j]);
                        _mm256_storeu_ps(o.add((t0 + j) * stride + r0), low);
                        _mm256_storeu_ps(o.add((t0 + j + 4) * stride + r0), high);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(src: &[f32], src_stride: usize, rows: usize, d: usize, stride: usize) -> Vec<f32> {
        let mut out = vec![0.0; d * stride];
        for r in 0..rows {
            for t in 0..d {
                out[t * stride + r] = src[r * src_stride + t];
            }
        }
        out
    }

    #[test]
    fn transposes_match_the_definition_for_every_shape() {
        for (rows, d, extra) in [
            (0usize, 8usize, 0usize),
            (5, 3, 2),
            (8, 8, 0),
            (17, 32, 5),
            (258, 32, 64),
            (24, 40, 1),
            (16, 11, 3),
        ] {
            let src_stride = d + extra;
            let src: Vec<f32> = (0..rows * src_stride)
                .map(|i| i as f32 * 0.5 - 3.0)
                .collect();
            let stride = rows.div_ceil(8) * 8 + 8;
            let want = reference(&src, src_stride, rows, d, stride);
            let strided = Strided {
                data: &src,
                stride: src_stride,
            };
            for fma in [false, true] {
                if fma && crate::Isa::active() < crate::Isa::Avx2Fma {
                    continue;
                }
                // A reused buffer with stale values: every value must be rewritten.
                let mut dst = vec![7.0; d * stride];
                if fma {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn run(
                        s: Strided,
                        rows: usize,
                        d: usize,
                        stride: usize,
                        dst: &mut Vec<f32>,
                    ) {
                        transpose_padded::<true>(s, rows, d, stride, dst)
                    }
                    // SAFETY: the active level has AVX2 and FMA.
                    unsafe { run(strided, rows, d, stride, &mut dst) };
                } else {
                    transpose_padded::<false>(strided, rows, d, stride, &mut dst);
                }
                assert_eq!(
                    dst, want,
                    "rows {rows}, d {d}, stride {src_stride}, fma {fma}"
                );
            }
        }
    }
}
