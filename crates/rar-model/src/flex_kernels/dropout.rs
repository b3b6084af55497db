//! Dropout on flex as one autodiff node ([`rar_kernels::dropout_scale`]): the mask is a hash
//! of (seed, index), so neither pass stores or allocates it, both run on rayon's threads, and
//! the backward regenerates it from the seed.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn_flex::FlexTensor;
use rar_kernels::{AttentionDropout, dropout_scale};

use super::{contiguous, from_vec, register, values};

/// `x · mask / keep` of a tensor (made contiguous).
pub(super) fn forward(x: FlexTensor, key: AttentionDropout) -> FlexTensor {
    let x = contiguous(x);
    let mut out = vec![0f32; x.layout().num_elements()];
    dropout_scale(values(&x), key, &mut out).unwrap_or_else(|e| panic!("fused dropout: {e}"));
    from_vec(out, x.layout().shape().clone())
}

/// Backward of the dropout: the output gradient through the same mask.
#[derive(Debug)]
pub(super) struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    type State = AttentionDropout;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let mut dx = vec![0f32; g.layout().num_elements()];
        dropout_scale(values(&g), ops.state, &mut dx)
            .unwrap_or_else(|e| panic!("fused dropout backward: {e}"));
        let [node] = ops.parents;
        register(grads, node.map(|n| n.id), dx, &g);
    }
}
