//! Pieces shared by the example binaries: flag groups and small helpers. Each example
//! compiles this module on its own and uses a part of it.
#![allow(dead_code)]

pub mod bench;
pub mod checks;
pub mod decoder;
pub mod draw;
pub mod generator;
pub mod sampling;
pub mod shape;
pub mod toy;

use rar::data::toy::{TOY_CLASSES, TOY_CODEBOOK, TOY_TOKENS};
use std::path::Path;

use rar::model::RarConfig;
use rar::weights::WeightFormat;

/// A RAR of the given size for the embedded toy dataset (MLP 4× wide, no dropout, class-label
/// dropout 0.1).
pub fn toy_model(hidden: usize, depth: usize, heads: usize) -> RarConfig {
    RarConfig::new(hidden, depth, heads, 4 * hidden)
        .with_image_seq_len(TOY_TOKENS)
        .with_codebook_size(TOY_CODEBOOK)
        .with_num_classes(TOY_CLASSES)
        .with_dropout(0.0)
        .with_attn_drop(0.0)
        .with_class_label_dropout(0.1)
}

/// CPU time of the whole process (all threads, user + system) in seconds, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Less sensitive than wall time to other
/// processes competing for the cores, as long as this one does not use more threads than
/// cores.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15
    // (1-based), in clock ticks of USER_HZ = 100 on Linux.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Sets the size of rayon's global pool (burn-flex's compute threads) before first use;
/// 0 keeps rayon's default (all cores).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        // SAFETY: called at the start of `main`, before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
}

/// Best, median and mean of measured times (sorted in place; at least one).
pub fn best_median_mean(times: &mut [f64]) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    (times[0], times[times.len() / 2], mean)
}

/// Checks before any work that `path` can be written, and that its extension names `format`
/// when one is required.
pub fn check_output(path: &Path, format: Option<WeightFormat>) -> anyhow::Result<()> {
    rar::data::check_writable_file(path)?;
    if let Some(format) = format {
        anyhow::ensure!(
            WeightFormat::from_path(path) == Some(format),
            "{} must end in {}",
            path.display(),
            format.extensions()
        );
    }
    Ok(())
}
