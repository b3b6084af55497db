//! Element-wise dropout whose mask is a hash of (seed, index): the backward regenerates the
//! mask from the seed instead of storing it, and any split over threads gives the same mask.
//! The mask is the attention dropout's ([`crate::AttentionDropout`]) laid over rows of
//! [`ROW`] elements, so it keeps each element with probability `keep` (exact to 2⁻³²).

use rayon::prelude::*;

use crate::activation::check_len;
use crate::attention_pair::{AttentionDropout, RowMask};
use crate::error::{KernelError, Result};
use crate::isa::with_simd;

/// Elements per mask row (and per rayon task).
const ROW: usize = 4096;

/// `out = x · mask / keep` with the mask that (`keep`, `seed`) define; applied to an output
/// gradient with the same key it is the backward.
pub fn dropout_scale(x: &[f32], dropout: AttentionDropout, out: &mut [f32]) -> Result<()> {
    check_len("dropout_scale", &[("out", out.len())], x.len())?;
    if !(dropout.keep > 0.0 && dropout.keep <= 1.0) {
        return Err(KernelError::Shape(format!(
            "dropout_scale: keep probability {} is not in (0, 1]",
            dropout.keep
        )));
    }
    x.par_chunks(ROW)
        .zip(out.par_chunks_mut(ROW))
        .enumerate()
        .for_each(|(row, (x, out))| {
            let mask = RowMask::new(dropout, row as u64);
            with_simd(
                #[inline(always)]
                || {
                    for (j, (o, &v)) in out.iter_mut().zip(x).enumerate() {
                        *o = v * mask.scale(j);
                    }
                },
            )
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_expected_fraction_scaled_and_repeats_for_a_seed() {
        let n = 3 * ROW + 77;
        let x = vec![1f32; n];
        let key = AttentionDropout {
            keep: 0.75,
            seed: 42,
        };
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        dropout_scale(&x, key, &mut a).unwrap();
        dropout_scale(&x, key, &mut b).unwrap();
        assert_eq!(a, b);
        let kept = a.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        let other = AttentionDropout { seed: 43, ..key };
        dropout_scale(&x, other, &mut b).unwrap();
        assert_ne!(a, b);
        // The same key on another tensor drops the same positions (the backward).
        let g: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
        dropout_scale(&g, key, &mut b).unwrap();
        for i in 0..n {
            assert_eq!(b[i] == 0.0, a[i] == 0.0, "element {i}");
        }
        assert!(dropout_scale(&x, AttentionDropout { keep: 0.0, seed: 1 }, &mut b).is_err());
        assert!(dropout_scale(&x[1..], key, &mut b).is_err());
    }
}
