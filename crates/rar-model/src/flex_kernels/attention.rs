//! Fused causal attention on flex: [`rar_kernels::causal_attention_forward`] forward, one
//! autodiff node whose backward is [`rar_kernels::causal_attention_backward`]. Nothing of
//! size `L × L` is stored between the passes, only the output and one log-sum-exp per query
//! row (attention dropout included: its mask is regenerated from a key, not stored).

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Shape;
use burn_flex::FlexTensor;
use rar_kernels::{
    AttentionDropout, CausalOptions, CausalShape, HeadLayout, HeadView,
    causal_attention_backward_views, causal_attention_forward_views,
};

use super::from_vec;

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

/// A `[B, H, L, d]` tensor whose last dimension is contiguous (a copy otherwise), with the
/// view the kernels read it through: the head transpose `[B, L, H, d] → [B, H, L, d]` the
/// model applies is a strided view, read in place.
fn head_view(t: FlexTensor) -> (FlexTensor, HeadView) {
    let of = |t: &FlexTensor| {
        let layout = t.layout();
        let (shape, strides) = (layout.shape(), layout.strides());
        let stride = |i: usize| usize::try_from(strides[i]).ok();
        (shape.num_dims() == 4 && strides[3] == 1).then_some(())?;
        Some(HeadView {
            heads: shape[1],
            batch_stride: stride(0)?,
            head_stride: stride(1)?,
            row_stride: stride(2)?,
            offset: layout.start_offset(),
        })
    };
    match of(&t) {
        Some(view) => (t, view),
        None => {
            let t = t.to_contiguous();
            let view = of(&t).expect("a contiguous 4-d tensor has unit last stride");
            (t, view)
        }
    }
}

/// The whole buffer behind a tensor with the view that says where its values are.
fn viewed((t, view): &(FlexTensor, HeadView)) -> (&[f32], HeadView) {
    (t.storage::<f32>(), *view)
}

/// The layout to write results in: heads side by side when `q` has them so (the model's
/// `[B, L, H, d]` activations), so that merging the heads afterwards is free.
fn output_layout(q: &HeadView, head_dim: usize) -> HeadLayout {
    if q.head_stride == head_dim && q.heads > 1 {
        HeadLayout::HeadsLast
    } else {
        HeadLayout::PairMajor
    }
}

/// A `[B, H, L, d]` tensor of `values` written in `layout`.
fn in_layout(values: Vec<f32>, layout: HeadLayout, [b, h, l, d]: [usize; 4]) -> FlexTensor {
    match layout {
        HeadLayout::PairMajor => from_vec(values, Shape::new([b, h, l, d])),
        HeadLayout::HeadsLast => from_vec(values, Shape::new([b, l, h, d])).transpose(1, 2),
    }
}

fn dims(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

/// The inputs of the attention as the kernels read them.
#[derive(Clone, Debug)]
pub(super) struct AttentionInputs {
    q: (FlexTensor, HeadView),
    k: (FlexTensor, HeadView),
    v: (FlexTensor, HeadView),
}

impl AttentionInputs {
    pub(super) fn new(q: FlexTensor, k: FlexTensor, v: FlexTensor) -> Self {
        Self {
            q: head_view(q),
            k: head_view(k),
            v: head_view(v),
        }
    }

    /// The output `[B, H, Lq, d]` and the per-row log-sum-exp.
    pub(super) fn forward(&self, options: CausalOptions) -> (FlexTensor, Vec<f32>) {
        let shape = shape_of(&self.q.0, &self.k.0);
        let layout = output_layout(&self.q.1, shape.head_dim);
        let mut out = vec![0f32; shape.pairs * shape.queries * shape.head_dim];
        let mut lse = vec![0f32; shape.pairs * shape.queries];
        causal_attention_forward_views(
            viewed(&self.q),
            viewed(&self.k),
            viewed(&self.v),
            shape,
            options,
            (&mut out, layout),
            &mut lse,
        )
        .unwrap_or_else(|e| panic!("fused causal attention: {e}"));
        (in_layout(out, layout, dims(&self.q.0)), lse)
    }
}

#[derive(Clone, Debug)]
pub(super) struct AttentionState {
    pub inputs: AttentionInputs,
    pub out: FlexTensor,
    pub lse: Vec<f32>,
    pub options: CausalOptions,
}

#[derive(Debug)]
pub(super) struct CausalAttentionBackward;

impl Backward<Flex, 3> for CausalAttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = ops.state;
        let grad_out = head_view(grads.consume::<Flex>(&ops.node));
        let out = head_view(s.out);
        let AttentionInputs { q, k, v } = s.inputs;
        let shape = shape_of(&q.0, &k.0);
        let layout = output_layout(&q.1, shape.head_dim);
        let (mut gq, mut gk, mut gv) = (
            vec![0f32; q.0.layout().num_elements()],
            vec![0f32; k.0.layout().num_elements()],
            vec![0f32; v.0.layout().num_elements()],
        );
        causal_attention_backward_views(
            viewed(&q),
            viewed(&k),
            viewed(&v),
            viewed(&out),
            &s.lse,
            viewed(&grad_out),
            shape,
            s.options,
            layout,
            [&mut gq, &mut gk, &mut gv],
        )
        .unwrap_or_else(|e| panic!("fused causal attention backward: {e}"));
        let [node_q, node_k, node_v] = ops.parents;
        for (node, grad, like) in [(node_q, gq, &q.0), (node_k, gk, &k.0), (node_v, gv, &v.0)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, in_layout(grad, layout, dims(like)));
            }
        }
    }
}
