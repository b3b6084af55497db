//! The Fréchet distance between two Gaussians: FID on pooled features, sFID on spatial ones
//! (Heusel et al. 2017, Eq. 6; the evaluator's `FIDStatistics.frechet_distance`).
//!
//! `d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^{1/2}`. The evaluator takes the last term
//! from `scipy.linalg.sqrtm(Σ₁Σ₂)`, a Schur-based square root of a non-symmetric product.
//! Here it comes from two symmetric eigendecompositions instead: with `R = Σ₁^{1/2}`, the
//! product `Σ₁Σ₂ = R (R Σ₂ R) R⁻¹` is similar to the symmetric `R Σ₂ R`, so
//! `tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ(R Σ₂ R)`. Eigenvalues below zero are rounding noise of a
//! (nearly) singular covariance and count as zero, as the real part of scipy's complex root
//! does.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par, Side};

use crate::error::{EvalError, Result};
use crate::gaussian::Gaussian;

impl Gaussian {
    /// The squared Fréchet distance to `other` (what the papers report as FID or sFID).
    pub fn frechet_distance(&self, other: &Gaussian) -> Result<f64> {
        let dim = self.dim();
        if other.dim() != dim {
            return Err(EvalError::DimensionMismatch {
                what: "Fréchet distance between statistics",
                left: dim,
                right: other.dim(),
            });
        }
        let mean_term: f64 = self
            .mean()
            .iter()
            .zip(other.mean())
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let trace = |g: &Gaussian| (0..dim).map(|i| g.cov()[i * dim + i]).sum::<f64>();
        let s1 = matrix(self.cov(), dim);
        let s2 = matrix(other.cov(), dim);
        let root = symmetric_sqrt(&s1, "the first covariance")?;
        let mut tmp = Mat::<f64>::zeros(dim, dim);
        matmul(
            tmp.as_mut(),
            Accum::Replace,
            root.as_ref(),
            s2.as_ref(),
            1.0,
            Par::rayon(0),
        );
        let mut inner = Mat::<f64>::zeros(dim, dim);
        matmul(
            inner.as_mut(),
            Accum::Replace,
            tmp.as_ref(),
            root.as_ref(),
            1.0,
            Par::rayon(0),
        );
        let inner = Mat::from_fn(dim, dim, |i, j| 0.5 * (inner[(i, j)] + inner[(j, i)]));
        let eigenvalues =
            inner
                .self_adjoint_eigenvalues(Side::Lower)
                .map_err(|_| EvalError::NoConvergence {
                    what: "Σ₁^½ Σ₂ Σ₁^½",
                })?;
        let trace_root: f64 = eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
        Ok(mean_term + trace(self) + trace(other) - 2.0 * trace_root)
    }
}

/// A row-major `dim × dim` buffer as a matrix, symmetrised.
fn matrix(values: &[f64], dim: usize) -> Mat<f64> {
    Mat::from_fn(dim, dim, |i, j| {
        0.5 * (values[i * dim + j] + values[j * dim + i])
    })
}

/// The symmetric positive semi-definite square root `U √max(Λ, 0) Uᵀ` of a symmetric matrix.
fn symmetric_sqrt(m: &Mat<f64>, what: &'static str) -> Result<Mat<f64>> {
    let dim = m.nrows();
    let evd = m
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| EvalError::NoConvergence { what })?;
    let u = evd.U();
    let s = evd.S().column_vector();
    let scaled = Mat::from_fn(dim, dim, |i, k| u[(i, k)] * s[k].max(0.0).sqrt());
    let mut root = Mat::<f64>::zeros(dim, dim);
    matmul(
        root.as_mut(),
        Accum::Replace,
        scaled.as_ref(),
        u.transpose(),
        1.0,
        Par::rayon(0),
    );
    Ok(root)
}
