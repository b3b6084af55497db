//! The adaLN gated residual `x + gate ⊙ y` on flex as one autodiff node
//! ([`rar_kernels::gated_residual_forward`] / [`rar_kernels::gated_residual_backward`]): one
//! multi-threaded pass each way instead of burn's product and sum forward and two products
//! backward, each on one thread at these sizes.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn_flex::FlexTensor;
use rar_kernels::{gated_residual_backward_uninit, gated_residual_forward_uninit};

use super::{contiguous, from_vec, register, values, written};

/// The gate and branch output (contiguous), kept for the backward.
#[derive(Clone, Debug)]
pub(super) struct ResidualState {
    gate: FlexTensor,
    y: FlexTensor,
}

/// `x + gate ⊙ y` (all three of one shape) and the state its backward needs.
pub(super) fn forward(
    x: FlexTensor,
    gate: FlexTensor,
    y: FlexTensor,
) -> (FlexTensor, ResidualState) {
    let (x, gate, y) = (contiguous(x), contiguous(gate), contiguous(y));
    let shapes = [
        x.layout().shape(),
        gate.layout().shape(),
        y.layout().shape(),
    ];
    assert!(
        shapes[1] == shapes[0] && shapes[2] == shapes[0],
        "fused gated residual: shapes {shapes:?} differ"
    );
    // SAFETY: the kernel writes every value of an output as long as its inputs (or errs, and
    // we panic).
    let out = unsafe {
        written(x.layout().num_elements(), |out| {
            gated_residual_forward_uninit(values(&x), values(&gate), values(&y), out)
                .unwrap_or_else(|e| panic!("fused gated residual: {e}"))
        })
    };
    let out = from_vec(out, x.layout().shape().clone());
    (out, ResidualState { gate, y })
}

/// Backward of the gated residual (parents `x`, `gate`, `y`): `x` receives the output
/// gradient itself, `gate` and `y` their products in one pass.
#[derive(Debug)]
pub(super) struct GatedResidualBackward;

impl Backward<Flex, 3> for GatedResidualBackward {
    type State = ResidualState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let ResidualState { gate, y } = ops.state;
        let [node_x, node_gate, node_y] = ops.parents.map(|p| p.map(|n| n.id));
        if node_gate.is_some() || node_y.is_some() {
            let n = g.layout().num_elements();
            let (mut dg, mut dy) = (Vec::with_capacity(n), Vec::with_capacity(n));
            gated_residual_backward_uninit(
                values(&g),
                values(&gate),
                values(&y),
                &mut dg.spare_capacity_mut()[..n],
                &mut dy.spare_capacity_mut()[..n],
            )
            .unwrap_or_else(|e| panic!("fused gated residual backward: {e}"));
            // SAFETY: the kernel wrote all `n` values of both (it returned `Ok`).
            unsafe {
                dg.set_len(n);
                dy.set_len(n);
            }
            register(grads, node_gate, dg, &gate);
            register(grads, node_y, dy, &y);
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(node, g);
        }
    }
}
