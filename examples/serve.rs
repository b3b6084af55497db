//! Serves RAR over HTTP: a web page at `/`, `POST /v1/generate` (PNG grid or JSON),
//! `POST /v1/generate/stream` (server-sent events with the image filling in), `/v1/classes`,
//! `/healthz` and `/metrics`. Concurrent requests are merged into one KV-cached batch.
//!
//! ```text
//! # the quickstart's toy model (quickstart.bpk; trained first if there is none)
//! cargo run --release --example serve
//! # a released checkpoint with the MaskGIT-VQGAN tokenizer
//! cargo run --release --example serve -- --checkpoint rar_b.bin \
//!     --tokenizer maskgit-vqgan-imagenet-f16-256.bin --device cuda:0
//! ```
//!
//! Then open <http://127.0.0.1:8080>, or:
//! `curl -s localhost:8080/v1/generate -H 'content-type: application/json' \
//!  -d '{"class": "ring", "count": 4, "seed": 1}' -o ring.png`

mod common;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Parser;
use rar::data::toy::TOY_CLASSES;
use rar::model::{Rar, RarPreset};
use rar::sample::SamplingConfig;
use rar::serve::{ClassNames, Engine, EngineConfig, Renderer, Server, ServerConfig};
use rar::vq::Tokenizer;

#[derive(Parser, Debug)]
#[command(about = "Serve a RAR model over HTTP with a web page and request batching")]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Device (flex, ndarray, wgpu[:N], cuda[:N]).
    #[arg(long, default_value = "flex")]
    device: String,
    /// Decode implementation.
    #[command(flatten)]
    decoder: common::decoder::DecoderArgs,
    /// The toy model saved by the quickstart (trained and saved here first if missing).
    #[arg(long, default_value = common::toy::DEFAULT_TOY_MODEL)]
    model: PathBuf,
    /// Serve a generator checkpoint instead (.bin from the official release, .safetensors,
    /// .bpk); needs --tokenizer.
    #[arg(long, requires = "tokenizer")]
    checkpoint: Option<PathBuf>,
    /// Model preset of --checkpoint (rar-b … rar-xxl) [default: inferred].
    #[arg(long)]
    preset: Option<String>,
    /// A reference-format config.json for --checkpoint instead of a preset (small custom
    /// models).
    #[arg(long, conflicts_with = "preset", requires = "checkpoint")]
    config: Option<PathBuf>,
    /// MaskGIT-VQGAN tokenizer weights (.bin or .safetensors) for --checkpoint.
    #[arg(long, requires = "checkpoint")]
    tokenizer: Option<PathBuf>,
    /// Most images sampled together in one batch (and per request).
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// Jobs that may wait; more are answered 429.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// Milliseconds an idle engine waits for more requests before it starts a batch.
    #[arg(long, default_value_t = 5.0)]
    gather_ms: f64,
    /// Run one request at a time instead of batching (the baseline of the load benchmark).
    #[arg(long)]
    one_at_a_time: bool,
    /// Tokens between the streamed frames [default: 16 for ImageNet, 8 for the toy model].
    #[arg(long)]
    stream_every: Option<usize>,
    /// Toy model settings when it has to be trained first.
    #[command(flatten)]
    training: common::toy::ToyTraining,
    /// How the toy model samples by default (requests may override every field).
    #[command(flatten)]
    sampling: common::sampling::ToySampling,
}

struct Served {
    model: Rar,
    renderer: Renderer,
    classes: ClassNames,
    defaults: SamplingConfig,
    stream_every: usize,
    what: String,
}

