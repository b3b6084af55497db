//! The settings of a training run and the checks they pass before any work.

use std::path::Path;

use burn::config::Config;
use rar_core::{RandomnessSchedule, WarmupCosineLr};
use rar_data::RecordSpec;
use rar_model::{ComputePrecision, RarConfig};

use crate::error::{Result as TrainResult, TrainError};
use crate::optim::OptimizerConfig;

/// Settings of a training run (on the toy dataset or any [`rar_data::SampleSource`]).
#[derive(Config, Debug)]
pub struct TrainingConfig {
    /// The model (its `image_seq_len`, `codebook_size` and `num_classes` must match the data;
    /// the toy dataset's are 64, 8 and 10).
    pub model: RarConfig,
    /// AdamW settings (the reference's by default: `OptimizerConfig::new()`).
    pub adamw: OptimizerConfig,
    /// Number of optimizer steps.
    #[config(default = 600)]
    pub steps: u64,
    /// Samples per optimizer step (over all micro-batches and devices).
    #[config(default = 32)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[config(default = 1e-3)]
    pub base_lr: f64,
    /// Final learning rate of the cosine decay.
    #[config(default = 1e-5)]
    pub end_lr: f64,
    /// Linear warm-up length in optimizer steps.
    #[config(default = 50)]
    pub warmup_steps: u64,
    /// Start of the randomness annealing as a fraction of `steps` (`r = 1` before).
    #[config(default = 0.5)]
    pub anneal_start: f64,
    /// End of the randomness annealing as a fraction of `steps` (`r = 0` from then on).
    #[config(default = 0.75)]
    pub anneal_end: f64,
    /// Global gradient-norm clipping threshold.
    #[config(default = 1.0)]
    pub max_grad_norm: f64,
    /// Number of toy training samples (a pass over them is one epoch; toy runs only).
    #[config(default = 20000)]
    pub train_size: usize,
    /// Number of toy validation samples (drawn with a different seed; toy runs only).
    #[config(default = 500)]
    pub val_size: usize,
    /// Seed of the data order, the token orders, the label dropout, the dropout masks and
    /// the initialisation.
    #[config(default = 42)]
    pub seed: u64,
    /// Report a [`StepMetrics`](crate::StepMetrics) line every this many steps (0: never).
    #[config(default = 50)]
    pub log_every: u64,
    /// Directory for step-level checkpoints (`checkpoint-{step:08}/`); none when unset.
    #[config(default = "None")]
    pub checkpoint_dir: Option<String>,
    /// Write a checkpoint every this many optimizer steps (0: never).
    #[config(default = 0)]
    pub checkpoint_every: u64,
    /// Keep only the newest this many checkpoints.
    #[config(default = 3)]
    pub keep_checkpoints: usize,
    /// Gradient accumulation: micro-batches per optimizer step (`batch_size` must be a
    /// multiple of `accum_steps × devices`). `r(t)`, the LR, the orders and the checkpoint
    /// step count optimizer steps.
    #[config(default = 1)]
    pub accum_steps: usize,
    /// Sample a preview grid every this many optimizer steps (0: never).
    #[config(default = 0)]
    pub preview_every: u64,
    /// Folder of the preview grids (`preview-{step:08}.png`); none when unset.
    #[config(default = "None")]
    pub preview_dir: Option<String>,
    /// Classes of the preview grid (one sample each); all classes when empty.
    #[config(default = "Vec::new()")]
    pub preview_classes: Vec<usize>,
    /// Classifier-free guidance scale of the preview samples (constant, or the peak of the
    /// power-cosine schedule when `preview_guidance_power` is set).
    #[config(default = 2.0)]
    pub preview_guidance: f32,
    /// Power of the power-cosine guidance schedule of the preview samples (the reference's
    /// previews use G 16, p 2.75); constant guidance when unset.
    #[config(default = "None")]
    pub preview_guidance_power: Option<f32>,
    /// The data's order ([`rar_data::SampleSource::order_key`]), recorded when a run starts
    /// and checked on resume: data in another order would not give the interrupted run's
    /// samples at the resumed step.
    #[config(default = "None")]
    pub data_order: Option<String>,
    /// Precision of the matrix products: `f32`, or `bf16` over fp32 weights, gradients and
    /// optimizer state — the reference's `mixed_precision: bf16`. The devices must support
    /// bf16 tensors (flex, CUDA, wgpu on most GPUs; not ndarray).
    #[config(default = "ComputePrecision::F32")]
    pub precision: ComputePrecision,
}

