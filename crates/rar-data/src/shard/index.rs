//! `index.json`: the settings of a pretokenization run and its finished shards.
//!
//! Layout of an output directory:
//!
//! * `shard-00000.rartok`, `shard-00001.rartok`, …: the records of consecutive ranges of
//!   `images_per_shard` images (format in [`crate::shard`]);
//! * `index.json`: the run's settings, the class list (`wnid`s in label order), a fingerprint
//!   of the image list, and per finished shard its file, image range, record count and the
//!   images that were skipped as unreadable (written atomically after every shard);
//! * `skipped.txt`: every skipped image with the reason, one per line (refreshed at the end).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::error::{DataError, Result};

/// Name of the index file in an output directory.
pub const INDEX_FILE: &str = "index.json";
/// Name of the list of skipped images.
pub const SKIPPED_FILE: &str = "skipped.txt";
/// Version of the index format.
pub const INDEX_VERSION: u32 = 1;

/// File name of shard `k`.
pub fn shard_file_name(k: usize) -> String {
    format!("shard-{k:05}.rartok")
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
    /// Fingerprint of the enumeration ([`crate::ImageFolder::fingerprint`] of the processed
    /// part).
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
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let index: Self = serde_json::from_str(&text)
            .map_err(|e| DataError::shard(&path, format!("cannot parse the index: {e}")))?;
        if index.version != INDEX_VERSION {
            return Err(DataError::shard(
                &path,
                format!(
                    "index version {}, this reader understands {INDEX_VERSION}",
                    index.version
                ),
            ));
        }
        Ok(index)
    }

    /// Writes `dir/index.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(INDEX_FILE);
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| DataError::shard(&path, e.to_string()))?;
        write_atomic(&path, text.as_bytes())
    }

    /// Every setting of `self` that differs from `other` (the shard lists aside), as
    /// `field: index has …, this run has …` entries.
    pub fn differences(&self, other: &ShardIndex) -> Vec<String> {
        let mut diffs = Vec::new();
        macro_rules! cmp {
            ($($field:ident),*) => {$(
                if self.$field != other.$field {
                    diffs.push(format!(
                        "{}: index has {:?}, this run has {:?}",
                        stringify!($field),
                        self.$field,
                        other.$field
                    ));
                }
            )*};
        }
        cmp!(
            version,
            tokens_per_record,
            codebook_size,
            crop_mode,
            crops_per_image,
            image_size,
            num_images,
            images_fingerprint,
            images_per_shard
        );
        if self.classes != other.classes {
            diffs.push("the class folders differ".into());
        }
        diffs
    }
}
