//! Condition ids and class-label dropout (paper §3.2; `modeling/rar.py`).
//!
//! The forward pass embeds condition ids as given; mapping a raw class `c` to its id
//! `V + 1 + c` and replacing dropped labels by the "none" id happen before, here. Dropout is
//! per sample: draw `u_b ~ U[0, 1)` and use "none" when `u_b < p`. The uniforms are explicit
//! inputs (or come from a seeded [`Xoshiro256PlusPlus`]) so a training run is reproducible.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_core::TokenSpace;
use rar_core::rng::Xoshiro256PlusPlus;

use crate::error::{RarModelError, Result};

/// Condition ids for raw classes with per-sample label dropout.
///
/// `classes[b]` is a raw class in `0 … K − 1`, `uniforms[b]` a draw from `U[0, 1)`; the id is
/// the "none" id when `uniforms[b] < prob`, else `V + 1 + classes[b]`. With `prob = 0` no label
/// is dropped (the sampler's setting).
pub fn drop_class_labels(
    classes: &[usize],
    uniforms: &[f64],
    prob: f64,
    space: &TokenSpace,
) -> Result<Vec<i64>> {
    if classes.len() != uniforms.len() {
        return Err(RarModelError::InvalidInput(format!(
            "{} classes but {} uniform draws",
            classes.len(),
            uniforms.len()
        )));
    }
    if !(0.0..=1.0).contains(&prob) {
        return Err(RarModelError::InvalidInput(format!(
            "label dropout probability must be in [0, 1], got {prob}"
        )));
    }
    classes
        .iter()
        .zip(uniforms)
        .map(|(&class, &u)| {
            let id = if u < prob {
                // Still validate the class: a bad label is a data error even when dropped.
                space.class_id(class)?;
                space.none_id()
            } else {
                space.class_id(class)?
            };
            Ok(id as i64)
        })
        .collect()
}

/// [`drop_class_labels`] drawing one uniform per sample from `rng` (in sample order).
pub fn drop_class_labels_with_rng(
    classes: &[usize],
    prob: f64,
    space: &TokenSpace,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Vec<i64>> {
    let uniforms: Vec<f64> = classes.iter().map(|_| rng.next_f64()).collect();
    drop_class_labels(classes, &uniforms, prob, space)
}

impl crate::RarConfig {
    /// Training condition ids for raw `classes` with this config's `class_label_dropout`
    /// (the official `modeling/rar.py`): [`drop_class_labels`] with `p = class_label_dropout` in this token space.
    pub fn training_condition_ids(&self, classes: &[usize], uniforms: &[f64]) -> Result<Vec<i64>> {
        drop_class_labels(
            classes,
            uniforms,
            self.class_label_dropout,
            &self.token_space(),
        )
    }
}

/// Uploads condition ids as the `[B]` tensor the model takes.
pub fn condition_tensor(ids: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(ids.to_vec(), [ids.len()]), device)
}

/// Condition ids for classifier-free guidance: the conditional rows (`V + 1 + class`)
/// followed by as many unconditional rows ("none"), the batch layout of the reference
/// sampler (the official `generate()` in `modeling/rar.py`).
pub fn guidance_condition_ids(classes: &[usize], space: &TokenSpace) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(2 * classes.len());
    for &class in classes {
        ids.push(space.class_id(class)? as i64);
    }
    ids.extend(std::iter::repeat_n(space.none_id() as i64, classes.len()));
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_uses_the_given_uniforms() {
        let space = TokenSpace::IMAGENET;
        let ids = drop_class_labels(&[0, 5, 999], &[0.05, 0.5, 0.0999], 0.1, &space).unwrap();
        assert_eq!(ids, [2025, 1030, 2025]);
        let ids = drop_class_labels(&[0, 5], &[0.0, 0.5], 0.0, &space).unwrap();
        assert_eq!(ids, [1025, 1030]);
        assert!(drop_class_labels(&[1000], &[0.5], 0.1, &space).is_err());
        assert!(drop_class_labels(&[1], &[0.5, 0.2], 0.1, &space).is_err());
        assert!(drop_class_labels(&[1], &[0.5], 1.5, &space).is_err());
    }

    #[test]
    fn rng_dropout_is_reproducible_and_drops_about_p() {
        let space = TokenSpace::IMAGENET;
        let classes: Vec<usize> = (0..4000).map(|i| i % 1000).collect();
        let a = drop_class_labels_with_rng(
            &classes,
            0.1,
            &space,
            &mut Xoshiro256PlusPlus::seed_from_u64(7),
        )
        .unwrap();
        let b = drop_class_labels_with_rng(
            &classes,
            0.1,
            &space,
            &mut Xoshiro256PlusPlus::seed_from_u64(7),
        )
        .unwrap();
        assert_eq!(a, b);
        let dropped = a.iter().filter(|&&id| id == 2025).count() as f64 / a.len() as f64;
        // Binomial(4000, 0.1): sd ≈ 0.0047, so ±0.03 is > 6 sd.
        assert!((dropped - 0.1).abs() < 0.03, "dropped fraction {dropped}");
        for (id, class) in a.iter().zip(&classes) {
            assert!(*id == 2025 || *id == 1025 + *class as i64);
        }
    }

    #[test]
    fn config_dropout_probability_is_used() {
        let config = crate::RarConfig::new(64, 2, 4, 256)
            .with_codebook_size(32)
            .with_num_classes(10)
            .with_class_label_dropout(0.25);
        let ids = config.training_condition_ids(&[1, 2], &[0.2, 0.3]).unwrap();
        assert_eq!(ids, [43, 35]);
    }

    #[test]
    fn guidance_ids_put_conditional_rows_first() {
        let space = TokenSpace::new(32, 10);
        assert_eq!(
            guidance_condition_ids(&[3, 9], &space).unwrap(),
            [36, 42, 43, 43]
        );
    }
}
