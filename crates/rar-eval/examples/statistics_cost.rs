//! The cost of the evaluator's statistics at full size: 50,000 samples of 2048 pooled
//! features streamed through [`MomentAccumulator`] in batches, then one Fréchet distance of
//! two 2048-d Gaussians. Prints seconds, samples/s and the process's peak memory.
//!
//! ```text
//! cargo run --release -p rar-eval --example statistics_cost [-- SAMPLES DIM BATCH]
//! ```
//!
//! Features are pseudo-random (the cost does not depend on their values).

use rar_eval::MomentAccumulator;
use std::time::Instant;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(std::env::args()
            .nth(i)
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (samples, dim, batch) = (arg(1, 50_000)?, arg(2, 2048)?, arg(3, 1000)?);
    if samples < 2 || dim == 0 || batch == 0 {
        return Err("SAMPLES must be at least 2, DIM and BATCH positive".into());
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64*: uniform in [0, 1)
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut gaussians = Vec::new();
    for set in 0..2 {
        let mut acc = MomentAccumulator::new(dim);
        let start = Instant::now();
        let mut done = 0;
        let mut rows = vec![0f32; batch * dim];
        while done < samples {
            let n = batch.min(samples - done);
            rows.truncate(n * dim);
            rows.iter_mut().for_each(|x| *x = next() * (1 + set) as f32);
            acc.add(&rows)?;
            done += n;
        }
        let g = acc.finish()?;
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "set {set}: {samples} × {dim} in batches of {batch}: {seconds:.2} s \
             ({:.0} samples/s, generation included)",
            samples as f64 / seconds
        );
        gaussians.push(g);
    }
    let start = Instant::now();
    let fid = gaussians[0].frechet_distance(&gaussians[1])?;
    println!(
        "Fréchet distance of two {dim}-d Gaussians: {:.2} s (value {fid:.4})",
        start.elapsed().as_secs_f64()
    );
    if let Some(peak) = peak_rss_mib() {
        println!("peak resident memory: {peak:.0} MiB");
    }
    Ok(())
}
