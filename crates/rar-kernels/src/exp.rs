//! An `exp` for f32 that the compiler can vectorise (the libm call cannot be): range
//! reduction `x = k·ln 2 + r`, `|r| ≤ ln 2 / 2`, a degree-7 polynomial for `eʳ` (Cephes'
//! `expf` coefficients) and `2ᵏ` built in the exponent bits. Used for the softmax of the
//! training attention, where `exp` was the largest cost after the products.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two so that `k·LN2_HI` is exact for the `k` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes `expf` polynomial: `eʳ ≈ 1 + r + r²·P(r)` (its last coefficient, 0.50000001, is 0.5
/// in f32).
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// `eˣ` within 2 ulp for `x ∈ [−87, 88]`; below −87 it returns about 1.6·10⁻³⁸ instead of
/// a subnormal or zero (callers pass `x − max ≤ 0` of a softmax, where that is negligible
/// against the row's largest term, 1), above 88 it saturates at about 1.7·10³⁸.
/// NaN gives NaN.
///
/// Written for the vectoriser: `max`/`min` (which drop a NaN, so `k` below is always finite),
/// rounding to nearest and an unchecked conversion are single instructions, where `clamp`,
/// `floor` and the saturating `as` cost several each — together 3× the time of this version
/// in a loop over 2 M values.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    exp_with::<false>(x)
}

/// [`exp`] with fused multiply-adds when `FMA` (only inside code compiled for FMA, where
/// `mul_add` is one instruction; elsewhere it would be a library call): half the
/// instructions of the polynomial, and each step rounded once, so at least as accurate.
#[inline(always)]
pub(crate) fn exp_with<const FMA: bool>(x: f32) -> f32 {
    let madd = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    // Not `clamp`: that keeps a NaN, which the unchecked conversion below must never see.
    #[allow(clippy::manual_clamp)]
    let clamped = x.max(-87.0).min(88.0);
    let k = (clamped * LOG2E).round_ties_even();
    let r = madd(-k, LN2_LO, madd(-k, LN2_HI, clamped));
    let mut p = P[0];
    for c in &P[1..] {
        p = madd(p, r, *c);
    }
    let e = madd(p * r, r, r) + 1.0;
    // SAFETY: `clamped` is finite and in [−87, 88], so `k` is an integer in [−126, 127].
    let k = unsafe { k.to_int_unchecked::<i32>() };
    let y = e * f32::from_bits(((k + 127) as u32) << 23);
    if x.is_nan() { x } else { y }
}

#[cfg(test)]
mod tests {
    #[test]
    fn within_two_ulps_of_the_f64_exponential() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            // The fused form (`mul_add` is exact wherever it runs, a library call here).
            for got in [super::exp(x), super::exp_with::<true>(x)] {
                worst = worst.max((got as f64 - want).abs() / want);
            }
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(super::exp(0.0), 1.0);
        assert!(super::exp(f32::NAN).is_nan());
        assert!(super::exp(-1000.0) < 1e-37 && super::exp(1000.0) > 1e38);
    }
}
