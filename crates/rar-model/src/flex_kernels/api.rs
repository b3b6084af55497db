//! The fused operations as `Tensor` functions: each hands its tensors to the backend
//! extension ([`FusedCpuOps`]) through burn's dispatch backend.

use burn::backend::Dispatch;
use burn::tensor::{Int, Tensor};
use rar_kernels::AttentionDropout;

use super::FusedCpuOps;
#[cfg(doc)]
use super::{fused_ops_apply, fused_products_apply};

/// Fused causal attention of `q` `[B, H, Lq, d]` over `k`, `v` `[B, H, Lk, d]` (`Lk ≥ Lq`) on
/// flex, with optional dropout on the probabilities; differentiable when the tensors are on
/// an autodiff device. Callers check [`fused_products_apply`] first.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    scale: f32,
    dropout: Option<AttentionDropout>,
) -> Tensor<4> {
    let (keep, seed) = dropout.map_or((1.0, 0), |d| (d.keep, d.seed));
    Tensor::from_dispatch(<Dispatch as FusedCpuOps>::causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
        keep,
        seed,
    ))
}

/// Fused `x · weight + bias` (`weight` `[K, N]`; no bias: 0). Callers check
/// [`fused_products_apply`] first (f32 products).
pub fn linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[1]], &x.device()));
    Tensor::from_dispatch(<Dispatch as FusedCpuOps>::linear(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// `x · weight + bias` split into `n` equal blocks of the last dimension (`weight` `[K, N]`,
/// `n` dividing `N`): `n` products whose backward gathers their gradients into one gradient
/// per parameter ([`super::chunks`]). Callers check [`fused_products_apply`] first (f32
/// products).
pub fn linear_chunks<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    n: usize,
) -> Vec<Tensor<D>> {
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[1]], &x.device()));
    let (weight, bias) = (weight.into_dispatch(), bias.into_dispatch());
    let source =
        <Dispatch as FusedCpuOps>::chunk_source(x.into_dispatch(), weight.clone(), bias.clone(), n);
    (0..n)
        .map(|i| {
            Tensor::from_dispatch(<Dispatch as FusedCpuOps>::chunk_product(
                source.clone(),
                weight.clone(),
                bias.clone(),
                i,
                n,
            ))
        })
        .collect()
}

/// Fused LayerNorm over the last dimension of `x` with optional affine parameters (absent:
/// 1 and 0) and an optional adaLN modulation `(shift, scale)`, each shaped as `x`. Callers
/// check [`fused_ops_apply`] first.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Option<Tensor<1>>,
    beta: Option<Tensor<1>>,
    modulation: Option<(Tensor<D>, Tensor<D>)>,
    eps: f64,
) -> Tensor<D> {
    let (c, device) = (x.dims()[D - 1], x.device());
    let gamma = gamma.unwrap_or_else(|| Tensor::ones([c], &device));
    let beta = beta.unwrap_or_else(|| Tensor::zeros([c], &device));
    let (x, gamma, beta) = (
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
    );
    Tensor::from_dispatch(match modulation {
        Some((shift, scale)) => <Dispatch as FusedCpuOps>::modulated_layer_norm(
            x,
            gamma,
            beta,
            shift.into_dispatch(),
            scale.into_dispatch(),
            eps as f32,
        ),
        None => <Dispatch as FusedCpuOps>::layer_norm(x, gamma, beta, eps as f32),
    })
}

/// Fused exact GELU. Callers check [`fused_ops_apply`] first.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedCpuOps>::gelu(x.into_dispatch()))
}

/// Fused `x + gate ⊙ y` (all three of one shape). Callers check [`fused_ops_apply`] first.
pub fn gated_residual<const D: usize>(x: Tensor<D>, gate: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedCpuOps>::gated_residual(
        x.into_dispatch(),
        gate.into_dispatch(),
        y.into_dispatch(),
    ))
}

/// Fused dropout of `x` with the mask `key` defines (keep probability and seed). Callers
/// check [`fused_ops_apply`] first.
pub fn dropout<const D: usize>(x: Tensor<D>, key: AttentionDropout) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as FusedCpuOps>::dropout(
        x.into_dispatch(),
        key.keep,
        key.seed,
    ))
}

/// Fused per-target cross-entropy `[B, N]` of `logits` `[B, P, V]` against `labels` `[B, N]`.
/// Callers check [`fused_ops_apply`] first.
pub fn cross_entropy(logits: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as FusedCpuOps>::cross_entropy(
        logits.into_dispatch(),
        labels.into_dispatch(),
    ))
}
