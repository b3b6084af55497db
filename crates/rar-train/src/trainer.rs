//! A plain training loop on the embedded toy dataset (spec §4, §6.4 at toy scale), with
//! validation loss and sample validity.
//!
//! Every optimizer step `t` (0-based):
//!
//! 1. the batch is the next `B` items of the epoch's shuffled index list (shuffled with
//!    `(seed, epoch)`), so the data position is a function of `t`;
//! 2. `r(t)` from [`RandomnessSchedule`]; each sample's order from [`OrderSampler`] keyed by
//!    `(t, global sample index)` — random with probability `r`, raster otherwise;
//! 3. class-label dropout with uniforms from the stream `(seed, t)`;
//! 4. forward, mean cross-entropy, backward, global-norm clipping, AdamW with the reference's
//!    groups at `lr(t)` ([`RarOptimizer`]).
//!
//! Everything random is derived from `(seed, t, …)`, so a run is reproducible. A NaN or
//! infinite loss stops the run with [`TrainError::NonFiniteLoss`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rar_core::rng::Xoshiro256PlusPlus;
use rar_core::{OrderSampler, RandomnessSchedule, SequenceLayout, WarmupCosineLr};
use rar_model::condition::{condition_tensor, drop_class_labels_with_rng};
use rar_model::{BatchOrders, Rar, RarConfig, RarInput};
use rar_sample::{Sampler, SamplingOptions};

use crate::error::{Result as TrainResult, TrainError};
use crate::optim::AdamWSettings;
use crate::step::{RarOptimizer, StepStats, scalar};
use crate::toy::{TOY_CLASSES, TOY_CODEBOOK, TOY_TOKENS, ToyDataset, is_valid_instance};

/// Stream key of the class-label-dropout uniforms.
const LABEL_DROPOUT_STREAM: u64 = 0x6c61_6265_6c64;
/// Stream key of the per-epoch shuffles.
const SHUFFLE_STREAM: u64 = 0x7368_7566_666c;

/// Serialises the seeded uses of burn's process-global device RNG in this crate (model
/// initialisation in [`ToyTrainer::new`], sampling in [`sample_validity`]).
static RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Forces every lazy parameter to be initialised now.
struct Materialise;

impl ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Settings of a toy training run.
#[derive(Config, Debug)]
pub struct ToyTrainingConfig {
    /// The model (its `image_seq_len`, `codebook_size` and `num_classes` must match the toy
    /// dataset: 256, 8 and 10).
    pub model: RarConfig,
    /// AdamW settings (the reference's by default: `AdamWSettings::new()`).
    pub adamw: AdamWSettings,
    /// Number of optimizer steps.
    #[config(default = 600)]
    pub steps: u64,
    /// Samples per optimizer step.
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
    /// Number of training samples (a pass over them is one epoch).
    #[config(default = 20000)]
    pub train_size: usize,
    /// Number of validation samples (drawn with a different seed).
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
}

impl ToyTrainingConfig {
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

