//! Training on rar-vq token shards (the output of `pretokenize_imagenet`, spec §8):
//! [`ShardSource`], a [`TokenSource`] over a [`ShardStream`], and [`TrainingRecipe`], the
//! official ImageNet recipe (spec §6.1) in absolute optimizer steps.
//!
//! # Order and efficiency
//!
//! A [`ShardStream`] is already a seeded, per-epoch shuffled, endless stream whose record at
//! global position `p` is a pure function of `(seed, window options, p)`. [`ShardSource`]
//! therefore [provides its own order](TokenSource::provides_order): run position `p` (see
//! [`crate::source`]) is stream position `p`, and the trainer adds no shuffle on top (which
//! would need [`ShardStream::record_at`] per sample, rebuilding a window permutation each
//! time). Positions are served by one [`ShardCursor`] behind a mutex, which reads a window
//! (about `window_shards` shards' worth of records) at a time; it seeks only when the
//! requested position is not the next one — after a resume, or when several data loaders
//! interleave — and a seek inside the window held costs nothing.
//!
//! Since the data position is a function of the optimizer step, a resumed run reads exactly
//! the records the uninterrupted run would have read, provided the stream is opened with the
//! same seed and window options: [`ShardSource::order_key`](TokenSource::order_key) records
//! them (and the run's identity: record count, shard count, image fingerprint) in the run's
//! configuration, and a resume with different ones is refused.
//!
//! # Validation
//!
//! [`ShardStream::open`] validates the index and every shard header; the trainer checks the
//! tokens per record, the codebook size and the class count against the model configuration
//! before the model is built ([`crate::TrainingConfig::check`]); labels and token ids are
//! range-checked as windows are read (an error names the shard file, the record and the
//! value).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rar_model::{ComputePrecision, RarConfig};
use rar_vq::{CursorStats, ShardCursor, ShardStream, StreamOptions, Tokenizer};

use crate::error::{Result, TrainError};
use crate::optim::AdamWSettings;
use crate::source::TokenSource;
use crate::trainer::TrainingConfig;

/// Columns of the preview grid (the reference writes 10 previews as 2 rows × 5).
pub const PREVIEW_COLUMNS: usize = 5;

/// The reference's preview classes (spec §6.5; its tenth class is random, here a fixed one).
pub const PREVIEW_CLASSES: [usize; 10] = [1, 7, 282, 604, 724, 179, 751, 404, 850, 88];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A [`TokenSource`] over a pretokenization run read as a [`ShardStream`]: see the
/// [module docs](self).
pub struct ShardSource {
    stream: ShardStream,
    /// Serves the training positions ([`TokenSource::get_at`]).
    cursor: Mutex<ShardCursor>,
    /// Serves [`TokenSource::get`] (epoch-0 positions), so that e.g. a validation pass does
    /// not move the training cursor.
    lookup: Mutex<ShardCursor>,
    seeks: AtomicU64,
    tokenizer: Option<Mutex<Tokenizer>>,
}

impl std::fmt::Debug for ShardSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardSource")
            .field("dir", &self.stream.dir())
            .field("records", &self.stream.len())
            .field("options", &self.stream.options())
            .field("tokenizer", &self.tokenizer.is_some())
            .finish()
    }
}

impl ShardSource {
    /// Opens the finished pretokenization run in `dir` (see [`ShardStream::open`]); the
    /// stream's seed is `options.seed` (use the run's seed).
    pub fn open(dir: impl AsRef<Path>, options: StreamOptions) -> Result<Self> {
        Ok(Self::new(ShardStream::open(dir, options)?))
    }

    /// A source reading `stream` from position 0.
    pub fn new(stream: ShardStream) -> Self {
        Self {
            cursor: Mutex::new(stream.cursor(0)),
            lookup: Mutex::new(stream.cursor(0)),
            stream,
            seeks: AtomicU64::new(0),
            tokenizer: None,
        }
    }

