//! Fused CPU kernels of `rar-kernels` as a burn backend extension for flex, with their own
//! autodiff backward (issue #12).
//!
//! burn differentiates attention as the pieces it is written in: a score matrix, its mask,
//! exponentials, a row sum, a product, each a full pass through memory in both directions.
//! On flex, [`causal_attention`] runs [`rar_kernels::causal_attention_forward`] instead and
//! records one autodiff node whose backward is [`rar_kernels::causal_attention_backward`]:
//! nothing of size `L × L` is stored between the passes, only the output and one log-sum-exp
//! per query row (attention dropout included: its mask is regenerated from a key, not
//! stored). Every other backend (ndarray, wgpu, CUDA) keeps burn's decomposed path, so
//! the model code is the same everywhere; [`fused_attention_applies`] says which one runs.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};
use burn_flex::FlexTensor;
use rar_kernels::{
    AttentionDropout, CausalOptions, CausalShape, causal_attention_backward,
    causal_attention_forward,
};

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
}

/// Whether [`causal_attention`] runs the fused kernel for tensors on `device` of `dtype`:
/// flex, f32 tensors, f32 products (under [`crate::ComputePrecision::Bf16`] the attention
/// keeps burn's path, whose products are rounded to bf16 like the reference's autocast);
/// elsewhere callers use burn's decomposed attention.
pub fn fused_attention_applies(device: &Device, dtype: DType) -> bool {
    *device == Device::flex()
        && dtype == DType::F32
        && crate::precision::compute_precision() == crate::ComputePrecision::F32
}

/// Fused causal attention of `q` `[B, H, Lq, d]` over `k`, `v` `[B, H, Lk, d]` (`Lk ≥ Lq`) on
/// flex, with optional dropout on the probabilities; differentiable when the tensors are on
/// an autodiff device. Callers check [`fused_attention_applies`] first.
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

/// The kernel's options for the extension's arguments (`keep = 1`: no dropout).
fn options(scale: f32, keep: f32, seed: u64) -> CausalOptions {
    CausalOptions {
        scale,
        dropout: (keep < 1.0).then_some(AttentionDropout { keep, seed }),
    }
}

/// `[B, H, L, d]` of a 4-d shape as the kernel's sizes.
fn shape_of(q: &FlexTensor, k: &FlexTensor) -> CausalShape {
    let (qs, ks) = (q.layout().shape(), k.layout().shape());
    CausalShape {
        pairs: qs[0] * qs[1],
        queries: qs[2],
        keys: ks[2],
        head_dim: qs[3],
    }
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

/// Forward on host buffers: the output and the per-row log-sum-exp.
fn forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    options: CausalOptions,
) -> (FlexTensor, Vec<f32>) {
    let shape = shape_of(q, k);
    let mut out = vec![0f32; shape.pairs * shape.queries * shape.head_dim];
    let mut lse = vec![0f32; shape.pairs * shape.queries];
    causal_attention_forward(
        values(q),
        values(k),
        values(v),
        shape,
        options,
        &mut out,
        &mut lse,
    )
    .unwrap_or_else(|e| panic!("fused causal attention: {e}"));
    (from_vec(out, q.layout().shape().clone()), lse)
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
        let (q, k, v) = (contiguous(q), contiguous(k), contiguous(v));
        forward(&q, &k, &v, options(scale, keep, seed)).0
    }
}

/// What the backward pass needs: the inputs, the output and the log-sum-exp of each row.
#[derive(Clone, Debug)]
struct AttentionState {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    out: FlexTensor,
    lse: Vec<f32>,
    options: CausalOptions,
}

#[derive(Debug)]
struct CausalAttentionBackward;

impl Backward<Flex, 3> for CausalAttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let shape = shape_of(&s.q, &s.k);
        let (mut gq, mut gk, mut gv) = (
            vec![0f32; s.q.layout().num_elements()],
            vec![0f32; s.k.layout().num_elements()],
            vec![0f32; s.v.layout().num_elements()],
        );
        causal_attention_backward(
            values(&s.q),
            values(&s.k),
            values(&s.v),
            values(&s.out),
            &s.lse,
            values(&grad_out),
            shape,
            s.options,
            &mut gq,
            &mut gk,
            &mut gv,
        )
        .unwrap_or_else(|e| panic!("fused causal attention backward: {e}"));
        let [node_q, node_k, node_v] = ops.parents;
        for (node, grad, like) in [(node_q, gq, &s.q), (node_k, gk, &s.k), (node_v, gv, &s.v)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, from_vec(grad, like.layout().shape().clone()));
            }
        }
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
        let options = options(scale, keep, seed);
        let prep = CausalAttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful();
        let (q, k, v) = (
            contiguous(q.primitive().clone()),
            contiguous(k.primitive().clone()),
            contiguous(v.primitive().clone()),
        );
        let (out, lse) = forward(&q, &k, &v, options);
        match prep {
            OpsKind::Tracked(prep) => {
                let state = AttentionState {
                    q,
                    k,
                    v,
                    out: out.clone(),
                    lse,
                    options,
                };
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}
