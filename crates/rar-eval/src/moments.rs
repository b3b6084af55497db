//! The mean and covariance of a stream of feature vectors, accumulated in f64.
//!
//! The evaluator takes `np.mean` and `np.cov(rowvar=False)` of all activations at once
//! (`compute_statistics`); 50k × 2048 features are 400 MB in f32, so this accumulates batch by
//! batch instead: the sum and the scatter matrix of the samples minus a shift (the first
//! batch's mean), which keeps the subtraction `Σxxᵀ − n·x̄x̄ᵀ` from cancelling digits when the
//! features have a large mean. Memory: `dim² + 2·dim` f64, whatever the number of samples.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

use crate::error::{EvalError, Result, check_finite};
use crate::gaussian::Gaussian;

/// Accumulates feature vectors (rows of `dim` f32) into their mean and covariance.
#[derive(Debug, Clone)]
pub struct MomentAccumulator {
    dim: usize,
    samples: u64,
    shift: Vec<f64>,
    /// `Σ (x − shift)`.
    sum: Vec<f64>,
    /// `Σ (x − shift)(x − shift)ᵀ`, lower and upper triangles both filled.
    scatter: Mat<f64>,
}

impl MomentAccumulator {
    /// An empty accumulator for vectors of `dim` features.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            samples: 0,
            shift: Vec::new(),
            sum: vec![0.0; dim],
            scatter: Mat::zeros(dim, dim),
        }
    }

    /// The feature dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Samples added so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Adds a batch of row-major feature vectors (`rows.len()` a multiple of `dim`). A ragged
    /// batch or a non-finite value is an error and leaves the accumulator unchanged.
    pub fn add(&mut self, rows: &[f32]) -> Result<()> {
        let dim = self.dim;
        if dim == 0 || !rows.len().is_multiple_of(dim) {
            return Err(EvalError::Ragged {
                what: "feature batch",
                len: rows.len(),
                width: dim,
            });
        }
        check_finite("feature batch", rows)?;
        let n = rows.len() / dim;
        if n == 0 {
            return Ok(());
        }
        if self.shift.is_empty() {
            self.shift = (0..dim)
                .map(|j| (0..n).map(|i| rows[i * dim + j] as f64).sum::<f64>() / n as f64)
                .collect();
        }
        let centred = Mat::from_fn(n, dim, |i, j| rows[i * dim + j] as f64 - self.shift[j]);
        for i in 0..n {
            for (j, s) in self.sum.iter_mut().enumerate() {
                *s += centred[(i, j)];
            }
        }
        matmul(
            self.scatter.as_mut(),
            Accum::Add,
            centred.transpose(),
            centred.as_ref(),
            1.0,
            Par::rayon(0),
        );
        self.samples += n as u64;
        Ok(())
    }

    /// The mean and the unbiased (N − 1) covariance of everything added, as `np.mean` and
    /// `np.cov(rowvar=False)` define them; at least two samples are needed.
    pub fn finish(&self) -> Result<Gaussian> {
        if self.samples < 2 {
            return Err(EvalError::TooFewSamples {
                what: "covariance",
                got: self.samples,
                need: 2,
            });
        }
        let n = self.samples as f64;
        let dim = self.dim;
        let offset: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let mean = offset.iter().zip(&self.shift).map(|(o, s)| o + s).collect();
        let mut cov = vec![0.0; dim * dim];
        for i in 0..dim {
            for j in 0..dim {
                // symmetrised: the two triangles of a product differ in the last bits
                let scatter = 0.5 * (self.scatter[(i, j)] + self.scatter[(j, i)]);
                cov[i * dim + j] = (scatter - n * offset[i] * offset[j]) / (n - 1.0);
            }
        }
        Gaussian::new(mean, cov, self.samples)
    }
}