    /// Decodes preview grids to images with `tokenizer` ([`TokenSource::render_preview`]);
    /// without a tokenizer no preview is written. Its codebook must be the shards'.
    pub fn with_tokenizer(mut self, tokenizer: Tokenizer) -> Result<Self> {
        if tokenizer.codebook_size() != self.stream.codebook_size() {
            return Err(TrainError::InvalidSetting(format!(
                "the tokenizer has {} codes but {} were written with a codebook of {}",
                tokenizer.codebook_size(),
                self.describe(),
                self.stream.codebook_size()
            )));
        }
        self.tokenizer = Some(Mutex::new(tokenizer));
        Ok(self)
    }

    /// The stream being read.
    pub fn stream(&self) -> &ShardStream {
        &self.stream
    }

    /// Whether previews are decoded to images.
    pub fn has_tokenizer(&self) -> bool {
        self.tokenizer.is_some()
    }

    /// The next training position the cursor would serve without seeking.
    pub fn position(&self) -> u64 {
        lock(&self.cursor).position()
    }

    /// How often the training cursor had to seek (a position other than the next one was
    /// asked for: once per resume, otherwise only when loaders interleave).
    pub fn seeks(&self) -> u64 {
        self.seeks.load(Ordering::Relaxed)
    }

    /// What the training cursor read and held (windows loaded, records resident…).
    pub fn cursor_stats(&self) -> CursorStats {
        lock(&self.cursor).stats()
    }

    /// Checks that `model` fits the shards (tokens per record, codebook size, class count),
    /// with an error naming the directory and every mismatching value. The trainer does the
    /// same check when a run starts; this is for tools that want to fail before anything else.
    pub fn check_model(&self, model: &RarConfig) -> Result<()> {
        TrainingConfig::new(model.clone(), AdamWSettings::new())
            .with_batch_size(1)
            .check(self, 1)
    }

    fn read(cursor: &mut ShardCursor) -> Result<(usize, Vec<u32>)> {
        let (label, tokens) = cursor.next_record()?;
        Ok((
            usize::from(label),
            tokens.iter().map(|&t| u32::from(t)).collect(),
        ))
    }
}

impl TokenSource for ShardSource {
    /// Records per epoch.
    fn len(&self) -> usize {
        self.stream.len()
    }

    /// The record at position `index` of epoch 0 of the stream (served by a second cursor,
    /// sequential reading is cheap).
    fn get(&self, index: usize) -> Result<(usize, Vec<u32>)> {
        let mut cursor = lock(&self.lookup);
        if cursor.position() != index as u64 {
            cursor.seek(index as u64);
        }
        Self::read(&mut cursor)
    }

    fn image_seq_len(&self) -> usize {
        self.stream.tokens_per_record()
    }

    fn codebook_size(&self) -> usize {
        self.stream.codebook_size()
    }

    fn num_classes(&self) -> usize {
        self.stream.num_classes()
    }

    /// Always `true`: the stream is already shuffled per epoch by its seed.
    fn provides_order(&self) -> bool {
        true
    }

    /// Stream position `position`, read with the training cursor (seeking only when it is
    /// not the next position).
    fn get_at(&self, position: u64) -> Result<(usize, Vec<u32>)> {
        let mut cursor = lock(&self.cursor);
        if cursor.position() != position {
            self.seeks.fetch_add(1, Ordering::Relaxed);
            cursor.seek(position);
        }
        Self::read(&mut cursor)
    }

    fn order_key(&self) -> Option<String> {
        let o = self.stream.options();
        let index = self.stream.index();
        Some(format!(
            "rar-vq shard stream: seed {}, window_shards {}, chunks_per_shard {}; {} records in {} shards, images fingerprint {}",
            o.seed,
            o.window_shards,
            o.chunks_per_shard,
            self.stream.len(),
            self.stream.num_shards(),
            index.images_fingerprint
        ))
    }

    fn describe(&self) -> String {
        format!("the token shards in {}", self.stream.dir().display())
    }

