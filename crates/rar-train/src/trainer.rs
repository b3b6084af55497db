//! The training loop: burn-train's [`Learner`] driven by a custom
//! [`SupervisedLearningStrategy`] (`TrainingStrategy::Custom`) launched through
//! [`SupervisedTraining`], on the embedded toy dataset or any [`TokenSource`].
//!
//! Every optimizer step `t` (0-based; the Learner's LR scheduler counts them, see
//! [`RarLrScheduler`]):
//!
//! 1. `accum_steps` micro-batches (per device) of the run's sample stream, positions
//!    `[t·B, (t+1)·B)` (see [`crate::source`]), so the data position is a function of `t`;
//! 2. for each, the Learner's train step ([`RarLearnerModel`]): orders with ratio `r(t)` keyed
//!    by `(seed, t, position)`, class-label dropout keyed the same way, dropout masks from the
//!    device RNG reseeded with `(seed, t, micro-batch)`, mean cross-entropy, backward; the
//!    loss is read back and a NaN/inf loss stops the run before any update;
//! 3. the gradients are summed (each micro-batch loss is scaled by `1/micro-batches`), the
//!    Learner's `lr_step` gives `lr(t)` and its `optimizer_step` clips globally and applies
//!    AdamW with the reference's groups;
//! 4. every `checkpoint_every` steps an atomic `checkpoint-{step:08}/` folder, every
//!    `preview_every` steps a preview grid, every `log_every` steps a [`StepMetrics`] line.
//!
//! With several devices, each micro-batch is split over the devices with burn-train's
//! [`MultiDevicesTrainStep`] (the machinery of `ExecutionStrategy::multi`) and the gradients
//! are merged in [`RarLearnerModel`]'s `optimize_multi` (CPU devices work too, see
//! [`Trainer::new_on_devices`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use burn::config::Config;
use burn::data::dataloader::{DataLoader, DataLoaderIterator};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::lr_scheduler::LrSchedulerRecord;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{GradientsAccumulator, GradientsParams, MultiGradientsParams, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor};
use burn::train::checkpoint::{
    AsyncCheckpointer, Checkpoint, Checkpointer, CheckpointerError, CheckpointingAction,
    CheckpointingStrategy,
};
use burn::train::logger::{EvaluationProgressLogger, InMemoryMetricLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::metric::store::EventStoreClient;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::train::MultiDevicesTrainStep;
use burn::train::{
    Interrupter, Learner, LearningCheckpointer, SupervisedLearningStrategy, SupervisedTraining,
    SupervisedTrainingEventProcessor, TrainLoader, TrainingComponents, TrainingStrategy,
    ValidLoader,
};
use rar_core::{GuidanceSchedule, RandomnessSchedule, ScanOrder, WarmupCosineLr};
use rar_model::{ComputePrecision, Rar, RarConfig, with_compute_precision};
use rar_sample::{Sampler, SamplingOptions};

use crate::error::{Result as TrainResult, TrainError};
use crate::learner::{
    RarLearnerModel, RarLrScheduler, StepContext, StepContextSettings, StepFault, StepOutput,
    rng_guard, scheduler_record_step,
};
use crate::optim::AdamWSettings;
use crate::source::{BatchPlan, StepLoader, TokenBatch, TokenSource};
use crate::step::scalar;
use crate::toy::{ToyDataset, is_valid_instance};

/// Forces every lazy parameter to be initialised now.
struct Materialise;

impl ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Settings of a training run (on the toy dataset or any [`TokenSource`]).
#[derive(Config, Debug)]
pub struct TrainingConfig {
    /// The model (its `image_seq_len`, `codebook_size` and `num_classes` must match the data
    /// source; the toy dataset's are 64, 8 and 10).
    pub model: RarConfig,
    /// AdamW settings (the reference's by default: `AdamWSettings::new()`).
    pub adamw: AdamWSettings,
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
    /// Number of toy training samples (a pass over them is one epoch; toy dataset only).
    #[config(default = 20000)]
    pub train_size: usize,
    /// Number of toy validation samples (drawn with a different seed; toy dataset only).
    #[config(default = 500)]
    pub val_size: usize,
    /// Seed of the data, orders, label dropout and dropout masks.
    #[config(default = 42)]
    pub seed: u64,
    /// Log a [`StepMetrics`] line every this many steps (0: never).
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
    /// The data source's own order ([`TokenSource::order_key`]), recorded when a run starts
    /// and checked on resume: a source with a different order would not read the samples of
    /// the interrupted run at the resumed step. Unset for sources without an order of their
    /// own (the toy dataset).
    #[config(default = "None")]
    pub data_order: Option<String>,
    /// Precision of the matrix products: `f32`, or `bf16` over fp32 weights, gradients and
    /// optimizer state — the reference's `mixed_precision: bf16` (see
    /// [`rar_model::precision`]). The devices must support bf16 tensors (flex, CUDA, wgpu on
    /// most GPUs; not ndarray).
    #[config(default = "ComputePrecision::F32")]
    pub precision: ComputePrecision,
}

/// The former name of [`TrainingConfig`] (the examples' toy runs).
pub type ToyTrainingConfig = TrainingConfig;

impl TrainingConfig {
    /// Reads a checkpoint's `config.json`, giving the fields added since the format's first
    /// version their defaults (`precision`: fp32, what those runs used), so older checkpoints
    /// still resume.
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

    /// The randomness schedule: annealing between `anneal_start·steps` and
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

    /// Samples per micro-batch on each of `devices` devices.
    pub fn micro_batch_size(&self, devices: usize) -> TrainResult<usize> {
        let parts = self.accum_steps.max(1) * devices.max(1);
        if self.accum_steps == 0 || self.batch_size == 0 || !self.batch_size.is_multiple_of(parts) {
            return Err(TrainError::InvalidSetting(format!(
                "batch_size ({}) must be a positive multiple of accum_steps ({}) × devices ({devices})",
                self.batch_size, self.accum_steps
            )));
        }
        Ok(self.batch_size / parts)
    }

    /// Checks the settings against the data source and the device count.
    pub fn check<S: TokenSource + ?Sized>(&self, source: &S, devices: usize) -> TrainResult<()> {
        let m = &self.model;
        let mismatches: Vec<String> = [
            (
                "tokens per sample",
                source.image_seq_len(),
                "image_seq_len",
                m.image_seq_len,
            ),
            (
                "codebook size",
                source.codebook_size(),
                "codebook_size",
                m.codebook_size,
            ),
            (
                "class count",
                source.num_classes(),
                "num_classes",
                m.num_classes,
            ),
        ]
        .into_iter()
        .filter(|(_, data, _, model)| data != model)
        .map(|(what, data, field, model)| format!("{what} {data} (the model's {field} is {model})"))
        .collect();
        if !mismatches.is_empty() {
            return Err(TrainError::InvalidSetting(format!(
                "the model does not fit {}: {}",
                source.describe(),
                mismatches.join("; ")
            )));
        }
        if source.is_empty() {
            return Err(TrainError::InvalidSetting(format!(
                "{} has no sample",
                source.describe()
            )));
        }
        if let Some(recorded) = &self.data_order {
            let current = source.order_key();
            if current.as_deref() != Some(recorded.as_str()) {
                return Err(TrainError::InvalidSetting(format!(
                    "the run was started with the data order `{recorded}`, but {} now has the order `{}`: \
                     resuming would read other samples than the interrupted run (open the data \
                     with the run's settings)",
                    source.describe(),
                    current
                        .as_deref()
                        .unwrap_or("its own shuffle by the run's seed")
                )));
            }
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0) {
            return Err(TrainError::InvalidSetting(format!(
                "max_grad_norm must be positive and finite, got {}",
                self.max_grad_norm
            )));
        }
        if let Some(&c) = self.preview_classes.iter().find(|&&c| c >= m.num_classes) {
            return Err(TrainError::InvalidSetting(format!(
                "preview class {c} out of range (num_classes {})",
                m.num_classes
            )));
        }
        self.micro_batch_size(devices)?;
        self.adamw.validate()?;
        self.randomness()?;
        self.lr_schedule()?;
        m.validate()?;
        Ok(())
    }

    fn preview_options(&self) -> TrainResult<SamplingOptions> {
        let guidance = match self.preview_guidance_power {
            Some(power) => GuidanceSchedule::power_cosine(self.preview_guidance, power)?,
            None => GuidanceSchedule::constant(self.preview_guidance)?,
        };
        Ok(SamplingOptions {
            guidance,
            temperature: 1.0,
            top_k: None,
            top_p: None,
            order: ScanOrder::RowMajor,
            use_cache: true,
        })
    }

    fn step_context(&self, micro_batches_per_step: usize, step: u64) -> TrainResult<StepContext> {
        StepContext::new(
            StepContextSettings {
                seed: self.seed,
                randomness: self.randomness()?,
                image_seq_len: self.model.image_seq_len,
                class_label_dropout: self.model.class_label_dropout,
                space: self.model.token_space(),
                max_grad_norm: self.max_grad_norm,
                micro_batches_per_step,
                precision: self.precision,
            },
            step,
        )
    }
}

/// Averages over the last logging window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepMetrics {
    /// Optimizer steps done so far (the last step of the window is `step − 1`).
    pub step: u64,
    /// Mean training loss over the window.
    pub loss: f64,
    /// Mean token accuracy over the window.
    pub accuracy: f64,
    /// Learning rate of the window's last step.
    pub lr: f64,
    /// Random-order ratio `r` of the window's last step.
    pub random_ratio: f64,
    /// Mean pre-clip global gradient norm over the window.
    pub grad_norm: f64,
    /// Training throughput over the window (image tokens per second).
    pub tokens_per_sec: f64,
}

