//! The training loop (see [`Trainer`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsAccumulator;
use burn::tensor::{Device, Tensor};
use rar_data::SampleSource;
use rar_model::Rar;

use crate::checkpoints::{Restored, list_checkpoints, restore, restore_newest, write_checkpoint};
use crate::config::TrainingConfig;
use crate::device_rng::device_rng;
use crate::error::{Result, TrainError};
use crate::evaluate::validation_loss;
use crate::inputs::TrainingInputs;
use crate::optimizer::RarOptimizer;
use crate::parallel::Devices;
use crate::preview::{PreviewRenderer, write_preview};
use crate::progress::{RunObserver, StepMetrics, Window};
use crate::step::MicroBatch;

/// Forces every lazy parameter to be initialised now (under the RNG lock).
struct Materialise;

impl ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// A training run between steps: its settings, data, model, optimizer state and devices.
///
/// The training loop: a plain loop over burn's autodiff and optimizer.
///
/// Every optimizer step `t` (0-based; `t` = steps done):
///
/// 1. the step's samples are positions `[t·B, (t+1)·B)` of the data's seeded stream, cut into
///    `accum_steps × devices` micro-batches read in position order, so the data position is a
///    function of `t` alone;
/// 2. each micro-batch (micro-batch `k` on device `k mod devices`, see the devices' workers):
///    orders with ratio `r(t)` and class-label dropout keyed by `(seed, t, position)`, dropout
///    masks from the device RNG reseeded with `(seed, t, micro-batch)`, mean cross-entropy
///    scaled by `1 / micro-batches`, backward; a NaN/inf loss stops the run before any update;
/// 3. the gradients are summed in micro-batch order, clipped to a global L2 norm and applied
///    by AdamW with the reference's groups at `lr(t)` ([`RarOptimizer`]);
/// 4. every `checkpoint_every` steps a checkpoint, every `preview_every` steps a preview
///    grid, every `log_every` steps a [`StepMetrics`] report.
///
/// Everything a resume needs besides the model and the AdamW state is a function of `t`,
/// so a run resumed from its checkpoint continues exactly where it stopped.
pub struct Trainer {
    config: TrainingConfig,
    data: Arc<dyn SampleSource>,
    /// Always filled, except inside a step's update: the model is moved into the optimizer
    /// (so that nothing else holds its parameters and AdamW writes them in place) after the
    /// fallible gradient check, and the updated one put back.
    model: Option<Rar>,
    optimizer: RarOptimizer,
    devices: Devices,
    preview: Option<Box<dyn PreviewRenderer>>,
}

impl Trainer {
    /// A fresh run of `config` on `data` over `devices` (data parallel when several), with a
    /// model initialised on the first device (the device RNG seeded with `config.seed`).
    /// Every setting is checked first; `config.data_order` is filled with the data's
    /// [`order_key`](SampleSource::order_key) when unset.
    pub fn new(
        mut config: TrainingConfig,
        data: Arc<dyn SampleSource>,
        devices: Vec<Device>,
    ) -> Result<Self> {
        let order = data.order_key();
        config.data_order.get_or_insert(order);
        let devices = Devices::new(devices, config.precision)?;
        Self::check(&config, data.as_ref(), &devices, None)?;
        let device = devices.main().clone();
        let model = {
            let _rng = device_rng();
            device.seed(config.seed);
            let model = config.model.try_init(&device)?;
            model.visit(&mut Materialise);
            model
        };
        let optimizer = RarOptimizer::new(
            &model,
            &config.adamw,
            config.lr_schedule()?,
            config.max_grad_norm,
        )?;
        Ok(Self {
            config,
            data,
            model: Some(model),
            optimizer,
            devices,
            preview: None,
        })
    }

    /// Resumes from the newest checkpoint in `dir`: configuration, model, optimizer state and
    /// step (the data position follows from the step). The data is opened by `open_data`
    /// from the checkpoint's configuration (e.g. with the run's seed) and must have the order
    /// the run was started with. When the newest checkpoint is damaged (its checksums, model or
    /// optimizer state do not read back), the error names the newest older one that is intact
    /// ([`TrainError::Checkpoint`]); [`Self::resume_from`] resumes from it.
    pub fn resume(
        dir: &Path,
        open_data: impl FnOnce(&TrainingConfig) -> Result<Arc<dyn SampleSource>>,
        devices: Vec<Device>,
    ) -> Result<Self> {
        let probe = Devices::new(devices.clone(), rar_model::ComputePrecision::F32)?;
        let (path, restored) = restore_newest(dir, probe.main())?;
        Self::resumed(&path, restored, open_data, devices)
    }