    /// Decodes the grids with the tokenizer (when one was given) into a grid image of up to
    /// [`PREVIEW_COLUMNS`] columns.
    fn render_preview(&self, grids: &[Vec<u32>]) -> Result<Option<(u32, u32, Vec<u8>)>> {
        let Some(tokenizer) = &self.tokenizer else {
            return Ok(None);
        };
        if grids.is_empty() {
            return Ok(None);
        }
        let flat: Vec<u32> = grids.concat();
        let images =
            lock(tokenizer).decode_tokens_to_images(&flat, self.stream.tokens_per_record())?;
        let cols = PREVIEW_COLUMNS.min(images.len()).max(1);
        let rows = images.len().div_ceil(cols);
        let grid = rar_vq::make_grid(&images, rows, cols)?;
        Ok(Some((grid.width(), grid.height(), grid.into_raw())))
    }
}

/// A training schedule in absolute optimizer steps, as the reference states it (spec §4,
/// §6.1), turned into a [`TrainingConfig`] by [`Self::training_config`] (whose annealing
/// bounds are fractions of the step count).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRecipe {
    /// Optimizer steps.
    pub steps: u64,
    /// Global batch (samples per optimizer step over all devices and micro-batches).
    pub batch_size: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub accum_steps: usize,
    /// Peak learning rate.
    pub base_lr: f64,
    /// Final learning rate of the cosine decay (reached at `steps`).
    pub end_lr: f64,
    /// Linear warm-up length in optimizer steps.
    pub warmup_steps: u64,
    /// Last step with `r = 1` (the linear annealing starts here).
    pub anneal_start_step: u64,
    /// First step with `r = 0`.
    pub anneal_end_step: u64,
    /// AdamW settings.
    pub adamw: AdamWSettings,
    /// Global gradient-norm clipping threshold.
    pub max_grad_norm: f64,
    /// Seed of the data order, the token orders, the label dropout and the dropout masks.
    pub seed: u64,
    /// Precision of the matrix products (the reference: bf16 autocast over fp32 weights).
    pub precision: ComputePrecision,
}

impl Default for TrainingRecipe {
    fn default() -> Self {
        Self::official()
    }
}

impl TrainingRecipe {
    /// Optimizer steps of the official recipe.
    pub const OFFICIAL_STEPS: u64 = 250_000;

    /// The official recipe (spec §6.1, identical for all sizes): global batch 2048, 250 000
    /// steps, LR 4e-4 with 62 500 warm-up steps and a cosine decay to 1e-5, AdamW β 0.9 / 0.96,
    /// eps 1e-8, weight decay 0.03, clipping at 1.0, `r` annealed from step 125 000 to
    /// 187 500, seed 42, bf16 products over fp32 weights (the reference's bf16 autocast).
    /// (Dropout 0.1 and class-label dropout 0.1 are in the presets' [`RarConfig`].)
    pub fn official() -> Self {
        Self {
            steps: Self::OFFICIAL_STEPS,
            batch_size: 2048,
            accum_steps: 1,
            base_lr: 4e-4,
            end_lr: 1e-5,
            warmup_steps: 62_500,
            anneal_start_step: 125_000,
            anneal_end_step: 187_500,
            adamw: AdamWSettings::new(),
            max_grad_norm: 1.0,
            seed: 42,
            precision: ComputePrecision::Bf16,
        }
    }

    /// This recipe over `steps` optimizer steps, with the warm-up and the annealing bounds
    /// scaled by the same factor (rounded), i.e. at the same fractions of the run.
    pub fn scaled_to(mut self, steps: u64) -> Self {
        let scale = |s: u64| {
            if self.steps == 0 {
                0
            } else {
                ((s as f64) * (steps as f64) / (self.steps as f64)).round() as u64
            }
        };
        self.warmup_steps = scale(self.warmup_steps);
        self.anneal_start_step = scale(self.anneal_start_step);
        self.anneal_end_step = scale(self.anneal_end_step);
        self.steps = steps;
        self
    }

