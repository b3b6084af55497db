//! Attention of one query over cached keys and values (a KV-cached decode step).

use crate::exp::exp;
use crate::isa::with_simd;
use crate::reduce::sum_lanes;

/// `Σ a[i]·b[i]` with eight partial sums, so the loop vectorises (the order of the additions
/// differs from a plain left-to-right sum only by rounding).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `out = softmax(scale · q·Kᵀ) · V` over the first `visible` rows of `keys` and `values`
/// (each `[capacity, d]`, row-major); `q` and `out` hold `d` values. `scores` is scratch
/// space (resized as needed) so a caller can reuse one buffer per thread.
pub fn attend_one(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    visible: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let d = q.len();
    debug_assert!(keys.len() >= visible * d && values.len() >= visible * d && out.len() == d);
    // Compiled for AVX2 + FMA where the CPU has them: the dot products, the exponentials
    // (the vectorisable `exp`, not libm's) and the weighted sum all run 8 floats wide.
    with_simd(
        #[inline(always)]
        || {
            scores.clear();
            scores.extend(
                keys[..visible * d]
                    .chunks_exact(d)
                    .map(|k| dot(q, k) * scale),
            );
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for s in scores.iter_mut() {
                *s = exp(*s - max);
            }
            let inv = 1.0 / sum_lanes(scores);
            out.fill(0.0);
            for (&p, v) in scores.iter().zip(values[..visible * d].chunks_exact(d)) {
                let w = p * inv;
                out.iter_mut().zip(v).for_each(|(o, &v)| *o += w * v);
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_softmax_attention_in_f64() {
        let (d, cap, visible) = (11, 9, 6);
        let f = |i: usize, s: f32| ((i as f32 * s).sin() * 2.0).to_owned();
        let q: Vec<f32> = (0..d).map(|i| f(i, 0.7)).collect();
        let k: Vec<f32> = (0..cap * d).map(|i| f(i, 1.3)).collect();
        let v: Vec<f32> = (0..cap * d).map(|i| f(i, 0.45)).collect();
        let scale = 1.0 / (d as f32).sqrt();
        let mut out = vec![0f32; d];
        let mut scratch = Vec::new();
        attend_one(&q, &k, &v, visible, scale, &mut out, &mut scratch);

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
        for i in 0..d {
            let want: f64 = (0..visible).map(|t| e[t] / z * v[t * d + i] as f64).sum();
            assert!(
                (out[i] as f64 - want).abs() < 1e-5,
                "{i}: {} vs {want}",
                out[i]
            );
        }
        assert!(
            (dot(&q, &q) as f64 - q.iter().map(|x| (*x as f64).powi(2)).sum::<f64>()).abs() < 1e-4
        );
    }
}
