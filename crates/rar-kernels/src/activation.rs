//! Exact GELU and SiLU on host slices.

use rayon::prelude::*;

use std::mem::MaybeUninit;

use crate::error::{KernelError, Result};
use crate::exp::exp;
use crate::isa::with_simd;

/// Values below which the activation stays on the calling thread.
const PARALLEL_MIN_VALUES: usize = 1 << 15;

/// `erf(x)` for f32 by Abramowitz & Stegun 7.1.28: `1 − (1 + a₁x + … + a₆x⁶)⁻¹⁶` for
/// `x ≥ 0`, odd symmetry below, evaluated in f64 (absolute error ≤ 3·10⁻⁷, a few f32 ulps
/// at 1; in f32 the 16th power would lose ten times more). It needs no `exp`, so the loop
/// vectorises.
#[inline]
pub fn erf(x: f32) -> f32 {
    const A: [f64; 6] = [
        0.070_523_078_4,
        0.042_282_012_3,
        0.009_270_527_2,
        0.000_152_014_3,
        0.000_276_567_2,
        0.000_043_063_8,
    ];
    let t = x.abs() as f64;
    let p = 1.0 + t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * (A[4] + t * A[5])))));
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    let p16 = p8 * p8;
    let e = (1.0 - 1.0 / p16) as f32;
    if x.is_nan() { x } else { e.copysign(x) }
}

/// Exact (erf) GELU in place: `x·(1 + erf(x/√2))/2`, PyTorch's default `nn.GELU()`.
/// Compiled for the CPU's vector width ([`erf`]'s f64 polynomial runs 8 wide with AVX-512,
/// 2 wide on the baseline target: half the time of a decode step's GELU), the same
/// operations either way.
pub fn gelu_in_place(x: &mut [f32]) {
    let f = |v: &mut f32| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    let run = |c: &mut [f32]| {
        with_simd(
            #[inline(always)]
            || c.iter_mut().for_each(f),
        )
    };
    if x.len() >= PARALLEL_MIN_VALUES {
        x.par_chunks_mut(4096).for_each(run);
    } else {
        run(x);
    }
}

/// Values per rayon task of the training activations.
const TASK_VALUES: usize = 1 << 14;

/// `Φ(x)`, the standard normal CDF, in f32 so that it vectorises 8 wide: Abramowitz & Stegun
/// 7.1.26, `erfc(z) ≈ t·P(t)·e^{−z²}` with `t = 1/(1 + p·z)`, `z = |x|/√2` (absolute error
/// ≤ 1.5·10⁻⁷ in erf). The tail `Φ(x) = erfc(z)/2` for `x < 0` is computed directly, without
/// the cancellation of `1 + erf(x/√2)`.
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    normal_cdf_with(x, exp(-0.5 * x * x))
}

/// [`normal_cdf`] given `gauss = e^{−x²/2}` (the backward needs that factor for the density
/// `φ(x)` too, so it computes the one `exp` once).
#[inline(always)]
fn normal_cdf_with(x: f32, gauss: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    // e^{−z²} with z = |x|/√2 is e^{−x²/2}.
    let tail = 0.5 * poly * gauss;
    if x >= 0.0 { 1.0 - tail } else { tail }
}

/// Exact GELU `out = x·Φ(x)` for training (the input is kept by the caller for
/// [`gelu_backward`]); split over rayon's threads for large tensors, AVX2 + FMA where the
/// CPU has them.
pub fn gelu_forward(x: &[f32], out: &mut [f32]) -> Result<()> {
    gelu_forward_uninit(x, as_uninit(out))
}

/// [`gelu_forward`] into a buffer not yet initialised: every value of `out` is written (when
/// the lengths agree), so a caller can allocate it without zeroing.
pub fn gelu_forward_uninit(x: &[f32], out: &mut [MaybeUninit<f32>]) -> Result<()> {
    check_len("gelu_forward", &[("out", out.len())], x.len())?;
    let body = |x: &[f32], out: &mut [MaybeUninit<f32>]| {
        with_simd(
            #[inline(always)]
            || {
                for (o, &v) in out.iter_mut().zip(x) {
                    o.write(v * normal_cdf(v));
                }
            },
        )
    };
    if x.len() >= PARALLEL_MIN_VALUES {
        x.par_chunks(TASK_VALUES)
            .zip(out.par_chunks_mut(TASK_VALUES))
            .for_each(|(x, out)| body(x, out));
    } else {
        body(x, out);
    }
    Ok(())
}

/// The gradient of [`gelu_forward`]: `grad_x = grad_out · (Φ(x) + x·φ(x))`, the exact
/// derivative (burn's default GELU backward is that of the tanh approximation).
pub fn gelu_backward(x: &[f32], grad_out: &[f32], grad_x: &mut [f32]) -> Result<()> {
    gelu_backward_uninit(x, grad_out, as_uninit(grad_x))
}

