//! Fused causal attention on flex: [`rar_kernels::causal_attention_forward`] forward, one
//! autodiff node whose backward is [`rar_kernels::causal_attention_backward`]. Nothing of
//! size `L × L` is stored between the passes, only the output and one log-sum-exp per query
//! row (attention dropout included: its mask is regenerated from a key, not stored).

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn_flex::FlexTensor;
use rar_kernels::{
    AttentionDropout, CausalOptions, CausalShape, causal_attention_backward,
    causal_attention_forward,
};

use super::{contiguous, from_vec, register, values};

/// The kernel's options for the extension's arguments (`keep = 1`: no dropout).
pub(super) fn options(scale: f32, keep: f32, seed: u64) -> CausalOptions {
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

/// Forward on host buffers (made contiguous): the output and the per-row log-sum-exp.
pub(super) fn forward(
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

/// What the backward pass needs: the inputs, the output and the log-sum-exp of each row.
#[derive(Clone, Debug)]
pub(super) struct AttentionState {
    pub q: FlexTensor,
    pub k: FlexTensor,
    pub v: FlexTensor,
    pub out: FlexTensor,
    pub lse: Vec<f32>,
    pub options: CausalOptions,
}

#[derive(Debug)]
pub(super) struct CausalAttentionBackward;

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
        register(grads, node_q.map(|n| n.id), gq, &s.q);
        register(grads, node_k.map(|n| n.id), gk, &s.k);
        register(grads, node_v.map(|n| n.id), gv, &s.v);
    }
}
