//! LayerNorm over the last dimension of row-major rows, and the adaLN modulation.

use rayon::prelude::*;

use crate::isa::with_simd;
use crate::reduce::mean_and_inverse_deviation;

/// Rows below which the row kernels stay on the calling thread.
const PARALLEL_MIN_VALUES: usize = 1 << 16;

/// `x[r] ← (x[r] − mean) / √(var + eps) · gamma + beta` for every row of width `dim`
/// (biased variance, as `torch.nn.LayerNorm` and burn compute it). `gamma`/`beta` of `None`
/// mean 1 and 0 (the affine-free final norm of RAR).
pub fn layer_norm_rows(
    x: &mut [f32],
    dim: usize,
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
) {
    let norm = |row: &mut [f32]| {
        // Eight lanes folded pairwise: a decode step normalises rows of one head (32 values)
        // for the query/key norms, where one sequential sum per statistic was its latency.
        let (mean, inv) = mean_and_inverse_deviation(row, eps);
        match (gamma, beta) {
            (Some(g), Some(b)) => row
                .iter_mut()
                .zip(g)
                .zip(b)
                .for_each(|((v, &g), &b)| *v = (*v - mean) * inv * g + b),
            (Some(g), None) => row
                .iter_mut()
                .zip(g)
                .for_each(|(v, &g)| *v = (*v - mean) * inv * g),
            (None, Some(b)) => row
                .iter_mut()
                .zip(b)
                .for_each(|(v, &b)| *v = (*v - mean) * inv + b),
            (None, None) => row.iter_mut().for_each(|v| *v = (*v - mean) * inv),
        }
    };
    // Compiled for the CPU's vector width (see `with_simd`), the rows of each task at a time.
    let rows = |x: &mut [f32]| {
        with_simd(
            #[inline(always)]
            || x.chunks_mut(dim).for_each(norm),
        )
    };
    if x.len() >= PARALLEL_MIN_VALUES {
        x.par_chunks_mut(dim * (PARALLEL_MIN_VALUES / 4 / dim).max(1))
            .for_each(rows);
    } else {
        rows(x);
    }
}

/// `x ← x ⊙ (1 + scale) + shift` (adaLN modulation, paper §3.2 / DiT); all three `[rows, dim]`.
pub fn modulate(x: &mut [f32], shift: &[f32], scale: &[f32]) {
    with_simd(
        #[inline(always)]
        || {
            x.iter_mut()
                .zip(shift)
                .zip(scale)
                .for_each(|((v, &sh), &sc)| *v = *v * (1.0 + sc) + sh)
        },
    )
}

/// `x ← x + gate ⊙ y` (the gated residual of an adaLN block).
pub fn gated_add(x: &mut [f32], gate: &[f32], y: &[f32]) {
    with_simd(
        #[inline(always)]
        || {
            x.iter_mut()
                .zip(gate)
                .zip(y)
                .for_each(|((v, &g), &y)| *v += g * y)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_matches_the_definition_in_f64() {
        let dim = 5;
        let x: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let g = [0.5f32, 1.0, 1.5, -1.0, 2.0];
        let b = [0.1f32, 0.0, -0.2, 0.3, 0.0];
        let mut y = x.clone();
        layer_norm_rows(&mut y, dim, Some(&g), Some(&b), 1e-6);
        for r in 0..3 {
            let row: Vec<f64> = x[r * dim..(r + 1) * dim]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let mean = row.iter().sum::<f64>() / dim as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / dim as f64;
            for c in 0..dim {
                let want = (row[c] - mean) / (var + 1e-6).sqrt() * g[c] as f64 + b[c] as f64;
                assert!(
                    (y[r * dim + c] as f64 - want).abs() < 1e-5,
                    "row {r} col {c}"
                );
            }
        }
        let mut plain = x.clone();
        layer_norm_rows(&mut plain, dim, None, None, 1e-6);
        let mean: f32 = plain[..dim].iter().sum::<f32>() / dim as f32;
        assert!(mean.abs() < 1e-6);
    }

    #[test]
    fn modulation_and_gated_residual() {
        let mut x = vec![1.0f32, 2.0];
        modulate(&mut x, &[0.5, -1.0], &[1.0, 0.5]);
        assert_eq!(x, vec![2.5, 2.0]);
        gated_add(&mut x, &[2.0, 0.0], &[1.0, 9.0]);
        assert_eq!(x, vec![4.5, 2.0]);
    }
}
