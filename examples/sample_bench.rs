//! Sampling throughput: tokens/s and images/s of the KV-cached sampler, next to full
//! recomputation, for a given model size, batch and guidance (issue: rar-sample performance).
//!
//! ```text
//! cargo run --release --example sample_bench -- --hidden 256 --depth 4 --heads 8 --mlp 1024 \
//!     --batch 8 --guidance 4.0 --device flex
//! ```
//!
//! Weights are random (the cost of a step does not depend on their values). Detokenization is
//! not included; the figures are token generation only.

mod common;

use anyhow::Result;
use clap::Parser;
use rar::core::GuidanceSchedule;
use rar::sample::{Sampler, SamplingConfig};

#[derive(Parser, Debug)]
#[command(about = "Measure RAR sampling throughput (KV cache vs full recompute)")]
struct Args {
    /// Model size.
    #[command(flatten)]
    shape: common::shape::ModelShape,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Guidance scale G (0 = off: no unconditional batch).
    #[arg(long, default_value_t = 4.0)]
    guidance: f32,
    /// Guidance power p.
    #[arg(long, default_value_t = 2.75)]
    guidance_pow: f32,
    /// Timed batches with the cache (after one warm-up batch).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Also time one batch with full recomputation (slow).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    recompute: bool,
    /// Device: flex, ndarray, wgpu, cuda:N …
    #[arg(long, default_value = "flex")]
    device: String,
    /// Decode implementation.
    #[command(flatten)]
    decoder: common::decoder::DecoderArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = rar::device::parse_device(&args.device)?;
    let config = args.shape.config();
    let model = config.try_init(&device)?;
    let classes: Vec<usize> = (0..args.batch)
        .map(|i| (i * 97) % args.shape.classes)
        .collect();
    let options = SamplingConfig {
        guidance: GuidanceSchedule::power_cosine(args.guidance, args.guidance_pow)?,
        temperature: 1.0,
        ..SamplingConfig::default()
    };
    let packed = args.decoder.pack(&model, &args.device)?;
    let mut sampler = Sampler::new(common::decoder::decoder(&model, packed.as_ref())?);
    println!(
        "model: {}; batch {}; guidance {}; device {}; decoder {} ({} kernels, {} threads)",
        args.shape,
        args.batch,
        args.guidance,
        args.device,
        args.decoder.describe(&args.device),
        rar::kernels::Isa::active().name(),
        rayon::current_num_threads()
    );
    println!("{}", common::bench::cpu_kernels());
    if let Some(p) = &packed {
        println!(
            "packed weights: {:.1} MB streamed per step",
            p.streamed_bytes() as f64 / 1e6
        );
    }

    let time_batch = |sampler: &mut Sampler, options: &SamplingConfig, seed| {
        common::bench::time_sampling(sampler, &classes, options, seed)
    };
    time_batch(&mut sampler, &options, 0)?; // warm-up
    let mut times = Vec::new();
    for r in 0..args.repeats {
        times.push(time_batch(&mut sampler, &options, r as u64 + 1)?);
    }
    times.sort_by(f64::total_cmp);
    let cached = times[times.len() / 2];
    let generated = (args.batch * args.shape.tokens) as f64;
    println!(
        "kv cache:       {cached:.3} s/batch (median of {}), {:.0} tokens/s, {:.2} images/s",
        args.repeats,
        generated / cached,
        args.batch as f64 / cached
    );
    if args.recompute {
        let full = SamplingConfig {
            use_cache: false,
            ..options.clone()
        };
        let t = time_batch(&mut sampler, &full, 99)?;
        println!(
            "full recompute: {t:.3} s/batch, {:.0} tokens/s, {:.3} images/s; cache speed-up {:.1}x",
            generated / t,
            args.batch as f64 / t,
            t / cached
        );
    }
    Ok(())
}
