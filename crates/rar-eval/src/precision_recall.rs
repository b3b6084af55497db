//! Precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for
//! Assessing Generative Models", §2) as the evaluator's `ManifoldEstimator` computes them.
//!
//! Each feature set's manifold is the union of balls around its points, the radius of each
//! the squared distance to its k-th nearest neighbour (k = 3; the point itself is the 0-th,
//! so the 4th smallest distance in its row, as `np.partition(..., [0..=k])[:, k]`).
//! Precision is the share of samples inside the reference manifold (`d ≤ radius`), recall
//! the share of reference points inside the samples' manifold.
//!
//! The evaluator computes squared distances as `max(‖u‖² − 2 u·v + ‖v‖², 0)` in **float16**
//! — inputs cast to half, each operation rounded to half — and falls back to float32 for a
//! whole `row_batch × col_batch` block (10 000 × 10 000) when any half result is not finite.
//! With distances of a few hundred, half precision moves them by ~0.1–0.5, which changes
//! which points fall inside a ball; [`DistancePrecision::Float16`] reproduces it so that the
//! numbers compare with published ones. Half operations are emulated on the host: products
//! and sums of halves accumulate in f32 and are rounded to half once (what GPU half matmuls
//! and reductions do), element-wise operations round after each step. The fallback is
//! decided per evaluator block, as the evaluator does; a cheap test on the half norms proves
//! most blocks finite before any distance is computed, so only a block that might overflow is
//! held in memory whole. Everything else streams in tiles, with memory bounded by
//! `TILE × col_batch` whatever the number of features.

use std::ops::Range;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use half::f16;
use rayon::prelude::*;

use crate::error::{EvalError, Result, check_finite};

/// Rows of one tile of distances.
const TILE: usize = 1024;

/// Half norms up to this bound cannot overflow `‖u‖² − 2 u·v + ‖v‖²` in half precision
/// (Cauchy–Schwarz bounds `|u·v|` by ~1.01 × the larger norm, so every intermediate stays
/// below 4.1 × 16 000 < 65 504).
const SAFE_HALF_NORM: f32 = 16_000.0;

/// The arithmetic of the squared distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistancePrecision {
    /// The evaluator's: float16 with a float32 fallback per block.
    Float16,
    /// float32 throughout (more exact; not what published numbers used).
    Float32,
}

/// Precision and recall, each a share in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionRecall {
    /// Share of samples inside the reference manifold.
    pub precision: f64,
    /// Share of reference points inside the samples' manifold.
    pub recall: f64,
}

/// The evaluator's k-NN manifold estimator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ManifoldEstimator {
    /// Neighbourhood size k (the evaluator's `nhood_sizes=(3,)`).
    pub neighbourhood: usize,
    /// Rows per evaluator block (`row_batch_size`, 10 000).
    pub row_batch: usize,
    /// Columns per evaluator block (`col_batch_size`, 10 000).
    pub col_batch: usize,
    /// The distances' arithmetic.
    pub distances: DistancePrecision,
}

impl Default for ManifoldEstimator {
    fn default() -> Self {
        Self {
            neighbourhood: 3,
            row_batch: 10_000,
            col_batch: 10_000,
            distances: DistancePrecision::Float16,
        }
    }
}

/// A feature set prepared for distances: values and squared norms in f32 and rounded
/// through half.
struct Points<'a> {
    count: usize,
    dim: usize,
    values: &'a [f32],
    norms: Vec<f32>,
    half_values: Vec<f32>,
    half_norms: Vec<f32>,
}

