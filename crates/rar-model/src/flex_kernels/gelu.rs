//! Exact GELU on flex as one autodiff node ([`rar_kernels::gelu_forward`] /
//! [`rar_kernels::gelu_backward`]): burn's composition from `erf` records five element-wise
//! operations and differentiates each; this reads the input once forward and once backward.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn_flex::FlexTensor;
use rar_kernels::{gelu_backward_uninit, gelu_forward_uninit};

use super::{contiguous, from_vec, register, values, written};

/// `x·Φ(x)` of a contiguous tensor.
pub(super) fn forward(x: &FlexTensor) -> FlexTensor {
    // SAFETY: `gelu_forward_uninit` writes every value of an output as long as its input (or
    // it errs, and we panic).
    let out = unsafe {
        written(x.layout().num_elements(), |out| {
            gelu_forward_uninit(values(x), out).unwrap_or_else(|e| panic!("fused gelu: {e}"))
        })
    };
    from_vec(out, x.layout().shape().clone())
}

/// Backward of the exact GELU; its state is the (contiguous) input.
#[derive(Debug)]
pub(super) struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = contiguous(grads.consume::<Flex>(&ops.node));
        let x = ops.state;
        // SAFETY: as in the forward.
        let dx = unsafe {
            written(x.layout().num_elements(), |dx| {
                gelu_backward_uninit(values(&x), values(&grad_out), dx)
                    .unwrap_or_else(|e| panic!("fused gelu backward: {e}"))
            })
        };
        let [node] = ops.parents;
        register(grads, node.map(|n| n.id), dx, &x);
    }
}
