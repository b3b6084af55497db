//! Attention of one query over cached keys and values (a KV-cached decode step).

use crate::exp::exp;
use crate::isa::{Isa, with_simd};
use crate::reduce::sum_lanes;

/// One head's cached keys and values, as a decode cache holds them.
///
/// The keys are stored **transposed**, `[d, stride]` (key `t`'s component `i` at
/// `i·stride + t`): the scores `q·k_t` of a block of positions are then one multiply-add of
/// a broadcast `q_i` with contiguous key components per `i`, accumulated in registers — a
/// row-major `[t, d]` key needs a horizontal sum per position, which cost more than the
/// products at the head widths of RAR (d = 32…88). The values stay `[t, d]` (row `t` at
/// `t·d`): the output is a sum of value rows.
#[derive(Debug, Clone, Copy)]
pub struct CachedHead<'a> {
    /// Transposed keys, `d` rows of `stride` values; the first `visible` of each row are read.
    pub keys_t: &'a [f32],
    /// Row stride of `keys_t` (the cache's capacity in positions).
    pub stride: usize,
    /// Values, `[visible, d]` row-major (at least `visible·d` values).
    pub values: &'a [f32],
    /// How many cached positions the query attends to.
    pub visible: usize,
}

/// Positions whose scores one register block accumulates (8 AVX2 registers).
const SCORE_BLOCK: usize = 64;
/// Output components one register block accumulates (2 AVX2 registers per position chain).
const OUT_BLOCK: usize = 16;

/// `out = softmax(scale · q·Kᵀ) · V` over the first `head.visible` positions of `head`; `q`
/// and `out` hold `d` values. `scores` is scratch space (resized as needed) so a caller can
/// reuse one buffer per thread.
pub fn attend_one(
    q: &[f32],
    head: CachedHead<'_>,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let (d, visible, stride) = (q.len(), head.visible, head.stride);
    assert!(
        visible <= stride
            && out.len() == d
            && (d == 0 || head.keys_t.len() >= (d - 1) * stride + visible)
            && head.values.len() >= visible * d,
        "attend_one: buffers shorter than the sizes"
    );
    let fma = Isa::active() >= Isa::Avx2Fma;
    // Compiled for AVX2 + FMA where the CPU has them: the register blocks are intrinsics
    // there (the compiler neither fuses `a·b + c` nor keeps a block of plain arrays in
    // registers), the rest is vectorised loops and the vectorisable `exp`, not libm's.
    with_simd(
        #[inline(always)]
        || {
            scores.clear();
            scores.resize(visible, 0.0);
            let blocks = visible / SCORE_BLOCK;
            for b in 0..blocks {
                let t0 = b * SCORE_BLOCK;
                let block = &mut scores[t0..t0 + SCORE_BLOCK];
                #[cfg(target_arch = "x86_64")]
                if fma {
                    // SAFETY: `fma` means the CPU has AVX2 and FMA; the assertion above bounds
                    // the reads (`t0 + SCORE_BLOCK ≤ visible`).
                    unsafe { avx2::score_block(q, head.keys_t, stride, t0, block) };
                    continue;
                }
                portable_score_block(q, head.keys_t, stride, t0, block);
            }
            let t0 = blocks * SCORE_BLOCK;
            for (i, &qi) in q.iter().enumerate() {
                let keys = &head.keys_t[i * stride + t0..i * stride + visible];
                scores[t0..]
                    .iter_mut()
                    .zip(keys)
                    .for_each(|(s, &k)| *s += qi * k);
            }
            let max = scores
                .iter()
                .map(|&s| s * scale)
                .fold(f32::NEG_INFINITY, f32::max);
            for s in scores.iter_mut() {
                *s = exp(*s * scale - max);
            }
            let inv = 1.0 / sum_lanes(scores);
            let values = &head.values[..visible * d];
            let mut c0 = 0;
            while c0 + OUT_BLOCK <= d {
                let o = &mut out[c0..c0 + OUT_BLOCK];
                c0 += OUT_BLOCK;
                #[cfg(target_arch = "x86_64")]
                if fma {
                    // SAFETY: as above; `c0 ≤ d` after the block.
                    unsafe { avx2::out_block(scores, values, d, c0 - OUT_BLOCK, inv, o) };
                    continue;
                }
                portable_out_block(scores, values, d, c0 - OUT_BLOCK, inv, o);
            }
            if c0 < d {
                let o = &mut out[c0..];
                o.fill(0.0);
                for (&p, v) in scores.iter().zip(values.chunks_exact(d)) {
                    let w = p * inv;
                    o.iter_mut().zip(&v[c0..]).for_each(|(o, &v)| *o += w * v);
                }
            }
        },
    )
}

