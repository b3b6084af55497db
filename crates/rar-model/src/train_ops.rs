//! Layer primitives written for a cheap backward pass on autodiff devices.
//!
//! burn's autodiff backend differentiates LayerNorm, softmax and attention by decomposing them
//! into element-wise operations, and it differentiates a `slice` (hence `chunk`) by allocating
//! a zero tensor of the *full* input shape and writing the gradient into it. On a CPU, where
//! every such pass is a trip through memory, those costs added up to a large share of a
//! training step (profile in `docs/BENCHMARKS.md`, "Training step"). The functions here compute
//! the same values with fewer and smaller passes:
//!
//! * [`linear_chunks`] — `Linear(x).chunk(n)` as `n` products with column blocks of the weight,
//!   so the backward pass slices the small weight instead of the `[B, L, n·C]` activation (on
//!   flex one product with a fused backward);
//! * [`layer_norm`] — one `batch_norm_train` node (burn differentiates it as a whole) instead of
//!   the ~8 recorded operations of the definition;
//! * [`softmax_last`] — `exp(x − max) · (1 / Σ exp(x − max))`: the backward of a product by a
//!   per-row reciprocal is shorter than that of a quotient;
//! * [`gated_residual`] — `x + gate ⊙ y` as one fused node on flex;
//! * [`dropout`] — draws the keep-mask on the host for CPU devices (burn's per-element sampler
//!   was the largest cost of a step with dropout) and scales the mask, which carries no
//!   gradient, instead of the tracked product.
//!
//! Without autodiff every function defers to burn's own (fused where the backend has a
//! kernel) operation, so inference and KV-cached decoding are unchanged.

use burn::nn::{Dropout, LayerNorm, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::module::{batch_norm_train, layer_norm as fused_layer_norm};
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use rar_core::rng::Xoshiro256PlusPlus;

use crate::precision;

/// `linear.forward(x).chunk(n, D − 1)`: `n` outputs of `out / n` features each.
///
/// On flex autodiff devices (f32 products) one fused product whose chunks' gradients are
/// assembled for one backward product each ([`crate::flex_kernels::linear_chunks`]); on other
/// autodiff devices each chunk is its own product with a column block of the weight (and
/// bias); elsewhere one product is computed and split (chunks are views there).
pub fn linear_chunks<const D: usize>(
    linear_layer: &Linear,
    x: Tensor<D>,
    n: usize,
) -> Vec<Tensor<D>> {
    if !x.device().is_autodiff() {
        return precision::linear(linear_layer, x).chunk(n, D - 1);
    }
    let weight = linear_layer.weight.val();
    let [c_in, c_out] = weight.dims();
    #[cfg(feature = "flex")]
    if n > 0
        && c_out.is_multiple_of(n)
        && crate::flex_kernels::fused_products_apply(&x.device(), x.dtype())
    {
        let bias = linear_layer.bias.as_ref().map(|b| b.val());
        return crate::flex_kernels::linear_chunks(x, weight, bias, n);
    }
    let width = c_out / n;
    let bias = linear_layer.bias.as_ref().map(|b| b.val());
    (0..n)
        .map(|i| {
            let cols = i * width..(i + 1) * width;
            let w = weight.clone().slice([0..c_in, cols.clone()]);
            let b = bias.as_ref().map(|b| b.clone().slice([cols]));
            precision::linear_parts(x.clone(), w, b)
        })
        .collect()
}

/// LayerNorm over the last dimension with optional affine parameters (biased variance, `eps`
/// inside the square root — PyTorch's and burn's definition).
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    eps: f64,
) -> Tensor<D> {
    if !x.device().is_autodiff() {
        let c = x.dims()[D - 1];
        let gamma = gamma.unwrap_or_else(|| Tensor::<1>::ones([c], &x.device()));
        return fused_layer_norm(x, gamma, beta, eps);
    }
    #[cfg(feature = "flex")]
    if crate::flex_kernels::fused_ops_apply(&x.device(), x.dtype()) {
        return crate::flex_kernels::layer_norm(x, gamma, beta, None, eps);
    }
    decomposed_layer_norm(x, gamma, beta, eps)
}

