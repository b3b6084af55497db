//! ImageNet pretokenization into token shards (spec §8.1), resumable, and the dataset reader
//! training uses.
//!
//! Layout of an output directory:
//!
//! * `shard-00000.rartok`, `shard-00001.rartok`, …: the records of consecutive ranges of
//!   `images_per_shard` images (format in [`crate::shard`]);
//! * `index.json`: the run's settings, the class list (`wnid`s in label order), a fingerprint
//!   of the image list, and per finished shard its file, image range, record count and the
//!   images that were skipped as unreadable (written atomically after every shard);
//! * `skipped.txt`: every skipped image with the reason, one per line (refreshed at the end).
//!
//! Images are enumerated like torchvision's `ImageFolder`: class folders in sorted order give
//! labels 0, 1, … (for ImageNet's `train/` the usual 0…999), files sorted by path within
//! each class, only image extensions. Shards cover fixed image ranges, so a run interrupted
//! at any point resumes by redoing only the shards not yet recorded in the index: no image is
//! lost or written twice. An unreadable image is skipped, counted and listed, never fatal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use burn::prelude::*;
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::convert::push_chw;
use crate::error::{Result, VqError};
use crate::preprocess::{CropMode, decode_rgb};
use crate::shard::{Shard, ShardHeader, write_atomic};
use crate::tokenizer::Tokenizer;

/// Extensions torchvision's `ImageFolder` accepts (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// Name of the index file in an output directory.
pub const INDEX_FILE: &str = "index.json";
/// Name of the list of skipped images.
pub const SKIPPED_FILE: &str = "skipped.txt";
/// Version of the index format.
pub const INDEX_VERSION: u32 = 1;

/// The images of an `ImageFolder` tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolder {
    /// The root (the directory holding one folder per class).
    pub root: PathBuf,
    /// Class folder names in label order.
    pub classes: Vec<String>,
    /// Every image as (path relative to `root`, label), in processing order.
    pub images: Vec<(PathBuf, u16)>,
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| VqError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| VqError::io(dir, err)))
        .collect::<Result<Vec<_>>>()?;
    entries.sort();
    for path in entries {
        // `metadata` follows symlinks, as ImageFolder's walk does.
        let meta = std::fs::metadata(&path).map_err(|e| VqError::io(&path, e))?;
        if meta.is_dir() {
            collect_files(&path, out)?;
        } else if has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageFolder {
    /// Enumerates `root/<class>/**/<image>` (sorted classes, sorted files).
    pub fn scan(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let mut classes = Vec::new();
        for entry in std::fs::read_dir(&root).map_err(|e| VqError::io(&root, e))? {
            let path = entry.map_err(|e| VqError::io(&root, e))?.path();
            if std::fs::metadata(&path)
                .map_err(|e| VqError::io(&path, e))?
                .is_dir()
            {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| {
                        VqError::input(
                            "input",
                            format!("class folder {} is not valid UTF-8", path.display()),
                        )
                    })?
                    .to_string();
                classes.push(name);
            }
        }
        classes.sort();
        if classes.is_empty() {
            return Err(VqError::input(
                "input",
                format!(
                    "{} has no class folders (expected the ImageNet layout <dir>/<wnid>/*.JPEG)",
                    root.display()
                ),
            ));
        }
        if classes.len() > usize::from(u16::MAX) + 1 {
            return Err(VqError::input(
                "input",
                format!("{} classes do not fit 16-bit labels", classes.len()),
            ));
        }
        let mut images = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let mut files = Vec::new();
            collect_files(&root.join(class), &mut files)?;
            for f in files {
                let rel = f.strip_prefix(&root).unwrap_or(&f).to_path_buf();
                images.push((rel, label as u16));
            }
        }
        Ok(Self {
            root,
            classes,
            images,
        })
    }

    /// FNV-1a 64 over every relative path and label, to recognise the same input on resume.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for (path, label) in &self.images {
            eat(path.to_string_lossy().as_bytes());
            eat(&[0]);
            eat(&label.to_le_bytes());
        }
        format!("{h:016x}")
    }
}

/// Settings of a pretokenization run.
#[derive(Debug, Clone)]
pub struct PretokenizeOptions {
    /// Directory of class folders (ImageNet's `train/`).
    pub input_dir: PathBuf,
    /// Output directory (created if missing; resumed if it holds an index).
    pub output_dir: PathBuf,
    /// Which crops to tokenize.
    pub crop_mode: CropMode,
    /// Crop side fed to the tokenizer (256).
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

impl PretokenizeOptions {
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

/// An image that could not be tokenized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedImage {
    /// Path relative to the input directory.
    pub path: PathBuf,
    /// Why.
    pub error: String,
}

/// One finished shard in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the output directory.
    pub file: String,
    /// Index of its first image in the enumeration.
    pub first_image: usize,
    /// Images it covers (including skipped ones).
    pub num_images: usize,
    /// Records it holds.
    pub num_records: u64,
    /// Images of its range that were skipped.
    pub skipped: Vec<SkippedImage>,
}

