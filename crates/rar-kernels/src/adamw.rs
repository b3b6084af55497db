//! The AdamW update of one parameter tensor in one pass (Loshchilov & Hutter, "Decoupled
//! Weight Decay Regularization", Algorithm 2), and the squared L2 norm the global-norm
//! clipping needs.
//!
//! burn's `AdamW` writes the same update as ten tensor operations — each a full pass through
//! memory with a fresh output, on one thread — which is most of an optimizer step on the CPU.
//! Here the parameter, its gradient and both moments are read once and written in place,
//! split over rayon's threads. The arithmetic is burn's, operation for operation (no fused
//! multiply-add, the bias corrections as divisions), so the results match it to the last bit
//! on the same inputs.

use rayon::prelude::*;

use crate::activation::check_len;
use crate::error::{KernelError, Result};
use crate::isa::with_simd;

/// Values per rayon task.
const TASK_VALUES: usize = 1 << 14;

/// The scalars of one AdamW step (all in f32, as burn applies them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this step.
    pub lr: f32,
    /// First-moment decay β₁.
    pub beta_1: f32,
    /// Second-moment decay β₂.
    pub beta_2: f32,
    /// Denominator epsilon.
    pub epsilon: f32,
    /// `1 − lr·weight_decay`, the decoupled decay factor (1 without decay).
    pub decay: f32,
    /// `1 − β₁ᵗ` for the step count `t` (1-based) after this step.
    pub bias_correction_1: f32,
    /// `1 − β₂ᵗ`.
    pub bias_correction_2: f32,
    /// Factor applied to the gradient first (the global-norm clipping coefficient; 1: none).
    pub grad_scale: f32,
}

impl AdamWStep {
    /// The scalars for step `t` (1-based) at learning rate `lr` with decoupled weight decay
    /// `weight_decay`, computed as burn computes them (decay and bias corrections in the
    /// precision burn uses: the decay rate in f64, `βᵗ` by `powi` in f32).
    pub fn new(
        lr: f64,
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        weight_decay: f32,
        t: usize,
    ) -> Self {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        Self {
            lr: lr as f32,
            beta_1,
            beta_2,
            epsilon,
            decay: (1.0 - lr * weight_decay as f64) as f32,
            bias_correction_1: 1.0 - beta_1.powi(t),
            bias_correction_2: 1.0 - beta_2.powi(t),
            grad_scale: 1.0,
        }
    }
}

/// One AdamW step in place: with `g = grad_scale·grad`,
/// `m ← β₁m + (1 − β₁)g`, `v ← β₂v + (1 − β₂)g²`,
/// `param ← param·decay − lr · (m / c₁) / (√(v / c₂) + ε)`.
/// Moments of a first step are zeros. Errors when the lengths differ.
pub fn adamw_update(
    param: &mut [f32],
    grad: &[f32],
    moment_1: &mut [f32],
    moment_2: &mut [f32],
    step: &AdamWStep,
) -> Result<()> {
    check_len(
        "adamw_update",
        &[
            ("grad", grad.len()),
            ("moment_1", moment_1.len()),
            ("moment_2", moment_2.len()),
        ],
        param.len(),
    )?;
    if !(step.bias_correction_1 > 0.0 && step.bias_correction_2 > 0.0) {
        return Err(KernelError::Shape(format!(
            "adamw_update: bias corrections must be positive, got {} and {}",
            step.bias_correction_1, step.bias_correction_2
        )));
    }
    let s = *step;
    let body = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
        with_simd(
            #[inline(always)]
            || {
                let (f1, f2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = if s.grad_scale == 1.0 {
                        g
                    } else {
                        g * s.grad_scale
                    };
                    *m = *m * s.beta_1 + g * f1;
                    *v = *v * s.beta_2 + g * g * f2;
                    let delta = (*m / s.bias_correction_1)
                        / ((*v / s.bias_correction_2).sqrt() + s.epsilon);
                    *p = *p * s.decay - delta * s.lr;
                }
            },
        )
    };
    param
        .par_chunks_mut(TASK_VALUES)
        .zip(grad.par_chunks(TASK_VALUES))
        .zip(moment_1.par_chunks_mut(TASK_VALUES))
        .zip(moment_2.par_chunks_mut(TASK_VALUES))
        .for_each(|(((p, g), m), v)| body(p, g, m, v));
    Ok(())
}

