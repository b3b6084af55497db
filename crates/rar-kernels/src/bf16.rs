//! bfloat16 storage: the upper 16 bits of an IEEE f32.

/// Rounds `x` to the nearest bf16 (ties to even); NaN stays NaN.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x0040;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    ((bits + round) >> 16) as u16
}

/// The f32 value of a bf16 (exact).
pub fn from_bf16(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_nearest_even_and_round_trips() {
        for x in [
            0.0f32,
            -0.0,
            1.0,
            -2.5,
            3.140625,
            1e-30,
            6.5e4,
            f32::INFINITY,
        ] {
            let b = to_bf16(x);
            assert_eq!(to_bf16(from_bf16(b)), b);
            let rel = ((from_bf16(b) - x) / x.abs().max(1e-38)).abs();
            assert!(
                rel <= 1.0 / 256.0 || x == 0.0 || x.is_infinite(),
                "{x}: {rel}"
            );
        }
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa (1).
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: ties go to 1 + 2⁻⁶.
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 1.0 / 64.0);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }
}