impl std::fmt::Display for StepMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {:>6} | loss {:.4} | acc {:.3} | lr {:.3e} | r {:.3} | grad_norm {:.3} | {:.0} tok/s",
            self.step,
            self.loss,
            self.accuracy,
            self.lr,
            self.random_ratio,
            self.grad_norm,
            self.tokens_per_sec
        )
    }
}

/// The state of a training run between steps: the model, burn's optimizer state (as
/// burnpack bytes of the Learner's [`OptimizerRecord`]) and the optimizer step.
pub struct Trainer<S: TokenSource + 'static> {
    config: TrainingConfig,
    source: Arc<S>,
    model: Rar,
    optimizer: Option<Bytes>,
    scheduler: Option<LrSchedulerRecord>,
    step: u64,
    devices: Vec<Device>,
}

/// A training run on the embedded toy dataset.
pub type ToyTrainer = Trainer<ToyDataset>;

/// Checks a device list (non-empty, every device able to compute in `precision`) and returns
/// the autodiff devices.
///
/// Several devices train data-parallel through burn-train's [`MultiDevicesTrainStep`] (one
/// worker thread per device, gradients summed on each parameter's device), which needs no
/// collective ops, so CPU devices work too: `[flex, flex]` runs the same code path as a list
/// of GPUs, with both workers sharing the CPU.
fn training_devices(devices: Vec<Device>, precision: ComputePrecision) -> TrainResult<Vec<Device>> {
    if devices.is_empty() {
        return Err(TrainError::Devices {
            devices: format!("{devices:?}"),
            reason: "at least one device is needed".into(),
        });
    }
    for device in &devices {
        precision
            .check_device(device)
            .map_err(|e| TrainError::Devices {
                devices: format!("{devices:?}"),
                reason: e.to_string(),
            })?;
    }
    Ok(devices.into_iter().map(|d| d.autodiff()).collect())
}

