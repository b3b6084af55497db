//! Encode and decode throughput (images/s) of the official tokenizer preset on CPU.
//!
//! ```text
//! cargo bench -p rar-vq --bench throughput                       # flex
//! cargo bench -p rar-vq --bench throughput --features ndarray    # flex and ndarray
//! ```
//!
//! Environment: `RAR_VQ_BENCH_BATCH` (default 8), `RAR_VQ_BENCH_ITERS` (timed iterations,
//! default 3), `RAR_VQ_WEIGHTS` (load real weights instead of random ones; the speed is the
//! same). Run without `--bench` (as `cargo test --benches` does), it only smoke-tests a tiny
//! configuration.

use std::time::Instant;

use burn::prelude::*;
use rar_vq::{Tokenizer, TokenizerConfig};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (config, batch, iters) = if full {
        (
            TokenizerConfig::official(),
            env_usize("RAR_VQ_BENCH_BATCH", 8),
            env_usize("RAR_VQ_BENCH_ITERS", 3).max(1),
        )
    } else {
        let tiny = TokenizerConfig::new()
            .with_base_channels(8)
            .with_channel_multipliers(vec![1, 2])
            .with_num_res_blocks(1)
            .with_z_channels(4)
            .with_codebook_size(16)
            .with_norm_groups(4)
            .with_resolution(16);
        (tiny, 2, 1)
    };
    let side = config.resolution;
    let n_tokens = config.num_tokens();
    println!(
        "rar-vq throughput: preset {}×{} px, {} tokens, batch {batch}, {iters} timed iteration(s), {} threads",
        side,
        side,
        n_tokens,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (name, device) in rar_testkit::cpu_devices() {
        let tokenizer = match std::env::var("RAR_VQ_WEIGHTS") {
            Ok(path) if full => {
                Tokenizer::from_file(&path, &device)
                    .expect("weights load")
                    .0
            }
            _ => config.init(&device).expect("valid config"),
        };
        let images = Tensor::<4>::random(
            [batch, 3, side, side],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let ids = Tensor::<2, Int>::random(
            [batch, n_tokens],
            burn::tensor::Distribution::Uniform(0.0, config.codebook_size as f64),
            &device,
        );
        // Warm-up (allocations, lazy parameter init), then timed runs; reading the result back
        // makes each run synchronous.
        let encode = || {
            tokenizer
                .encode(images.clone())
                .unwrap()
                .into_data()
                .try_into_vec_as::<i64>()
                .unwrap()
        };
        let decode = || {
            tokenizer
                .decode(ids.clone())
                .unwrap()
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap()
        };
        encode();
        let t = Instant::now();
        for _ in 0..iters {
            encode();
        }
        let enc = (batch * iters) as f64 / t.elapsed().as_secs_f64();
        decode();
        let t = Instant::now();
        for _ in 0..iters {
            decode();
        }
        let dec = (batch * iters) as f64 / t.elapsed().as_secs_f64();
        println!("{name:8} encode {enc:8.3} images/s   decode {dec:8.3} images/s");
    }
}
