//! Multi-head self-attention with QK-LayerNorm (the official `modeling/rar.py`).
//!
//! `qkv` projects to `[Q | K | V]` (each `C` wide, head `h` owning features `h·d … h·d+d−1`);
//! Q and K are normalised per head by a LayerNorm over the head dimension whose affine
//! parameters are shared by all heads (the "QK-norm" of the paper, eps 1e-6); scaled
//! dot-product attention with scale `1/√d` and a causal mask; heads are concatenated and
//! projected by `proj`.
//!
//! Two execution paths compute the same function:
//!
//! * the fused [`burn::tensor::module::attention`] kernel (used for inference and whenever
//!   attention dropout is inactive); its causal mode is bottom-right aligned, so a few new
//!   queries against a longer KV cache are masked correctly;
//! * an explicit `softmax(QKᵀ/√d + mask)·V` path, needed in training because dropout on the
//!   attention *probabilities* (`attn_drop`) has no fused equivalent. It is also used for a
//!   single query (a KV-cached decode step): the matmuls read the strided view of the cache
//!   directly, while the fused CPU kernel first copies keys and values to contiguous memory —
//!   a copy that grows with the position (measured with `examples/decode_speed.rs`: the late
//!   steps got ~25 % faster on flex).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear};
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Tensor};

use crate::init;
use crate::precision;
use crate::train_ops::{dropout, layer_norm_module, linear_chunks, softmax_last};

/// Configuration of [`Attention`].
#[derive(Config, Debug)]
pub struct AttentionConfig {
    /// Model width `C`.
    pub hidden_size: usize,
    /// Number of heads `H` (must divide `C`).
    pub num_heads: usize,
    /// Dropout on the attention probabilities (training only).
    #[config(default = 0.0)]
    pub attn_drop: f64,
    /// Dropout after the output projection (training only).
    #[config(default = 0.0)]
    pub proj_drop: f64,
    /// Epsilon of the QK LayerNorms.
    #[config(default = 1e-6)]
    pub norm_eps: f64,
}

impl AttentionConfig {
    /// Builds the layer with the reference initialisation (truncated normal 0.02 weights, zero
    /// biases, QK-norm scale 1 and bias 0).
    pub fn init(&self, device: &Device) -> Attention {
        let c = self.hidden_size;
        let d = c / self.num_heads;
        Attention {
            qkv: init::linear_trunc_normal(c, 3 * c, device),
            q_norm: init::layer_norm(d, self.norm_eps, device),
            k_norm: init::layer_norm(d, self.norm_eps, device),
            proj: init::linear_trunc_normal(c, c, device),
            attn_drop: DropoutConfig::new(self.attn_drop).init(),
            proj_drop: DropoutConfig::new(self.proj_drop).init(),
            num_heads: self.num_heads,
            norm_eps: self.norm_eps,
        }
    }
}

/// Causal multi-head self-attention with QK-LayerNorm (checkpoint prefix `blocks.{i}.attn`).
#[derive(Module, Debug)]
pub struct Attention {
    /// Joint Q/K/V projection `C → 3C` (with bias).
    pub qkv: Linear,
    /// LayerNorm over the head dimension applied to every query head.
    pub q_norm: LayerNorm,
    /// LayerNorm over the head dimension applied to every key head.
    pub k_norm: LayerNorm,
    /// Output projection `C → C`.
    pub proj: Linear,
    /// Dropout on the attention probabilities.
    pub attn_drop: Dropout,
    /// Dropout after the output projection.
    pub proj_drop: Dropout,
    /// Number of heads `H`.
    pub num_heads: usize,
    /// Epsilon of `q_norm` and `k_norm` (kept here because burn's `LayerNorm` hides its own).
    pub norm_eps: f64,
}

/// Whether a dropout layer will actually drop on this input (burn's rule: training flag set,
/// autodiff device, non-zero probability).
pub(crate) fn dropout_active(dropout: &Dropout, device: &Device) -> bool {
    dropout.prob > 0.0 && dropout.training.is_enabled() && device.is_autodiff()
}

/// Most query row blocks of the training attention (`Attention::attend` on an autodiff
/// device): more blocks skip more of the masked score matrix but slice `q`, `k`, `v` more often.
pub const QUERY_BLOCKS: usize = 8;