fn to_half(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// `max(d, 0)` that keeps a NaN, as `tf.maximum` and `np.maximum` do (`f32::max` would turn
/// the NaN of an overflowed `inf − inf` into 0, a finite distance, and hide the overflow from
/// the fallback test).
fn clamp_distance(d: f32) -> f32 {
    if d.is_nan() { d } else { d.max(0.0) }
}

impl<'a> Points<'a> {
    fn new(what: &'static str, values: &'a [f32], dim: usize, half: bool) -> Result<Self> {
        if dim == 0 || values.is_empty() || !values.len().is_multiple_of(dim) {
            return Err(EvalError::Ragged {
                what,
                len: values.len(),
                width: dim,
            });
        }
        check_finite(what, values)?;
        // Accumulated in f64 and rounded once: the distances cancel against the norms, so
        // the norms' rounding is the distances' error (the reference reductions are
        // pairwise or tree-shaped, more exact than a plain f32 loop).
        let norms = values
            .par_chunks(dim)
            .map(|row| row.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() as f32)
            .collect();
        let (half_values, half_norms) = if half {
            let hv: Vec<f32> = values.par_iter().map(|&x| to_half(x)).collect();
            let hn = hv
                .par_chunks(dim)
                .map(|row| to_half(row.iter().map(|&x| to_half(x * x) as f64).sum::<f64>() as f32))
                .collect();
            (hv, hn)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Self {
            count: values.len() / dim,
            dim,
            values,
            norms,
            half_values,
            half_norms,
        })
    }
}

/// A `rows × cols` tile of squared distances, row-major, whose first row is `row0` of the
/// first set and first column `col0` of the second.
struct Tile {
    row0: usize,
    col0: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Tile {
    fn rows(&self) -> impl Iterator<Item = (usize, &[f32])> {
        self.data
            .chunks(self.cols)
            .enumerate()
            .map(move |(i, row)| (self.row0 + i, row))
    }
}

impl ManifoldEstimator {
    fn check(&self) -> Result<()> {
        if self.row_batch == 0 || self.col_batch == 0 {
            return Err(EvalError::Invalid {
                what: "manifold estimator",
                reason: "batch sizes must be positive".into(),
            });
        }
        Ok(())
    }

    /// Squared distances of rows `rows` of `a` to rows `cols` of `b`.
    fn tile(a: &Points, rows: Range<usize>, b: &Points, cols: Range<usize>, half: bool) -> Tile {
        let (r0, rn, c0, cn) = (rows.start, rows.len(), cols.start, cols.len());
        let d = a.dim;
        let (av, an, bv, bn): (&[f32], &[f32], &[f32], &[f32]) = if half {
            (&a.half_values, &a.half_norms, &b.half_values, &b.half_norms)
        } else {
            (a.values, &a.norms, b.values, &b.norms)
        };
        let lhs = MatRef::from_row_major_slice(&av[r0 * d..(r0 + rn) * d], rn, d);
        let rhs = MatRef::from_row_major_slice(&bv[c0 * d..(c0 + cn) * d], cn, d);
        // `cols × rows` in faer's column-major layout: row `i` of the tile is column `i`,
        // contiguous, so the loop below reads it in order.
        let mut dots = Mat::<f32>::zeros(cn, rn);
        matmul(
            dots.as_mut(),
            Accum::Replace,
            rhs,
            lhs.transpose(),
            1.0,
            Par::rayon(0),
        );
        let mut data = vec![0.0f32; rn * cn];
        data.par_chunks_mut(cn).enumerate().for_each(|(i, row)| {
            let nu = an[r0 + i];
            for (j, out) in row.iter_mut().enumerate() {
                let nv = bn[c0 + j];
                let dot = dots[(j, i)];
                *out = if half {
                    let twice = to_half(2.0 * to_half(dot));
                    clamp_distance(to_half(to_half(nu - twice) + nv))
                } else {
                    clamp_distance(nu - 2.0 * dot + nv)
                };
            }
        });
        Tile {
            row0: r0,
            col0: c0,
            cols: cn,
            data,
        }
    }

    /// Visits every distance tile of `a × b`, block by evaluator block, each block in the
    /// arithmetic the evaluator would have used for it.
    fn for_each_tile(&self, a: &Points, b: &Points, mut visit: impl FnMut(&Tile)) {
        for r0 in (0..a.count).step_by(self.row_batch) {
            let rows = self.row_batch.min(a.count - r0);
            for c0 in (0..b.count).step_by(self.col_batch) {
                let cols = self.col_batch.min(b.count - c0);
                let tiles = |half: bool| {
                    (r0..r0 + rows)
                        .step_by(TILE)
                        .map(move |t0| (t0, TILE.min(r0 + rows - t0), half))
                };
                if self.distances == DistancePrecision::Float32 {
                    tiles(false).for_each(|(t0, tn, h)| {
                        visit(&Self::tile(a, t0..t0 + tn, b, c0..c0 + cols, h))
                    });
                    continue;
                }
                let safe = |p: &Points, s: usize, n: usize| {
                    p.half_norms[s..s + n]
                        .iter()
                        .all(|v| v.is_finite() && *v <= SAFE_HALF_NORM)
                };
                if safe(a, r0, rows) && safe(b, c0, cols) {
                    tiles(true).for_each(|(t0, tn, h)| {
                        visit(&Self::tile(a, t0..t0 + tn, b, c0..c0 + cols, h))
                    });
                    continue;
                }
                // This block might overflow in half: compute it whole, then decide.
                let block: Vec<Tile> = tiles(true)
                    .map(|(t0, tn, h)| Self::tile(a, t0..t0 + tn, b, c0..c0 + cols, h))
                    .collect();
                if block.iter().all(|t| t.data.iter().all(|v| v.is_finite())) {
                    block.iter().for_each(&mut visit);
                } else {
                    drop(block);
                    tiles(false).for_each(|(t0, tn, h)| {
                        visit(&Self::tile(a, t0..t0 + tn, b, c0..c0 + cols, h))
                    });
                }
            }
        }
    }

    /// The radius of each point of `features` (`[N, dim]`): the squared distance to its k-th
    /// neighbour within the set, itself counted as the 0-th (`manifold_radii`). At least
    /// k + 1 points are needed.
    pub fn radii(&self, features: &[f32], dim: usize) -> Result<Vec<f32>> {
        self.check()?;
        let points = Points::new(
            "features",
            features,
            dim,
            self.distances == DistancePrecision::Float16,
        )?;
        self.radii_of(&points)
    }

    fn radii_of(&self, p: &Points) -> Result<Vec<f32>> {
        let keep = self.neighbourhood + 1;
        if p.count < keep {
            return Err(EvalError::TooFewSamples {
                what: "manifold radii",
                got: p.count as u64,
                need: keep as u64,
            });
        }
        // The `keep` smallest distances of each row, ascending.
        let mut smallest = vec![f32::INFINITY; p.count * keep];
        self.for_each_tile(p, p, |tile| {
            for (row, distances) in tile.rows() {
                let best = &mut smallest[row * keep..(row + 1) * keep];
                for &d in distances {
                    if d < best[keep - 1] {
                        let at = best.partition_point(|&b| b <= d);
                        best.copy_within(at..keep - 1, at + 1);
                        best[at] = d;
                    }
                }
            }
        });
        Ok(smallest.chunks(keep).map(|best| best[keep - 1]).collect())
    }

    /// Precision and recall of `samples` against `reference` (both `[N, dim]`, the
    /// evaluator's `compute_prec_recall(ref_acts, sample_acts)`).
    pub fn precision_recall(
        &self,
        reference: &[f32],
        samples: &[f32],
        dim: usize,
    ) -> Result<PrecisionRecall> {
        self.check()?;
        let half = self.distances == DistancePrecision::Float16;
        let reference = Points::new("reference features", reference, dim, half)?;
        let samples = Points::new("sample features", samples, dim, half)?;
        let reference_radii = self.radii_of(&reference)?;
        let sample_radii = self.radii_of(&samples)?;
        let mut reference_inside = vec![false; reference.count];
        let mut sample_inside = vec![false; samples.count];
        self.for_each_tile(&reference, &samples, |tile| {
            for (row, distances) in tile.rows() {
                for (j, &d) in distances.iter().enumerate() {
                    let col = tile.col0 + j;
                    if d <= sample_radii[col] {
                        reference_inside[row] = true;
                    }
                    if d <= reference_radii[row] {
                        sample_inside[col] = true;
                    }
                }
            }
        });
        let share =
            |flags: &[bool]| flags.iter().filter(|&&f| f).count() as f64 / flags.len() as f64;
        Ok(PrecisionRecall {
            precision: share(&sample_inside),
            recall: share(&reference_inside),
        })
    }
}
