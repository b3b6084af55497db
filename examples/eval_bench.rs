//! What the evaluation costs on this machine: InceptionV3 feature extraction in images/s
//! (random weights; the cost does not depend on them), the image reader's throughput and
//! memory while a large `.npz` streams through it, and precision/recall at a given size.
//!
//! ```text
//! cargo run --release --example eval_bench -- --device flex --images 64 --batch 16
//! cargo run --release --example eval_bench -- --stream /tmp/stream.npz --images 10000
//! cargo run --release --example eval_bench -- --precision-recall 10000,10000
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Parser;
use rar::eval::{
    ImageStream, InceptionExtractor, InceptionV3Config, ManifoldEstimator, NpyArray, POOL_FEATURES,
    write_npz,
};

#[derive(Parser, Debug)]
#[command(about = "Throughput of rar-eval's feature extraction, image reader and precision/recall")]
struct Args {
    /// Device for the network: flex, ndarray, wgpu, cuda:N …
    #[arg(long, default_value = "flex")]
    device: String,
    /// Images to extract (or to stream with --stream).
    #[arg(long, default_value_t = 64)]
    images: usize,
    /// Images per network batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Image side (the samples' resolution; the network resizes to 299).
    #[arg(long, default_value_t = 256)]
    side: usize,
    /// Only stream this `.npz` (written first with --images synthetic images if absent)
    /// through the reader and report MB/s and peak memory.
    #[arg(long)]
    stream: Option<PathBuf>,
    /// Only time precision/recall on random features: REFERENCE,SAMPLES rows.
    #[arg(long, value_delimiter = ',')]
    precision_recall: Option<Vec<usize>>,
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn pixels(count: usize, side: usize, seed: usize) -> Vec<u8> {
    (0..count * side * side * 3)
        .map(|i| (((i + seed) * 2_654_435_761usize) >> 9) as u8)
        .collect()
}

fn stream(path: &PathBuf, images: usize, side: usize, batch: usize) -> Result<()> {
    if !path.exists() {
        let data = pixels(images, side, 0);
        write_npz(
            path,
            &[("arr_0", NpyArray::U8(&data, &[images, side, side, 3]))],
        )?;
        println!("wrote {} ({images} images of {side}²)", path.display());
    }
    let before = peak_rss_mib();
    let start = Instant::now();
    let (mut count, mut checksum) = (0usize, 0u64);
    for b in ImageStream::open(path, batch)? {
        let b = b?;
        count += b.count;
        checksum = checksum.wrapping_add(b.pixels.iter().map(|&p| p as u64).sum::<u64>());
    }
    let seconds = start.elapsed().as_secs_f64();
    let mb = (count * side * side * 3) as f64 / 1e6;
    println!(
        "streamed {count} images ({mb:.0} MB) in {seconds:.2} s: {:.0} MB/s, {:.0} images/s; \
         peak RSS {before:.0} MiB before, {:.0} MiB after (checksum {checksum})",
        mb / seconds,
        count as f64 / seconds,
        peak_rss_mib()
    );
    Ok(())
}

fn precision_recall(sizes: &[usize]) -> Result<()> {
    let [reference, samples] = sizes[..] else {
        bail!("--precision-recall takes REFERENCE,SAMPLES");
    };
    let features = |n: usize, shift: f32| -> Vec<f32> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ n as u64;
        (0..n * POOL_FEATURES)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let u =
                    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32;
                u * 0.6 + shift
            })
            .collect()
    };
    let (r, s) = (features(reference, 0.0), features(samples, 0.05));
    let start = Instant::now();
    let pr = ManifoldEstimator::default().precision_recall(&r, &s, POOL_FEATURES)?;
    let seconds = start.elapsed().as_secs_f64();
    let distances = (reference * reference + samples * samples + reference * samples) as f64;
    println!(
        "precision/recall, {reference} reference × {samples} samples × {POOL_FEATURES}: {seconds:.1} s \
         ({:.1} M distances/s, {:.0} GFLOP/s in the products); precision {:.4}, recall {:.4}; \
         peak RSS {:.0} MiB",
        distances / seconds / 1e6,
        2.0 * distances * POOL_FEATURES as f64 / seconds / 1e9,
        pr.precision,
        pr.recall,
        peak_rss_mib()
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.images == 0 || args.batch == 0 || args.side == 0 {
        bail!("--images, --batch and --side must be positive");
    }
    if let Some(path) = &args.stream {
        return stream(path, args.images, args.side, args.batch);
    }
    if let Some(sizes) = &args.precision_recall {
        return precision_recall(sizes);
    }
    let device = rar::device::parse_device(&args.device)?;
    let extractor = InceptionExtractor::new(InceptionV3Config::new().init(&device), &device);
    let batch = pixels(args.batch, args.side, 1);
    // One batch to warm up (allocation, autotuning).
    extractor.extract(&batch, args.batch, args.side, args.side)?;
    let start = Instant::now();
    let mut done = 0;
    while done < args.images {
        let n = args.batch.min(args.images - done);
        extractor.extract(
            &batch[..n * args.side * args.side * 3],
            n,
            args.side,
            args.side,
        )?;
        done += n;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "InceptionV3 on {}: {done} images of {}² in batches of {} in {seconds:.2} s: {:.2} images/s \
         (≈{:.0} GFLOP/s at 11.4 GFLOP = 5.71 G multiply-adds per image); peak RSS {:.0} MiB",
        args.device,
        args.side,
        args.batch,
        done as f64 / seconds,
        done as f64 * 11.42 / seconds,
        peak_rss_mib()
    );
    Ok(())
}
