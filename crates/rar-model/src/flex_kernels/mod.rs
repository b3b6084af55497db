//! Fused CPU kernels of `rar-kernels` as a burn backend extension for flex, with their own
//! autodiff backward (issue #12).
//!
//! burn differentiates attention, LayerNorm, GELU and the cross-entropy as the pieces they
//! are written in — score matrices, reductions, broadcasts, exponentials — each a full pass
//! through memory in both directions, and on flex most of those passes run on one thread.
//! Here each is one autodiff node whose forward and backward are host kernels split over
//! rayon's threads:
//!
//! * [`linear`] — `x · W + b` straight into its output buffer (no zero fill, no alignment
//!   copy, transposes as strides in the backward);
//! * [`linear_chunks`] — `Linear(x).chunk(n)` whose backward registers one gradient per
//!   parameter instead of one per chunk;
//! * [`causal_attention`] — flash-style causal attention (nothing `L × L` kept);
//! * [`layer_norm`] — LayerNorm with affine parameters and, optionally, the adaLN
//!   modulation `· (1 + scale) + shift`;
//! * [`gelu`] — the exact (erf) GELU with its exact derivative;
//! * [`gated_residual`] — the adaLN gated residual `x + gate ⊙ y`;
//! * [`cross_entropy`] — softmax cross-entropy of next-token logits;
//! * [`dropout`] — element-wise dropout with a mask hashed from a seed (never stored).
//!
//! Every other backend (ndarray, wgpu, CUDA) keeps burn's decomposed path, so the model code
//! is the same everywhere; [`fused_ops_apply`] and [`fused_products_apply`] say where
//! these run.

mod api;
mod attention;
mod chunks;
mod cross_entropy;
mod dropout;
mod gelu;
mod linear;
mod norm;
mod residual;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Flex, backend_extension};
use burn::tensor::{DType, Device, Shape, TensorData};
use burn_flex::FlexTensor;
use rar_kernels::AttentionDropout;

pub use api::{
    causal_attention, cross_entropy, dropout, gated_residual, gelu, layer_norm, linear,
    linear_chunks,
};
use attention::{AttentionState, CausalAttentionBackward};
use cross_entropy::CrossEntropyBackward;
use dropout::DropoutBackward;
use gelu::GeluBackward;
use linear::{LinearBackward, LinearState};
use norm::{LayerNormBackward, ModulatedLayerNormBackward, NormInputs, NormState};
use residual::GatedResidualBackward;

/// Host kernels reachable from a `Tensor` on flex (plain or autodiff).
#[backend_extension(Autodiff, Flex)]
pub trait FusedCpuOps: burn::backend::Backend {
    /// `softmax(scale·q·kᵀ + causal mask)·v` for `q` `[B, H, Lq, d]` and `k`, `v`
    /// `[B, H, Lk, d]`, the mask aligned bottom-right (query `i` sees keys `0 … Lk − Lq + i`);
    /// with `keep < 1` the probabilities are dropped out with keep probability `keep` by the
    /// mask that `seed` keys ([`rar_kernels::AttentionDropout`]).
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        keep: f32,
        seed: u64,
    ) -> FloatTensor<Self>;

    /// `x · weight + bias` for `x` `[…, K]`, `weight` `[K, N]`, `bias` `[N]`.
    fn linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `x` itself, as the input of `count` [`FusedCpuOps::chunk_product`]s of `weight` `[K, N]`
    /// and `bias` `[N]` (their gradients are gathered here, [`chunks`]).
    fn chunk_source(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        count: usize,
    ) -> FloatTensor<Self>;

    /// Block `index` of `count` equal column blocks of `source · weight + bias`, `source` the
    /// output of a [`FusedCpuOps::chunk_source`] of the same `weight` and `bias`.
    fn chunk_product(
        source: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        index: usize,
        count: usize,
    ) -> FloatTensor<Self>;

    /// LayerNorm over the last dimension, `· gamma + beta` (both `[C]`).
    fn layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self>;

    /// [`FusedCpuOps::layer_norm`] followed by `· (1 + scale) + shift` (both shaped as `x`).
    fn modulated_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self>;

    /// Exact GELU `x·Φ(x)`.
    fn gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `x + gate ⊙ y` (all three of one shape).
    fn gated_residual(
        x: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        y: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `x · mask / keep`, the mask keyed by `seed` ([`rar_kernels::dropout_scale`]).
    fn dropout(x: FloatTensor<Self>, keep: f32, seed: u64) -> FloatTensor<Self>;

    /// Per-target cross-entropy `[B, N]` of `logits` `[B, P, V]` (`P ≥ N`; positions `N…`
    /// are unlabelled) against `labels` `[B, N]`.
    fn cross_entropy(logits: FloatTensor<Self>, labels: IntTensor<Self>) -> FloatTensor<Self>;
}