/// `index.json`: the settings of a run and its finished shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardIndex {
    /// Index format version.
    pub version: u32,
    /// Tokens per record.
    pub tokens_per_record: u32,
    /// Codebook size.
    pub codebook_size: u32,
    /// Crop mode name (`ten-crop` / `center-flip`).
    pub crop_mode: String,
    /// Records per image.
    pub crops_per_image: u32,
    /// Crop side.
    pub image_size: u32,
    /// Class folder names in label order.
    pub classes: Vec<String>,
    /// Images in the (possibly limited) enumeration.
    pub num_images: usize,
    /// Fingerprint of the enumeration ([`ImageFolder::fingerprint`] of the processed part).
    pub images_fingerprint: String,
    /// Images per shard.
    pub images_per_shard: usize,
    /// Finished shards, by position.
    pub shards: Vec<ShardEntry>,
}

impl ShardIndex {
    /// Number of shards a complete run has.
    pub fn num_shards(&self) -> usize {
        self.num_images.div_ceil(self.images_per_shard.max(1))
    }

    /// Whether every shard is finished.
    pub fn is_complete(&self) -> bool {
        self.shards.len() == self.num_shards()
    }

    /// Every skipped image of the finished shards.
    pub fn skipped(&self) -> impl Iterator<Item = &SkippedImage> {
        self.shards.iter().flat_map(|s| s.skipped.iter())
    }