    /// Resumes from the checkpoint folder `checkpoint` (`…/checkpoint-00050000`), e.g. an older
    /// one than the newest (see [`Self::resume`]).
    pub fn resume_from(
        checkpoint: &Path,
        open_data: impl FnOnce(&TrainingConfig) -> Result<Arc<dyn SampleSource>>,
        devices: Vec<Device>,
    ) -> Result<Self> {
        let probe = Devices::new(devices.clone(), rar_model::ComputePrecision::F32)?;
        let (restored, _) = restore(checkpoint, probe.main())?;
        Self::resumed(checkpoint, restored, open_data, devices)
    }

    fn resumed(
        path: &Path,
        restored: Restored,
        open_data: impl FnOnce(&TrainingConfig) -> Result<Arc<dyn SampleSource>>,
        devices: Vec<Device>,
    ) -> Result<Self> {
        let devices = Devices::new(devices, restored.config.precision)?;
        let data = open_data(&restored.config)?;
        Self::check(&restored.config, data.as_ref(), &devices, Some(path))?;
        Ok(Self {
            config: restored.config,
            data,
            model: Some(restored.model),
            optimizer: restored.optimizer,
            devices,
            preview: None,
        })
    }

    /// Starts the run `config` describes, or continues it: with `resume` and a checkpoint in
    /// `config.checkpoint_dir`, [`Self::resume`] (the checkpoint's settings apply); without
    /// any checkpoint there, a fresh run; a checkpoint there without `resume` is an error
    /// (a new run must not overwrite another one's checkpoints). Returns the trainer and
    /// whether it resumed.
    pub fn open_or_resume(
        config: TrainingConfig,
        resume: bool,
        open_data: impl FnOnce(&TrainingConfig) -> Result<Arc<dyn SampleSource>>,
        devices: Vec<Device>,
    ) -> Result<(Self, bool)> {
        let dir = config.checkpoint_dir.clone().ok_or_else(|| {
            TrainError::InvalidSetting("open_or_resume needs a checkpoint_dir".into())
        })?;
        let dir = PathBuf::from(dir);
        match (list_checkpoints(&dir)?.last(), resume) {
            (Some(_), true) => Ok((Self::resume(&dir, open_data, devices)?, true)),
            (Some((step, path)), false) => Err(TrainError::InvalidSetting(format!(
                "{} already holds a checkpoint of step {step} ({}): resume that run, or choose \
                 another checkpoint directory",
                dir.display(),
                path.display()
            ))),
            (None, _) => {
                let data = open_data(&config)?;
                Ok((Self::new(config, data, devices)?, false))
            }
        }
    }

    /// Every check before a run starts: the settings, the data, the devices, and that the
    /// checkpoint and preview folders can be written (so that a run does not fail at its
    /// first checkpoint after hours of work).
    fn check(
        config: &TrainingConfig,
        data: &dyn SampleSource,
        devices: &Devices,
        resumed_from: Option<&Path>,
    ) -> Result<()> {
        config
            .check(
                &data.spec(),
                &data.describe(),
                &data.order_key(),
                devices.len(),
            )
            .map_err(|e| match (e, resumed_from) {
                (TrainError::InvalidSetting(m), Some(path)) => TrainError::InvalidSetting(format!(
                    "cannot resume from {}: {m}",
                    path.display()
                )),
                (e, _) => e,
            })?;
        let previews = config
            .preview_dir
            .as_ref()
            .filter(|_| config.preview_every > 0);
        for dir in config.checkpoint_dir.iter().chain(previews) {
            rar_data::check_writable_dir(Path::new(dir))?;
        }
        Ok(())
    }

    /// Renders preview grids with `renderer` every `config.preview_every` steps (into
    /// `config.preview_dir`); without a renderer no preview is written.
    pub fn with_previews(mut self, renderer: impl PreviewRenderer + 'static) -> Self {
        self.preview = Some(Box::new(renderer));
        self
    }

    /// The model being trained (on the first device, autodiff).
    pub fn model(&self) -> &Rar {
        self.model
            .as_ref()
            .expect("the trainer's model is only out during an optimizer update")
    }

    /// The run's settings.
    pub fn config(&self) -> &TrainingConfig {
        &self.config
    }

    /// The training data.
    pub fn data(&self) -> &Arc<dyn SampleSource> {
        &self.data
    }

    /// The training devices (autodiff).
    pub fn devices(&self) -> &[Device] {
        self.devices.as_slice()
    }

    /// The 0-based optimizer step of the next update (= optimizer steps done).
    pub fn step(&self) -> u64 {
        self.optimizer.step()
    }

    /// Mean loss and token accuracy of the current model (inference mode, products in the
    /// run's precision) on `data` (see [`validation_loss`]).
    pub fn validate(&self, data: &dyn rar_data::TokenData) -> Result<(f64, f64)> {
        rar_model::with_compute_precision(self.config.precision, || {
            validation_loss(&self.model().valid(), data, self.config.batch_size)
        })
    }

