//! Train RAR on pretokenized ImageNet (the shards `pretokenize_imagenet` writes) with the
//! official recipe (`TrainingConfig::official`) as the defaults:
//! ```text
//! cargo run --release --features cuda --example train_imagenet -- \
//!     --shards tokens --preset rar-b --devices cuda:0,cuda:1,cuda:2,cuda:3 \
//!     --checkpoint-dir runs/rar-b --tokenizer maskgit-vqgan-imagenet-f16-256.bin
//! ```
//! The same command with `--resume` continues an interrupted run exactly. Other settings
//! (AdamW, warm-up, annealing, dropouts, previews …) are `TrainingConfig` fields:
//! `--write-config run.json` writes the flags' config and exits, `--training-config run.json`
//! trains from an edited copy (fields: docs/TRAINING.md).

mod common;

use anyhow::{Context, Result};
use burn::config::Config;
use clap::Parser;
use rar::data::{SampleSource, SampleStream, ShardSet, StreamConfig};
use rar::model::{ComputePrecision, RarConfig, RarPreset};
use rar::train::{ConsoleProgress, PREVIEW_CLASSES, TokenizerPreview, Trainer, TrainingConfig};
use rar::vq::Tokenizer;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(about = "Train RAR on pretokenized ImageNet shards (official recipe by default)")]
struct Args {
    /// Directory of a finished `pretokenize_imagenet` run (index.json and the shards).
    #[arg(long)]
    shards: PathBuf,
    /// Model preset: rar-b, rar-l, rar-xl, rar-xxl.
    #[arg(long, default_value = "rar-b")]
    preset: String,
    /// A reference-format model config.json instead of a preset (e.g. a small custom model).
    #[arg(long)]
    model_config: Option<PathBuf>,
    /// A full training configuration (JSON, as `--write-config` writes it) instead of the flags.
    #[arg(long)]
    training_config: Option<PathBuf>,
    /// Write the flags' training configuration to this file and exit.
    #[arg(long)]
    write_config: Option<PathBuf>,
    /// Training devices, comma-separated (flex, cuda:0,cuda:1 …): data parallel.
    #[arg(long, default_value = "flex")]
    devices: String,
    /// Global batch: samples per optimizer step over all devices and micro-batches.
    #[arg(long, default_value_t = 2048)]
    batch_size: usize,
    /// Gradient accumulation: micro-batches per optimizer step and device.
    #[arg(long, default_value_t = 1)]
    accum_steps: usize,
    /// Optimizer steps (warm-up and annealing keep their fractions of the run).
    #[arg(long, default_value_t = TrainingConfig::OFFICIAL_STEPS)]
    steps: u64,
    /// Seed of the data order, token orders, label dropout, dropout masks and initialisation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Precision of the matrix products: bf16 (the reference's) or f32 (ndarray: f32 only).
    #[arg(long, default_value = "bf16", value_parser = common::sampling::parse_precision)]
    precision: ComputePrecision,
    /// Folder of the step checkpoints (`checkpoint-{step:08}/`).
    #[arg(long, default_value = "rar-imagenet/checkpoints")]
    checkpoint_dir: PathBuf,
    /// Write a checkpoint every this many optimizer steps (the last step always gets one).
    #[arg(long, default_value_t = 50_000)]
    checkpoint_every: u64,
    /// Continue from the newest checkpoint in --checkpoint-dir, or from the checkpoint folder
    /// given (its settings apply).
    #[arg(long, num_args = 0..=1)]
    resume: Option<Option<PathBuf>>,
    /// MaskGIT-VQGAN tokenizer weights: previews every 5 000 steps (none without it).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Shards' worth of records held in memory and shuffled together (the stream's window).
    #[arg(long, default_value_t = rar::data::DEFAULT_WINDOW_UNITS)]
    window_shards: usize,
    /// Chunks each shard is cut into before the chunks are spread over windows.
    #[arg(long, default_value_t = rar::data::DEFAULT_CHUNKS_PER_UNIT)]
    chunks_per_shard: usize,
    /// Check every shard's CRC-32 and token range first (one pass over the data).
    #[arg(long)]
    verify: bool,
}

/// The run the flags describe: the official recipe for the model, with the flags applied.
fn recipe(args: &Args) -> Result<TrainingConfig> {
    let preset = RarPreset::from_name(&args.preset).context("unknown --preset")?;
    let model = match &args.model_config {
        Some(path) => RarConfig::from_reference_json(path)?,
        None => preset.config(),
    };
    let previews = args.checkpoint_dir.with_file_name("previews");
    let dir = |p: &std::path::Path| Some(p.to_string_lossy().into_owned());
    Ok(TrainingConfig::official(model, args.steps)
        .with_batch_size(args.batch_size)
        .with_accum_steps(args.accum_steps)
        .with_seed(args.seed)
        .with_precision(args.precision)
        .with_checkpoint_dir(dir(&args.checkpoint_dir))
        .with_checkpoint_every(args.checkpoint_every)
        .with_preview_every(if args.tokenizer.is_some() { 5_000 } else { 0 })
        .with_preview_dir(dir(&previews))
        .with_preview_classes(PREVIEW_CLASSES.to_vec())
        .with_preview_sampling(&rar::sample::SamplingConfig::preset(preset)))
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Every step frees and reallocates the same large buffers: keep them in the process.
    rar::allocator::retain_freed_memory();
    let config = match &args.training_config {
        Some(path) => {
            TrainingConfig::load(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => recipe(&args)?,
    };
    if let Some(path) = &args.write_config {
        return Ok(config.save(path)?);
    }
    let devices = rar::device::parse_devices(&args.devices)?;
    let set = ShardSet::open(&args.shards).context("opening the shards")?;
    if args.verify {
        set.verify_checksums().context("verifying the shards")?;
    }
    let (records, shards) = (rar::data::Dataset::len(&set), set.num_shards());
    for (path, why) in rar::train::scan_checkpoints(&args.checkpoint_dir)?.ignored {
        eprintln!("ignoring {}: {why}", path.display());
    }
    let open = |c: &TrainingConfig| -> rar::train::Result<Arc<dyn SampleSource>> {
        let stream = StreamConfig::new(c.seed)
            .with_window_units(args.window_shards)
            .with_chunks_per_unit(args.chunks_per_shard);
        Ok(Arc::new(SampleStream::new(set, stream)?))
    };
    let (mut trainer, resumed) = match &args.resume {
        Some(Some(folder)) => (Trainer::resume_from(folder, open, devices)?, true),
        _ => Trainer::open_or_resume(config, args.resume.is_some(), open, devices)?,
    };
    if let Some(path) = &args.tokenizer {
        let (tokenizer, _) = Tokenizer::from_file(path, &trainer.devices()[0])?;
        let preview = TokenizerPreview::for_data(tokenizer, trainer.data().as_ref())?;
        trainer = trainer.with_previews(preview);
    }
    let (step, steps) = (trainer.step(), trainer.config().steps);
    let how = if resumed { "resumed" } else { "new run" };
    println!("{how} at step {step} of {steps}; {records} records in {shards} shards");
    let mut progress = ConsoleProgress::new(step, steps);
    trainer.run(&mut progress)?;
    let path = trainer.save_checkpoint(&args.checkpoint_dir)?;
    println!("done: final checkpoint {}", path.display());
    Ok(())
}
