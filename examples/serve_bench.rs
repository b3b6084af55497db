//! Load benchmark of the HTTP server: `--clients` concurrent clients each send
//! `--requests` generation requests (one image each, classifier-free guidance on) to an
//! in-process server on 127.0.0.1, first with request batching, then one request at a time.
//! Prints images/s and the p50/p99 request latency of each, and the batching speed-up.
//!
//! ```text
//! cargo run --release --example serve_bench -- --model toy --clients 16 --requests 4
//! cargo run --release --example serve_bench -- --model bench --clients 16 --requests 2
//! ```
//!
//! `toy` is the quickstart's model shape (C 128, D 3, 8 × 8 tokens, 8 colours); `bench` the
//! benchmark shape of `sample_bench` (C 256, D 4, H 8, I 1024, N 256, V 1024, 1000 classes).
//! Weights are random (a step's cost does not depend on them); images are rendered with the
//! toy palette, so the figures are sampling + PNG encoding + HTTP, without VQ decoding.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};
use rar::core::GuidanceSchedule;
use rar::model::RarConfig;
use rar::sample::SamplingConfig;
use rar::serve::{ClassNames, Engine, EngineConfig, Renderer, Server, ServerConfig};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Shape {
    /// The quickstart's toy model.
    Toy,
    /// C 256, D 4 at 256 tokens.
    Bench,
}

#[derive(Parser, Debug)]
#[command(about = "Load benchmark of rar-serve: batched vs one request at a time")]
struct Args {
    /// Model shape.
    #[arg(long, value_enum, default_value = "toy")]
    model: Shape,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Requests per client (one image each).
    #[arg(long, default_value_t = 4)]
    requests: usize,
    /// Guidance scale (constant; 0 = off).
    #[arg(long, default_value_t = 2.0)]
    guidance: f32,
    /// Most images per batch.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// Milliseconds an idle engine waits for more requests before it starts a batch.
    #[arg(long, default_value_t = 5.0)]
    gather_ms: f64,
    /// Device.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Decode implementation.
    #[command(flatten)]
    decoder: common::decoder::DecoderArgs,
    /// Only this mode (batched or one-at-a-time) instead of both.
    #[arg(long)]
    only: Option<String>,
}

struct Run {
    images_per_s: f64,
    p50: f64,
    p99: f64,
    wall: f64,
    batches: u64,
}

fn config(shape: Shape) -> RarConfig {
    match shape {
        Shape::Toy => common::toy_model(128, 3, 4),
        Shape::Bench => common::shape::ModelShape {
            hidden: 256,
            depth: 4,
            heads: 8,
            mlp: 1024,
            tokens: 256,
            codebook: 1024,
            classes: 1000,
        }
        .config(),
    }
}

fn run(args: &Args, one_at_a_time: bool) -> Result<Run> {
    let device = rar::device::parse_device(&args.device)?;
    device.seed(3);
    let model_config = config(args.model);
    let model = model_config.init(&device);
    let engine = Engine::start(
        model,
        EngineConfig {
            max_batch_images: args.max_batch,
            max_jobs_per_batch: if one_at_a_time { 1 } else { usize::MAX },
            queue_capacity: args.clients * 2,
            gather_window: Duration::from_secs_f64(args.gather_ms / 1e3),
            packed_weights: args.decoder.precision(&args.device),
        },
    )?;
    let defaults = SamplingConfig {
        guidance: if args.guidance == 0.0 {
            GuidanceSchedule::off()
        } else {
            GuidanceSchedule::constant(args.guidance)?
        },
        ..SamplingConfig::default()
    };
    let server = Server::new(
        engine,
        Renderer::palette(model_config.image_seq_len, 4),
        ClassNames::numbered(model_config.num_classes),
        ServerConfig {
            max_images_per_request: args.max_batch,
            defaults,
            ..ServerConfig::default()
        },
    )?
    .spawn("127.0.0.1:0")?;
    let url = format!("{}/v1/generate", server.url());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(3600)))
        .build()
        .into();
    let classes = model_config.num_classes;
    let start = Instant::now();
    let latencies: Vec<Vec<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|c| {
                let (agent, url) = (agent.clone(), url.clone());
                scope.spawn(move || -> Result<Vec<f64>> {
                    (0..args.requests)
                        .map(|r| {
                            let i = c * args.requests + r;
                            let body = format!(r#"{{"class": {}, "seed": {i}}}"#, i % classes);
                            let t = Instant::now();
                            let mut response = agent
                                .post(&url)
                                .header("content-type", "application/json")
                                .send(body)?;
                            let png = response.body_mut().read_to_vec()?;
                            if png.len() < 8 {
                                bail!("request {i}: an empty answer");
                            }
                            Ok(t.elapsed().as_secs_f64())
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect::<Result<Vec<_>>>()
    })?;
    let wall = start.elapsed().as_secs_f64();
    let mut all: Vec<f64> = latencies.concat();
    all.sort_by(f64::total_cmp);
    let quantile = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
    let batches = {
        let mut r = ureq::get(format!("{}/v1/metrics", server.url())).call()?;
        let m: serde_json::Value = serde_json::from_str(&r.body_mut().read_to_string()?)?;
        m["engine"]["batches"].as_u64().unwrap_or(0)
    };
    server.shut_down()?;
    Ok(Run {
        images_per_s: all.len() as f64 / wall,
        p50: quantile(0.5),
        p99: quantile(0.99),
        wall,
        batches,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let modes: Vec<(&str, bool)> = [("batched", false), ("one-at-a-time", true)]
        .into_iter()
        .filter(|(name, _)| args.only.as_deref().is_none_or(|o| o == *name))
        .collect();
    if modes.is_empty() {
        bail!("--only must be batched or one-at-a-time");
    }
    let c = config(args.model);
    println!(
        "model {:?} (C {}, D {}, N {}, V {}), {} clients × {} requests, guidance {}, batch ≤ {}, \
         gather window {} ms, {}",
        args.model,
        c.hidden_size,
        c.num_layers,
        c.image_seq_len,
        c.codebook_size,
        args.clients,
        args.requests,
        args.guidance,
        args.max_batch,
        args.gather_ms,
        args.device
    );
    println!("| mode | images/s | p50 latency | p99 latency | wall | batches |");
    println!("|---|---|---|---|---|---|");
    let mut rates = Vec::new();
    for (name, one) in modes {
        let r = run(&args, one)?;
        println!(
            "| {name} | {:.2} | {:.2} s | {:.2} s | {:.1} s | {} |",
            r.images_per_s, r.p50, r.p99, r.wall, r.batches
        );
        rates.push(r.images_per_s);
    }
    if let [batched, single] = rates[..] {
        println!("batching speed-up: {:.2}× images/s", batched / single);
    }
    Ok(())
}
