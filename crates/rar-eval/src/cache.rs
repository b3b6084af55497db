//! The statistics cache: a [`FeatureSet`] written next to the images it came from
//! (`<images>.rar-eval.npz`, readable by `numpy.load`), so that a second evaluation of the
//! same samples — or every evaluation against the same reference batch — skips the network.
//!
//! A cache entry is used only when its `meta` record matches the source exactly: the format
//! version, the source's size and modification time (for a folder, its PNG count, total size
//! and newest modification), and the Inception weights' file name and size. Anything else is
//! recomputed and the entry rewritten (atomically: a failed write leaves the old one).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::feature_set::FeatureSet;
use crate::gaussian::Gaussian;
use crate::inception::{POOL_FEATURES, SPATIAL_FEATURES};
use crate::npz::{NpyArray, NpzFile, file_error, write_npz};

/// Bumped whenever what is cached, or how it is computed, changes.
const CACHE_VERSION: u32 = 1;

/// What a cache entry was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// The cache format version at writing (bumped whenever what is cached changes).
    pub version: u32,
    /// Bytes of the source (summed over a folder's PNGs).
    pub source_bytes: u64,
    /// Newest modification time of the source, in nanoseconds since the epoch.
    pub source_modified_ns: u128,
    /// PNG files in a folder source (0 for an `.npz`).
    pub source_files: u64,
    /// The Inception weights: file name and size.
    pub weights: String,
}

fn modified_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

impl CacheKey {
    /// The key of `source` (an `.npz` or a folder of PNGs) evaluated with `weights`.
    pub fn of(source: &Path, weights: &str) -> Result<Self> {
        let meta = std::fs::metadata(source).map_err(|e| file_error(source, e.to_string()))?;
        let (mut bytes, mut newest, mut files) = (0u64, 0u128, 0u64);
        if meta.is_dir() {
            for entry in std::fs::read_dir(source).map_err(|e| file_error(source, e.to_string()))? {
                let path = entry.map_err(|e| file_error(source, e.to_string()))?.path();
                if path
                    .extension()
                    .is_some_and(|x| x.eq_ignore_ascii_case("png"))
                {
                    let m =
                        std::fs::metadata(&path).map_err(|e| file_error(&path, e.to_string()))?;
                    bytes += m.len();
                    newest = newest.max(modified_ns(&m));
                    files += 1;
                }
            }
        } else {
            bytes = meta.len();
            newest = modified_ns(&meta);
        }
        Ok(Self {
            version: CACHE_VERSION,
            source_bytes: bytes,
            source_modified_ns: newest,
            source_files: files,
            weights: weights.to_string(),
        })
    }
}

/// Where the cache of `source` lives: `<source>.rar-eval.npz` beside it.
pub fn cache_path(source: &Path) -> PathBuf {
    let mut name = source
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".rar-eval.npz");
    source.with_file_name(name)
}

/// Writes `set` with `key` to `path`.
pub fn save_cache(path: &Path, key: &CacheKey, set: &FeatureSet) -> Result<()> {
    let meta = serde_json::to_vec(key).expect("a cache key serialises");
    let n = set.count;
    let (d, s) = (POOL_FEATURES, SPATIAL_FEATURES);
    write_npz(
        path,
        &[
            ("meta", NpyArray::U8(&meta, &[meta.len()])),
            ("pool", NpyArray::F32(&set.pool, &[n, d])),
            ("mu", NpyArray::F64(set.pool_stats.mean(), &[d])),
            ("sigma", NpyArray::F64(set.pool_stats.cov(), &[d, d])),
            ("mu_s", NpyArray::F64(set.spatial_stats.mean(), &[s])),
            ("sigma_s", NpyArray::F64(set.spatial_stats.cov(), &[s, s])),
            (
                "inception_score",
                NpyArray::F64(&[set.inception_score], &[]),
            ),
        ],
    )
}

/// The cached set at `path` if it exists and was computed from `key`; `Ok(None)` when
/// absent or stale. A cache that matches its key but cannot be read is an error.
pub fn load_cache(path: &Path, key: &CacheKey) -> Result<Option<FeatureSet>> {
    if !path.is_file() {
        return Ok(None);
    }
    let Ok(mut npz) = NpzFile::open(path) else {
        return Ok(None);
    };
    let Ok((_, meta)) = npz.read_raw("meta") else {
        return Ok(None);
    };
    match serde_json::from_slice::<CacheKey>(&meta) {
        Ok(stored) if stored == *key => {}
        _ => return Ok(None),
    }
    let (shape, pool) = npz.read_f32("pool")?;
    let count = shape.first().copied().unwrap_or(0);
    let gaussian = |npz: &mut NpzFile, mean: &str, cov: &str| -> Result<Gaussian> {
        Gaussian::new(npz.read_f64(mean)?.1, npz.read_f64(cov)?.1, count as u64)
    };
    let pool_stats = gaussian(&mut npz, "mu", "sigma")?;
    let spatial_stats = gaussian(&mut npz, "mu_s", "sigma_s")?;
    let score = npz.read_f64("inception_score")?.1;
    if pool.len() != count * POOL_FEATURES || score.len() != 1 {
        return Err(file_error(path, "cache arrays have inconsistent sizes"));
    }
    Ok(Some(FeatureSet {
        count,
        pool,
        pool_stats,
        spatial_stats,
        inception_score: score[0],
    }))
}
