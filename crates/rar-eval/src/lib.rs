//! # rar-eval — the numbers every RAR paper reports, computed as the ADM evaluator does
//!
//! RAR's FID (1.95 for RAR-B … 1.48 for RAR-XXL), sFID, Inception Score, precision and recall
//! come from the ADM evaluator (openai/guided-diffusion `evaluations/evaluator.py`). This
//! crate computes its statistics in f64 on the host:
//!
//! * [`MomentAccumulator`] streams feature vectors into a [`Gaussian`] (mean and N − 1
//!   covariance, `np.mean` / `np.cov`) in bounded memory;
//! * [`Gaussian::frechet_distance`] is FID on pooled features and sFID on spatial ones, with
//!   the matrix square root's trace from symmetric eigendecompositions (faer);
//! * [`inception_score`] follows the evaluator's splits ([`IS_SPLIT_SIZE`]).
//!
//! Not here yet (issue #15): the InceptionV3 feature extractor, precision and recall, reading
//! the reference batch and sample `.npz` files, and the `evaluate` example.
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

mod error;
mod frechet;
mod gaussian;
mod inception_score;
mod moments;

pub use error::{EvalError, Result};
pub use gaussian::Gaussian;
pub use inception_score::{IS_SPLIT_SIZE, inception_score};
pub use moments::MomentAccumulator;