/// [`gelu_backward`] into a buffer not yet initialised (every value of `grad_x` is written
/// when the lengths agree).
pub fn gelu_backward_uninit(
    x: &[f32],
    grad_out: &[f32],
    grad_x: &mut [MaybeUninit<f32>],
) -> Result<()> {
    check_len(
        "gelu_backward",
        &[("grad_out", grad_out.len()), ("grad_x", grad_x.len())],
        x.len(),
    )?;
    /// `1/√(2π)`.
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let body = |x: &[f32], g: &[f32], dx: &mut [MaybeUninit<f32>]| {
        with_simd(
            #[inline(always)]
            || {
                for ((d, &v), &g) in dx.iter_mut().zip(x).zip(g) {
                    let gauss = exp(-0.5 * v * v);
                    d.write(g * (normal_cdf_with(v, gauss) + v * (INV_SQRT_2PI * gauss)));
                }
            },
        )
    };
    if x.len() >= PARALLEL_MIN_VALUES {
        x.par_chunks(TASK_VALUES)
            .zip(grad_out.par_chunks(TASK_VALUES))
            .zip(grad_x.par_chunks_mut(TASK_VALUES))
            .for_each(|((x, g), dx)| body(x, g, dx));
    } else {
        body(x, grad_out, grad_x);
    }
    Ok(())
}

/// `out` as values a kernel may overwrite without reading (sound: only initialised values
/// are ever written through it).
pub(crate) fn as_uninit(out: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the kernels only write
    // initialised values, so `out` stays initialised.
    unsafe { &mut *(out as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// Errors unless every named length equals `want`.
pub(crate) fn check_len(kernel: &str, lens: &[(&str, usize)], want: usize) -> Result<()> {
    match lens.iter().find(|(_, len)| *len != want) {
        Some((name, len)) => Err(KernelError::Shape(format!(
            "{kernel}: `{name}` holds {len} values, the input {want}"
        ))),
        None => Ok(()),
    }
}

/// SiLU in place: `x·σ(x)`.
pub fn silu_in_place(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Maclaurin series in f64 (|x| ≤ 4 here; 120 terms are plenty).
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..120 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_and_gelu_are_within_a_few_ulps_of_the_exact_functions() {
        let mut worst = 0f64;
        for i in -4000..=4000 {
            let x = i as f64 / 1000.0;
            worst = worst.max((erf(x as f32) as f64 - erf_series(x)).abs());
        }
        assert!(worst < 4e-7, "erf error {worst}");
        assert_eq!(erf(30.0), 1.0);
        assert_eq!(erf(-30.0), -1.0);
        assert!(erf(f32::NAN).is_nan());

        // The series reference is exact to ~1e-9 for |x/√2| ≤ 4.
        let xs: Vec<f32> = (-565..=565).map(|i| i as f32 / 100.0).collect();
        let mut g = xs.clone();
        gelu_in_place(&mut g);
        for (&x, &y) in xs.iter().zip(&g) {
            let want = 0.5 * x as f64 * (1.0 + erf_series(x as f64 / std::f64::consts::SQRT_2));
            assert!(
                (y as f64 - want).abs() <= 4e-7 * (x.abs() as f64).max(1.0),
                "gelu({x})"
            );
        }
    }

    #[test]
    fn training_gelu_and_its_gradient_match_the_f64_definitions() {
        // Enough values to take the parallel path, spanning the whole useful range.
        let n = PARALLEL_MIN_VALUES + 37;
        let xs: Vec<f32> = (0..n).map(|i| -5.5 + 11.0 * i as f32 / n as f32).collect();
        let g: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.01).cos()).collect();
        let (mut y, mut dx) = (vec![0f32; n], vec![0f32; n]);
        gelu_forward(&xs, &mut y).unwrap();
        gelu_backward(&xs, &g, &mut dx).unwrap();
        let (mut worst_y, mut worst_dx) = (0f64, 0f64);
        for i in 0..n {
            let x = xs[i] as f64;
            let cdf = 0.5 * (1.0 + erf_series(x / std::f64::consts::SQRT_2));
            let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            worst_y = worst_y.max((y[i] as f64 - x * cdf).abs());
            worst_dx = worst_dx.max((dx[i] as f64 - g[i] as f64 * (cdf + x * pdf)).abs());
        }
        assert!(worst_y < 3e-6, "gelu value error {worst_y}");
        assert!(worst_dx < 1e-6, "gelu gradient error {worst_dx}");
        // The derivative against central differences of the forward in f64.
        let h = 1e-4;
        for &x in &[-2.5f64, -0.3, 0.0, 0.7, 3.0] {
            let f = |x: f64| x * 0.5 * (1.0 + erf_series(x / std::f64::consts::SQRT_2));
            let want = (f(x + h) - f(x - h)) / (2.0 * h);
            let mut d = [0f32];
            gelu_backward(&[x as f32], &[1.0], &mut d).unwrap();
            assert!((d[0] as f64 - want).abs() < 1e-6, "gelu'({x})");
        }
        assert!(gelu_forward(&xs, &mut y[1..]).is_err());
        assert!(gelu_backward(&xs, &g[1..], &mut dx).is_err());
    }

    #[test]
    fn silu_matches_its_definition() {
        let mut x = vec![-3.0f32, 0.0, 2.0];
        silu_in_place(&mut x);
        let want = [-3.0 / (1.0 + 3f32.exp()), 0.0, 2.0 / (1.0 + (-2f32).exp())];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
