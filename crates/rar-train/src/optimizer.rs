//! The one update of a training step: global-norm clipping, then AdamW with the reference's
//! two parameter groups at the learning rate of the step (the official
//! `train_utils.train_one_epoch`: `clip_grad_norm_`, `optimizer.step()`, `scheduler.step()`).

use std::path::Path;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use rar_core::WarmupCosineLr;
use rar_model::{Rar, on_compute_threads};

use crate::error::{Result, TrainError};
use crate::fused_adamw::with_grad_scale;
use crate::optim::{OptimizerConfig, clip_coefficient, global_grad_norm};

/// Reads a 1-element float tensor to the host.
pub(crate) fn scalar(t: Tensor<1>) -> f64 {
    t.into_scalar::<f32>() as f64
}

/// Scalars of one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStats {
    /// The 0-based optimizer step `t` this update was (the step the LR was evaluated at).
    pub step: u64,
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
    /// An optimizer for `model` at optimizer step 0. `max_grad_norm` must be positive and
    /// finite (the reference uses 1.0).
    pub fn new(
        model: &Rar,
        adamw: &OptimizerConfig,
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

    /// The 0-based optimizer step of the next update (= updates done).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The learning rate the next update will use.
    pub fn lr(&self) -> f64 {
        self.schedule.lr_at(self.step)
    }

    /// Saves the AdamW state (moments and step counts per parameter) to a burnpack file.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        self.optim.save(path).map_err(|e| TrainError::Write {
            path: path.to_path_buf(),
            reason: format!("{e:?}"),
        })
    }

    /// Restores the AdamW state written by [`Self::save_state`] (parameters are matched by
    /// their persisted ids, so load the model from its own checkpoint first).
    ///
    /// The file is read into memory first. burn 0.22 materialises the restored state on
    /// `Device::default()` (a GPU whenever a GPU feature is compiled in) and moves it to each
    /// parameter's device on the next update; with a file-backed reader that upload may run
    /// on the GPU's thread after the checkpoint was rotated away, which panics there (see
    /// docs/BACKENDS.md). An upload that fails — e.g. a `wgpu` build on a machine without a
    /// Vulkan driver — is an error naming `BURN_DEVICE`, which selects that default device.
    pub fn load_state(mut self, path: &Path) -> Result<Self> {
        let read = |reason: String| TrainError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| read(e.to_string()))?;
        let optim = self.optim;
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            optim.from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        }));
        self.optim = match loaded {
            Ok(Ok(optim)) => optim,
            Ok(Err(e)) => return Err(read(format!("{e:?}"))),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into());
                return Err(read(format!(
                    "restoring the optimizer state on burn's default device failed ({message}); \
                     set BURN_DEVICE to a device this machine has (e.g. BURN_DEVICE=flex)"
                )));
            }
        };
        Ok(self)
    }

    /// Clips `grads` globally and applies one AdamW update to `model`. A non-finite
    /// gradient norm, or no gradient at all, is an error and nothing is applied (the moved
    /// `model` is dropped: [`Self::check_gradients`] first keeps it).
    pub fn update(&mut self, model: Rar, grads: GradientsParams) -> Result<(Rar, UpdateStats)> {
        let checked = self.check_gradients(&model, grads)?;
        Ok(self.apply(model, checked))
    }

    /// The fallible half of [`Self::update`]: the global gradient norm, an error when it is
    /// not finite or there is no gradient. A caller that must keep its model on an error
    /// checks first and hands the model over to [`Self::apply`] only then — without keeping
    /// a clone, whose shared buffers would make the update copy every parameter.
    pub fn check_gradients(
        &self,
        model: &Rar,
        mut grads: GradientsParams,
    ) -> Result<CheckedGradients> {
        let device = model.device();
        let grad_norm = on_compute_threads(&device, || {
            global_grad_norm(model, &mut grads, &device).ok_or(TrainError::NoGradients)
        })?;
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFiniteGradient {
                step: self.step,
                norm: grad_norm,
            });
        }
        Ok(CheckedGradients { grads, grad_norm })
    }

    /// The infallible half of [`Self::update`]: clips by the checked norm and applies AdamW.
    pub fn apply(&mut self, model: Rar, checked: CheckedGradients) -> (Rar, UpdateStats) {
        let CheckedGradients { grads, grad_norm } = checked;
        let step = self.step;
        let lr = self.lr();
        let coefficient = clip_coefficient(grad_norm, self.max_grad_norm);
        let model = on_compute_threads(&model.device(), || {
            with_grad_scale(coefficient, || self.optim.step(lr, model, grads))
        });
        self.step += 1;
        (
            model,
            UpdateStats {
                step,
                grad_norm,
                lr,
            },
        )
    }
}

/// Gradients whose global norm [`RarOptimizer::check_gradients`] found finite.
pub struct CheckedGradients {
    grads: GradientsParams,
    grad_norm: f64,
}