impl ToyTrainer {
    /// A fresh toy run on `device`: a randomly initialised model on `device.autodiff()` (the
    /// device is seeded with `config.seed` first, so initialisation is reproducible per
    /// backend as long as no other code draws from the device RNG at the same time).
    pub fn new(config: TrainingConfig, device: &Device) -> TrainResult<Self> {
        Self::new_on_devices(config, vec![device.clone()])
    }

    /// [`Self::new`] on several devices (data parallel: each optimizer step's micro-batches are
    /// split over the devices).
    pub fn new_on_devices(config: TrainingConfig, devices: Vec<Device>) -> TrainResult<Self> {
        let data = ToyDataset::new(config.seed, config.train_size);
        Trainer::with_source(config, data, devices)
    }

    /// Resumes a toy run from the newest checkpoint in `dir` (see
    /// [`Trainer::save_checkpoint`]).
    pub fn resume(dir: &Path, device: &Device) -> TrainResult<Self> {
        Trainer::resume_with_source(
            dir,
            |c| ToyDataset::new(c.seed, c.train_size),
            vec![device.clone()],
        )
    }

    /// Mean loss and token accuracy on the toy validation split (raster order, no label
    /// dropout, no dropout; products in the run's precision).
    pub fn validate(&self) -> TrainResult<(f64, f64)> {
        let data = ToyDataset::new(self.config.seed.wrapping_add(1), self.config.val_size);
        with_compute_precision(self.config.precision, || {
            validation_loss(&self.model.valid(), &data, self.config.batch_size)
        })
    }
}

