//! Per-step logit processing of the sampler, entirely on the device: classifier-free guidance,
//! temperature, optional top-k / top-p filtering, and the categorical draw (the official `generate()` in `modeling/rar.py`).
//!
//! The draw uses the Gumbel-max trick — `argmax(ℓ/τ + G)` with `G = −ln(−ln U)`,
//! `U ~ U(0, 1)` — which samples exactly from `softmax(ℓ/τ)` without a softmax, a cumulative
//! sum or a host round trip: only the `[B]` ids leave this module, still as a device tensor.

use burn::tensor::{Distribution, Int, Tensor};

/// The reference's guidance mix on logits: `ℓ_u + g·(ℓ_c − ℓ_u)` (before temperature).
pub fn guide(cond: Tensor<2>, uncond: Tensor<2>, scale: f32) -> Tensor<2> {
    uncond.clone() + (cond - uncond).mul_scalar(scale)
}

/// Keeps the `k` largest logits of each row and sets the others to `−∞`. `k ≥ V` keeps all.
pub fn top_k(logits: Tensor<2>, k: usize) -> Tensor<2> {
    let [_, vocab] = logits.dims();
    if k == 0 || k >= vocab {
        return logits;
    }
    // the k-th largest value per row is the threshold; ties at the threshold are all kept
    let kth = logits.clone().topk(k, 1).narrow(1, k - 1, 1);
    let below = logits.clone().lower(kth);
    logits.mask_fill(below, f32::NEG_INFINITY)
}

/// Nucleus filtering: keeps the smallest set of highest-probability tokens whose probability
/// mass reaches `p` (the top token is always kept), setting the rest to `−∞`. `p ≥ 1` keeps
/// all. Probabilities are those of `softmax(logits)`, so apply temperature first.
pub fn top_p(logits: Tensor<2>, p: f32) -> Tensor<2> {
    if p >= 1.0 {
        return logits;
    }
    let (sorted, indices) = logits.clone().sort_descending_with_indices(1);
    let probs = burn::tensor::activation::softmax(sorted, 1);
    // mass strictly before each token; a token is dropped once that mass already reaches p
    let before = probs.clone().cumsum(1) - probs;
    let drop_sorted = before.greater_equal_elem(p);
    // scatter the sorted-order mask back to vocabulary order
    let drop = Tensor::<2>::zeros(logits.shape(), &logits.device()).scatter(
        1,
        indices,
        drop_sorted.float(),
        burn::tensor::IndexingUpdateOp::Add,
    );
    logits.mask_fill(drop.greater_elem(0.5), f32::NEG_INFINITY)
}

/// Draws one id per row from `softmax(logits / temperature)` (Gumbel-max), on the device.
pub fn sample_categorical(logits: Tensor<2>, temperature: f32) -> Tensor<1, Int> {
    let uniform = Tensor::<2>::random(
        logits.shape(),
        // keep U away from 0 and 1 so −ln(−ln U) stays finite
        Distribution::Uniform(1e-7, 1.0 - 1e-7),
        &logits.device(),
    );
    let gumbel = uniform.log().neg().log().neg();
    (logits.div_scalar(temperature) + gumbel)
        .argmax(1)
        .squeeze_dim(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn devices() -> Vec<Device> {
        #[allow(unused_mut)]
        let mut d = vec![Device::flex()];
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        d.push(Device::ndarray());
        d
    }

    fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
        let [b, v] = t.dims();
        let data = t.into_data().try_to_vec::<f32>().unwrap();
        (0..b).map(|i| data[i * v..(i + 1) * v].to_vec()).collect()
    }

    #[test]
    fn guidance_mixes_like_the_reference() {
        for device in devices() {
            let c = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2]), &device);
            let u = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, 4.0], [1, 2]), &device);
            // 0.5 + 3·0.5 = 2; 4 + 3·(−2) = −2
            assert_eq!(rows(guide(c, u, 3.0)), [[2.0, -2.0]]);
        }
    }

    #[test]
    fn top_k_and_top_p_keep_the_right_tokens() {
        for device in devices() {
            let logits = Tensor::<2>::from_data(
                TensorData::new(vec![0.1f32, 3.0, 2.0, -1.0, 1.0, 1.0, 1.0, 5.0], [2, 4]),
                &device,
            );
            let k = rows(top_k(logits.clone(), 2));
            let inf = f32::NEG_INFINITY;
            assert_eq!(k[0], [inf, 3.0, 2.0, inf]);
            // row 1 ties at the threshold (three 1.0s): all ties kept
            assert_eq!(k[1], [1.0, 1.0, 1.0, 5.0]);
            // row 0 softmax ≈ [0.035, 0.70, 0.26, 0.01]: p = 0.9 keeps tokens 1 and 2
            let p = rows(top_p(logits, 0.9));
            assert_eq!(p[0], [inf, 3.0, 2.0, inf]);
            // row 1 softmax ≈ [0.017, 0.017, 0.017, 0.95]: p = 0.9 keeps only token 3
            assert_eq!(p[1], [inf, inf, inf, 5.0]);
        }
    }

    #[test]
    fn categorical_draws_follow_the_softmax() {
        for device in devices() {
            device.seed(7);
            let probs = [0.1f32, 0.2, 0.3, 0.4];
            let n = 4000;
            let logits: Vec<f32> = (0..n).flat_map(|_| probs.map(|p| (p.ln()) * 2.0)).collect();
            // temperature 2 undoes the ×2
            let ids = sample_categorical(
                Tensor::<2>::from_data(TensorData::new(logits, [n, 4]), &device),
                2.0,
            );
            let ids = ids
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap();
            let mut counts = [0usize; 4];
            for id in ids {
                counts[id as usize] += 1;
            }
            for (c, p) in counts.iter().zip(probs) {
                let expected = p as f64 * n as f64;
                let sd = (n as f64 * p as f64 * (1.0 - p as f64)).sqrt();
                assert!((*c as f64 - expected).abs() < 5.0 * sd, "{counts:?}");
            }
        }
    }
}