    /// Trains until `config.steps` optimizer steps are done (see [`Self::run_until`]).
    pub fn run(&mut self, observer: &mut dyn RunObserver) -> Result<Vec<StepMetrics>> {
        self.run_until(self.config.steps, observer)
    }

    /// Trains until `stop` optimizer steps are done (at most `config.steps`), reporting to
    /// `observer` (every step, and a [`StepMetrics`] every `log_every` steps and after the
    /// last one), and returns the reported metrics. On error the model and optimizer state
    /// stay those of the last good step, and the checkpoints already written are kept.
    pub fn run_until(
        &mut self,
        stop: u64,
        observer: &mut dyn RunObserver,
    ) -> Result<Vec<StepMetrics>> {
        let stop = stop.min(self.config.steps);
        let inputs = TrainingInputs::new(&self.config)?;
        let ndev = self.devices.len();
        let micro_size = self.config.micro_batch_size(ndev)?;
        let per_step = self.config.micro_batches(ndev);
        let loss_scale = 1.0 / per_step as f64;
        let mut history = Vec::new();
        let mut window = Window::default();
        while self.step() < stop {
            let t = self.step();
            window.start_step();
            let mut accumulator = GradientsAccumulator::<Rar>::new();
            let (mut loss, mut accuracy, mut tokens) = (0.0, 0.0, 0usize);
            for group in 0..self.config.accum_steps {
                // One micro-batch per device, read in position order.
                let micros = (0..ndev)
                    .map(|d| {
                        let k = (group * ndev + d) as u64;
                        let index = t * per_step as u64 + k;
                        let first = index * micro_size as u64;
                        Ok(MicroBatch {
                            batch: self.data.read(first, micro_size)?,
                            index,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let outputs = self.devices.run(
                    self.model(),
                    &micros,
                    t,
                    &inputs,
                    self.config.precision,
                    loss_scale,
                )?;
                for out in outputs {
                    loss += out.loss;
                    accuracy += out.accuracy;
                    tokens += out.tokens;
                    accumulator.accumulate(self.model(), out.grads);
                }
            }
            let checked = self
                .optimizer
                .check_gradients(self.model(), accumulator.grads())?;
            let current = self
                .model
                .take()
                .expect("the model is in place between updates");
            let (model, update) = self.optimizer.apply(current, checked);
            self.model = Some(model);
            let done = t + 1;
            let parts = per_step as f64;
            window.add(loss / parts, accuracy / parts, update.grad_norm, tokens);
            observer.step_done(done, self.config.steps);
            self.after_step(done, observer)?;
            let due = |every: u64| every > 0 && done.is_multiple_of(every);
            if due(self.config.log_every) || done == self.config.steps {
                let metrics = window.close(done, update.lr, inputs.ratio(t));
                observer.metrics(&metrics);
                history.push(metrics);
            }
        }
        Ok(history)
    }

    /// The checkpoint and the preview due after `done` steps.
    fn after_step(&self, done: u64, observer: &mut dyn RunObserver) -> Result<()> {
        let due = |every: u64| every > 0 && done.is_multiple_of(every);
        if let Some(dir) = &self.config.checkpoint_dir
            && due(self.config.checkpoint_every)
        {
            let path = self.save_checkpoint(Path::new(dir))?;
            observer.saved("checkpoint", &path);
        }
        if let (Some(dir), Some(renderer)) = (&self.config.preview_dir, &self.preview)
            && due(self.config.preview_every)
        {
            let model = self.model().valid();
            let path = rar_model::with_compute_precision(self.config.precision, || {
                write_preview(
                    Path::new(dir),
                    done,
                    &model,
                    renderer.as_ref(),
                    &self.config,
                )
            })?;
            observer.saved("preview", &path);
        }
        Ok(())
    }

    /// Writes `dir/checkpoint-{step:08}/` for the current state atomically and removes all but
    /// the newest `config.keep_checkpoints`. Returns the folder.
    ///
    /// A checkpoint holds `model.bpk` (the generator, burn's burnpack format with the parameter
    /// ids the optimizer state refers to), `optimizer.bpk` (burn's AdamW state: moments and step
    /// counts per parameter), `config.json` (the [`TrainingConfig`]), `step.txt` (optimizer
    /// steps done) and `checksums.json` (CRC-32 of each, checked on resume). Everything else a resume needs is a function of the step: the data position,
    /// the orders, the label dropout, the dropout masks and the learning rate. A checkpoint is
    /// written into a hidden temporary folder that is then renamed, so a folder under its final
    /// name is complete.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<PathBuf> {
        write_checkpoint(
            dir,
            self.step(),
            self.model(),
            &self.optimizer,
            &self.config,
        )
    }
}
