//! A Gaussian fitted to features: what FID and sFID compare (the evaluator's
//! `FIDStatistics`, and the `mu`/`sigma`, `mu_s`/`sigma_s` arrays of its reference batches).

use crate::error::{EvalError, Result, check_finite};

/// The mean and covariance of a set of feature vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    mean: Vec<f64>,
    /// Row-major `dim × dim`.
    cov: Vec<f64>,
    samples: u64,
}

impl Gaussian {
    /// Statistics from their parts (e.g. read from a reference batch): `cov` is row-major
    /// `dim × dim` for `dim = mean.len()`; `samples` is how many vectors they came from (0
    /// when unknown). Wrong sizes and non-finite values are errors.
    pub fn new(mean: Vec<f64>, cov: Vec<f64>, samples: u64) -> Result<Self> {
        let dim = mean.len();
        if dim == 0 || cov.len() != dim * dim {
            return Err(EvalError::DimensionMismatch {
                what: "covariance entries against mean length squared",
                left: cov.len(),
                right: dim * dim,
            });
        }
        check_finite("mean", &mean)?;
        check_finite("covariance", &cov)?;
        Ok(Self { mean, cov, samples })
    }

    /// The statistics of row-major f32 feature vectors of width `dim`, in one call (see
    /// [`crate::MomentAccumulator`] to stream them).
    pub fn of_features(rows: &[f32], dim: usize) -> Result<Self> {
        let mut acc = crate::MomentAccumulator::new(dim);
        acc.add(rows)?;
        acc.finish()
    }

    /// The feature dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The mean vector.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The covariance, row-major `dim × dim`.
    pub fn cov(&self) -> &[f64] {
        &self.cov
    }

    /// How many vectors the statistics came from (0 when unknown).
    pub fn samples(&self) -> u64 {
        self.samples
    }
}