impl TrainingConfig {
    /// Optimizer steps of the official recipe.
    pub const OFFICIAL_STEPS: u64 = 250_000;

    /// The official ImageNet recipe (the paper's §4.1 and the official `rar.yaml`, the same
    /// for every size) over `steps` optimizer steps: global batch 2048, LR 4e-4 with a linear
    /// warm-up over the first quarter of the steps (62 500 of 250 000) and a cosine decay to
    /// 1e-5, AdamW β 0.9 / 0.96, eps 1e-8, weight decay 0.03, clipping at 1.0, `r` annealed
    /// from half to three quarters of the steps (125 000 → 187 500), seed 42, bf16 products
    /// over fp32 weights. Dropout 0.1 and class-label dropout 0.1 are in the presets'
    /// [`RarConfig`].
    pub fn official(model: RarConfig, steps: u64) -> Self {
        let quarter = ((62_500.0 * steps as f64) / Self::OFFICIAL_STEPS as f64).round() as u64;
        Self::new(model, OptimizerConfig::new())
            .with_steps(steps)
            .with_batch_size(2048)
            .with_base_lr(4e-4)
            .with_end_lr(1e-5)
            .with_warmup_steps(quarter)
            .with_anneal_start(0.5)
            .with_anneal_end(0.75)
            .with_max_grad_norm(1.0)
            .with_seed(42)
            .with_precision(ComputePrecision::Bf16)
    }

    /// Sets the annealing bounds in absolute optimizer steps (`r = 1` up to `start`, `0`
    /// from `end` on), stored as fractions of `steps`; an error when they are out of order or
    /// do not survive the conversion.
    pub fn with_anneal_steps(self, start: u64, end: u64) -> TrainResult<Self> {
        if self.steps == 0 || start > end || end > self.steps {
            return Err(TrainError::InvalidSetting(format!(
                "the annealing needs anneal start ({start}) <= end ({end}) <= steps ({})",
                self.steps
            )));
        }
        let steps = self.steps as f64;
        let fraction = |s: u64| s as f64 / steps;
        let config = self
            .with_anneal_start(fraction(start))
            .with_anneal_end(fraction(end));
        let r = config.randomness()?;
        if (r.start, r.end) != (start, end) {
            return Err(TrainError::InvalidSetting(format!(
                "annealing steps {start}..{end} of {} do not survive the conversion to fractions ({}..{})",
                config.steps, r.start, r.end
            )));
        }
        Ok(config)
    }

