//! One optimizer step of the reference recipe (spec §6.4): forward with per-sample orders and
//! condition ids, mean cross-entropy, backward, global-norm clipping, AdamW with the two
//! parameter groups at `lr(t)`.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use rar_core::WarmupCosineLr;
use rar_model::{Rar, RarInput};

use crate::error::{Result, TrainError};
use crate::optim::{AdamWSettings, clip_grad_norm_global};

/// Reads a 1-element float tensor to the host.
pub(crate) fn scalar(t: Tensor<1>) -> f64 {
    t.into_scalar::<f32>() as f64
}

/// The result of a forward and backward pass.
pub struct BackwardPass {
    /// Gradients of the loss for every parameter (on the inner, non-autodiff backend).
    pub grads: GradientsParams,
    /// The mean cross-entropy (detached, 1 element).
    pub loss: Tensor<1>,
    /// The token accuracy (detached, 1 element).
    pub accuracy: Tensor<1>,
}

/// Forward and backward of the training loss for `input` (the model must live on an autodiff
/// device, and is in training mode: dropout is active as configured).
pub fn forward_backward(model: &Rar, input: RarInput) -> Result<BackwardPass> {
    let out = model.forward(input)?;
    let loss = out.loss();
    let accuracy = out.accuracy().detach();
    let grads = loss.backward();
    let grads = GradientsParams::from_grads(grads, model);
    if grads.is_empty() {
        return Err(TrainError::NoGradients);
    }
    Ok(BackwardPass {
        grads,
        loss: loss.detach(),
        accuracy,
    })
}

/// Scalars of one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The 0-based optimizer step `t` this update was (the step the LR was evaluated at).
    pub step: u64,
    /// Mean cross-entropy over the batch.
    pub loss: f64,
    /// Token accuracy over the batch.
    pub accuracy: f64,
    /// Global L2 gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used by this update.
    pub lr: f64,
}

/// AdamW with the reference's parameter groups, global-norm clipping and the warm-up + cosine
/// schedule, counting optimizer steps.
#[derive(Clone)]
pub struct RarOptimizer {
    optim: ModuleOptimizer,
    schedule: WarmupCosineLr,
    max_grad_norm: f64,
    step: u64,
}

impl RarOptimizer {
    /// An optimizer for `model` at optimizer step 0.
    ///
    /// `max_grad_norm` must be positive and finite (the reference uses 1.0).
    pub fn new(
        model: &Rar,
        adamw: &AdamWSettings,
        schedule: WarmupCosineLr,
        max_grad_norm: f64,
    ) -> Result<Self> {
        if !(max_grad_norm.is_finite() && max_grad_norm > 0.0) {
            return Err(TrainError::InvalidSetting(format!(
                "max_grad_norm must be positive and finite, got {max_grad_norm}"
            )));
        }
        Ok(Self {
            optim: adamw.init(model)?,
            schedule,
            max_grad_norm,
            step: 0,
        })
    }

    /// Sets the 0-based optimizer step of the next update (the LR depends on it).
    pub fn with_step(mut self, step: u64) -> Self {
        self.step = step;
        self
    }

    /// The 0-based optimizer step of the next update.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The learning rate the next update will use.
    pub fn lr(&self) -> f64 {
        self.schedule.lr_at(self.step)
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> &WarmupCosineLr {
        &self.schedule
    }

    /// burn's underlying module optimizer (its state can be saved with `to_record`).
    pub fn module_optimizer(&self) -> &ModuleOptimizer {
        &self.optim
    }

    /// Saves the AdamW state (moments and step counts per parameter) to a burnpack file.
    pub fn save_state(&self, path: &std::path::Path) -> Result<()> {
        self.optim.save(path).map_err(|e| TrainError::Write {
            path: path.to_path_buf(),
            reason: format!("{e:?}"),
        })
    }

    /// Restores the AdamW state written by [`Self::save_state`] (parameters are matched by
    /// their persisted ids, so load the model from its own checkpoint first).
    pub fn load_state(mut self, path: &std::path::Path) -> Result<Self> {
        self.optim = self.optim.load(path).map_err(|e| TrainError::Read {
            path: path.to_path_buf(),
            reason: format!("{e:?}"),
        })?;
        Ok(self)
    }

    /// Clips `pass.grads` globally and applies one AdamW update to `model`.
    ///
    /// A NaN or infinite loss or gradient norm is an error and no update is applied.
    pub fn apply(&mut self, model: Rar, pass: BackwardPass) -> Result<(Rar, StepStats)> {
        let BackwardPass {
            mut grads,
            loss,
            accuracy,
        } = pass;
        let step = self.step;
        let loss = scalar(loss);
        if !loss.is_finite() {
            return Err(TrainError::NonFiniteLoss { step, loss });
        }
        let norm = clip_grad_norm_global(&model, &mut grads, self.max_grad_norm)
            .ok_or(TrainError::NoGradients)?;
        let grad_norm = scalar(norm);
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFiniteGradient {
                step,
                norm: grad_norm,
            });
        }
        let lr = self.lr();
        let model = self.optim.step(lr, model, grads);
        self.step += 1;
        Ok((
            model,
            StepStats {
                step,
                loss,
                accuracy: scalar(accuracy),
                grad_norm,
                lr,
            },
        ))
    }

    /// One full training step on `input`: forward, backward, clip, AdamW.
    pub fn train_step(&mut self, model: Rar, input: RarInput) -> Result<(Rar, StepStats)> {
        let pass = forward_backward(&model, input)?;
        self.apply(model, pass)
    }
}
