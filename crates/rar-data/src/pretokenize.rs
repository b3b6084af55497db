//! ImageNet pretokenization into token shards, resumable, with any image encoder.
//!
//! An [`ImageFolder`] is cut into shards of `images_per_shard` consecutive images; each image
//! gives its crops ([`CropMode`]), which a [`CropEncoder`] (rar-vq's MaskGIT-VQGAN tokenizer)
//! turns into token ids, written as one record per crop. Shards cover fixed image ranges and
//! the index is rewritten after each one, so a run interrupted at any point resumes by redoing
//! only the shards not yet recorded: no image is lost or written twice. An unreadable image is
//! skipped, counted and listed (in the index and `skipped.txt`), never fatal. Images are
//! decoded and cropped on rayon's pool while the previous batch is encoded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::atomic::write_atomic;
use crate::crop::{CropMode, decode_rgb};
use crate::error::{DataError, Result};
use crate::image_folder::ImageFolder;
use crate::shard::format::Shard;
use crate::shard::index::{
    INDEX_FILE, INDEX_VERSION, SKIPPED_FILE, ShardEntry, ShardIndex, SkippedImage, shard_file_name,
};

/// What turns square RGB crops into token ids: an image tokenizer's encoder.
pub trait CropEncoder {
    /// Codebook size `V` (ids are in `0..V`; at most 65 536 for shards).
    fn codebook_size(&self) -> usize;

    /// Pixels per token side: a crop of side `S` gives `(S / f)²` tokens.
    fn downsample_factor(&self) -> usize;

    /// Encodes equally sized crops to `crops.len() × (S/f)²` ids, crop after crop, each in
    /// raster order.
    fn encode_crops(
        &self,
        crops: &[RgbImage],
    ) -> std::result::Result<Vec<i64>, Box<dyn std::error::Error + Send + Sync>>;
}

/// Settings of a pretokenization run.
#[derive(Debug, Clone)]
pub struct PretokenizeConfig {
    /// Directory of class folders (ImageNet's `train/`).
    pub input_dir: PathBuf,
    /// Output directory (created if missing; resumed if it holds an index).
    pub output_dir: PathBuf,
    /// Which crops to tokenize.
    pub crop_mode: CropMode,
    /// Crop side fed to the encoder (256).
    pub image_size: u32,
    /// Images per encoder call (records per call = images × crops).
    pub batch_size: usize,
    /// Images per shard (the unit of resumption).
    pub images_per_shard: usize,
    /// Show an indicatif progress bar on stderr.
    pub progress: bool,
    /// Process only the first `n` images (for trials); `None` for all.
    pub limit: Option<usize>,
}