impl<S: TokenSource + 'static> Trainer<S> {
    /// A fresh run on `source` with a model initialised on `devices[0].autodiff()` (seeded
    /// with `config.seed` under the crate's RNG lock).
    ///
    /// When `config.data_order` is unset it is filled with the source's
    /// [`TokenSource::order_key`] (and checked against it otherwise).
    pub fn with_source(
        mut config: TrainingConfig,
        source: S,
        devices: Vec<Device>,
    ) -> TrainResult<Self> {
        if config.data_order.is_none() {
            config.data_order = source.order_key();
        }
        let devices = training_devices(devices, config.precision)?;
        config.check(&source, devices.len())?;
        let device = devices[0].clone();
        let model = {
            let _guard = rng_guard();
            device.seed(config.seed);
            let model = config.model.try_init(&device)?;
            model.visit(&mut Materialise);
            model
        };
        Ok(Self {
            config,
            source: Arc::new(source),
            model,
            optimizer: None,
            scheduler: None,
            step: 0,
            devices,
        })
    }

    /// Resumes from the newest checkpoint in `dir`: model, optimizer state, LR-scheduler
    /// state, configuration and step (the data position follows from the step). The source is
    /// built from the checkpoint's configuration by `make_source`.
    pub fn resume_with_source(
        dir: &Path,
        make_source: impl FnOnce(&TrainingConfig) -> S,
        devices: Vec<Device>,
    ) -> TrainResult<Self> {
        Self::try_resume_with_source(dir, |c| Ok(make_source(c)), devices)
    }

    /// [`Self::resume_with_source`] with a fallible `make_source` (e.g. opening token shards
    /// with the run's seed); its error is returned as is. The source must have the order the
    /// run was started with ([`TrainingConfig::data_order`]), or this is an error.
    pub fn try_resume_with_source(
        dir: &Path,
        make_source: impl FnOnce(&TrainingConfig) -> TrainResult<S>,
        devices: Vec<Device>,
    ) -> TrainResult<Self> {
        let (step, path) = list_checkpoints(dir)?
            .pop()
            .ok_or_else(|| TrainError::Read {
                path: dir.to_path_buf(),
                reason: "no checkpoint-* folder".into(),
            })?;
        let read = |p: &Path, e: String| TrainError::Read {
            path: p.to_path_buf(),
            reason: e,
        };
        let config_path = path.join("config.json");
        let config = TrainingConfig::load_checkpoint_config(&config_path)
            .map_err(|e| read(&config_path, e))?;
        let devices = training_devices(devices, config.precision)?;
        let source = make_source(&config)?;
        config.check(&source, devices.len()).map_err(|e| match e {
            TrainError::InvalidSetting(m) => {
                TrainError::InvalidSetting(format!("cannot resume from {}: {m}", path.display()))
            }
            other => other,
        })?;
        let model = Rar::from_burnpack(path.join("model.bpk"), &config.model, &devices[0])?;
        let optim_path = path.join("optimizer.bpk");
        let optimizer = OptimizerRecord::load(&optim_path)
            .and_then(OptimizerRecord::into_bytes)
            .map_err(|e| read(&optim_path, format!("{e:?}")))?;
        let sched_path = path.join("scheduler.bpk");
        let scheduler = LrSchedulerRecord::load(&sched_path)
            .map_err(|e| read(&sched_path, format!("{e:?}")))?;
        match scheduler_record_step(&scheduler) {
            Some(s) if s == step => {}
            other => {
                return Err(read(
                    &sched_path,
                    format!("scheduler step {other:?} does not match the checkpoint step {step}"),
                ));
            }
        }
        Ok(Self {
            config,
            source: Arc::new(source),
            model,
            optimizer: Some(optimizer),
            scheduler: Some(scheduler),
            step,
            devices,
        })
    }

    /// The model being trained (on the autodiff device).
    pub fn model(&self) -> &Rar {
        &self.model
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainingConfig {
        &self.config
    }

    /// The training data.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The training devices (autodiff).
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The 0-based optimizer step of the next update (= optimizer steps done).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Trains until `config.steps` optimizer steps are done, calling `on_log` every
    /// `config.log_every` steps (and after the last one).
    pub fn run(&mut self, on_log: impl FnMut(&StepMetrics)) -> TrainResult<Vec<StepMetrics>> {
        self.run_until(self.config.steps, on_log)
    }

    /// [`Self::run`], stopping once `stop` optimizer steps are done (at most `config.steps`).
    ///
    /// Builds burn-train's [`Learner`] (the model wrapped in [`RarLearnerModel`], the
    /// [`ModuleOptimizer`](burn::optim::ModuleOptimizer) of
    /// [`AdamWSettings::init`](crate::AdamWSettings::init) with the saved state loaded, a
    /// [`RarLrScheduler`] at the current step) and launches it through [`SupervisedTraining`]
    /// with this crate's step-level strategy (on a helper thread; `on_log` runs on the calling
    /// thread as lines arrive). On error the model and optimizer state stay those of the last
    /// good step, and the checkpoints already written are kept.
    pub fn run_until(
        &mut self,
        stop: u64,
        mut on_log: impl FnMut(&StepMetrics),
    ) -> TrainResult<Vec<StepMetrics>> {
        let stop = stop.min(self.config.steps);
        if self.step >= stop {
            return Ok(Vec::new());
        }
        let ndev = self.devices.len();
        let accum = self.config.accum_steps;
        let micro = self.config.micro_batch_size(ndev)?;
        let ctx = Arc::new(self.config.step_context(accum * ndev, self.step)?);
        let wrapper = RarLearnerModel::new(self.model.clone(), ctx.clone());
        let optim = self.config.adamw.init(&wrapper)?;
        let scheduler =
            RarLrScheduler::new(self.config.lr_schedule()?, self.step, ctx.step_counter());
        let mut learner = Learner::new(wrapper, optim, scheduler);
        if let Some(bytes) = &self.optimizer {
            let record = OptimizerRecord::from_bytes(bytes.clone())
                .map_err(|e| TrainError::Learner(format!("optimizer state: {e:?}")))?;
            learner.load_optim(record);
        }
        if let Some(record) = self.scheduler.take() {
            learner.load_scheduler(record);
        }
        if ctx.step() != self.step {
            return Err(TrainError::Learner(format!(
                "the LR scheduler is at step {} but the run at step {}",
                ctx.step(),
                self.step
            )));
        }

        let per_step = (accum * ndev) as u64;
        let plan = BatchPlan {
            micro_batch_size: micro,
            start: self.step * per_step,
            end: stop * per_step,
            stride: 1,
        };
        let train: TrainLoader<RarLearnerModel> = Arc::new(StepLoader::new(
            self.source.clone(),
            self.config.seed,
            plan,
            self.devices[0].clone(),
        ));
        let valid: ValidLoader<RarLearnerModel> = Arc::new(StepLoader::new(
            self.source.clone(),
            self.config.seed,
            BatchPlan {
                end: plan.start,
                ..plan
            },
            self.devices[0].clone().inner(),
        ));
        let (tx, rx) = channel::<StepMetrics>();
        let outcome = Arc::new(Mutex::new(RunOutcome::default()));
        let strategy = StepStrategy {
            source: self.source.clone(),
            config: self.config.clone(),
            devices: self.devices.clone(),
            stop,
            tx: Mutex::new(Some(tx)),
            outcome: outcome.clone(),
        };
        let directory = std::env::temp_dir().join(format!("rar-train-{}", std::process::id()));
        let mut history = Vec::new();
        let joined = std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("rar-train".into())
                .stack_size(64 << 20)
                .spawn_scoped(scope, move || {
                    let training = SupervisedTraining::new(directory, train, valid)
                        .with_training_strategy(TrainingStrategy::Custom(Arc::new(strategy)))
                        .with_application_logger(None)
                        .with_metric_logger(InMemoryMetricLogger::new())
                        .renderer(Box::new(QuietRenderer))
                        .num_epochs(1);
                    let _ = training.launch(learner);
                });
            for m in rx {
                on_log(&m);
                history.push(m);
            }
            handle.map(|h| h.join())
        });
        let mut outcome = std::mem::take(&mut *outcome.lock().unwrap_or_else(|e| e.into_inner()));
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                return Err(outcome.error.take().unwrap_or_else(|| {
                    TrainError::Learner("the training thread panicked".into())
                }));
            }
        }
        if let Some(model) = outcome.model.take() {
            self.model = model.rar;
        }
        if let Some(bytes) = outcome.optimizer.take() {
            self.optimizer = Some(bytes);
        }
        self.step = outcome.step;
        match outcome.error {
            Some(e) => Err(e),
            None => Ok(history),
        }
    }

    /// Writes `dir/checkpoint-{step:08}/` for the current state (see [`write_checkpoint`]).
    pub fn save_checkpoint(&self, dir: &Path) -> TrainResult<PathBuf> {
        let optimizer = match &self.optimizer {
            Some(bytes) => OptimizerRecord::from_bytes(bytes.clone())
                .map_err(|e| TrainError::Learner(format!("optimizer state: {e:?}")))?,
            None => {
                let wrapper = RarLearnerModel::new(
                    self.model.clone(),
                    Arc::new(self.config.step_context(1, self.step)?),
                );
                self.config.adamw.init(&wrapper)?.to_record()
            }
        };
        let scheduler = ModuleLrScheduler::new(RarLrScheduler::new(
            self.config.lr_schedule()?,
            self.step,
            Arc::new(Default::default()),
        ))
        .to_record();
        write_checkpoint(
            dir,
            self.step,
            &self.model,
            optimizer,
            scheduler,
            &self.config,
        )
    }
}