    /// Reads `dir/index.json`.
    pub fn read(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join(INDEX_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| VqError::io(&path, e))?;
        let index: Self = serde_json::from_str(&text).map_err(|e| VqError::InvalidShard {
            path: path.clone(),
            message: format!("cannot parse the index: {e}"),
        })?;
        if index.version != INDEX_VERSION {
            return Err(VqError::InvalidShard {
                path,
                message: format!(
                    "index version {}, this reader understands {INDEX_VERSION}",
                    index.version
                ),
            });
        }
        Ok(index)
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(INDEX_FILE);
        let text = serde_json::to_string_pretty(self).map_err(|e| VqError::InvalidShard {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic(
            &dir.join(format!("{INDEX_FILE}.tmp")),
            &path,
            text.as_bytes(),
        )
    }
}

/// File name of shard `k`.
pub fn shard_file_name(k: usize) -> String {
    format!("shard-{k:05}.rartok")
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

/// Runs (or resumes) the pretokenization described by `options` with `tokenizer`.
pub fn pretokenize(
    tokenizer: &Tokenizer,
    options: &PretokenizeOptions,
) -> Result<PretokenizeSummary> {
    if options.batch_size == 0 || options.images_per_shard == 0 {
        return Err(VqError::input(
            "options",
            "batch_size and images_per_shard must be at least 1",
        ));
    }
    let f = tokenizer.downsample_factor() as u32;
    if options.image_size == 0 || !options.image_size.is_multiple_of(f) {
        return Err(VqError::input(
            "image_size",
            format!("{} is not a positive multiple of {f}", options.image_size),
        ));
    }
    let codebook = tokenizer.codebook_size();
    if codebook > 1 << 16 {
        return Err(VqError::input(
            "tokenizer",
            format!("codebook of {codebook} does not fit 16-bit tokens"),
        ));
    }
    let mut folder = ImageFolder::scan(&options.input_dir)?;
    if let Some(limit) = options.limit {
        folder.images.truncate(limit);
    }
    let out = &options.output_dir;
    std::fs::create_dir_all(out).map_err(|e| VqError::io(out, e))?;
    let grid = (options.image_size / f) as usize;
    let fresh = ShardIndex {
        version: INDEX_VERSION,
        tokens_per_record: (grid * grid) as u32,
        codebook_size: codebook as u32,
        crop_mode: options.crop_mode.name().to_string(),
        crops_per_image: options.crop_mode.crops_per_image() as u32,
        image_size: options.image_size,
        classes: folder.classes.clone(),
        num_images: folder.images.len(),
        images_fingerprint: folder.fingerprint(),
        images_per_shard: options.images_per_shard,
        shards: Vec::new(),
    };
    let index_path = out.join(INDEX_FILE);
    let mut index = if index_path.exists() {
        let old = ShardIndex::read(out)?;
        let same = ShardIndex {
            shards: Vec::new(),
            ..old.clone()
        };
        if same != fresh {
            return Err(VqError::ResumeMismatch {
                path: index_path,
                message: describe_mismatch(&same, &fresh),
            });
        }
        old
    } else {
        fresh
    };

    // Keep only shards whose file is still there and intact.
    let mut done: BTreeMap<usize, ShardEntry> = BTreeMap::new();
    for entry in std::mem::take(&mut index.shards) {
        let k = entry.first_image / options.images_per_shard;
        let ok = ShardHeader::read(out.join(&entry.file))
            .map(|h| h.count == entry.num_records)
            .unwrap_or(false);
        if ok {
            done.insert(k, entry);
        }
    }
    let shards_reused = done.len();
    index.shards = done.values().cloned().collect();

    let num_shards = index.num_shards();
    let todo: Vec<usize> = (0..num_shards).filter(|k| !done.contains_key(k)).collect();
    let todo_images: usize = todo
        .iter()
        .map(|&k| shard_range(k, options.images_per_shard, folder.images.len()).len())
        .sum();
    let bar = if options.progress {
        let bar = ProgressBar::new(todo_images as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} images {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut summary = PretokenizeSummary {
        images_total: folder.images.len(),
        images_encoded: 0,
        records_written: 0,
        shards_written: 0,
        shards_reused,
        skipped: Vec::new(),
    };
    let device = tokenizer.device();
    let crops = options.crop_mode.crops_per_image();
    for &k in &todo {
        let range = shard_range(k, options.images_per_shard, folder.images.len());
        let images = &folder.images[range.clone()];
        let mut labels = Vec::with_capacity(images.len() * crops);
        let mut tokens = Vec::with_capacity(images.len() * crops * grid * grid);
        let mut skipped = Vec::new();

        // Decode the next batch on the rayon pool while this thread encodes the current one.
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = mpsc::sync_channel::<Vec<Decoded>>(1);
            let root = &folder.root;
            let mode = options.crop_mode;
            let size = options.image_size;
            scope.spawn(move || {
                for batch in images.chunks(options.batch_size) {
                    let decoded: Vec<Decoded> = batch
                        .par_iter()
                        .map(|(rel, _)| {
                            let path = root.join(rel);
                            let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
                            let img = decode_rgb(&bytes, &path).map_err(|e| e.to_string())?;
                            mode.crops(&img, size).map_err(|e| e.to_string())
                        })
                        .collect();
                    if tx.send(decoded).is_err() {
                        return; // the encoder stopped (an error); nothing more to do
                    }
                }
            });
            for batch in images.chunks(options.batch_size) {
                let decoded = rx.recv().map_err(|_| {
                    VqError::input("pretokenize", "the image decoding thread stopped early")
                })?;
                let mut pixels = Vec::new();
                let mut batch_labels = Vec::new();
                for ((rel, label), result) in batch.iter().zip(decoded) {
                    match result {
                        Ok(crops) => {
                            for c in &crops {
                                push_chw(c, &mut pixels);
                                batch_labels.push(*label);
                            }
                        }
                        Err(error) => skipped.push(SkippedImage {
                            path: rel.clone(),
                            error,
                        }),
                    }
                }
                if !batch_labels.is_empty() {
                    let n = batch_labels.len();
                    let s = size as usize;
                    let x = Tensor::<4>::from_data(TensorData::new(pixels, [n, 3, s, s]), &device);
                    let ids = tokenizer
                        .encode(x)?
                        .into_data()
                        .try_into_vec_as::<i64>()
                        .map_err(|e| VqError::input("ids", format!("cannot read ids: {e:?}")))?;
                    for id in ids {
                        let t = u16::try_from(id)
                            .ok()
                            .filter(|&t| usize::from(t) < codebook)
                            .ok_or(VqError::TokenOutOfRange {
                                value: id,
                                codebook_size: codebook,
                            })?;
                        tokens.push(t);
                    }
                    labels.extend(batch_labels);
                    summary.images_encoded += n / crops;
                }
                bar.inc(batch.len() as u64);
            }
            Ok(())
        })?;

        let shard = Shard::new(
            index.tokens_per_record,
            index.codebook_size,
            index.crops_per_image,
            labels,
            tokens,
        )?;
        let file = shard_file_name(k);
        shard.write(out.join(&file))?;
        summary.records_written += shard.header.count;
        summary.shards_written += 1;
        if !skipped.is_empty() {
            bar.println(format!(
                "shard {k}: skipped {} unreadable image(s), e.g. {}: {}",
                skipped.len(),
                skipped[0].path.display(),
                skipped[0].error
            ));
        }
        done.insert(
            k,
            ShardEntry {
                file,
                first_image: range.start,
                num_images: range.len(),
                num_records: shard.header.count,
                skipped,
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
    write_atomic(
        &out.join(format!("{SKIPPED_FILE}.tmp")),
        &out.join(SKIPPED_FILE),
        listing.as_bytes(),
    )?;
    Ok(summary)
}

fn shard_range(k: usize, per_shard: usize, total: usize) -> std::ops::Range<usize> {
    let start = (k * per_shard).min(total);
    start..((k + 1) * per_shard).min(total)
}

fn describe_mismatch(old: &ShardIndex, new: &ShardIndex) -> String {
    let mut diffs = Vec::new();
    macro_rules! cmp {
        ($field:ident) => {
            if old.$field != new.$field {
                diffs.push(format!(
                    "{}: index has {:?}, this run has {:?}",
                    stringify!($field),
                    old.$field,
                    new.$field
                ));
            }
        };
    }
    cmp!(version);
    cmp!(tokens_per_record);
    cmp!(codebook_size);
    cmp!(crop_mode);
    cmp!(image_size);
    cmp!(num_images);
    cmp!(images_fingerprint);
    cmp!(images_per_shard);
    if old.classes != new.classes {
        diffs.push("the class folders differ".into());
    }
    format!(
        "the output directory holds a different run ({}); use a new output directory",
        diffs.join("; ")
    )
}

/// All records of a finished pretokenization run, in memory (2 bytes per token and label:
/// ≈6.6 GB for ten-crop ImageNet).
#[derive(Debug, Clone)]
pub struct TokenDataset {
    /// The index the shards were read through.
    pub index: ShardIndex,
    labels: Vec<u16>,
    tokens: Vec<u16>,
}

impl TokenDataset {
    /// Reads `dir/index.json` and every shard it lists, validating each shard (header,
    /// length, checksum, token range) and its agreement with the index. An unfinished run
    /// is an error naming how many shards are missing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let index = ShardIndex::read(dir)?;
        if !index.is_complete() {
            return Err(VqError::InvalidShard {
                path: dir.join(INDEX_FILE),
                message: format!(
                    "pretokenization is unfinished: {} of {} shards done (rerun it to resume)",
                    index.shards.len(),
                    index.num_shards()
                ),
            });
        }
        let shards = index
            .shards
            .par_iter()
            .map(|entry| {
                let path = dir.join(&entry.file);
                let shard = Shard::read(&path)?;
                let h = shard.header;
                if h.count != entry.num_records
                    || h.tokens_per_record != index.tokens_per_record
                    || h.codebook_size != index.codebook_size
                    || h.crops_per_image != index.crops_per_image
                {
                    return Err(VqError::InvalidShard {
                        path,
                        message: format!(
                            "header {h:?} disagrees with the index entry ({} records, N {}, V {})",
                            entry.num_records, index.tokens_per_record, index.codebook_size
                        ),
                    });
                }
                if let Some(&l) = shard
                    .labels
                    .iter()
                    .find(|&&l| usize::from(l) >= index.classes.len())
                {
                    return Err(VqError::InvalidShard {
                        path,
                        message: format!("label {l} but only {} classes", index.classes.len()),
                    });
                }
                Ok(shard)
            })
            .collect::<Result<Vec<_>>>()?;
        let total: usize = shards.iter().map(Shard::len).sum();
        let mut labels = Vec::with_capacity(total);
        let mut tokens = Vec::with_capacity(total * index.tokens_per_record as usize);
        for s in shards {
            labels.extend(s.labels);
            tokens.extend(s.tokens);
        }
        Ok(Self {
            index,
            labels,
            tokens,
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Tokens per record.
    pub fn tokens_per_record(&self) -> usize {
        self.index.tokens_per_record as usize
    }

    /// Codebook size.
    pub fn codebook_size(&self) -> usize {
        self.index.codebook_size as usize
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.index.classes.len()
    }

    /// Label and tokens of record `i`.
    pub fn get(&self, i: usize) -> Option<(u16, &[u16])> {
        let n = self.tokens_per_record();
        let label = *self.labels.get(i)?;
        Some((label, &self.tokens[i * n..(i + 1) * n]))
    }

    /// All labels, one per record.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// All tokens, record after record.
    pub fn tokens(&self) -> &[u16] {
        &self.tokens
    }
}