    fn check(&self) -> TrainResult<()> {
        let m = &self.model;
        if m.image_seq_len != TOY_TOKENS
            || m.codebook_size != TOY_CODEBOOK
            || m.num_classes != TOY_CLASSES
        {
            return Err(TrainError::InvalidSetting(format!(
                "the toy dataset needs image_seq_len {TOY_TOKENS}, codebook_size {TOY_CODEBOOK}, num_classes {TOY_CLASSES}; the model has {}, {}, {}",
                m.image_seq_len, m.codebook_size, m.num_classes
            )));
        }
        if self.batch_size == 0 || self.train_size == 0 {
            return Err(TrainError::InvalidSetting(format!(
                "batch_size ({}) and train_size ({}) must be positive",
                self.batch_size, self.train_size
            )));
        }
        Ok(())
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

/// The state of a toy training run between steps.
pub struct ToyTrainer {
    config: ToyTrainingConfig,
    model: Rar,
    optim: RarOptimizer,
    data: ToyDataset,
    orders: OrderSampler,
    randomness: RandomnessSchedule,
    epoch_order: Option<(u64, Vec<usize>)>,
    device: Device,
}

impl ToyTrainer {
    /// A fresh run: a randomly initialised model on `device.autodiff()` (the device is
    /// seeded with `config.seed` first, so initialisation is reproducible per backend as long
    /// as no other code draws from the device RNG at the same time).
    pub fn new(config: ToyTrainingConfig, device: &Device) -> TrainResult<Self> {
        config.check()?;
        let device = device.clone().autodiff();
        let model = {
            // burn's device RNG is process-global: seed, initialise and materialise every
            // (lazy) parameter under one lock so concurrent trainers cannot interleave draws.
            let _guard = RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            device.seed(config.seed);
            let model = config.model.try_init(&device)?;
            model.visit(&mut Materialise);
            model
        };
        let optim = RarOptimizer::new(
            &model,
            &config.adamw,
            config.lr_schedule()?,
            config.max_grad_norm,
        )?;
        Self::assemble(config, model, optim, device)
    }

    /// The trainer around a built model and optimizer (shared by [`Self::new`] and
    /// [`Self::resume`]): data, orders and the randomness schedule derive from `config`.
    fn assemble(
        config: ToyTrainingConfig,
        model: Rar,
        optim: RarOptimizer,
        device: Device,
    ) -> TrainResult<Self> {
        Ok(Self {
            data: ToyDataset::new(config.seed, config.train_size),
            orders: OrderSampler::raster(config.seed, TOY_TOKENS)?,
            randomness: config.randomness()?,
            epoch_order: None,
            model,
            optim,
            device,
            config,
        })
    }

    /// The model being trained (on the autodiff device).
    pub fn model(&self) -> &Rar {
        &self.model
    }

    /// The run's settings.
    pub fn config(&self) -> &ToyTrainingConfig {
        &self.config
    }

    /// The 0-based optimizer step of the next update.
    pub fn step(&self) -> u64 {
        self.optim.step()
    }

    /// Dataset index of the `position`-th sample of the run (per-epoch shuffles).
    fn item_index(&mut self, position: u64) -> usize {
        let len = self.data.len() as u64;
        let epoch = position / len;
        if self.epoch_order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut order: Vec<usize> = (0..self.data.len()).collect();
            Xoshiro256PlusPlus::for_stream(self.config.seed, &[SHUFFLE_STREAM, epoch])
                .shuffle(&mut order);
            self.epoch_order = Some((epoch, order));
        }
        let order = &self.epoch_order.as_ref().expect("set above").1;
        order[(position % len) as usize]
    }

    /// The batch of step `t` (tokens, dropped-out condition ids, per-sample orders) and its
    /// random ratio.
    fn batch(&mut self, t: u64) -> TrainResult<(RarInput, f64)> {
        let b = self.config.batch_size;
        let first = t * b as u64;
        let mut tokens = Vec::with_capacity(b * TOY_TOKENS);
        let mut classes = Vec::with_capacity(b);
        for i in 0..b as u64 {
            let index = self.item_index(first + i);
            let item = self.data.get(index).ok_or_else(|| {
                TrainError::InvalidSetting(format!("dataset index {index} out of range"))
            })?;
            tokens.extend(item.tokens.iter().map(|&x| x as i64));
            classes.push(item.class);
        }
        let ratio = self.randomness.ratio(t);
        let layouts = self
            .orders
            .sample_batch(t, first, b, ratio)
            .into_iter()
            .map(|o| SequenceLayout::new(o.order))
            .collect::<rar_core::Result<Vec<_>>>()?;
        let space = self.config.model.token_space();
        let mut rng = Xoshiro256PlusPlus::for_stream(self.config.seed, &[LABEL_DROPOUT_STREAM, t]);
        let ids = drop_class_labels_with_rng(
            &classes,
            self.config.model.class_label_dropout,
            &space,
            &mut rng,
        )?;
        let input = RarInput {
            tokens: Tensor::<2, Int>::from_data(
                TensorData::new(tokens, [b, TOY_TOKENS]),
                &self.device,
            ),
            condition: condition_tensor(&ids, &self.device),
            orders: BatchOrders::new(layouts, &self.device)?,
        };
        Ok((input, ratio))
    }

    /// Runs one optimizer step; returns its scalars and random ratio.
    pub fn train_step(&mut self) -> TrainResult<(StepStats, f64)> {
        let t = self.optim.step();
        let (input, ratio) = self.batch(t)?;
        // On error the model is gone with the step, so keep a (cheap, shared) handle.
        let model = self.model.clone();
        let (model, stats) = self.optim.train_step(model, input)?;
        self.model = model;
        Ok((stats, ratio))
    }

    /// Trains until `config.steps` optimizer steps are done, calling `on_log` every
    /// `config.log_every` steps (and after the last one).
    pub fn run(&mut self, on_log: impl FnMut(&StepMetrics)) -> TrainResult<Vec<StepMetrics>> {
        self.run_until(self.config.steps, on_log)
    }

    /// [`Self::run`], stopping once `stop` optimizer steps are done (at most `config.steps`).
    /// Checkpoints are written every `config.checkpoint_every` steps when
    /// `config.checkpoint_dir` is set.
    pub fn run_until(
        &mut self,
        stop: u64,
        mut on_log: impl FnMut(&StepMetrics),
    ) -> TrainResult<Vec<StepMetrics>> {
        let stop = stop.min(self.config.steps);
        let mut history = Vec::new();
        let mut window: Vec<(StepStats, f64)> = Vec::new();
        let mut started = Instant::now();
        while self.optim.step() < stop {
            window.push(self.train_step()?);
            let done = self.optim.step();
            if let Some(dir) = self.config.checkpoint_dir.clone()
                && self.config.checkpoint_every > 0
                && done.is_multiple_of(self.config.checkpoint_every)
            {
                self.save_checkpoint(Path::new(&dir))?;
            }
            let log_now = (self.config.log_every > 0 && done.is_multiple_of(self.config.log_every))
                || done == self.config.steps;
            if log_now && !window.is_empty() {
                let n = window.len() as f64;
                let (last, ratio) = *window.last().expect("non-empty");
                let metrics = StepMetrics {
                    step: done,
                    loss: window.iter().map(|(s, _)| s.loss).sum::<f64>() / n,
                    accuracy: window.iter().map(|(s, _)| s.accuracy).sum::<f64>() / n,
                    lr: last.lr,
                    random_ratio: ratio,
                    grad_norm: window.iter().map(|(s, _)| s.grad_norm).sum::<f64>() / n,
                    tokens_per_sec: n * (self.config.batch_size * TOY_TOKENS) as f64
                        / started.elapsed().as_secs_f64().max(1e-9),
                };
                on_log(&metrics);
                history.push(metrics);
                window.clear();
                started = Instant::now();
            }
        }
        Ok(history)
    }

    /// Writes `dir/checkpoint-{step:08}/` (model, optimizer state, config, step) atomically —
    /// into a temporary folder that is then renamed — and removes all but the newest
    /// `config.keep_checkpoints`. Returns the checkpoint folder.
    ///
    /// Everything else a resume needs is a function of the step: the data position, the
    /// orders, the label dropout and the learning rate. (Dropout masks come from the device
    /// RNG, which is not saved: runs with dropout resume statistically, not bit-exactly.)
    pub fn save_checkpoint(&self, dir: &Path) -> TrainResult<PathBuf> {
        let step = self.optim.step();
        let io = |path: &Path, e: std::io::Error| TrainError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let name = format!("checkpoint-{step:08}");
        let tmp = dir.join(format!(".{name}.tmp"));
        let target = dir.join(&name);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        self.model.save_burnpack(tmp.join("model.bpk"))?;
        self.optim.save_state(&tmp.join("optimizer.bpk"))?;
        let config_path = tmp.join("config.json");
        self.config
            .save(&config_path)
            .map_err(|e| io(&config_path, e))?;
        let step_path = tmp.join("step.txt");
        std::fs::write(&step_path, format!("{step}\n")).map_err(|e| io(&step_path, e))?;
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(|e| io(&target, e))?;
        }
        std::fs::rename(&tmp, &target).map_err(|e| io(&target, e))?;
        let mut all = list_checkpoints(dir)?;
        while all.len() > self.config.keep_checkpoints.max(1) {
            let (_, old) = all.remove(0);
            std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        }
        Ok(target)
    }