impl PretokenizeConfig {
    /// Defaults for ImageNet: ten-crop at 256, 8 images per call, 2048 images per shard.
    pub fn new(input_dir: impl Into<PathBuf>, output_dir: impl Into<PathBuf>) -> Self {
        Self {
            input_dir: input_dir.into(),
            output_dir: output_dir.into(),
            crop_mode: CropMode::TenCrop,
            image_size: 256,
            batch_size: 8,
            images_per_shard: 2048,
            progress: true,
            limit: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretokenizeSummary {
    /// Images in the enumeration.
    pub images_total: usize,
    /// Images tokenized in this run.
    pub images_encoded: usize,
    /// Records written in this run.
    pub records_written: u64,
    /// Shards written in this run.
    pub shards_written: usize,
    /// Shards found finished from an earlier run and kept.
    pub shards_reused: usize,
    /// Every skipped image (of this and earlier runs).
    pub skipped: Vec<SkippedImage>,
}

/// Crops of one decoded image, or why it was skipped.
type Decoded = std::result::Result<Vec<RgbImage>, String>;

/// The records of one shard's image range.
#[derive(Default)]
struct ShardRecords {
    labels: Vec<u16>,
    tokens: Vec<u16>,
    skipped: Vec<SkippedImage>,
    images_encoded: usize,
}

/// Runs (or resumes) the pretokenization `config` describes with `encoder`.
pub fn pretokenize(
    encoder: &impl CropEncoder,
    config: &PretokenizeConfig,
) -> Result<PretokenizeSummary> {
    let grid = check_config(encoder, config)?;
    let mut folder = ImageFolder::scan(&config.input_dir)?;
    if let Some(limit) = config.limit {
        folder.images.truncate(limit);
    }
    if folder.images.is_empty() {
        return Err(DataError::input(
            "input",
            format!(
                "no image to tokenize in {} ({} class folders{})",
                config.input_dir.display(),
                folder.classes.len(),
                match config.limit {
                    Some(0) => ", --limit 0",
                    _ => ", all without image files",
                }
            ),
        ));
    }
    let out = &config.output_dir;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let (mut index, mut done) = open_index(out, &fresh_index(encoder, config, &folder, grid))?;
    let shards_reused = done.len();

    let todo: Vec<usize> = (0..index.num_shards())
        .filter(|k| !done.contains_key(k))
        .collect();
    let images = |k: usize| shard_range(k, config.images_per_shard, folder.images.len());
    let bar = progress_bar(config.progress, todo.iter().map(|&k| images(k).len()).sum());
    let mut summary = PretokenizeSummary {
        images_total: folder.images.len(),
        images_encoded: 0,
        records_written: 0,
        shards_written: 0,
        shards_reused,
        skipped: Vec::new(),
    };
    for &k in &todo {
        let range = images(k);
        let records = encode_images(encoder, config, &folder, range.clone(), &bar)?;
        let shard = Shard::new(
            index.tokens_per_record,
            index.codebook_size,
            index.crops_per_image,
            records.labels,
            records.tokens,
        )?;
        let file = shard_file_name(k);
        shard.write(out.join(&file))?;
        summary.images_encoded += records.images_encoded;
        summary.records_written += shard.header.count;
        summary.shards_written += 1;
        if let Some(first) = records.skipped.first() {
            bar.println(format!(
                "shard {k}: skipped {} unreadable image(s), e.g. {}: {}",
                records.skipped.len(),
                first.path.display(),
                first.error
            ));
        }
        done.insert(
            k,
            ShardEntry {
                file,
                first_image: range.start,
                num_images: range.len(),
                num_records: shard.header.count,
                skipped: records.skipped,
            },
        );
        index.shards = done.values().cloned().collect();
        index.write(out)?;
    }
    bar.finish_and_clear();

    summary.skipped = index.skipped().cloned().collect();
    let listing: String = summary
        .skipped
        .iter()
        .map(|s| format!("{}\t{}\n", s.path.display(), s.error.replace('\n', " ")))
        .collect();
    write_atomic(&out.join(SKIPPED_FILE), listing.as_bytes())?;
    Ok(summary)
}

/// Checks the settings against the encoder; returns the token grid side.
fn check_config(encoder: &impl CropEncoder, config: &PretokenizeConfig) -> Result<usize> {
    if config.batch_size == 0 || config.images_per_shard == 0 {
        return Err(DataError::input(
            "pretokenize config",
            "batch_size and images_per_shard must be at least 1",
        ));
    }
    let f = encoder.downsample_factor() as u32;
    if f == 0 || config.image_size == 0 || !config.image_size.is_multiple_of(f) {
        return Err(DataError::input(
            "image_size",
            format!("{} is not a positive multiple of {f}", config.image_size),
        ));
    }
    let codebook = encoder.codebook_size();
    if codebook == 0 || codebook > 1 << 16 {
        return Err(DataError::input(
            "encoder",
            format!("a codebook of {codebook} does not fit 16-bit tokens"),
        ));
    }
    Ok((config.image_size / f) as usize)
}

/// The index a new run with these settings starts from.
fn fresh_index(
    encoder: &impl CropEncoder,
    config: &PretokenizeConfig,
    folder: &ImageFolder,
    grid: usize,
) -> ShardIndex {
    ShardIndex {
        version: INDEX_VERSION,
        tokens_per_record: (grid * grid) as u32,
        codebook_size: encoder.codebook_size() as u32,
        crop_mode: config.crop_mode.name().to_string(),
        crops_per_image: config.crop_mode.crops_per_image() as u32,
        image_size: config.image_size,
        classes: folder.classes.clone(),
        num_images: folder.images.len(),
        images_fingerprint: folder.fingerprint(),
        images_per_shard: config.images_per_shard,
        shards: Vec::new(),
    }
}

/// The run's index — the one in `out` if it describes the same run (else an error listing
/// what differs), `fresh` otherwise — and its shards that are still intact on disk (read and
/// checked in full), by shard number.
fn open_index(out: &Path, fresh: &ShardIndex) -> Result<(ShardIndex, BTreeMap<usize, ShardEntry>)> {
    let index_path = out.join(INDEX_FILE);
    let mut index = if index_path.exists() {
        let old = ShardIndex::read(out)?;
        let diffs = old.differences(fresh);
        if !diffs.is_empty() {
            return Err(DataError::ResumeMismatch {
                path: index_path,
                message: format!(
                    "the output directory holds a different run ({}); use a new output directory",
                    diffs.join("; ")
                ),
            });
        }
        old
    } else {
        fresh.clone()
    };
    // A shard is kept only when its whole content checks out (header, length, checksum,
    // token range), so a damaged one is redone rather than trusted.
    let mut done = BTreeMap::new();
    for entry in std::mem::take(&mut index.shards) {
        let k = entry.first_image / fresh.images_per_shard;
        let intact = Shard::read(out.join(&entry.file))
            .map(|s| s.header.count == entry.num_records)
            .unwrap_or(false);
        if intact {
            done.insert(k, entry);
        }
    }
    index.shards = done.values().cloned().collect();
    Ok((index, done))
}

fn progress_bar(show: bool, images: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(images as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} images {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Decodes, crops and encodes the images `range` of `folder`: batches are decoded on rayon's
/// pool by a helper thread while this thread encodes the previous one.
fn encode_images(
    encoder: &impl CropEncoder,
    config: &PretokenizeConfig,
    folder: &ImageFolder,
    range: std::ops::Range<usize>,
    bar: &ProgressBar,
) -> Result<ShardRecords> {
    let images = &folder.images[range];
    let mut records = ShardRecords::default();
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Vec<Decoded>>(1);
        scope.spawn(move || {
            for batch in images.chunks(config.batch_size) {
                let decoded: Vec<Decoded> = batch
                    .par_iter()
                    .map(|(rel, _)| crops_of(&folder.root.join(rel), config))
                    .collect();
                if tx.send(decoded).is_err() {
                    return; // the encoder stopped (an error); nothing more to do
                }
            }
        });
        for batch in images.chunks(config.batch_size) {
            let decoded = rx.recv().map_err(|_| {
                DataError::input("pretokenize", "the image decoding thread stopped early")
            })?;
            encode_batch(encoder, config, batch, decoded, &mut records)?;
            bar.inc(batch.len() as u64);
        }
        Ok(())
    })?;
    Ok(records)
}

/// The crops of the image file `path`, or why it cannot be used.
fn crops_of(path: &Path, config: &PretokenizeConfig) -> Decoded {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let img = decode_rgb(&bytes, path).map_err(|e| e.to_string())?;
    config
        .crop_mode
        .crops(&img, config.image_size)
        .map_err(|e| e.to_string())
}

/// Encodes the decoded crops of one batch of images, appending them to `records` (skipped
/// images are listed there instead).
fn encode_batch(
    encoder: &impl CropEncoder,
    config: &PretokenizeConfig,
    batch: &[(PathBuf, u16)],
    decoded: Vec<Decoded>,
    records: &mut ShardRecords,
) -> Result<()> {
    let mut crops = Vec::new();
    let mut labels = Vec::new();
    for ((rel, label), result) in batch.iter().zip(decoded) {
        match result {
            Ok(image_crops) => {
                labels.extend(std::iter::repeat_n(*label, image_crops.len()));
                crops.extend(image_crops);
            }
            Err(error) => records.skipped.push(SkippedImage {
                path: rel.clone(),
                error,
            }),
        }
    }
    if crops.is_empty() {
        return Ok(());
    }
    let ids = encoder.encode_crops(&crops).map_err(DataError::Encoder)?;
    let codebook = encoder.codebook_size();
    let expected = crops.len() * (config.image_size as usize / encoder.downsample_factor()).pow(2);
    if ids.len() != expected {
        return Err(DataError::Encoder(
            format!(
                "{} ids for {} crops, expected {expected}",
                ids.len(),
                crops.len()
            )
            .into(),
        ));
    }
    for id in ids {
        let t = u16::try_from(id)
            .ok()
            .filter(|&t| usize::from(t) < codebook)
            .ok_or_else(|| {
                DataError::Encoder(
                    format!("token id {id} is outside the codebook [0, {codebook})").into(),
                )
            })?;
        records.tokens.push(t);
    }
    records.images_encoded += crops.len() / config.crop_mode.crops_per_image();
    records.labels.extend(labels);
    Ok(())
}

fn shard_range(k: usize, per_shard: usize, total: usize) -> std::ops::Range<usize> {
    let start = (k * per_shard).min(total);
    start..((k + 1) * per_shard).min(total)
}
