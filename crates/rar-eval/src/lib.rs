//! # rar-eval — the numbers every RAR paper reports, computed as the ADM evaluator does
//!
//! RAR's FID (1.95 for RAR-B … 1.48 for RAR-XXL), sFID, Inception Score, precision and recall
//! come from the ADM evaluator (openai/guided-diffusion `evaluations/evaluator.py`), a
//! TensorFlow 1 graph. This crate computes the same five numbers in Rust:
//!
//! * [`InceptionV3`] is the evaluator's Inception graph in torch-fidelity's layout, loading
//!   the published `.pth` weights unchanged ([`InceptionV3::from_file`]);
//!   [`InceptionExtractor`] feeds it uint8 images through TF1's bilinear resize
//!   ([`tf1_resize_bilinear`]) and returns `pool_3`, the spatial `mixed_6/conv` features and
//!   the bias-free logits;
//! * [`MomentAccumulator`] streams features into a [`Gaussian`] (mean and N − 1 covariance in
//!   f64); [`Gaussian::frechet_distance`] is FID on pooled and sFID on spatial features, with
//!   the matrix square root's trace from symmetric eigendecompositions (faer);
//! * [`inception_score`] follows the evaluator's splits ([`IS_SPLIT_SIZE`]);
//!   [`ManifoldEstimator`] is its k-NN precision and recall, float16 distances included;
//! * [`ImageStream`] reads `.npz` sample files and reference batches (or PNG folders) in
//!   bounded memory; [`Evaluator`] ties it together and caches each set's statistics next to
//!   its images.
//!
//! ```
//! use rar_eval::{Gaussian, inception_score};
//!
//! let a = Gaussian::of_features(&[0.0, 1.0, 1.0, 0.0, 2.0, 2.0], 2).unwrap();
//! assert!(a.frechet_distance(&a).unwrap().abs() < 1e-12);
//! let uniform = inception_score(&[0.5, 0.5, 0.5, 0.5], 2, 5000).unwrap();
//! assert!((uniform - 1.0).abs() < 1e-12);
//! ```
#![deny(missing_docs)]

mod cache;
mod error;
mod evaluator;
mod feature_set;
mod frechet;
mod gaussian;
mod images;
mod inception;
mod inception_score;
mod moments;
mod npz;
mod precision_recall;

pub use cache::{CacheKey, cache_path, load_cache, save_cache};
pub use error::{EvalError, Result};
pub use evaluator::{CacheOutcome, DEFAULT_BATCH, Evaluation, Evaluator, Stage, stored_statistics};
pub use feature_set::FeatureSet;
pub use gaussian::Gaussian;
pub use images::{IMAGES_ARRAY, ImageBatch, ImageStream};
pub use inception::{
    BasicConv2d, INPUT_SIDE, InceptionA, InceptionB, InceptionC, InceptionD, InceptionE,
    InceptionExtractor, InceptionFeatures, InceptionOutputs, InceptionV3, InceptionV3Config,
    POOL_FEATURES, PoolBranch, SPATIAL_CHANNELS, SPATIAL_FEATURES, SPATIAL_SIDE,
    tf1_resize_bilinear,
};
pub use inception_score::{IS_SPLIT_SIZE, inception_score};
pub use moments::MomentAccumulator;
pub use npz::{ElementType, NpyArray, NpyHeader, NpzFile, npy_header, write_npz};
pub use precision_recall::{DistancePrecision, ManifoldEstimator, PrecisionRecall};