/// `Σ x²` accumulated in f64 (per task of 2¹⁴ values in f32 lanes, then in f64), split over
/// rayon's threads.
pub fn sum_of_squares(x: &[f32]) -> f64 {
    let body = |x: &[f32]| -> f64 {
        with_simd(
            #[inline(always)]
            || {
                // Eight independent f32 partial sums vectorise; each covers ≤ 2¹¹ values.
                let mut lanes = [0f32; 8];
                let mut chunks = x.chunks_exact(8);
                for c in &mut chunks {
                    for (l, &v) in lanes.iter_mut().zip(c) {
                        *l += v * v;
                    }
                }
                let tail: f64 = chunks.remainder().iter().map(|&v| (v * v) as f64).sum();
                lanes.iter().map(|&l| l as f64).sum::<f64>() + tail
            },
        )
    };
    x.par_chunks(TASK_VALUES).map(body).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503);
                ((h >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0
            })
            .collect()
    }

    /// The update written out in f64 from its definition.
    fn reference(
        p: &[f32],
        g: &[f32],
        m: &[f32],
        v: &[f32],
        s: &AdamWStep,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut po, mut mo, mut vo) = (vec![], vec![], vec![]);
        for i in 0..p.len() {
            let g = g[i] as f64 * s.grad_scale as f64;
            let m = s.beta_1 as f64 * m[i] as f64 + (1.0 - s.beta_1 as f64) * g;
            let v = s.beta_2 as f64 * v[i] as f64 + (1.0 - s.beta_2 as f64) * g * g;
            let delta = (m / s.bias_correction_1 as f64)
                / ((v / s.bias_correction_2 as f64).sqrt() + s.epsilon as f64);
            po.push(p[i] as f64 * s.decay as f64 - s.lr as f64 * delta);
            mo.push(m);
            vo.push(v);
        }
        (po, mo, vo)
    }

    fn rel(a: &[f32], b: &[f64]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(&a, &b)| (a as f64 - b).powi(2)).sum();
        let den: f64 = b.iter().map(|b| b * b).sum();
        (num / den).sqrt()
    }

    #[test]
    fn update_matches_its_definition_at_every_size() {
        // At the active instruction set (`RAR_KERNELS_ISA` picks a lower one).
        {
            for n in [1, 7, 8, 100, 40_000] {
                for (t, scale) in [(1, 1.0), (3, 0.25)] {
                    let mut s = AdamWStep::new(2e-3, 0.9, 0.96, 1e-8, 0.03, t);
                    s.grad_scale = scale;
                    let g = values(n, 1);
                    let mut p = values(n, 2);
                    let (mut m, mut v) = if t == 1 {
                        (vec![0.0; n], vec![0.0; n])
                    } else {
                        let v0: Vec<f32> = values(n, 4).iter().map(|x| x * x * 0.1).collect();
                        (values(n, 3).iter().map(|x| x * 0.1).collect(), v0)
                    };
                    let want = reference(&p, &g, &m, &v, &s);
                    adamw_update(&mut p, &g, &mut m, &mut v, &s).unwrap();
                    assert!(rel(&p, &want.0) < 1e-6, "n {n} t {t}: param");
                    assert!(rel(&m, &want.1) < 1e-6, "n {n} t {t}: moment 1");
                    assert!(rel(&v, &want.2) < 1e-6, "n {n} t {t}: moment 2");
                }
            }
        }
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let s = AdamWStep::new(1e-3, 0.9, 0.999, 1e-8, 0.0, 1);
        let (mut p, mut m, mut v) = (vec![0.0; 4], vec![0.0; 4], vec![0.0; 3]);
        let err = adamw_update(&mut p, &[0.0; 4], &mut m, &mut v, &s).unwrap_err();
        assert!(err.to_string().contains("moment_2"), "{err}");
    }

    #[test]
    fn sum_of_squares_matches_f64() {
        for n in [0, 5, 8, 16_385, 100_003] {
            let x = values(n, 9);
            let want: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
            let got = sum_of_squares(&x);
            assert!(
                (got - want).abs() <= 1e-6 * want.max(1.0),
                "n {n}: {got} vs {want}"
            );
        }
    }
}