/// [`layer_norm`] on an autodiff device as burn's operations (the path of every backend but
/// flex, and the reference the fused kernel is tested against).
pub(crate) fn decomposed_layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    eps: f64,
) -> Tensor<D> {
    // burn's autodiff has no LayerNorm node (it would record the ~8 reductions and
    // broadcasts of the definition and differentiate each), but it differentiates
    // `batch_norm_train` as one operation. LayerNorm over the last dimension of `R` rows is
    // batch normalisation of `[1, R, C]` with the rows as channels; its unit scale and zero
    // shift are constants, and the LayerNorm's own affine parameters follow as two products.
    let dims = x.dims();
    let c = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let device = x.device();
    let normed = batch_norm_train(
        x.reshape([1, rows, c]),
        Tensor::<1>::ones([rows], &device),
        Tensor::<1>::zeros([rows], &device),
        eps,
    )
    .output
    .reshape(dims);
    let normed = match gamma {
        Some(g) => normed * g.unsqueeze::<D>(),
        None => normed,
    };
    match beta {
        Some(b) => normed + b.unsqueeze::<D>(),
        None => normed,
    }
}

/// `x ⊙ (1 + scale) + shift`, the adaLN modulation (DiT; paper §3.2).
pub fn modulate<const D: usize>(x: Tensor<D>, shift: Tensor<D>, scale: Tensor<D>) -> Tensor<D> {
    x * scale.add_scalar(1.0) + shift
}

/// [`layer_norm`] followed by [`modulate`] with `shift`, `scale` shaped as `x`: one fused node
/// with its own backward on flex autodiff devices (f32), the composition elsewhere.
pub fn modulated_layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    eps: f64,
    shift: Tensor<D>,
    scale: Tensor<D>,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if x.device().is_autodiff() && crate::flex_kernels::fused_ops_apply(&x.device(), x.dtype()) {
        return crate::flex_kernels::layer_norm(x, gamma, beta, Some((shift, scale)), eps);
    }
    modulate(layer_norm(x, gamma, beta, eps), shift, scale)
}

/// `x + gate ⊙ y`, the gated residual of an adaLN block (DiT; paper §3.2): one fused node
/// with its own backward on flex autodiff devices (f32), burn's product and sum elsewhere
/// (the same values: the fused pass rounds the product before the sum, as burn does).
pub fn gated_residual<const D: usize>(x: Tensor<D>, gate: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if x.device().is_autodiff()
        && crate::flex_kernels::fused_ops_apply(&x.device(), x.dtype())
        && gate.dims() == x.dims()
        && y.dims() == x.dims()
    {
        return crate::flex_kernels::gated_residual(x, gate, y);
    }
    x + gate * y
}

/// A burn [`LayerNorm`] module through [`modulated_layer_norm`]; `eps` must be the module's
/// epsilon (burn keeps that field private).
pub fn modulated_layer_norm_module<const D: usize>(
    norm: &LayerNorm,
    x: Tensor<D>,
    eps: f64,
    shift: Tensor<D>,
    scale: Tensor<D>,
) -> Tensor<D> {
    if !x.device().is_autodiff() {
        return modulate(norm.forward(x), shift, scale);
    }
    let beta = norm.beta.as_ref().map(|b| b.val());
    modulated_layer_norm(x, Some(norm.gamma.val()), beta, eps, shift, scale)
}

/// A burn [`LayerNorm`] module applied through [`layer_norm`]; `eps` must be the module's
/// epsilon (burn keeps that field private).
pub fn layer_norm_module<const D: usize>(norm: &LayerNorm, x: Tensor<D>, eps: f64) -> Tensor<D> {
    if !x.device().is_autodiff() {
        return norm.forward(x);
    }
    layer_norm(
        x,
        Some(norm.gamma.val()),
        norm.beta.as_ref().map(|b| b.val()),
        eps,
    )
}

/// Softmax over the last dimension (rows entirely at −∞ are not supported: the causal mask
/// always leaves the diagonal).
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !x.device().is_autodiff() {
        return softmax(x, D - 1);
    }
    let max = x.clone().detach().max_dim(D - 1);
    let e = (x - max).exp();
    let sum = e.clone().sum_dim(D - 1);
    e * sum.recip()
}