/// Fewest queries per row block of the training attention.
const MIN_QUERY_BLOCK: usize = 8;

/// Queries, keys and values of a chunk of positions, each `[B, H, L, d]`, Q and K normalised.
pub(crate) struct Qkv {
    pub q: Tensor<4>,
    pub k: Tensor<4>,
    pub v: Tensor<4>,
}

impl Attention {
    /// Projects `x` `[B, L, C]` to per-head Q, K, V (`[B, H, L, d]`) with QK-norm applied.
    pub(crate) fn project(&self, x: Tensor<3>) -> Qkv {
        let [b, l, c] = x.dims();
        let h = self.num_heads;
        let d = c / h;
        if x.device().is_autodiff() {
            // Three products with column blocks of the weight: the backward pass then never
            // builds a zero-padded `[B, L, 3C]` gradient per part (see `train_ops`).
            let mut parts = linear_chunks(&self.qkv, x, 3)
                .into_iter()
                .map(|t| t.reshape([b, l, h, d]));
            let mut next = || parts.next().expect("three qkv chunks");
            let (q, k, v) = (next(), next(), next());
            return Qkv {
                q: layer_norm_module(&self.q_norm, q, self.norm_eps).swap_dims(1, 2),
                k: layer_norm_module(&self.k_norm, k, self.norm_eps).swap_dims(1, 2),
                v: v.swap_dims(1, 2),
            };
        }
        // [B, L, 3C] → [B, L, 3, H, d]; the LayerNorm over d runs before the head transpose.
        let qkv = precision::linear(&self.qkv, x).reshape([b, l, 3, h, d]);
        let part = |i: usize| -> Tensor<4> {
            qkv.clone()
                .slice([0..b, 0..l, i..i + 1, 0..h, 0..d])
                .reshape([b, l, h, d])
        };
        let q = self.q_norm.forward(part(0)).swap_dims(1, 2);
        let k = self.k_norm.forward(part(1)).swap_dims(1, 2);
        let v = part(2).swap_dims(1, 2);
        Qkv { q, k, v }
    }

    /// Merges heads `[B, H, L, d]` → `[B, L, C]` and applies the output projection.
    pub(crate) fn output(&self, o: Tensor<4>) -> Tensor<3> {
        let [b, h, l, d] = o.dims();
        let o = o.swap_dims(1, 2).reshape([b, l, h * d]);
        dropout(&self.proj_drop, precision::linear(&self.proj, o))
    }

