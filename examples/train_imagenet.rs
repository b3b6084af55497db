//! Train RAR on pretokenized ImageNet (the shards written by `pretokenize_imagenet`) with the
//! official recipe (spec §4, §6) as the defaults.
//!
//! ```text
//! # 1. pretokenize ImageNet (ten-crop, as the released models)
//! cargo run --release --features cuda --example pretokenize_imagenet -- \
//!     --input imagenet/train --output tokens --weights maskgit-vqgan-imagenet-f16-256.bin \
//!     --crops ten-crop --batch-size 64 --device cuda:0
//!
//! # 2. train RAR-B: global batch 2048, 250k steps, r annealed from step 125k to 187.5k
//! cargo run --release --features cuda --example train_imagenet -- \
//!     --shards tokens --preset rar-b --devices cuda:0,cuda:1,cuda:2,cuda:3 \
//!     --checkpoint-dir runs/rar-b --tokenizer maskgit-vqgan-imagenet-f16-256.bin
//!
//! # after an interruption: the same command with --resume (exact data position)
//! ```
//!
//! Defaults (spec §6.1, identical for all sizes): batch 2048, 250 000 steps, LR 4e-4 with
//! 62 500 warm-up steps and a cosine decay to 1e-5, AdamW β 0.9 / 0.96, eps 1e-8, weight decay
//! 0.03, gradient clipping 1.0, randomness annealing from step 125 000 to 187 500, dropout 0.1,
//! class-label dropout 0.1, seed 42, a checkpoint every 50 000 steps, a preview every 5 000
//! (with `--tokenizer`), a log line every 50. With `--steps` other than 250 000, the warm-up
//! and the annealing bounds default to the same fractions of the run (25 %, 50 %, 75 %);
//! `--warmup-steps`, `--anneal-start` and `--anneal-end` set them in absolute steps.
//!
//! Not exercised by the project's tests: a real ImageNet run, CUDA, several devices (see
//! docs/TRAINING.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rar::model::{ComputePrecision, RarConfig, RarPreset};
use rar::train::{
    AdamWSettings, PREVIEW_CLASSES, ShardSource, StepMetrics, Trainer, TrainingRecipe,
    list_checkpoints,
};
use rar::vq::{StreamOptions, Tokenizer};

#[derive(Parser, Debug)]
#[command(about = "Train RAR on pretokenized ImageNet shards (official recipe by default)")]
struct Args {
    /// Directory of a finished `pretokenize_imagenet` run (index.json and the shards).
    #[arg(long)]
    shards: PathBuf,
    /// Model preset: rar-b, rar-l, rar-xl, rar-xxl (default rar-b).
    #[arg(long)]
    preset: Option<String>,
    /// A reference-format config.json instead of a preset (e.g. a small custom model).
    #[arg(long, conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// Training devices, comma-separated (flex, ndarray, cuda:0,cuda:1 …); several devices
    /// train data-parallel (burn-train's multi-device step).
    #[arg(long, default_value = "flex")]
    devices: String,
    /// Global batch: samples per optimizer step over all devices and micro-batches.
    #[arg(long, default_value_t = 2048)]
    batch_size: usize,
    /// Gradient accumulation: micro-batches per optimizer step (batch-size must be a multiple
    /// of accum-steps × devices).
    #[arg(long, default_value_t = 1)]
    accum_steps: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = TrainingRecipe::OFFICIAL_STEPS)]
    steps: u64,
    /// Linear warm-up in optimizer steps [default: 62 500 × steps / 250 000].
    #[arg(long)]
    warmup_steps: Option<u64>,
    /// Step where the randomness annealing starts (r = 1 up to here) [default: steps / 2].
    #[arg(long)]
    anneal_start: Option<u64>,
    /// Step where r reaches 0 [default: 3 × steps / 4].
    #[arg(long)]
    anneal_end: Option<u64>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 4e-4)]
    lr: f64,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 1e-5)]
    end_lr: f64,
    /// AdamW β₁.
    #[arg(long, default_value_t = 0.9)]
    beta1: f32,
    /// AdamW β₂.
    #[arg(long, default_value_t = 0.96)]
    beta2: f32,
    /// AdamW decoupled weight decay (of the decayed parameter group).
    #[arg(long, default_value_t = 0.03)]
    weight_decay: f32,
    /// Global gradient-norm clipping threshold.
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Class-label dropout probability.
    #[arg(long, default_value_t = 0.1)]
    class_label_dropout: f64,
    /// Dropout after the attention projection and in the MLP.
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Dropout of the attention probabilities [default: --dropout].
    #[arg(long)]
    attn_drop: Option<f64>,
    /// Folder of the step checkpoints (`checkpoint-{step:08}/`).
    #[arg(long, default_value = "rar-imagenet/checkpoints")]
    checkpoint_dir: PathBuf,
    /// Write a checkpoint every this many optimizer steps (0: only the final one).
    #[arg(long, default_value_t = 50_000)]
    checkpoint_every: u64,
    /// Keep only the newest this many checkpoints.
    #[arg(long, default_value_t = 3)]
    keep: usize,
    /// Continue from the newest checkpoint in --checkpoint-dir (its settings are used; the
    /// shards must be opened as before: same --window-shards / --chunks-per-shard).
    #[arg(long)]
    resume: bool,
    /// Sample and decode a preview grid every this many steps (needs --tokenizer; 0: never).
    #[arg(long, default_value_t = 5_000)]
    preview_every: u64,
    /// MaskGIT-VQGAN tokenizer weights, to decode the previews (no previews without it).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Folder of the preview grids (`preview-{step:08}.png`).
    #[arg(long, default_value = "rar-imagenet/previews")]
    preview_dir: PathBuf,
    /// Classes of the preview grid (the reference's nine, plus a fixed tenth).
    #[arg(long, value_delimiter = ',', default_values_t = PREVIEW_CLASSES)]
    preview_classes: Vec<usize>,
    /// Print a metrics line every this many steps.
    #[arg(long, default_value_t = 50)]
    log_every: u64,
    /// Seed of the data order, token orders, label dropout, dropout masks and initialisation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Precision of the matrix products: bf16 (the reference's bf16 autocast; weights,
    /// gradients and AdamW state stay fp32) or f32. ndarray has no bf16: use f32 there.
    #[arg(long, default_value = "bf16", value_parser = rar::cli::parse_precision)]
    precision: ComputePrecision,
    /// Shards' worth of records held in memory and shuffled together (the shard stream's
    /// window).
    #[arg(long, default_value_t = rar::vq::stream::DEFAULT_WINDOW_SHARDS)]
    window_shards: usize,
    /// Chunks each shard is cut into before the chunks are spread over windows.
    #[arg(long, default_value_t = rar::vq::stream::DEFAULT_CHUNKS_PER_SHARD)]
    chunks_per_shard: usize,
    /// Check every shard's CRC-32 and token range before training (one pass over the data).
    #[arg(long)]
    verify: bool,
}

