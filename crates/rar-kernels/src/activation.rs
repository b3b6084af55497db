//! Exact GELU and SiLU on host slices.

use rayon::prelude::*;

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
pub fn gelu_in_place(x: &mut [f32]) {
    let f = |v: &mut f32| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    if x.len() >= PARALLEL_MIN_VALUES {
        x.par_chunks_mut(4096)
            .for_each(|c| c.iter_mut().for_each(f));
    } else {
        x.iter_mut().for_each(f);
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
    fn silu_matches_its_definition() {
        let mut x = vec![-3.0f32, 0.0, 2.0];
        silu_in_place(&mut x);
        let want = [-3.0 / (1.0 + 3f32.exp()), 0.0, 2.0 / (1.0 + (-2f32).exp())];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
