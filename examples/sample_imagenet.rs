//! Class-conditional sampling from a RAR checkpoint: a PNG grid, single PNGs, or the 50k
//! `.npz` evaluation set for the ADM evaluator.
//!
//! ```text
//! # a grid of 8 samples with the checkpoint's recommended settings (preset inferred)
//! cargo run --release --example sample_imagenet -- --checkpoint rar_b.bin \
//!     --tokenizer maskgit-vqgan-imagenet-f16-256.bin --grid samples.png --device cuda:0
//!
//! # the official RAR-B evaluation set (50 per class × 1000 classes), resumable
//! cargo run --release --example sample_imagenet -- --checkpoint rar_b.bin \
//!     --tokenizer maskgit-vqgan-imagenet-f16-256.bin --npz rar_b.npz --device cuda:0
//! ```
//!
//! Guidance, power and temperature default to the preset's recommended values
//! (`SamplingConfig::preset`).

mod common;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rar::model::RarPreset;
use rar::sample::{EvalSet, Sampler, write_eval_npz, write_png_grid};
use rar::vq::Tokenizer;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(about = "Sample images from a RAR checkpoint")]
struct Args {
    /// The generator.
    #[command(flatten)]
    generator: common::generator::GeneratorFlags,
    /// MaskGIT-VQGAN tokenizer weights (.bin or .safetensors).
    #[arg(long)]
    tokenizer: PathBuf,
    /// Comma-separated class ids for the grid / single PNGs.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,7,282,604,724,179,751,404"
    )]
    classes: Vec<usize>,
    /// How to sample (the preset's settings unless given).
    #[command(flatten)]
    sampling: common::sampling::PresetSampling,
    /// Seed (same seed, same backend → same images).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the samples as a PNG grid here.
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Also write every sample as its own PNG into this directory (`{index:03}_class{c}.png`).
    #[arg(long)]
    png_dir: Option<PathBuf>,
    /// Grid columns [default: up to 8 per row].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    cols: Option<u32>,
    /// Write the evaluation set (per-class × all classes) as an ADM `.npz` here (resumable).
    #[arg(long)]
    npz: Option<PathBuf>,
    /// Images per class in the evaluation set.
    #[arg(long, default_value_t = 50)]
    per_class: usize,
    /// Images per batch in `--npz` mode.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Device: flex, ndarray, wgpu, cuda:N …
    #[arg(long, default_value = "flex")]
    device: String,
    /// Decode implementation.
    #[command(flatten)]
    decoder: common::decoder::DecoderArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.grid.is_none() && args.png_dir.is_none() && args.npz.is_none() {
        bail!("nothing to do: give --grid, --png-dir and/or --npz");
    }
    // Outputs and the evaluation set are checked before any weight is loaded.
    for out in args.grid.iter().chain(&args.npz) {
        common::check_output(out, None)?;
    }
    args.png_dir
        .iter()
        .try_for_each(|d| rar::data::check_writable_dir(d))?;
    let device = rar::device::parse_device(&args.device)?;
    let loaded = args.generator.load(&device)?;
    let preset = loaded.preset.unwrap_or(RarPreset::B);
    let options = args.sampling.config(preset)?;
    options.validate()?;
    println!(
        "generator: {} ({}, {:.1} M parameters); {options:?}",
        args.generator.checkpoint.display(),
        loaded.preset.map_or("custom config", |p| p.name()),
        loaded.config.num_params() as f64 / 1e6
    );
    let (tokenizer, _) = Tokenizer::from_file(&args.tokenizer, &device)
        .with_context(|| format!("loading {}", args.tokenizer.display()))?;
    let packed = args.decoder.pack(&loaded.model, &args.device)?;
    let mut sampler = Sampler::new(common::decoder::decoder(&loaded.model, packed.as_ref())?);
    println!("decoding with {}", args.decoder.describe(&args.device));

    if args.grid.is_some() || args.png_dir.is_some() {
        let tokens = sampler.sample(&args.classes, &options, Some(args.seed))?;
        let images = tokenizer.decode_to_images(tokens)?;
        if let Some(grid) = &args.grid {
            let cols = args.cols.map_or(images.len().min(8), |c| c as usize);
            write_png_grid(&images, images.len().div_ceil(cols), cols, grid)?;
            println!("wrote {}", grid.display());
        }
        if let Some(dir) = &args.png_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (i, (image, class)) in images.iter().zip(&args.classes).enumerate() {
                let path = dir.join(format!("{i:03}_class{class}.png"));
                write_png_grid(std::slice::from_ref(image), 1, 1, &path)?;
            }
            println!("wrote {} PNGs to {}", images.len(), dir.display());
        }
    }

    if let Some(npz) = &args.npz {
        let set = EvalSet {
            per_class: args.per_class,
            num_classes: loaded.config.num_classes,
            batch_size: args.batch_size,
            seed: args.seed,
        };
        set.validate()?;
        let bar = ProgressBar::new(set.len() as u64);
        bar.set_style(ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images, {per_sec}, eta {eta}",
        )?);
        let origin = format!(
            "{} + {}",
            args.generator.checkpoint.display(),
            args.tokenizer.display()
        );
        let path = write_eval_npz(
            &mut sampler,
            &tokenizer,
            &options,
            &set,
            npz,
            &origin,
            |d, _| bar.set_position(d as u64),
        )?;
        bar.finish();
        println!("wrote {} ({} images)", path.display(), set.len());
    }
    Ok(())
}