/// `block[j] = Σ_i q_i · keys_t[i·stride + t0 + j]` for `SCORE_BLOCK` positions.
#[inline(always)]
fn portable_score_block(q: &[f32], keys_t: &[f32], stride: usize, t0: usize, block: &mut [f32]) {
    block.fill(0.0);
    for (i, &qi) in q.iter().enumerate() {
        let keys = &keys_t[i * stride + t0..i * stride + t0 + SCORE_BLOCK];
        block.iter_mut().zip(keys).for_each(|(b, &k)| *b += qi * k);
    }
}

/// `out[j] = inv · Σ_t p_t · values[t·d + c0 + j]` for `OUT_BLOCK` components.
#[inline(always)]
fn portable_out_block(p: &[f32], values: &[f32], d: usize, c0: usize, inv: f32, out: &mut [f32]) {
    out.fill(0.0);
    for (t, &w) in p.iter().enumerate() {
        let v = &values[t * d + c0..t * d + c0 + OUT_BLOCK];
        out.iter_mut().zip(v).for_each(|(o, &v)| *o += w * v);
    }
    out.iter_mut().for_each(|o| *o *= inv);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{OUT_BLOCK, SCORE_BLOCK};

    /// As `portable_score_block`: eight accumulators of 8 positions, one broadcast of `q_i`
    /// and eight loads per `i`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `keys_t` holds `(d − 1)·stride + t0 + SCORE_BLOCK`
    /// values and `block` `SCORE_BLOCK`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn score_block(
        q: &[f32],
        keys_t: &[f32],
        stride: usize,
        t0: usize,
        block: &mut [f32],
    ) {
        debug_assert!(block.len() == SCORE_BLOCK);
        debug_assert!(q.is_empty() || keys_t.len() >= (q.len() - 1) * stride + t0 + SCORE_BLOCK);
        let mut acc = [_mm256_setzero_ps(); SCORE_BLOCK / 8];
        for (i, &qi) in q.iter().enumerate() {
            let qv = _mm256_set1_ps(qi);
            // SAFETY: the keys of row `i` at `t0 … t0 + SCORE_BLOCK` are inside `keys_t`.
            let row = unsafe { keys_t.as_ptr().add(i * stride + t0) };
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: j·8 + 8 ≤ SCORE_BLOCK.
                *a = _mm256_fmadd_ps(qv, unsafe { _mm256_loadu_ps(row.add(j * 8)) }, *a);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            // SAFETY: `block` holds SCORE_BLOCK values.
            unsafe { _mm256_storeu_ps(block.as_mut_ptr().add(j * 8), *a) };
        }
    }

    /// As `portable_out_block`: four positions per iteration into four pairs of
    /// accumulators (independent chains of multiply-adds).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `values` holds `p.len()·d` values, `c0 + OUT_BLOCK
    /// ≤ d` and `out` holds `OUT_BLOCK`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn out_block(
        p: &[f32],
        values: &[f32],
        d: usize,
        c0: usize,
        inv: f32,
        out: &mut [f32],
    ) {
        debug_assert!(values.len() >= p.len() * d && c0 + OUT_BLOCK <= d);
        debug_assert!(out.len() == OUT_BLOCK);
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        let base = values.as_ptr();
        let quads = p.len() / 4;
        for t4 in 0..quads {
            for (u, a) in acc.iter_mut().enumerate() {
                let t = t4 * 4 + u;
                let w = _mm256_set1_ps(p[t]);
                // SAFETY: row `t < p.len()` of `values`, components `c0 … c0 + 16 ≤ d`.
                unsafe {
                    let v = base.add(t * d + c0);
                    a[0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v), a[0]);
                    a[1] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v.add(8)), a[1]);
                }
            }
        }
        for (t, &pt) in p.iter().enumerate().skip(quads * 4) {
            let w = _mm256_set1_ps(pt);
            // SAFETY: as above.
            unsafe {
                let v = base.add(t * d + c0);
                acc[0][0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v), acc[0][0]);
                acc[0][1] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v.add(8)), acc[0][1]);
            }
        }
        let scale = _mm256_set1_ps(inv);
        for (half, dst) in out.chunks_exact_mut(8).enumerate() {
            let sum = _mm256_add_ps(
                _mm256_add_ps(acc[0][half], acc[1][half]),
                _mm256_add_ps(acc[2][half], acc[3][half]),
            );
            // SAFETY: `dst` holds 8 values.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), _mm256_mul_ps(sum, scale)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `softmax(scale·q·Kᵀ)·V` in f64 from row-major keys `[visible, d]`.
    fn reference(q: &[f32], k: &[f32], v: &[f32], visible: usize, scale: f32) -> Vec<f64> {
        let d = q.len();
        let s: Vec<f64> = (0..visible)
            .map(|t| {
                (0..d)
                    .map(|i| q[i] as f64 * k[t * d + i] as f64)
                    .sum::<f64>()
                    * scale as f64
            })
            .collect();
        let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        (0..d)
            .map(|i| (0..visible).map(|t| e[t] / z * v[t * d + i] as f64).sum())
            .collect()
    }

    #[test]
    fn matches_softmax_attention_in_f64() {
        // Head widths below, at and between the output blocks; visible counts below, at and
        // across the score blocks; the capacity leaves unread positions (filled with NaN).
        for &(d, cap, visible) in &[
            (11, 9, 6),
            (32, 64, 64),
            (48, 200, 129),
            (70, 258, 257),
            (64, 70, 1),
        ] {
            let f = |i: usize, s: f32| (i as f32 * s).sin() * 2.0;
            let q: Vec<f32> = (0..d).map(|i| f(i, 0.7)).collect();
            let k: Vec<f32> = (0..visible * d).map(|i| f(i, 1.3)).collect();
            let v: Vec<f32> = (0..cap * d)
                .map(|i| {
                    if i < visible * d {
                        f(i, 0.45)
                    } else {
                        f32::NAN
                    }
                })
                .collect();
            let mut keys_t = vec![f32::NAN; d * cap];
            for t in 0..visible {
                for i in 0..d {
                    keys_t[i * cap + t] = k[t * d + i];
                }
            }
            let scale = 1.0 / (d as f32).sqrt();
            let mut out = vec![f32::NAN; d];
            let mut scratch = Vec::new();
            let head = CachedHead {
                keys_t: &keys_t,
                stride: cap,
                values: &v,
                visible,
            };
            attend_one(&q, head, scale, &mut out, &mut scratch);
            let want = reference(&q, &k, &v, visible, scale);
            let num: f64 = out
                .iter()
                .zip(&want)
                .map(|(&a, b)| (a as f64 - b).powi(2))
                .sum();
            let den: f64 = want.iter().map(|b| b * b).sum();
            let rel = (num / den).sqrt();
            assert!(rel < 1e-5, "d {d}, visible {visible}: rel err {rel}");
        }
    }
}