/// What a launched run hands back to its [`Trainer`].
#[derive(Default)]
struct RunOutcome {
    model: Option<RarLearnerModel>,
    optimizer: Option<Bytes>,
    step: u64,
    error: Option<TrainError>,
}

/// The step-level strategy: see the [module docs](self).
struct StepStrategy<S: TokenSource + 'static> {
    source: Arc<S>,
    config: TrainingConfig,
    devices: Vec<Device>,
    stop: u64,
    tx: Mutex<Option<Sender<StepMetrics>>>,
    outcome: Arc<Mutex<RunOutcome>>,
}

/// A slot a capturing checkpointer fills, with a condition variable to wait on.
type Slot<R> = Arc<(Mutex<Option<(usize, R)>>, Condvar)>;

/// A [`Checkpointer`] that hands the record to the training loop instead of writing it.
struct Capture<R> {
    slot: Slot<R>,
}

impl<R: Checkpoint> Checkpointer<R> for Capture<R> {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let (lock, cv) = &*self.slot;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = Some((epoch, record));
        cv.notify_all();
        Ok(())
    }

    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        Err(CheckpointerError::Unknown(format!(
            "checkpoint {epoch}: records are only captured, never restored"
        )))
    }
}

fn take_slot<R>(slot: &Slot<R>, epoch: usize) -> TrainResult<R> {
    let (lock, cv) = &**slot;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if guard.as_ref().is_some_and(|(e, _)| *e == epoch) {
            return Ok(guard.take().expect("checked").1);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TrainError::Learner(format!(
                "the Learner's checkpointer did not deliver the records of step {epoch}"
            )));
        }
        guard = cv
            .wait_timeout(guard, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Saves on every call (the folder rotation is ours).
struct AlwaysSave;

impl CheckpointingStrategy for AlwaysSave {
    fn checkpointing(&mut self, _epoch: usize, _: &EventStoreClient) -> Vec<CheckpointingAction> {
        vec![CheckpointingAction::Save]
    }
}

/// burn's [`LearningCheckpointer`] with capturing checkpointers: the public path to the
/// Learner's optimizer and scheduler records.
struct RecordTap {
    checkpointer: LearningCheckpointer<RarLearnerModel>,
    optim: Slot<OptimizerRecord>,
    sched: Slot<LrSchedulerRecord>,
}

impl RecordTap {
    fn new(interrupter: &Interrupter) -> Self {
        let model: Slot<ModuleRecord> = Arc::default();
        let optim: Slot<OptimizerRecord> = Arc::default();
        let sched: Slot<LrSchedulerRecord> = Arc::default();
        let checkpointer = LearningCheckpointer::new(
            AsyncCheckpointer::new(Capture { slot: model }).with_interrupter(interrupter.clone()),
            AsyncCheckpointer::new(Capture {
                slot: optim.clone(),
            })
            .with_interrupter(interrupter.clone()),
            AsyncCheckpointer::new(Capture {
                slot: sched.clone(),
            })
            .with_interrupter(interrupter.clone()),
            Box::new(AlwaysSave),
        );
        Self {
            checkpointer,
            optim,
            sched,
        }
    }

    /// The Learner's optimizer and scheduler records (the model record, keyed by the
    /// wrapper's paths, is dropped: checkpoints save the inner `Rar`).
    fn records(
        &mut self,
        learner: &Learner<RarLearnerModel>,
        step: u64,
        store: &EventStoreClient,
    ) -> TrainResult<(OptimizerRecord, LrSchedulerRecord)> {
        let epoch = step as usize;
        self.checkpointer.checkpoint(learner, epoch, store);
        Ok((
            take_slot(&self.optim, epoch)?,
            take_slot(&self.sched, epoch)?,
        ))
    }
}

/// Sums of a logging window.
#[derive(Default)]
struct Window {
    steps: u64,
    loss: f64,
    accuracy: f64,
    grad_norm: f64,
    tokens: usize,
    started: Option<Instant>,
}

impl<S: TokenSource + 'static> StepStrategy<S> {
    fn fault(step: u64, fault: StepFault) -> TrainError {
        match fault {
            StepFault::Forward(msg) => TrainError::Learner(format!("train step {step}: {msg}")),
            StepFault::NonFiniteGradient(norm) => TrainError::NonFiniteGradient { step, norm },
            StepFault::NoGradients => TrainError::NoGradients,
        }
    }

    /// Reads a micro-batch's loss and accuracy back; a fault or a NaN/inf loss is an error.
    fn check_micro(ctx: &StepContext, step: u64, item: &StepOutput) -> TrainResult<(f64, f64)> {
        if let Some(fault) = ctx.take_fault() {
            return Err(Self::fault(step, fault));
        }
        let loss = scalar(item.loss.clone());
        if !loss.is_finite() {
            return Err(TrainError::NonFiniteLoss { step, loss });
        }
        Ok((loss, scalar(item.accuracy.clone())))
    }

    fn next_batch(iter: &mut (dyn DataLoaderIterator<TokenBatch> + '_)) -> TrainResult<TokenBatch> {
        iter.next()
            .ok_or_else(|| TrainError::Learner("the data loader ran out of micro-batches".into()))?
            .map_err(|e| TrainError::Learner(format!("data loader: {e}")))
    }

    /// The loop of the module docs, from the Learner's current step to `self.stop`.
    fn drive(
        &self,
        learner: &mut Learner<RarLearnerModel>,
        store: &EventStoreClient,
        interrupter: &Interrupter,
        tap: &mut RecordTap,
        step: &mut u64,
        tx: Option<&Sender<StepMetrics>>,
    ) -> TrainResult<()> {
        let ctx = learner.model().context().clone();
        let config = &self.config;
        let ndev = self.devices.len();
        let accum = config.accum_steps;
        let per_step = (accum * ndev) as u64;
        let micro = config.micro_batch_size(ndev)?;
        *step = ctx.step();
        let loaders: Vec<StepLoader<S>> = (0..ndev)
            .map(|d| {
                StepLoader::new(
                    self.source.clone(),
                    config.seed,
                    BatchPlan {
                        micro_batch_size: micro,
                        start: *step * per_step + d as u64,
                        end: self.stop * per_step,
                        stride: ndev as u64,
                    },
                    self.devices[d].clone(),
                )
            })
            .collect();
        let mut iters: Vec<Box<dyn DataLoaderIterator<TokenBatch> + '_>> =
            loaders.iter().map(|l| l.iter()).collect();
        let multi =
            (ndev > 1).then(|| MultiDevicesTrainStep::<RarLearnerModel>::new(&self.devices));
        let mut window = Window::default();
        while *step < self.stop {
            if interrupter.should_stop() {
                break;
            }
            let t = *step;
            window.started.get_or_insert_with(Instant::now);
            let (mut loss, mut acc, mut tokens) = (0.0, 0.0, 0usize);
            match &multi {
                None => {
                    let mut accumulator = GradientsAccumulator::<RarLearnerModel>::new();
                    let mut single: Option<GradientsParams> = None;
                    for _ in 0..accum {
                        let batch = Self::next_batch(iters[0].as_mut())?;
                        let out = learner.train_step(batch);
                        let (l, a) = Self::check_micro(&ctx, t, &out.item)?;
                        loss += l;
                        acc += a;
                        tokens += out.item.tokens;
                        if accum == 1 {
                            single = Some(out.grads);
                        } else {
                            accumulator.accumulate(&learner.model(), out.grads);
                        }
                    }
                    let grads = single.unwrap_or_else(|| accumulator.grads());
                    learner.lr_step();
                    learner.optimizer_step(grads);
                }
                Some(multi) => {
                    let mut accumulators: Vec<GradientsAccumulator<RarLearnerModel>> =
                        (0..ndev).map(|_| GradientsAccumulator::new()).collect();
                    for _ in 0..accum {
                        let (mut outputs, _) = multi
                            .step(&mut iters, &learner.model())
                            .map_err(|e| TrainError::Learner(e.to_string()))?;
                        if outputs.len() != ndev {
                            return Err(TrainError::Learner(format!(
                                "{} of {ndev} devices returned a micro-batch",
                                outputs.len()
                            )));
                        }
                        // Outputs arrive in completion order. Device `d` is fed the micro-batches
                        // `≡ d (mod ndev)` (see the loaders above), so the index names the
                        // device, and sorting makes every sum independent of thread timing.
                        outputs.sort_by_key(|o| o.output.item.micro_batch);
                        for o in outputs {
                            let (l, a) = Self::check_micro(&ctx, t, &o.output.item)?;
                            loss += l;
                            acc += a;
                            tokens += o.output.item.tokens;
                            let d = (o.output.item.micro_batch % ndev as u64) as usize;
                            accumulators[d].accumulate(&learner.model(), o.output.grads);
                        }
                    }
                    let grads = MultiGradientsParams {
                        grads: accumulators
                            .iter_mut()
                            .zip(&self.devices)
                            .map(|(a, d)| (a.grads(), d.clone()))
                            .collect(),
                    };
                    learner.lr_step();
                    learner.optimizer_step_multi(grads);
                }
            }
            if let Some(fault) = ctx.take_fault() {
                return Err(Self::fault(t, fault));
            }
            *step = t + 1;
            if ctx.step() != *step {
                return Err(TrainError::Learner(format!(
                    "the LR scheduler counted {} optimizer steps, the loop {}",
                    ctx.step(),
                    *step
                )));
            }
            let parts = per_step as f64;
            window.steps += 1;
            window.loss += loss / parts;
            window.accuracy += acc / parts;
            window.grad_norm += ctx.take_grad_norm().unwrap_or(f64::NAN);
            window.tokens += tokens;
            let done = *step;
            let due = |every: u64| every > 0 && done.is_multiple_of(every);
            if let Some(dir) = &config.checkpoint_dir
                && due(config.checkpoint_every)
            {
                let (optim, sched) = tap.records(learner, done, store)?;
                write_checkpoint(
                    Path::new(dir),
                    done,
                    &learner.model().rar,
                    optim,
                    sched,
                    config,
                )?;
            }
            if let Some(dir) = &config.preview_dir
                && due(config.preview_every)
            {
                write_preview(
                    Path::new(dir),
                    done,
                    &learner.model().rar.valid(),
                    self.source.as_ref(),
                    config,
                )?;
            }
            if due(config.log_every) || done == config.steps {
                let n = window.steps as f64;
                let elapsed = window
                    .started
                    .take()
                    .map_or(1e-9, |s| s.elapsed().as_secs_f64().max(1e-9));
                let metrics = StepMetrics {
                    step: done,
                    loss: window.loss / n,
                    accuracy: window.accuracy / n,
                    lr: learner.lr_current().base(),
                    random_ratio: ctx.ratio(t),
                    grad_norm: window.grad_norm / n,
                    tokens_per_sec: window.tokens as f64 / elapsed,
                };
                if let Some(tx) = tx {
                    let _ = tx.send(metrics);
                }
                window = Window::default();
            }
        }
        Ok(())
    }
}

impl<S: TokenSource + 'static> SupervisedLearningStrategy<RarLearnerModel> for StepStrategy<S> {
    fn fit(
        &self,
        components: TrainingComponents<RarLearnerModel>,
        mut learner: Learner<RarLearnerModel>,
        _train: TrainLoader<RarLearnerModel>,
        _valid: ValidLoader<RarLearnerModel>,
        _starting_epoch: usize,
    ) -> (
        RarLearnerModel,
        SupervisedTrainingEventProcessor<RarLearnerModel>,
    ) {
        let TrainingComponents {
            event_processor,
            event_store,
            interrupter,
            ..
        } = components;
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut tap = RecordTap::new(&interrupter);
        let mut step = learner.model().context().step();
        let mut result = self.drive(
            &mut learner,
            &event_store,
            &interrupter,
            &mut tap,
            &mut step,
            tx.as_ref(),
        );
        drop(tx);
        // Hand the optimizer state back (also after an error: a failed step never reaches
        // the optimizer, so this is the state of the last good step).
        let optimizer = tap
            .records(&learner, step, &event_store)
            .and_then(|(optim, _)| {
                optim
                    .into_bytes()
                    .map_err(|e| TrainError::Learner(format!("optimizer state: {e:?}")))
            });
        let optimizer = match optimizer {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                if result.is_ok() {
                    result = Err(e);
                }
                None
            }
        };
        if result.is_ok()
            && let Some(error) = interrupter.error()
        {
            result = Err(TrainError::Learner(error.to_string()));
        }
        let model = learner.model();
        {
            let mut out = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
            out.model = Some(model.clone());
            out.optimizer = optimizer;
            out.step = step;
            out.error = result.err();
        }
        (model, event_processor)
    }
}