    /// Resumes from the newest checkpoint in `dir` (see [`Self::save_checkpoint`]): model,
    /// optimizer state, configuration and step. The model goes to `device.autodiff()`.
    pub fn resume(dir: &Path, device: &Device) -> TrainResult<Self> {
        let (step, path) = list_checkpoints(dir)?
            .pop()
            .ok_or_else(|| TrainError::Read {
                path: dir.to_path_buf(),
                reason: "no checkpoint-* folder".into(),
            })?;
        let config_path = path.join("config.json");
        let config = ToyTrainingConfig::load(&config_path).map_err(|e| TrainError::Read {
            path: config_path.clone(),
            reason: e.to_string(),
        })?;
        config.check()?;
        let device = device.clone().autodiff();
        let model = Rar::from_burnpack(path.join("model.bpk"), &config.model, &device)?;
        let optim = RarOptimizer::new(
            &model,
            &config.adamw,
            config.lr_schedule()?,
            config.max_grad_norm,
        )?
        .with_step(step)
        .load_state(&path.join("optimizer.bpk"))?;
        Self::assemble(config, model, optim, device)
    }

    /// Mean loss and token accuracy on the validation split (raster order, no label dropout,
    /// no dropout).
    pub fn validate(&self) -> TrainResult<(f64, f64)> {
        let data = ToyDataset::new(self.config.seed.wrapping_add(1), self.config.val_size);
        validation_loss(&self.model.valid(), &data, self.config.batch_size)
    }
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
pub fn validation_loss(
    model: &Rar,
    data: &ToyDataset,
    batch_size: usize,
) -> TrainResult<(f64, f64)> {
    if data.is_empty() || batch_size == 0 {
        return Err(TrainError::InvalidSetting(
            "validation needs a non-empty dataset and a positive batch size".into(),
        ));
    }
    let device = model.device();
    let space = model.config().token_space();
    let (mut loss_sum, mut acc_sum, mut count) = (0.0, 0.0, 0usize);
    let mut start = 0;
    while start < data.len() {
        let end = (start + batch_size).min(data.len());
        let b = end - start;
        let mut tokens = Vec::with_capacity(b * TOY_TOKENS);
        let mut ids = Vec::with_capacity(b);
        for i in start..end {
            let item = data.get(i).expect("index below len");
            tokens.extend(item.tokens.iter().map(|&x| x as i64));
            ids.push(space.class_id(item.class)? as i64);
        }
        let out = model.forward(RarInput {
            tokens: Tensor::<2, Int>::from_data(TensorData::new(tokens, [b, TOY_TOKENS]), &device),
            condition: condition_tensor(&ids, &device),
            orders: BatchOrders::raster(b, TOY_TOKENS, &device)?,
        })?;
        loss_sum += scalar(out.loss()) * b as f64;
        acc_sum += scalar(out.accuracy()) * b as f64;
        count += b;
        start = end;
    }
    Ok((loss_sum / count as f64, acc_sum / count as f64))
}

/// Samples one grid per class with the KV-cached sampler and checks each against its class.
/// The device RNG is seeded with `seed` (under this crate's RNG lock), so the result is
/// reproducible per backend.
/// Returns the token grids (raster order) and the share the checker accepts.
pub fn sample_validity(
    model: &Rar,
    classes: &[usize],
    options: &SamplingOptions,
    seed: u64,
) -> TrainResult<(Vec<Vec<u32>>, f64)> {
    if classes.is_empty() {
        return Err(TrainError::InvalidSetting(
            "sample_validity needs at least one class".into(),
        ));
    }
    let ids = {
        let _guard = RNG_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        Sampler::new(model).sample(classes, options, Some(seed))?
    };
    let n = model.config().image_seq_len;
    let flat = ids
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| TrainError::InvalidSetting(format!("sampled ids: {e:?}")))?;
    let grids: Vec<Vec<u32>> = flat
        .chunks(n)
        .map(|row| row.iter().map(|&x| x as u32).collect())
        .collect();
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
