//! Softmax cross-entropy on flex as one autodiff node ([`rar_kernels::cross_entropy_forward`]
//! / [`rar_kernels::cross_entropy_backward`]): the decomposed `log_softmax`, `gather`, slice
//! and their backward are ~15 passes over the `[B, N + 1, V]` logits; this is one pass
//! forward (keeping a log-sum-exp per target) and one backward.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::Shape;
use burn_flex::FlexTensor;
use rar_kernels::{TokenShape, cross_entropy_backward, cross_entropy_forward};

use super::{contiguous, from_vec, register, values};

/// Logits `[B, P, V]` (contiguous) and the labels `[B, N]` of their first `N` positions.
#[derive(Clone, Debug)]
pub(super) struct CrossEntropyState {
    pub logits: FlexTensor,
    pub labels: Vec<i64>,
    pub shape: TokenShape,
    pub lse: Vec<f32>,
}

/// The per-target losses `[B, N]` and the state for the backward.
pub(super) fn forward(logits: FlexTensor, labels: FlexTensor) -> (FlexTensor, CrossEntropyState) {
    let logits = contiguous(logits);
    let (ls, ys) = (
        logits.layout().shape().clone(),
        labels.layout().shape().clone(),
    );
    assert!(
        ls.num_dims() == 3 && ys.num_dims() == 2 && ys[0] == ls[0],
        "fused cross entropy: logits {ls:?} and labels {ys:?} are not [B, P, V] and [B, N]"
    );
    let shape = TokenShape {
        batch: ls[0],
        positions: ls[1],
        targets: ys[1],
        vocab: ls[2],
    };
    let labels = labels
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("labels converted to i64");
    let rows = shape.batch * shape.targets;
    let (mut loss, mut lse) = (vec![0f32; rows], vec![0f32; rows]);
    cross_entropy_forward(values(&logits), &labels, shape, &mut loss, &mut lse)
        .unwrap_or_else(|e| panic!("fused cross entropy: {e}"));
    let state = CrossEntropyState {
        logits,
        labels,
        shape,
        lse,
    };
    (
        from_vec(loss, Shape::new([shape.batch, shape.targets])),
        state,
    )
}

/// Backward of the cross-entropy with respect to the logits.
#[derive(Debug)]
pub(super) struct CrossEntropyBackward;

impl Backward<Flex, 1> for CrossEntropyBackward {
    type State = CrossEntropyState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_loss = contiguous(grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let mut grad = vec![0f32; s.logits.layout().num_elements()];
        cross_entropy_backward(
            values(&s.logits),
            &s.labels,
            &s.lse,
            values(&grad_loss),
            s.shape,
            &mut grad,
        )
        .unwrap_or_else(|e| panic!("fused cross entropy backward: {e}"));
        let [node] = ops.parents;
        register(grads, node.map(|n| n.id), grad, &s.logits);
    }
}