/// Writes `dir/checkpoint-{step:08}/` atomically — into a temporary folder that is then
/// renamed — and removes all but the newest `config.keep_checkpoints`. Returns the folder.
///
/// Contents: `model.bpk` (the inner [`Rar`], reference parameter names), `optimizer.bpk`
/// (the Learner's [`OptimizerRecord`]), `scheduler.bpk` (its [`LrSchedulerRecord`], holding
/// the step), `config.json` and `step.txt`. Everything else a resume needs is a function of
/// the step: the data position, the orders, the label dropout, the dropout masks and the LR.
pub fn write_checkpoint(
    dir: &Path,
    step: u64,
    model: &Rar,
    optimizer: OptimizerRecord,
    scheduler: LrSchedulerRecord,
    config: &TrainingConfig,
) -> TrainResult<PathBuf> {
    let io = |path: &Path, e: String| TrainError::Write {
        path: path.to_path_buf(),
        reason: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e.to_string()))?;
    let name = format!("checkpoint-{step:08}");
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e.to_string()))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e.to_string()))?;
    model.save_burnpack(tmp.join("model.bpk"))?;
    let optim_path = tmp.join("optimizer.bpk");
    optimizer
        .save(&optim_path)
        .map_err(|e| io(&optim_path, format!("{e:?}")))?;
    let sched_path = tmp.join("scheduler.bpk");
    scheduler
        .save(&sched_path)
        .map_err(|e| io(&sched_path, format!("{e:?}")))?;
    let config_path = tmp.join("config.json");
    config
        .save(&config_path)
        .map_err(|e| io(&config_path, e.to_string()))?;
    let step_path = tmp.join("step.txt");
    std::fs::write(&step_path, format!("{step}\n")).map_err(|e| io(&step_path, e.to_string()))?;
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| io(&target, e.to_string()))?;
    }
    std::fs::rename(&tmp, &target).map_err(|e| io(&target, e.to_string()))?;
    let mut all = list_checkpoints(dir)?;
    while all.len() > config.keep_checkpoints.max(1) {
        let (_, old) = all.remove(0);
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e.to_string()))?;
    }
    Ok(target)
}