/// Whether the fused LayerNorm, GELU and cross-entropy run for tensors on `device` of
/// `dtype`: flex and f32 (elsewhere callers use burn's decomposed operations).
pub fn fused_ops_apply(device: &Device, dtype: DType) -> bool {
    *device == Device::flex() && dtype == DType::F32
}

/// Whether [`linear`] and [`causal_attention`] run for tensors on `device` of `dtype`:
/// [`fused_ops_apply`] and f32 products (under [`crate::ComputePrecision::Bf16`] products keep
/// burn's path, rounded to bf16 like the reference's autocast).
pub fn fused_products_apply(device: &Device, dtype: DType) -> bool {
    fused_ops_apply(device, dtype)
        && crate::precision::compute_precision() == crate::ComputePrecision::F32
}

/// The tensor in row-major order (a copy only when it is a strided view).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("contiguous f32 after `contiguous`")
}

fn from_vec(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `n` values written by `fill` into a buffer that is not zeroed first (for the kernels'
/// `_uninit` forms: zeroing a buffer the kernel overwrites anyway was a pass through memory
/// per output).
///
/// # Safety
/// `fill` must write every one of the `n` values (or panic).
unsafe fn written(n: usize, fill: impl FnOnce(&mut [std::mem::MaybeUninit<f32>])) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    fill(&mut out.spare_capacity_mut()[..n]);
    // SAFETY: `fill` wrote all `n` values (the caller's contract).
    unsafe { out.set_len(n) };
    out
}

/// Adds `grad` (shaped like `like`) to the gradient of `node`, if it is tracked.
fn register(grads: &mut Gradients, node: Option<NodeId>, grad: Vec<f32>, like: &FlexTensor) {
    if let Some(node) = node {
        grads.register::<Flex>(node, from_vec(grad, like.layout().shape().clone()));
    }
}

impl FusedCpuOps for Flex {
    fn causal_attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        scale: f32,
        keep: f32,
        seed: u64,
    ) -> FlexTensor {
        attention::AttentionInputs::new(q, k, v)
            .forward(attention::options(scale, keep, seed))
            .0
    }

    fn linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        LinearState::new(x, weight, bias).forward()
    }

    fn chunk_source(x: FlexTensor, _: FlexTensor, _: FlexTensor, _: usize) -> FlexTensor {
        contiguous(x)
    }

    fn chunk_product(
        source: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        index: usize,
        count: usize,
    ) -> FlexTensor {
        chunks::product(
            &chunks::SourceState::new(source, weight, count),
            &bias,
            index,
        )
    }

    fn layer_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, eps: f32) -> FlexTensor {
        NormInputs::new(x, gamma, beta, None, eps).forward().0
    }

    fn modulated_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        shift: FlexTensor,
        scale: FlexTensor,
        eps: f32,
    ) -> FlexTensor {
        NormInputs::new(x, gamma, beta, Some((shift, scale)), eps)
            .forward()
            .0
    }

    fn gelu(x: FlexTensor) -> FlexTensor {
        gelu::forward(&contiguous(x))
    }

    fn gated_residual(x: FlexTensor, gate: FlexTensor, y: FlexTensor) -> FlexTensor {
        residual::forward(x, gate, y).0
    }

    fn cross_entropy(logits: FlexTensor, labels: FlexTensor) -> FlexTensor {
        cross_entropy::forward(logits, labels).0
    }

    fn dropout(x: FlexTensor, keep: f32, seed: u64) -> FlexTensor {
        dropout::forward(x, AttentionDropout { keep, seed })
    }
}

