//! Pretokenizes an ImageNet-layout folder into token shards with the MaskGIT-VQGAN tokenizer,
//! as the official `scripts/pretokenization.py` does.
//!
//! ```text
//! cargo run --release --example pretokenize_imagenet -- \
//!     --input /data/imagenet/train --output /data/imagenet-tokens \
//!     --weights maskgit-vqgan-imagenet-f16-256.bin --crops ten-crop --batch-size 8 --device flex
//! ```
//!
//! `--input` is the directory holding one folder per class (`<wnid>/*.JPEG`); labels are the
//! sorted folder order (0…999 for ImageNet). Rerunning the same command resumes an interrupted
//! run; unreadable images are skipped and listed in `<output>/skipped.txt`. The output is
//! read back with `rar::data::ShardSet::open(output)` (training: `train_imagenet`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use rar::data::{CropMode, PretokenizeConfig, pretokenize};
use rar::vq::Tokenizer;

/// Which crops of each image to tokenize.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Crops {
    /// ADM centre crop to 281, then ten 256-crops (corners, centre, and their mirror
    /// images): the setting of the released RAR models; 10 records per image.
    TenCrop,
    /// ADM centre crop to 256 and its horizontal flip (the paper's ablations); 2 records.
    CenterFlip,
}

#[derive(Debug, Parser)]
#[command(about = "Pretokenize an ImageNet-layout folder into RAR token shards")]
struct Args {
    /// Directory of class folders (ImageNet's `train/`).
    #[arg(long)]
    input: PathBuf,
    /// Output directory for the shards, `index.json` and `skipped.txt` (resumed if present).
    #[arg(long)]
    output: PathBuf,
    /// Tokenizer weights: `maskgit-vqgan-imagenet-f16-256.bin` or a `.safetensors` copy.
    #[arg(long)]
    weights: PathBuf,
    /// Crops per image.
    #[arg(long, value_enum, default_value = "ten-crop")]
    crops: Crops,
    /// Images per encoder call (each yields 10 or 2 crops).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Crop side fed to the tokenizer.
    #[arg(long, default_value_t = 256)]
    image_size: u32,
    /// Images per shard (the unit of resumption).
    #[arg(long, default_value_t = 2048)]
    images_per_shard: usize,
    /// Only the first N images (for a trial run).
    #[arg(long)]
    limit: Option<usize>,
    /// Device: flex, ndarray, wgpu[:N], cuda[:N].
    #[arg(long, default_value = "flex")]
    device: String,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = rar::device::parse_device(&args.device)?;
    let (tokenizer, config) = Tokenizer::from_file(&args.weights, &device)
        .with_context(|| format!("loading the tokenizer from {}", args.weights.display()))?;
    eprintln!(
        "tokenizer: {} codes, {} levels, base width {}",
        config.codebook_size,
        config.num_levels(),
        config.base_channels
    );
    let mut options = PretokenizeConfig::new(&args.input, &args.output);
    options.crop_mode = match args.crops {
        Crops::TenCrop => CropMode::TenCrop,
        Crops::CenterFlip => CropMode::CenterFlip,
    };
    options.batch_size = args.batch_size;
    options.image_size = args.image_size;
    options.images_per_shard = args.images_per_shard;
    options.limit = args.limit;
    options.progress = !args.no_progress;

    let start = std::time::Instant::now();
    let summary = pretokenize(&tokenizer, &options).context("pretokenization failed")?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} images: {} encoded now ({:.2} images/s), {} records in {} new shard(s), {} shard(s) \
         kept from an earlier run, {} skipped (listed in {})",
        summary.images_total,
        summary.images_encoded,
        summary.images_encoded as f64 / secs.max(1e-9),
        summary.records_written,
        summary.shards_written,
        summary.shards_reused,
        summary.skipped.len(),
        args.output.join(rar::data::shard::SKIPPED_FILE).display()
    );
    for s in summary.skipped.iter().take(10) {
        eprintln!("  skipped {}: {}", s.path.display(), s.error);
    }
    Ok(())
}
