//! The evaluator's five numbers for a sample set against a reference batch
//! (`evaluator.py ref_batch sample_batch`), with the statistics cache.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cache::{CacheKey, cache_path, load_cache, save_cache};
use crate::error::Result;
use crate::feature_set::FeatureSet;
use crate::gaussian::Gaussian;
use crate::images::ImageStream;
use crate::inception::{InceptionExtractor, POOL_FEATURES};
use crate::npz::NpzFile;
use crate::precision_recall::{DistancePrecision, ManifoldEstimator};

/// Images per network batch (the evaluator feeds batches of 64).
pub const DEFAULT_BATCH: usize = 64;

/// Which image set a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Stage {
    /// The reference batch's images (for precision and recall).
    Reference,
    /// The samples.
    Samples,
    /// Precision and recall (no per-image progress; reported once at start).
    PrecisionRecall,
}

/// How a feature set was obtained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CacheOutcome {
    /// Read from this cache file.
    Hit(PathBuf),
    /// Computed and written to this cache file.
    Written(PathBuf),
    /// Computed; the cache could not be written (the reason).
    NotWritten(String),
    /// Computed; caching is off.
    Disabled,
}

/// The evaluator's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Inception Score of the samples (splits of 5000).
    pub inception_score: f64,
    /// FID: Fréchet distance of the `pool_3` Gaussians.
    pub fid: f64,
    /// sFID: Fréchet distance of the spatial-feature Gaussians.
    pub sfid: f64,
    /// Share of samples inside the reference manifold.
    pub precision: f64,
    /// Share of reference images inside the samples' manifold.
    pub recall: f64,
    /// Samples evaluated.
    pub samples: usize,
    /// Reference images (for precision and recall).
    pub reference_images: usize,
    /// Whether the reference Gaussians are the ones stored in the reference batch (`mu`,
    /// `sigma`, `mu_s`, `sigma_s`, as the evaluator uses them) or computed from its images.
    pub reference_statistics_stored: bool,
    /// The distances' arithmetic for precision and recall.
    pub distances: String,
    /// How the reference and sample features were obtained.
    pub reference_cache: CacheOutcome,
    /// See `reference_cache`.
    pub samples_cache: CacheOutcome,
}

/// Computes [`Evaluation`]s with one Inception network.
#[derive(Debug)]
pub struct Evaluator {
    extractor: InceptionExtractor,
    weights: String,
    batch: usize,
    estimator: ManifoldEstimator,
    cache: bool,
}

impl Evaluator {
    /// An evaluator around `extractor`; `weights` identifies its weights in cache keys (the
    /// file name and size: [`Evaluator::weights_id`]).
    pub fn new(extractor: InceptionExtractor, weights: impl Into<String>) -> Self {
        Self {
            extractor,
            weights: weights.into(),
            batch: DEFAULT_BATCH,
            estimator: ManifoldEstimator::default(),
            cache: true,
        }
    }

    /// The identity of a weight file for cache keys: its name and size.
    pub fn weights_id(path: &Path) -> Result<String> {
        let len = std::fs::metadata(path)
            .map_err(|e| crate::npz::file_error(path, e.to_string()))?
            .len();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        Ok(format!("{} ({len} bytes)", name.unwrap_or_default()))
    }

    /// Images per network batch.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch;
        self
    }

    /// The precision/recall estimator.
    pub fn with_estimator(mut self, estimator: ManifoldEstimator) -> Self {
        self.estimator = estimator;
        self
    }

    /// Whether feature sets are cached next to their images (on by default).
    pub fn with_cache(mut self, cache: bool) -> Self {
        self.cache = cache;
        self
    }

    /// The statistics of the images at `source` (an `.npz`'s `arr_0` or a PNG folder), from
    /// the cache when it is current.
    pub fn feature_set(
        &self,
        source: &Path,
        progress: impl FnMut(usize, usize),
    ) -> Result<(FeatureSet, CacheOutcome)> {
        let key = CacheKey::of(source, &self.weights)?;
        let path = cache_path(source);
        if self.cache
            && let Some(set) = load_cache(&path, &key)?
        {
            return Ok((set, CacheOutcome::Hit(path)));
        }
        let images = ImageStream::open(source, self.batch)?;
        let set = FeatureSet::compute(&self.extractor, images, progress)?;
        let outcome = if !self.cache {
            CacheOutcome::Disabled
        } else {
            match save_cache(&path, &key, &set) {
                Ok(()) => CacheOutcome::Written(path),
                Err(e) => CacheOutcome::NotWritten(e.to_string()),
            }
        };
        Ok((set, outcome))
    }

    /// Evaluates `samples` against `reference` (a reference batch `.npz`, or any image set).
    pub fn evaluate(
        &self,
        reference: &Path,
        samples: &Path,
        mut progress: impl FnMut(Stage, usize, usize),
    ) -> Result<Evaluation> {
        let (reference_set, reference_cache) =
            self.feature_set(reference, |d, t| progress(Stage::Reference, d, t))?;
        let (sample_set, samples_cache) =
            self.feature_set(samples, |d, t| progress(Stage::Samples, d, t))?;
        let stored = stored_statistics(reference)?;
        let reference_statistics_stored = stored.is_some();
        let (ref_pool, ref_spatial) = stored.unwrap_or_else(|| {
            (
                reference_set.pool_stats.clone(),
                reference_set.spatial_stats.clone(),
            )
        });
        progress(Stage::PrecisionRecall, 0, 1);
        let pr = self.estimator.precision_recall(
            &reference_set.pool,
            &sample_set.pool,
            POOL_FEATURES,
        )?;
        progress(Stage::PrecisionRecall, 1, 1);
        Ok(Evaluation {
            inception_score: sample_set.inception_score,
            fid: sample_set.pool_stats.frechet_distance(&ref_pool)?,
            sfid: sample_set.spatial_stats.frechet_distance(&ref_spatial)?,
            precision: pr.precision,
            recall: pr.recall,
            samples: sample_set.count,
            reference_images: reference_set.count,
            reference_statistics_stored,
            distances: match self.estimator.distances {
                DistancePrecision::Float16 => "float16 (the evaluator's)".into(),
                DistancePrecision::Float32 => "float32".into(),
            },
            reference_cache,
            samples_cache,
        })
    }
}

/// The Gaussians stored in a reference batch (`mu`, `sigma`, `mu_s`, `sigma_s`), if it is
/// an `.npz` holding all four.
pub fn stored_statistics(reference: &Path) -> Result<Option<(Gaussian, Gaussian)>> {
    if reference.is_dir() {
        return Ok(None);
    }
    let mut npz = NpzFile::open(reference)?;
    if !["mu", "sigma", "mu_s", "sigma_s"]
        .iter()
        .all(|name| npz.contains(name))
    {
        return Ok(None);
    }
    let mut gaussian = |mean: &str, cov: &str| -> Result<Gaussian> {
        Gaussian::new(npz.read_f64(mean)?.1, npz.read_f64(cov)?.1, 0)
    };
    Ok(Some((
        gaussian("mu", "sigma")?,
        gaussian("mu_s", "sigma_s")?,
    )))
}