    /// Attention of `q` `[B, H, Lq, d]` over `k`, `v` `[B, H, Lk, d]` (`Lk ≥ Lq`), causal and
    /// bottom-right aligned: query `i` sees keys `0 … Lk − Lq + i`. Multi-query chunks without
    /// dropout use the fused kernel; a single query or active attention dropout the explicit
    /// path (see the module docs). Training on flex runs the fused host kernel with its own
    /// backward, attention dropout included ([`crate::flex_kernels`]); other autodiff devices
    /// the blocked explicit path.
    pub(crate) fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let lq = q.dims()[2];
        #[cfg(feature = "flex")]
        if q.device().is_autodiff()
            && self.attn_drop.prob < 1.0
            && crate::flex_kernels::fused_products_apply(&q.device(), q.dtype())
        {
            let device = q.device();
            let scale = 1.0 / (q.dims()[3] as f32).sqrt();
            let dropout = dropout_active(&self.attn_drop, &device).then(|| {
                let [seed] = crate::train_ops::device_seed_words::<1>(&device);
                rar_kernels::AttentionDropout {
                    keep: (1.0 - self.attn_drop.prob) as f32,
                    seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                }
            });
            return crate::flex_kernels::causal_attention(q, k, v, scale, dropout);
        }
        if q.device().is_autodiff() {
            self.attend_autodiff(q, k, v)
        } else if lq == 1 || dropout_active(&self.attn_drop, &q.device()) {
            self.attend_explicit(q, k, v)
        } else {
            let dtype = q.dtype();
            let out = attention(
                precision::to_compute_dtype(q),
                precision::to_compute_dtype(k),
                precision::to_compute_dtype(v),
                None,
                None,
                AttentionModuleOptions {
                    // A single query attends to every cached key: no mask needed.
                    is_causal: lq > 1,
                    ..Default::default()
                },
            );
            precision::to_dtype(out, dtype)
        }
    }

    /// The explicit (unfused) attention: `softmax(QKᵀ/√d + causal mask)`, dropout on the
    /// probabilities, times V. Same alignment as [`Self::attend`].
    pub(crate) fn attend_explicit(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let [_, _, lq, d] = q.dims();
        let lk = k.dims()[2];
        let scores = precision::matmul(q, k.swap_dims(2, 3)).mul_scalar(1.0 / (d as f64).sqrt());
        let scores = if lq > 1 {
            // burn's `tril_mask(shape, offset)` is true strictly above the (offset) diagonal,
            // i.e. exactly the positions to mask; offset `lk − lq` aligns bottom-right.
            let mask = Tensor::<2, Bool>::tril_mask([lq, lk], (lk - lq) as i64, &scores.device());
            scores.mask_fill(mask.unsqueeze::<4>(), f32::NEG_INFINITY)
        } else {
            scores
        };
        let probs = self.attn_drop.forward(softmax(scores, 3));
        precision::matmul(probs, v)
    }

    /// The attention of an autodiff device (training): the explicit path arranged for a cheap
    /// backward pass. burn has no fused attention backward, so it would decompose the fused
    /// call into the same operations anyway; here
    ///
    /// * the scale is applied to `q` (`L·d` values instead of `L²`);
    /// * the queries are processed in up to [`QUERY_BLOCKS`] row blocks, each against only the
    ///   keys it can see, so the fully masked upper-right blocks of the `L × L` score matrix are
    ///   never computed, exponentiated or differentiated (about 9/16 of the work for 8 blocks);
    /// * the causal mask is added (its backward is the identity, unlike `mask_fill`'s), and the
    ///   softmax multiplies by the reciprocal of the sum ([`softmax_last`]).
    ///
    /// Every query still sees exactly the keys `0 … Lk − Lq + i`, so the values equal those of
    /// [`Self::attend_explicit`] up to rounding.
    fn attend_autodiff(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let [b, h, lq, d] = q.dims();
        let lk = k.dims()[2];
        let offset = lk - lq;
        let q = q.mul_scalar(1.0 / (d as f64).sqrt());
        let blocks = (lq / MIN_QUERY_BLOCK).clamp(1, QUERY_BLOCKS);
        let mut outputs = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let (start, end) = (i * lq / blocks, (i + 1) * lq / blocks);
            // Query `start + r` sees keys `0 … offset + start + r`.
            let keys = offset + end;
            let part = |t: &Tensor<4>, range: std::ops::Range<usize>, len: usize| {
                if range.start == 0 && range.end == len {
                    t.clone()
                } else {
                    t.clone().slice([0..b, 0..h, range, 0..d])
                }
            };
            let scores = precision::matmul(
                part(&q, start..end, lq),
                part(&k, 0..keys, lk).swap_dims(2, 3),
            );
            let rows = end - start;
            // A single query sees all `keys`: nothing to mask.
            let scores = if rows > 1 {
                let device = scores.device();
                let mask =
                    Tensor::<2, Bool>::tril_mask([rows, keys], (offset + start) as i64, &device);
                let bias =
                    Tensor::<2>::zeros([rows, keys], &device).mask_fill(mask, f32::NEG_INFINITY);
                scores + bias.unsqueeze::<4>()
            } else {
                scores
            };
            let probs = dropout(&self.attn_drop, softmax_last(scores));
            outputs.push(precision::matmul(probs, part(&v, 0..keys, lk)));
        }
        if outputs.len() == 1 {
            outputs.pop().expect("one block")
        } else {
            Tensor::cat(outputs, 2)
        }
    }

    /// Full-sequence causal self-attention on `x` `[B, L, C]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let Qkv { q, k, v } = self.project(x);
        self.output(self.attend(q, k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let d: TensorData = (a - b).abs().max().into_data();
        d.try_into_vec_as::<f32>().unwrap()[0]
    }

    #[test]
    fn fused_and_explicit_paths_agree_and_align_bottom_right() {
        let device = Device::flex();
        let attn = AttentionConfig::new(16, 2).init(&device);
        let rand =
            |l: usize| Tensor::<4>::random([2, 2, l, 8], Distribution::Normal(0.0, 1.0), &device);
        let lk = 7;
        let (q_full, k, v) = (rand(lk), rand(lk), rand(lk));
        let full = attn.attend(q_full.clone(), k.clone(), v.clone());
        assert!(
            max_diff(
                full.clone(),
                attn.attend_explicit(q_full.clone(), k.clone(), v.clone())
            ) < 1e-5
        );
        for lq in [1, 2, 5] {
            // The last `lq` queries against all keys = the last `lq` rows of the full causal pass.
            let q = q_full.clone().slice([0..2, 0..2, lk - lq..lk, 0..8]);
            let want = full.clone().slice([0..2, 0..2, lk - lq..lk, 0..8]);
            let fused = attn.attend(q.clone(), k.clone(), v.clone());
            let explicit = attn.attend_explicit(q, k.clone(), v.clone());
            assert!(
                max_diff(fused.clone(), want.clone()) < 1e-5,
                "fused, lq = {lq}"
            );
            assert!(max_diff(explicit, want) < 1e-5, "explicit, lq = {lq}");
        }
        // Causality: the first query sees only the first key, so its output is v[0].
        let first = full.slice([0..2, 0..2, 0..1, 0..8]);
        assert!(max_diff(first, v.slice([0..2, 0..2, 0..1, 0..8])) < 1e-5);
    }

    /// The blocked training attention computes the values and gradients of the plain
    /// explicit path (one block, no skipping), for square and bottom-right-aligned shapes.
    #[test]
    fn blocked_training_attention_matches_the_explicit_path() {
        let device = Device::flex().autodiff();
        let attn = AttentionConfig::new(16, 2).init(&device);
        for (lq, lk) in [(1, 1), (9, 9), (18, 18), (40, 40), (17, 29)] {
            let rand = |l: usize| {
                Tensor::<4>::random([2, 2, l, 8], Distribution::Normal(0.0, 1.0), &device)
                    .require_grad()
            };
            let (q, k, v) = (rand(lq), rand(lk), rand(lk));
            // A weighted sum, so every output element gets its own upstream gradient.
            let w = Tensor::<4>::random([2, 2, lq, 8], Distribution::Default, &device);
            let grads_of = |out: Tensor<4>| {
                let g = (out * w.clone()).sum().backward();
                [&q, &k, &v].map(|t| t.grad(&g).expect("gradient"))
            };
            let blocked = attn.attend_autodiff(q.clone(), k.clone(), v.clone());
            let plain = attn.attend_explicit(q.clone(), k.clone(), v.clone());
            assert!(
                max_diff(blocked.clone().inner(), plain.clone().inner()) < 1e-5,
                "values, lq {lq} lk {lk}"
            );
            let (gb, gp) = (grads_of(blocked), grads_of(plain));
            for (name, (a, b)) in ["q", "k", "v"].iter().zip(gb.into_iter().zip(gp)) {
                let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
                assert!(max_diff(a, b) < 1e-4 * scale, "d{name}, lq {lq} lk {lk}");
            }
        }
    }

    /// `‖a − b‖ / ‖b‖`; a zero reference (the gradient of `q` when each query sees one key)
    /// is measured absolutely.
    fn rel_err(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let num = (a - b.clone())
            .powi_scalar(2)
            .sum()
            .sqrt()
            .into_scalar::<f32>();
        let den = b.powi_scalar(2).sum().sqrt().into_scalar::<f32>();
        if den < 1e-3 { num } else { num / den }
    }

    /// Training on flex runs the fused host kernel with its own backward
    /// (`flex_kernels::causal_attention`); its values and gradients are those of burn's
    /// decomposed explicit path, for square, bottom-right-aligned, strided (head-split) and
    /// partly untracked inputs.
    #[cfg(feature = "flex")]
    #[test]
    fn fused_flex_training_attention_matches_the_decomposed_path() {
        let device = Device::flex().autodiff();
        assert!(crate::flex_kernels::fused_products_apply(
            &device,
            burn::tensor::DType::F32
        ));
        let attn = AttentionConfig::new(64, 2).init(&device);
        for (lq, lk, d) in [
            (1, 1, 8),
            (9, 9, 32),
            (40, 40, 32),
            (17, 29, 20),
            (66, 66, 48),
        ] {
            // `[B, L, H, d]` swapped to `[B, H, L, d]`: a strided view, as the model makes it.
            let rand = |l: usize| {
                Tensor::<4>::random([2, l, 3, d], Distribution::Normal(0.0, 1.0), &device)
                    .require_grad()
            };
            let (q, k, v) = (rand(lq), rand(lk), rand(lk));
            let heads = |t: &Tensor<4>| t.clone().swap_dims(1, 2);
            let w = Tensor::<4>::random([2, 3, lq, d], Distribution::Default, &device);
            let grads_of = |out: Tensor<4>| {
                let g = (out * w.clone()).sum().backward();
                [&q, &k, &v].map(|t| t.grad(&g).expect("gradient"))
            };
            let fused = attn.attend(heads(&q), heads(&k), heads(&v));
            let plain = attn.attend_explicit(heads(&q), heads(&k), heads(&v));
            let err = rel_err(fused.clone().inner(), plain.clone().inner());
            assert!(err < 1e-5, "values, lq {lq} lk {lk} d {d}: rel err {err}");
            let (gf, gp) = (grads_of(fused), grads_of(plain));
            for (name, (a, b)) in ["q", "k", "v"].iter().zip(gf.into_iter().zip(gp)) {
                let err = rel_err(a, b);
                assert!(err < 1e-5, "d{name}, lq {lq} lk {lk} d {d}: rel err {err}");
            }
        }
        // Only `v` tracked: the node still gives `v` its gradient.
        let q = Tensor::<4>::random([1, 2, 5, 8], Distribution::Default, &device);
        let v = q.clone().require_grad();
        let g = attn
            .attend(q.clone(), q.clone(), v.clone())
            .sum()
            .backward();
        let want = attn
            .attend_explicit(q.clone(), q.clone(), v.clone())
            .sum()
            .backward();
        let err = rel_err(v.grad(&g).unwrap(), v.grad(&want).unwrap());
        assert!(err < 1e-5, "dv with untracked q, k: rel err {err}");
    }

    /// With attention dropout the fused kernel applies the mask its key gives
    /// ([`rar_kernels::causal_dropout_mask`]); burn's explicit path with that same mask has the
    /// same values and gradients. (The key is passed directly: drawing it from the device RNG
    /// after `device.seed` would race with the other tests drawing from the same device.)
    #[cfg(feature = "flex")]
    #[test]
    fn fused_flex_attention_dropout_matches_the_decomposed_path_with_its_mask() {
        use rar_kernels::{AttentionDropout, CausalShape, causal_dropout_mask};
        let device = Device::flex().autodiff();
        let (b, h, l, d) = (2, 2, 21, 16);
        let rand = || {
            Tensor::<4>::random([b, h, l, d], Distribution::Normal(0.0, 1.0), &device)
                .require_grad()
        };
        let (q, k, v) = (rand(), rand(), rand());
        let dropout = AttentionDropout {
            keep: 0.7,
            seed: 0x0123_4567_89AB_CDEF,
        };
        let scale = 1.0 / (d as f32).sqrt();
        let fused = crate::flex_kernels::causal_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            scale,
            Some(dropout),
        );
        let shape = CausalShape {
            pairs: b * h,
            queries: l,
            keys: l,
            head_dim: d,
        };
        let mask = Tensor::<4>::from_data(
            TensorData::new(causal_dropout_mask(dropout, shape), [b, h, l, l]),
            &device,
        );
        let scores = q
            .clone()
            .matmul(k.clone().swap_dims(2, 3))
            .mul_scalar(scale as f64);
        let causal = Tensor::<2, Bool>::tril_mask([l, l], 0, &device);
        let probs = softmax(
            scores.mask_fill(causal.unsqueeze::<4>(), f32::NEG_INFINITY),
            3,
        );
        let plain = (probs * mask).matmul(v.clone());
        let err = rel_err(fused.clone().inner(), plain.clone().inner());
        assert!(err < 1e-5, "values: rel err {err}");
        let w = Tensor::<4>::random([b, h, l, d], Distribution::Default, &device);
        let grads_of = |out: Tensor<4>| {
            let g = (out * w.clone()).sum().backward();
            [&q, &k, &v].map(|t| t.grad(&g).expect("gradient"))
        };
        for (name, (a, b)) in ["q", "k", "v"]
            .iter()
            .zip(grads_of(fused).into_iter().zip(grads_of(plain)))
        {
            let err = rel_err(a, b);
            assert!(err < 1e-5, "d{name}: rel err {err}");
        }
    }
}
