//! LayerNorm (+ affine, + adaLN modulation) on flex as one autodiff node:
//! [`rar_kernels::layer_norm_forward`] keeps the mean and `1/σ` of each row, and the
//! backward, [`rar_kernels::layer_norm_backward`], recomputes the normalised rows from them
//! in one pass. burn would record ~8 operations for the norm and 3 for the modulation, and
//! differentiate each as a pass of its own.

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn_flex::FlexTensor;
use rar_kernels::{NormAffine, NormGrads, NormModulation, layer_norm_backward, layer_norm_forward};

use super::{contiguous, from_vec, register, values};

/// The inputs of a (modulated) LayerNorm, contiguous, kept for the backward.
#[derive(Clone, Debug)]
pub(super) struct NormInputs {
    pub x: FlexTensor,
    pub gamma: FlexTensor,
    pub beta: FlexTensor,
    /// `(shift, scale)` of the adaLN modulation.
    pub modulation: Option<(FlexTensor, FlexTensor)>,
    pub eps: f32,
}

impl NormInputs {
    pub fn new(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        modulation: Option<(FlexTensor, FlexTensor)>,
        eps: f32,
    ) -> Self {
        Self {
            x: contiguous(x),
            gamma: contiguous(gamma),
            beta: contiguous(beta),
            modulation: modulation.map(|(s, c)| (contiguous(s), contiguous(c))),
            eps,
        }
    }

    fn width(&self) -> usize {
        let shape = self.x.layout().shape();
        shape[shape.num_dims() - 1]
    }

    fn affine(&self) -> NormAffine<'_> {
        NormAffine {
            gamma: Some(values(&self.gamma)),
            beta: Some(values(&self.beta)),
        }
    }

    fn modulation(&self) -> Option<NormModulation<'_>> {
        self.modulation
            .as_ref()
            .map(|(shift, scale)| NormModulation {
                shift: values(shift),
                scale: values(scale),
            })
    }

    /// The output and the per-row statistics.
    pub fn forward(&self) -> (FlexTensor, Vec<f32>) {
        let n = self.x.layout().num_elements();
        let mut out = vec![0f32; n];
        let mut stats = vec![0f32; 2 * (n / self.width().max(1))];
        layer_norm_forward(
            values(&self.x),
            self.width(),
            self.affine(),
            self.modulation(),
            self.eps,
            &mut out,
            &mut stats,
        )
        .unwrap_or_else(|e| panic!("fused layer norm: {e}"));
        (from_vec(out, self.x.layout().shape().clone()), stats)
    }
}

/// What the backward needs: the inputs and the per-row statistics.
#[derive(Clone, Debug)]
pub(super) struct NormState {
    pub inputs: NormInputs,
    pub stats: Vec<f32>,
}

/// The gradients of the inputs whose node is given: `[x, gamma, beta, shift, scale]`.
fn backward(
    state: &NormState,
    grad_out: FlexTensor,
    nodes: [Option<NodeId>; 5],
    grads: &mut Gradients,
) {
    let grad_out = contiguous(grad_out);
    let s = &state.inputs;
    let (n, width) = (s.x.layout().num_elements(), s.width());
    let [node_x, node_gamma, node_beta, node_shift, node_scale] = nodes;
    let mut gx = vec![0f32; n];
    let mut gg = node_gamma.map(|_| vec![0f32; width]);
    let mut gb = node_beta.map(|_| vec![0f32; width]);
    let mut gs = node_scale.map(|_| vec![0f32; n]);
    layer_norm_backward(
        values(&s.x),
        width,
        s.affine(),
        s.modulation(),
        &state.stats,
        values(&grad_out),
        NormGrads {
            x: &mut gx,
            gamma: gg.as_deref_mut(),
            beta: gb.as_deref_mut(),
            scale: gs.as_deref_mut(),
        },
    )
    .unwrap_or_else(|e| panic!("fused layer norm backward: {e}"));
    register(grads, node_x, gx, &s.x);
    if let Some(g) = gg {
        register(grads, node_gamma, g, &s.gamma);
    }
    if let Some(g) = gb {
        register(grads, node_beta, g, &s.beta);
    }
    if let (Some(g), Some((_, scale))) = (gs, &s.modulation) {
        register(grads, node_scale, g, scale);
    }
    if let Some(node) = node_shift {
        // d out / d shift is the identity.
        grads.register::<Flex>(node, grad_out);
    }
}

/// Backward of the unmodulated norm (parents `x`, `gamma`, `beta`).
#[derive(Debug)]
pub(super) struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = grads.consume::<Flex>(&ops.node);
        let [x, g, b] = ops.parents.map(|p| p.map(|n| n.id));
        backward(&ops.state, grad_out, [x, g, b, None, None], grads);
    }
}

/// Backward of the modulated norm (parents `x`, `gamma`, `beta`, `shift`, `scale`).
#[derive(Debug)]
pub(super) struct ModulatedLayerNormBackward;

impl Backward<Flex, 5> for ModulatedLayerNormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = grads.consume::<Flex>(&ops.node);
        let nodes = ops.parents.map(|p| p.map(|n| n.id));
        backward(&ops.state, grad_out, nodes, grads);
    }
}