    /// The [`TrainingConfig`] of this recipe for `model` (annealing bounds converted to the
    /// fractions `anneal_start_step / steps` and `anneal_end_step / steps`, which the trainer
    /// maps back to exactly these steps). Errors name the setting when the steps are out of
    /// order or the values out of range. Logging, checkpoints and previews keep their
    /// defaults; set them on the result.
    pub fn training_config(&self, model: RarConfig) -> Result<TrainingConfig> {
        if self.steps == 0 {
            return Err(TrainError::InvalidSetting(
                "steps must be at least 1".into(),
            ));
        }
        if self.anneal_start_step > self.anneal_end_step || self.anneal_end_step > self.steps {
            return Err(TrainError::InvalidSetting(format!(
                "the annealing needs anneal_start_step ({}) <= anneal_end_step ({}) <= steps ({})",
                self.anneal_start_step, self.anneal_end_step, self.steps
            )));
        }
        if self.warmup_steps > self.steps {
            return Err(TrainError::InvalidSetting(format!(
                "warmup_steps ({}) exceeds steps ({})",
                self.warmup_steps, self.steps
            )));
        }
        let fraction = |s: u64| s as f64 / self.steps as f64;
        let config = TrainingConfig::new(model, self.adamw.clone())
            .with_steps(self.steps)
            .with_batch_size(self.batch_size)
            .with_accum_steps(self.accum_steps)
            .with_base_lr(self.base_lr)
            .with_end_lr(self.end_lr)
            .with_warmup_steps(self.warmup_steps)
            .with_anneal_start(fraction(self.anneal_start_step))
            .with_anneal_end(fraction(self.anneal_end_step))
            .with_max_grad_norm(self.max_grad_norm)
            .with_seed(self.seed)
            .with_precision(self.precision);
        let r = config.randomness()?;
        if (r.start, r.end) != (self.anneal_start_step, self.anneal_end_step) {
            return Err(TrainError::InvalidSetting(format!(
                "annealing steps {}..{} of {} do not survive the conversion to fractions ({}..{})",
                self.anneal_start_step, self.anneal_end_step, self.steps, r.start, r.end
            )));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_recipe_maps_to_the_reference_schedule() {
        let model = RarConfig::new(32, 1, 2, 64);
        let c = TrainingRecipe::official().training_config(model).unwrap();
        assert_eq!((c.anneal_start, c.anneal_end), (0.5, 0.75));
        let r = c.randomness().unwrap();
        assert_eq!(r.ratio(125_000), 1.0);
        assert_eq!(r.ratio(187_500), 0.0);
        assert!((r.ratio(156_250) - 0.5).abs() < 1e-12);
        let lr = c.lr_schedule().unwrap();
        assert_eq!(lr.lr_at(0), 0.0);
        assert!((lr.lr_at(62_500) - 4e-4).abs() < 1e-12);
        assert!((lr.lr_at(156_250) - 2.05e-4).abs() < 1e-9);
        assert_eq!((c.batch_size, c.steps, c.seed), (2048, 250_000, 42));
    }

    #[test]
    fn absolute_steps_survive_the_fraction_round_trip() {
        let model = RarConfig::new(32, 1, 2, 64);
        for steps in [1u64, 3, 7, 1000, 250_000, 1_000_003] {
            for start in [0, steps / 3, steps / 2, steps] {
                let recipe = TrainingRecipe {
                    steps,
                    anneal_start_step: start,
                    anneal_end_step: steps,
                    warmup_steps: 0,
                    ..TrainingRecipe::official()
                };
                recipe.training_config(model.clone()).unwrap();
            }
        }
        let scaled = TrainingRecipe::official().scaled_to(1000);
        assert_eq!(
            (
                scaled.warmup_steps,
                scaled.anneal_start_step,
                scaled.anneal_end_step
            ),
            (250, 500, 750)
        );
        let bad = TrainingRecipe {
            anneal_start_step: 10,
            anneal_end_step: 5,
            ..TrainingRecipe::official()
        };
        let err = bad.training_config(model).unwrap_err().to_string();
        assert!(err.contains("anneal_start_step (10)"), "{err}");
    }
}