fn released(args: &Args, checkpoint: &PathBuf, device: &Device) -> Result<Served> {
    let config = common::generator::model_config(args.preset.as_deref(), args.config.as_deref())?;
    let loaded = Rar::load_checkpoint(checkpoint, config.as_ref(), device, Default::default())
        .with_context(|| format!("loading {}", checkpoint.display()))?;
    let tokenizer_path = args.tokenizer.as_ref().context("--tokenizer is required")?;
    let (tokenizer, _) = Tokenizer::from_file(tokenizer_path, device)
        .with_context(|| format!("loading {}", tokenizer_path.display()))?;
    if tokenizer.codebook_size() < loaded.config.codebook_size {
        bail!(
            "{} has {} codes but {} predicts {}",
            tokenizer_path.display(),
            tokenizer.codebook_size(),
            checkpoint.display(),
            loaded.config.codebook_size
        );
    }
    // The decoder is convolutional: it decodes any square grid (16 × 16 tokens → 256 × 256
    // pixels for the released tokenizer).
    let n = loaded.config.image_seq_len;
    if n.isqrt() * n.isqrt() != n {
        bail!(
            "{} generates {n} tokens per image, not a square grid the tokenizer can decode",
            checkpoint.display()
        );
    }
    let preset = loaded.preset.unwrap_or(RarPreset::B);
    Ok(Served {
        classes: ClassNames::for_classes(loaded.config.num_classes),
        what: format!(
            "{} ({}, {} parameters) with {}",
            checkpoint.display(),
            loaded.preset.map_or("custom config", |p| p.name()),
            loaded.config.num_params(),
            tokenizer_path.display()
        ),
        model: loaded.model,
        renderer: Renderer::tokenizer(tokenizer),
        defaults: SamplingConfig::preset(preset),
        stream_every: args.stream_every.unwrap_or(16),
    })
}

fn toy(args: &Args, device: &Device) -> Result<Served> {
    let fallback = args.training.config().model;
    let model = if args.model.exists() {
        println!("loading the toy model {}", args.model.display());
        common::toy::load_toy(&args.model, &fallback, device)?
    } else {
        println!(
            "no {} yet: training the toy model first ({} steps, as the quickstart does; \
             about 8–16 min on 2 CPU cores), then saving it so the next start is instant",
            args.model.display(),
            args.training.steps
        );
        common::check_output(&args.model, Some(rar::weights::WeightFormat::Burnpack))?;
        let model = args.training.train(vec![device.clone()])?;
        common::toy::save_toy(&model, &args.model)?;
        println!("saved {}", args.model.display());
        model
    };
    let config = model.config().clone();
    if config.num_classes != TOY_CLASSES
        || config.image_seq_len.isqrt().pow(2) != config.image_seq_len
    {
        bail!(
            "{} is not a toy model ({} classes, {} tokens): serve a checkpoint with --checkpoint",
            args.model.display(),
            config.num_classes,
            config.image_seq_len
        );
    }
    Ok(Served {
        what: format!(
            "the toy model {} ({} parameters)",
            args.model.display(),
            config.num_params()
        ),
        renderer: Renderer::palette(config.image_seq_len, 16),
        classes: ClassNames::toy(),
        defaults: args.sampling.options()?,
        stream_every: args.stream_every.unwrap_or(8),
        model,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = rar::device::parse_device(&args.device)?;
    let served = match &args.checkpoint {
        Some(checkpoint) => released(&args, checkpoint, &device)?,
        None => toy(&args, &device)?,
    };
    let engine = Engine::start(
        served.model,
        EngineConfig {
            max_batch_images: args.max_batch,
            max_jobs_per_batch: if args.one_at_a_time { 1 } else { usize::MAX },
            queue_capacity: args.queue,
            gather_window: std::time::Duration::from_secs_f64(args.gather_ms / 1e3),
            packed_weights: args.decoder.precision(&args.device),
        },
    )?;
    let config = ServerConfig {
        max_images_per_request: args.max_batch,
        stream_every: served.stream_every,
        defaults: served.defaults,
        ..ServerConfig::default()
    };
    let server = Server::new(engine, served.renderer, served.classes, config)?
        .spawn(&args.addr)
        .with_context(|| format!("listening on {}", args.addr))?;
    println!(
        "serving {} on {} ({})",
        served.what,
        args.device,
        args.decoder.describe(&args.device)
    );
    println!("open {} (Ctrl-C stops)", server.url());
    server.wait()?;
    Ok(())
}