/// Records `output` with `state` for `backward` when any parent is tracked.
fn finish<B, S, C, const N: usize>(
    kind: OpsKind<B, Flex, S, C, N>,
    state: impl FnOnce() -> S,
    output: FlexTensor,
) -> FloatTensor<Autodiff<Flex, C>>
where
    B: Backward<Flex, N, State = S>,
    S: Clone + Send + std::fmt::Debug + 'static,
    C: CheckpointStrategy,
{
    match kind {
        OpsKind::Tracked(prep) => prep.finish(state(), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}

impl<C: CheckpointStrategy> FusedCpuOps for Autodiff<Flex, C> {
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
        keep: f32,
        seed: u64,
    ) -> FloatTensor<Self> {
        let options = attention::options(scale, keep, seed);
        let kind = CausalAttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful();
        let inputs = attention::AttentionInputs::new(
            q.primitive().clone(),
            k.primitive().clone(),
            v.primitive().clone(),
        );
        let (out, lse) = inputs.forward(options);
        let state = || AttentionState {
            inputs,
            out: out.clone(),
            lse,
            options,
        };
        finish(kind, state, out.clone())
    }

    fn linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let kind = LinearBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let state = LinearState::new(
            x.primitive().clone(),
            weight.primitive().clone(),
            bias.primitive().clone(),
        );
        let out = state.forward();
        finish(kind, || state, out)
    }

    fn chunk_source(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        count: usize,
    ) -> FloatTensor<Self> {
        let kind = chunks::ChunkSource
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        // Contiguous once here, so that no chunk product copies it again.
        let input = contiguous(x.primitive().clone());
        let state = || chunks::SourceState::new(input.clone(), weight.primitive().clone(), count);
        finish(kind, state, input.clone())
    }

    fn chunk_product(
        source: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        index: usize,
        count: usize,
    ) -> FloatTensor<Self> {
        let kind = chunks::ChunkProduct
            .prepare::<C>([source.node()])
            .compute_bound()
            .stateful();
        let state = chunks::SourceState::new(
            source.primitive().clone(),
            weight.primitive().clone(),
            count,
        );
        let out = chunks::product(&state, bias.primitive(), index);
        finish(kind, || (index, count), out)
    }

    fn layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        let kind = LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let inputs = NormInputs::new(
            x.primitive().clone(),
            gamma.primitive().clone(),
            beta.primitive().clone(),
            None,
            eps,
        );
        let (out, stats) = inputs.forward();
        finish(kind, || NormState { inputs, stats }, out)
    }

    fn modulated_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        let kind = ModulatedLayerNormBackward
            .prepare::<C>([
                x.node(),
                gamma.node(),
                beta.node(),
                shift.node(),
                scale.node(),
            ])
            .compute_bound()
            .stateful();
        let inputs = NormInputs::new(
            x.primitive().clone(),
            gamma.primitive().clone(),
            beta.primitive().clone(),
            Some((shift.primitive().clone(), scale.primitive().clone())),
            eps,
        );
        let (out, stats) = inputs.forward();
        finish(kind, || NormState { inputs, stats }, out)
    }

    fn gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let kind = GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let input = contiguous(x.primitive().clone());
        let out = gelu::forward(&input);
        finish(kind, || input, out)
    }

    fn gated_residual(
        x: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        y: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let kind = GatedResidualBackward
            .prepare::<C>([x.node(), gate.node(), y.node()])
            .compute_bound()
            .stateful();
        let (out, state) = residual::forward(
            x.primitive().clone(),
            gate.primitive().clone(),
            y.primitive().clone(),
        );
        finish(kind, || state, out)
    }

    fn dropout(x: FloatTensor<Self>, keep: f32, seed: u64) -> FloatTensor<Self> {
        let key = AttentionDropout { keep, seed };
        let kind = DropoutBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let out = dropout::forward(x.primitive().clone(), key);
        finish(kind, || key, out)
    }

    fn cross_entropy(logits: FloatTensor<Self>, labels: FlexTensor) -> FloatTensor<Self> {
        let kind = CrossEntropyBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful();
        let (loss, state) = cross_entropy::forward(logits.primitive().clone(), labels);
        finish(kind, || state, loss)
    }
}

#[cfg(test)]
mod tests;
