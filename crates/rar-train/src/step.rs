//! Forward and backward of one micro-batch.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use rar_data::RecordBatch;
use rar_model::{
    ComputePrecision, Rar, RarInput, RarOutput, on_compute_threads, with_compute_precision,
};

use crate::device_rng::device_rng;
use crate::error::{Result, TrainError};
use crate::inputs::TrainingInputs;
use crate::optimizer::scalar;

/// The result of a forward and backward pass.
pub struct BackwardPass {
    /// Gradients of the loss for every parameter (on the inner, non-autodiff device).
    pub grads: GradientsParams,
    /// The mean cross-entropy (detached, 1 element).
    pub loss: Tensor<1>,
    /// The token accuracy (detached, 1 element).
    pub accuracy: Tensor<1>,
}

/// Forward and backward of the training loss for `input` (the model must live on an autodiff
/// device, and is in training mode: dropout is active as configured). The loss is multiplied
/// by `loss_scale` before the backward pass (`1 / micro-batches` when gradients of several
/// micro-batches are summed into one step); the returned loss is unscaled.
pub fn forward_backward(model: &Rar, input: RarInput, loss_scale: f64) -> Result<BackwardPass> {
    on_compute_threads(&model.device(), || {
        backward(model, model.forward(input)?, loss_scale)
    })
}

/// The backward pass of a forward output (see [`forward_backward`]).
fn backward(model: &Rar, out: RarOutput, loss_scale: f64) -> Result<BackwardPass> {
    let loss = out.loss();
    let accuracy = out.accuracy().detach();
    let scaled = if loss_scale == 1.0 {
        loss.clone()
    } else {
        loss.clone().mul_scalar(loss_scale)
    };
    let grads = GradientsParams::from_grads(scaled.backward(), model);
    if grads.is_empty() {
        return Err(TrainError::NoGradients);
    }
    Ok(BackwardPass {
        grads,
        loss: loss.detach(),
        accuracy,
    })
}

/// One micro-batch of an optimizer step, ready to run.
pub(crate) struct MicroBatch {
    /// The records.
    pub batch: RecordBatch,
    /// The run's micro-batch index (keys the dropout masks).
    pub index: u64,
}

/// What a micro-batch gave: its gradients (on the device it ran on) and its host scalars.
pub(crate) struct MicroOutput {
    pub grads: GradientsParams,
    pub loss: f64,
    pub accuracy: f64,
    pub tokens: usize,
}

/// Runs one micro-batch of step `t` on `device` (the model must live there): the training
/// input, the device RNG reseeded for its dropout masks, the products in `precision`, the
/// scaled backward pass. A non-finite loss is an error (nothing is applied).
pub(crate) fn run_micro_batch(
    model: &Rar,
    inputs: &TrainingInputs,
    micro: &MicroBatch,
    t: u64,
    precision: ComputePrecision,
    loss_scale: f64,
    device: &Device,
) -> Result<MicroOutput> {
    let input = inputs.training(&micro.batch, t, device)?;
    let out = {
        // Only the forward pass draws dropout masks; the backward pass runs unlocked (and
        // replays the recorded bf16 casts whatever the thread's setting).
        let _rng = device_rng();
        device.seed(inputs.dropout_seed(t, micro.index));
        // The setting is per thread: each device's worker sets its own.
        with_compute_precision(precision, || {
            on_compute_threads(device, || model.forward(input))
        })?
    };
    let pass = on_compute_threads(device, || backward(model, out, loss_scale))?;
    let loss = scalar(pass.loss);
    if !loss.is_finite() {
        return Err(TrainError::NonFiniteLoss { step: t, loss });
    }
    Ok(MicroOutput {
        grads: pass.grads,
        loss,
        accuracy: scalar(pass.accuracy),
        tokens: micro.batch.tokens.len(),
    })
}