/// [`Dropout::forward`]: `x · mask / keep` with `mask ~ Bernoulli(keep)` per element, active
/// only in training mode on an autodiff device with a non-zero probability.
///
/// burn draws every element through a freshly built distribution sampler, which made the
/// masks the largest cost of a CPU training step with dropout (about 40 ns per element, 23 M
/// elements per step for the benchmark model). On CPU devices (flex, ndarray) the mask is
/// therefore drawn on the host by a xoshiro256++ generator seeded from four draws of the
/// device RNG — so `device.seed(..)` still fixes every mask — and compared at 32-bit
/// resolution (`keep` exact to 2⁻³²). Elsewhere burn's own draw is used. Either way the
/// scaled mask carries no gradient, so the backward pass is a single product. On flex (f32)
/// one fused node runs instead, its mask hashed from a key drawn from the device RNG
/// ([`rar_kernels::dropout_scale`]: nothing stored, both passes over rayon's threads).
pub fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    if !layer.training.is_enabled() || !x.device().is_autodiff() || layer.prob == 0.0 {
        return x;
    }
    let keep = 1.0 - layer.prob;
    let device = x.device();
    #[cfg(feature = "flex")]
    if keep > 0.0 && crate::flex_kernels::fused_ops_apply(&device, x.dtype()) {
        let [seed] = device_seed_words::<1>(&device);
        let key = rar_kernels::AttentionDropout {
            keep: keep as f32,
            seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        return crate::flex_kernels::dropout(x, key);
    }
    let mask = if keep > 0.0 && is_host_device(&device) {
        host_dropout_mask::<D>(x.dims(), keep, &device)
    } else {
        x.random_like(Distribution::Bernoulli(keep))
            .detach()
            .mul_scalar(1.0 / keep)
    };
    x * mask
}

/// Whether tensors of `device` live in host memory (so a mask drawn on the host costs only a
/// copy).
fn is_host_device(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    if *device == Device::flex() {
        return true;
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    if *device == Device::ndarray() {
        return true;
    }
    let _ = device;
    false
}

/// `N` words drawn from the device RNG (the bits of uniform f32 draws), so a key derived
/// from them is fixed by `device.seed(..)` like burn's own random tensors.
pub(crate) fn device_seed_words<const N: usize>(device: &Device) -> [u64; N] {
    let draws = Tensor::<1>::random([N], Distribution::Default, device).into_data();
    let mut words = [0u64; N];
    for (w, u) in words.iter_mut().zip(draws.iter::<f32>()) {
        *w = u.to_bits() as u64;
    }
    words
}

/// A `shape` tensor holding `1 / keep` with probability `keep` and 0 otherwise, drawn on the
/// host from a generator seeded by the device RNG.
fn host_dropout_mask<const D: usize>(shape: [usize; D], keep: f64, device: &Device) -> Tensor<D> {
    let seed = device_seed_words::<4>(device);
    let mut rng = Xoshiro256PlusPlus::for_stream(seed[0], &seed[1..]);
    // P(u32 < threshold) = threshold / 2³² = keep (rounded to 2⁻³²).
    let threshold = (keep * 4_294_967_296.0).round() as u64;
    let scale = (1.0 / keep) as f32;
    let n: usize = shape.iter().product();
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        let bits = rng.next_u64();
        for half in [bits & 0xFFFF_FFFF, bits >> 32] {
            values.push(if half < threshold { scale } else { 0.0 });
        }
    }
    values.truncate(n);
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::DropoutConfig;

    /// The host-drawn mask keeps about `1 − p` of the elements, scales them by `1 / (1 − p)`,
    /// and is fixed by the device seed.
    #[test]
    fn dropout_masks_follow_the_device_seed_and_rate() {
        let device = Device::flex().autodiff();
        let layer = DropoutConfig::new(0.25).init();
        let x = Tensor::<2>::ones([64, 1000], &device);
        let draw = |seed| {
            device.seed(seed);
            dropout(&layer, x.clone())
                .into_data()
                .try_into_vec_as::<f32>()
                .expect("f32")
        };
        let (a, b, c) = (draw(7), draw(7), draw(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let kept = a.iter().filter(|&&v| v != 0.0).count() as f64 / a.len() as f64;
        // Binomial(64 000, 0.75): sd ≈ 0.0017, so ±0.01 is ~6 sd.
        assert!((kept - 0.75).abs() < 0.01, "kept fraction {kept}");
        let scale = (1.0 / 0.75) as f32;
        assert!(a.iter().all(|&v| v == 0.0 || v == scale));
        // Without autodiff (inference) dropout is the identity.
        let plain = Tensor::<2>::ones([4, 4], &Device::flex());
        let out = dropout(&layer, plain)
            .into_data()
            .try_into_vec_as::<f32>()
            .expect("f32");
        assert!(out.iter().all(|&v| v == 1.0));
    }
}