    /// Reads a checkpoint's `config.json`, giving the fields added since the format's first
    /// version their defaults (`precision`: fp32, what those runs used), so older checkpoints
    /// still resume (burn's `Config::load` needs every field).
    pub fn load_checkpoint_config(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let mut json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
        if let Some(fields) = json.as_object_mut() {
            fields
                .entry("precision")
                .or_insert_with(|| serde_json::json!(ComputePrecision::F32));
        }
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    /// The randomness schedule (paper Eq. 5): annealing between `anneal_start·steps` and
    /// `anneal_end·steps`.
    pub fn randomness(&self) -> TrainResult<RandomnessSchedule> {
        for (name, f) in [
            ("anneal_start", self.anneal_start),
            ("anneal_end", self.anneal_end),
        ] {
            if !(f.is_finite() && (0.0..=1.0).contains(&f)) {
                return Err(TrainError::InvalidSetting(format!(
                    "{name} must be a fraction in [0, 1], got {f}"
                )));
            }
        }
        if self.anneal_start > self.anneal_end {
            return Err(TrainError::InvalidSetting(format!(
                "anneal_start ({}) is after anneal_end ({})",
                self.anneal_start, self.anneal_end
            )));
        }
        let at = |f: f64| (f * self.steps as f64).round() as u64;
        Ok(RandomnessSchedule::new(
            at(self.anneal_start),
            at(self.anneal_end),
        )?)
    }

    /// The learning-rate schedule (warm-up then cosine to `end_lr` at `steps`).
    pub fn lr_schedule(&self) -> TrainResult<WarmupCosineLr> {
        Ok(WarmupCosineLr::new(
            self.base_lr,
            self.end_lr,
            self.warmup_steps,
            self.steps,
        )?)
    }

    /// Micro-batches per optimizer step (`accum_steps × devices`).
    pub fn micro_batches(&self, devices: usize) -> usize {
        self.accum_steps.max(1) * devices.max(1)
    }

    /// Samples per micro-batch on each of `devices` devices.
    pub fn micro_batch_size(&self, devices: usize) -> TrainResult<usize> {
        let parts = self.micro_batches(devices);
        if self.accum_steps == 0 || self.batch_size == 0 || !self.batch_size.is_multiple_of(parts) {
            return Err(TrainError::InvalidSetting(format!(
                "batch_size ({}) must be a positive multiple of accum_steps ({}) × devices ({devices})",
                self.batch_size, self.accum_steps
            )));
        }
        Ok(self.batch_size / parts)
    }

    /// Every way the model differs from data of shape `spec`, as
    /// `"class count 3 (the model's num_classes is 1000)"` entries; empty when it fits.
    pub fn model_mismatches(&self, spec: &RecordSpec) -> Vec<String> {
        let m = &self.model;
        [
            (
                "tokens per sample",
                spec.tokens_per_record,
                "image_seq_len",
                m.image_seq_len,
            ),
            (
                "codebook size",
                spec.codebook_size,
                "codebook_size",
                m.codebook_size,
            ),
            (
                "class count",
                spec.num_classes,
                "num_classes",
                m.num_classes,
            ),
        ]
        .into_iter()
        .filter(|(_, data, _, model)| data != model)
        .map(|(what, data, field, model)| format!("{what} {data} (the model's {field} is {model})"))
        .collect()
    }

    /// Checks every setting and that the model fits data of shape `spec` (described as
    /// `what`) in the order `order_key`, trained on `devices` devices.
    pub fn check(
        &self,
        spec: &RecordSpec,
        what: &str,
        order_key: &str,
        devices: usize,
    ) -> TrainResult<()> {
        let mismatches = self.model_mismatches(spec);
        if !mismatches.is_empty() {
            return Err(TrainError::InvalidSetting(format!(
                "the model does not fit {what}: {}",
                mismatches.join("; ")
            )));
        }
        if let Some(recorded) = &self.data_order
            && recorded != order_key
        {
            return Err(TrainError::InvalidSetting(format!(
                "the run was started with the data order `{recorded}`, but {what} now has the \
                 order `{order_key}`: resuming would read other samples than the interrupted \
                 run (open the data with the run's settings)"
            )));
        }
        if self.steps == 0 {
            return Err(TrainError::InvalidSetting(
                "steps must be at least 1".into(),
            ));
        }
        if self.warmup_steps > self.steps {
            return Err(TrainError::InvalidSetting(format!(
                "warmup_steps ({}) exceeds steps ({})",
                self.warmup_steps, self.steps
            )));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0) {
            return Err(TrainError::InvalidSetting(format!(
                "max_grad_norm must be positive and finite, got {}",
                self.max_grad_norm
            )));
        }
        if let Some(&c) = self
            .preview_classes
            .iter()
            .find(|&&c| c >= self.model.num_classes)
        {
            return Err(TrainError::InvalidSetting(format!(
                "preview class {c} out of range (num_classes {})",
                self.model.num_classes
            )));
        }
        self.micro_batch_size(devices)?;
        self.adamw.validate()?;
        self.randomness()?;
        self.lr_schedule()?;
        self.model.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_official_recipe_maps_to_the_reference_schedule() {
        let model = RarConfig::new(32, 1, 2, 64);
        let c = TrainingConfig::official(model.clone(), TrainingConfig::OFFICIAL_STEPS);
        assert_eq!((c.anneal_start, c.anneal_end), (0.5, 0.75));
        let r = c.randomness().unwrap();
        assert_eq!(r.ratio(125_000), 1.0);
        assert_eq!(r.ratio(187_500), 0.0);
        assert!((r.ratio(156_250) - 0.5).abs() < 1e-12);
        assert_eq!(c.warmup_steps, 62_500);
        let lr = c.lr_schedule().unwrap();
        assert_eq!(lr.lr_at(0), 0.0);
        assert!((lr.lr_at(62_500) - 4e-4).abs() < 1e-12);
        assert!((lr.lr_at(156_250) - 2.05e-4).abs() < 1e-9);
        assert_eq!((c.batch_size, c.steps, c.seed), (2048, 250_000, 42));
        assert_eq!(c.precision, ComputePrecision::Bf16);
        // A shorter run keeps the fractions.
        let short = TrainingConfig::official(model.clone(), 1000);
        assert_eq!(short.warmup_steps, 250);
        let r = short.randomness().unwrap();
        assert_eq!((r.start, r.end), (500, 750));
        // Absolute annealing steps round-trip, bad ones are refused.
        let c = TrainingConfig::official(model, 10)
            .with_anneal_steps(2, 4)
            .unwrap();
        assert_eq!(
            (c.randomness().unwrap().start, c.randomness().unwrap().end),
            (2, 4)
        );
        assert!(c.clone().with_anneal_steps(5, 4).is_err());
        assert!(c.with_anneal_steps(2, 11).is_err());
    }

    #[test]
    fn absolute_steps_survive_the_fraction_round_trip() {
        let model = RarConfig::new(32, 1, 2, 64);
        for steps in [1u64, 3, 7, 1000, 250_000, 1_000_003] {
            for start in [0, steps / 3, steps / 2, steps] {
                TrainingConfig::official(model.clone(), steps)
                    .with_anneal_steps(start, steps)
                    .unwrap();
            }
        }
        let err = TrainingConfig::official(model, 100)
            .with_anneal_steps(10, 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("anneal start (10)"), "{err}");
    }

    #[test]
    fn checkpoint_configs_without_a_precision_load_as_fp32() {
        let dir = tempfile::tempdir().unwrap();
        let config = TrainingConfig::new(RarConfig::new(32, 1, 2, 64), OptimizerConfig::new())
            .with_precision(ComputePrecision::Bf16);
        let path = dir.path().join("config.json");
        config.save(&path).unwrap();
        assert_eq!(
            TrainingConfig::load_checkpoint_config(&path)
                .unwrap()
                .precision,
            ComputePrecision::Bf16
        );
        // A config written before the field existed.
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("precision");
        std::fs::write(&path, json.to_string()).unwrap();
        assert!(
            TrainingConfig::load(&path).is_err(),
            "burn's loader needs every field"
        );
        let old = TrainingConfig::load_checkpoint_config(&path).unwrap();
        assert_eq!(old.precision, ComputePrecision::F32);
        assert_eq!(old.model.hidden_size, 32);
        std::fs::write(&path, "{ not json").unwrap();
        let err = TrainingConfig::load_checkpoint_config(&path).unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
    }
}