/// Samples one grid per preview class (all classes by default) and writes
/// `dir/preview-{step:08}.png` when the source can render tokens. Returns the file, if any.
pub fn write_preview<S: TokenSource + ?Sized>(
    dir: &Path,
    step: u64,
    model: &Rar,
    source: &S,
    config: &TrainingConfig,
) -> TrainResult<Option<PathBuf>> {
    let classes: Vec<usize> = if config.preview_classes.is_empty() {
        (0..config.model.num_classes).collect()
    } else {
        config.preview_classes.clone()
    };
    let grids = sample_grids(
        model,
        &classes,
        &config.preview_options()?,
        config.seed ^ step,
    )?;
    let Some((w, h, rgb)) = source.render_preview(&grids)? else {
        return Ok(None);
    };
    let io = |path: &Path, e: String| TrainError::Write {
        path: path.to_path_buf(),
        reason: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e.to_string()))?;
    let path = dir.join(format!("preview-{step:08}.png"));
    image::save_buffer(&path, &rgb, w, h, image::ColorType::Rgb8)
        .map_err(|e| io(&path, e.to_string()))?;
    Ok(Some(path))
}

/// burn's renderer slot, kept silent: the metrics are this crate's [`StepMetrics`] lines (burn's
/// `CliMetricsRenderer` prints only start/end lines, and the TUI is not compiled in).
#[derive(Default)]
struct QuietRenderer;

impl MetricsRendererTraining for QuietRenderer {
    fn update_train(&mut self, _state: MetricState) {}
    fn update_valid(&mut self, _state: MetricState) {}
}

impl MetricsRendererEvaluation for QuietRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl TrainingProgressLogger for QuietRenderer {
    fn start(&mut self, _: usize, _: usize, _: Option<usize>, _: Option<&str>) {}
    fn update_epoch(&mut self, _: usize) {}
    fn start_split(&mut self, _: &str, _: usize) {}
    fn update_split(&mut self, _: usize) {}
    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _: String) {}
}

impl EvaluationProgressLogger for QuietRenderer {
    fn start_global_progress(&mut self, _: usize) {}
    fn start_test(&mut self, _: &str, _: usize) {}
    fn update_test_progress(&mut self, _: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _: String) {}
}

impl MetricsRenderer for QuietRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _: MetricDefinition) {}
}