/// The model of `--preset` / `--config` with the dropouts of the command line.
fn model_config(args: &Args) -> Result<(RarConfig, RarPreset, String)> {
    let (config, preset, name) = match (&args.preset, &args.config) {
        (_, Some(path)) => {
            let config = RarConfig::from_reference_json(path)
                .with_context(|| format!("reading {}", path.display()))?;
            (config, RarPreset::B, path.display().to_string())
        }
        (name, None) => {
            let name = name.as_deref().unwrap_or("rar-b");
            let preset = RarPreset::from_name(name).with_context(|| {
                format!("unknown preset '{name}' (rar-b, rar-l, rar-xl, rar-xxl)")
            })?;
            (preset.config(), preset, preset.name().to_string())
        }
    };
    let config = config
        .with_dropout(args.dropout)
        .with_attn_drop(args.attn_drop.unwrap_or(args.dropout))
        .with_class_label_dropout(args.class_label_dropout);
    Ok((config, preset, name))
}

/// Opens the shards with the run's seed and attaches the tokenizer for previews.
fn open_source(
    args: &Args,
    seed: u64,
    tokenizer: Option<Tokenizer>,
) -> rar::train::Result<ShardSource> {
    let options = StreamOptions::new(seed)
        .with_window_shards(args.window_shards)
        .with_chunks_per_shard(args.chunks_per_shard);
    let source = ShardSource::open(&args.shards, options)?;
    match tokenizer {
        Some(t) => source.with_tokenizer(t),
        None => Ok(source),
    }
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let devices = rar::device::parse_devices(&args.devices)?;
    let tokenizer = match &args.tokenizer {
        Some(path) => {
            let (t, _) = Tokenizer::from_file(path, &devices[0])
                .with_context(|| format!("loading the tokenizer {}", path.display()))?;
            Some(t)
        }
        None => None,
    };
    let checkpoints = list_checkpoints(&args.checkpoint_dir)?;

    let mut trainer = if args.resume && !checkpoints.is_empty() {
        let mut tokenizer = tokenizer;
        let trainer = Trainer::try_resume_with_source(
            &args.checkpoint_dir,
            |c| open_source(&args, c.seed, tokenizer.take()),
            devices,
        )
        .with_context(|| {
            format!(
                "resuming from {} (open the shards as the original run did: same --shards, \
                 --window-shards and --chunks-per-shard)",
                args.checkpoint_dir.display()
            )
        })?;
        println!(
            "resumed at step {} of {} from {} (the checkpoint's settings apply; recipe flags are ignored)",
            trainer.step(),
            trainer.config().steps,
            args.checkpoint_dir.display()
        );
        trainer
    } else {
        if let Some((step, path)) = checkpoints.last() {
            bail!(
                "{} already holds a checkpoint of step {step} ({}): pass --resume to continue \
                 that run, or choose another --checkpoint-dir",
                args.checkpoint_dir.display(),
                path.display()
            );
        }
        if args.resume {
            println!(
                "no checkpoint in {}: starting a new run",
                args.checkpoint_dir.display()
            );
        }
        let (model, preset, name) = model_config(&args)?;
        let source = open_source(&args, args.seed, tokenizer)
            .with_context(|| format!("opening the shards in {}", args.shards.display()))?;
        source.check_model(&model).with_context(|| {
            format!(
                "model {name} does not fit the shards (pretokenized with another tokenizer \
                 or another class list?)"
            )
        })?;
        let scaled = TrainingRecipe::official().scaled_to(args.steps);
        let recipe = TrainingRecipe {
            steps: args.steps,
            batch_size: args.batch_size,
            accum_steps: args.accum_steps,
            base_lr: args.lr,
            end_lr: args.end_lr,
            warmup_steps: args.warmup_steps.unwrap_or(scaled.warmup_steps),
            anneal_start_step: args.anneal_start.unwrap_or(scaled.anneal_start_step),
            anneal_end_step: args.anneal_end.unwrap_or(scaled.anneal_end_step),
            adamw: AdamWSettings::new()
                .with_beta_1(args.beta1)
                .with_beta_2(args.beta2)
                .with_weight_decay(args.weight_decay),
            max_grad_norm: args.max_grad_norm,
            seed: args.seed,
            precision: args.precision,
        };
        let sampling = preset.sampling();
        let previews = source.has_tokenizer() && args.preview_every > 0;
        if args.preview_every > 0 && !source.has_tokenizer() {
            println!("no --tokenizer: previews are off");
        }
        let config = recipe
            .training_config(model)
            .context("the training recipe")?
            .with_log_every(args.log_every)
            .with_checkpoint_dir(Some(path_string(&args.checkpoint_dir)))
            .with_checkpoint_every(args.checkpoint_every)
            .with_keep_checkpoints(args.keep)
            .with_preview_every(if previews { args.preview_every } else { 0 })
            .with_preview_dir(previews.then(|| path_string(&args.preview_dir)))
            .with_preview_classes(if previews {
                args.preview_classes.clone()
            } else {
                Vec::new()
            })
            .with_preview_guidance(sampling.guidance_scale)
            .with_preview_guidance_power(Some(sampling.guidance_power));
        println!(
            "model {name}: {:.1} M parameters; recipe: {} steps of {} (accumulation {}), lr {:e} → {:e}, \
             warm-up {}, r annealed over steps {}..{}",
            config.model.num_params() as f64 / 1e6,
            recipe.steps,
            recipe.batch_size,
            recipe.accum_steps,
            recipe.base_lr,
            recipe.end_lr,
            recipe.warmup_steps,
            recipe.anneal_start_step,
            recipe.anneal_end_step
        );
        Trainer::with_source(config, source, devices).context("starting the run")?
    };

    let source = trainer.source();
    let stream = source.stream();
    println!(
        "data: {} ({} records in {} shards, {} classes; window {} shards × {} chunks, ≤ {:.0} MiB held); \
         {:.2} epochs in {} steps",
        args.shards.display(),
        stream.len(),
        stream.num_shards(),
        stream.num_classes(),
        stream.options().window_shards,
        stream.options().chunks_per_shard,
        stream.memory_bound_bytes() as f64 / (1 << 20) as f64,
        trainer.config().steps as f64 * trainer.config().batch_size as f64 / stream.len() as f64,
        trainer.config().steps
    );
    if args.verify {
        let start = Instant::now();
        stream.verify_checksums().context("verifying the shards")?;
        println!(
            "verified every shard in {:.1} s",
            start.elapsed().as_secs_f64()
        );
    }

    let start = Instant::now();
    let first = trainer.step();
    trainer.run(|m: &StepMetrics| println!("{m}"))?;
    let last = list_checkpoints(&args.checkpoint_dir)?.pop();
    let path = match last {
        Some((step, path)) if step == trainer.step() => path,
        _ => trainer.save_checkpoint(&args.checkpoint_dir)?,
    };
    println!(
        "done: {} steps in {:.1} s; final checkpoint {}",
        trainer.step() - first,
        start.elapsed().as_secs_f64(),
        path.display()
    );
    Ok(())
}