/// The `checkpoint-*` folders of `dir` with their steps (read from `step.txt`), oldest
/// first; an absent `dir` has none.
pub fn list_checkpoints(dir: &Path) -> TrainResult<Vec<(u64, PathBuf)>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let read = |path: &Path, e: String| TrainError::Read {
        path: path.to_path_buf(),
        reason: e,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| read(dir, e.to_string()))? {
        let path = entry.map_err(|e| read(dir, e.to_string()))?.path();
        let is_checkpoint = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("checkpoint-"));
        if !is_checkpoint || !path.is_dir() {
            continue;
        }
        let step_path = path.join("step.txt");
        let text =
            std::fs::read_to_string(&step_path).map_err(|e| read(&step_path, e.to_string()))?;
        let step = text
            .trim()
            .parse::<u64>()
            .map_err(|e| read(&step_path, format!("not a step number: {e}")))?;
        out.push((step, path));
    }
    out.sort();
    Ok(out)
}

/// Mean loss and token accuracy of `model` (use an inference model, e.g. `model.valid()`) on
/// `data` in raster order with the true class labels.
pub fn validation_loss<S: TokenSource + ?Sized>(
    model: &Rar,
    data: &S,
    batch_size: usize,
) -> TrainResult<(f64, f64)> {
    if data.is_empty() || batch_size == 0 {
        return Err(TrainError::InvalidSetting(
            "validation needs a non-empty dataset and a positive batch size".into(),
        ));
    }
    let device = model.device();
    let space = model.config().token_space();
    let n = data.image_seq_len();
    let (mut loss_sum, mut acc_sum, mut count) = (0.0, 0.0, 0usize);
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch_size).min(data.len());
        let b = end - start;
        let mut tokens = Vec::with_capacity(b * n);
        let mut ids = Vec::with_capacity(b);
        for i in start..end {
            let (class, item) = data.get(i)?;
            if item.len() != n {
                return Err(TrainError::Data {
                    index: i,
                    reason: format!("{} tokens, expected {n}", item.len()),
                });
            }
            tokens.extend(item.iter().map(|&x| x as i64));
            ids.push(space.class_id(class)? as i64);
        }
        let out = model.forward(rar_model::RarInput {
            tokens: Tensor::<2, burn::tensor::Int>::from_data(
                burn::tensor::TensorData::new(tokens, [b, n]),
                &device,
            ),
            condition: rar_model::condition::condition_tensor(&ids, &device),
            orders: rar_model::BatchOrders::raster(b, n, &device)?,
        })?;
        loss_sum += scalar(out.loss()) * b as f64;
        acc_sum += scalar(out.accuracy()) * b as f64;
        count += b;
        start = end;
    }
    Ok((loss_sum / count as f64, acc_sum / count as f64))
}

/// Samples one token grid per entry of `classes` with the KV-cached sampler (raster order
/// for the released models). The device RNG is seeded with `seed` under this crate's RNG
/// lock, so the result is reproducible per backend.
pub fn sample_grids(
    model: &Rar,
    classes: &[usize],
    options: &SamplingOptions,
    seed: u64,
) -> TrainResult<Vec<Vec<u32>>> {
    if classes.is_empty() {
        return Err(TrainError::InvalidSetting(
            "sampling needs at least one class".into(),
        ));
    }
    let ids = {
        let _guard = rng_guard();
        Sampler::new(model).sample(classes, options, Some(seed))?
    };
    let n = model.config().image_seq_len;
    let flat = ids
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| TrainError::InvalidSetting(format!("sampled ids: {e:?}")))?;
    Ok(flat
        .chunks(n)
        .map(|row| row.iter().map(|&x| x as u32).collect())
        .collect())
}

/// Samples one grid per class with the KV-cached sampler and checks each against its toy
/// class ([`is_valid_instance`]); seeded as [`sample_grids`].
/// Returns the token grids (raster order) and the share the checker accepts.
pub fn sample_validity(
    model: &Rar,
    classes: &[usize],
    options: &SamplingOptions,
    seed: u64,
) -> TrainResult<(Vec<Vec<u32>>, f64)> {
    let grids = sample_grids(model, classes, options, seed)?;
    let valid = grids
        .iter()
        .zip(classes)
        .filter(|(g, c)| is_valid_instance(g, **c))
        .count();
    Ok((grids, valid as f64 / classes.len() as f64))
}

/// Lays out token grids (each `side × side`) as an RGB image with `cols` columns, each token
/// `scale × scale` pixels and a 1-token black gutter; returns `(width, height, rgb)`.
pub fn render_grid(
    grids: &[Vec<u32>],
    side: usize,
    cols: usize,
    scale: usize,
) -> (u32, u32, Vec<u8>) {
    let cols = cols.max(1);
    let rows = grids.len().div_ceil(cols);
    let cell = (side + 1) * scale;
    let (w, h) = (cols * cell + scale, rows * cell + scale);
    let mut out = vec![0u8; w * h * 3];
    for (i, g) in grids.iter().enumerate() {
        let img = crate::toy::render_rgb(g, side, scale);
        let (ox, oy) = ((i % cols) * cell + scale, (i / cols) * cell + scale);
        let px = side * scale;
        for y in 0..px {
            let dst = ((oy + y) * w + ox) * 3;
            out[dst..dst + px * 3].copy_from_slice(&img[y * px * 3..(y + 1) * px * 3]);
        }
    }
    (w as u32, h as u32, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AdamWSettings;

    #[test]
    fn checkpoint_configs_without_a_precision_load_as_fp32() {
        let dir = std::env::temp_dir().join(format!("rar-train-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = TrainingConfig::new(RarConfig::new(32, 1, 2, 64), AdamWSettings::new())
            .with_precision(ComputePrecision::Bf16);
        let path = dir.join("config.json");
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
